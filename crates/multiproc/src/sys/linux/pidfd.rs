//! Process handles as file descriptors: poll for exit, signal and reap without pid races.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/pidfd_open.2.html>
//! - <https://man7.org/linux/man-pages/man2/waitid.2.html>

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions};

/// How a reaped child ended: `Ok(code)` for an exit, `Err((signal, core_dumped))` for a signal.
pub(crate) type RawExit = Result<i32, (i32, bool)>;

/// Opens a pidfd for child `pid`.
pub(crate) fn open(pid: i32) -> io::Result<OwnedFd> {
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// Opens a pidfd for any process `pid`; `Ok(None)` if there is none (`ESRCH`: it
/// exited and was reaped).
pub(crate) fn open_if_exists(pid: i32) -> io::Result<Option<OwnedFd>> {
    match open(pid) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reaps the child if it has exited; `Ok(None)` while it runs.
pub(crate) fn try_reap(pidfd: BorrowedFd<'_>) -> io::Result<Option<RawExit>> {
    reap(pidfd, WaitIdOptions::EXITED | WaitIdOptions::NOHANG)
}

/// Reports the child's exit without reaping it (`WNOWAIT`); `Ok(None)` while it runs.
pub(crate) fn peek(pidfd: BorrowedFd<'_>) -> io::Result<Option<RawExit>> {
    reap(
        pidfd,
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
    )
}

/// Blocks until the child exits, then reaps it.
pub(crate) fn reap_blocking(pidfd: BorrowedFd<'_>) -> io::Result<RawExit> {
    loop {
        match reap(pidfd, WaitIdOptions::EXITED) {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn reap(pidfd: BorrowedFd<'_>, opts: WaitIdOptions) -> io::Result<Option<RawExit>> {
    let status = rustix::process::waitid(WaitId::PidFd(pidfd), opts)?;
    Ok(status.and_then(|s| {
        if let Some(code) = s.exit_status() {
            Some(Ok(code))
        } else {
            s.terminating_signal().map(|sig| Err((sig, s.dumped())))
        }
    }))
}

/// Whether child `pid` has exited, looked at without reaping it (`WNOWAIT`).
///
/// # Errors
///
/// `ECHILD` once it has been reaped (or if `pid` is not a child of this process),
/// `InvalidInput` for a pid that is not positive.
pub(crate) fn has_exited(pid: i32) -> io::Result<bool> {
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(rustix::process::waitid(WaitId::Pid(pid), opts)?.is_some())
}

/// Sends `signal` to the process behind `pidfd`, as [`send_signal`] does, but once
/// the process has been reaped (`ESRCH`) there is no one to signal and this succeeds.
pub(crate) fn signal_unless_reaped(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    match send_signal(pidfd, signal) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r,
    }
}

/// Sends `signal` to the process behind `pidfd` (a no-op error `ESRCH` once it is reaped).
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    let sig = rustix::process::Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_send_signal(pidfd, sig)?)
}

/// Waits until any of `fds` (pidfds among them) is readable or `deadline` passes.
pub(crate) use super::poll::readable as poll_readable;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_if_exists_tells_a_reaped_process() {
        assert!(open_if_exists(std::process::id() as i32).unwrap().is_some());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        // The pid is free now (unless a new process took it in between, rarely: then
        // it exists again, and so does its /proc entry).
        let found = open_if_exists(pid).unwrap().is_some();
        assert!(!found || std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(open_if_exists(0).is_err());
    }
}
