//! I/O-bound work: many tasks that only wait, each in its own thread or its own
//! process, all at once. With perfect overlap the batch takes as long as one wait.

use std::time::{Duration, Instant};

use multiproc::{Process, Thread};

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::stats::{self, Summary};

/// A task that waits `ms` milliseconds, as on a slow network or disk.
pub(crate) fn wait_task(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let tasks: usize = plan.pick(128, 32);
    let wait_ms: u64 = plan.pick(50, 20);
    let rounds = plan.pick(3, 1);
    let (mut thr, mut pro) = (Vec::new(), Vec::new());
    let mut errors = [None, None];
    for round in 1..=rounds {
        ctx.step(&format!(
            "io-bound: {tasks} waiting threads (round {round}/{rounds})"
        ));
        match threads(tasks, wait_ms) {
            Ok(t) => thr.push(t),
            Err(e) => errors[0] = Some(format!("failed: {e}")),
        }
        ctx.step(&format!(
            "io-bound: {tasks} waiting processes (round {round}/{rounds})"
        ));
        match processes(tasks, wait_ms) {
            Ok(t) => pro.push(t),
            Err(e) => errors[1] = Some(format!("failed: {e}")),
        }
    }
    let mut wall = Vec::new();
    let mut overhead = Vec::new();
    for (i, (id, label, worker, s)) in [
        (
            "threads",
            format!("{tasks} threads"),
            Worker::Thread,
            Summary::of(&thr),
        ),
        (
            "processes",
            format!("{tasks} processes (forkserver)"),
            Worker::Process,
            Summary::of(&pro),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let with_method = |m: Metric| {
            if worker == Worker::Process {
                m.method(multiproc::StartMethod::ForkServer)
            } else {
                m
            }
        };
        match s {
            Some(s) => {
                wall.push(with_method(
                    super::starting::summary_metric(id, label.clone(), worker, s)
                        .extra("ideal_ms", wait_ms as f64),
                ));
                let per_task = (s.median - wait_ms as f64).max(0.0) * 1000.0 / tasks as f64;
                overhead.push(with_method(Metric::value(id, label, worker, per_task)));
            }
            None => {
                let why = errors[i].clone().unwrap_or_else(|| "not measured".into());
                wall.push(with_method(Metric::missing(
                    id,
                    label.clone(),
                    worker,
                    why.clone(),
                )));
                overhead.push(with_method(Metric::missing(id, label, worker, why)));
            }
        }
    }
    let mut section = Section {
        id: "io_bound",
        title: "I/O-bound work (waiting)",
        claim: "For tasks that mostly wait, threads are enough: they overlap the waits as \
                well as processes do, for less.",
        status: Status::Measured,
        method: format!(
            "{tasks} tasks that each wait {wait_ms} ms, all started at once, each in its own \
             worker; wall time from the first start to the last join, median of {rounds} \
             round(s). Perfect overlap would take {wait_ms} ms; the excess divided by \
             {tasks} is the overhead per task."
        ),
        groups: vec![
            Group {
                id: "wall",
                title: format!("wall time for {tasks} tasks of {wait_ms} ms wait"),
                unit: "ms",
                better: Better::Lower,
                metrics: wall,
            },
            Group {
                id: "overhead",
                title: "overhead per task beyond the wait".into(),
                unit: "us",
                better: Better::Lower,
                metrics: overhead,
            },
        ],
        findings: Vec::new(),
    };
    if let (Some(t), Some(p)) = (
        section.get("wall", "threads"),
        section.get("wall", "processes"),
    ) {
        section.findings.push(format!(
            "{tasks} waits of {wait_ms} ms took {} ms in threads and {} ms in processes \
             (sequentially they would take {} ms).",
            stats::fmt_num(t),
            stats::fmt_num(p),
            stats::fmt_num((tasks as u64 * wait_ms) as f64)
        ));
    }
    section.finish()
}

fn threads(tasks: usize, wait_ms: u64) -> multiproc::Result<f64> {
    let t0 = Instant::now();
    let hs = (0..tasks)
        .map(|_| Thread::start(move || wait_task(wait_ms)))
        .collect::<multiproc::Result<Vec<_>>>()?;
    for h in hs {
        h.join()?;
    }
    Ok(stats::ms(t0.elapsed()))
}

fn processes(tasks: usize, wait_ms: u64) -> multiproc::Result<f64> {
    let t0 = Instant::now();
    let ps = (0..tasks)
        .map(|_| Process::start_with(wait_task, wait_ms))
        .collect::<multiproc::Result<Vec<_>>>()?;
    for p in ps {
        p.join()?;
    }
    Ok(stats::ms(t0.elapsed()))
}
