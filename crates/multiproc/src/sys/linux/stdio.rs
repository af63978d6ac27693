//! Captured stdio: pipes whose parent end never blocks, reading what they hold, and
//! making a descriptor this process's stdout or stderr.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/pipe.2.html>
//! - <https://man7.org/linux/man-pages/man2/dup2.2.html>

use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// A close-on-exec pipe for one captured stream: `(read end, write end)`, the read end
/// non-blocking (the parent drains it between other waits).
pub(crate) fn capture_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK)?;
    Ok((r, w))
}

/// Reads what `fd` holds into `buf`, retrying when a signal interrupts the call.
/// `Ok(0)` is the end of the stream; a non-blocking `fd` with nothing to read fails
/// with `WouldBlock`.
pub(crate) fn read(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd.as_fd(), &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Makes `fd` this process's standard output (`dup2` onto descriptor 1).
pub(crate) fn redirect_stdout(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::stdio::dup2_stdout(fd)?)
}

/// Makes `fd` this process's standard error (`dup2` onto descriptor 2).
pub(crate) fn redirect_stderr(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::stdio::dup2_stderr(fd)?)
}
