//! [`Barrier`]: a meeting point for a fixed number of threads and processes.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::primitive::{futex_wait, futex_wake, AtomicU32, AtomicU64, Ordering};
use super::robust::{Acquired, RawLock};
use crate::error::{Error, ErrorKind, Result};
use crate::process::function::FnRef;
use crate::shm::Shared;

/// The shared-memory layout of a [`Barrier`].
///
/// # State
///
/// `lock` (a robust lock, see [`Lock`](crate::Lock)) guards every field's *writes*:
///
/// | field      | meaning                                                              |
/// |------------|----------------------------------------------------------------------|
/// | `gen`      | generation number, the futex word waiters sleep on; `+1` when a generation ends (all arrived, or broken) |
/// | `outcomes` | bit `g % 64`: generation `g` ended with everyone through (`1`) or broken (`0`) |
/// | `count`    | parties arrived in the current generation                            |
/// | `parties`  | how many parties the barrier waits for (set at creation)             |
/// | `broken`   | `1` while broken: every `wait` fails at once until `reset`           |
///
/// A waiter of generation `g` sleeps while `gen == g`, then reads bit `g % 64` of
/// `outcomes` (valid unless 64 more generations ended meanwhile).
///
/// # Memory ordering
///
/// Writers hold `lock`; `outcomes` is written before `gen` is incremented with
/// `Release`, and waiters read `gen` with `Acquire` before `outcomes`. The last
/// party's (and the action's) writes happen-before every waiter's return.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawBarrier {
    lock: RawLock,
    outcomes: AtomicU64,
    gen: AtomicU32,
    count: AtomicU32,
    parties: AtomicU32,
    broken: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawBarrier>() == 40);

impl RawBarrier {
    fn lock(&self) {
        if self.lock.lock(None) == Some(Acquired::OwnerDied) {
            // A process died in the middle of a barrier operation: its count and
            // generation may be inconsistent, so break the barrier.
            self.break_locked();
        }
    }

    fn unlock(&self) {
        self.lock.unlock(false);
    }

    /// Breaks the current generation: its waiters fail. Call holding `lock`.
    fn break_locked(&self) {
        let g = self.gen.load(Ordering::Relaxed);
        self.broken.store(1, Ordering::Relaxed);
        self.outcomes
            .fetch_and(!(1u64 << (g % 64)), Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.gen.store(g.wrapping_add(1), Ordering::Release);
        futex_wake(&self.gen, u32::MAX);
    }
}

/// A barrier for a fixed number of parties, threads or processes alike: Python's
/// `multiprocessing.Barrier`.
///
/// Each party calls [`wait`](Self::wait); the last to arrive runs the optional
/// action, then everyone is released and the barrier is ready for the next round.
/// `wait` returns the party's arrival index, `0..parties` (the last to arrive gets
/// `parties - 1`), different for each party, so exactly one can be picked for extra
/// work.
///
/// The barrier *breaks* when a waiting party times out (see also
/// [`with_default_timeout`](Self::with_default_timeout)), when the action panics, on
/// [`abort`](Self::abort), or on [`reset`](Self::reset) while parties wait: every
/// waiter then fails with [`ErrorKind::BrokenBarrier`], the party whose timeout
/// expired too (as Python's `BrokenBarrierError`; its message says it timed out),
/// and later waits fail until `reset`.
/// A party that dies while waiting is still counted: use timeouts if that can happen.
///
/// The action is a plain `fn()`; it travels to children started by any start method
/// (by its offset in the executable, as process entry points do). It runs with the
/// barrier's internal lock held, so it must not use the barrier.
///
/// # Examples
///
/// ```
/// use multiproc::{Barrier, Process};
///
/// fn party(b: Barrier) -> usize {
///     b.wait().unwrap()
/// }
///
/// let b = Barrier::new(3)?;
/// let kids = (0..2).map(|_| Process::start_with(party, b.clone())).collect::<Result<Vec<_>, _>>()?;
/// let mine = b.wait()?;
/// let mut all: Vec<usize> = kids.into_iter().map(|k| k.join()).collect::<Result<_, _>>()?;
/// all.push(mine);
/// all.sort();
/// assert_eq!(all, [0, 1, 2]);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    raw: Shared<RawBarrier>,
    action: Option<fn()>,
    /// Used by [`wait`](Self::wait); travels with the handle to children.
    timeout: Option<Duration>,
}

impl Barrier {
    /// Creates a barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `parties` is 0; [`ErrorKind::Os`] if the segment
    /// cannot be created.
    pub fn new(parties: u32) -> Result<Barrier> {
        Self::make(parties, None)
    }

    /// Creates a barrier whose last arriving party runs `action` before the others
    /// are released.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// fn hello() {
    ///     println!("everyone is here");
    /// }
    ///
    /// let b = multiproc::Barrier::with_action(1, hello)?;
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn with_action(parties: u32, action: fn()) -> Result<Barrier> {
        Self::make(parties, Some(action))
    }

    fn make(parties: u32, action: Option<fn()>) -> Result<Barrier> {
        if parties == 0 {
            return Err(Error::new(ErrorKind::InvalidInput)
                .with_message("a barrier needs at least one party"));
        }
        let raw: Shared<RawBarrier> = Shared::new()?;
        raw.parties.store(parties, Ordering::Relaxed);
        Ok(Barrier {
            raw,
            action,
            timeout: None,
        })
    }

    /// Makes [`wait`](Self::wait) on this handle (and on its clones and the copies
    /// passed to children, made after this call) time out after `timeout`, Python's
    /// `Barrier(parties, timeout=...)`. [`wait_timeout`](Self::wait_timeout) still
    /// uses its own timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::{Barrier, ErrorKind};
    ///
    /// let b = Barrier::new(2)?.with_default_timeout(Duration::from_millis(5));
    /// assert_eq!(b.default_timeout(), Some(Duration::from_millis(5)));
    /// assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    /// assert!(b.is_broken());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn with_default_timeout(mut self, timeout: Duration) -> Barrier {
        self.timeout = Some(timeout);
        self
    }

    /// The timeout [`wait`](Self::wait) uses, if one was set.
    pub fn default_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Waits until all parties have called `wait`; returns this party's arrival index.
    ///
    /// With a [default timeout](Self::with_default_timeout), this is
    /// [`wait_timeout`](Self::wait_timeout) with it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`] if the barrier is or becomes broken (by this
    /// party's default timeout too).
    ///
    /// # Panics
    ///
    /// Resumes the action's panic in the party that ran it (the barrier is broken
    /// first, so the other parties fail instead of hanging).
    pub fn wait(&self) -> Result<usize> {
        match self.timeout {
            Some(t) => self.wait_timeout(t),
            None => self.wait_until(None),
        }
    }

    /// As [`wait`](Self::wait), breaking the barrier if not everyone arrives within
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`] if the barrier is or becomes broken, including
    /// by this party's timeout (then the error's message says so).
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::{Barrier, ErrorKind};
    ///
    /// let b = Barrier::new(2)?;
    /// let e = b.wait_timeout(Duration::from_millis(5)).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
    /// assert!(b.is_broken());
    /// b.reset();
    /// assert!(!b.is_broken());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<usize> {
        let raw = &*self.raw;
        raw.lock();
        if raw.broken.load(Ordering::Relaxed) != 0 {
            raw.unlock();
            return Err(Error::new(ErrorKind::BrokenBarrier));
        }
        let g = raw.gen.load(Ordering::Relaxed);
        let index = raw.count.load(Ordering::Relaxed);
        let parties = raw.parties.load(Ordering::Relaxed);
        if index + 1 >= parties {
            if let Some(action) = self.action {
                if let Err(panic) = std::panic::catch_unwind(action) {
                    raw.break_locked();
                    raw.unlock();
                    std::panic::resume_unwind(panic);
                }
            }
            raw.count.store(0, Ordering::Relaxed);
            raw.outcomes.fetch_or(1u64 << (g % 64), Ordering::Relaxed);
            raw.gen.store(g.wrapping_add(1), Ordering::Release);
            raw.unlock();
            futex_wake(&raw.gen, u32::MAX);
            return Ok(index as usize);
        }
        raw.count.store(index + 1, Ordering::Relaxed);
        raw.unlock();
        while raw.gen.load(Ordering::Acquire) == g {
            let nap = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        raw.lock();
                        let timed_out = raw.gen.load(Ordering::Relaxed) == g;
                        if timed_out {
                            raw.break_locked();
                        }
                        raw.unlock();
                        if timed_out {
                            return Err(Error::new(ErrorKind::BrokenBarrier)
                                .with_message("timed out; the barrier is now broken"));
                        }
                        break;
                    }
                    Some(left)
                }
                None => None,
            };
            futex_wait(&raw.gen, g, nap);
        }
        if raw.outcomes.load(Ordering::Relaxed) & (1u64 << (g % 64)) != 0 {
            Ok(index as usize)
        } else {
            Err(Error::new(ErrorKind::BrokenBarrier))
        }
    }

    /// Breaks the barrier: current and future waiters fail until [`reset`](Self::reset).
    pub fn abort(&self) {
        self.raw.lock();
        if self.raw.broken.load(Ordering::Relaxed) == 0 {
            self.raw.break_locked();
        }
        self.raw.unlock();
    }

    /// Returns the barrier to its empty, unbroken state; parties waiting now fail
    /// with [`ErrorKind::BrokenBarrier`].
    pub fn reset(&self) {
        self.raw.lock();
        if self.raw.count.load(Ordering::Relaxed) != 0 {
            self.raw.break_locked();
        }
        self.raw.broken.store(0, Ordering::Relaxed);
        self.raw.unlock();
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.raw.broken.load(Ordering::Relaxed) != 0
    }

    /// The number of parties the barrier waits for.
    pub fn parties(&self) -> u32 {
        self.raw.parties.load(Ordering::Relaxed)
    }

    /// How many parties are waiting now (a snapshot). Python's `n_waiting`.
    pub fn n_waiting(&self) -> u32 {
        self.raw.count.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire<S> {
    raw: S,
    action: Option<FnRef>,
    timeout: Option<Duration>,
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Wire {
            raw: &self.raw,
            action: self.action.map(FnRef::new),
            timeout: self.timeout,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = Wire::<Shared<RawBarrier>>::deserialize(d)?;
        let action = match w.action {
            Some(f) => Some(f.resolve().ok_or_else(|| {
                serde::de::Error::custom("the barrier's action comes from a different executable")
            })?),
            None => None,
        };
        Ok(Barrier {
            raw: w.raw,
            action,
            timeout: w.timeout,
        })
    }
}
