//! The crate's two waiting figures: how long a waiter spins before it sleeps
//! ([`Backoff`], [`SPIN_WINDOW`]), and how long a sleeper sleeps before it checks
//! that the process or thread it waits for is still alive ([`LIVENESS_TICK`]); and
//! whether spinning pays at all right now ([`crowded`]).
//!
//! Every blocking wait in multiproc (a ring's reader or writer, a queue's `join`,
//! a robust lock, a barrier, a pool task's waiter, a process's `join`) uses these
//! two, so that they are tuned in one place.
//!
//! # Crowded machines
//!
//! Spinning pays when the peer runs on another CPU: its answer is seen within
//! nanoseconds instead of a wake-up later. When the machine has more runnable tasks
//! than CPUs, it loses twice: the spinner holds a CPU that its peer (or anyone) is
//! waiting for, and the scheduler charges the spin to the spinner, which then waits
//! longer for a CPU when it has real work. Measured on a 2-vCPU machine running 10+
//! compilers: a `Pipe` round trip of `u64`s took 35-58 µs (mean) with the ring's
//! waiters spinning, 10-15 µs with them sleeping at once; a raw pipe took 11 µs.
//!
//! So a process samples the machine's runnable count ([`runnable_tasks`]) at most
//! every [`CROWD_SAMPLE`] while it waits, and when the samples keep finding more
//! runnable tasks than online CPUs for [`CROWD_CONFIRM`] (no sample in between finding
//! fewer), its waiters stop spinning for a while ([`CROWD_HOLD`], doubled, up to
//! [`CROWD_HOLD_MAX`], each time the crowd is found again soon after a hold ran out: a
//! waiter that sleeps is not counted, so the count a sleeping pair sees says less, and
//! the pair goes back to spinning to look again; during a hold and soon after it, two
//! crowded samples in a row are enough, so that looking again costs little spinning).
//!
//! The crowd must last because on a small machine a spinning pair already fills the
//! count: on 2 CPUs one more task (a child being started, a kernel thread, a
//! short-lived command) is a crowd for a sample. Measured on a quiet 2-vCPU machine,
//! a benchmark starting a child process saw 3-4 runnable tasks for 1-3 ms at each
//! start; with two samples in a row enough, each start stopped spinning for 20-320 ms,
//! and the `Pipe` round trip took 1.1 µs instead of 0.45 µs. A busy loop or a build
//! is found within a few milliseconds all the same.
//! A thread under a real-time policy (`chrt`) counts as on a quiet machine: ordinary
//! tasks never take its CPU. The count is machine-wide: in a container limited to some of the machine's CPUs
//! it says less about the CPUs this process may use; a waiter that is preempted while
//! it spins still stops at once (see `ipc::ring::spin`).
//!
//! [`runnable_tasks`]: crate::sys::proc::runnable_tasks

#![cfg_attr(loom, allow(dead_code))]

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;
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

/// How often a waiting process samples the machine's runnable count.
pub(crate) const CROWD_SAMPLE: Duration = Duration::from_millis(1);

/// How long the samples must keep finding a crowd before waiters stop spinning:
/// longer than a child's start (1-3 ms of one extra runnable task, see the module
/// docs), short against a build or a busy loop.
pub(crate) const CROWD_CONFIRM: Duration = Duration::from_millis(5);

/// The longest gap between two crowded samples of one run: a waiter that lost its CPU
/// to the crowd takes no samples meanwhile (under a build, ~15 ms off per slice), but a
/// process that did not wait for longer says nothing about the time between.
pub(crate) const CROWD_GAP: Duration = Duration::from_millis(50);

/// Crowded samples a run needs, besides lasting [`CROWD_CONFIRM`]: two samples far
/// apart with nothing between (the waiter slept) are not a lasting crowd.
const CROWD_RUN: u64 = 3;

/// How long waiters stop spinning once the machine is found crowded (the first time;
/// crowded samples extend it, and it grows while the crowd keeps coming back).
pub(crate) const CROWD_HOLD: Duration = Duration::from_millis(10);

/// The longest the hold grows to while the crowd keeps being found.
pub(crate) const CROWD_HOLD_MAX: Duration = Duration::from_millis(320);

/// Whether waiters should sleep at once instead of spinning: the machine was found
/// with more runnable tasks than CPUs (see the module docs). `now` is the caller's
/// clock reading. Samples `/proc/loadavg` at most every [`CROWD_SAMPLE`] per process.
pub(crate) fn crowded(now: Instant) -> bool {
    #[cfg(test)]
    if let Some(forced) = FORCE_CROWDED.get() {
        return forced;
    }
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    static CROWD: Crowd = Crowd::new();
    let at = ns(now.saturating_duration_since(*EPOCH.get_or_init(Instant::now)));
    if CROWD.due(at) {
        // A real-time thread is not delayed by ordinary runnable tasks; a process
        // that cannot read the count keeps spinning as before.
        let runnable = if crate::sys::thread::is_realtime() {
            Ok(0)
        } else {
            crate::sys::proc::runnable_tasks()
        };
        if let Ok(runnable) = runnable {
            CROWD.observe(at, runnable, crate::sys::proc::online_cpus());
        }
    }
    CROWD.is_crowded(at)
}

#[cfg(test)]
thread_local! {
    /// Tests set what [`crowded`] answers on their thread.
    pub(crate) static FORCE_CROWDED: std::cell::Cell<Option<bool>> =
        const { std::cell::Cell::new(None) };
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The crowd detector's state, process-wide (times in nanoseconds from an epoch;
/// threads race on it harmlessly: a lost update skews one sample).
#[derive(Debug)]
struct Crowd {
    /// When the last sample was taken (`u64::MAX`: never).
    last_sample: AtomicU64,
    /// When the current run of crowded samples began (`u64::MAX`: the last sample
    /// found no crowd).
    run_start: AtomicU64,
    /// When the current run's last sample was taken.
    run_last: AtomicU64,
    /// The current run's samples.
    run_len: AtomicU64,
    /// Waiters sleep at once until then (`0`: never yet).
    until: AtomicU64,
    /// The current hold.
    hold: AtomicU64,
}

impl Crowd {
    const fn new() -> Crowd {
        Crowd {
            last_sample: AtomicU64::new(u64::MAX),
            run_start: AtomicU64::new(u64::MAX),
            run_last: AtomicU64::new(0),
            run_len: AtomicU64::new(0),
            until: AtomicU64::new(0),
            hold: AtomicU64::new(CROWD_HOLD.as_nanos() as u64),
        }
    }

    /// Whether a sample is due at `at`; if so, this caller takes it.
    fn due(&self, at: u64) -> bool {
        let last = self.last_sample.load(Relaxed);
        if last != u64::MAX && at.saturating_sub(last) < ns(CROWD_SAMPLE) {
            return false;
        }
        self.last_sample
            .compare_exchange(last, at, Relaxed, Relaxed)
            .is_ok()
    }

    /// Takes a sample: `runnable` tasks on `cpus` online CPUs at `at`.
    fn observe(&self, at: u64, runnable: u32, cpus: u32) {
        if runnable <= cpus {
            self.run_start.store(u64::MAX, Relaxed);
            return;
        }
        let mut start = self.run_start.load(Relaxed);
        let last = self.run_last.load(Relaxed);
        let mut len = self.run_len.load(Relaxed).saturating_add(1);
        if start == u64::MAX || start > at || at.saturating_sub(last) > ns(CROWD_GAP) {
            (start, len) = (at, 1);
            self.run_start.store(at, Relaxed);
        }
        self.run_last.store(at, Relaxed);
        self.run_len.store(len, Relaxed);
        let until = self.until.load(Relaxed);
        let mut hold = self.hold.load(Relaxed);
        // During a hold and soon after it, the crowd is known: two samples in a row
        // find it again (a waiter that spins meanwhile takes a CPU the crowd wants).
        let known = until != 0 && at.saturating_sub(until) < hold;
        let lasting = at - start >= ns(CROWD_CONFIRM) && len >= CROWD_RUN;
        if !(lasting || (known && len >= 2)) {
            // Not yet a crowd: maybe a passing task (a child starting, a kernel thread).
            return;
        }
        if at >= until {
            // A new crowded spell: soon after the last one, the crowd is likely the
            // same (found again by spinning), so hold longer; long after, start over.
            hold = if until != 0 && at.saturating_sub(until) < hold {
                hold.saturating_mul(2).min(ns(CROWD_HOLD_MAX))
            } else {
                ns(CROWD_HOLD)
            };
            self.hold.store(hold, Relaxed);
        }
        self.until.store(at.saturating_add(hold), Relaxed);
    }

    fn is_crowded(&self, at: u64) -> bool {
        at < self.until.load(Relaxed)
    }
}

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

    const MS: u64 = 1_000_000;

    #[test]
    fn samples_are_rate_limited() {
        let c = Crowd::new();
        assert!(c.due(5 * MS), "the first sample is due at once");
        assert!(!c.due(5 * MS + MS / 2));
        assert!(c.due(6 * MS));
    }

    /// Samples every millisecond from `from` until `to` (excluded), all finding
    /// `runnable` tasks on 2 CPUs.
    fn samples(c: &Crowd, from: u64, to: u64, runnable: u32) {
        let mut at = from;
        while at < to {
            c.observe(at, runnable, 2);
            at += MS;
        }
    }

    #[test]
    fn a_child_starting_does_not_stop_spinning() {
        // What a benchmark on a quiet 2-CPU machine saw: a spinning pair (2 runnable)
        // and, each time it started a child, 3-4 runnable tasks for up to 3 ms, every
        // 10 ms (one round of round trips), for a second.
        let c = Crowd::new();
        let confirm = ns(CROWD_CONFIRM);
        assert!(
            4 * MS < confirm,
            "a start's samples must span less than CROWD_CONFIRM"
        );
        let mut at = MS;
        for round in 0..100 {
            let start = at;
            samples(&c, start, start + 4 * MS, 3 + round % 2);
            samples(&c, start + 4 * MS, start + 10 * MS, 2);
            for t in (start..start + 10 * MS).step_by(MS as usize / 4) {
                assert!(!c.is_crowded(t), "round {round}: crowded at {t}");
            }
            at += 10 * MS;
        }
    }

    #[test]
    fn a_lasting_crowd_stops_spinning_for_a_hold() {
        let c = Crowd::new();
        let confirm = ns(CROWD_CONFIRM);
        let hold = ns(CROWD_HOLD);
        // A busy loop beside the pair: 3 runnable from 1 ms on.
        samples(&c, MS, MS + confirm, 3);
        assert!(
            !c.is_crowded(MS + confirm - 1),
            "confirmed before CROWD_CONFIRM"
        );
        c.observe(MS + confirm, 3, 2);
        assert!(
            c.is_crowded(MS + confirm),
            "not confirmed after CROWD_CONFIRM"
        );
        assert!(c.is_crowded(MS + confirm + hold - 1));
        assert!(!c.is_crowded(MS + confirm + hold));
        // One quiet sample breaks the run: the next crowd starts from nothing.
        let late = 100 * MS + 10 * ns(CROWD_HOLD_MAX);
        samples(&c, late, late + confirm - MS, 9);
        c.observe(late + confirm - MS, 2, 2);
        samples(&c, late + confirm, late + 2 * confirm, 9);
        assert!(!c.is_crowded(late + 2 * confirm - MS));
        // Quiet samples do not end a hold early; crowded ones extend it.
        c.observe(late + 2 * confirm, 9, 2);
        let until = late + 2 * confirm + hold;
        assert!(c.is_crowded(until - 1));
        c.observe(late + 2 * confirm + MS, 1, 2);
        assert!(c.is_crowded(until - 1));
        samples(&c, late + 3 * confirm, late + 4 * confirm + MS, 9);
        assert!(c.is_crowded(late + 4 * confirm + hold - 1));
    }

    #[test]
    fn a_crowd_seen_between_lost_slices_is_found() {
        // Under a build, a waiter runs ~2 ms and then waits ~15 ms for a CPU, taking
        // no sample meanwhile: its samples still make a run.
        let c = Crowd::new();
        for slice in [0, 17, 34] {
            samples(&c, slice * MS, slice * MS + 2 * MS, 12);
        }
        assert!(c.is_crowded(35 * MS));
    }

    #[test]
    fn crowded_samples_far_apart_are_no_run() {
        // A process that waits once in a while (and was not descheduled: it just did
        // not wait) may catch a passing task each time.
        let c = Crowd::new();
        let gap = ns(CROWD_GAP);
        let mut at = MS;
        for _ in 0..20 {
            c.observe(at, 3, 2);
            assert!(!c.is_crowded(at));
            at += gap + MS;
        }
        // Two crowded samples CROWD_CONFIRM apart, with no sample between (the waiter
        // slept): not enough either.
        c.observe(at, 3, 2);
        c.observe(at + ns(CROWD_CONFIRM), 3, 2);
        assert!(!c.is_crowded(at + ns(CROWD_CONFIRM)));
    }

    /// Feeds crowded samples every millisecond from `at` until the hold moves; returns
    /// when that sample was taken.
    fn find(c: &Crowd, mut at: u64) -> u64 {
        let until = c.until.load(Relaxed);
        loop {
            c.observe(at, 3, 2);
            if c.until.load(Relaxed) != until {
                return at;
            }
            at += MS;
        }
    }

    #[test]
    fn a_crowd_found_again_soon_after_a_hold_needs_two_samples() {
        let c = Crowd::new();
        let confirm = ns(CROWD_CONFIRM);
        let found = find(&c, MS);
        assert_eq!(
            found,
            MS + confirm,
            "the first crowd must last CROWD_CONFIRM"
        );
        let until = c.until.load(Relaxed);
        c.observe(until - MS, 2, 2);
        // Spinning again after the hold: the same crowd, found at the second sample.
        assert_eq!(find(&c, until), until + MS);
        // Long after, it must last again.
        let until = c.until.load(Relaxed);
        c.observe(until - MS, 2, 2);
        let late = until + 2 * ns(CROWD_HOLD_MAX);
        assert_eq!(find(&c, late), late + confirm);
    }

    #[test]
    fn the_hold_grows_while_the_crowd_comes_back_and_resets_after() {
        let c = Crowd::new();
        let mut at = MS;
        let mut holds = Vec::new();
        for _ in 0..8 {
            // Spinning again after a hold finds the crowd again (a sleeping pair's
            // samples said less).
            let found = find(&c, at);
            let until = c.until.load(Relaxed);
            holds.push(until - found);
            c.observe(until - MS, 2, 2);
            at = until;
        }
        assert_eq!(holds[0], ns(CROWD_HOLD));
        assert_eq!(holds[1], 2 * ns(CROWD_HOLD));
        assert_eq!(*holds.last().unwrap(), ns(CROWD_HOLD_MAX));
        // Long after the last spell, a new one starts from CROWD_HOLD.
        let late = at + 10 * ns(CROWD_HOLD_MAX);
        let found = find(&c, late);
        assert_eq!(c.until.load(Relaxed) - found, ns(CROWD_HOLD));
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
