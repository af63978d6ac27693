//! Sharing: a counter incremented by N workers, M times each.
//!
//! Threads share the counter (an atomic, or a `Mutex<u64>`) and the parent sees every
//! increment. Processes without shared memory each increment their own copy: the
//! parent's counter stays where it was, every increment is lost to it. Processes with
//! shared memory see each other's increments, at the price of a lock between
//! processes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use multiproc::{process, Process, StartMethod, Thread, Value};

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::rounds::{self, Contender};
use crate::compare::stats;

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let n = plan.workers;
    let m: u64 = plan.pick(1_000_000, 250_000);
    let expected = n as u64 * m;
    let n_rounds = plan.pick(7, 5);
    type Count = fn(usize, u64) -> multiproc::Result<(u64, f64)>;
    let kinds: [(&str, &str, Worker, Option<StartMethod>, Count); 4] = [
        (
            "threads_atomic",
            "threads, AtomicU64::fetch_add",
            Worker::Thread,
            None,
            threads_atomic,
        ),
        (
            "threads_mutex",
            "threads, Mutex<u64>",
            Worker::Thread,
            None,
            threads_mutex,
        ),
        (
            "processes_value_atomic",
            "processes, shm::Value fetch_add",
            Worker::Process,
            Some(StartMethod::ForkServer),
            |n, m| processes_value(n, m, false),
        ),
        (
            "processes_value_lock",
            "processes, shm::Value with its lock",
            Worker::Process,
            Some(StartMethod::ForkServer),
            |n, m| processes_value(n, m, true),
        ),
    ];
    // What the parent read after each round, per kind.
    let mut seen: [Vec<u64>; 4] = Default::default();
    let mut contenders: Vec<Contender<'_>> = kinds
        .iter()
        .zip(seen.iter_mut())
        .map(|(&(_, label, _, _, count), seen)| {
            Contender::new(label, move || {
                let (v, secs) = count(n, m)?;
                seen.push(v);
                Ok(v as f64 / secs / 1e6)
            })
        })
        .collect();
    let measured = rounds::interleave(ctx, "sharing", n_rounds, &mut contenders);
    drop(contenders);
    let mut finals = Vec::new();
    let mut rates = Vec::new();
    for (((id, label, worker, method, _), r), seen) in kinds.iter().zip(&measured).zip(&seen) {
        let with_method = |m: Metric| match method {
            Some(sm) => m.method(*sm),
            None => m,
        };
        // The counter's worst round: any lost update shows.
        finals.push(with_method(match seen.iter().min() {
            Some(&low) => Metric::value(*id, *label, *worker, low as f64)
                .extra("lost_updates", (expected - low.min(expected)) as f64)
                .extra("rounds", seen.len() as f64),
            None => Metric::missing(
                *id,
                *label,
                *worker,
                r.error.clone().unwrap_or_else(|| "not measured".into()),
            ),
        }));
        rates.push(with_method(rounds::metric(id, *label, *worker, "M/s", r)));
    }
    rounds::pair_with(&mut rates, "threads_atomic");
    ctx.step("sharing: processes without shared memory");
    match processes_private(n, m) {
        Ok((seen, children_counted)) => finals.push(
            Metric::value(
                "processes_private",
                "processes (fork), a captured counter",
                Worker::Process,
                seen as f64,
            )
            .method(StartMethod::Fork)
            .extra("lost_updates", (expected - seen.min(expected)) as f64)
            .extra("counted_by_children", children_counted as f64)
            .note(format!(
                "each child counted its own copy to {m}; the parent's counter did not move"
            )),
        ),
        Err(e) => finals.push(
            Metric::missing(
                "processes_private",
                "processes (fork), a captured counter",
                Worker::Process,
                format!("failed: {e}"),
            )
            .method(StartMethod::Fork),
        ),
    }
    let mut section = Section {
        id: "sharing",
        title: "Sharing a counter",
        claim: "Threads share memory; processes do not, unless they use shared memory, \
                whose lock has a price.",
        status: Status::Measured,
        method: format!(
            "{n} workers increment one counter {m} times each (expected total {expected}); \
             the value the parent reads afterwards (the lowest over the rounds), and \
             increments per second over the whole run including starting the workers: \
             {n_rounds} interleaved rounds (every kind once per round, the order rotated \
             per round), median and min..max over the rounds; ratio: over the threads' \
             atomic counter in the same round. Processes without shared memory: once."
        ),
        groups: vec![
            Group {
                id: "final",
                title: format!(
                    "counter value the parent reads (expected {})",
                    stats::fmt_num(expected as f64)
                ),
                unit: "count",
                better: Better::Higher,
                metrics: finals,
            },
            Group {
                id: "rate",
                title: "increments per second, all workers together".into(),
                unit: "M/s",
                better: Better::Higher,
                metrics: rates,
            },
        ],
        findings: Vec::new(),
    };
    if let Some(seen) = section.get("final", "processes_private") {
        section.findings.push(format!(
            "Without shared memory the parent saw {} of {} increments: {} updates lost.",
            stats::fmt_num(seen),
            stats::fmt_num(expected as f64),
            stats::fmt_num(expected as f64 - seen)
        ));
    }
    if let (Some(a), Some(l)) = (
        section.get("rate", "threads_atomic"),
        section.get("rate", "threads_mutex"),
    ) {
        section.findings.push(format!(
            "Between threads an atomic counter ran at {} M increments/s, a Mutex at {} M/s ({}x slower).",
            stats::fmt_num(a),
            stats::fmt_num(l),
            stats::fmt_num(a / l)
        ));
    }
    if let (Some(a), Some(l)) = (
        section.get("rate", "processes_value_atomic"),
        section.get("rate", "processes_value_lock"),
    ) {
        section.findings.push(format!(
            "Between processes an shm::Value counter ran at {} M increments/s with fetch_add \
             and {} M/s under its lock (get + set, as in Python): the lock costs {} ns per \
             increment here.",
            stats::fmt_num(a),
            stats::fmt_num(l),
            stats::fmt_num((1e3 / l - 1e3 / a).max(0.0))
        ));
    }
    section.finish()
}

/// (final value, seconds) with `n` threads doing `fetch_add` `m` times each.
fn threads_atomic(n: usize, m: u64) -> multiproc::Result<(u64, f64)> {
    let counter = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let handles = (0..n)
        .map(|_| {
            let c = Arc::clone(&counter);
            Thread::start(move || {
                for _ in 0..m {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect::<multiproc::Result<Vec<_>>>()?;
    for h in handles {
        h.join()?;
    }
    Ok((counter.load(Ordering::Relaxed), t0.elapsed().as_secs_f64()))
}

/// (final value, seconds) with `n` threads incrementing under a `Mutex` `m` times each.
fn threads_mutex(n: usize, m: u64) -> multiproc::Result<(u64, f64)> {
    let counter = Arc::new(Mutex::new(0u64));
    let t0 = Instant::now();
    let handles = (0..n)
        .map(|_| {
            let c = Arc::clone(&counter);
            Thread::start(move || {
                for _ in 0..m {
                    *c.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                }
            })
        })
        .collect::<multiproc::Result<Vec<_>>>()?;
    for h in handles {
        h.join()?;
    }
    let v = *counter.lock().unwrap_or_else(|e| e.into_inner());
    Ok((v, t0.elapsed().as_secs_f64()))
}

/// A child's share of the shared counter: `m` increments of `v`, atomically or, as
/// Python's `with v.get_lock(): v.value += 1`, under its lock.
fn value_worker((v, locked, m): (Value<u64>, bool, u64)) {
    match v.get_lock().filter(|_| locked) {
        None => {
            for _ in 0..m {
                v.fetch_add(1);
            }
        }
        Some(lock) => {
            for _ in 0..m {
                // A holder that died would hand over the guard; the count stays usable.
                let _guard = lock.lock().unwrap_or_else(|died| died.into_inner());
                v.set(v.get() + 1);
            }
        }
    }
}

/// (final value, seconds) with `n` processes sharing one `shm::Value`.
fn processes_value(n: usize, m: u64, locked: bool) -> multiproc::Result<(u64, f64)> {
    let v = if locked {
        Value::with_lock(0u64)?
    } else {
        Value::new(0u64)?
    };
    let t0 = Instant::now();
    let children = (0..n)
        .map(|_| Process::start_with(value_worker, (v.clone(), locked, m)))
        .collect::<multiproc::Result<Vec<_>>>()?;
    for p in children {
        p.join()?;
    }
    Ok((v.get(), t0.elapsed().as_secs_f64()))
}

/// (what the parent sees, what the children counted in all): forked children increment
/// the counter they captured, which is their own copy.
fn processes_private(n: usize, m: u64) -> multiproc::Result<(u64, u64)> {
    let counter = Arc::new(AtomicU64::new(0));
    let children = (0..n)
        .map(|_| {
            let c = Arc::clone(&counter);
            // As in `starting`: every thread this program started has been joined.
            process::Builder::new().allow_threads(true).fork(move || {
                for _ in 0..m {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                c.load(Ordering::Relaxed)
            })
        })
        .collect::<multiproc::Result<Vec<_>>>()?;
    let mut counted = 0;
    for p in children {
        counted += p.join()?;
    }
    Ok((counter.load(Ordering::Relaxed), counted))
}
