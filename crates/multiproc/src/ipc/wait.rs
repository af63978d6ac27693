//! [`wait`]: block until one of many connections or processes is ready (Python's
//! `multiprocessing.connection.wait`).

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys;

pub(crate) mod sealed {
    /// Only multiproc's own types can be waited on.
    pub trait Sealed {}
}

/// Something [`wait`] can wait for: a [`Connection`](crate::ipc::Connection) (ready
/// when a receive would not block) or a [`Process`](crate::Process) (ready when it
/// has exited).
///
/// This trait is sealed; its methods are an implementation detail.
pub trait Waitable: sealed::Sealed {
    /// Registers interest; returns `true` if already ready.
    #[doc(hidden)]
    fn wait_arm(&self) -> bool;
    /// The descriptor that becomes readable when the object may be ready.
    #[doc(hidden)]
    fn wait_fd(&self) -> BorrowedFd<'_>;
    /// Withdraws interest (`fired`: the descriptor polled readable); returns `true`
    /// if ready.
    #[doc(hidden)]
    fn wait_done(&self, fired: bool) -> bool;
}

impl<T> sealed::Sealed for crate::Process<T> {}

impl<T> Waitable for crate::Process<T> {
    fn wait_arm(&self) -> bool {
        false
    }

    fn wait_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }

    fn wait_done(&self, fired: bool) -> bool {
        fired
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: no
/// limit); returns the indices of the ready ones, in order (empty on timeout).
///
/// A connection is ready when a receive would not block: a message is there, or the
/// peer is gone (the receive then reports end of stream). A process is ready when
/// it has exited.
///
/// # Errors
///
/// [`ErrorKind::Os`](crate::ErrorKind::Os) if `poll` fails.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::ipc::{wait, Pipe};
///
/// let (a1, b1) = Pipe::new()?;
/// let (a2, b2) = Pipe::new()?;
/// a2.send(7u8)?;
/// assert_eq!(wait(&[&b1, &b2], Some(Duration::from_secs(5)))?, [1]);
/// assert_eq!(b2.recv::<u8>()?, 7);
/// assert!(wait(&[&b1, &b2], Some(Duration::from_millis(1)))?.is_empty());
/// # drop((a1, b1));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let mut armed_ready = vec![false; objects.len()];
        for (i, o) in objects.iter().enumerate() {
            armed_ready[i] = o.wait_arm();
        }
        // Even when some object is ready already, look at every descriptor once (zero
        // timeout): returning only the first ready ones would starve the others, e.g.
        // a closed connection that stays ready would hide a second one forever.
        let any_ready = armed_ready.iter().any(|&r| r);
        let fds: Vec<BorrowedFd<'_>> = objects.iter().map(|o| o.wait_fd()).collect();
        // Nothing ready yet: sleep until the deadline (signals do not stretch it).
        let until = if any_ready {
            Some(Instant::now())
        } else {
            deadline
        };
        let fired = match sys::poll::readable(&fds, until) {
            Ok(fired) => fired,
            Err(e) => {
                for o in objects {
                    o.wait_done(false);
                }
                return Err(Error::os(e));
            }
        };
        drop(fds);
        let mut ready: Vec<usize> = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            if o.wait_done(fired[i]) || armed_ready[i] {
                ready.push(i);
            }
        }
        if !ready.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(ready);
        }
    }
}
