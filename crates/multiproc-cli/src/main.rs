//! `multiproc`: runs the article's examples and measures threads against processes.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod demo;

/// Threads vs processes, the multiproc way.
#[derive(Debug, Parser)]
#[command(
    name = "multiproc",
    version,
    about = "Threads vs processes: run the article's examples, and measure which to pick on this machine",
    after_help = "Examples:\n  multiproc demo            # the article's two examples, then fault isolation\n  multiproc demo --no-faults\n"
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
    }
}
