//! Named shared-memory files in `/dev/shm` (`shm_open` semantics), for processes
//! that share nothing but a name.
//!
//! glibc's `shm_open(name)` is `open("/dev/shm/" + name, O_NOFOLLOW | O_CLOEXEC)`;
//! these functions do the same with rustix, plus an atomic create: the file is made
//! unnamed (`O_TMPFILE`), sized, and only then linked under its name, so an opener
//! never sees a half-made (empty) segment, and two creators race safely (`EEXIST`).
//!
//! # References
//! - <https://man7.org/linux/man-pages/man3/shm_open.3.html>
//! - <https://man7.org/linux/man-pages/man2/open.2.html> (`O_TMPFILE` and `linkat`)

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};

/// Where POSIX shared memory lives on Linux.
pub(crate) const DIR: &str = "/dev/shm";

/// The path of segment `name` (a leading `/`, as POSIX spells names, is optional).
/// `None` if the name is not a single path component.
pub(crate) fn path(name: &str) -> Option<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let ok = !n.is_empty() && n.len() <= 255 && n != "." && n != ".." && !n.contains(['/', '\0']);
    ok.then(|| format!("{DIR}/{n}"))
}

/// Opens the existing segment at `path`, read-write.
pub(crate) fn open(path: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// Creates the segment at `path` with `len` zero bytes, owner-only; fails with
/// `AlreadyExists` if there is one.
pub(crate) fn create(path: &str, len: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        DIR,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )?;
    rustix::fs::ftruncate(&fd, len)?;
    let proc = super::memfd::proc_path(fd.as_fd());
    rustix::fs::linkat(CWD, proc.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW)?;
    Ok(fd)
}

/// Removes the name `path` (mappings and open descriptors stay valid).
pub(crate) fn unlink(path: &str) -> io::Result<()> {
    Ok(rustix::fs::unlink(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component() {
        assert_eq!(path("/a").as_deref(), Some("/dev/shm/a"));
        assert_eq!(path("a").as_deref(), Some("/dev/shm/a"));
        for bad in ["", "/", "..", "a/b", "/../x", "a\0b"] {
            assert_eq!(path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn create_is_exclusive_and_sized() {
        let p = path(&format!("multiproc-test-{}", std::process::id())).unwrap();
        let fd = create(&p, 4096).unwrap();
        assert_eq!(super::super::memfd::size(fd.as_fd()).unwrap(), 4096);
        let e = create(&p, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let again = open(&p).unwrap();
        assert_eq!(
            super::super::memfd::identity(again.as_fd()).unwrap(),
            super::super::memfd::identity(fd.as_fd()).unwrap()
        );
        unlink(&p).unwrap();
        assert_eq!(open(&p).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
