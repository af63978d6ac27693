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
/// The generation: the bits above `SET` and `WAITERS`, `+GEN_ONE` at every `set`
/// of a clear flag.
const GEN_MASK: u32 = !(SET | WAITERS);
/// One step of the generation.
const GEN_ONE: u32 = 4;

/// The shared-memory layout of an [`Event`].
#[repr(C)]
#[derive(Debug, Default)]
pub(super) struct RawEvent {
    state: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawEvent>() == 8);

impl RawEvent {
    /// Waits until the flag is set, or was set (and maybe cleared again) after the
    /// wait began; `false` at the deadline.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        let generation = s & GEN_MASK;
        loop {
            // A `set` since the wait began counts even if a `clear` followed before
            // this waiter ran (Python's `Event.wait`, bpo-13502).
            if s & SET != 0 || s & GEN_MASK != generation {
                return true;
            }
            if s & WAITERS == 0 {
                match self.state.compare_exchange(
                    s,
                    s | WAITERS,
                    Ordering::Relaxed,
                    Ordering::Acquire,
                ) {
                    Ok(_) => s |= WAITERS,
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
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
            futex_wait(&self.state, s, nap);
            s = self.state.load(Ordering::Acquire);
        }
    }

    pub(crate) fn set(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            // Setting a set flag changes nothing, but still releases (a `wait` that
            // sees the flag then sees this caller's writes too).
            let new = if s & SET != 0 {
                s
            } else {
                (s & GEN_MASK).wrapping_add(GEN_ONE) | SET
            };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if s & WAITERS != 0 {
            futex_wake(&self.state, u32::MAX);
        }
    }

    pub(crate) fn clear(&self) {
        self.state.fetch_and(!SET, Ordering::Relaxed);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) & SET != 0
    }

    /// Whether a waiter has announced that it sleeps (loom models).
    #[cfg(all(test, loom))]
    pub(crate) fn has_waiters(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WAITERS != 0
    }
}

/// A flag that threads and processes can set, clear and wait for: Python's
/// `multiprocessing.Event`.
///
/// # State
///
/// One futex word:
///
/// | `state`             | meaning                                    |
/// |---------------------|--------------------------------------------|
/// | `gen`               | not set, nobody waits                      |
/// | `gen \| WAITERS`    | not set, a waiter may be asleep            |
/// | `gen \| SET`        | set (waiters return at once)               |
///
/// `gen` (the bits above `SET` and `WAITERS`) counts the times the flag went from
/// clear to set. `set` of a clear flag stores `(gen + 1) | SET` and wakes every
/// sleeper if `WAITERS` was there; `clear` removes `SET` (keeping `WAITERS`); a
/// waiter adds `WAITERS` before it sleeps. A waiter returns `true` when it sees `SET`
/// *or* a `gen` other than the one it started with, so a `set` immediately followed
/// by a `clear` still releases everyone who was waiting (as in Python, bpo-13502).
///
/// # Memory ordering
///
/// `set` *releases* and a `wait`/`is_set` that sees the flag *acquires*: what was
/// written before `set` is visible after `wait` returns `true`. A `wait` that returns
/// because `gen` moved read the word as that `set` or a later `clear` left it; a
/// `clear` is a read-modify-write, so it continues the `set`'s release sequence and
/// the `wait` acquires the `set` all the same.
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
    ///
    /// A `set` while this call waits releases it even if a `clear` follows at once,
    /// before this thread runs again.
    pub fn wait(&self) {
        self.raw.wait(None);
    }

    /// Blocks until the flag is set or `timeout` passes; returns `true` if it was
    /// set (Python's return value): at the call, or at any moment during the wait even
    /// if it was cleared again since; `false` on timeout.
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
