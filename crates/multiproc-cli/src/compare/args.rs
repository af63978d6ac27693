//! Command-line arguments of `multiproc compare` and of its hidden fault child.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  multiproc compare                          every section, under a minute on 2 cores
  multiproc compare --quick                  every section, a few seconds
  multiproc compare --quick --only cpu-bound,io-bound
  multiproc compare --json > compare.json    for programs (schema: --print-schema)
  multiproc compare --html compare.html      a page with charts; the table still prints
  multiproc compare --workers 4              4 workers in the parallel sections

The advice at the end is computed from the figures of this run: run it on the machine
that will run your program, while it is as busy as it will be then.";

/// Measures threads against processes on this machine and advises which to use.
///
/// Sections: starting a worker, the memory of an idle worker, sharing a counter,
/// communicating (round trip and bandwidth), CPU-bound work, I/O-bound (waiting) work,
/// and fault isolation (a segfault in a process and in a thread, run in throwaway
/// children).
#[derive(Debug, Clone, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct CompareArgs {
    /// Fewer, shorter samples: a few seconds in all instead of under a minute.
    #[arg(long)]
    pub(crate) quick: bool,

    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,

    /// Also write the report as one self-contained HTML page with charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,

    /// Run only these sections (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SECTIONS")]
    pub(crate) only: Vec<SectionId>,

    /// Workers for the parallel sections [default: the CPUs this process may use, at least 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) workers: Option<u16>,

    /// Do not show the progress display (it is drawn on stderr, only on a terminal).
    #[arg(long)]
    pub(crate) no_progress: bool,

    /// Print the JSON Schema of the `--json` output and exit.
    #[arg(long, exclusive = true)]
    pub(crate) print_schema: bool,
}

/// The sections, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SectionId {
    /// Start and join one worker.
    Starting,
    /// Unique memory of one more idle worker.
    Memory,
    /// A counter incremented by several workers.
    Sharing,
    /// Round trip and bandwidth between two workers.
    Communicating,
    /// Counting primes: sequential, threads, processes.
    CpuBound,
    /// Many tasks that wait.
    IoBound,
    /// A segfault in a process and in a thread.
    FaultIsolation,
}

impl SectionId {
    /// Every section, in order.
    pub(crate) const ALL: [SectionId; 7] = [
        SectionId::Starting,
        SectionId::Memory,
        SectionId::Sharing,
        SectionId::Communicating,
        SectionId::CpuBound,
        SectionId::IoBound,
        SectionId::FaultIsolation,
    ];
}

/// Arguments of the hidden `__fault-child` subcommand.
#[derive(Debug, Clone, Args)]
pub(crate) struct FaultChildArgs {
    /// Where the faulty worker runs.
    #[arg(value_enum)]
    pub(crate) mode: FaultMode,
    /// Healthy workers next to the faulty one.
    #[arg(long, default_value_t = 3)]
    pub(crate) healthy: u32,
    /// How long each healthy worker works, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub(crate) work_ms: u64,
}

/// Where the faulty worker of the fault-isolation demonstration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FaultMode {
    /// Workers are processes.
    Process,
    /// Workers are threads of one process.
    Thread,
}
