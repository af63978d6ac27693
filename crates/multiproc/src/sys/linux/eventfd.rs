//! `eventfd(2)` as a wake-up flag another thread can `poll` on.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/eventfd.2.html>

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::EventfdFlags;

/// A new eventfd, close-on-exec and non-blocking, with no wake-up pending.
///
/// # Errors
///
/// `EMFILE`/`ENFILE` when out of descriptors, `ENOMEM`.
pub(crate) fn new() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
    )?)
}

/// Makes `fd` readable (a pending wake-up), for a thread polling it. Never blocks: a
/// counter that cannot grow already holds a wake-up.
pub(crate) fn signal(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Clears the pending wake-ups of `fd` (nothing if there were none).
pub(crate) fn clear(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    let _ = rustix::io::read(fd, &mut buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn signal_makes_it_readable_until_cleared() {
        let fd = new().unwrap();
        let now = Some(std::time::Instant::now());
        assert!(!crate::sys::poll::readable_one(fd.as_fd(), now).unwrap());
        signal(fd.as_fd());
        signal(fd.as_fd());
        assert!(crate::sys::poll::readable_one(fd.as_fd(), now).unwrap());
        clear(fd.as_fd());
        assert!(!crate::sys::poll::readable_one(fd.as_fd(), now).unwrap());
    }
}
