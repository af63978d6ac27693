//! [`Slot`]: where a backend leaves the outcome of one unit of work (one task, or one
//! chunk of a `map`), and how threads, futures, callbacks and `wait` learn of it.
//!
//! # Protocol
//!
//! A backend completes a slot exactly once: the first of `deliver`/`deliver_raw`/`fail`
//! (or a successful `cancel`) wins and later calls are ignored (a timed-out thread task
//! that finishes late, say). The slot's [`Phase`] moves forward only:
//!
//! | phase | entered by | `cancel` | `is_running` |
//! |---|---|---|---|
//! | `Queued` | `Slot::new` | wins | no |
//! | `Running` | `Completion::try_start` (a worker is handed the task) | fails | yes |
//! | `Completing` | the first completion (its callback may still run) | fails (`true` if it was the cancel) | no |
//! | `Done` | the value is stored, `done` is set, waiters are woken | as above | no |
//! | `Taken` | `take` (a second `take` is `AlreadyJoined`) | as above | no |
//!
//! # Memory ordering
//!
//! The phase lives under the slot's mutex; `done` is a flag beside it for waiters that
//! spin. The value is stored and the phase set to `Done` under the mutex, and `done` is
//! stored with `Release` before the mutex is released; a reader that loads `done` with
//! `Acquire` and sees `true` then takes the value under the same mutex (the mutex alone
//! would order it; `Acquire` makes a `true` seen outside the mutex mean the value is
//! there). A waiter registers itself under the mutex after checking `done` *there*, so
//! a completion either sees the waiter in the list it takes (and wakes it) or stored
//! `done` before the waiter's check: no wake-up is lost. `loom_slot` in this module's
//! tests models it.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

// The protocol's primitives, modelled by loom under `cfg(loom)` (`loom_slot`).
#[cfg(loom)]
use loom::{
    sync::atomic::AtomicBool,
    sync::{Mutex, MutexGuard},
    thread::{self, Thread},
};
#[cfg(not(loom))]
use std::{
    sync::atomic::AtomicBool,
    sync::{Mutex, MutexGuard},
    thread::{self, Thread},
};

use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind, Result};

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
    phase: Phase<T>,
    waiters: Vec<Waiter>,
    callback: Option<Callback<T>>,
    decode: Decode<T>,
}

/// Where a slot is in its life (see the [module docs](self) for the table).
enum Phase<T> {
    /// Submitted; no worker has it yet: a `cancel` still wins.
    Queued,
    /// A worker has been handed the task: it can no longer be cancelled.
    Running,
    /// A completion has begun (its callback may still run); later ones are ignored.
    /// `cancelled`: the completion was a successful [`Slot::cancel`].
    Completing { cancelled: bool },
    /// The value is stored and `done` is set.
    Done { value: Stored<T>, cancelled: bool },
    /// The value was taken.
    Taken { cancelled: bool },
}

impl<T> Phase<T> {
    /// A completion has begun (or finished).
    fn claimed(&self) -> bool {
        !matches!(self, Phase::Queued | Phase::Running)
    }

    /// The completion was a successful cancel.
    fn cancelled(&self) -> bool {
        match self {
            Phase::Queued | Phase::Running => false,
            Phase::Completing { cancelled }
            | Phase::Done { cancelled, .. }
            | Phase::Taken { cancelled } => *cancelled,
        }
    }

    /// Moves to `Completing` unless a completion came first; returns whether this one won.
    fn claim(&mut self, cancelled: bool) -> bool {
        if self.claimed() {
            return false;
        }
        *self = Phase::Completing { cancelled };
        true
    }
}

/// What [`Slot::take_encoded`] hands over.
pub(crate) enum Taken<T> {
    /// The value (or the failure).
    Value(Result<T>),
    /// The bytes and descriptors a worker process sent, not decoded, and the
    /// slot's own decoder for them.
    Encoded(Vec<u8>, Vec<OwnedFd>, Decode<T>),
}

enum Stored<T> {
    Value(Result<T>),
    Raw(Vec<u8>, Vec<OwnedFd>),
}

enum Waiter {
    Thread(Thread),
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

impl<T> Slot<T> {
    /// Whether the value is stored (`Acquire`: see the module docs).
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
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
                phase: Phase::Queued,
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
            if !g.phase.claim(false) {
                return false;
            }
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
            let cancelled = g.phase.cancelled();
            debug_assert!(matches!(g.phase, Phase::Completing { .. }));
            g.phase = Phase::Done {
                value: v,
                cancelled,
            };
            self.done.store(true, Ordering::Release);
            std::mem::take(&mut g.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// Completes with `Cancelled` unless the task has started or finished; `true` if
    /// it is cancelled (now or by an earlier call).
    pub(super) fn cancel(&self) -> bool {
        let callback = {
            let mut g = lock(&self.inner);
            match g.phase {
                Phase::Queued => {}
                ref p => return p.cancelled(),
            }
            g.phase = Phase::Completing { cancelled: true };
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

    /// Whether a successful [`cancel`](Self::cancel) completed the slot.
    pub(super) fn is_cancelled(&self) -> bool {
        lock(&self.inner).phase.cancelled()
    }

    /// Whether a worker has the task and no completion has begun.
    pub(super) fn is_running(&self) -> bool {
        matches!(lock(&self.inner).phase, Phase::Running)
    }

    /// Returns `true` if the slot is done with a failure that `failed` recognizes
    /// (a value that arrived as bytes is decoded in place to look). A cancellation
    /// and a taken value do not count.
    pub(super) fn has_failed(&self, failed: fn(&Result<T>) -> bool) -> bool {
        let mut g = lock(&self.inner);
        let decode = g.decode;
        let Phase::Done {
            value,
            cancelled: false,
        } = &mut g.phase
        else {
            return false;
        };
        if let Stored::Raw(bytes, fds) = value {
            let v = decode_caught(decode, bytes, std::mem::take(fds));
            *value = Stored::Value(v);
        }
        match value {
            Stored::Value(r) => failed(r),
            Stored::Raw(..) => false,
        }
    }

    /// Takes the value once done; `AlreadyJoined` the second time.
    pub(super) fn take(&self) -> Result<T> {
        match self.take_encoded() {
            Taken::Value(r) => r,
            Taken::Encoded(bytes, fds, decode) => decode_caught(decode, &bytes, fds),
        }
    }

    /// Takes the value once done, as [`take`](Self::take), but a value that a worker
    /// process sent and nobody decoded yet comes as its bytes, for a caller that
    /// decodes it its own way (`map` decodes a chunk's values straight into its list).
    pub(super) fn take_encoded(&self) -> Taken<T> {
        let mut g = lock(&self.inner);
        let decode = g.decode;
        let cancelled = g.phase.cancelled();
        let v = match std::mem::replace(&mut g.phase, Phase::Taken { cancelled }) {
            Phase::Done { value, .. } => value,
            Phase::Taken { .. } => return Taken::Value(Err(Error::new(ErrorKind::AlreadyJoined))),
            other => {
                g.phase = other;
                unreachable!("a slot's value is taken only once it is done")
            }
        };
        drop(g);
        match v {
            Stored::Value(r) => Taken::Value(r),
            Stored::Raw(bytes, fds) => Taken::Encoded(bytes, fds, decode),
        }
    }

    /// Blocks until done or `deadline`; returns whether it is done.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        if self.is_done() {
            return true;
        }
        // A result that arrives within the spin window costs no cross-CPU wake-up.
        // (Loom models the park/unpark protocol below; a spin timed by the clock
        // would make its runs differ.)
        let backoff = Backoff::new();
        let spinning = Spinning::new(self.driver.as_deref());
        while !cfg!(loom) && backoff.spinning() {
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
                let me = thread::current();
                if !g
                    .waiters
                    .iter()
                    .any(|w| matches!(w, Waiter::Thread(t) if t.id() == me.id()))
                {
                    g.waiters.push(Waiter::Thread(me));
                }
            }
            match deadline {
                None => thread::park(),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return self.is_done();
                    }
                    park_timeout(left);
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
        match g.phase {
            Phase::Queued | Phase::Running => {
                g.phase = Phase::Running;
                true
            }
            _ => false,
        }
    }

    fn deliver_raw(&self, bytes: Vec<u8>, fds: Vec<OwnedFd>) {
        let (callback, decode) = {
            let mut g = lock(&self.inner);
            if !g.phase.claim(false) {
                return;
            }
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
pub(super) fn decode_caught<T>(decode: Decode<T>, bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    crate::panic::catch(|| decode(bytes, fds)).unwrap_or_else(|p| Err(Error::from_panic(p)))
}

/// Parks the thread for at most `left` (may return early).
#[cfg(not(loom))]
fn park_timeout(left: std::time::Duration) {
    thread::park_timeout(left);
}

/// Loom has no timed park: the models wait without a deadline, and a model that
/// used one would wait for its wake-up (or show a deadlock).
#[cfg(loom)]
fn park_timeout(_: std::time::Duration) {
    thread::park();
}
