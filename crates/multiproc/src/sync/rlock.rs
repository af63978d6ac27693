//! [`RLock`]: a re-entrant lock in shared memory that survives a holder's death.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::owner_died::{LockResult, OwnerDied, TryLockError, TryLockResult};
use super::primitive::{AtomicU32, Ordering};
use super::robust::{Acquired, RawLock};
use crate::error::{Error, ErrorKind, Result};
use crate::shm::Shared;

/// The shared-memory layout of an [`RLock`]: the robust lock word plus the
/// recursion count, which only the owner thread reads or writes.
#[repr(C)]
#[derive(Debug, Default)]
pub(super) struct RawRLock {
    lock: RawLock,
    count: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawRLock>() == 24);

/// A re-entrant lock shared by threads and processes: the thread that holds it may
/// lock it again, and it is released when every guard is dropped. Python's
/// `multiprocessing.RLock`.
///
/// Like [`Lock`](crate::Lock), a holder's death is reported to the next locker as
/// [`OwnerDied`] carrying the guard (the recursion count starts again at one).
///
/// Only the owner can release: guards are not `Send`, and a guard that reached
/// another thread or process anyway (a forked child inherits its parent's memory)
/// is refused by [`RLockGuard::unlock`] with [`ErrorKind::NotOwner`], and ignored when
/// dropped there.
///
/// # State
///
/// The lock word is [`Lock`](crate::Lock)'s (owner thread id plus `WAITERS`, with
/// the owner's start time in a side word); `count` is the recursion depth, `0` when
/// unlocked. `count` is read and written only by the thread that holds the lock word,
/// so `Relaxed` accesses suffice: the lock word's acquire/release orders them
/// between successive owners.
///
/// # Memory ordering
///
/// As for [`Lock`](crate::Lock): the outermost lock acquires, the outermost unlock
/// releases.
///
/// # Examples
///
/// ```
/// let r = multiproc::RLock::new()?;
/// let a = r.lock().unwrap();
/// let b = r.lock().unwrap(); // the same thread: no deadlock
/// assert_eq!(r.count(), 2);
/// drop(b);
/// drop(a);
/// assert!(!r.is_locked());
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RLock {
    raw: Shared<RawRLock>,
}

/// Proof that the current thread holds an [`RLock`] once; dropping it releases that
/// one level.
#[must_use = "if unused the RLock will immediately unlock"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl RLock {
    /// Creates an unlocked re-entrant lock in shared memory.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the segment cannot be created.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            raw: Shared::new()?,
        })
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// One more level if this thread holds the lock already.
    fn reenter(&self) -> Option<RLockGuard<'_>> {
        if !self.raw.lock.is_owned_by_current_thread() {
            return None;
        }
        let c = self.raw.count.load(Ordering::Relaxed);
        let c = c.checked_add(1).expect("RLock recursion count overflow");
        self.raw.count.store(c, Ordering::Relaxed);
        Some(self.guard())
    }

    fn acquired(&self, how: Acquired) -> LockResult<RLockGuard<'_>> {
        self.raw.count.store(1, Ordering::Relaxed);
        match how {
            Acquired::Clean => Ok(self.guard()),
            Acquired::OwnerDied => Err(OwnerDied::new(self.guard())),
        }
    }

    /// Blocks until this thread holds the lock (at once if it already does).
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (which holds the guard) if the previous holder died holding it.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = multiproc::RLock::new()?;
    /// let _g = r.lock().unwrap();
    /// assert!(r.is_owned());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        if let Some(g) = self.reenter() {
            return Ok(g);
        }
        let how = self.raw.lock.lock(None).expect("no deadline");
        self.acquired(how)
    }

    /// Acquires the lock if it is free, held by this thread, or its holder is dead.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if another live thread holds it,
    /// [`TryLockError::OwnerDied`] (with the guard) if its holder died.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = multiproc::RLock::new()?;
    /// let _a = r.try_lock().unwrap();
    /// let _b = r.try_lock().unwrap();
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_lock(&self) -> TryLockResult<RLockGuard<'_>> {
        if let Some(g) = self.reenter() {
            return Ok(g);
        }
        match self.raw.lock.try_lock() {
            Some(how) => self.acquired(how).map_err(TryLockError::from),
            None => Err(TryLockError::WouldBlock),
        }
    }

    /// Blocks for at most `timeout` to acquire the lock.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if another thread still holds it at the deadline,
    /// [`TryLockError::OwnerDied`] (with the guard) if its holder died.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<RLockGuard<'_>> {
        if let Some(g) = self.reenter() {
            return Ok(g);
        }
        match RawLock::deadline(timeout) {
            Some(d) => match self.raw.lock.lock(Some(d)) {
                Some(how) => self.acquired(how).map_err(TryLockError::from),
                None => Err(TryLockError::WouldBlock),
            },
            None => self.lock().map_err(TryLockError::from),
        }
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.raw.lock.is_owned_by_current_thread()
    }

    /// Whether some thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.lock.is_locked()
    }

    /// How many times the calling thread holds the lock (`0` if it does not).
    pub fn count(&self) -> u32 {
        if self.is_owned() {
            self.raw.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    fn release(&self) -> Result<()> {
        if !self.is_owned() {
            return Err(Error::new(ErrorKind::NotOwner));
        }
        let c = self.raw.count.load(Ordering::Relaxed);
        if c <= 1 {
            self.raw.count.store(0, Ordering::Relaxed);
            self.raw.lock.unlock(std::thread::panicking());
        } else {
            self.raw.count.store(c - 1, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl RLockGuard<'_> {
    /// Releases this level of the lock, reporting a release by a thread that does
    /// not own it (possible only for a guard inherited across a fork).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotOwner`] if the calling thread does not hold the lock; the lock
    /// is left as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = multiproc::RLock::new()?;
    /// r.lock().unwrap().unlock()?;
    /// assert!(!r.is_locked());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn unlock(self) -> Result<()> {
        let r = self.lock.release();
        std::mem::forget(self);
        r
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // A non-owner's guard (inherited across a fork) must not release the
        // owner's lock; there is nobody to report the error to here.
        let _ = self.lock.release();
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("locked", &self.is_locked())
            .field("owned", &self.is_owned())
            .finish()
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}
