//! Automatic chunk sizes that follow the items' measured cost (joblib's
//! `batch_size="auto"`), for the process backend.
//!
//! A process pool pays a fixed cost per chunk (encoding, a worker's wake-up and its
//! answer's, the manager's bookkeeping: tens of µs on a loaded 2-vCPU guest), so the
//! fixed split of [`auto_chunksize`] (about 64 chunks) made a map of 10^3 trivial
//! items cost hundreds of ns per item. Each `map` with an automatic chunk size now
//! records what one item of its function cost (the call's wall time × the workers it
//! kept busy ÷ its items), and the next automatic split grows chunks so that each
//! takes about [`TARGET`]: trivial items get a few large chunks, heavy ones keep the
//! fixed split (the rule only ever grows a chunk, never shrinks it below
//! [`auto_chunksize`]).
//!
//! The estimate is kept per function (its `TypeId`: each `fn` item has its own type),
//! not per pool: one pool often maps a trivial function and a heavy one in turn, and
//! a pool-wide figure would give the heavy one the trivial one's large chunks. A
//! measurement above the estimate replaces it at once (items grew heavier: chunks
//! shrink for the next call), one below it moves it halfway (a single fast call does
//! not make chunks balloon). A map that failed only ever raises an estimate it
//! already has (an error that came at once, a closed pool or an unencodable item,
//! says nothing of the cost).
//!
//! Bounds on a grown chunk: it is expected to take at most [`TARGET`] of work, so a
//! worker's death (the chunk reruns with [`retries`](super::Builder::retries)) loses
//! little, progress is reported at least that often, and the imbalance at the end of
//! a map is at most about [`TARGET`]. A pool with a
//! [`task_timeout`](super::Builder::task_timeout) (which applies to a whole chunk)
//! keeps the fixed split: the estimate comes from earlier calls, and a function whose
//! items grew heavier since would put a grown chunk past the timeout and fail items
//! that pass one by one (a cap at a fraction of the timeout has the same flaw).

use std::any::TypeId;
use std::sync::Mutex;
use std::time::Duration;

use super::handle::auto_chunksize;

/// The work a grown chunk is sized to take.
pub(crate) const TARGET: Duration = Duration::from_millis(1);

/// How many functions' costs a pool remembers (the oldest is forgotten first).
const REMEMBERED: usize = 32;

/// The chunk size for `len` items on `workers` workers, given the estimated cost
/// of one item (`None`: not measured yet) and the task timeout: [`auto_chunksize`],
/// grown to chunks of about [`TARGET`] of work (at most `len` items) unless there is
/// a timeout.
pub(crate) fn chunksize(
    len: usize,
    workers: usize,
    per_item: Option<Duration>,
    timeout: Option<Duration>,
) -> usize {
    let base = auto_chunksize(len, workers);
    let (Some(per_item), None) = (per_item, timeout) else {
        return base;
    };
    let per_item = per_item.as_nanos().max(1);
    let grown = usize::try_from(TARGET.as_nanos() / per_item).unwrap_or(usize::MAX);
    base.max(grown.min(len))
}

/// What one item of a call cost: `elapsed` for `len` items in chunks of `chunksize`,
/// times the workers the call could keep busy (`None` for an empty call).
pub(crate) fn per_item(
    len: usize,
    chunksize: usize,
    workers: usize,
    elapsed: Duration,
) -> Option<Duration> {
    if len == 0 {
        return None;
    }
    let busy = len.div_ceil(chunksize.max(1)).min(workers).max(1);
    let ns = elapsed.as_nanos() * busy as u128 / len as u128;
    Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
}

/// The next estimate after measuring `now`: a higher cost replaces the estimate at
/// once, a lower one moves it halfway.
pub(crate) fn update(old: Option<Duration>, now: Duration) -> Duration {
    match old {
        Some(old) if now < old => now + (old - now) / 2,
        _ => now,
    }
}

/// A pool's estimates of one item's cost, per function.
#[derive(Debug, Default)]
pub(crate) struct Costs {
    by_fn: Mutex<Vec<(TypeId, Duration)>>,
}

impl Costs {
    /// The estimated cost of one item of the function `key`, if measured.
    pub(crate) fn get(&self, key: TypeId) -> Option<Duration> {
        let by_fn = self.by_fn.lock().unwrap_or_else(|e| e.into_inner());
        by_fn.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
    }

    /// Records that one item of the function `key` cost `now`, in a call that
    /// succeeded (`ok`) or failed (then only a higher cost than the estimate counts).
    pub(crate) fn record(&self, key: TypeId, now: Duration, ok: bool) {
        let mut by_fn = self.by_fn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = by_fn.iter_mut().find(|(k, _)| *k == key) {
            if ok || now > e.1 {
                e.1 = update(Some(e.1), now);
            }
            return;
        }
        if !ok {
            return;
        }
        if by_fn.len() >= REMEMBERED {
            by_fn.remove(0);
        }
        by_fn.push((key, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: Duration = Duration::from_nanos(1);

    #[test]
    fn unmeasured_items_get_the_fixed_split() {
        for (len, workers) in [(0, 2), (40, 2), (1_000, 2), (1_000_000, 32)] {
            assert_eq!(
                chunksize(len, workers, None, None),
                auto_chunksize(len, workers)
            );
        }
    }

    #[test]
    fn trivial_items_get_few_large_chunks() {
        // 50 ns an item (fixed costs included): 1 ms holds 20,000 items.
        assert_eq!(chunksize(1_000, 2, Some(50 * NS), None), 1_000);
        assert_eq!(chunksize(10_000, 2, Some(50 * NS), None), 10_000);
        assert_eq!(chunksize(100_000, 2, Some(50 * NS), None), 20_000);
        // Long inputs never get more chunks than the fixed split.
        assert_eq!(
            chunksize(10_000_000, 2, Some(50 * NS), None),
            auto_chunksize(10_000_000, 2)
        );
        // A zero cost is taken as 1 ns, and a chunk is at most the input.
        assert_eq!(chunksize(10_000, 2, Some(Duration::ZERO), None), 10_000);
        assert_eq!(chunksize(0, 2, Some(Duration::ZERO), None), 1);
    }

    #[test]
    fn heavy_items_keep_the_fixed_split() {
        let ms = Duration::from_millis(1);
        assert_eq!(chunksize(40, 2, Some(50 * ms), None), 1);
        assert_eq!(
            chunksize(1_000, 2, Some(ms), None),
            auto_chunksize(1_000, 2)
        );
        // 10 µs an item: 100 items make 1 ms, more than the fixed split's 16.
        assert_eq!(chunksize(1_000, 2, Some(10_000 * NS), None), 100);
    }

    #[test]
    fn a_task_timeout_keeps_the_fixed_split() {
        for t in [Duration::from_micros(800), Duration::from_secs(10)] {
            assert_eq!(
                chunksize(100_000, 2, Some(50 * NS), Some(t)),
                auto_chunksize(100_000, 2)
            );
            assert_eq!(chunksize(40, 2, Some(50 * NS), Some(t)), 1);
        }
    }

    #[test]
    fn per_item_counts_the_workers_a_call_kept_busy() {
        let us = Duration::from_micros(1);
        // One chunk: one worker busy for the whole call.
        assert_eq!(per_item(1_000, 1_000, 2, 50 * us), Some(50 * NS));
        // Many chunks on 2 workers: twice the wall time per item.
        assert_eq!(per_item(1_000, 16, 2, 50 * us), Some(100 * NS));
        assert_eq!(per_item(0, 1, 2, us), None);
    }

    #[test]
    fn the_estimate_rises_at_once_and_falls_by_halves() {
        assert_eq!(update(None, 80 * NS), 80 * NS);
        assert_eq!(update(Some(80 * NS), 200 * NS), 200 * NS);
        assert_eq!(update(Some(200 * NS), 100 * NS), 150 * NS);
        let costs = Costs::default();
        let (a, b) = (TypeId::of::<u8>(), TypeId::of::<u16>());
        assert_eq!(costs.get(a), None);
        costs.record(a, 100 * NS, true);
        costs.record(b, 9 * NS, true);
        costs.record(a, 50 * NS, true);
        assert_eq!(costs.get(a), Some(75 * NS));
        assert_eq!(costs.get(b), Some(9 * NS));
    }

    #[test]
    fn a_failed_map_only_raises_an_estimate() {
        let costs = Costs::default();
        let (a, b) = (TypeId::of::<u8>(), TypeId::of::<u16>());
        // A quick failure neither lowers an estimate nor starts one.
        costs.record(a, 100 * NS, true);
        costs.record(a, NS, false);
        costs.record(b, NS, false);
        assert_eq!(costs.get(a), Some(100 * NS));
        assert_eq!(costs.get(b), None);
        // A slow one raises it at once.
        costs.record(a, 5_000 * NS, false);
        assert_eq!(costs.get(a), Some(5_000 * NS));
    }

    #[test]
    fn a_pool_remembers_a_bounded_number_of_functions() {
        fn key<const N: usize>() -> TypeId {
            TypeId::of::<[u8; N]>()
        }
        let costs = Costs::default();
        let keys = [
            key::<0>(),
            key::<1>(),
            key::<2>(),
            key::<3>(),
            key::<4>(),
            key::<5>(),
            key::<6>(),
            key::<7>(),
            key::<8>(),
            key::<9>(),
            key::<10>(),
            key::<11>(),
            key::<12>(),
            key::<13>(),
            key::<14>(),
            key::<15>(),
            key::<16>(),
            key::<17>(),
            key::<18>(),
            key::<19>(),
            key::<20>(),
            key::<21>(),
            key::<22>(),
            key::<23>(),
            key::<24>(),
            key::<25>(),
            key::<26>(),
            key::<27>(),
            key::<28>(),
            key::<29>(),
            key::<30>(),
            key::<31>(),
            key::<32>(),
        ];
        for k in keys {
            costs.record(k, NS, true);
        }
        assert_eq!(costs.by_fn.lock().unwrap().len(), REMEMBERED);
        assert_eq!(costs.get(keys[0]), None);
        assert_eq!(costs.get(keys[32]), Some(NS));
    }
}
