//! `multiproc`: runs the article's examples and measures threads against processes.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod compare;
mod demo;
mod quiet_panic;
mod worker;

const EXAMPLES: &str = "\
Examples:
  multiproc demo                        the article's two examples, then fault isolation
  multiproc demo --no-faults
  multiproc compare                     measure threads against processes here (under a minute)
  multiproc compare --quick             the same with fewer samples, a few seconds
  multiproc compare --json > out.json   for programs (schema: multiproc compare --print-schema)
  multiproc compare --html report.html  also write one page with charts
  multiproc worker --redis redis://:PW@10.0.0.5:6379/ -- ./myapp   serve a cluster with ./myapp's tasks
  multiproc worker --list -- ./myapp    print the tasks ./myapp registers";

/// Threads vs processes, the multiproc way.
#[derive(Debug, Parser)]
#[command(
    name = "multiproc",
    version,
    about = "Threads vs processes: run the article's examples, and measure which to pick on this machine",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the article's examples with threads and with processes, then show fault isolation.
    #[command(
        after_help = "Examples:\n  multiproc demo\n  multiproc demo --no-faults   # skip the crash demonstrations\n"
    )]
    Demo(demo::DemoArgs),
    /// Measure threads against processes on this machine and advise which to use.
    Compare(compare::CompareArgs),
    /// Run a program built with multiproc's `cluster` feature as a worker host of a cluster pool.
    Worker(worker::WorkerArgs),
    /// Internal: a throwaway child for `compare`'s fault-isolation section.
    #[command(name = "__fault-child", hide = true)]
    FaultChild(compare::FaultChildArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Worker(args) => worker::run(&args),
        Command::FaultChild(args) => compare::fault_child(&args),
    }
}
