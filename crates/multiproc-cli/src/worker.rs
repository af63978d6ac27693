//! `multiproc worker`: starts a program as a cluster worker host (multiproc's
//! `cluster` feature) by setting the variables its pre-`main` hook reads, then
//! replacing this process with it.

use std::os::unix::process::CommandExt;
use std::process::Command;

use clap::Args;

/// The variables `multiproc::pool::cluster` reads (its `WORKER_*_ENV` constants).
const WORKER: &str = "MULTIPROC_WORKER";
const NAME: &str = "MULTIPROC_WORKER_NAME";
const SLOTS: &str = "MULTIPROC_WORKER_SLOTS";
const TIMING: &str = "MULTIPROC_WORKER_TIMING";
const LIST: &str = "MULTIPROC_LIST_TASKS";
const METHOD: &str = "MULTIPROC_WORKER_START_METHOD";
const TLS_CA: &str = "MULTIPROC_WORKER_TLS_CA";

/// How a host starts its local workers.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Method {
    Spawn,
    Forkserver,
}

/// Arguments of `multiproc worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The cluster's Redis (`redis://[user:password@]host:port/`); the shared key comes
    /// from MULTIPROC_CLUSTER_KEY, as for the program itself.
    #[arg(long, required_unless_present = "list")]
    redis: Option<String>,
    /// The cluster's name (default: multiproc).
    #[arg(long)]
    name: Option<String>,
    /// Tasks run at once (default: the CPUs available).
    #[arg(long)]
    slots: Option<usize>,
    /// Heartbeat and min_idle in milliseconds, as `HB,IDLE` (default 5000,30000).
    #[arg(long)]
    timing: Option<String>,
    /// How the host starts its local workers (default: the program's default method).
    #[arg(long, value_enum)]
    start_method: Option<Method>,
    /// A CA file (PEM) to trust for a `rediss://` URL (the program needs multiproc's
    /// `cluster-tls` feature).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// Print the program's registered tasks (name, signature, key, build id) instead.
    #[arg(long)]
    list: bool,
    /// The program (built with multiproc's `cluster` feature) and its arguments.
    #[arg(last = true, required = true)]
    program: Vec<String>,
}

/// Replaces this process with the program in worker mode; returns only on failure.
pub(crate) fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    let (prog, rest) = args
        .program
        .split_first()
        .expect("clap requires the program");
    let mut cmd = Command::new(prog);
    cmd.args(rest);
    if args.list {
        cmd.env(LIST, "1");
    } else if let Some(url) = &args.redis {
        cmd.env(WORKER, url);
        if let Some(n) = &args.name {
            cmd.env(NAME, n);
        }
        if let Some(s) = args.slots {
            cmd.env(SLOTS, s.to_string());
        }
        if let Some(t) = &args.timing {
            cmd.env(TIMING, t);
        }
        if let Some(m) = args.start_method {
            cmd.env(
                METHOD,
                match m {
                    Method::Spawn => "spawn",
                    Method::Forkserver => "forkserver",
                },
            );
        }
        if let Some(ca) = &args.tls_ca {
            cmd.env(TLS_CA, ca);
        }
    }
    let e = cmd.exec();
    Err(anyhow::anyhow!("cannot run {prog}: {e}"))
}
