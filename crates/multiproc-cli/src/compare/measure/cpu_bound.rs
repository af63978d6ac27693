//! CPU-bound work: count the primes below a limit by trial division, in chunks:
//! sequentially, with N threads and with N processes. Speedup and efficiency.
//!
//! The limit is calibrated so that the sequential count takes about 0.6 s (0.12 s with
//! `--quick`) on this machine and build. The kinds run in interleaved rounds, and each
//! speedup is paired: sequential time / parallel time of the same round.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use multiproc::pool::{Backend, Pool};
use multiproc::{Process, Thread};

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::rounds::{self, Ceiling, Contender, Rounds};
use crate::compare::stats;

/// Chunks the range is cut into.
const CHUNKS: u64 = 40;

/// Whether `n` is prime, by trial division by odd numbers.
pub(crate) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// The primes in `lo..hi`.
pub(crate) fn count_range((lo, hi): (u64, u64)) -> u64 {
    (lo..hi).filter(|&n| is_prime(n)).count() as u64
}

/// The primes in every range of `ranges` (one worker's share).
pub(crate) fn count_ranges(ranges: Vec<(u64, u64)>) -> u64 {
    ranges.into_iter().map(count_range).sum()
}

/// `0..limit` cut into [`CHUNKS`] ranges.
pub(crate) fn chunks(limit: u64) -> Vec<(u64, u64)> {
    let step = limit.div_ceil(CHUNKS);
    (0..CHUNKS)
        .map(|i| (i * step, ((i + 1) * step).min(limit)))
        .collect()
}

/// Worker `w` of `n` gets chunks `w, w + n, w + 2n…`.
fn share(all: &[(u64, u64)], w: usize, n: usize) -> Vec<(u64, u64)> {
    all.iter().skip(w).step_by(n).copied().collect()
}

/// A limit whose sequential count takes about `target`.
fn calibrate(target: Duration) -> (u64, f64) {
    let mut limit = 50_000u64;
    loop {
        let t0 = Instant::now();
        std::hint::black_box(count_ranges(chunks(limit)));
        let t = t0.elapsed().as_secs_f64();
        if t >= 0.02 || limit > 1 << 40 {
            // Trial division up to L costs about L^1.5.
            let scaled = limit as f64 * (target.as_secs_f64() / t).powf(1.0 / 1.5);
            let rounded = (scaled / 10_000.0).round().max(1.0) as u64 * 10_000;
            return (rounded, t);
        }
        limit *= 4;
    }
}

/// A trivial task, to measure what a pool adds per task.
pub(crate) fn identity(x: u64) -> u64 {
    x
}

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let n = plan.workers;
    ctx.step("cpu-bound: calibrating the work size");
    let (limit, _) = calibrate(plan.pick(Duration::from_millis(600), Duration::from_millis(120)));
    let all = chunks(limit);
    let n_rounds = 5;
    let trivial_tasks: u64 = plan.pick(20_000, 3_000);
    let counts = RefCell::new(Vec::new());
    // Pools only, per round: create + first result (ms), wall time per trivial task (us).
    let mut ready_ms: [Vec<Option<f64>>; 2] = Default::default();
    let mut task_us: [Vec<Option<f64>>; 2] = Default::default();
    let record = |primes: u64, secs: f64| {
        counts.borrow_mut().push(primes);
        secs
    };
    let mut contenders = vec![
        Contender::new("sequential", || {
            let t0 = Instant::now();
            let primes = count_ranges(all.clone());
            Ok(record(primes, t0.elapsed().as_secs_f64()))
        }),
        Contender::new(format!("{n} threads"), || {
            let (primes, secs) = threads(&all, n)?;
            Ok(record(primes, secs))
        }),
        Contender::new(format!("{n} processes"), || {
            let (primes, secs) = processes(&all, n)?;
            Ok(record(primes, secs))
        }),
    ];
    for ((backend, what), (ready, task)) in [
        (Backend::Threads, "thread"),
        (Backend::Processes, "process"),
    ]
    .into_iter()
    .zip(ready_ms.iter_mut().zip(task_us.iter_mut()))
    {
        let all = &all;
        let record = &record;
        contenders.push(Contender::new(format!("{what} Pool of {n}"), move || {
            let r = pool_run(backend, n, all, trivial_tasks)?;
            ready.push(Some(r.ready_ms));
            task.push(Some(r.task_us));
            Ok(record(r.primes, r.secs))
        }));
    }
    let measured = rounds::interleave(ctx, "cpu-bound", n_rounds, &mut contenders);
    drop(contenders);
    let counts = counts.into_inner();
    let agree = counts.windows(2).all(|w| w[0] == w[1]);
    let primes = counts.first().copied().unwrap_or(0);

    let kinds: [(&str, String, Worker); 5] = [
        ("sequential", "sequential".to_owned(), Worker::Sequential),
        ("threads", format!("{n} threads"), Worker::Thread),
        (
            "processes",
            format!("{n} processes (forkserver)"),
            Worker::Process,
        ),
        (
            "thread_pool",
            format!("thread Pool of {n}, map"),
            Worker::Thread,
        ),
        (
            "process_pool",
            format!("process Pool of {n}, map"),
            Worker::Process,
        ),
    ];
    // The most a parallel run can gain: one CPU per worker, as many as there are.
    let max_speedup = n.min(plan.cpus).max(1) as f64;
    let limit_why = format!(
        "{n} worker{} on {} CPU{} can reach",
        if n == 1 { "" } else { "s" },
        plan.cpus,
        if plan.cpus == 1 { "" } else { "s" }
    );
    let (mut time, mut speedup, mut efficiency, mut task, mut ready) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (id, label, worker)) in kinds.into_iter().enumerate() {
        let r = &measured[i];
        let with_method = |m: Metric| {
            if worker == Worker::Process {
                m.method(multiproc::StartMethod::ForkServer)
            } else {
                m
            }
        };
        time.push(with_method(rounds::metric(
            id,
            label.clone(),
            worker,
            "s",
            r,
        )));
        if i > 0 {
            // Speedup round by round: sequential / parallel, both of the same round.
            let sp = Rounds {
                values: rounds::paired_ratios(&measured[0].values, &r.values),
                error: r.error.clone().or_else(|| measured[0].error.clone()),
            };
            let ceiling = Ceiling {
                max: max_speedup,
                why: limit_why.clone(),
            };
            let m = rounds::bounded(id, label.clone(), worker, "x", &sp, Some(&ceiling));
            speedup.push(with_method(m));
            let eff = Rounds {
                values: sp
                    .values
                    .iter()
                    .map(|v| v.map(|v| 100.0 * v / n as f64))
                    .collect(),
                error: sp.error.clone(),
            };
            let ceiling = Ceiling {
                max: 100.0 * max_speedup / n as f64,
                why: limit_why.clone(),
            };
            let m = rounds::bounded(id, label.clone(), worker, "%", &eff, Some(&ceiling));
            efficiency.push(with_method(m));
        }
        if i >= 3 {
            let pool_label = label.replace(", map", "");
            let why = r.error.clone();
            for (out, series, unit) in [
                (&mut task, &task_us[i - 3], "us"),
                (&mut ready, &ready_ms[i - 3], "ms"),
            ] {
                // Rounds in which the pool run failed have no figure.
                let mut values = vec![None; n_rounds];
                let done = r.values.iter().enumerate().filter(|(_, v)| v.is_some());
                for ((round, _), v) in done.zip(series) {
                    values[round] = *v;
                }
                let rs = Rounds {
                    values,
                    error: why.clone(),
                };
                out.push(with_method(rounds::metric(
                    id,
                    pool_label.clone(),
                    worker,
                    unit,
                    &rs,
                )));
            }
        }
    }
    rounds::pair_with(&mut time, "sequential");

    let mut section = Section {
        id: "cpu_bound",
        title: "CPU-bound work",
        claim: "CPU-bound work runs in parallel in processes; in Rust, unlike Python, \
                threads run in parallel too.",
        status: Status::Measured,
        method: format!(
            "Count the primes below {} by trial division ({primes} primes{}), in {CHUNKS} \
             chunks. Threads and processes: worker i takes every {n}th chunk, started and \
             joined inside the timing. Pools: created inside the timing, then map with one \
             chunk per task (the pool balances). {n_rounds} interleaved rounds: every kind \
             once per round, back to back, the order rotated per round. Speedup = sequential \
             time / parallel time of the same round; efficiency = speedup / {n} workers; \
             figures are medians over the rounds, ranges their min..max. A round whose \
             speedup is above {}x (the most {limit_why}) by more than {}% is left out, and a \
             speedup whose whole range is above it is flagged impossible. \
             Pool overhead: wall time per task of map over {trivial_tasks} trivial tasks with \
             one item per task; pool start: create + first result.",
            stats::fmt_num(limit as f64),
            stats::fmt_num(max_speedup),
            stats::fmt_num(rounds::ROUND_SLACK * 100.0),
            if agree {
                ""
            } else {
                "; WARNING: the counts disagreed"
            }
        ),
        groups: vec![
            Group {
                id: "time",
                title: format!(
                    "time to count the primes below {}",
                    stats::fmt_num(limit as f64)
                ),
                unit: "s",
                better: Better::Lower,
                metrics: time,
            },
            Group {
                id: "speedup",
                title: format!("speedup over sequential with {n} workers"),
                unit: "x",
                better: Better::Higher,
                metrics: speedup,
            },
            Group {
                id: "efficiency",
                title: format!("parallel efficiency (speedup / {n})"),
                unit: "%",
                better: Better::Higher,
                metrics: efficiency,
            },
            Group {
                id: "pool_task",
                title: "pool overhead: wall time per trivial task, one item per task".into(),
                unit: "us",
                better: Better::Lower,
                metrics: task,
            },
            Group {
                id: "pool_ready",
                title: format!("pool start: create {n} workers and get a first result"),
                unit: "ms",
                better: Better::Lower,
                metrics: ready,
            },
        ],
        findings: Vec::new(),
    };
    for (id, what) in [
        ("threads", "threads"),
        ("processes", "processes"),
        ("thread_pool", "pooled threads"),
        ("process_pool", "pooled processes"),
    ] {
        let Some(m) = section.metric("speedup", id) else {
            continue;
        };
        if let (Some(s), Some(lo), Some(hi)) = (m.value, m.min, m.max) {
            section.findings.push(format!(
                "{n} {what}: {}x faster than sequential ({}% efficiency); {}x to {}x round \
                 by round{}.",
                stats::fmt_num(s),
                stats::fmt_num(100.0 * s / n as f64),
                stats::fmt_num(lo),
                stats::fmt_num(hi),
                if m.impossible().is_some() {
                    " (impossible: a measurement artifact)"
                } else {
                    ""
                }
            ));
        }
    }
    if let (Some(t), Some(p)) = (
        section.get("pool_task", "thread_pool"),
        section.get("pool_task", "process_pool"),
    ) {
        section.findings.push(format!(
            "A trivial task costs {} us through the thread Pool and {} us through the process Pool.",
            stats::fmt_num(t),
            stats::fmt_num(p)
        ));
    }
    section.finish()
}

/// A pool run: the primes counted, the seconds taken, and the pool's own figures.
struct PoolRun {
    primes: u64,
    secs: f64,
    /// Create + first result, in ms.
    ready_ms: f64,
    /// Wall time per trivial task through `map` with one item per task, in us.
    task_us: f64,
}

/// A pool run: its time includes creating the pool.
fn pool_run(
    backend: Backend,
    n: usize,
    all: &[(u64, u64)],
    trivial: u64,
) -> multiproc::Result<PoolRun> {
    let t0 = Instant::now();
    let pool = Pool::builder().backend(backend).workers(n).build()?;
    pool.apply(identity, 0)?;
    let ready_ms = stats::ms(t0.elapsed());
    let primes: u64 = pool
        .map_chunked(count_range, all.to_vec(), 1)?
        .into_iter()
        .sum();
    let secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let echoed = pool.map_chunked(identity, 0..trivial, 1)?;
    let task_us = stats::us(t1.elapsed()) / trivial as f64;
    debug_assert_eq!(echoed.len() as u64, trivial);
    pool.close();
    pool.join();
    Ok(PoolRun {
        primes,
        secs,
        ready_ms,
        task_us,
    })
}

/// (primes, seconds) with `n` threads, each counting its share.
fn threads(all: &[(u64, u64)], n: usize) -> multiproc::Result<(u64, f64)> {
    let t0 = Instant::now();
    let handles = (0..n)
        .map(|w| {
            let mine = share(all, w, n);
            Thread::start(move || count_ranges(mine))
        })
        .collect::<multiproc::Result<Vec<_>>>()?;
    let mut total = 0;
    for h in handles {
        total += h.join()?;
    }
    Ok((total, t0.elapsed().as_secs_f64()))
}

/// (primes, seconds) with `n` processes, each counting its share.
fn processes(all: &[(u64, u64)], n: usize) -> multiproc::Result<(u64, f64)> {
    let t0 = Instant::now();
    let children = (0..n)
        .map(|w| Process::start_with(count_ranges, share(all, w, n)))
        .collect::<multiproc::Result<Vec<_>>>()?;
    let mut total = 0;
    for p in children {
        total += p.join()?;
    }
    Ok((total, t0.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_primes() {
        assert_eq!(count_range((0, 100)), 25);
        assert_eq!(count_ranges(chunks(100_000)), 9592);
        let all = chunks(1000);
        let shares: u64 = (0..3).map(|w| count_ranges(share(&all, w, 3))).sum();
        assert_eq!(shares, 168);
    }
}
