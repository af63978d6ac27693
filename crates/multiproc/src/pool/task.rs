//! `TaskHandle`: the result of one submitted task, as a blocking handle and a `Future`
//! (Python's `AsyncResult` and `concurrent.futures.Future`), over its [`Slot`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::process::chunk::ChunkOut;
use super::slot::Slot;
use crate::error::{Error, ErrorKind, Result};

/// Turns a chunk's outcome into one result per item (`n` items).
pub(crate) fn expand<R>(out: Result<ChunkOut<R>>, n: usize) -> Vec<Result<R>> {
    match out {
        Err(e) => {
            let mut v = Vec::with_capacity(n);
            for _ in 1..n {
                v.push(Err(e.duplicate()));
            }
            if n > 0 {
                v.push(Err(e));
            }
            v
        }
        Ok(ChunkOut { values, panics }) => {
            if panics.is_empty() && values.len() == n {
                return values.into_iter().map(Ok).collect();
            }
            // A worker process's answer: one that does not account for every item
            // exactly once fails them all (never fewer or more results than items).
            if values.len().checked_add(panics.len()) != Some(n) {
                let e = Error::new(ErrorKind::Decode).with_message(format!(
                    "a chunk of {n} items returned {} values and {} panics",
                    values.len(),
                    panics.len()
                ));
                return expand(Err(e), n);
            }
            let mut v = Vec::with_capacity(n);
            let mut values = values.into_iter();
            let mut panics = panics.into_iter().peekable();
            for i in 0..n {
                if panics.peek().is_some_and(|(at, _)| *at as usize == i) {
                    let (_, p) = panics.next().expect("peeked");
                    v.push(Err(Error::from_panic(p)));
                } else {
                    match values.next() {
                        Some(x) => v.push(Ok(x)),
                        None => v.push(Err(Error::new(ErrorKind::Decode)
                            .with_message("a chunk returned fewer results than items"))),
                    }
                }
            }
            v
        }
    }
}

/// The pending result of a task submitted to a [`Pool`](super::Pool): Python's
/// `AsyncResult` and `concurrent.futures.Future` in one.
///
/// [`join`](Self::join) blocks for the result; the handle is also a
/// [`Future`](std::future::Future), so async code can `.await` it (no runtime is
/// needed: the pool's own threads wake the task).
///
/// Dropping the handle does not cancel the task; its result is discarded.
///
/// # Examples
///
/// ```
/// use multiproc::pool::Pool;
///
/// fn double(x: u32) -> u32 {
///     x * 2
/// }
///
/// let pool = Pool::threads(2)?;
/// let h = pool.submit(double, 21);
/// assert_eq!(h.join()?, 42);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "the task runs on, but its result (or its error, or its panic) is discarded \
              unless you `join` or `.await` the handle"]
pub struct TaskHandle<R> {
    pub(super) slot: Arc<Slot<ChunkOut<R>>>,
}

impl<R> fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("done", &self.slot.is_done())
            .finish()
    }
}

/// Whether a one-item chunk's outcome is a failure other than a cancellation.
fn chunk_failed<R>(r: &Result<ChunkOut<R>>) -> bool {
    match r {
        Err(e) => e.kind() != ErrorKind::Cancelled,
        Ok(c) => !c.panics.is_empty() || c.values.is_empty(),
    }
}

pub(crate) fn single<R>(out: Result<ChunkOut<R>>) -> Result<R> {
    expand(out, 1)
        .pop()
        .expect("expand returns one result per item")
}

impl<R: Send + 'static> TaskHandle<R> {
    pub(crate) fn new(slot: Arc<Slot<ChunkOut<R>>>) -> Self {
        TaskHandle { slot }
    }

    /// Waits for the task and returns its value (Python's `AsyncResult.get()`).
    ///
    /// # Errors
    ///
    /// The task's failure: [`ErrorKind::Panicked`] with the panic message,
    /// [`ErrorKind::WorkerDied`] with the signal or exit code of the worker that died
    /// running it, [`ErrorKind::Timeout`] if it ran past the pool's task timeout,
    /// [`ErrorKind::PoolClosed`] if the pool was terminated first,
    /// [`ErrorKind::Encode`]/[`ErrorKind::Decode`] if its argument or result did not
    /// cross to the worker, [`ErrorKind::AlreadyJoined`] if the value was taken already.
    pub fn join(self) -> Result<R> {
        single(self.slot.join())
    }

    /// Waits at most `timeout` for the task and returns its value; on
    /// [`ErrorKind::Timeout`] the handle stays usable.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join), plus [`ErrorKind::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    /// use std::time::Duration;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = Pool::threads(1)?;
    /// let mut h = pool.submit(nap, 100);
    /// assert!(h.join_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
    /// assert_eq!(h.join()?, 100);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R> {
        if !self.slot.wait_until(Instant::now().checked_add(timeout)) {
            return Err(Error::new(ErrorKind::Timeout)
                .with_message(format!("the task did not finish within {timeout:?}")));
        }
        single(self.slot.take())
    }

    /// Returns `true` once the task has finished (Python's `ready()`/`done()`).
    pub fn is_finished(&self) -> bool {
        self.slot.is_done()
    }

    /// Waits at most `timeout` for the task to finish, without taking its result;
    /// returns whether it has (Python's `AsyncResult.wait(timeout)` then `ready()`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.slot.wait_until(Instant::now().checked_add(timeout))
    }

    /// Cancels the task if no worker has started it (Python's `Future.cancel()`):
    /// it will not run, and its result is [`ErrorKind::Cancelled`] (a callback given
    /// to [`Pool::apply_async_with`](super::Pool::apply_async_with) sees that).
    ///
    /// Returns `true` if the task is cancelled, also when an earlier call cancelled
    /// it; `false` if it is running or has finished. A process worker may have been
    /// handed a few short tasks ahead of time: those count as started.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    /// use multiproc::ErrorKind;
    /// use std::time::Duration;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = Pool::threads(1)?;
    /// let _busy = pool.submit(nap, 200);
    /// let queued = pool.submit(nap, 200);
    /// assert!(queued.cancel());
    /// assert_eq!(queued.join().unwrap_err().kind(), ErrorKind::Cancelled);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.slot.cancel()
    }

    /// Returns `true` if [`cancel`](Self::cancel) cancelled the task (Python's
    /// `Future.cancelled()`).
    pub fn is_cancelled(&self) -> bool {
        self.slot.is_cancelled()
    }

    /// Returns `true` while a worker has the task and it has not finished (Python's
    /// `Future.running()`); see [`cancel`](Self::cancel) for what counts as started.
    pub fn is_running(&self) -> bool {
        self.slot.is_running()
    }

    /// Returns `true` if the task has finished with an error other than
    /// [`ErrorKind::Cancelled`] (Python's `Future.exception() is not None`), without
    /// taking the result: [`join`](Self::join) still returns it.
    pub fn is_failed(&self) -> bool {
        self.slot.has_failed(chunk_failed::<R>)
    }

    /// Calls `f` once the task has finished, however it finished (Python's
    /// `Future.add_done_callback`): at once, on this thread, if it already has;
    /// otherwise on the pool's thread that completes it, so keep `f` short and do not
    /// wait on the pool inside it. A panic in `f` is caught and ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    /// use std::sync::mpsc;
    ///
    /// fn inc(x: u8) -> u8 {
    ///     x + 1
    /// }
    ///
    /// let pool = Pool::threads(1)?;
    /// let h = pool.submit(inc, 1);
    /// let (tx, rx) = mpsc::channel();
    /// h.add_done_callback(move || tx.send("done").unwrap());
    /// assert_eq!(rx.recv().unwrap(), "done");
    /// assert_eq!(h.join()?, 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn add_done_callback<C>(&self, f: C)
    where
        C: FnOnce() + Send + 'static,
    {
        self.slot.on_done(Box::new(f));
    }
}

impl<R: Send + 'static> Future for TaskHandle<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        self.slot.poll_take(cx).map(single)
    }
}
