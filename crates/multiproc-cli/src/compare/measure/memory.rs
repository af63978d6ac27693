//! Memory: the unique memory (USS) one more idle worker costs.
//!
//! A thread's cost is the growth of this process's USS per extra idle thread (its
//! stack pages actually touched, its TLS; the 2 MiB of stack address space it reserves
//! are not memory until touched). A process's cost is the USS of an idle child, read
//! from its `/proc/PID/smaps_rollup`: the pages it does not share with anyone.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Condvar, Mutex};

use anyhow::Context as _;
use multiproc::{process, StartMethod, Thread};
use serde::{Deserialize, Serialize};

use super::procfs::{self, Usage};
use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::stats::{self, Summary};

/// One end of a socket pair, sendable to a child by any start method.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Line(#[serde(with = "multiproc::ipc::codec::fd")] pub(crate) OwnedFd);

/// An idle worker: says "ready", then waits for one byte (or the end of the stream).
///
/// The release is a byte rather than the end of the stream because a forked child
/// inherits copies of the parent's ends, so closing them in the parent ends nothing.
fn idle_child(line: Line) {
    let mut s = UnixStream::from(line.0);
    if s.write_all(b"r").is_ok() {
        let mut go = [0u8; 1];
        let _ = s.read(&mut go);
    }
}

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let threads = plan.pick(32, 8);
    let children = plan.pick(4, 2);
    let mut metrics = Vec::new();

    ctx.step("memory: idle threads");
    metrics.push(match thread_cost(threads) {
        Ok((uss, rss)) => Metric::value("thread", "thread", Worker::Thread, uss)
            .extra("rss_kib", rss)
            .note(format!(
                "growth of this process's USS over {threads} idle threads, divided by {threads}"
            )),
        Err(e) => Metric::missing("thread", "thread", Worker::Thread, format!("failed: {e:#}")),
    });

    for method in StartMethod::ALL {
        ctx.step(&format!("memory: idle processes ({method})"));
        let label = format!("process ({method})");
        metrics.push(match process_cost(method, children) {
            Ok(us) => {
                let uss: Vec<f64> = us.iter().map(|u| u.uss_kib).collect();
                let s = Summary::of(&uss).expect("at least one child");
                let med = |f: fn(&Usage) -> f64| {
                    Summary::of(&us.iter().map(f).collect::<Vec<_>>()).map_or(0.0, |s| s.median)
                };
                super::starting::summary_metric(method.name(), label, Worker::Process, s)
                    .method(method)
                    .extra("rss_kib", med(|u| u.rss_kib))
                    .extra("pss_kib", med(|u| u.pss_kib))
            }
            Err(e) => Metric::missing(
                method.name(),
                label,
                Worker::Process,
                format!("failed: {e:#}"),
            )
            .method(method),
        });
    }

    let mut section = Section {
        id: "memory",
        title: "Memory of one more idle worker",
        claim: "Each process has its own memory, so a process costs more memory than a thread.",
        status: Status::Measured,
        method: format!(
            "Unique memory (USS = Private_Clean + Private_Dirty in /proc/PID/smaps_rollup). \
             Thread: USS growth of this process over {threads} idle threads, per thread. \
             Process: median USS of {children} idle children per start method (RSS and PSS \
             in extra)."
        ),
        groups: vec![Group {
            id: "uss",
            title: "unique memory (USS) of one more idle worker".into(),
            unit: "KiB",
            better: Better::Lower,
            metrics,
        }],
        findings: Vec::new(),
    };
    if let Some(t) = section.get("uss", "thread") {
        for m in StartMethod::ALL {
            if let Some(p) = section.get("uss", m.name()) {
                section.findings.push(format!(
                    "An idle process by {m} holds {} KiB of its own memory, a thread {} KiB: \
                     1,000 idle workers would be {} MiB against {} MiB.",
                    stats::fmt_num(p),
                    stats::fmt_num(t),
                    stats::fmt_num(p * 1000.0 / 1024.0),
                    stats::fmt_num(t * 1000.0 / 1024.0),
                ));
            }
        }
    }
    section.finish()
}

/// (USS growth per thread, RSS growth per thread), in KiB.
fn thread_cost(n: usize) -> anyhow::Result<(f64, f64)> {
    // Once without measuring: the first thread sets up lazily allocated state.
    park_threads(1, |_| Ok(()))?;
    let before = procfs::usage(None)?;
    let mut after = None;
    park_threads(n, |_| {
        after = Some(procfs::usage(None)?);
        Ok(())
    })?;
    let after = after.context("threads did not park")?;
    let per = |a: f64, b: f64| ((a - b) / n as f64).max(0.0);
    Ok((
        per(after.uss_kib, before.uss_kib),
        per(after.rss_kib, before.rss_kib),
    ))
}

/// Starts `n` threads, waits until all of them are idle, calls `f`, then lets them end.
fn park_threads(n: usize, f: impl FnOnce(usize) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let open = |gate: &(Mutex<bool>, Condvar)| {
        *gate.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        gate.1.notify_all();
    };
    let mut handles = Vec::new();
    for _ in 0..n {
        let g = Arc::clone(&gate);
        let tx = ready_tx.clone();
        let started = Thread::start(move || {
            let _ = tx.send(());
            let mut opened = g.0.lock().unwrap_or_else(|e| e.into_inner());
            while !*opened {
                opened = g.1.wait(opened).unwrap_or_else(|e| e.into_inner());
            }
        });
        match started {
            Ok(h) => handles.push(h),
            Err(e) => {
                open(&gate);
                for h in handles {
                    let _ = h.join();
                }
                return Err(e.into());
            }
        }
    }
    for _ in 0..n {
        ready_rx.recv()?;
    }
    let r = f(n);
    open(&gate);
    for h in handles {
        h.join()?;
    }
    r
}

/// The memory of `n` idle children started by `method`.
fn process_cost(method: StartMethod, n: usize) -> anyhow::Result<Vec<Usage>> {
    let mut children = Vec::new();
    for _ in 0..n {
        let (ours, theirs) = UnixStream::pair()?;
        // As in `starting`: every thread this program started has been joined.
        let p = process::Builder::new()
            .start_method(method)
            .allow_threads(true)
            .kill_on_drop(true)
            .start_with(idle_child, Line(theirs.into()))?;
        children.push((p, ours));
    }
    let mut usages = Vec::new();
    for (p, line) in &mut children {
        let mut byte = [0u8; 1];
        line.read_exact(&mut byte)
            .with_context(|| format!("child {} did not get ready", p.pid()))?;
        usages.push(procfs::usage(Some(p.pid()))?);
    }
    for (_, line) in &mut children {
        line.write_all(b"g")?;
    }
    for (p, _) in children {
        p.join()?;
    }
    Ok(usages)
}
