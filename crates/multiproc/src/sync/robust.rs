//! The owner-died protocol on a futex word: a mutex whose holder may die.
//!
//! # Why not the kernel's robust futex list
//!
//! The kernel keeps one robust-list head per thread (`set_robust_list`) and glibc
//! installs its own for every thread, for `PTHREAD_MUTEX_ROBUST`. A library that
//! called `set_robust_list` itself would silently break glibc's robust mutexes in
//! the same process, and adding entries to glibc's list depends on its private
//! layout. So death is detected by the waiters instead:
//!
//! * the word holds the owner's kernel thread id (`gettid`, cached per thread), and a
//!   side word holds the owner thread's start time (from `/proc/thread-self/stat`);
//! * a waiter never sleeps unboundedly: it sleeps on the futex for at most
//!   [`LIVENESS_TICK`](crate::backoff::LIVENESS_TICK) (50 ms), and after each timeout checks whether the owner
//!   thread still exists (`/proc/<tid>/stat`, then `kill(tid, 0)`), is not a zombie,
//!   and has the recorded start time (a thread id can be reused by a new thread);
//! * if the owner is dead, the waiter swaps the word from the dead owner's value to
//!   its own id with one compare-and-swap (so only one waiter takes over) and
//!   reports [`OwnerDied`](super::OwnerDied).
//!
//! A failed `try_lock` checks the owner too, but at most once per 50 ms per
//! thread, so a `try_lock` loop stays cheap and still learns of a death.
//!
//! Detection therefore takes up to 50 ms after the death, costs nothing on the fast
//! paths (no syscall besides the futex under contention), and never misfires on a
//! live owner: a check that cannot read `/proc` declares nobody dead. Every process
//! must see the same pid namespace (true for every start method of this crate).
//!
//! A thread of the *same* process that exits while holding the lock (its guard
//! leaked with `mem::forget`) is detected the same way. A guard dropped while its
//! thread unwinds from a panic releases the lock in the owner-died state, so the
//! next locker is told, as `std::sync::Mutex` poisoning would tell it.
//!
//! # State table of `state`
//!
//! | `state`                       | meaning                                              |
//! |-------------------------------|------------------------------------------------------|
//! | `0`                           | unlocked                                             |
//! | `OWNER_DIED`                  | unlocked; the last owner died holding it: the next locker gets `OwnerDied` |
//! | `tid`                         | locked by thread `tid`, no waiter has slept          |
//! | `tid \| WAITERS`              | locked by `tid`; a waiter may be asleep: unlock must `FUTEX_WAKE` |
//!
//! `tid` occupies the low 30 bits (`TID_MASK`; Linux thread ids are below
//! 2^22). `OWNER_DIED` is never combined with a `tid`: the taker of a dead owner's
//! lock writes its own id and reports the death through the return value.
//!
//! Transitions: `lock` CASes `0`/`OWNER_DIED` → `tid` (fast path, and while
//! spinning) or → `tid | WAITERS` (after having slept, Drepper's "mutex2" rule:
//! it cannot know whether others still sleep). A waiter sets `WAITERS` before it
//! sleeps. `unlock` swaps in `0` (or `OWNER_DIED` when panicking) and wakes one
//! waiter if `WAITERS` was set. A waiter that finds the owner dead CASes
//! `dead_tid[|WAITERS]` → `tid | WAITERS`.
//!
//! # State of `owner_start`
//!
//! `0` while unlocked or while a new owner has not published yet ("unknown": a
//! waiter then checks only that `tid` exists); otherwise the owner thread's start
//! time. The owner stores it right after acquiring and clears it right before
//! releasing.
//!
//! # Memory ordering
//!
//! Acquiring CASes with `Acquire`, releasing swaps with `Release`: everything written
//! under the lock, in any process, happens-before the next acquisition. The
//! `owner_start` accesses are `Relaxed`; a waiter reads it after an `Acquire` load of
//! `state` that observed the current owner's id, which (the owner's acquiring CAS
//! being part of the previous owner's release sequence) makes the previous owner's
//! clearing store visible, so a non-zero value is the current owner's. Setting
//! `WAITERS` is `Relaxed`: the futex compares the word atomically with the sleep, so
//! an unlock that follows cannot miss the sleeper.

use std::time::{Duration, Instant};

use super::primitive::{
    current_thread, futex_wait, futex_wake, owner_is_dead, owner_is_dead_throttled, spin_loop,
    AtomicU32, AtomicU64, Ordering, Wake,
};
use crate::backoff;

/// Bits of `state` holding the owner's thread id.
pub(crate) const TID_MASK: u32 = 0x3fff_ffff;
/// A waiter may be asleep on the word: the unlocker must wake one.
pub(crate) const WAITERS: u32 = 0x8000_0000;
/// Unlocked, and the previous owner died holding the lock.
pub(crate) const OWNER_DIED: u32 = 0x4000_0000;
/// How many times a locker re-reads a held word before it sleeps.
/// (None under loom: a spin is a `yield_now`, which makes loom run the holder, so
/// models would rarely reach the sleeping path.)
const SPIN_LIMIT: u32 = if cfg!(loom) { 0 } else { 100 };

/// How an acquisition went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous owner released the lock normally.
    Clean,
    /// The previous owner died holding it (or panicked).
    OwnerDied,
}

/// The shared-memory layout of a robust lock. See the module docs for the protocol.
#[repr(C)]
#[derive(Debug, Default)]
pub(super) struct RawLock {
    state: AtomicU32,
    _pad: AtomicU32,
    owner_start: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawLock>() == 16);

impl RawLock {
    /// Tries once to take the lock; `None` if a live thread holds it.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<Acquired> {
        let (tid, start) = current_thread();
        match self
            .state
            .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                self.owner_start.store(start, Ordering::Relaxed);
                Some(Acquired::Clean)
            }
            Err(s) => self.try_lock_contended(s, tid, start),
        }
    }

    #[cold]
    fn try_lock_contended(&self, s: u32, tid: u32, start: u64) -> Option<Acquired> {
        if s & TID_MASK == 0 {
            return self.try_take_free(s, tid, start, 0);
        }
        if self.owner_dead(s, tid, start, owner_is_dead_throttled) {
            return self.take_from_dead(s, tid, start);
        }
        None
    }

    /// Takes the lock, waiting until `deadline` (`None`: forever); `None` on timeout.
    ///
    /// # Panics
    ///
    /// Without a deadline, panics if the calling thread already holds the lock (it
    /// would wait for itself forever).
    #[inline]
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Option<Acquired> {
        let (tid, start) = current_thread();
        if self
            .state
            .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.owner_start.store(start, Ordering::Relaxed);
            return Some(Acquired::Clean);
        }
        self.lock_slow(tid, start, deadline)
    }

    #[cold]
    fn lock_slow(&self, tid: u32, start: u64, deadline: Option<Instant>) -> Option<Acquired> {
        // Spin a little: under a short critical section the owner is about to leave.
        for _ in 0..SPIN_LIMIT {
            let s = self.state.load(Ordering::Relaxed);
            if s & TID_MASK == 0 {
                if let Some(a) = self.try_take_free(s, tid, start, 0) {
                    return Some(a);
                }
            } else if s & WAITERS != 0 {
                break;
            }
            spin_loop();
        }
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & TID_MASK == 0 {
                if let Some(a) = self.try_take_free(s, tid, start, WAITERS) {
                    return Some(a);
                }
                continue;
            }
            if s & TID_MASK == tid
                && deadline.is_none()
                && self.owner_start.load(Ordering::Relaxed) == start
            {
                panic!("deadlock: a thread tried to lock a Lock it already holds");
            }
            let sleeping = s | WAITERS;
            if s & WAITERS == 0
                && self
                    .state
                    .compare_exchange(s, sleeping, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let nap = backoff::nap(deadline)?;
            if futex_wait(&self.state, sleeping, Some(nap)) == Wake::TimedOut
                && self.owner_dead(sleeping, tid, start, owner_is_dead)
            {
                if let Some(a) = self.take_from_dead(sleeping, tid, start) {
                    return Some(a);
                }
            }
        }
    }

    /// CAS a free word (`0` or `OWNER_DIED`) to `tid | extra`.
    #[inline]
    fn try_take_free(&self, s: u32, tid: u32, start: u64, extra: u32) -> Option<Acquired> {
        self.state
            .compare_exchange(s, tid | extra, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.owner_start.store(start, Ordering::Relaxed);
        Some(if s & OWNER_DIED != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        })
    }

    /// Whether the owner recorded in `s` (still the word's value) is dead.
    fn owner_dead(&self, s: u32, tid: u32, start: u64, is_dead: fn(u32, u64) -> bool) -> bool {
        let owner = s & TID_MASK;
        let owner_start = self.owner_start.load(Ordering::Relaxed);
        if self.state.load(Ordering::Acquire) != s {
            return false;
        }
        if owner == tid {
            // Our own id: either we hold it (same start time) or a dead thread whose
            // id we inherited does.
            return owner_start != 0 && owner_start != start;
        }
        is_dead(owner, owner_start)
            && self.state.load(Ordering::Acquire) == s
            && self.owner_start.load(Ordering::Relaxed) == owner_start
    }

    /// CAS a dead owner's word `s` to ours; only one taker wins.
    fn take_from_dead(&self, s: u32, tid: u32, start: u64) -> Option<Acquired> {
        self.state
            .compare_exchange(s, tid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.owner_start.store(start, Ordering::Relaxed);
        Some(Acquired::OwnerDied)
    }

    /// Releases the lock; with `owner_died` the next locker is told the data may be
    /// inconsistent (used when the holder is unwinding from a panic).
    #[inline]
    pub(crate) fn unlock(&self, owner_died: bool) {
        self.owner_start.store(0, Ordering::Relaxed);
        let new = if owner_died { OWNER_DIED } else { 0 };
        if self.state.swap(new, Ordering::Release) & WAITERS != 0 {
            futex_wake(&self.state, 1);
        }
    }

    /// Whether the calling thread holds the lock (exact: only this thread can make
    /// it true or false).
    pub(crate) fn is_owned_by_current_thread(&self) -> bool {
        let (tid, start) = current_thread();
        self.state.load(Ordering::Relaxed) & TID_MASK == tid
            && self.owner_start.load(Ordering::Relaxed) == start
    }

    /// Whether some thread holds the lock right now (a racy snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & TID_MASK != 0
    }

    /// Makes the word say "held by `tid`, started at `start`" (tests of death
    /// detection: a dead or reused owner id).
    #[cfg(test)]
    pub(crate) fn force_owner(&self, tid: u32, start: u64) {
        self.state.store(tid, Ordering::Relaxed);
        self.owner_start.store(start, Ordering::Relaxed);
    }

    /// A deadline `timeout` from now (`None` if it overflows: wait forever).
    pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
        Instant::now().checked_add(timeout)
    }
}
