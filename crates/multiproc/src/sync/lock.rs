//! [`Lock`]: a mutual-exclusion lock in shared memory that survives a holder's death.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::owner_died::{LockResult, OwnerDied, TryLockError, TryLockResult};
use super::primitive::fork_generation;
use super::robust::{Acquired, RawLock};
use crate::error::Result;
use crate::shm::Shared;

/// A lock shared by threads and processes, which tells the next locker when a
/// holder died while holding it.
///
/// This is Python's `multiprocessing.Lock` with Rust's guard discipline: `lock()`
/// returns a [`LockGuard`] and the lock is released when the guard is dropped. It
/// lives in shared memory (a 16-byte slot of a page-sized `memfd` segment shared with
/// other small objects created by the same thread); clones share it, and passing it to
/// [`Process::start_with`](crate::Process::start_with) shares it with the child
/// (by every start method).
///
/// If the holder dies — its process is killed or aborts, its thread exits with the
/// guard leaked, or it panics while holding the guard — the next locker gets
/// [`OwnerDied`] carrying the guard: it holds the lock and may repair the protected
/// data (Python's lock would hang forever here, CPython gh-88304). A waiter notices
/// a death within about 50 ms; see the `robust` module notes below.
///
/// # Differences from `std::sync::Mutex`
///
/// The lock protects no data of its own (the data lives in shared memory, for
/// example in a [`SharedMemory`](crate::SharedMemory)); there is no lasting poison, only a one-time
/// [`OwnerDied`] report; and locking twice from the same thread panics instead of
/// deadlocking.
///
/// # Differences from Python's `Lock`
///
/// Python lets any thread `release()` a `Lock`; here only the guard releases it, so
/// the holder is always known (that is what makes death detection possible). Use a
/// [`Semaphore`](crate::Semaphore) of one for a hand-off between threads.
///
/// # State
///
/// One futex word and one side word, in shared memory:
///
/// | `state`            | meaning                                                  |
/// |--------------------|----------------------------------------------------------|
/// | `0`                | unlocked                                                 |
/// | `OWNER_DIED`       | unlocked; the last holder died: the next locker is told  |
/// | `tid`              | held by kernel thread `tid`, no waiter has slept         |
/// | `tid \| WAITERS`   | held by `tid`; a waiter may sleep, so unlock wakes one   |
///
/// The side word holds the holder thread's start time (`0` while unlocked), so a
/// reused thread id is not mistaken for the dead holder. Waiters sleep on the futex
/// for at most 50 ms at a time; after each timeout they check that the holder
/// thread still exists via `/proc/<tid>/stat`. Detection needs every process in the
/// same pid namespace and a mounted `/proc` (without it, nobody is ever declared
/// dead). The kernel's robust-futex list is deliberately not used: it belongs to
/// glibc, and taking it over would break `pthread` robust mutexes in the process.
///
/// # Memory ordering
///
/// A successful lock *acquires* the word and an unlock *releases* it: everything
/// written while holding the lock, in any process, is visible to the next holder.
///
/// # Performance
///
/// Uncontended lock + unlock is one compare-and-swap, one swap and two plain stores
/// (no syscall). Under contention a locker spins briefly, then sleeps on the futex;
/// an unlock calls `FUTEX_WAKE` only when a waiter has announced itself.
///
/// # Examples
///
/// ```
/// use multiproc::{Lock, Process};
///
/// fn work(lock: Lock) -> bool {
///     let _guard = lock.lock().unwrap();
///     true
/// }
///
/// let lock = Lock::new()?;
/// let child = Process::start_with(work, lock.clone())?;
/// assert!(child.join()?);
/// assert!(!lock.is_locked());
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lock {
    raw: Shared<RawLock>,
}

/// Proof that the current thread holds a [`Lock`]; dropping it unlocks.
///
/// Not `Send`: the lock belongs to the thread that took it. A copy of a guard that
/// a forked child inherited releases nothing when dropped there.
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// let lock = multiproc::Lock::new().unwrap();
/// assert_send(lock.lock().unwrap()); // error: `*const ()` cannot be sent between threads
/// ```
#[must_use = "if unused the Lock will immediately unlock"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    /// [`fork_generation`] when locked: a copy of the guard in a forked child sees
    /// another value and releases nothing.
    generation: u32,
    _not_send: PhantomData<*const ()>,
}

impl Lock {
    /// Creates an unlocked lock in shared memory.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) if the segment cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// assert!(!lock.is_locked());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            raw: Shared::new()?,
        })
    }

    /// A lock with a cache line of its own (see `Shared::new_isolated`), for locks
    /// that two processes take at a high rate side by side (a queue's two sides).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn new_isolated() -> Result<Lock> {
        Ok(Lock {
            raw: Shared::new_isolated()?,
        })
    }

    fn guard(&self, how: Acquired) -> LockResult<LockGuard<'_>> {
        let guard = LockGuard {
            lock: self,
            generation: fork_generation(),
            _not_send: PhantomData,
        };
        match how {
            Acquired::Clean => Ok(guard),
            Acquired::OwnerDied => Err(OwnerDied::new(guard)),
        }
    }

    /// Blocks until the lock is acquired.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (which holds the guard) if the previous holder died holding the
    /// lock.
    ///
    /// # Panics
    ///
    /// Panics if the calling thread already holds the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// let guard = lock.lock().unwrap();
    /// assert!(lock.is_locked());
    /// drop(guard);
    /// assert!(!lock.is_locked());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        let how = self.raw.lock(None).expect("no deadline");
        self.guard(how)
    }

    /// Acquires the lock if it is free (or its holder is dead), without blocking.
    ///
    /// Checking a holder's liveness reads `/proc`, so a failed `try_lock` does it at
    /// most once per 50 ms per thread: a `try_lock` loop stays cheap and still
    /// learns of a death within about 50 ms.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if a live thread holds it,
    /// [`TryLockError::OwnerDied`] (with the guard) if its holder died.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// let g = lock.try_lock().unwrap();
    /// assert!(lock.try_lock().unwrap_err().is_would_block());
    /// drop(g);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
        match self.raw.try_lock() {
            Some(how) => self.guard(how).map_err(TryLockError::from),
            None => Err(TryLockError::WouldBlock),
        }
    }

    /// Blocks for at most `timeout` to acquire the lock.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it is still held at the deadline,
    /// [`TryLockError::OwnerDied`] (with the guard) if its holder died.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lock = multiproc::Lock::new()?;
    /// let _g = lock.lock().unwrap();
    /// assert!(lock.lock_timeout(Duration::from_millis(1)).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        match RawLock::deadline(timeout) {
            Some(deadline) => match self.raw.lock(Some(deadline)) {
                Some(how) => self.guard(how).map_err(TryLockError::from),
                None => Err(TryLockError::WouldBlock),
            },
            None => self.lock().map_err(TryLockError::from),
        }
    }

    /// Whether `self` and `other` are the same lock (mapped at one address here).
    pub(crate) fn same_as(&self, other: &Lock) -> bool {
        std::ptr::eq::<RawLock>(&*self.raw, &*other.raw)
    }

    /// Whether some thread (in any process) holds the lock: a snapshot that may be
    /// stale by the time it is read.
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }
}

impl<'a> LockGuard<'a> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &'a Lock {
        self.lock
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // A copy of the guard in a forked child (not the owner) releases nothing.
        if self.generation == fork_generation() {
            self.lock.raw.unlock(std::thread::panicking());
        }
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .finish()
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
