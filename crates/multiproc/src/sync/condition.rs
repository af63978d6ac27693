//! [`Condition`]: a condition variable in shared memory, paired with a [`Lock`].

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::lock::{Lock, LockGuard};
use super::owner_died::{LockResult, OwnerDied};
use super::primitive::{futex_wait, futex_wake, AtomicU32, AtomicU64, Ordering};
use crate::error::Result;
use crate::shm::Shared;

/// One registered waiter, in the high half of `RawCondition::count`.
const WAITER: u64 = 1 << 32;
/// The low half of `RawCondition::count`: pending wake-ups.
const SIGNALS: u64 = WAITER - 1;

/// The shared-memory layout of a [`Condition`]. See the type's "State" table.
#[repr(C)]
#[derive(Debug, Default)]
pub(super) struct RawCondition {
    seq: AtomicU32,
    _pad: AtomicU32,
    count: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawCondition>() == 16);

impl RawCondition {
    /// Registers a waiter; returns the notification number it must see change
    /// before it may take a wake-up. Call while holding the lock, before releasing it.
    pub(crate) fn prepare(&self) -> u32 {
        // Read first, then register: a notify in between did not count this waiter,
        // and this waiter only ever takes a wake-up of a later notify.
        let seq = self.seq.load(Ordering::SeqCst);
        self.count.fetch_add(WAITER, Ordering::SeqCst);
        seq
    }

    /// Takes a pending wake-up, leaving; `false` if there is none.
    fn take_signal(&self) -> bool {
        let mut c = self.count.load(Ordering::SeqCst);
        while c & SIGNALS != 0 {
            match self.count.compare_exchange_weak(
                c,
                c - WAITER - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Leaves at the deadline: takes a pending wake-up if there is one (a notify
    /// that came at the last moment), else unregisters. Returns which.
    fn leave(&self, eligible: bool) -> bool {
        let mut c = self.count.load(Ordering::SeqCst);
        loop {
            let took = eligible && c & SIGNALS != 0;
            let waiters = (c >> 32).saturating_sub(1);
            // Never more wake-ups pending than waiters left to take them.
            let signals = if took { (c & SIGNALS) - 1 } else { c & SIGNALS }.min(waiters);
            match self.count.compare_exchange_weak(
                c,
                waiters << 32 | signals,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return took,
                Err(now) => c = now,
            }
        }
    }

    /// Sleeps until this waiter takes a wake-up of a notify that came after
    /// [`prepare`](Self::prepare) returned `seq`, or until `deadline`; `false` on
    /// timeout. Never returns spuriously.
    pub(crate) fn sleep(&self, seq: u32, deadline: Option<Instant>) -> bool {
        loop {
            let now = self.seq.load(Ordering::SeqCst);
            // Only a notify after registration makes this waiter eligible, so one
            // that came to wait later cannot steal an earlier waiter's wake-up.
            if now != seq && self.take_signal() {
                return true;
            }
            let nap = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return self.leave(self.seq.load(Ordering::SeqCst) != seq);
                    }
                    Some(left)
                }
                None => None,
            };
            futex_wait(&self.seq, now, nap);
        }
    }

    /// How many waiters are registered (loom models).
    #[cfg(all(test, loom))]
    pub(crate) fn waiters(&self) -> u64 {
        self.count.load(Ordering::SeqCst) >> 32
    }

    /// Grants up to `n` wake-ups to the registered waiters and wakes that many.
    pub(crate) fn notify(&self, n: u32) {
        let mut c = self.count.load(Ordering::SeqCst);
        let granted = loop {
            let waiters = c >> 32;
            let signals = c & SIGNALS;
            let granted = waiters.saturating_sub(signals).min(u64::from(n));
            if granted == 0 {
                return;
            }
            match self.count.compare_exchange_weak(
                c,
                c + granted,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break granted,
                Err(now) => c = now,
            }
        };
        self.seq.fetch_add(1, Ordering::SeqCst);
        futex_wake(&self.seq, u32::try_from(granted).unwrap_or(u32::MAX));
    }
}

/// A condition variable shared by threads and processes: Python's
/// `multiprocessing.Condition`, with std's `Condvar` calling convention.
///
/// A `Condition` owns (or shares, see [`with_lock`](Self::with_lock)) a [`Lock`].
/// Take it with [`lock`](Self::lock), check the shared state, and
/// [`wait`](Self::wait) with the guard: the lock is released while waiting and held
/// again when `wait` returns. Another thread or process changes the state under the
/// same lock and calls [`notify`](Self::notify) or [`notify_all`](Self::notify_all).
///
/// # Differences from Python
///
/// * The lock is a [`Lock`], not an `RLock`: a condition wait must release the lock
///   completely, and `Lock` makes that explicit (as std's `Condvar` does with `Mutex`).
/// * As in Python (and unlike std's `Condvar`), a `wait` returns only when
///   notified or timed out, never spuriously, and `notify(n)` wakes exactly
///   `min(n, waiters)` of the threads and processes waiting when it is called, never
///   one that started waiting after it. Still check the condition in a loop, or use
///   [`wait_for`](Self::wait_for): another thread may change it before the woken
///   one holds the lock again.
/// * `notify` does not require holding the lock (Python raises `RuntimeError`), but
///   changing the state without the lock can lose a wake-up, exactly as in Python.
/// * A process that dies while waiting stays counted as a waiter: a later
///   `notify` may grant it a wake-up nobody takes (`notify_all` then wakes a later
///   waiter once without cause).
/// * Relocking after a wait reports a dead lock holder as [`OwnerDied`].
///
/// # State
///
/// | word              | meaning                                                    |
/// |-------------------|------------------------------------------------------------|
/// | `seq`             | notification counter, the futex word; every notify that grants wake-ups adds one |
/// | `count` high half | registered waiters                                         |
/// | `count` low half  | wake-ups granted and not yet taken (never above the waiters) |
///
/// A waiter, holding the lock, reads `seq` and then registers (`count += 1 << 32`),
/// unlocks, and sleeps on `seq`. `notify(n)` grants `min(n, waiters - pending)`
/// wake-ups in one compare-and-swap of `count`, then increments `seq` and wakes that
/// many sleepers. A waiter may take a wake-up (`count -= (1 << 32) + 1`) only once
/// `seq` differs from the value it read before registering, that is, from a notify
/// that came after it started waiting; every woken sleeper that finds none left
/// sleeps again. At its deadline a waiter takes a pending wake-up if it may (it was
/// notified at the last moment), else unregisters, so a timed-out waiter never
/// absorbs a wake-up meant for the others.
///
/// # Memory ordering
///
/// Every access is `SeqCst` and every decision is a read-modify-write of `count`,
/// so counts are exact. A notify updates `count` before `seq`: a waiter that sees the
/// new `seq` sees the granted wake-ups. A waiter reads `seq` before it sleeps and
/// `FUTEX_WAIT` compares it again atomically, so a notify between the two makes the
/// sleep return at once. Data protected by the lock is ordered by the lock itself.
///
/// # Examples
///
/// ```
/// use multiproc::{Condition, Process, Value};
///
/// fn produce(args: (Condition, Value<u32>)) {
///     let (cond, ready) = args;
///     let _g = cond.lock().unwrap();
///     ready.set(1);
///     cond.notify_all();
/// }
///
/// let cond = Condition::new()?;
/// let ready = Value::new(0u32)?;
/// let p = Process::start_with(produce, (cond.clone(), ready.clone()))?;
/// let g = cond.lock().unwrap();
/// let _g = cond.wait_for(g, || ready.get() == 1).unwrap();
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: Lock,
    raw: Shared<RawCondition>,
}

impl Condition {
    /// Creates a condition with a new [`Lock`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) if a segment cannot be created.
    pub fn new() -> Result<Condition> {
        Self::with_lock(Lock::new()?)
    }

    /// Creates a condition that uses `lock` (share one lock between conditions).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) if the segment cannot be created.
    pub fn with_lock(lock: Lock) -> Result<Condition> {
        Ok(Condition {
            lock,
            raw: Shared::new()?,
        })
    }

    /// The condition's lock.
    pub fn as_lock(&self) -> &Lock {
        &self.lock
    }

    /// Takes the condition's lock: [`Lock::lock`] on [`as_lock`](Self::as_lock).
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] as for [`Lock::lock`].
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        self.lock.lock()
    }

    fn check<'a>(&self, guard: &LockGuard<'a>) -> &'a Lock {
        let lock = guard.lock();
        assert!(
            lock.same_as(&self.lock),
            "Condition::wait called with the guard of another lock"
        );
        lock
    }

    fn wait_until<'a>(
        &self,
        guard: LockGuard<'a>,
        deadline: Option<Instant>,
    ) -> LockResult<(LockGuard<'a>, bool)> {
        let lock = self.check(&guard);
        let seq = self.raw.prepare();
        drop(guard);
        let woke = self.raw.sleep(seq, deadline);
        match lock.lock() {
            Ok(g) => Ok((g, woke)),
            Err(e) => Err(OwnerDied::new((e.into_inner(), woke))),
        }
    }

    /// Releases the lock, sleeps until notified, and takes the lock again.
    ///
    /// Returns only when a [`notify`](Self::notify) that came after this call
    /// began chose this waiter (never spuriously).
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (with the guard) if a holder of the lock died meanwhile.
    ///
    /// # Panics
    ///
    /// Panics if `guard` belongs to another lock.
    pub fn wait<'a>(&self, guard: LockGuard<'a>) -> LockResult<LockGuard<'a>> {
        match self.wait_until(guard, None) {
            Ok((g, _)) => Ok(g),
            Err(e) => Err(OwnerDied::new(e.into_inner().0)),
        }
    }

    /// As [`wait`](Self::wait), for at most `timeout`; the flag is `false` if the
    /// timeout passed (Python's return value).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Panics
    ///
    /// Panics if `guard` belongs to another lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let c = multiproc::Condition::new()?;
    /// let g = c.lock().unwrap();
    /// let (_g, notified) = c.wait_timeout(g, Duration::from_millis(5)).unwrap();
    /// assert!(!notified);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout<'a>(
        &self,
        guard: LockGuard<'a>,
        timeout: Duration,
    ) -> LockResult<(LockGuard<'a>, bool)> {
        self.wait_until(guard, Instant::now().checked_add(timeout))
    }

    /// Waits until `condition()` is true, checking it under the lock before each
    /// wait; returns holding the lock.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait); the guard inside the error holds the lock, and the
    /// condition may not hold.
    ///
    /// # Panics
    ///
    /// Panics if `guard` belongs to another lock.
    pub fn wait_for<'a>(
        &self,
        mut guard: LockGuard<'a>,
        mut condition: impl FnMut() -> bool,
    ) -> LockResult<LockGuard<'a>> {
        while !condition() {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As [`wait_for`](Self::wait_for), giving up after `timeout`; returns the
    /// condition's last value (Python's return value).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Panics
    ///
    /// Panics if `guard` belongs to another lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let c = multiproc::Condition::new()?;
    /// let g = c.lock().unwrap();
    /// let (_g, ok) = c.wait_for_timeout(g, Duration::from_millis(5), || false).unwrap();
    /// assert!(!ok);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_for_timeout<'a>(
        &self,
        mut guard: LockGuard<'a>,
        timeout: Duration,
        mut condition: impl FnMut() -> bool,
    ) -> LockResult<(LockGuard<'a>, bool)> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if condition() {
                return Ok((guard, true));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, false));
            }
            guard = match self.wait_until(guard, deadline) {
                Ok((g, _)) => g,
                Err(e) => {
                    let g = e.into_inner().0;
                    let ok = condition();
                    return Err(OwnerDied::new((g, ok)));
                }
            };
        }
    }

    /// Wakes `n` of the waiters waiting now (all of them if fewer): Python's
    /// `notify(n)`. A waiter that starts waiting after this call is not woken by it.
    pub fn notify(&self, n: u32) {
        self.raw.notify(n);
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.raw.notify(1);
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.raw.notify(u32::MAX);
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}
