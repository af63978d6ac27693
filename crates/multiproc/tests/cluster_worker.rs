//! A host of another build whose task has the client's name with other types: the
//! client's call fails with `BinaryMismatch` and the host never runs it.
//!
//! This test crate is named `cluster_worker`, as the example `examples/cluster_worker.rs`
//! is, so the two are two builds of one program: a task's name is its path
//! (`cluster_worker::stamp`) in both. The example's `stamp` returns a `u64`, this
//! build's a `u32`, as after a change of the result type between two releases. Both
//! register `multiproc::test_support::mark` with the same types, which the host runs,
//! so the refusal is the signature's alone, not the build's (the client does not ask
//! for `same_build`).
//!
//! Needs `MULTIPROC_TEST_REDIS_URL` (`ci/with-redis.sh` sets it) and the example built
//! beside the tests; without them the test skips with a message, or fails under
//! `CI=true`.
#![cfg(feature = "cluster")]

#[path = "util/cluster.rs"]
mod cluster_util;
mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster_util::{cleanup, opts, other_build, raw, redis_url, unique_name, wait_hosts, Host};
use multiproc::pool::Pool;
use multiproc::ErrorKind;

const LIMIT: Duration = Duration::from_secs(90);
const HOSTS_UP: Duration = Duration::from_secs(30);

/// This build's `stamp`: the example's returns a `u64`.
#[multiproc::remote]
fn stamp(path: String) -> u32 {
    let pid = std::process::id();
    let _ = std::fs::write(&path, pid.to_string());
    pid
}
multiproc::task!(multiproc::test_support::mark);

/// A file name for this run, absent.
fn marker(tag: &str) -> String {
    let p = std::env::temp_dir().join(format!("mp-sig-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p.display().to_string()
}

#[test]
fn t17_a_host_with_another_signature_answers_binary_mismatch_and_runs_nothing() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let Some(other) = other_build() else { return };
    let name = unique_name();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    // 1. Written while no host is known, the task reaches the other build's host,
    //    which has `cluster_worker::stamp` under another key and answers.
    let m1 = marker("1");
    let h = pool.submit(stamp, m1.clone());
    let mut con = raw(&url);
    let start = Instant::now();
    while redis::cmd("XLEN")
        .arg(format!("{{{name}}}:tasks"))
        .query::<u64>(&mut con)
        .unwrap()
        == 0
    {
        assert!(start.elapsed() < HOSTS_UP, "the task was never written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut host = Host::start_exe(&other, &url, &name, 1, &[]);
    let e = h.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BinaryMismatch, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("`cluster_worker::stamp`") && msg.contains("(alloc::string::String) -> u64"),
        "the host's signature is named: {msg}"
    );
    assert!(msg.contains("different builds"), "{msg}");
    // 2. Once the client sees the host (which advertises its keys), it refuses before
    //    sending: no live host registers this signature.
    wait_hosts(&pool, 1, HOSTS_UP);
    let m2 = marker("2");
    let e = pool.apply(stamp, m2.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotRegistered, "{e}");
    assert!(
        e.to_string().contains("cluster_worker::stamp")
            && e.to_string().contains("with this signature"),
        "{e}"
    );
    // 3. The same host runs a task whose signature both builds share: it was up and
    //    serving, and only the signature was refused.
    let m3 = marker("3");
    let mark = multiproc::test_support::mark;
    assert_eq!(pool.apply(mark, m3.clone()).unwrap(), m3.len() as u64);
    assert!(
        Path::new(&m3).exists(),
        "{m3} was not written: mark did not run"
    );
    // The mismatched task never ran there (it would have written its file).
    for m in [&m1, &m2] {
        assert!(!Path::new(m).exists(), "{m} was written: stamp ran");
    }
    let stats = pool.cluster_stats().unwrap();
    assert_eq!(stats.hosts.len(), 1, "{stats:?}");
    pool.join();
    host.kill9();
    cleanup(&url, &name);
    let _ = std::fs::remove_file(m3);
}
