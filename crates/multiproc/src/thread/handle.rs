//! `Thread`: start, join, join_timeout, is_alive, name, native id.

use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::builder::Builder;
use crate::error::{Error, ErrorKind, RemotePanic, Result};

/// Where the thread leaves its outcome; `join_timeout` sleeps on `cond`.
pub(super) struct Packet<T> {
    native_id: AtomicI32,
    state: Mutex<Outcome<T>>,
    cond: Condvar,
}

struct Outcome<T> {
    result: Option<std::result::Result<T, RemotePanic>>,
    done: bool,
    /// Threads inside `join_timeout`: `finish` only pays for a wake-up when one waits.
    sleepers: usize,
}

impl<T> Packet<T> {
    pub(super) fn new() -> Self {
        Packet {
            native_id: AtomicI32::new(0),
            state: Mutex::new(Outcome {
                result: None,
                done: false,
                sleepers: 0,
            }),
            cond: Condvar::new(),
        }
    }

    pub(super) fn set_native_id(&self, tid: i32) {
        self.native_id.store(tid, Ordering::Relaxed);
    }

    pub(super) fn finish(&self, r: std::result::Result<T, RemotePanic>) {
        let mut st = lock(&self.state);
        st.result = Some(r);
        st.done = true;
        let wake = st.sleepers > 0;
        drop(st);
        if wake {
            self.cond.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The closures that hold these locks cannot panic, so poisoning cannot happen;
    // recover anyway rather than propagate a panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A thread running a closure, with the same shape as [`Process`](crate::Process).
///
/// Dropping a `Thread` detaches it, as with [`std::thread::JoinHandle`].
///
/// # Examples
///
/// ```
/// use multiproc::Thread;
/// use std::time::Duration;
///
/// let mut t = Thread::start(|| {
///     std::thread::sleep(Duration::from_millis(50));
///     "done"
/// })?;
/// assert!(t.join_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
/// assert_eq!(t.join()?, "done");
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Thread<T> {
    handle: Option<JoinHandle<()>>,
    packet: Arc<Packet<T>>,
    name: Option<String>,
}

impl<T> fmt::Debug for Thread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thread")
            .field("name", &self.name)
            .field("native_id", &self.native_id())
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl<T: Send + 'static> Thread<T> {
    /// Starts an unnamed thread running `f` (shorthand for `Builder::new().start(f)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if the OS refuses to create a thread.
    pub fn start<F>(f: F) -> Result<Thread<T>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        Builder::new().start(f)
    }

    /// Starts a thread running `f(arg)`: the same call shape as
    /// [`Process::start_with`](crate::Process::start_with).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if the OS refuses to create a thread.
    pub fn start_with<F, A>(f: F, arg: A) -> Result<Thread<T>>
    where
        F: FnOnce(A) -> T + Send + 'static,
        A: Send + 'static,
    {
        Builder::new().start(move || f(arg))
    }
}

impl Thread<()> {
    /// Returns a [`Builder`] to name the thread or set its stack size.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<T> Thread<T> {
    pub(super) fn new(
        handle: JoinHandle<()>,
        packet: Arc<Packet<T>>,
        name: Option<String>,
    ) -> Self {
        Thread {
            handle: Some(handle),
            packet,
            name,
        }
    }

    /// The thread's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The kernel's thread id (`gettid`), once the thread has begun running.
    pub fn native_id(&self) -> Option<i32> {
        match self.packet.native_id.load(Ordering::Relaxed) {
            0 => None,
            tid => Some(tid),
        }
    }

    /// Returns `true` until the closure has returned or panicked.
    pub fn is_alive(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Waits for the thread to finish and returns the closure's value.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Panicked`] with the panic's message and location if the closure
    /// panicked; [`ErrorKind::AlreadyJoined`] if an earlier `join_timeout` took the result;
    /// [`ErrorKind::InvalidInput`] if called on the thread itself (which would wait
    /// forever; Python raises `RuntimeError`), and then the thread is detached.
    pub fn join(mut self) -> Result<T> {
        self.refuse_self_join()?;
        self.take_result()
    }

    /// Waits at most `timeout` for the thread to finish.
    ///
    /// On [`ErrorKind::Timeout`] the thread keeps running and the handle stays
    /// usable: call `join` or `join_timeout` again later.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join), plus [`ErrorKind::Timeout`].
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.refuse_self_join()?;
        let deadline = Instant::now().checked_add(timeout);
        let mut st = lock(&self.packet.state);
        while !st.done {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Err(Error::new(ErrorKind::Timeout));
            }
            st.sleepers += 1;
            st = self
                .packet
                .cond
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.sleepers -= 1;
        }
        drop(st);
        self.take_result()
    }

    fn refuse_self_join(&self) -> Result<()> {
        match &self.handle {
            Some(h) if h.thread().id() == std::thread::current().id() => {
                Err(Error::new(ErrorKind::InvalidInput).with_message("a thread cannot join itself"))
            }
            _ => Ok(()),
        }
    }

    fn take_result(&mut self) -> Result<T> {
        let Some(handle) = self.handle.take() else {
            return Err(Error::new(ErrorKind::AlreadyJoined));
        };
        // The closure's panics are caught inside the thread, so `join` only fails if
        // the packet's own code panicked, which it does not.
        let _ = handle.join();
        match lock(&self.packet.state).result.take() {
            Some(Ok(v)) => Ok(v),
            Some(Err(p)) => Err(Error::from_panic(p)),
            None => {
                Err(Error::new(ErrorKind::Disconnected)
                    .with_message("thread ended without a result"))
            }
        }
    }
}
