//! Starting: start and join one worker that does nothing, a thread against a process
//! by each start method.

use std::time::Instant;

use multiproc::{process, StartMethod, Thread};

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::stats::{self, Summary};

fn nothing() {}

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let mut metrics = Vec::new();

    ctx.step("starting: thread start + join");
    let thread = stats::sample(plan.budget(1000), 3, 5, 20_000, || {
        let t0 = Instant::now();
        Thread::start(nothing)?.join()?;
        Ok::<_, multiproc::Error>(stats::us(t0.elapsed()))
    });
    metrics.push(metric(
        "thread",
        "thread (multiproc::Thread)".into(),
        Worker::Thread,
        thread,
    ));

    for method in StartMethod::ALL {
        ctx.step(&format!("starting: process ({method}) start + join"));
        // The first start of a fork server starts the server itself: warm up first.
        let summary = stats::sample(plan.budget(1300), 2, 5, 5_000, || {
            let t0 = Instant::now();
            // Every thread this program started has been joined; one the kernel is still
            // tearing down holds no lock the child needs, so a fork is safe.
            process::Builder::new()
                .start_method(method)
                .allow_threads(true)
                .start(nothing)?
                .join()?;
            Ok::<_, multiproc::Error>(stats::us(t0.elapsed()))
        });
        metrics.push(
            metric(
                method.name(),
                format!("process ({method})"),
                Worker::Process,
                summary,
            )
            .method(method),
        );
    }

    let method = format!(
        "Median wall time of start() + join() of a worker running an empty function, \
         sampled for {:.1} s per kind after warm-up runs (a fork server is started before timing).",
        plan.budget(1000).as_secs_f64()
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
            if let Some(p) = section.get("start_join", m.name()) {
                section.findings.push(format!(
                    "A process by {m} costs {} us to start and join: {}x a thread ({} us).",
                    stats::fmt_num(p),
                    stats::fmt_num(p / t),
                    stats::fmt_num(t)
                ));
            }
        }
    }
    section.finish()
}

fn metric(id: &str, label: String, worker: Worker, r: Result<Summary, multiproc::Error>) -> Metric {
    match r {
        Ok(s) => summary_metric(id, label, worker, s),
        Err(e) => Metric::missing(id, label, worker, format!("failed: {e}")),
    }
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
