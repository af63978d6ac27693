//! `TaskHandle`: the result of one submitted task, as a blocking handle and a `Future`;
//! `wait` and `as_completed` over many handles (Python's `concurrent.futures`).
//!
//! # Protocol
//!
//! Every unit of work (one task, or one chunk of a `map`) has a [`Slot`]. A backend
//! completes it exactly once: the first of `deliver`/`deliver_raw`/`fail` wins and later
//! calls are ignored (a timed-out thread task that finishes late, say).
//!
//! `done` is set with `Release` after the value is stored under the slot's mutex; a
//! reader that sees it with `Acquire` then takes the value under the same mutex. A
//! waiter registers itself under the mutex after checking `done` there, so a
//! completion either sees the waiter (and wakes it) or happened before the check.

use std::fmt;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::process::chunk::ChunkOut;

/// A decoder for a value that arrived as bytes from a worker process.
pub(crate) type Decode<T> = fn(&[u8], Vec<OwnedFd>) -> Result<T>;

/// A callback run when a task completes: it gets the outcome and hands it back (so
/// that a typed wrapper can show the user a `&Result<R>`).
pub(crate) type Callback<T> = Box<dyn FnOnce(Result<T>) -> Result<T> + Send>;

/// Something a waiter can poke to make progress itself instead of waiting for a
/// wake-up (the process backend's manager).
pub(crate) trait Drive: Send + Sync {
    /// Does whatever non-blocking work is available, unless another thread is at it.
    fn try_progress(&self);
    /// A waiter starts (`true`) or stops (`false`) spinning on `try_progress`.
    fn spinning(&self, yes: bool);
}

/// Counts a waiter as spinning on a driver for as long as it lives.
struct Spinning<'a>(Option<&'a dyn Drive>);

impl<'a> Spinning<'a> {
    fn new(d: Option<&'a dyn Drive>) -> Self {
        if let Some(d) = d {
            d.spinning(true);
        }
        Spinning(d)
    }
}

impl Drop for Spinning<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.0 {
            d.spinning(false);
        }
    }
}

/// Where a backend leaves the outcome of one unit of work.
pub(crate) struct Slot<T> {
    done: AtomicBool,
    inner: Mutex<Inner<T>>,
    driver: Option<Arc<dyn Drive>>,
}

struct Inner<T> {
    value: Option<Stored<T>>,
    /// A completion has begun (its callback may still run); later ones are ignored.
    claimed: bool,
    /// A worker has been handed the task: it can no longer be cancelled.
    started: bool,
    /// The completion was a successful [`TaskHandle::cancel`].
    cancelled: bool,
    taken: bool,
    waiters: Vec<Waiter>,
    callback: Option<Callback<T>>,
    decode: Decode<T>,
}

enum Stored<T> {
    Value(Result<T>),
    Raw(Vec<u8>, Vec<OwnedFd>),
}

enum Waiter {
    Thread(std::thread::Thread),
    Waker(Waker),
    Chan(mpsc::Sender<usize>, usize),
    /// A user's done-callback; a panic in it is caught and ignored.
    Call(Box<dyn FnOnce() + Send>),
}

impl Waiter {
    fn wake(self) {
        match self {
            Waiter::Thread(t) => t.unpark(),
            Waiter::Waker(w) => w.wake(),
            Waiter::Chan(tx, i) => {
                let _ = tx.send(i);
            }
            Waiter::Call(f) => {
                let _ = crate::panic::catch(f);
            }
        }
    }
}

/// The type-erased side of a slot that backends complete.
pub(crate) trait Completion: Send + Sync {
    /// Completes with an error (worker died, timeout, pool terminated).
    fn fail(&self, e: Error);
    /// Completes with the encoded value a worker process sent.
    fn deliver_raw(&self, bytes: Vec<u8>, fds: Vec<OwnedFd>);
    /// Called by a backend just before it hands the task to a worker: marks the task
    /// as started, so that from now on [`TaskHandle::cancel`] fails, and returns
    /// `true` (Python's `Future.set_running_or_notify_cancel`). Returns `false` if a
    /// completion has begun already (the task was cancelled, say): the backend skips
    /// the task.
    fn try_start(&self) -> bool;
    /// Whether the task, already started, is no longer wanted: a backend that can stop
    /// it (the process pool kills the worker running it) does so and fails it with
    /// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled). Polled by the backend
    /// (the process pool's manager looks at least every 100 ms). Default: never.
    fn abandoned(&self) -> bool {
        false
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code that holds these locks can panic except a user callback, which runs
    // outside them; recover anyway rather than propagate a poison.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Send + 'static> Slot<T> {
    pub(crate) fn new(
        decode: Decode<T>,
        callback: Option<Callback<T>>,
        driver: Option<Arc<dyn Drive>>,
    ) -> Arc<Slot<T>> {
        Arc::new(Slot {
            done: AtomicBool::new(false),
            driver,
            inner: Mutex::new(Inner {
                value: None,
                claimed: false,
                started: false,
                cancelled: false,
                taken: false,
                waiters: Vec::new(),
                callback,
                decode,
            }),
        })
    }

    /// Completes with a value (first completion wins).
    pub(crate) fn deliver(&self, r: Result<T>) {
        self.try_deliver(r);
    }

    /// Completes with a value unless another completion came first; returns whether
    /// this one won.
    fn try_deliver(&self, r: Result<T>) -> bool {
        let callback = {
            let mut g = lock(&self.inner);
            if g.claimed {
                return false;
            }
            g.claimed = true;
            g.callback.take()
        };
        // The callback sees the value before any waiter does (Python's order).
        let r = match callback {
            Some(cb) => cb(r),
            None => r,
        };
        self.store(Stored::Value(r));
        true
    }

    /// Stores the value of the completion that claimed the slot and wakes the waiters.
    fn store(&self, v: Stored<T>) {
        let waiters = {
            let mut g = lock(&self.inner);
            g.value = Some(v);
            self.done.store(true, Ordering::Release);
            std::mem::take(&mut g.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Completes with `Cancelled` unless the task has started or finished; `true` if
    /// it is cancelled (now or by an earlier call).
    fn cancel(&self) -> bool {
        let callback = {
            let mut g = lock(&self.inner);
            if g.cancelled {
                return true;
            }
            if g.claimed || g.started {
                return false;
            }
            g.claimed = true;
            g.cancelled = true;
            g.callback.take()
        };
        let r = Err(Error::new(ErrorKind::Cancelled).with_message("cancelled through its handle"));
        let r = match callback {
            Some(cb) => cb(r),
            None => r,
        };
        self.store(Stored::Value(r));
        true
    }

    /// `(started, cancelled)`, and whether a completion has begun.
    fn flags(&self) -> (bool, bool, bool) {
        let g = lock(&self.inner);
        (g.started, g.cancelled, g.claimed)
    }

    /// Returns `true` if the slot is done with a failure that `failed` recognizes
    /// (a value that arrived as bytes is decoded in place to look). A cancellation
    /// and a taken value do not count.
    fn has_failed(&self, failed: fn(&Result<T>) -> bool) -> bool {
        let mut g = lock(&self.inner);
        if !self.done.load(Ordering::Acquire) || g.cancelled {
            return false;
        }
        if matches!(g.value, Some(Stored::Raw(..))) {
            if let Some(Stored::Raw(bytes, fds)) = g.value.take() {
                let v = decode_caught(g.decode, &bytes, fds);
                g.value = Some(Stored::Value(v));
            }
        }
        match &g.value {
            Some(Stored::Value(r)) => failed(r),
            _ => false,
        }
    }

    /// Takes the value once done; `AlreadyJoined` the second time.
    pub(super) fn take(&self) -> Result<T> {
        let mut g = lock(&self.inner);
        if g.taken {
            return Err(Error::new(ErrorKind::AlreadyJoined));
        }
        let decode = g.decode;
        let v = g.value.take().expect("taken only when done");
        g.taken = true;
        drop(g);
        match v {
            Stored::Value(r) => r,
            Stored::Raw(bytes, fds) => decode_caught(decode, &bytes, fds),
        }
    }

    /// Blocks until done or `deadline`; returns whether it is done.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        if self.is_done() {
            return true;
        }
        // A result that arrives within the spin window costs no cross-CPU wake-up.
        let backoff = Backoff::new();
        let spinning = Spinning::new(self.driver.as_deref());
        while backoff.spinning() {
            match &self.driver {
                Some(d) => d.try_progress(),
                None => {
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                }
            }
            // On a busy machine a spinner must not keep the thread it waits for off
            // the CPU; on an idle one this returns at once.
            std::thread::yield_now();
            if self.is_done() {
                return true;
            }
        }
        drop(spinning);
        loop {
            {
                let mut g = lock(&self.inner);
                if self.done.load(Ordering::Acquire) {
                    return true;
                }
                let me = std::thread::current();
                if !g
                    .waiters
                    .iter()
                    .any(|w| matches!(w, Waiter::Thread(t) if t.id() == me.id()))
                {
                    g.waiters.push(Waiter::Thread(me));
                }
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return self.is_done();
                    }
                    std::thread::park_timeout(left);
                }
            }
            if self.is_done() {
                return true;
            }
        }
    }

    /// Waits, then takes the value.
    pub(crate) fn join(&self) -> Result<T> {
        self.wait_until(None);
        self.take()
    }

    /// Sends `index` on `tx` once done (at once if it already is).
    pub(crate) fn notify_on(&self, tx: mpsc::Sender<usize>, index: usize) {
        let mut g = lock(&self.inner);
        if self.done.load(Ordering::Acquire) {
            drop(g);
            let _ = tx.send(index);
        } else {
            g.waiters.push(Waiter::Chan(tx, index));
        }
    }

    /// Runs `f` once done: at once on this thread if it already is.
    pub(super) fn on_done(&self, f: Box<dyn FnOnce() + Send>) {
        let mut g = lock(&self.inner);
        if self.done.load(Ordering::Acquire) {
            drop(g);
            Waiter::Call(f).wake();
        } else {
            g.waiters.push(Waiter::Call(f));
        }
    }

    pub(super) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        {
            let mut g = lock(&self.inner);
            if !self.done.load(Ordering::Acquire) {
                if !g
                    .waiters
                    .iter()
                    .any(|w| matches!(w, Waiter::Waker(k) if k.will_wake(cx.waker())))
                {
                    g.waiters.push(Waiter::Waker(cx.waker().clone()));
                }
                return Poll::Pending;
            }
        }
        Poll::Ready(self.take())
    }
}

impl<T: Send + 'static> Completion for Slot<T> {
    fn fail(&self, e: Error) {
        self.deliver(Err(e));
    }

    fn try_start(&self) -> bool {
        if self.is_done() {
            return false;
        }
        let mut g = lock(&self.inner);
        if g.claimed {
            return false;
        }
        g.started = true;
        true
    }

    fn deliver_raw(&self, bytes: Vec<u8>, fds: Vec<OwnedFd>) {
        let (callback, decode) = {
            let mut g = lock(&self.inner);
            if g.claimed {
                return;
            }
            g.claimed = true;
            (g.callback.take(), g.decode)
        };
        match callback {
            // A callback needs the value now, on this (the pool's) thread.
            Some(cb) => {
                let r = cb(decode_caught(decode, &bytes, fds));
                self.store(Stored::Value(r));
            }
            // Otherwise the waiter decodes it, off the pool's I/O thread.
            None => self.store(Stored::Raw(bytes, fds)),
        }
    }
}

/// Decodes a worker's answer; a `Deserialize` that panics is the task's panic, so it
/// neither ends the pool's own thread (which decodes for callbacks) nor escapes a
/// waiter's `join` as an unwinding.
fn decode_caught<T>(decode: Decode<T>, bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    crate::panic::catch(|| decode(bytes, fds)).unwrap_or_else(|p| Err(Error::from_panic(p)))
}

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
            if panics.is_empty() {
                return values.into_iter().map(Ok).collect();
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
    slot: Arc<Slot<ChunkOut<R>>>,
}

impl<R> fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("done", &self.slot.done.load(Ordering::Relaxed))
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
        self.slot.flags().1
    }

    /// Returns `true` while a worker has the task and it has not finished (Python's
    /// `Future.running()`); see [`cancel`](Self::cancel) for what counts as started.
    pub fn is_running(&self) -> bool {
        let (started, _, claimed) = self.slot.flags();
        started && !claimed
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
