//! The crate's two waiting figures: how long a waiter spins before it sleeps
//! ([`Backoff`], [`SPIN_WINDOW`]), and how long a sleeper sleeps before it checks
//! that the process or thread it waits for is still alive ([`LIVENESS_TICK`]).
//!
//! Every blocking wait in multiproc (a ring's reader or writer, a queue's `join`,
//! a robust lock, a barrier, a pool task's waiter, a process's `join`) uses these
//! two, so that they are tuned in one place.

#![cfg_attr(loom, allow(dead_code))]

use std::time::{Duration, Instant};

/// Longest a waiter spins before it sleeps.
///
/// A futex or poll wake-up of a thread on another CPU costs about 20 µs when that
/// CPU was idle (halted vCPU, measured on the project's machines: a futex round
/// trip between two processes took a median of 15.7 µs, a spinning one 0.10 µs).
/// An answer that comes within a couple of wake-up costs is cheaper to catch by
/// spinning than by sleeping; past that the spinner mostly burns a CPU its peer
/// may need.
pub(crate) const SPIN_WINDOW: Duration = Duration::from_micros(50);

/// Longest a sleeper sleeps before it checks on its peer (a ring's other side, a
/// lock's owner, a barrier's neighbour).
///
/// A peer that dies without a word is noticed within this; each check is a syscall
/// or a `/proc` read, so twenty of them a second per sleeper cost nothing
/// measurable, while a shorter tick would keep idle waiters waking up.
pub(crate) const LIVENESS_TICK: Duration = Duration::from_millis(50);

/// A spin window opened now: callers spin (or yield) while [`spinning`](Self::spinning),
/// then sleep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    until: Instant,
}

impl Backoff {
    /// A window of [`SPIN_WINDOW`] from now.
    pub(crate) fn new() -> Backoff {
        Backoff::with_window(SPIN_WINDOW)
    }

    /// A window of `window` from now (a pool's configurable spin).
    pub(crate) fn with_window(window: Duration) -> Backoff {
        Backoff {
            until: Instant::now() + window,
        }
    }

    /// Whether the window is still open.
    #[inline]
    pub(crate) fn spinning(&self) -> bool {
        Instant::now() < self.until
    }
}

/// How long to sleep before the next liveness check when waiting until `deadline`:
/// [`LIVENESS_TICK`], or what is left of the deadline if that is shorter; `None` once
/// the deadline has passed.
pub(crate) fn nap(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(LIVENESS_TICK),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(LIVENESS_TICK))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_closes() {
        assert!(Backoff::with_window(Duration::from_secs(3600)).spinning());
        assert!(!Backoff::with_window(Duration::ZERO).spinning());
    }

    #[test]
    fn nap_is_the_tick_or_what_is_left() {
        assert_eq!(nap(None), Some(LIVENESS_TICK));
        assert_eq!(nap(Some(Instant::now())), None);
        let far = nap(Some(Instant::now() + 10 * LIVENESS_TICK));
        assert_eq!(far, Some(LIVENESS_TICK));
        let near = nap(Some(Instant::now() + LIVENESS_TICK / 2)).unwrap();
        assert!(near <= LIVENESS_TICK / 2 && !near.is_zero());
    }
}
