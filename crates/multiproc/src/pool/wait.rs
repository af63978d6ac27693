//! `wait` and `as_completed` over many [`TaskHandle`]s (Python's
//! `concurrent.futures.wait` and `as_completed`).

use std::fmt;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::process::chunk::ChunkOut;
use super::slot::Slot;
use super::task::{single, TaskHandle};
use crate::error::{Error, ErrorKind, Result};

/// Which handles [`wait`] waits for (Python's `FIRST_COMPLETED`, `ALL_COMPLETED`
/// and `FIRST_EXCEPTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Return as soon as one handle has finished.
    First,
    /// Return when every handle has finished.
    All,
    /// Return as soon as one handle has failed (see [`TaskHandle::is_failed`]), or
    /// when every handle has finished.
    FirstError,
}

/// Waits until the first or all of `handles` have finished, or `timeout` passes;
/// returns the indices of the finished ones (Python's `concurrent.futures.wait`).
///
/// The handles stay usable: join the finished ones to take their results.
///
/// # Examples
///
/// ```
/// use multiproc::pool::{self, Pool, WaitFor};
///
/// fn id(x: u8) -> u8 {
///     x
/// }
///
/// let pool = Pool::threads(2)?;
/// let hs: Vec<_> = (0..4).map(|i| pool.submit(id, i)).collect();
/// let done = pool::wait(&hs, WaitFor::All, None);
/// assert_eq!(done, vec![0, 1, 2, 3]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn wait<R: Send + 'static>(
    handles: &[TaskHandle<R>],
    mode: WaitFor,
    timeout: Option<Duration>,
) -> Vec<usize> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let (tx, rx) = mpsc::channel();
    for (i, h) in handles.iter().enumerate() {
        h.slot.notify_on(tx.clone(), i);
    }
    drop(tx);
    let want = match mode {
        WaitFor::First => 1.min(handles.len()),
        WaitFor::All | WaitFor::FirstError => handles.len(),
    };
    let mut got = 0;
    while got < want {
        let r: std::result::Result<usize, ()> = match deadline {
            None => rx.recv().map_err(|_| ()),
            Some(d) => rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .map_err(|_| ()),
        };
        let Ok(i) = r else { break };
        got += 1;
        if mode == WaitFor::FirstError && handles[i].is_failed() {
            break;
        }
    }
    (0..handles.len())
        .filter(|&i| handles[i].slot.is_done())
        .collect()
}

/// Yields `(index, result)` for each handle as it finishes, in completion order
/// (Python's `concurrent.futures.as_completed`).
///
/// # Examples
///
/// ```
/// use multiproc::pool::{self, Pool};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::threads(2)?;
/// let hs: Vec<_> = (1..=3).map(|i| pool.submit(square, i)).collect();
/// let mut sum = 0;
/// for (_, r) in pool::as_completed(hs) {
///     sum += r?;
/// }
/// assert_eq!(sum, 14);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn as_completed<R: Send + 'static>(handles: Vec<TaskHandle<R>>) -> AsCompleted<R> {
    let (tx, rx) = mpsc::channel();
    for (i, h) in handles.iter().enumerate() {
        h.slot.notify_on(tx.clone(), i);
    }
    AsCompleted {
        slots: handles.into_iter().map(|h| Some(h.slot)).collect(),
        rx,
        left: 0,
    }
    .counted()
}

/// The iterator [`as_completed`] returns.
pub struct AsCompleted<R> {
    slots: Vec<Option<Arc<Slot<ChunkOut<R>>>>>,
    rx: mpsc::Receiver<usize>,
    left: usize,
}

impl<R> AsCompleted<R> {
    fn counted(mut self) -> Self {
        self.left = self.slots.len();
        self
    }
}

impl<R> fmt::Debug for AsCompleted<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .finish()
    }
}

impl<R: Send + 'static> Iterator for AsCompleted<R> {
    type Item = (usize, Result<R>);

    fn next(&mut self) -> Option<(usize, Result<R>)> {
        if self.left == 0 {
            return None;
        }
        let i = self.rx.recv().ok()?;
        self.take(i)
    }
}

impl<R: Send + 'static> AsCompleted<R> {
    /// Like `next`, but waits at most `timeout` for a handle to finish (Python's
    /// `as_completed(fs, timeout)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if none finished in time; the iterator stays usable.
    /// `Ok(None)` once every handle has been yielded.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::{self, Pool};
    /// use std::time::Duration;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = Pool::threads(1)?;
    /// let mut it = pool::as_completed(vec![pool.submit(nap, 200)]);
    /// assert!(it.next_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
    /// let (i, r) = it.next_timeout(Duration::from_secs(60))?.unwrap();
    /// assert_eq!((i, r?), (0, 200));
    /// assert!(it.next_timeout(Duration::ZERO)?.is_none());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<(usize, Result<R>)>> {
        if self.left == 0 {
            return Ok(None);
        }
        match self.rx.recv_timeout(timeout) {
            Ok(i) => Ok(self.take(i)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::new(ErrorKind::Timeout)
                .with_message(format!("no task finished within {timeout:?}"))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    fn take(&mut self, i: usize) -> Option<(usize, Result<R>)> {
        let slot = self.slots.get_mut(i)?.take()?;
        self.left -= 1;
        Some((i, single(slot.join())))
    }
}
