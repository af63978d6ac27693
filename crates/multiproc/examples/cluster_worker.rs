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
//! The cluster tests also run it as a host of *another build* than theirs: it
//! registers `multiproc::test_support::mark`, as the test binary does, with the same
//! name and types (so the same task key) and another GNU build-id
//! (`tests/cluster_pool.rs`, `t17_a_host_of_another_build_is_refused`).

#[cfg(feature = "cluster")]
fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}
#[cfg(feature = "cluster")]
multiproc::task!(word_count, multiproc::test_support::mark);

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
