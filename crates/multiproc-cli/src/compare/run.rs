//! `multiproc compare` from arguments to output.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{CompareArgs, SectionId};
use super::measure::{self, procfs, Ctx};
use super::model::{Machine, Report, SCHEMA_ID, SCHEMA_VERSION};
use super::plan::Plan;
use super::{advice, html, json, table};

/// Runs `multiproc compare`.
///
/// # Errors
///
/// If the HTML file cannot be created or written, or stdout cannot be written.
/// A measurement that fails does not fail the run: its metric says why.
pub(crate) fn run(args: &CompareArgs) -> anyhow::Result<()> {
    if args.print_schema {
        print!("{}", json::SCHEMA);
        return Ok(());
    }
    // Fail on a bad path before a minute of measuring, not after.
    let html_file = match &args.html {
        Some(path) => Some(
            File::create(path)
                .with_context(|| format!("cannot create the HTML file {}", path.display()))?,
        ),
        None => None,
    };
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let plan = Plan {
        quick: args.quick,
        workers: args.workers.map_or(cpus.max(2), usize::from),
        cpus,
    };
    let sections: Vec<SectionId> = SectionId::ALL
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.contains(s))
        .collect();

    let progress = if args.no_progress || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::new(sections.len() as u64);
        pb.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:20}] {pos}/{len} {wide_msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        pb.set_prefix("measuring");
        pb
    };
    let ctx = Ctx {
        plan,
        progress: &progress,
    };

    let started_at_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_before = procfs::load_average();
    let t0 = Instant::now();
    let mut report = Report {
        schema: SCHEMA_ID,
        schema_version: SCHEMA_VERSION,
        multiproc_version: env!("CARGO_PKG_VERSION"),
        mode: plan.mode(),
        machine: Machine {
            cpus,
            workers: plan.workers,
            kernel: procfs::kernel_release(),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            load_before,
            load_after: None,
        },
        started_at_unix,
        duration_s: 0.0,
        sections: Vec::new(),
        advice: Vec::new(),
    };
    for id in sections {
        let section = match id {
            SectionId::Starting => measure::starting::run(&ctx),
            SectionId::Memory => measure::memory::run(&ctx),
            SectionId::Sharing => measure::sharing::run(&ctx),
            SectionId::Communicating => measure::communicating::run(&ctx),
            SectionId::CpuBound => measure::cpu_bound::run(&ctx),
            SectionId::IoBound => measure::io_bound::run(&ctx),
            SectionId::FaultIsolation => measure::fault::run(&ctx),
        };
        report.sections.push(section);
        progress.inc(1);
    }
    progress.finish_and_clear();
    report.duration_s = t0.elapsed().as_secs_f64();
    report.machine.load_after = procfs::load_average();
    report.advice = advice::derive(&report);

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", json::render(&report))?;
    } else {
        write!(out, "{}", table::render(&report))?;
    }
    if let (Some(mut file), Some(path)) = (html_file, &args.html) {
        file.write_all(html::render(&report).as_bytes())
            .with_context(|| format!("cannot write the HTML file {}", path.display()))?;
        if !args.json {
            writeln!(out, "\nHTML report written to {}", path.display())?;
        }
    }
    Ok(())
}
