//! The seam between the synchronization protocols and the machine, so that `loom`
//! can model them: atomics, the futex, thread identity and owner liveness come from
//! here, never directly from `std` or `sys`.
//!
//! Under `cfg(loom)` the futex is faked with one loom `Mutex` + `Condvar` for all
//! words: `wait` re-checks the word under the mutex before sleeping and `wake` takes
//! the mutex before notifying everyone, which keeps the futex's "compare and sleep
//! atomically" guarantee (a lost wake-up shows up as a loom deadlock) while allowing
//! the spurious wake-ups real futexes have. Timeouts are ignored (models use only
//! blocking calls), and every loom thread is alive.

use std::time::Duration;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Why [`futex_wait`] returned.
pub(crate) use crate::sys::futex::Wake;

/// Sleeps while `*word == expected`, for at most `timeout`. May return spuriously.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    crate::sys::futex::wait(word, expected, timeout)
}

/// Wakes up to `n` waiters on `word`, in any process.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    crate::sys::futex::wake(word, n);
}

/// The calling thread's kernel id and start time.
#[cfg(not(loom))]
#[inline]
pub(crate) fn current_thread() -> (u32, u64) {
    crate::sys::thread::current_with_start()
}

/// Changes in a forked child (and never in the parent): a guard compares it to tell
/// that it is a copy in a child.
#[cfg(not(loom))]
#[inline]
pub(crate) fn fork_generation() -> u32 {
    crate::sys::thread::fork_generation()
}

/// Whether the thread that published (`tid`, `start`) has certainly ended.
#[cfg(not(loom))]
pub(crate) fn owner_is_dead(tid: u32, start: u64) -> bool {
    crate::sys::thread::is_dead(tid, start)
}

/// As [`owner_is_dead`], but at most once per [`LIVENESS_TICK`](crate::backoff::LIVENESS_TICK) per thread
/// (otherwise `false`): for non-blocking calls that a caller may repeat in a loop,
/// where a `/proc` read on every failed attempt would cost microseconds each.
#[cfg(not(loom))]
pub(crate) fn owner_is_dead_throttled(tid: u32, start: u64) -> bool {
    use crate::backoff::LIVENESS_TICK;
    use std::cell::Cell;
    use std::time::Instant;
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    if LAST
        .with(Cell::get)
        .is_some_and(|t| now.duration_since(t) < LIVENESS_TICK)
    {
        return false;
    }
    LAST.with(|l| l.set(Some(now)));
    owner_is_dead(tid, start)
}

/// A busy-wait hint.
#[cfg(not(loom))]
#[inline]
pub(crate) fn spin_loop() {
    std::hint::spin_loop();
}

#[cfg(loom)]
mod fake {
    use super::*;
    use loom::sync::{Condvar, Mutex};

    loom::lazy_static! {
        static ref FUTEX: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
        static ref NEXT_TID: AtomicU32 = AtomicU32::new(1);
    }
    loom::thread_local! {
        static TID: u32 = NEXT_TID.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, _: Option<Duration>) -> Wake {
        let guard = FUTEX.0.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(FUTEX.1.wait(guard).unwrap());
        }
        Wake::Woken
    }

    pub(crate) fn futex_wake(_word: &AtomicU32, _n: u32) {
        let guard = FUTEX.0.lock().unwrap();
        FUTEX.1.notify_all();
        drop(guard);
    }

    pub(crate) fn current_thread() -> (u32, u64) {
        (TID.with(|t| *t), 1)
    }

    pub(crate) fn owner_is_dead(_: u32, _: u64) -> bool {
        false
    }

    pub(crate) fn owner_is_dead_throttled(_: u32, _: u64) -> bool {
        false
    }

    pub(crate) fn fork_generation() -> u32 {
        0
    }

    pub(crate) fn spin_loop() {
        loom::thread::yield_now();
    }
}
#[cfg(loom)]
pub(crate) use fake::*;
