//! The synchronization proxies: [`Lock`], [`RLock`], [`Semaphore`], [`Event`],
//! [`Condition`] and [`Barrier`].
//!
//! Each blocking method has the crate's three forms: `x` waits, `x_timeout` waits at
//! most a duration, `try_x` does not wait. A process that dies holding a manager
//! lock (its last connection to the server closes) has its locks released by the
//! server, so nobody waits for ever on a dead holder; a semaphore has no owner and
//! is not given back.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::proxy::{boolean, length, proxy_impls, unit};
use super::session::{owner, Handle};
use super::wire::{Op, Wait};
use crate::error::Result;

/// The shared body of the lock-like proxies.
fn acquire(handle: &Handle, wait: Wait) -> Result<bool> {
    boolean(handle.call(Op::Acquire(owner(), wait))?)
}

fn release(handle: &Handle) -> Result<()> {
    unit(handle.call(Op::Release(owner()))?)
}

macro_rules! lock_methods {
    ($guard:ident) => {
        /// Acquires, waiting as long as it takes.
        ///
        /// # Errors
        ///
        /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the server
        /// is gone (also while waiting).
        pub fn acquire(&self) -> Result<()> {
            acquire(&self.handle, Wait::Forever).map(drop)
        }

        /// Acquires, waiting at most `timeout`; `false` if it could not.
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire).
        pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
            acquire(&self.handle, Wait::For(timeout))
        }

        /// Acquires if that needs no wait; `false` otherwise.
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire).
        pub fn try_acquire(&self) -> Result<bool> {
            acquire(&self.handle, Wait::No)
        }

        /// Acquires and returns a guard that releases on drop (Python's `with`).
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire).
        pub fn lock(&self) -> Result<$guard<'_>> {
            self.acquire()?;
            Ok($guard { lock: self })
        }
    };
}

macro_rules! guard {
    ($guard:ident, $lock:ident) => {
        #[doc = concat!("Holds a [`", stringify!($lock), "`]; releases it when dropped.")]
        ///
        /// The release on drop is best effort: if the server is gone, there is nothing
        /// left to release. Call [`unlock`](Self::unlock) to see its error.
        #[must_use = "the lock is released as soon as the guard is dropped"]
        pub struct $guard<'a> {
            lock: &'a $lock,
        }

        impl $guard<'_> {
            /// Releases now, reporting an error.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the
            /// server is gone.
            pub fn unlock(self) -> Result<()> {
                let r = self.lock.release();
                std::mem::forget(self);
                r
            }
        }

        impl Drop for $guard<'_> {
            fn drop(&mut self) {
                let _ = self.lock.release();
            }
        }

        impl fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard)).finish_non_exhaustive()
            }
        }
    };
}

/// A lock held by a manager's server (Python's `manager.Lock()`): not reentrant,
/// and any thread of any process may release it.
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let lock = manager.lock()?;
/// {
///     let _held = lock.lock()?;
///     assert!(!lock.try_acquire()?);
/// }
/// assert!(lock.try_acquire()?);
/// lock.release()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Lock {
    handle: Handle,
}

proxy_impls!(Lock);
guard!(LockGuard, Lock);

impl Lock {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Lock { handle }
    }

    lock_methods!(LockGuard);

    /// Releases the lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotOwner`](crate::ErrorKind::NotOwner) if it is not locked;
    /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the server is gone.
    pub fn release(&self) -> Result<()> {
        release(&self.handle)
    }
}

/// A reentrant lock held by a manager's server (Python's `manager.RLock()`): the
/// thread that holds it may acquire it again, and must release it as many times.
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let lock = manager.rlock()?;
/// let outer = lock.lock()?;
/// let inner = lock.lock()?; // the same thread: no deadlock
/// drop(inner);
/// drop(outer);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct RLock {
    handle: Handle,
}

proxy_impls!(RLock);
guard!(RLockGuard, RLock);

impl RLock {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        RLock { handle }
    }

    lock_methods!(RLockGuard);

    /// Releases one level of the calling thread's hold.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotOwner`](crate::ErrorKind::NotOwner) if this thread does not
    /// hold it; [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the
    /// server is gone.
    pub fn release(&self) -> Result<()> {
        release(&self.handle)
    }
}

/// A counting semaphore held by a manager's server (Python's `manager.Semaphore(n)`
/// and, from [`Manager::bounded_semaphore`](super::Manager::bounded_semaphore),
/// `BoundedSemaphore(n)`).
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let slots = manager.bounded_semaphore(2)?;
/// let _a = slots.lock()?;
/// let _b = slots.lock()?;
/// assert!(!slots.try_acquire()?);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Semaphore {
    handle: Handle,
}

proxy_impls!(Semaphore);
guard!(SemaphoreGuard, Semaphore);

impl Semaphore {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Semaphore { handle }
    }

    lock_methods!(SemaphoreGuard);

    /// Adds one to the count, waking a waiter.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooManyReleases`](crate::ErrorKind::TooManyReleases) for a
    /// bounded semaphore released past its initial value;
    /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the server is gone.
    pub fn release(&self) -> Result<()> {
        release(&self.handle)
    }
}

/// A flag held by a manager's server that threads of any process wait for (Python's
/// `manager.Event()`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let ready = manager.event()?;
/// assert!(!ready.wait_timeout(Duration::from_millis(10))?);
/// ready.set()?;
/// ready.wait()?;
/// assert!(ready.is_set()?);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Event {
    handle: Handle,
}

proxy_impls!(Event);

impl Event {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Event { handle }
    }

    /// Sets the flag, waking every waiter.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the server is gone.
    pub fn set(&self) -> Result<()> {
        unit(self.handle.call(Op::EventSet)?)
    }

    /// Clears the flag.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn clear(&self) -> Result<()> {
        unit(self.handle.call(Op::EventClear)?)
    }

    /// Whether the flag is set.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn is_set(&self) -> Result<bool> {
        boolean(self.handle.call(Op::EventIsSet)?)
    }

    /// Waits until the flag is set.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set) (also while waiting).
    pub fn wait(&self) -> Result<()> {
        boolean(self.handle.call(Op::EventWait(Wait::Forever))?).map(drop)
    }

    /// Waits at most `timeout` for the flag; returns whether it is set.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        boolean(self.handle.call(Op::EventWait(Wait::For(timeout)))?)
    }
}

/// A condition variable with its own reentrant lock, held by a manager's server
/// (Python's `manager.Condition()`).
///
/// As in Python, [`wait`](Self::wait) and [`notify`](Self::notify) require the
/// calling thread to hold the lock ([`acquire`](Self::acquire) or
/// [`lock`](Self::lock)); `wait` releases it while it waits and holds it again when
/// it returns. Spurious wakeups do not happen, but another thread may change the
/// state between the notification and the return: check the predicate in a loop.
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let cond = manager.condition()?;
/// let state = manager.namespace()?;
/// let (c, s) = (cond.clone(), state.clone());
/// let t = std::thread::spawn(move || -> multiproc::Result<()> {
///     let _held = c.lock()?;
///     s.set("ready", &true)?;
///     c.notify_all()
/// });
/// let held = cond.lock()?;
/// while state.get::<bool>("ready")? != Some(true) {
///     cond.wait()?;
/// }
/// drop(held);
/// t.join().unwrap()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Condition {
    handle: Handle,
}

proxy_impls!(Condition);
guard!(ConditionGuard, Condition);

impl Condition {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Condition { handle }
    }

    lock_methods!(ConditionGuard);

    /// Releases one level of the calling thread's hold on the lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotOwner`](crate::ErrorKind::NotOwner) if this thread does not
    /// hold it; [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the
    /// server is gone.
    pub fn release(&self) -> Result<()> {
        release(&self.handle)
    }

    /// Releases the lock, waits for a notification, and takes the lock back.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotOwner`](crate::ErrorKind::NotOwner) if this thread does not
    /// hold the lock; [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if
    /// the server is gone (also while waiting).
    pub fn wait(&self) -> Result<()> {
        boolean(self.handle.call(Op::CondWait(owner(), Wait::Forever))?).map(drop)
    }

    /// As [`wait`](Self::wait), waiting at most `timeout` for the notification (the
    /// lock is taken back either way); returns whether it was notified.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        boolean(
            self.handle
                .call(Op::CondWait(owner(), Wait::For(timeout)))?,
        )
    }

    /// Wakes one waiter.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1)
    }

    /// Wakes up to `n` waiters.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn notify_n(&self, n: usize) -> Result<()> {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        unit(self.handle.call(Op::CondNotify(owner(), n))?)
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn notify_all(&self) -> Result<()> {
        self.notify_n(usize::MAX)
    }
}

/// A barrier for a fixed number of parties, held by a manager's server (Python's
/// `manager.Barrier(n)`).
///
/// A party that times out, or whose process dies while it waits, breaks the barrier:
/// every waiter, and every later [`wait`](Self::wait), gets
/// [`ErrorKind::BrokenBarrier`](crate::ErrorKind::BrokenBarrier).
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let barrier = manager.barrier(2)?;
/// let b = barrier.clone();
/// let t = std::thread::spawn(move || b.wait());
/// let mine = barrier.wait()?;
/// let theirs = t.join().unwrap()?;
/// assert_eq!(mine + theirs, 1); // indexes 0 and 1
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Barrier {
    handle: Handle,
}

proxy_impls!(Barrier);

impl Barrier {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Barrier { handle }
    }

    /// Waits for every party; returns this party's arrival index (0 for the first).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`](crate::ErrorKind::BrokenBarrier) if the barrier
    /// is or becomes broken; [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected)
    /// if the server is gone.
    pub fn wait(&self) -> Result<usize> {
        length(self.handle.call(Op::BarrierWait(Wait::Forever))?)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// As [`wait`](Self::wait), but a wait longer than `timeout` breaks the barrier.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        length(self.handle.call(Op::BarrierWait(Wait::For(timeout)))?)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Breaks the barrier: current and later waiters fail.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the server is gone.
    pub fn abort(&self) -> Result<()> {
        unit(self.handle.call(Op::BarrierAbort)?)
    }

    /// The number of parties waiting now.
    ///
    /// # Errors
    ///
    /// As [`abort`](Self::abort).
    pub fn n_waiting(&self) -> Result<usize> {
        length(self.handle.call(Op::Len)?).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}
