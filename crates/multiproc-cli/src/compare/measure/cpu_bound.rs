//! CPU-bound work: count the primes below a limit by trial division, in chunks:
//! sequentially, with N threads and with N processes. Speedup and efficiency.
//!
//! The limit is calibrated so that the sequential count takes about a second (a fifth
//! of that with `--quick`) on this machine and build.

use std::time::{Duration, Instant};

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

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let n = plan.workers;
    ctx.step("cpu-bound: calibrating the work size");
    let (limit, _) = calibrate(plan.pick(Duration::from_millis(1000), Duration::from_millis(200)));
    let all = chunks(limit);
    let rounds = plan.pick(3, 1);
    let (mut seq, mut thr, mut pro) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts = Vec::new();
    let mut errors: [Option<String>; 3] = [None, None, None];
    for round in 1..=rounds {
        ctx.step(&format!("cpu-bound: sequential (round {round}/{rounds})"));
        let t0 = Instant::now();
        counts.push(count_ranges(all.clone()));
        seq.push(t0.elapsed().as_secs_f64());

        ctx.step(&format!("cpu-bound: {n} threads (round {round}/{rounds})"));
        match threads(&all, n) {
            Ok((c, t)) => {
                counts.push(c);
                thr.push(t);
            }
            Err(e) => errors[1] = Some(format!("failed: {e}")),
        }
        ctx.step(&format!(
            "cpu-bound: {n} processes (round {round}/{rounds})"
        ));
        match processes(&all, n) {
            Ok((c, t)) => {
                counts.push(c);
                pro.push(t);
            }
            Err(e) => errors[2] = Some(format!("failed: {e}")),
        }
    }
    let agree = counts.windows(2).all(|w| w[0] == w[1]);
    let primes = counts.first().copied().unwrap_or(0);

    let kinds = [
        (
            "sequential",
            "sequential".to_owned(),
            Worker::Sequential,
            Summary::of(&seq),
        ),
        (
            "threads",
            format!("{n} threads"),
            Worker::Thread,
            Summary::of(&thr),
        ),
        (
            "processes",
            format!("{n} processes (forkserver)"),
            Worker::Process,
            Summary::of(&pro),
        ),
    ];
    let seq_median = kinds[0].3.map(|s| s.median);
    let mut time = Vec::new();
    let mut speedup = Vec::new();
    let mut efficiency = Vec::new();
    for (i, (id, label, worker, s)) in kinds.into_iter().enumerate() {
        let method = (worker == Worker::Process).then_some(multiproc::StartMethod::ForkServer);
        let with_method = |m: Metric| match method {
            Some(sm) => m.method(sm),
            None => m,
        };
        match s {
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
                        label,
                        worker,
                        100.0 * sp / n as f64,
                    )));
                }
            }
            None => {
                let why = errors[i].clone().unwrap_or_else(|| "not measured".into());
                time.push(with_method(Metric::missing(
                    id,
                    label.clone(),
                    worker,
                    why.clone(),
                )));
                if i > 0 {
                    speedup.push(with_method(Metric::missing(
                        id,
                        label.clone(),
                        worker,
                        why.clone(),
                    )));
                    efficiency.push(with_method(Metric::missing(id, label, worker, why)));
                }
            }
        }
    }
    let pool_why = "Pool is not available in this build";
    let pool_label = format!("process Pool of {n}, map");
    time.push(Metric::missing(
        "process_pool",
        pool_label.clone(),
        Worker::Process,
        pool_why,
    ));
    speedup.push(Metric::missing(
        "process_pool",
        pool_label.clone(),
        Worker::Process,
        pool_why,
    ));
    efficiency.push(Metric::missing(
        "process_pool",
        pool_label,
        Worker::Process,
        pool_why,
    ));

    let mut section = Section {
        id: "cpu_bound",
        title: "CPU-bound work",
        claim: "CPU-bound work runs in parallel in processes; in Rust, unlike Python, \
                threads run in parallel too.",
        status: Status::Measured,
        method: format!(
            "Count the primes below {} by trial division ({primes} primes{}), in {CHUNKS} \
             chunks; workers take every {n}th chunk. Times include starting and joining the \
             workers; median of {rounds} interleaved round(s). Speedup = sequential time / \
             parallel time; efficiency = speedup / {n} workers.",
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
        ],
        findings: Vec::new(),
    };
    for (id, what) in [
        ("threads", "threads"),
        ("processes", "processes"),
        ("process_pool", "a process pool"),
    ] {
        if let Some(s) = section.get("speedup", id) {
            section.findings.push(format!(
                "{n} {what}: {}x faster than sequential ({}% efficiency).",
                stats::fmt_num(s),
                stats::fmt_num(100.0 * s / n as f64)
            ));
        }
    }
    section.finish()
}

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
