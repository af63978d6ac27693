//! [`Event`]: a flag in shared memory that threads and processes can wait for.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::primitive::{futex_wait, futex_wake, AtomicU32, Ordering};
use crate::error::Result;
use crate::shm::Shared;

/// The flag is set.
const SET: u32 = 1;
/// A waiter may be asleep: `set` must wake everyone.
const WAITERS: u32 = 2;

/// The shared-memory layout of an [`Event`].
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawEvent {
    state: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawEvent>() == 8);

impl RawEvent {
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s & SET != 0 {
                return true;
            }
            if s & WAITERS == 0
                && self
                    .state
                    .compare_exchange(s, s | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let nap = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    Some(left)
                }
                None => None,
            };
            futex_wait(&self.state, WAITERS, nap);
        }
    }

    pub(crate) fn set(&self) {
        if self.state.swap(SET, Ordering::Release) & WAITERS != 0 {
            futex_wake(&self.state, u32::MAX);
        }
    }

    pub(crate) fn clear(&self) {
        self.state.fetch_and(!SET, Ordering::Relaxed);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) & SET != 0
    }
}

/// A flag that threads and processes can set, clear and wait for: Python's
/// `multiprocessing.Event`.
///
/// # State
///
/// One futex word:
///
/// | `state`   | meaning                                              |
/// |-----------|------------------------------------------------------|
/// | `0`       | not set, nobody waits                                |
/// | `WAITERS` | not set, a waiter may be asleep                      |
/// | `SET`     | set (waiters return at once)                         |
///
/// `set` swaps in `SET` and wakes every sleeper if `WAITERS` was there; `clear`
/// removes `SET` (keeping `WAITERS`); a waiter adds `WAITERS` before it sleeps.
///
/// # Memory ordering
///
/// `set` *releases* and a `wait`/`is_set` that sees the flag *acquires*: what was
/// written before `set` is visible after `wait` returns `true`.
///
/// # Examples
///
/// ```
/// use multiproc::{Event, Process};
///
/// fn go(e: Event) {
///     e.set();
/// }
///
/// let e = Event::new()?;
/// let p = Process::start_with(go, e.clone())?;
/// e.wait();
/// assert!(e.is_set());
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Event {
    raw: Shared<RawEvent>,
}

impl Event {
    /// Creates an event that is not set.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) if the segment cannot be created.
    pub fn new() -> Result<Event> {
        Ok(Event {
            raw: Shared::new()?,
        })
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.raw.set();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.raw.clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.raw.is_set()
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        self.raw.wait(None);
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it is set
    /// (Python's return value).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let e = multiproc::Event::new()?;
    /// assert!(!e.wait_timeout(Duration::from_millis(1)));
    /// e.set();
    /// assert!(e.wait_timeout(Duration::from_millis(1)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(d) => self.raw.wait(Some(d)),
            None => self.raw.wait(None),
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}
