//! I/O-bound work: many tasks that only wait, each in its own thread or its own
//! process, all at once. With perfect overlap the batch takes as long as one wait.

use std::time::{Duration, Instant};

use multiproc::{Process, Thread};

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::rounds::{self, Contender, Rounds};
use crate::compare::stats;

/// A task that waits `ms` milliseconds, as on a slow network or disk.
pub(crate) fn wait_task(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let tasks: usize = plan.pick(128, 32);
    let wait_ms: u64 = plan.pick(50, 20);
    let n_rounds = plan.pick(8, 6);
    let mut contenders = vec![
        Contender::new(format!("{tasks} waiting threads"), || {
            threads(tasks, wait_ms)
        }),
        Contender::new(format!("{tasks} waiting processes"), || {
            processes(tasks, wait_ms)
        }),
    ];
    let measured = rounds::interleave(ctx, "io-bound", n_rounds, &mut contenders);
    drop(contenders);
    let mut wall = Vec::new();
    let mut overhead = Vec::new();
    for ((id, label, worker), r) in [
        ("threads", format!("{tasks} threads"), Worker::Thread),
        (
            "processes",
            format!("{tasks} processes (forkserver)"),
            Worker::Process,
        ),
    ]
    .into_iter()
    .zip(&measured)
    {
        let with_method = |m: Metric| {
            if worker == Worker::Process {
                m.method(multiproc::StartMethod::ForkServer)
            } else {
                m
            }
        };
        wall.push(with_method(
            rounds::metric(id, label.clone(), worker, "ms", r).extra("ideal_ms", wait_ms as f64),
        ));
        // The excess over one wait, per task, round by round. A batch can never finish
        // before its waits: a round with no excess is flagged and left out, not clamped.
        let per_task = Rounds {
            values: r
                .values
                .iter()
                .map(|v| v.map(|v| (v - wait_ms as f64) * 1000.0 / tasks as f64))
                .collect(),
            error: r.error.clone(),
        };
        overhead.push(with_method(rounds::metric(
            id, label, worker, "us", &per_task,
        )));
    }
    rounds::pair_with(&mut wall, "threads");
    rounds::pair_with(&mut overhead, "threads");
    let mut section = Section {
        id: "io_bound",
        title: "I/O-bound work (waiting)",
        claim: "For tasks that mostly wait, threads are enough: they overlap the waits as \
                well as processes do, for less.",
        status: Status::Measured,
        method: format!(
            "{tasks} tasks that each wait {wait_ms} ms, all started at once, each in its own \
             worker; wall time from the first start to the last join. {n_rounds} \
             interleaved rounds (threads and processes once per round, the order rotated \
             per round); medians over the rounds, ranges their min..max; ratio: over the \
             threads' figure of the same round. Perfect overlap would take {wait_ms} ms; the \
             excess divided by {tasks} is the overhead per task."
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

/// Milliseconds for `tasks` waiting threads.
fn threads(tasks: usize, wait_ms: u64) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let hs = (0..tasks)
        .map(|_| Thread::start(move || wait_task(wait_ms)))
        .collect::<multiproc::Result<Vec<_>>>()?;
    for h in hs {
        h.join()?;
    }
    Ok(stats::ms(t0.elapsed()))
}

/// Milliseconds for `tasks` waiting processes.
fn processes(tasks: usize, wait_ms: u64) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let ps = (0..tasks)
        .map(|_| Process::start_with(wait_task, wait_ms))
        .collect::<multiproc::Result<Vec<_>>>()?;
    for p in ps {
        p.join()?;
    }
    Ok(stats::ms(t0.elapsed()))
}
