//! Fault isolation: a segfault in a worker process ends only that process; the same
//! fault in a thread ends the whole program.
//!
//! Both are shown in throwaway children (`multiproc __fault-child process|thread`), so
//! that `compare` itself survives. The fault is a real one, in safe code: the faulty
//! worker recurses until it runs off its stack into the guard page. Rust's runtime
//! normally turns that into an "overflowed its stack" message and an abort; it does so
//! only if `SIGSEGV` is at its default disposition at startup, so the throwaway child
//! is started through `sh` with `SIGSEGV` ignored (`trap '' SEGV`). The kernel then
//! delivers the fault as a plain `SIGSEGV` that kills the process, as a segfault in C
//! code would. Core dumps are switched off for the throwaway child (`ulimit -c 0`).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use multiproc::{process, StartMethod, Thread};

use super::Ctx;
use crate::compare::args::{FaultChildArgs, FaultMode};
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::stats;

/// How long a throwaway child may take before it is killed.
const CHILD_DEADLINE: Duration = Duration::from_secs(30);

/// Recurses with 4 KiB frames until the stack runs out: a segfault in safe code.
#[inline(never)]
fn overflow(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth.to_le_bytes()[0]; 4096]);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    overflow(depth + 1).wrapping_add(u64::from(frame[(depth % 4096) as usize]))
}

fn faulty_worker() -> u64 {
    overflow(0)
}

fn healthy_worker((i, work_ms): (u32, u64)) -> u32 {
    std::thread::sleep(Duration::from_millis(work_ms));
    println!("done {i}");
    i
}

/// The throwaway child: starts `healthy` workers and one faulty one, joins them and
/// prints what it saw, one fact per line.
///
/// # Errors
///
/// If a worker cannot be started.
pub(crate) fn child_main(args: &FaultChildArgs) -> anyhow::Result<()> {
    match args.mode {
        FaultMode::Process => {
            let healthy = (0..args.healthy)
                .map(|i| {
                    process::Builder::new()
                        .start_method(StartMethod::Fork)
                        .start_with(healthy_worker, (i, args.work_ms))
                })
                .collect::<multiproc::Result<Vec<_>>>()?;
            let faulty = process::Builder::new()
                .start_method(StartMethod::Fork)
                .start(faulty_worker)?;
            match faulty.join() {
                Ok(_) => println!("faulty returned"),
                Err(e) => match e.signal() {
                    Some(sig) => println!("faulty signal {}", sig.as_raw()),
                    None => println!("faulty error {e}"),
                },
            }
            for p in healthy {
                p.join()?;
            }
            println!("program survived");
        }
        FaultMode::Thread => {
            let healthy = (0..args.healthy)
                .map(|i| {
                    let work_ms = args.work_ms;
                    Thread::start(move || healthy_worker((i, work_ms)))
                })
                .collect::<multiproc::Result<Vec<_>>>()?;
            let faulty = Thread::start(faulty_worker)?;
            let _ = faulty.join();
            for t in healthy {
                t.join()?;
            }
            println!("program survived");
        }
    }
    Ok(())
}

/// What a throwaway child showed.
#[derive(Debug)]
struct Outcome {
    /// Healthy workers that printed "done".
    finished: u32,
    /// The signal that killed the faulty process (process mode).
    faulty_signal: Option<i32>,
    /// Whether the throwaway program itself got to its end.
    survived: bool,
    /// The signal that killed the throwaway program, if one did.
    program_signal: Option<i32>,
    /// Milliseconds the throwaway program ran.
    ms: f64,
}

fn run_child(mode: &str, healthy: u32, work_ms: u64) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let t0 = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -c 0; trap '' SEGV; exec \"$0\" \"$@\"")
        .arg(exe)
        .args(["__fault-child", mode, "--healthy"])
        .arg(healthy.to_string())
        .arg("--work-ms")
        .arg(work_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run sh for the fault demonstration")?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let out_reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if t0.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the {mode} fault demonstration did not end within {CHILD_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let ms = stats::ms(t0.elapsed());
    let lines = out_reader.join().unwrap_or_default();
    let errors = err_reader.join().unwrap_or_default();
    let survived = lines.iter().any(|l| l == "program survived");
    if !survived && status.signal().is_none() {
        bail!(
            "the {mode} fault demonstration failed ({status}): {}",
            errors.trim()
        );
    }
    Ok(Outcome {
        finished: u32::try_from(lines.iter().filter(|l| l.starts_with("done ")).count())?,
        faulty_signal: lines
            .iter()
            .find_map(|l| l.strip_prefix("faulty signal ")?.parse().ok()),
        survived,
        program_signal: status.signal(),
        ms,
    })
}

fn signal_name(sig: i32) -> String {
    multiproc::Signal::from_raw(sig)
        .name()
        .map_or_else(|| format!("signal {sig}"), str::to_owned)
}

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let healthy = 3;
    let work_ms = ctx.plan.pick(200, 100);
    let mut metrics = Vec::new();
    let mut findings = Vec::new();
    for (mode, worker, label) in [
        ("process", Worker::Process, "worker processes (fork)"),
        ("thread", Worker::Thread, "worker threads"),
    ] {
        ctx.step(&format!("fault isolation: a segfault in a worker {mode}"));
        let m = match run_child(mode, healthy, work_ms) {
            Ok(o) => {
                let what = match (o.survived, o.program_signal, o.faulty_signal) {
                    (true, _, Some(sig)) => format!(
                        "the faulty process was killed by {}; the program went on",
                        signal_name(sig)
                    ),
                    (true, _, None) => "the program went on".to_owned(),
                    (false, Some(sig), _) => format!(
                        "the whole program was killed by {} after {} ms",
                        signal_name(sig),
                        stats::fmt_num(o.ms)
                    ),
                    (false, None, _) => "the program did not finish".to_owned(),
                };
                findings.push(format!(
                    "A segfault in one of {} {label}: {what}; {} of {healthy} healthy workers finished their work.",
                    healthy + 1,
                    o.finished
                ));
                let mut m = Metric::value(mode, label, worker, f64::from(o.finished))
                    .extra("program_survived", f64::from(u8::from(o.survived)))
                    .extra("program_ms", o.ms)
                    .note(what);
                if let Some(sig) = o.faulty_signal.or(o.program_signal) {
                    m = m.extra("signal", f64::from(sig));
                }
                if worker == Worker::Process {
                    m = m.method(StartMethod::Fork);
                }
                m
            }
            Err(e) => Metric::missing(mode, label, worker, format!("failed: {e:#}")),
        };
        metrics.push(m);
    }
    let section = Section {
        id: "fault_isolation",
        title: "Fault isolation",
        claim: "A crash in a process ends only that process; the same crash in a thread \
                ends the whole program.",
        status: Status::Measured,
        method: format!(
            "In a throwaway child program: {healthy} healthy workers that work {work_ms} ms \
             and one worker that overflows its stack into the guard page (SIGSEGV, a real \
             invalid memory access). Counted: healthy workers that finished."
        ),
        groups: vec![Group {
            id: "survivors",
            title: format!("healthy workers that finished (of {healthy}) next to a segfault"),
            unit: "count",
            better: Better::Higher,
            metrics,
        }],
        findings,
    };
    section.finish()
}
