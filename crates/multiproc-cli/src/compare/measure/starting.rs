//! Starting: start and join one worker that does nothing, a thread against a process
//! by each start method, and against handing a trivial task to a running process Pool.
//!
//! The kinds run in interleaved rounds (see [`crate::compare::rounds`]): each
//! round times a short batch of each kind back to back, and the round's figure for a kind
//! is the median of its batch.

use std::time::{Duration, Instant};

use multiproc::pool::{Backend, Pool};
use multiproc::{process, StartMethod, Thread};

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::rounds::{self, Contender};
use crate::compare::stats::{self, Summary};

fn nothing() {}

/// The median of a batch of `f` calls lasting about `budget` (at least 3 calls).
fn batch(budget: Duration, f: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    stats::sample(budget, 0, 3, 10_000, f).map(|s| s.median)
}

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let n_rounds = plan.pick(20, 8);
    let per_batch = Duration::from_millis(plan.pick(50, 15));

    ctx.step("starting: warming up (a fork server, a process Pool)");
    // The first start by forkserver starts the server itself; a pool starts its worker.
    let mut warm = Vec::new();
    for method in StartMethod::ALL {
        if let Err(e) = process::Builder::new()
            .start_method(method)
            .allow_threads(true)
            .start(nothing)
            .and_then(|p| p.join())
        {
            warm.push((method.name(), format!("failed: {e}")));
        }
    }
    let pool = Pool::builder()
        .backend(Backend::Processes)
        .workers(1)
        .build()
        .and_then(|p| p.apply(super::cpu_bound::identity, 0).map(|_| p));

    let mut contenders = vec![Contender::new("thread start + join", || {
        batch(per_batch, || {
            let t0 = Instant::now();
            Thread::start(nothing)?.join()?;
            Ok(stats::us(t0.elapsed()))
        })
    })];
    for method in StartMethod::ALL {
        contenders.push(Contender::new(
            format!("process ({method}) start + join"),
            move || {
                batch(per_batch, || {
                    let t0 = Instant::now();
                    // Every thread this program started has been joined; one the kernel is
                    // still tearing down holds no lock the child needs, so a fork is safe.
                    process::Builder::new()
                        .start_method(method)
                        .allow_threads(true)
                        .start(nothing)?
                        .join()?;
                    Ok(stats::us(t0.elapsed()))
                })
            },
        ));
    }
    let pool_ref = pool.as_ref();
    contenders.push(Contender::new("a task on a running process Pool", || {
        let pool = pool_ref.map_err(|e| anyhow::anyhow!("{e}"))?;
        batch(per_batch, || {
            let t0 = Instant::now();
            pool.apply(super::cpu_bound::identity, 1)?;
            Ok(stats::us(t0.elapsed()))
        })
    }));
    let measured = rounds::interleave(ctx, "starting", n_rounds, &mut contenders);
    drop(contenders);
    if let Ok(pool) = pool {
        pool.close();
        pool.join();
    }

    let mut metrics = vec![rounds::metric(
        "thread",
        "thread (multiproc::Thread)",
        Worker::Thread,
        "us",
        &measured[0],
    )];
    for (i, method) in StartMethod::ALL.into_iter().enumerate() {
        let mut m = rounds::metric(
            method.name(),
            format!("process ({method})"),
            Worker::Process,
            "us",
            &measured[i + 1],
        )
        .method(method);
        if let Some((_, why)) = warm.iter().find(|(name, _)| *name == method.name()) {
            m = m.note(format!("the warm-up start {why}"));
        }
        metrics.push(m);
    }
    metrics.push(
        rounds::metric(
            "process_pool",
            "task on a running process Pool",
            Worker::Process,
            "us",
            &measured[StartMethod::ALL.len() + 1],
        )
        .method(StartMethod::default()),
    );
    rounds::pair_with(&mut metrics, "thread");

    let method = format!(
        "{n_rounds} interleaved rounds; in each, every kind runs a batch of about {} ms \
         (at least 3) back to back, in an order rotated per round. A round's figure is the \
         median wall time of its batch: start() + join() of a worker running an empty \
         function, or apply() of a trivial task on a process Pool of 1 worker started \
         before timing (as is a fork server). The figure is the median over the rounds, \
         the range their min..max; ratio: over the thread's figure of the same round.",
        stats::fmt_num(stats::ms(per_batch))
    );
    let mut section = Section {
        id: "starting",
        title: "Starting a worker",
        claim: "Threads start faster than processes; how much depends on the start method.",
        status: Status::Measured,
        method,
        groups: vec![Group {
            id: "start_join",
            title: "start + join, one worker that does nothing".into(),
            unit: "us",
            better: Better::Lower,
            metrics,
        }],
        findings: Vec::new(),
    };
    if let Some(t) = section.get("start_join", "thread") {
        for m in StartMethod::ALL {
            if let Some(p) = section.metric("start_join", m.name()) {
                if let (Some(v), Some(r)) = (p.value, &p.ratio) {
                    section.findings.push(format!(
                        "A process by {m} costs {} us to start and join: {}x a thread ({} us); \
                         {}x to {}x over the rounds.",
                        stats::fmt_num(v),
                        stats::fmt_num(r.median),
                        stats::fmt_num(t),
                        stats::fmt_num(r.min),
                        stats::fmt_num(r.max)
                    ));
                }
            }
        }
    }
    if let Some(p) = section.get("start_join", "process_pool") {
        section.findings.push(format!(
            "Handing a trivial task to a running process Pool and waiting for its result \
             costs {} us.",
            stats::fmt_num(p)
        ));
    }
    section.finish()
}

/// A metric from a summary of samples.
pub(crate) fn summary_metric(id: &str, label: String, worker: Worker, s: Summary) -> Metric {
    Metric {
        min: Some(s.min),
        max: Some(s.max),
        p25: Some(s.p25),
        p75: Some(s.p75),
        samples: s.n,
        ..Metric::value(id, label, worker, s.median)
    }
}
