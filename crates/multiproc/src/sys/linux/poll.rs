//! Timed waits that keep their deadline when signals interrupt them: `poll` on
//! descriptors, and a retry loop for any other timed call.
//!
//! A signal handler that runs while a thread sleeps in a timed syscall makes the
//! call fail with `EINTR` (`poll` and `ppoll` always, whatever `SA_RESTART` says; a
//! futex wait with a timeout too). Calling again with the same *relative* timeout
//! starts the whole wait over after every signal: with a `SIGALRM` every 100 ms, a
//! 300 ms wait took 2-3 s, and with one every millisecond it never ended (issue 9,
//! item 8). So every timed wait in the crate holds an absolute deadline (an
//! [`Instant`]) and asks for what is left of it each time round: [`retry_until`]
//! does that for any call, [`until`] for `poll`. Futex waits return to their caller
//! on `EINTR` (the word must be re-read anyway), and each caller recomputes what is
//! left of its deadline before it sleeps again.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/poll.2.html>
//! - <https://man7.org/linux/man-pages/man7/signal.7.html> ("Interruption of system
//!   calls and library functions by signal handlers")

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::time::Timespec;

/// Runs `op` with the time left until `deadline` (`None`: no limit; zero once the
/// deadline has passed), and again, with the time then left, each time it fails
/// with `EINTR`. Returns `op`'s first other result.
pub(crate) fn retry_until<T>(
    deadline: Option<Instant>,
    mut op: impl FnMut(Option<Duration>) -> rustix::io::Result<T>,
) -> rustix::io::Result<T> {
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match op(left) {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// A kernel `timespec` for a duration, saturating at the largest one.
pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Waits until one of `fds` has an event or `deadline` passes (`None`: no limit; a
/// deadline already past: just look). Returns how many have events (0: the
/// deadline passed); their `revents` say which.
///
/// # Errors
///
/// `poll`'s errors other than `EINTR` (`EINVAL` for too many descriptors, `ENOMEM`).
pub(crate) fn until(fds: &mut [PollFd<'_>], deadline: Option<Instant>) -> io::Result<usize> {
    retry_until(deadline, |left| {
        let ts = left.map(timespec);
        poll(fds, ts.as_ref())
    })
    .map_err(io::Error::from)
}

/// Waits until any of `fds` is readable (or hung up, or in error) or `deadline`
/// passes (`None`: no limit; a deadline already past: just look); returns which
/// have an event. Signals do not stretch the wait.
///
/// # Errors
///
/// As [`until`].
pub(crate) fn readable(fds: &[BorrowedFd<'_>], deadline: Option<Instant>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    until(&mut pfds, deadline)?;
    Ok(pfds.iter().map(|p| !p.revents().is_empty()).collect())
}

/// [`readable`] for one descriptor, without allocating: whether `fd` has an event
/// before `deadline`.
///
/// # Errors
///
/// As [`until`].
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn readable_one(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<bool> {
    let mut pfds = [PollFd::new(&fd, PollFlags::IN)];
    Ok(until(&mut pfds, deadline)? > 0)
}

/// What to wait for on one descriptor, for [`ready`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interest<'a> {
    pub(crate) fd: BorrowedFd<'a>,
    pub(crate) read: bool,
    pub(crate) write: bool,
}

/// Waits until one of `fds` is ready as asked (or hung up, or in error; a descriptor
/// asking for nothing reports only those) or `deadline` passes; returns which have an
/// event. Signals do not stretch the wait.
///
/// # Errors
///
/// As [`until`].
pub(crate) fn ready(fds: &[Interest<'_>], deadline: Option<Instant>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|i| {
            let mut flags = PollFlags::empty();
            if i.read {
                flags |= PollFlags::IN;
            }
            if i.write {
                flags |= PollFlags::OUT;
            }
            PollFd::new(&i.fd, flags)
        })
        .collect();
    until(&mut pfds, deadline)?;
    Ok(pfds.iter().map(|p| !p.revents().is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_with_what_is_left() {
        // Far off: a loaded machine must not reach it (every `left` would then be 0).
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lefts = Vec::new();
        let r = retry_until(Some(deadline), |left| {
            lefts.push(left.expect("a deadline"));
            if lefts.len() < 3 {
                std::thread::sleep(Duration::from_millis(5));
                Err(Errno::INTR)
            } else {
                Ok(lefts.len())
            }
        });
        assert_eq!(r, Ok(3));
        assert!(lefts.windows(2).all(|w| w[1] < w[0]), "{lefts:?}");
    }

    #[test]
    fn other_errors_end_it() {
        let mut calls = 0;
        let r: rustix::io::Result<()> = retry_until(None, |left| {
            assert_eq!(left, None);
            calls += 1;
            Err(Errno::BADF)
        });
        assert_eq!((r, calls), (Err(Errno::BADF), 1));
    }

    #[test]
    fn a_past_deadline_just_looks() {
        let (a, _b) = crate::sys::socket::pair().unwrap();
        let mut fds = [PollFd::new(&a, rustix::event::PollFlags::IN)];
        let past = Instant::now().checked_sub(Duration::from_secs(1));
        assert_eq!(until(&mut fds, past).unwrap(), 0);
    }

    #[test]
    fn timespec_saturates() {
        assert_eq!(timespec(Duration::MAX).tv_sec, i64::MAX);
        assert_eq!(timespec(Duration::from_millis(1500)).tv_nsec, 500_000_000);
    }
}
