//! A worker host for a cluster pool (feature `cluster`): registering tasks is all a
//! program needs. Started with `MULTIPROC_WORKER` set, it serves the cluster from
//! multiproc's pre-`main` hook and never enters `main`; SIGTERM drains it.
//!
//! Run (a Redis 6.2+ reachable at the URL, the same key on clients and hosts):
//! ```text
//! MULTIPROC_WORKER=redis://default:PASSWORD@127.0.0.1:6379/ \
//! MULTIPROC_CLUSTER_KEY=a-shared-key-of-16-bytes-or-more \
//!   cargo run -p multiproc --features cluster --example cluster_worker
//! ```
//! Without `MULTIPROC_WORKER`, `main` runs and prints its task table.
//!
//! Tasks are registered with `#[multiproc::remote]` on the function, or with
//! `multiproc::task!` for a function the program cannot annotate (here one of another
//! crate).
//!
//! The cluster tests also run it as a host of *another build* than theirs: it
//! registers `multiproc::test_support::mark`, as the test binaries do, with the same
//! name and types (so the same task key) and another GNU build-id
//! (`tests/cluster_pool.rs`, `t17_a_host_of_another_build_is_refused`); and
//! `tests/cluster_worker.rs`, whose crate has this program's name, plays a newer build
//! of it in which `stamp` returns a `u32`.

#[cfg(feature = "cluster")]
#[multiproc::remote]
fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

/// Writes the id of the process that runs it into the file `path`, and returns it:
/// where did this task run?
#[cfg(feature = "cluster")]
#[multiproc::remote]
fn stamp(path: String) -> u64 {
    let pid = std::process::id();
    // A failed write shows as the file's absence.
    let _ = std::fs::write(&path, pid.to_string());
    u64::from(pid)
}

#[cfg(feature = "cluster")]
multiproc::task!(multiproc::test_support::mark);

fn main() {
    #[cfg(feature = "cluster")]
    {
        println!("not started as a worker host (MULTIPROC_WORKER is not set); its tasks:");
        for t in multiproc::pool::cluster::registered() {
            println!("  {} {}", t.name(), t.signature());
        }
    }
    #[cfg(not(feature = "cluster"))]
    println!("built without the `cluster` feature: nothing to serve");
}
