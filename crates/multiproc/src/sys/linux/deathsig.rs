//! "Die when the parent process dies", independent of which parent thread started the child.
//!
//! `PR_SET_PDEATHSIG` fires when the parent *thread* exits, so a child started from a
//! short-lived thread (a pool's helper, a test's thread) would be killed early. Instead,
//! the parent keeps the write end of a "death pipe"; no other process holds it (it is
//! close-on-exec, and forked children close their copy first thing). Each child opens
//! its own file description of the read end (through `/proc/self/fd`), makes itself its
//! owner with `F_SETOWN`, asks for `SIGKILL` instead of `SIGIO` with `F_SETSIG`, and sets
//! `O_ASYNC`. When the parent process dies, its last write end closes and the kernel
//! signals every reader that is waiting for input: the child dies with it, whichever
//! thread started it.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/fcntl.2.html> (`F_SETOWN`, `F_SETSIG`)
//! - <https://man7.org/linux/man-pages/man7/pipe.7.html>
//! - <https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html>
//!
//! # Safety
//!
//! This module owns the descriptors it keeps in its statics ([`READ_FD`], [`WRITE_FD`],
//! [`ARMED_FD`]) by number: each was an `OwnedFd` made here and turned into a raw number
//! (`ManuallyDrop`, `into_raw_fd`), never handed out as owned. Its `unsafe` blocks close
//! those numbers, or hand one over as an `OwnedFd`, after swapping the static to `-1`, so
//! each is closed or handed over once. The two `fcntl` commands rustix does not offer
//! (`F_SETOWN`, `F_SETSIG`) take integers on a descriptor borrowed for the call.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};

use super::fork::PerProcess;

/// Read end of this process's death pipe, or `-1` if none was made yet.
static READ_FD: AtomicI32 = AtomicI32::new(-1);
/// Write end of this process's death pipe, or `-1`.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// The description [`arm`] opened and keeps open for the rest of the process's life,
/// or `-1`: a forked child closes its copy ([`forget_parent_pipe_after_fork`]).
static ARMED_FD: AtomicI32 = AtomicI32::new(-1);
/// The pid that created the pipe: a forked child sees another pid and must not use it.
static OWNER: AtomicU32 = AtomicU32::new(0);
/// Serializes creation; per process, so a fork cannot leave it held.
static CREATE: PerProcess<()> = PerProcess::new(|| ());

/// `F_SETSIG` from `<fcntl.h>` (Linux-specific; the libc crate does not export it).
const F_SETSIG: libc::c_int = 10;

/// Returns the read end of this process's death pipe, creating the pipe on first use.
pub(crate) fn read_end() -> io::Result<RawFd> {
    let pid = std::process::id();
    if OWNER.load(Ordering::Acquire) == pid {
        return Ok(READ_FD.load(Ordering::Relaxed));
    }
    let _g = CREATE.lock();
    if OWNER.load(Ordering::Acquire) == pid {
        return Ok(READ_FD.load(Ordering::Relaxed));
    }
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    READ_FD.store(
        std::mem::ManuallyDrop::new(r).as_raw_fd(),
        Ordering::Relaxed,
    );
    WRITE_FD.store(
        std::mem::ManuallyDrop::new(w).as_raw_fd(),
        Ordering::Relaxed,
    );
    OWNER.store(pid, Ordering::Release);
    Ok(READ_FD.load(Ordering::Relaxed))
}

/// In a freshly forked child: closes the inherited write end of the parent's death pipe
/// and the parent's armed description, and forgets the parent's pipe, so that this
/// child's own children get a new one. Returns the parent's read end, if it had made
/// the pipe: the child owns it now, to arm on it (and close it) or just close it.
///
/// Async-signal-safe: atomics and `close` only.
pub(crate) fn forget_parent_pipe_after_fork() -> Option<OwnedFd> {
    let w = WRITE_FD.swap(-1, Ordering::Relaxed);
    if w >= 0 {
        // SAFETY: `w` is the write end this module created in the parent and never
        // handed out; the child owns its inherited copy and nobody else closes it.
        unsafe {
            libc::close(w);
        }
    }
    let armed = ARMED_FD.swap(-1, Ordering::Relaxed);
    if armed >= 0 {
        // SAFETY: `armed` is the description `arm` opened in the parent and handed to
        // no one (its `OwnedFd` was forgotten); this child's copy is closed only here.
        unsafe {
            libc::close(armed);
        }
    }
    OWNER.store(0, Ordering::Release);
    let r = READ_FD.swap(-1, Ordering::Relaxed);
    // SAFETY: `r` is the read end this module created in the parent and kept only as a
    // number (module docs); the swap took it out of the static, so this is its only
    // owner in the child.
    (r >= 0).then(|| unsafe { OwnedFd::from_raw_fd(r) })
}

/// In a child: arranges to receive `SIGKILL` when every write end of the pipe whose
/// read end is `inherited` has closed, that is, when the parent process has died.
///
/// Returns `Ok(false)` if the parent is already gone.
pub(crate) fn arm(inherited: BorrowedFd<'_>) -> io::Result<bool> {
    let mut buf = [0u8; 32];
    let path = fd_path(inherited.as_raw_fd(), &mut buf);
    let own = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    // Not in rustix: `F_SETOWN` and `F_SETSIG`.
    for (cmd, arg) in [(libc::F_SETOWN, pid), (F_SETSIG, libc::SIGKILL)] {
        // SAFETY: integer-argument fcntl commands on `own`, open for the whole call;
        // no pointers.
        if unsafe { libc::fcntl(own.as_raw_fd(), cmd, arg) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    rustix::fs::fcntl_setfl(&own, OFlags::ASYNC | OFlags::NONBLOCK)?;
    // The parent may have died before O_ASYNC was set: check once by hand.
    let mut pfd = [PollFd::new(&own, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let n = rustix::event::poll(&mut pfd, Some(&now))?;
    let hung_up = n > 0 && pfd[0].revents().contains(PollFlags::HUP);
    // Keep the armed description open for the rest of this process's life.
    ARMED_FD.store(own.into_raw_fd(), Ordering::Relaxed);
    Ok(!hung_up)
}

/// Returns `true` on the process's main thread, whose exit is the process's exit.
pub(crate) fn on_main_thread() -> bool {
    rustix::thread::gettid() == rustix::process::getpid()
}

/// In a child whose parent *thread* is the parent's main thread: `PR_SET_PDEATHSIG`
/// with `SIGKILL`, then a check that the parent (`expected_ppid`) did not die before it
/// was set. Two syscalls instead of the pipe's seven; used only when the kernel's
/// per-thread semantics coincide with the process's lifetime.
///
/// Returns `false` if the parent is already gone.
pub(crate) fn arm_pdeathsig(expected_ppid: i32) -> bool {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    rustix::process::getppid().is_some_and(|p| p.as_raw_nonzero().get() == expected_ppid)
}

/// `/proc/self/fd/<fd>` with a trailing NUL, written into `buf` without allocating: a
/// forked child calls [`arm`] first thing, and its first heap allocation would cost
/// page faults on memory it shares copy-on-write with the parent.
fn fd_path(fd: RawFd, buf: &mut [u8; 32]) -> &CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let end = PREFIX.len() + digits.len() - i;
    buf[PREFIX.len()..end].copy_from_slice(&digits[i..]);
    buf[end] = 0;
    CStr::from_bytes_with_nul(&buf[..=end]).expect("digits, then one NUL")
}

#[cfg(test)]
mod tests {
    #[test]
    fn fd_path_is_nul_terminated_decimal() {
        let mut buf = [0u8; 32];
        assert_eq!(super::fd_path(0, &mut buf), c"/proc/self/fd/0");
        assert_eq!(super::fd_path(1023, &mut buf), c"/proc/self/fd/1023");
        assert_eq!(
            super::fd_path(i32::MAX, &mut buf),
            c"/proc/self/fd/2147483647"
        );
    }
}
