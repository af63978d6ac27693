//! A process pool whose workers cannot be replaced for a while (issue 9, item 10):
//! out of descriptors while its workers die, it waits and retries, and recovers when
//! descriptors return; if they do not return within its restart timeout, the waiting
//! tasks fail with the start's error (never `PoolClosed` for good).
//!
//! Each test runs in its own re-executed process: exhausting descriptors would
//! disturb other tests of this binary running on other threads.

mod util;

use util::square;

use std::fs::File;
use std::time::{Duration, Instant};

use multiproc::pool::{Backend, Pool};
use multiproc::ErrorKind;

const LIMIT: Duration = Duration::from_secs(120);

/// Descriptors unavailable until the guard drops: the soft `RLIMIT_NOFILE` goes
/// down to 3, so that no new descriptor fits (0-2 are taken), even once the dead
/// workers' descriptors are closed.
struct NoDescriptors(rustix::process::Rlimit);

fn exhaust_descriptors() -> NoDescriptors {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let old = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(3),
            maximum: old.maximum,
        },
    )
    .unwrap();
    let e = File::open("/dev/null").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
    NoDescriptors(old)
}

impl Drop for NoDescriptors {
    fn drop(&mut self) {
        rustix::process::setrlimit(rustix::process::Resource::Nofile, self.0).unwrap();
    }
}

/// Kills every worker of `pool` and waits until the pool has seen them die.
fn kill_workers(pool: &Pool) {
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    for &pid in &pids {
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }
    assert!(
        util::eventually(Duration::from_secs(30), || pool
            .worker_pids()
            .iter()
            .all(|p| !pids.contains(p))),
        "the pool did not notice its workers die"
    );
}

fn run(helper: &str) {
    let out = util::run_ignored(helper, LIMIT, &[]);
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pool_recovers_when_descriptors_return() {
    run("descriptors_return_after_a_second");
}

/// Both workers die while no descriptor is free; a second later descriptors return.
/// Used to leave the pool failing every task with `PoolClosed` forever (5 of 5).
#[test]
#[ignore = "run in its own process by pool_recovers_when_descriptors_return"]
fn descriptors_return_after_a_second() {
    let pool = Pool::builder()
        .backend(Backend::Processes)
        .workers(2)
        .build()
        .unwrap();
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
    let held = exhaust_descriptors();
    kill_workers(&pool);
    let handles: Vec<_> = (0..20u64).map(|x| pool.submit(square, x)).collect();
    std::thread::sleep(Duration::from_secs(1));
    drop(held);
    for (x, mut h) in (0..20u64).zip(handles) {
        let r = h.join_timeout(Duration::from_secs(60));
        assert_eq!(r.unwrap(), x * x, "task {x}");
    }
    assert_eq!(pool.map(square, 0..100u64).unwrap().len(), 100);
    assert_eq!(pool.worker_pids().len(), 2);
}

#[test]
fn tasks_fail_with_the_start_error_after_the_restart_timeout() {
    run("descriptors_do_not_return");
}

/// Descriptors do not return within the restart timeout: the waiting task fails
/// with the start's error (`EMFILE`) within the bound, and the pool recovers once
/// they do return.
#[test]
#[ignore = "run in its own process by tasks_fail_with_the_start_error_after_the_restart_timeout"]
fn descriptors_do_not_return() {
    const RESTART: Duration = Duration::from_millis(500);
    let pool = Pool::builder()
        .backend(Backend::Processes)
        .workers(2)
        .restart_timeout(RESTART)
        .build()
        .unwrap();
    let held = exhaust_descriptors();
    kill_workers(&pool);
    let t = Instant::now();
    let e = pool.apply(square, 4).unwrap_err();
    let waited = t.elapsed();
    // Another task, submitted after the pool gave up, fails as well (after its own
    // start attempt), not with `PoolClosed`.
    let e2 = pool.apply(square, 5).unwrap_err();
    drop(held);
    for e in [&e, &e2] {
        assert_eq!(e.kind(), ErrorKind::Start, "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
    }
    assert!(
        waited < RESTART + Duration::from_secs(5),
        "failed after {waited:?}, restart timeout {RESTART:?}"
    );
    // Descriptors are back: so are the workers.
    let mut h = pool.submit(square, 6);
    assert_eq!(h.join_timeout(Duration::from_secs(60)).unwrap(), 36);
    assert!(util::eventually(Duration::from_secs(30), || pool
        .worker_pids()
        .len()
        == 2));
}
