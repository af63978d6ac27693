//! How a ring's waiters spin before they sleep: by time, not by a count of `pause`
//! instructions, with a budget that follows how long waits really last, and with
//! batching kept for real one-way streams.
//!
//! A `pause` costs anything from a few to 140 cycles depending on the CPU (24 ns on
//! the project's AMD EPYC guests), so a schedule counted in pauses means
//! different waits on different machines: counted in pauses, a ping-pong receiver
//! re-checked every 1.5 µs here and, once it looked like a stream, waited 6 µs
//! before its first look (issue 14: 6.3 µs Pipe round trips). Here every figure is
//! a time read from the clock (`Instant`, a vDSO call of ~25 ns with the TSC
//! clocksource).
//!
//! Three decisions, all per ring side and process-local ([`Pace`]):
//!
//! * **When to look.** A waiter looks at the shared word at every iteration for
//!   [`TIGHT`], then every [`SLOW_POLL`]: a reply from a running peer is seen within
//!   a few tens of nanoseconds, and a long wait does not keep pulling a cache line
//!   the peer is writing.
//! * **Batching.** A receiver that keeps catching up with a one-way stream of small
//!   messages moves the shared lines between the CPUs at every message; waiting
//!   [`BATCH`] before its first look lets records pile up, read in one go. Whether a
//!   ring carries such a stream is *measured*: after a batching wait, the receiver
//!   counts the records it takes before it waits again. Two or more: a stream, batch
//!   again. One: a ping-pong (the peer waits for our answer, so nothing piles up),
//!   where the delay is pure latency: stop, and probe again only after twice as many
//!   waits as last time (up to [`MAX_GAP`]), which makes probing cost a few
//!   nanoseconds per round trip.
//! * **How long to spin.** [`MAX_SPIN`] at most. A wait that ended in the spin
//!   doubles the budget; a wait that slept but was over within `MAX_SPIN` (the peer
//!   was waking up: ~20 µs for a halted vCPU here) restores it to `MAX_SPIN`, so two
//!   peers that missed each other once do not keep sleeping in turn; a wait that
//!   lasted longer (an idle peer, or one that is not running on an oversubscribed
//!   machine) halves it, down to [`MIN_SPIN`]. A spin that sees its own clock jump by
//!   [`PREEMPTED`] between two looks (this process lost its CPU, so the machine is
//!   oversubscribed) stops at once and drops the budget to `MIN_SPIN`: on a busy
//!   machine a spinning waiter takes the CPU its peer needs.
//! * **Whether spinning can pay at all.** On a machine with more runnable tasks
//!   than CPUs (`backoff::crowded`), a waiter looks once and sleeps: its spin would
//!   hold a CPU that its peer, or someone, waits for (a `Pipe` round trip under a
//!   compiler load: 35-58 µs spinning, 10-15 µs sleeping at once, 11 µs for a raw
//!   pipe).
//! * **Whether the peer can answer at all.** After the quick looks, a spinning
//!   waiter publishes its CPU in the ring and compares it with the CPU its peer last
//!   spun on: the same one means the peer waits for this very CPU (the scheduler
//!   put both on one, as wake-up affinity does), and spinning only delays it, so
//!   the waiter sleeps at once. Counted in pauses, each hand-off of a 1 MiB message's
//!   fragments between two such processes cost a whole 50 µs spin (issue 14's Pipe
//!   1 MiB runs at 3-5 GB/s beside 24).

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Longest spin before sleeping: the crate's one spin window (its reason is there).
pub(crate) const MAX_SPIN: Duration = crate::backoff::SPIN_WINDOW;
/// Shortest spin budget the adaptation goes down to.
pub(crate) const MIN_SPIN: Duration = Duration::from_micros(2);
/// How long a waiter looks at every iteration before it slows down.
pub(crate) const TIGHT: Duration = Duration::from_micros(2);
/// Interval between looks after [`TIGHT`].
pub(crate) const SLOW_POLL: Duration = Duration::from_nanos(500);
/// How long a receiver of a stream waits before its first look.
pub(crate) const BATCH: Duration = Duration::from_micros(4);
/// A gap this long between two looks of a spin means the waiter lost its CPU.
pub(crate) const PREEMPTED: Duration = Duration::from_micros(40);
/// Quick waits before the first batching probe (and after a probe that paid).
pub(crate) const MIN_GAP: u32 = 4;
/// Most quick waits between two batching probes on a ring that never streams.
pub(crate) const MAX_GAP: u32 = 1024;
/// How many times a waiter yields before it sleeps when only one CPU is usable.
const YIELDS: u32 = 8;

/// How a spin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spun {
    /// The condition held, after this long.
    Ready(Duration),
    /// The budget ran out (or the deadline came): sleep.
    Exhausted,
    /// This process lost its CPU while spinning: sleep.
    Preempted,
    /// The peer last waited on this CPU, so it cannot run while we spin: sleep.
    PeerHere,
    /// The machine has more runnable tasks than CPUs: sleep without spinning.
    Crowded,
}

/// One side's waiting policy, learned from its past waits (process-local; the
/// callers serialize the waits of one side, and a lost update only skews a guess).
#[derive(Debug)]
pub(crate) struct Pace {
    /// Spin budget, in nanoseconds.
    budget_ns: AtomicU32,
    /// Records taken since the last wait (counted by the receiver).
    taken: AtomicU32,
    /// `1` if the last wait was a batching wait.
    batching: AtomicU32,
    /// Waits ended by spinning since the last probe.
    quick: AtomicU32,
    /// Quick waits before the next probe.
    gap: AtomicU32,
    /// Batching waits ever started (for tests).
    batched: AtomicU32,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            budget_ns: AtomicU32::new(ns(MAX_SPIN)),
            taken: AtomicU32::new(0),
            batching: AtomicU32::new(0),
            quick: AtomicU32::new(0),
            gap: AtomicU32::new(MIN_GAP),
            batched: AtomicU32::new(0),
        }
    }
}

fn ns(d: Duration) -> u32 {
    u32::try_from(d.as_nanos()).unwrap_or(u32::MAX)
}

impl Pace {
    /// Counts one record taken (a plain load and store: no locked instruction on
    /// the receive path).
    #[inline]
    pub(crate) fn took_one(&self) {
        self.taken
            .store(self.taken.load(Relaxed).saturating_add(1), Relaxed);
    }

    /// Batching waits started so far.
    #[cfg(test)]
    pub(crate) fn batched(&self) -> u32 {
        self.batched.load(Relaxed)
    }

    /// The current spin budget.
    #[cfg(test)]
    pub(crate) fn budget(&self) -> Duration {
        Duration::from_nanos(u64::from(self.budget_ns.load(Relaxed)))
    }

    /// Decides how long a receiver about to wait delays its first look: [`BATCH`]
    /// on a ring that streams (or for a probe), else zero.
    pub(crate) fn plan_data(&self) -> Duration {
        let taken = self.taken.swap(0, Relaxed);
        if self.batching.load(Relaxed) != 0 {
            if taken >= 2 {
                // The last delay let records pile up: a stream.
                self.gap.store(MIN_GAP, Relaxed);
                return self.start_batch();
            }
            // One record per wait: a ping-pong, where the delay is latency.
            self.batching.store(0, Relaxed);
            self.quick.store(0, Relaxed);
            let gap = self.gap.load(Relaxed);
            self.gap.store(gap.saturating_mul(2).min(MAX_GAP), Relaxed);
            return Duration::ZERO;
        }
        if self.quick.load(Relaxed) >= self.gap.load(Relaxed) {
            self.quick.store(0, Relaxed);
            return self.start_batch();
        }
        Duration::ZERO
    }

    fn start_batch(&self) -> Duration {
        self.batching.store(1, Relaxed);
        self.batched
            .store(self.batched.load(Relaxed).wrapping_add(1), Relaxed);
        BATCH
    }

    /// Spins until `ready()` holds, the budget runs out or `deadline` passes; looks
    /// first after `delay`. Once the quick looks are over, asks `peer_here()` once
    /// whether the peer shares this CPU, and stops if it does.
    pub(crate) fn spin(
        &self,
        delay: Duration,
        deadline: Option<Instant>,
        ready: &mut dyn FnMut() -> bool,
        peer_here: &mut dyn FnMut() -> bool,
    ) -> Spun {
        // Under loom, no spinning: every wait goes to the futex sleep, the path the
        // model must explore.
        #[cfg(loom)]
        {
            let _ = (delay, deadline, ready, peer_here);
            Spun::Exhausted
        }
        #[cfg(not(loom))]
        {
            let now = Instant::now();
            if crate::backoff::crowded(now) {
                // More runnable tasks than CPUs: a spin holds a CPU someone waits
                // for, maybe the peer (see `backoff`); so does a yield, which
                // hands it to anyone. One look, then sleep.
                return if ready() {
                    Spun::Ready(Duration::ZERO)
                } else {
                    Spun::Crowded
                };
            }
            if single_cpu() {
                // The peer cannot run while we spin: yield to it a few times.
                let start = Instant::now();
                for _ in 0..YIELDS {
                    if ready() {
                        return Spun::Ready(start.elapsed());
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    std::thread::yield_now();
                }
                return Spun::Exhausted;
            }
            let budget = Duration::from_nanos(u64::from(self.budget_ns.load(Relaxed)));
            spin_for(delay, budget, deadline, ready, peer_here)
        }
    }

    /// Learns from a wait that spun with outcome `spun` and lasted `waited` in all.
    pub(crate) fn learn(&self, spun: Spun, waited: Duration) {
        let b = self.budget_ns.load(Relaxed);
        let next = match spun {
            Spun::Ready(_) => {
                self.quick
                    .store(self.quick.load(Relaxed).saturating_add(1), Relaxed);
                b.saturating_mul(2)
            }
            Spun::Exhausted if waited <= MAX_SPIN => ns(MAX_SPIN),
            Spun::Exhausted => b / 2,
            Spun::Preempted => 0,
            // Say nothing about how long the peer takes when it has a CPU.
            Spun::PeerHere | Spun::Crowded => b,
        };
        self.budget_ns
            .store(next.clamp(ns(MIN_SPIN), ns(MAX_SPIN)), Relaxed);
    }
}

/// The spin itself: pause, read the clock, look at the condition when it is time.
#[cfg(not(loom))]
fn spin_for(
    delay: Duration,
    budget: Duration,
    deadline: Option<Instant>,
    ready: &mut dyn FnMut() -> bool,
    peer_here: &mut dyn FnMut() -> bool,
) -> Spun {
    let start = Instant::now();
    let end = match deadline {
        Some(d) => (start + budget).min(d),
        None => start + budget,
    };
    let first = start + delay;
    let tight_until = first + TIGHT;
    let mut next_look = first;
    let mut last = start;
    loop {
        let now = Instant::now();
        if now.saturating_duration_since(last) >= PREEMPTED {
            return if ready() {
                Spun::Ready(now - start)
            } else {
                Spun::Preempted
            };
        }
        last = now;
        if now >= next_look {
            if ready() {
                return Spun::Ready(now - start);
            }
            if now >= tight_until {
                if next_look <= tight_until && peer_here() {
                    return Spun::PeerHere;
                }
                next_look = now + SLOW_POLL;
            }
        }
        if now >= end {
            return Spun::Exhausted;
        }
        std::hint::spin_loop();
    }
}

/// Returns `true` if this process may run on one CPU only (`taskset -c 0`).
#[cfg(not(loom))]
fn single_cpu() -> bool {
    use std::sync::atomic::AtomicU8;
    static CACHE: AtomicU8 = AtomicU8::new(0);
    match CACHE.load(Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let one = crate::sys::thread::usable_cpus() == Some(1);
            CACHE.store(if one { 2 } else { 1 }, Relaxed);
            one
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A receiver that takes `per_wait` records between waits, each wait ending in
    /// its spin: how many of `waits` waits were batching waits.
    fn batching_waits(per_wait: u32, waits: u32) -> u32 {
        let p = Pace::default();
        for _ in 0..waits {
            for _ in 0..per_wait {
                p.took_one();
            }
            let _ = p.plan_data();
            p.learn(Spun::Ready(Duration::from_nanos(300)), Duration::ZERO);
        }
        p.batched()
    }

    #[test]
    fn ping_pong_receiver_stops_batching() {
        // One record per wait: probes at waits 4, 12, 28, ... (gaps doubling to
        // MAX_GAP), then one every MAX_GAP waits.
        let n = batching_waits(1, 100_000);
        assert!(n <= 8 + 100_000 / MAX_GAP, "{n} batching waits");
        assert!(n >= 1, "the receiver never probed");
    }

    #[test]
    fn stream_receiver_keeps_batching() {
        // Several records per wait: once probed, every wait batches.
        let n = batching_waits(5, 1000);
        assert!(n >= 1000 - MIN_GAP - 1, "{n} batching waits");
    }

    #[test]
    fn stream_that_turns_into_ping_pong_stops_batching() {
        let p = Pace::default();
        for per_wait in [5, 5, 5, 5, 5, 5, 5, 1, 1, 1] {
            for _ in 0..per_wait {
                p.took_one();
            }
            let _ = p.plan_data();
            p.learn(Spun::Ready(Duration::from_nanos(300)), Duration::ZERO);
        }
        // The first single-record wait ends the batching; the next probe is MIN_GAP
        // * 2 quick waits away.
        for _ in 0..MIN_GAP {
            p.took_one();
            assert_eq!(p.plan_data(), Duration::ZERO);
            p.learn(Spun::Ready(Duration::from_nanos(300)), Duration::ZERO);
        }
    }

    #[test]
    fn budget_follows_wait_lengths() {
        let p = Pace::default();
        assert_eq!(p.budget(), MAX_SPIN);
        // Long waits (an idle or descheduled peer) halve it down to MIN_SPIN.
        for _ in 0..20 {
            p.learn(Spun::Exhausted, Duration::from_millis(5));
        }
        assert_eq!(p.budget(), MIN_SPIN);
        // A wait that slept but was over within MAX_SPIN restores it at once: both
        // peers asleep in turn must not stay the steady state.
        p.learn(Spun::Exhausted, Duration::from_micros(30));
        assert_eq!(p.budget(), MAX_SPIN);
        // Losing the CPU while spinning drops it to the minimum.
        p.learn(Spun::Preempted, Duration::from_micros(100));
        assert_eq!(p.budget(), MIN_SPIN);
        // Waits that end in the spin double it.
        p.learn(
            Spun::Ready(Duration::from_nanos(500)),
            Duration::from_nanos(500),
        );
        assert_eq!(p.budget(), MIN_SPIN * 2);
    }

    #[test]
    fn spin_stops_when_the_peer_shares_the_cpu() {
        let p = Pace::default();
        let mut asked = 0;
        let r = p.spin(Duration::ZERO, None, &mut || false, &mut || {
            asked += 1;
            true
        });
        assert!(
            r == Spun::PeerHere || (single_cpu() && r == Spun::Exhausted),
            "{r:?}"
        );
        assert!(asked <= 1);
        // It tells nothing about the peer's speed: the budget stays.
        p.learn(r, Duration::from_millis(1));
        assert!(single_cpu() || p.budget() == MAX_SPIN);
    }

    #[test]
    fn a_crowded_machine_gets_one_look_and_no_spin() {
        crate::backoff::FORCE_CROWDED.set(Some(true));
        let p = Pace::default();
        let mut looks = 0;
        let r = p.spin(
            Duration::ZERO,
            None,
            &mut || {
                looks += 1;
                false
            },
            &mut || false,
        );
        crate::backoff::FORCE_CROWDED.set(None);
        assert_eq!(r, Spun::Crowded);
        assert_eq!(looks, 1, "a crowded waiter looked {looks} times");
        // It says nothing about the peer's speed: the budget stays.
        p.learn(r, Duration::from_millis(1));
        assert_eq!(p.budget(), MAX_SPIN);
    }

    #[test]
    fn a_quiet_machine_spins() {
        crate::backoff::FORCE_CROWDED.set(Some(false));
        let p = Pace::default();
        let mut looks = 0;
        let r = p.spin(
            Duration::ZERO,
            None,
            &mut || {
                looks += 1;
                looks == 3
            },
            &mut || false,
        );
        crate::backoff::FORCE_CROWDED.set(None);
        assert!(matches!(r, Spun::Ready(_)) || single_cpu(), "{r:?}");
    }

    #[test]
    fn spin_respects_delay_and_deadline() {
        let p = Pace::default();
        let mut looks = 0;
        // A deadline already past: at most one look, and no waiting.
        let r = p.spin(
            Duration::ZERO,
            Some(Instant::now()),
            &mut || {
                looks += 1;
                false
            },
            &mut || false,
        );
        assert!(!matches!(r, Spun::Ready(_)));
        assert!(looks <= 1, "{looks} looks");
        // A condition that holds is seen (a delay only postpones the first look).
        let r = p.spin(Duration::from_micros(1), None, &mut || true, &mut || false);
        assert!(matches!(r, Spun::Ready(_)));
    }
}
