//! [`Semaphore`] and [`BoundedSemaphore`]: counting semaphores in shared memory.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::primitive::{futex_wait, futex_wake, spin_loop, AtomicU32, Ordering};
use crate::error::{Error, ErrorKind, Result};
use crate::shm::Shared;

/// How many times an acquirer re-reads a zero count before it sleeps.
const SPIN_LIMIT: u32 = if cfg!(loom) { 0 } else { 100 };

/// The shared-memory layout of a semaphore.
///
/// # State
///
/// | word      | meaning                                                           |
/// |-----------|-------------------------------------------------------------------|
/// | `value`   | the count; the futex word acquirers sleep on while it is `0`      |
/// | `waiters` | how many acquirers are (about to be) asleep; `0`: release need not wake |
/// | `max`     | the bound of a [`BoundedSemaphore`] plus one; `0` for an unbounded one |
///
/// # Memory ordering
///
/// A successful acquire (a CAS decrementing `value`) *acquires* and a release
/// *releases*, so writes before a release are visible after the acquire it enables.
/// `waiters` and `value` form a Dekker pair: a sleeper increments `waiters` and
/// then re-reads `value`; a releaser increments `value` and then reads `waiters`
/// with a read-modify-write (`fetch_add(0)`). Either the releaser's RMW comes later
/// in `waiters`' modification order and sees the sleeper, or the sleeper's increment
/// reads from it, synchronizes with it and then sees the new `value`: a release
/// never skips the wake a sleeper needs. (This argument needs only acquire/release,
/// so loom, which does not model `SeqCst` fully, can check it.) A process that dies while counted in `waiters`
/// only costs later releases a needless `FUTEX_WAKE`.
#[repr(C)]
#[derive(Debug, Default)]
pub(super) struct RawSemaphore {
    value: AtomicU32,
    waiters: AtomicU32,
    max: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawSemaphore>() == 16);

impl RawSemaphore {
    /// Sets the count and the bound (`None`: unbounded).
    pub(crate) fn init(&self, value: u32, bound: Option<u32>) {
        self.value.store(value, Ordering::Relaxed);
        // A bound of `u32::MAX` is no bound at all: the count is a `u32`.
        let max = bound.and_then(|b| b.checked_add(1)).unwrap_or(0);
        self.max.store(max, Ordering::Relaxed);
    }

    pub(crate) fn try_acquire(&self) -> bool {
        let mut v = self.value.load(Ordering::SeqCst);
        while v != 0 {
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes one unit, waiting until `deadline` (`None`: forever); `false` on timeout.
    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> bool {
        if self.try_acquire() {
            return true;
        }
        for _ in 0..SPIN_LIMIT {
            spin_loop();
            if self.try_acquire() {
                return true;
            }
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let got = loop {
            if self.try_acquire() {
                break true;
            }
            let nap = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break false;
                    }
                    Some(left)
                }
                None => None,
            };
            futex_wait(&self.value, 0, nap);
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        got
    }

    /// Adds `n` units and wakes up to `n` sleepers.
    pub(crate) fn release(&self, n: u32) -> Result<()> {
        let max = match self.max.load(Ordering::Relaxed) {
            0 => u32::MAX,
            m => m - 1,
        };
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            let new = match v.checked_add(n) {
                Some(new) if new <= max => new,
                _ => return Err(Error::new(ErrorKind::TooManyReleases)),
            };
            match self
                .value
                .compare_exchange_weak(v, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        // An RMW, not a load: it reads the latest `waiters` in modification order, so
        // the Dekker pair below holds even with acquire/release alone (and in loom).
        if self.waiters.fetch_add(0, Ordering::SeqCst) != 0 {
            futex_wake(&self.value, n);
        }
        Ok(())
    }

    pub(crate) fn value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// One unit of a [`Semaphore`] or [`BoundedSemaphore`], given back when dropped
/// (see [`Semaphore::guard`]).
///
/// A process that dies holding a guard does not give its unit back (a semaphore's
/// units have no owner to check on).
#[must_use = "dropping the guard gives the unit back at once"]
pub struct SemaphoreGuard<'a> {
    raw: &'a RawSemaphore,
}

impl SemaphoreGuard<'_> {
    /// Keeps the unit: it is not given back (Python's `acquire()` without `with`).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // Cannot exceed the bound: this unit was taken. (If another party released
        // more than it took meanwhile, that party got the error.)
        let _ = self.raw.release(1);
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

macro_rules! semaphore_api {
    ($name:ident) => {
        impl $name {
            /// Takes one unit, blocking while the count is zero.
            pub fn acquire(&self) {
                self.raw.acquire(None);
            }

            /// Takes one unit if the count is positive; returns whether it did.
            pub fn try_acquire(&self) -> bool {
                self.raw.try_acquire()
            }

            /// Takes one unit, blocking for at most `timeout`; returns whether it did.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.raw.acquire(deadline(timeout))
            }

            /// Gives back one unit, waking one waiter.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::TooManyReleases`] if the count would exceed its bound (the
            /// initial value for a [`BoundedSemaphore`], `u32::MAX` otherwise); the
            /// count is unchanged.
            pub fn release(&self) -> Result<()> {
                self.raw.release(1)
            }

            /// Gives back `n` units, waking up to `n` waiters.
            ///
            /// # Errors
            ///
            /// As [`release`](Self::release); either all `n` units are given back or
            /// none.
            pub fn release_n(&self, n: u32) -> Result<()> {
                self.raw.release(n)
            }

            /// The current count (a snapshot). Python's `get_value()`.
            pub fn value(&self) -> u32 {
                self.raw.value()
            }

            /// Takes one unit, blocking while the count is zero, and returns a guard
            /// that gives it back when dropped (Python's `with sem:`).
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let s = multiproc::", stringify!($name), "::new(1)?;")]
            /// {
            ///     let _unit = s.guard();
            ///     assert_eq!(s.value(), 0);
            /// } // given back here, even on a panic
            /// assert_eq!(s.value(), 1);
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn guard(&self) -> SemaphoreGuard<'_> {
                self.raw.acquire(None);
                SemaphoreGuard { raw: &self.raw }
            }

            /// Takes one unit if the count is positive, as a guard.
            pub fn try_guard(&self) -> Option<SemaphoreGuard<'_>> {
                self.raw
                    .try_acquire()
                    .then(|| SemaphoreGuard { raw: &self.raw })
            }

            /// Takes one unit, blocking for at most `timeout`, as a guard.
            pub fn guard_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
                self.raw
                    .acquire(deadline(timeout))
                    .then(|| SemaphoreGuard { raw: &self.raw })
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("value", &self.value())
                    .finish()
            }
        }
    };
}

/// A counting semaphore shared by threads and processes: Python's
/// `multiprocessing.Semaphore`.
///
/// [`acquire`](Self::acquire) takes a unit, waiting while there are none;
/// [`release`](Self::release) gives one back. Units are not owned, so any thread or
/// process may release, and a process that dies while holding units does not give
/// them back (there is nobody to tell).
///
/// # State and memory ordering
///
/// One futex word holds the count; a second counts sleepers so that a release calls
/// `FUTEX_WAKE` only when someone sleeps. A successful acquire synchronizes with the
/// release that provided its unit.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, Semaphore};
///
/// fn signal(s: Semaphore) {
///     s.release().unwrap();
/// }
///
/// let s = Semaphore::new(0)?;
/// let p = Process::start_with(signal, s.clone())?;
/// s.acquire(); // waits for the child
/// p.join()?;
/// assert!(!s.try_acquire());
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Semaphore {
    raw: Shared<RawSemaphore>,
}

impl Semaphore {
    /// Creates a semaphore with count `value`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the segment cannot be created.
    pub fn new(value: u32) -> Result<Semaphore> {
        let raw: Shared<RawSemaphore> = Shared::new()?;
        raw.init(value, None);
        Ok(Semaphore { raw })
    }
}

semaphore_api!(Semaphore);

/// A semaphore that refuses to be released above its initial value: Python's
/// `multiprocessing.BoundedSemaphore`.
///
/// Over-releasing, usually a bug, is an error ([`ErrorKind::TooManyReleases`])
/// rather than a silent increase of the count.
///
/// # Examples
///
/// ```
/// use multiproc::{BoundedSemaphore, ErrorKind};
///
/// let s = BoundedSemaphore::new(2)?;
/// s.acquire();
/// s.release()?;
/// assert_eq!(s.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
/// assert_eq!(s.value(), 2);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BoundedSemaphore {
    raw: Shared<RawSemaphore>,
}

impl BoundedSemaphore {
    /// Creates a semaphore with count and bound `value`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the segment cannot be created.
    ///
    /// As in Python, a value of 0 is allowed: that semaphore can be neither
    /// acquired nor released.
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        let raw: Shared<RawSemaphore> = Shared::new()?;
        raw.init(value, Some(value));
        Ok(BoundedSemaphore { raw })
    }
}

semaphore_api!(BoundedSemaphore);
