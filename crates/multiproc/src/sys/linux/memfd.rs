//! Anonymous shared files (`memfd_create`): shared memory with no name to leak.
//!
//! A memfd lives exactly as long as some descriptor or mapping refers to it, so
//! a segment is freed by the kernel when its last user is gone, even if every
//! process involved crashed.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/memfd_create.2.html>
//! - <https://man7.org/linux/man-pages/man2/fcntl.2.html> (file seals)
//! - <https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html>

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags, SealFlags};

/// The prefix of every segment's memfd name (visible in `/proc/<pid>/fd` links).
pub(crate) const NAME_PREFIX: &str = "multiproc-shm";

/// Creates a close-on-exec memfd of `len` zero bytes, readable and writable by its
/// owner only, whose size is then sealed (it cannot grow or shrink, so no process
/// can make another's mapping fault with `SIGBUS`).
pub(crate) fn create(len: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        NAME_PREFIX,
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )?;
    rustix::fs::fchmod(&fd, Mode::RUSR | Mode::WUSR)?;
    rustix::fs::ftruncate(&fd, len)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(fd)
}

/// The size in bytes of the file behind `fd`.
pub(crate) fn size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let st = rustix::fs::fstat(fd)?;
    u64::try_from(st.st_size).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// Whether the file behind `fd` cannot shrink: a memfd sealed with `F_SEAL_SHRINK`
/// (every one [`create`] makes), or a named segment in `/dev/shm`, whose size
/// anyone of the same user may change (the trade-off documented on
/// `SharedMemory::create_named`). A received descriptor that is neither could be
/// truncated by its sender while we map it, and the next access would die of
/// `SIGBUS`.
pub(crate) fn cannot_shrink_or_is_named(fd: BorrowedFd<'_>) -> io::Result<bool> {
    if rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(SealFlags::SHRINK)) {
        return Ok(true);
    }
    use std::os::fd::AsRawFd;
    let link = rustix::fs::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()), Vec::new())?;
    Ok(link.to_bytes().starts_with(b"/dev/shm/"))
}

/// The `(device, inode)` identity of the file behind `fd`: equal for every
/// descriptor of one memfd, in any process.
pub(crate) fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Reopens a memfd through a `/proc/<pid>/fd/<n>` path.
///
/// The kernel allows this only to callers that pass a ptrace access check
/// (`PTRACE_MODE_READ_FSCREDS`) against the owning process, and then checks the
/// file's own mode (owner-only). The link must point at one of our memfds.
pub(crate) fn reopen(path: &str) -> io::Result<OwnedFd> {
    let target = rustix::fs::readlink(path, Vec::new())?;
    let expected = format!("/memfd:{NAME_PREFIX}");
    if !target.to_bytes().starts_with(expected.as_bytes()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a multiproc shared-memory segment",
        ));
    }
    let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    Ok(fd)
}

/// The `/proc/<pid>/fd/<n>` path under which other processes can [`reopen`] `fd`.
pub(crate) fn proc_path(fd: impl AsFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/{}/fd/{}", std::process::id(), fd.as_fd().as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn only_sealed_memfds_count_as_unshrinkable() {
        let sealed = create(4096).unwrap();
        assert!(cannot_shrink_or_is_named(sealed.as_fd()).unwrap());
        let unsealed =
            rustix::fs::memfd_create(NAME_PREFIX, rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&unsealed, 4096).unwrap();
        assert!(!cannot_shrink_or_is_named(unsealed.as_fd()).unwrap());
        let sealable = rustix::fs::memfd_create(
            NAME_PREFIX,
            rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
        )
        .unwrap();
        rustix::fs::ftruncate(&sealable, 4096).unwrap();
        rustix::fs::fcntl_add_seals(&sealable, SealFlags::GROW).unwrap();
        assert!(!cannot_shrink_or_is_named(sealable.as_fd()).unwrap());
    }

    #[test]
    fn create_size_and_seals() {
        let fd = create(8192).unwrap();
        assert_eq!(size(fd.as_fd()).unwrap(), 8192);
        assert!(rustix::fs::ftruncate(&fd, 4096).is_err(), "size is sealed");
        let st = rustix::fs::fstat(&fd).unwrap();
        assert_eq!(st.st_mode & 0o777, 0o600);
    }

    #[test]
    fn reopen_by_proc_path() {
        let fd = create(4096).unwrap();
        let again = reopen(&proc_path(&fd)).unwrap();
        assert_eq!(
            rustix::fs::fstat(&fd).unwrap().st_ino,
            rustix::fs::fstat(&again).unwrap().st_ino
        );
        assert!(reopen("/proc/self/exe").is_err());
    }
}
