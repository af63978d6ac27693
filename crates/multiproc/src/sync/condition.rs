//! [`Condition`]: a condition variable in shared memory, paired with a [`Lock`].

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::lock::{Lock, LockGuard};
use super::owner_died::{LockResult, OwnerDied};
use super::primitive::{futex_wait, futex_wake, AtomicU32, Ordering, Wake};
use crate::error::Result;
use crate::shm::Shared;

/// The shared-memory layout of a [`Condition`].
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawCondition {
    seq: AtomicU32,
    waiters: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawCondition>() == 8);

impl RawCondition {
    /// Registers a waiter; returns the sequence number to sleep on. Call while
    /// holding the lock, before releasing it.
    pub(crate) fn prepare(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.seq.load(Ordering::SeqCst)
    }

    /// Sleeps until notified after `seq` was read (or `deadline`); `false` on timeout.
    pub(crate) fn sleep(&self, seq: u32, deadline: Option<Instant>) -> bool {
        let nap = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let woke = if nap.is_some_and(|n| n.is_zero()) {
            self.seq.load(Ordering::SeqCst) != seq
        } else {
            futex_wait(&self.seq, seq, nap) == Wake::Woken
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        woke
    }

    pub(crate) fn notify(&self, n: u32) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        // An RMW, not a load: see the semaphore's "Memory ordering".
        if self.waiters.fetch_add(0, Ordering::SeqCst) != 0 {
            futex_wake(&self.seq, n);
        }
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
/// * As with std's `Condvar`, a `wait` may return without a notification
///   (spuriously), and `notify(n)` may wake more than `n` waiters when several are
///   just going to sleep. Check the condition in a loop, or use
///   [`wait_for`](Self::wait_for), which does.
/// * `notify` does not require holding the lock (Python raises `RuntimeError`), but
///   changing the state without the lock can lose a wake-up, exactly as in Python.
/// * Relocking after a wait reports a dead lock holder as [`OwnerDied`].
///
/// # State
///
/// | word      | meaning                                                        |
/// |-----------|----------------------------------------------------------------|
/// | `seq`     | notification counter, the futex word; every notify adds one    |
/// | `waiters` | registered waiters; `0`: notify need not call `FUTEX_WAKE`     |
///
/// A waiter, holding the lock, increments `waiters` and reads `seq`, unlocks, and
/// sleeps while `seq` is unchanged. A notifier increments `seq` and wakes if
/// `waiters` is non-zero.
///
/// # Memory ordering
///
/// `waiters`/`seq` form a Dekker pair, and the notifier reads `waiters` with a
/// read-modify-write: either it sees the waiter registered (and wakes it), or the
/// waiter's registration reads from that RMW and then sees the new `seq` (the
/// notification came before the wait, and is not delivered to it, as in Python). Data protected by the lock is ordered by the lock itself.
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
    /// May return spuriously; see the type docs.
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

    /// Wakes up to `n` waiters (possibly more; see the type docs).
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
