//! [`OwnerDied<G>`]: the error that tells the next locker its predecessor died while
//! holding the lock, and hands it the lock anyway.

use std::error::Error;
use std::fmt;

/// The previous holder died (or was killed, or panicked) while holding the lock.
///
/// Like [`std::sync::PoisonError`], this error *carries the guard*: the caller now
/// holds the lock, but the data it protects may be half-updated. Repair the data,
/// then call [`into_inner`](Self::into_inner) and go on. Only the first locker after
/// the death is told; once its guard is released the lock is an ordinary lock again
/// (there is no lasting poisoned state as in `std`, and no "not recoverable" state
/// as in POSIX robust mutexes).
///
/// # Examples
///
/// ```
/// use multiproc::{Lock, Process};
///
/// fn die_holding(lock: Lock) {
///     std::mem::forget(lock.lock());
///     std::process::abort();
/// }
///
/// let lock = Lock::new()?;
/// let child = Process::start_with(die_holding, lock.clone())?;
/// assert!(child.join().is_err());
/// let guard = match lock.lock() {
///     Ok(guard) => guard,
///     Err(died) => {
///         // repair whatever the lock protects here
///         died.into_inner()
///     }
/// };
/// drop(guard);
/// assert!(lock.lock().is_ok());
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> OwnerDied<G> {
        OwnerDied { guard }
    }

    /// Consumes the error, returning the guard (the lock stays held).
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// A mutable reference to the guard.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the previous owner of the lock died while holding it")
    }
}

impl<G> Error for OwnerDied<G> {}

/// The result of a blocking lock: the guard, or the guard inside [`OwnerDied`].
pub type LockResult<G> = Result<G, OwnerDied<G>>;

/// Why a `try_lock` or `lock_timeout` did not return a clean guard.
pub enum TryLockError<G> {
    /// The lock was acquired, but its previous owner died holding it.
    OwnerDied(OwnerDied<G>),
    /// The lock is held by someone else (for `_timeout` variants: still held at
    /// the deadline).
    WouldBlock,
}

/// The result of a non-blocking or timed lock.
pub type TryLockResult<G> = Result<G, TryLockError<G>>;

impl<G> TryLockError<G> {
    /// Returns `true` for [`TryLockError::WouldBlock`].
    pub fn is_would_block(&self) -> bool {
        matches!(self, TryLockError::WouldBlock)
    }

    /// The guard, if the lock was acquired (from a dead owner).
    pub fn into_guard(self) -> Option<G> {
        match self {
            TryLockError::OwnerDied(d) => Some(d.into_inner()),
            TryLockError::WouldBlock => None,
        }
    }
}

impl<G> From<OwnerDied<G>> for TryLockError<G> {
    fn from(e: OwnerDied<G>) -> Self {
        TryLockError::OwnerDied(e)
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::OwnerDied(e) => e.fmt(f),
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::OwnerDied(e) => e.fmt(f),
            TryLockError::WouldBlock => f.write_str("the lock is held by another thread"),
        }
    }
}

impl<G> Error for TryLockError<G> {}
