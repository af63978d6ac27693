//! CPU-bound work: count the primes below a limit by trial division, in chunks:
//! sequentially, with N threads and with N processes. Speedup and efficiency.
//!
//! The limit is calibrated so that the sequential count takes about a second (a fifth
//! of that with `--quick`) on this machine and build.

use std::time::{Duration, Instant};

use multiproc::pool::{Backend, Pool};
use multiproc::{Process, Thread};

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::stats::{self, Summary};

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
fn identity(x: u64) -> u64 {
    x
}

/// What one kind of parallel run measured, over the rounds.
#[derive(Default)]
struct Runs {
    secs: Vec<f64>,
    /// Pools only: create + first result, in ms.
    ready_ms: Vec<f64>,
    /// Pools only: wall time per trivial task through `map` with one item per task, in us.
    task_us: Vec<f64>,
    error: Option<String>,
}

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let n = plan.workers;
    ctx.step("cpu-bound: calibrating the work size");
    let (limit, _) = calibrate(plan.pick(Duration::from_millis(1000), Duration::from_millis(200)));
    let all = chunks(limit);
    let rounds = plan.pick(3, 2);
    let trivial_tasks: u64 = plan.pick(20_000, 3_000);
    // sequential, threads, processes, thread pool, process pool
    let mut runs: [Runs; 5] = Default::default();
    let mut counts = Vec::new();
    for round in 1..=rounds {
        ctx.step(&format!("cpu-bound: sequential (round {round}/{rounds})"));
        let t0 = Instant::now();
        counts.push(count_ranges(all.clone()));
        runs[0].secs.push(t0.elapsed().as_secs_f64());

        ctx.step(&format!("cpu-bound: {n} threads (round {round}/{rounds})"));
        record(&mut runs[1], &mut counts, threads(&all, n));
        ctx.step(&format!(
            "cpu-bound: {n} processes (round {round}/{rounds})"
        ));
        record(&mut runs[2], &mut counts, processes(&all, n));
        for (i, backend, what) in [
            (3, Backend::Threads, "thread"),
            (4, Backend::Processes, "process"),
        ] {
            ctx.step(&format!(
                "cpu-bound: {what} Pool of {n} (round {round}/{rounds})"
            ));
            record(
                &mut runs[i],
                &mut counts,
                pool_run(backend, n, &all, trivial_tasks),
            );
        }
    }
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
    let seq_median = Summary::of(&runs[0].secs).map(|s| s.median);
    let (mut time, mut speedup, mut efficiency, mut task, mut ready) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (id, label, worker)) in kinds.into_iter().enumerate() {
        let r = &runs[i];
        let with_method = |m: Metric| {
            if worker == Worker::Process {
                m.method(multiproc::StartMethod::ForkServer)
            } else {
                m
            }
        };
        let why = r.error.clone().unwrap_or_else(|| "not measured".into());
        let missing = |label: &str| with_method(Metric::missing(id, label, worker, why.clone()));
        match Summary::of(&r.secs) {
            Some(s) => {
                time.push(with_method(super::starting::summary_metric(
                    id,
                    label.clone(),
                    worker,
                    s,
                )));
                if let (Some(base), true) = (seq_median, i > 0) {
                    let sp = base / s.median;
                    speedup.push(with_method(Metric::value(id, label.clone(), worker, sp)));
                    efficiency.push(with_method(Metric::value(
                        id,
                        label.clone(),
                        worker,
                        100.0 * sp / n as f64,
                    )));
                }
            }
            None => {
                time.push(missing(&label));
                if i > 0 {
                    speedup.push(missing(&label));
                    efficiency.push(missing(&label));
                }
            }
        }
        if i >= 3 {
            let pool_label = label.replace(", map", "");
            task.push(match Summary::of(&r.task_us) {
                Some(s) => with_method(super::starting::summary_metric(
                    id,
                    pool_label.clone(),
                    worker,
                    s,
                )),
                None => missing(&pool_label),
            });
            ready.push(match Summary::of(&r.ready_ms) {
                Some(s) => with_method(super::starting::summary_metric(
                    id,
                    pool_label.clone(),
                    worker,
                    s,
                )),
                None => missing(&pool_label),
            });
        }
    }

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
             chunk per task (the pool balances). Median of {rounds} interleaved round(s). \
             Speedup = sequential time / parallel time; efficiency = speedup / {n} workers. \
             Pool overhead: wall time per task of map over {trivial_tasks} trivial tasks with \
             one item per task; pool start: create + first result.",
            stats::fmt_num(limit as f64),
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
        if let Some(s) = section.get("speedup", id) {
            section.findings.push(format!(
                "{n} {what}: {}x faster than sequential ({}% efficiency).",
                stats::fmt_num(s),
                stats::fmt_num(100.0 * s / n as f64)
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

/// One parallel run: the primes counted, the seconds taken, and a pool's own figures.
struct Round {
    primes: u64,
    secs: f64,
    /// Pools only: (ms to the first result, us per trivial task).
    pool: Option<(f64, f64)>,
}

/// Adds one round's result to `runs`.
fn record(runs: &mut Runs, counts: &mut Vec<u64>, r: multiproc::Result<Round>) {
    match r {
        Ok(round) => {
            counts.push(round.primes);
            runs.secs.push(round.secs);
            if let Some((ready_ms, task_us)) = round.pool {
                runs.ready_ms.push(ready_ms);
                runs.task_us.push(task_us);
            }
        }
        Err(e) => runs.error = Some(format!("failed: {e}")),
    }
}

/// A pool run: its time includes creating the pool.
fn pool_run(
    backend: Backend,
    n: usize,
    all: &[(u64, u64)],
    trivial: u64,
) -> multiproc::Result<Round> {
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
    Ok(Round {
        primes,
        secs,
        pool: Some((ready_ms, task_us)),
    })
}

fn threads(all: &[(u64, u64)], n: usize) -> multiproc::Result<Round> {
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
    Ok(Round {
        primes: total,
        secs: t0.elapsed().as_secs_f64(),
        pool: None,
    })
}

fn processes(all: &[(u64, u64)], n: usize) -> multiproc::Result<Round> {
    let t0 = Instant::now();
    let children = (0..n)
        .map(|w| Process::start_with(count_ranges, share(all, w, n)))
        .collect::<multiproc::Result<Vec<_>>>()?;
    let mut total = 0;
    for p in children {
        total += p.join()?;
    }
    Ok(Round {
        primes: total,
        secs: t0.elapsed().as_secs_f64(),
        pool: None,
    })
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
