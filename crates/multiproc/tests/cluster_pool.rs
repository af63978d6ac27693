//! The cluster backend against a real Redis: parity with the process
//! pool, refusals, a host killed mid-task, poison tasks, segfaults, forged entries,
//! SIGTERM drain. Worker hosts are this test binary re-executed with
//! `MULTIPROC_WORKER` (served from the pre-`main` hook).
//!
//! Needs `MULTIPROC_TEST_REDIS_URL` (`ci/with-redis.sh` sets it); without it the
//! tests skip with a message, or fail under `CI=true`.
#![cfg(feature = "cluster")]

#[path = "util/cluster.rs"]
mod cluster_util;
mod util;

use util::{sleep_ms, square};

use std::time::{Duration, Instant};

use cluster_util::{
    cleanup, keys, opts, other_build, raw, redis_url, unique_name, wait_hosts, Host, KEY,
};
use multiproc::pool::{as_completed, cluster, Pool};
use multiproc::{ErrorKind, Signal};

/// A stream entry's field pairs.
type Fields = Vec<(String, Vec<u8>)>;

const LIMIT: Duration = Duration::from_secs(90);
const HOSTS_UP: Duration = Duration::from_secs(30);

fn check(x: u32) -> u32 {
    assert!(x != 13, "thirteen is unlucky");
    x
}
/// Appends a line to `path`, then segfaults.
fn segv(path: String) -> u32 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "ran").unwrap();
    multiproc::fault::segfault()
}
/// Item 0 kills the host (its parent: the local pool's worker is the host's child).
fn kill_host(x: u32) -> u32 {
    if x == 0 {
        let _ = rustix::process::kill_process(
            rustix::process::getppid().unwrap(),
            rustix::process::Signal::KILL,
        );
        std::thread::sleep(Duration::from_secs(30));
    }
    x
}
/// Writes `start` to `path`, sleeps `ms`, then appends `end`.
fn marked((path, ms): (String, u64)) -> u32 {
    std::fs::write(&path, "start\n").unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "end").unwrap();
    1
}
fn touch(path: String) -> u32 {
    std::fs::write(path, "ran").unwrap();
    1
}
fn takes_pipe(_c: multiproc::ipc::Connection) -> u32 {
    0
}
fn unregistered(x: u32) -> u32 {
    x
}
/// Appends `x` to `path` (one line per run), returns it.
fn append((path, x): (String, u32)) -> u32 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{x}").unwrap();
    x
}
multiproc::task!(square, check, sleep_ms, segv, kill_host, touch, takes_pipe, marked, append);
/// Registered by the attribute (the others by `task!`).
#[multiproc::remote]
fn cube(x: u64) -> u64 {
    x * x * x
}

/// A pool with `hosts` hosts of `slots` slots, ready.
fn setup(hosts: usize, slots: usize) -> Option<(String, String, Vec<Host>, Pool)> {
    let url = redis_url()?;
    let name = unique_name();
    let hs: Vec<Host> = (0..hosts)
        .map(|_| Host::start(&url, &name, slots))
        .collect();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&pool, hosts, HOSTS_UP);
    Some((url, name, hs, pool))
}

#[test]
fn t2_parity_with_the_process_pool() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, _hosts, pool)) = setup(2, 2) else {
        return;
    };
    let local = Pool::processes(2).unwrap();
    // map, with a per-item panic through map_results.
    assert_eq!(
        pool.map(square, 0..100u64).unwrap(),
        local.map(square, 0..100u64).unwrap()
    );
    let a = pool.map_results(check, 0..20u32);
    let b = local.map_results(check, 0..20u32);
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        match (x, y) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(x), Err(y)) => {
                assert_eq!((i, x.kind()), (13, y.kind()));
                assert_eq!(x.panic().unwrap().message(), y.panic().unwrap().message());
            }
            _ => panic!("item {i}: {x:?} vs {y:?}"),
        }
    }
    let e = pool.map(check, 10..16u32).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    // imap_unordered.
    let mut got: Vec<u64> = pool
        .imap_unordered(square, 0..50u64)
        .collect::<Result<_, _>>()
        .unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..50u64).map(square).collect::<Vec<_>>());
    // imap, ordered, over an endless input.
    let first: Vec<u64> = pool
        .imap(square, 0u64..)
        .take(30)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, (0..30u64).map(square).collect::<Vec<_>>());
    // submit, apply, as_completed.
    let hs: Vec<_> = (0..10u64).map(|i| pool.submit(square, i)).collect();
    let mut done: Vec<u64> = as_completed(hs).map(|(_, r)| r.unwrap()).collect();
    done.sort_unstable();
    assert_eq!(done, (0..10u64).map(square).collect::<Vec<_>>());
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    assert_eq!(
        pool.submit(check, 13).join().unwrap_err().kind(),
        ErrorKind::Panicked
    );
    // starmap-free map_async.
    assert_eq!(
        pool.map_async(square, vec![3, 4]).join().unwrap(),
        vec![9, 16]
    );
    // Handles are futures, as locally.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(pool.submit(square, 9)).unwrap(), 81);
    assert_eq!(
        rt.block_on(pool.map_async(square, vec![5, 6])).unwrap(),
        vec![25, 36]
    );
    let stats = pool.cluster_stats().unwrap();
    assert_eq!(stats.duplicates_dropped, 0);
    // Every registered task is advertised by hosts that started before main.
    for h in &stats.hosts {
        assert_eq!(h.tasks, cluster::registered().len(), "{h:?}");
        assert_eq!(h.slots, 2);
    }
    pool.join();
    local.join();
    // The client's own keys are gone after join.
    let left: Vec<String> = keys(&url, &name)
        .into_iter()
        .filter(|k| k.contains(":res:") || k.contains(":client:") || k.contains(":blob:"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    cleanup(&url, &name);
}

#[test]
fn t2_a_task_registered_by_the_attribute_runs() {
    let _w = util::watchdog(LIMIT);
    // Listed, under the key `task!(cube)` would give it.
    let def = cluster::registered()
        .into_iter()
        .find(|t| t.name() == "cluster_pool::cube")
        .expect("#[multiproc::remote] registered cube");
    assert_eq!(def.signature(), "(u64) -> u64");
    assert_eq!(def.key(), cluster::TaskDef::of(cube).key());
    let Some((url, name, _hosts, pool)) = setup(1, 2) else {
        return;
    };
    assert_eq!(
        pool.map(cube, 0..40u64).unwrap(),
        (0..40u64).map(cube).collect::<Vec<_>>()
    );
    assert_eq!(pool.apply(cube, 7).unwrap(), 343);
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t3_refusals_before_anything_is_sent() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    let e = pool.submit(unregistered, 1).join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotRegistered);
    assert!(e.to_string().contains("task!(unregistered)"), "{e}");
    let e = pool.submit(|x: u32| x + 1, 1).join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let (a, _b) = multiproc::Pipe::new().unwrap();
    let e = pool.submit(takes_pipe, a).join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Encode);
    assert!(e.to_string().contains("cannot cross machines"), "{e}");
    let len: u64 = redis::cmd("XLEN")
        .arg(format!("{{{name}}}:tasks"))
        .query(&mut raw(&url))
        .unwrap();
    assert_eq!(len, 0, "nothing was written");
    // A payload above max_payload fails before any write.
    let small = Pool::builder()
        .cluster(opts(&url, &name).max_payload(1000))
        .build()
        .unwrap();
    let e = small.submit(touch, "x".repeat(5000)).join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Encode);
    small.join();
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t3_keys_are_mandatory() {
    let _w = util::watchdog(LIMIT);
    // No Redis needed: the key is checked first.
    let o = cluster::Options::new("redis://127.0.0.1:1/").auth_key(b"short".to_vec());
    let e = Pool::builder().cluster(o.clone()).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("at least 16"), "{e}");
    let e = cluster::Worker::new(o).slots(1).serve().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn t10_no_listener_is_broker_unavailable_within_the_timeout() {
    let _w = util::watchdog(LIMIT);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = Instant::now();
    let e = Pool::builder()
        .cluster(
            cluster::Options::new(format!("redis://127.0.0.1:{port}/"))
                .auth_key(KEY.as_bytes().to_vec())
                .connect_timeout(Duration::from_secs(1)),
        )
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokerUnavailable, "{e}");
    assert!(start.elapsed() < Duration::from_secs(1) + Duration::from_secs(2));
    // An address that does not answer at all (TEST-NET-1): the connect timeout.
    let start = Instant::now();
    let e = Pool::builder()
        .cluster(
            cluster::Options::new("redis://192.0.2.1:6379/")
                .auth_key(KEY.as_bytes().to_vec())
                .connect_timeout(Duration::from_secs(1)),
        )
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokerUnavailable, "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(1) + Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn t4_host_killed_mid_task_loses_nothing() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, mut hosts, pool)) = setup(2, 1) else {
        return;
    };
    // 6 tasks of 600 ms on 2 single-slot hosts; kill one host while it runs one.
    let h = pool.map_async(sleep_ms, vec![600u64; 6]);
    std::thread::sleep(Duration::from_millis(300));
    hosts[0].kill9();
    let killed = Instant::now();
    let out = h.join().unwrap();
    assert_eq!(out, vec![600u64; 6]);
    // Reclaimed after min_idle (1 s) plus a reaper period, then run (0.6 s each,
    // serially on the surviving host): within min_idle + 2 s + the work, plus a
    // margin for a loaded machine.
    assert!(
        killed.elapsed() < Duration::from_millis(1000 + 2000 + 6 * 600 + 5000),
        "{:?}",
        killed.elapsed()
    );
    let s = pool.cluster_stats().unwrap();
    assert!(s.redelivered >= 1, "{s:?}");
    assert_eq!(s.duplicates_dropped, 0, "{s:?}");
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t6_poison_task_fails_after_max_deliveries() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    let mut hosts: Vec<Host> = (0..2).map(|_| Host::start(&url, &name, 1)).collect();
    wait_hosts(&pool, 2, HOSTS_UP);
    let poison = pool.submit(kill_host, 0);
    let fine: Vec<_> = (1..5u32).map(|i| pool.submit(kill_host, i)).collect();
    // Keep two hosts alive: every delivery of the poison task kills one.
    let mut deaths = 0;
    while !poison.is_finished() {
        for h in &mut hosts {
            if !h.alive() {
                deaths += 1;
                *h = Host::start(&url, &name, 1);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = poison.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    assert!(e.to_string().contains("delivered 3 times"), "{e}");
    assert_eq!(deaths, 3, "one host per delivery");
    for (i, h) in fine.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i as u32 + 1);
    }
    let dead: u64 = redis::cmd("XLEN")
        .arg(format!("{{{name}}}:dead"))
        .query(&mut raw(&url))
        .unwrap();
    assert_eq!(dead, 1);
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t7_segfault_is_worker_died_not_redelivered() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, hosts, pool)) = setup(1, 1) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("mp-t7-{}", std::process::id()));
    let once = dir.with_extension("once");
    let e = pool
        .submit(segv, once.display().to_string())
        .join()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    assert_eq!(e.signal(), Some(Signal::SIGSEGV), "{e}");
    assert!(e.to_string().contains("on host"), "{e}");
    // The host still serves, and ran the task once.
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
    assert_eq!(std::fs::read_to_string(&once).unwrap().lines().count(), 1);
    assert_eq!(pool.cluster_stats().unwrap().redelivered, 0);
    // With retries(1), a second attempt happens.
    let retrying = Pool::builder()
        .cluster(opts(&url, &name))
        .retries(1)
        .build()
        .unwrap();
    let twice = dir.with_extension("twice");
    let e = retrying
        .submit(segv, twice.display().to_string())
        .join()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied);
    assert_eq!(std::fs::read_to_string(&twice).unwrap().lines().count(), 2);
    let _ = std::fs::remove_file(once);
    let _ = std::fs::remove_file(twice);
    drop(hosts);
    retrying.join();
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t12_forged_entries_never_run() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, _hosts, pool)) = setup(1, 1) else {
        return;
    };
    let base = std::env::temp_dir().join(format!("mp-t12-{}", std::process::id()));
    let tasks = format!("{{{name}}}:tasks");
    // A client with another key: its entry is signed, but not with the hosts' key.
    let other = Pool::builder()
        .cluster(opts(&url, &name).auth_key(b"another key, also long enough".to_vec()))
        .build()
        .unwrap();
    let wrong_key = base.with_extension("wrongkey");
    let _h = other.submit(touch, wrong_key.display().to_string());
    // Copy what it wrote: unsigned, with a flipped MAC, and into another stream.
    let mut con = raw(&url);
    let start = Instant::now();
    let entry: Fields = loop {
        let v: Vec<(String, Fields)> = redis::cmd("XRANGE")
            .arg(&tasks)
            .arg("-")
            .arg("+")
            .query(&mut con)
            .unwrap();
        if let Some((_, f)) = v.into_iter().next() {
            break f;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    };
    let unsigned: Vec<_> = entry.iter().filter(|(k, _)| k != "s").cloned().collect();
    let mut flipped = entry.clone();
    for (k, v) in &mut flipped {
        if k == "s" {
            v[0] ^= 1;
        }
    }
    for fields in [unsigned, flipped] {
        let mut c = redis::cmd("XADD");
        c.arg(&tasks).arg("*");
        for (k, v) in &fields {
            c.arg(k).arg(v.as_slice());
        }
        let _: String = c.query(&mut con).unwrap();
    }
    // A forged result in a real client's stream is ignored.
    // (Into every client's result stream: this test has two clients.)
    for res in keys(&url, &name)
        .into_iter()
        .filter(|k| k.contains(":res:"))
    {
        let _: String = redis::cmd("XADD")
            .arg(&res)
            .arg("*")
            .arg("h")
            .arg(vec![1u8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
            .arg("p")
            .arg("x")
            .arg("s")
            .arg(vec![0u8; 32])
            .query(&mut con)
            .unwrap();
    }
    // All three task entries reach the host and are dropped uncounted as work.
    let start = Instant::now();
    loop {
        let s = pool.cluster_stats().unwrap();
        let dropped: u64 = s.hosts.iter().map(|h| h.unauthenticated).sum();
        let forged_results = s.unauthenticated_dropped;
        if dropped >= 3 && forged_results >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The host still works; nothing forged ran.
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
    assert!(!wrong_key.exists(), "an entry signed with another key ran");
    other.terminate();
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t15_large_payloads_go_through_blob_keys() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, _hosts, pool)) = setup(1, 1) else {
        return;
    };
    fn echo(v: Vec<u8>) -> Vec<u8> {
        v.into_iter().rev().collect()
    }
    multiproc::task!(echo);
    let big: Vec<u8> = (0..(2 << 20)).map(|i| (i % 251) as u8).collect();
    let want: Vec<u8> = big.iter().rev().copied().collect();
    assert_eq!(pool.apply(echo, big).unwrap(), want);
    let blobs: Vec<String> = keys(&url, &name)
        .into_iter()
        .filter(|k| k.contains(":blob:"))
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}");
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t18_sigterm_drains_a_host() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, mut hosts, pool)) = setup(2, 1) else {
        return;
    };
    let h = pool.map_async(sleep_ms, vec![500u64; 6]);
    std::thread::sleep(Duration::from_millis(250));
    let pid = rustix::process::Pid::from_raw(hosts[0].pid()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = hosts[0].child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(h.join().unwrap(), vec![500u64; 6]);
    // It finished what it ran: nothing was reclaimed.
    assert_eq!(pool.cluster_stats().unwrap().redelivered, 0);
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t17_list_prints_the_task_table() {
    let _w = util::watchdog(LIMIT);
    // What `multiproc worker --list -- <this binary>` runs.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(cluster::LIST_ENV, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cluster::registered().len(), "{text}");
    let sq = lines
        .iter()
        .find(|l| l.starts_with("cluster_pool::util::square\t"))
        .expect(&text);
    let cols: Vec<&str> = sq.split('\t').collect();
    assert_eq!(cols[1], "(u64) -> u64");
    let def = cluster::registered()
        .into_iter()
        .find(|t| t.name() == "cluster_pool::util::square")
        .unwrap();
    assert_eq!(cols[2], format!("{:016x}", def.key()));
    assert!(
        cols[3].len() >= 16 && cols[3].chars().all(|c| c.is_ascii_hexdigit()),
        "{sq}"
    );
}

#[test]
fn t17_a_host_of_another_build_is_refused() {
    use multiproc::test_support::mark;
    multiproc::task!(mark);
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let Some(other) = other_build() else { return };
    let name = unique_name();
    let dir = std::env::temp_dir();
    let marker = |i: u32| {
        let p = dir.join(format!("mp-t17-{}-{i}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p.display().to_string()
    };
    let strict = Pool::builder()
        .cluster(opts(&url, &name).same_build(true))
        .build()
        .unwrap();
    // 1. A task written while no host is known reaches a host of another build (same
    //    task key: same name and types), which answers and runs nothing.
    let m1 = marker(1);
    let h = strict.submit(mark, m1.clone());
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
    let mut foreign = Host::start_exe(&other, &url, &name, 1, &[]);
    let e = h.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BinaryMismatch, "{e}");
    assert!(
        e.to_string().contains("not the client's build") && e.to_string().contains("did not run"),
        "{e}"
    );
    assert!(!std::path::Path::new(&m1).exists(), "{m1} was run");
    // 2. Now that the client sees that host, it refuses before sending.
    wait_hosts(&strict, 1, HOSTS_UP);
    let foreign_build = strict.cluster_stats().unwrap().hosts[0].build_id.clone();
    let m2 = marker(2);
    let e = strict.apply(mark, m2.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BinaryMismatch, "{e}");
    assert!(e.to_string().contains("it was not sent"), "{e}");
    assert!(e.to_string().contains(&foreign_build[..12]), "{e}");
    assert!(!std::path::Path::new(&m2).exists(), "{m2} was run");
    // 3. Without same_build the same key runs there: the build alone was refused.
    let loose = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&loose, 1, HOSTS_UP);
    let m3 = marker(3);
    assert_eq!(loose.apply(mark, m3.clone()).unwrap(), m3.len() as u64);
    assert!(std::path::Path::new(&m3).exists());
    loose.join();
    strict.join();
    foreign.kill9();
    cleanup(&url, &name);
    // 4. A host of the client's own build runs it with same_build, and its build id is
    //    not the other program's.
    let name = unique_name();
    let _own = Host::start(&url, &name, 1);
    let strict = Pool::builder()
        .cluster(opts(&url, &name).same_build(true))
        .build()
        .unwrap();
    wait_hosts(&strict, 1, HOSTS_UP);
    assert_ne!(
        strict.cluster_stats().unwrap().hosts[0].build_id,
        foreign_build
    );
    let m4 = marker(4);
    assert_eq!(strict.apply(mark, m4.clone()).unwrap(), m4.len() as u64);
    assert!(std::path::Path::new(&m4).exists());
    strict.join();
    cleanup(&url, &name);
    for p in [m3, m4] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn t2_cancel_before_send_and_terminate() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    // A window of one task: the second waits in the client, where it can be cancelled.
    let pool = Pool::builder()
        .cluster(opts(&url, &name).window(1))
        .build()
        .unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    let path = std::env::temp_dir().join(format!("mp-t2c-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let first = pool.submit(sleep_ms, 800);
    let second = pool.submit(touch, path.display().to_string());
    // Time enough for the client to send it, were the window not full.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        second.cancel(),
        "a task still in the client can be cancelled"
    );
    assert_eq!(second.join().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(first.join().unwrap(), 800);
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
    assert!(!path.exists(), "the cancelled task ran");
    // terminate: unfinished tasks fail with PoolClosed, at once.
    let hs: Vec<_> = (0..4).map(|_| pool.submit(sleep_ms, 2000)).collect();
    let start = Instant::now();
    pool.terminate();
    for h in hs {
        assert_eq!(h.join().unwrap_err().kind(), ErrorKind::PoolClosed);
    }
    assert!(start.elapsed() < Duration::from_secs(2) + Duration::from_secs(3));
    assert_eq!(
        pool.submit(square, 1).join().unwrap_err().kind(),
        ErrorKind::PoolClosed
    );
    cleanup(&url, &name);
}

#[test]
fn t16_imap_over_an_endless_input_stays_bounded_in_redis() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    let pool = Pool::builder()
        .cluster(opts(&url, &name))
        .prefetch(8)
        .build()
        .unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    let mut it = pool.imap(square, 0u64..);
    for i in 0..300u64 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    // One entry per chunk (one item each: the input's length is unknown): at most
    // the consumed ones plus the prefetch were ever written.
    let info: std::collections::HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(format!("{{{name}}}:tasks"))
        .query(&mut raw(&url))
        .unwrap();
    let added = match info.get("entries-added") {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("entries-added: {other:?}"),
    };
    assert!(
        (300..=300 + 8 + 1).contains(&added),
        "{added} entries written for 300 consumed"
    );
    drop(it);
    pool.join();
    cleanup(&url, &name);
}

/// One `apply` at a time from several threads: a lone task is written by the thread
/// that submits it, the others by the sender thread; each must run once, and the
/// client's result stream, trimmed every so many entries, stays short.
#[test]
fn t2_applies_from_many_threads_each_run_once() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, _hosts, pool)) = setup(2, 1) else {
        return;
    };
    let file = std::env::temp_dir().join(format!("mp-t2a-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let path = file.display().to_string();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let (pool, path) = (&pool, &path);
            s.spawn(move || {
                for i in 0..50u32 {
                    let x = t * 1000 + i;
                    assert_eq!(pool.apply(append, (path.clone(), x)).unwrap(), x);
                }
            });
        }
    });
    // Alone again: every apply of this thread takes the submitter's path.
    for x in 5000..5100u32 {
        assert_eq!(pool.apply(append, (path.clone(), x)).unwrap(), x);
    }
    let mut runs: Vec<u32> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    runs.sort_unstable();
    let want: Vec<u32> = (0..4u32)
        .flat_map(|t| (0..50).map(move |i| t * 1000 + i))
        .chain(5000..5100)
        .collect();
    assert_eq!(runs, want, "each task runs exactly once");
    let s = pool.cluster_stats().unwrap();
    assert_eq!((s.duplicates_dropped, s.redelivered), (0, 0));
    let res = keys(&url, &name)
        .into_iter()
        .find(|k| k.contains(":res:"))
        .expect("the client's result stream");
    let len: u64 = redis::cmd("XLEN").arg(&res).query(&mut raw(&url)).unwrap();
    assert!(len <= 64 + 1, "{len} results kept after 300 were read");
    let _ = std::fs::remove_file(&file);
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t2_task_timeout_travels_with_the_task() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    // Builder::task_timeout, as for a local pool: the host's pool kills the worker.
    let pool = Pool::builder()
        .cluster(opts(&url, &name))
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    let local = Pool::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert_eq!(pool.apply(sleep_ms, 10).unwrap(), 10);
    let start = Instant::now();
    let e = pool.apply(sleep_ms, 20_000).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(e.kind(), local.apply(sleep_ms, 20_000).unwrap_err().kind());
    assert!(e.to_string().contains("on host"), "{e}");
    assert!(
        took < Duration::from_millis(500) + Duration::from_secs(5),
        "{took:?}"
    );
    // The host replaced its worker and still serves.
    assert_eq!(pool.apply(square, 6).unwrap(), 36);
    // A limit set on the options directly does the same.
    let direct = Pool::builder()
        .cluster(opts(&url, &name).task_timeout(Duration::from_millis(300)))
        .build()
        .unwrap();
    let e = direct.apply(sleep_ms, 20_000).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("300ms"), "{e}");
    direct.join();
    pool.join();
    local.join();
    cleanup(&url, &name);
}

#[test]
fn t2_terminate_stops_tasks_running_on_hosts() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    let path = std::env::temp_dir().join(format!("mp-t2t-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // A 30 s task on the host's only slot, and one queued behind it.
    let running = pool.submit(marked, (path.display().to_string(), 30_000));
    let queued = pool.submit(square, 4);
    let start = Instant::now();
    while std::fs::read_to_string(&path).map_or(true, |s| !s.starts_with("start")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    pool.terminate();
    assert_eq!(running.join().unwrap_err().kind(), ErrorKind::PoolClosed);
    assert_eq!(queued.join().unwrap_err().kind(), ErrorKind::PoolClosed);
    // The host stops the task at its next heartbeat (200 ms): another client's task
    // runs on its only slot long before the 30 s are up.
    let stopped = Instant::now();
    let other = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&other, 1, HOSTS_UP);
    assert_eq!(other.apply(square, 9).unwrap(), 81);
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "the terminated client's task kept the slot for {:?}",
        stopped.elapsed()
    );
    // Counted as cancelled by the host; the task never reached its end.
    let start = Instant::now();
    loop {
        let s = other.cluster_stats().unwrap();
        if s.hosts.iter().map(|h| h.cancelled).sum::<u64>() >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "start\n");
    // Nothing is left pending in the task stream.
    let start = Instant::now();
    loop {
        let v: redis::Value = redis::cmd("XPENDING")
            .arg(format!("{{{name}}}:tasks"))
            .arg("workers")
            .query(&mut raw(&url))
            .unwrap();
        let pending = match &v {
            redis::Value::Array(a) => matches!(a.first(), Some(redis::Value::Int(0))),
            _ => false,
        };
        if pending {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{v:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&path);
    other.join();
    cleanup(&url, &name);
}

#[test]
fn t2_a_live_client_whose_lease_vanished_gets_its_task_run() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    // A lease of 10 min: the client's own renewal (every lease / 6) cannot put the key
    // back before the host looks, only its reaction to the cancelled answer can.
    let pool = Pool::builder()
        .cluster(opts(&url, &name).lease(Duration::from_secs(600)))
        .build()
        .unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    let path = std::env::temp_dir().join(format!("mp-t2l-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let h = pool.submit(marked, (path.display().to_string(), 1500));
    let start = Instant::now();
    while std::fs::read_to_string(&path).map_or(true, |s| !s.starts_with("start")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // What a Redis that lost its data (or an operator) does: the lease key goes. The
    // host stops the task as its client's, but the client is alive: it renews its
    // lease and the task runs again, to its end.
    let lease: Vec<String> = keys(&url, &name)
        .into_iter()
        .filter(|k| k.contains(":client:"))
        .collect();
    assert_eq!(lease.len(), 1, "{lease:?}");
    let _: () = redis::cmd("DEL").arg(&lease).query(&mut raw(&url)).unwrap();
    assert_eq!(h.join().unwrap(), 1);
    assert!(std::fs::read_to_string(&path).unwrap().ends_with("end\n"));
    let s = pool.cluster_stats().unwrap();
    assert!(s.resubmitted >= 1, "{s:?}");
    let _ = std::fs::remove_file(&path);
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t2_the_other_calls_match_the_process_pool() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, _hosts, pool)) = setup(1, 2) else {
        return;
    };
    let local = Pool::processes(2).unwrap();
    // map_chunked: order kept across chunks of 7.
    assert_eq!(
        pool.map_chunked(square, 0..50u64, 7).unwrap(),
        local.map_chunked(square, 0..50u64, 7).unwrap()
    );
    // apply_async_with and map_async_with: the callback sees what the handle returns.
    let (tx, rx) = std::sync::mpsc::channel();
    let h = pool.apply_async_with(square, 11, move |r| {
        tx.send(r.as_ref().ok().copied()).unwrap();
    });
    assert_eq!(h.join().unwrap(), 121);
    assert_eq!(rx.recv_timeout(HOSTS_UP).unwrap(), Some(121));
    let (tx, rx) = std::sync::mpsc::channel();
    let h = pool.map_async_with(check, vec![1, 13, 2], move |r| {
        tx.send(r.as_ref().map_err(multiproc::Error::kind).cloned())
            .unwrap();
    });
    assert_eq!(h.join().unwrap_err().kind(), ErrorKind::Panicked);
    assert_eq!(
        rx.recv_timeout(HOSTS_UP).unwrap(),
        Err(ErrorKind::Panicked),
        "the callback saw another outcome"
    );
    // wait: First returns while a long task still runs; All returns every index.
    let hs = vec![pool.submit(sleep_ms, 3000), pool.submit(sleep_ms, 1)];
    let first = multiproc::pool::wait(&hs, multiproc::pool::WaitFor::First, Some(LIMIT));
    assert_eq!(first, vec![1]);
    let all = multiproc::pool::wait(&hs, multiproc::pool::WaitFor::All, Some(LIMIT));
    assert_eq!(all.len(), 2);
    pool.join();
    local.join();
    cleanup(&url, &name);
}

/// The progress scenario, run by the test below in a child whose stderr is a
/// terminal (the bar is drawn only there): `map`, `imap` and `imap_unordered` with a
/// progress bar over a cluster whose host the test started.
#[cfg(feature = "progress")]
#[test]
#[ignore = "run by t2_progress_bars_end_at_the_item_count"]
fn t2_progress_helper() {
    let url = std::env::var("T2P_URL").unwrap();
    let name = std::env::var("T2P_NAME").unwrap();
    let pool = Pool::builder()
        .cluster(opts(&url, &name))
        .progress(true)
        .build()
        .unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    let want = |n: u64| (0..n).map(square).collect::<Vec<_>>();
    assert_eq!(pool.map(square, 0..100u64).unwrap(), want(100));
    let ordered: Vec<u64> = pool
        .imap(square, 0..37u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ordered, want(37));
    let mut any: Vec<u64> = pool
        .imap_unordered(square, 0..23u64)
        .chunksize(2)
        .collect::<Result<_, _>>()
        .unwrap();
    any.sort_unstable();
    assert_eq!(any, want(23));
    pool.join();
    eprintln!("\nprogress helper done");
}

/// The `N/L` counters a progress bar drew in `text` (escape sequences dropped).
#[cfg(feature = "progress")]
fn counters(text: &str) -> Vec<(u64, u64)> {
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte.
            if chars.next_if_eq(&'[').is_some() {
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            }
            plain.push(' ');
        } else {
            plain.push(c);
        }
    }
    plain
        .split(|c: char| !c.is_ascii_digit() && c != '/')
        .filter_map(|w| {
            let (a, b) = w.split_once('/')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

#[cfg(feature = "progress")]
#[test]
fn t2_progress_bars_end_at_the_item_count() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 2);
    // `script` (util-linux) runs the helper on a pseudo-terminal and copies what it
    // drew to a file.
    let log = std::env::temp_dir().join(format!("mp-t2p-{}.log", std::process::id()));
    let exe = std::env::current_exe().unwrap();
    let cmd = format!(
        "'{}' --ignored --exact t2_progress_helper --nocapture --test-threads=1",
        exe.display()
    );
    let child = std::process::Command::new("script")
        .args(["-q", "-e", "-f", "-c", &cmd, "/dev/null"])
        .env("T2P_URL", &url)
        .env("T2P_NAME", &name)
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "`script` (util-linux) cannot run under CI=true: {e}"
            );
            eprintln!("skipped: `script` cannot run: {e}");
            return;
        }
    };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the progress helper hung: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    let _ = std::fs::remove_file(&log);
    assert!(
        status.success() && text.contains("progress helper done"),
        "{status:?}: {text}"
    );
    let drawn = counters(&text);
    for len in [100u64, 37, 23] {
        let of_len: Vec<u64> = drawn
            .iter()
            .filter(|&&(_, l)| l == len)
            .map(|&(p, _)| p)
            .collect();
        // Drawn, never past its length, and last drawn (the finished bar) full.
        assert_eq!(
            of_len.last(),
            Some(&len),
            "bar of {len}: {of_len:?}\n{text}"
        );
        assert!(of_len.iter().all(|&p| p <= len), "{of_len:?}");
    }
    cleanup(&url, &name);
}

fn pow(base: u64, exp: u32) -> u64 {
    base.pow(exp)
}
fn join3(a: String, b: u8, c: bool) -> String {
    format!("{a}{b}{c}")
}
multiproc::task!(pow, join3);

#[test]
fn t2_starmap_runs_registered_functions_of_several_arguments() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, _hosts, pool)) = setup(1, 2) else {
        return;
    };
    let local = Pool::processes(2).unwrap();
    let items: Vec<(u64, u32)> = (0..40u64).map(|i| (i % 7, (i % 5) as u32)).collect();
    assert_eq!(
        pool.starmap(pow, items.clone()).unwrap(),
        local.starmap(pow, items).unwrap()
    );
    assert_eq!(
        pool.starmap_async(
            join3,
            vec![("a".to_owned(), 1, true), ("b".to_owned(), 2, false)]
        )
        .join()
        .unwrap(),
        vec!["a1true", "b2false"]
    );
    // Registered under its own name, over the tuple of its arguments.
    let def = cluster::registered()
        .into_iter()
        .find(|t| t.name() == "cluster_pool::pow")
        .unwrap();
    assert_eq!(def.signature(), "(u64, u32) -> u64");
    // Refused before anything is sent, as for map: unregistered, or a closure.
    fn unregistered2(a: u8, b: u8) -> u8 {
        a + b
    }
    let e = pool.starmap(unregistered2, vec![(1, 2)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotRegistered, "{e}");
    assert!(e.to_string().contains("task!(unregistered2)"), "{e}");
    let e = pool
        .starmap(|a: u8, b: u8| a + b, vec![(1, 2)])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(
        pool.cluster_stats().unwrap().hosts[0].tasks,
        cluster::registered().len()
    );
    pool.join();
    local.join();
    cleanup(&url, &name);
}

#[test]
fn t12_an_entry_signed_for_another_cluster_never_runs() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, _hosts, pool)) = setup(1, 1) else {
        return;
    };
    // A client of another cluster with the same key: its entry is signed, for its
    // own stream. Nobody serves that cluster, so the entry waits there.
    let other_name = unique_name();
    let other = Pool::builder()
        .cluster(opts(&url, &other_name))
        .build()
        .unwrap();
    let path = std::env::temp_dir().join(format!("mp-t12x-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let _h = other.submit(touch, path.display().to_string());
    let mut con = raw(&url);
    let start = Instant::now();
    let entry: Fields = loop {
        let v: Vec<(String, Fields)> = redis::cmd("XRANGE")
            .arg(format!("{{{other_name}}}:tasks"))
            .arg("-")
            .arg("+")
            .query(&mut con)
            .unwrap();
        if let Some((_, f)) = v.into_iter().next() {
            break f;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    };
    // Replayed into this cluster's stream, byte for byte: the MAC covers the stream
    // key, so the host drops it unrun.
    let mut c = redis::cmd("XADD");
    c.arg(format!("{{{name}}}:tasks")).arg("*");
    for (k, v) in &entry {
        c.arg(k).arg(v.as_slice());
    }
    let _: String = c.query(&mut con).unwrap();
    let start = Instant::now();
    loop {
        let s = pool.cluster_stats().unwrap();
        if s.hosts.iter().map(|h| h.unauthenticated).sum::<u64>() >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The host serves on (after the replayed entry), and the replay never ran.
    assert_eq!(pool.apply(square, 4).unwrap(), 16);
    assert!(!path.exists(), "an entry signed for another cluster ran");
    other.terminate();
    pool.join();
    cleanup(&url, &name);
    cleanup(&url, &other_name);
}

/// Sleeps `ms`, then returns its host's pid (the local worker's parent).
fn host_pid(ms: u64) -> i32 {
    std::thread::sleep(Duration::from_millis(ms));
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
}
multiproc::task!(host_pid);

#[test]
fn t18_a_draining_host_takes_no_new_task() {
    let _w = util::watchdog(LIMIT);
    let Some((url, name, mut hosts, pool)) = setup(2, 1) else {
        return;
    };
    let pids: Vec<i32> = hosts.iter().map(Host::pid).collect();
    // Two long tasks first, one per host (each reads only for its free slot), then 4
    // short ones.
    let h = pool.map_async(host_pid, vec![2000u64, 2000, 100, 100, 100, 100]);
    // Once both hosts run a long task, SIGTERM the first: it finishes that one, and
    // takes none of the 4 still queued.
    let start = Instant::now();
    while pool
        .cluster_stats()
        .unwrap()
        .hosts
        .iter()
        .map(|h| h.running)
        .sum::<u32>()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the hosts never got busy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(pids[0]).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = hosts[0].child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let ran = h.join().unwrap();
    let by_first = ran.iter().filter(|&&p| p == pids[0]).count();
    assert_eq!(
        by_first, 1,
        "the draining host ran {by_first} tasks: {ran:?} (hosts {pids:?})"
    );
    assert_eq!(ran.iter().filter(|&&p| p == pids[1]).count(), 5, "{ran:?}");
    assert_eq!(pool.cluster_stats().unwrap().redelivered, 0);
    pool.join();
    cleanup(&url, &name);
}

/// The length of `s`.
fn length(s: String) -> u64 {
    s.len() as u64
}
multiproc::task!(length);

/// This process's resident set, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb << 10
}

#[test]
fn t16_the_clients_memory_stays_bounded_over_an_endless_imap() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 2);
    let pool = Pool::builder()
        .cluster(opts(&url, &name))
        .prefetch(8)
        .build()
        .unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    // Items of 16 KiB from an endless input: 1,500 of them are 24 MiB of arguments,
    // which a client that kept them (or their tasks) would hold.
    let item = "x".repeat(16 << 10);
    let mut it = pool.imap(length, std::iter::repeat(item));
    let start = Instant::now();
    for _ in 0..200 {
        assert_eq!(it.next().unwrap().unwrap(), 16 << 10);
    }
    let before = rss();
    for _ in 200..1500 {
        assert_eq!(it.next().unwrap().unwrap(), 16 << 10);
    }
    let grew = rss().saturating_sub(before);
    eprintln!(
        "1,500 items in {:?}; RSS grew {} KiB",
        start.elapsed(),
        grew >> 10
    );
    assert!(
        grew < 10 << 20,
        "the client's RSS grew {} KiB over 1,300 items",
        grew >> 10
    );
    drop(it);
    pool.join();
    cleanup(&url, &name);
}

#[test]
fn t17_a_host_without_the_task_answers_not_registered_and_stays() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let Some(other) = other_build() else { return };
    let name = unique_name();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    // Written while no host is known, so the client cannot refuse it: the host that
    // then reads it (another program, which registers no `square`) answers.
    let h = pool.submit(square, 5);
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
    let mut foreign = Host::start_exe(&other, &url, &name, 1, &[]);
    let e = h.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotRegistered, "{e}");
    assert!(
        e.to_string()
            .contains("has no task `cluster_pool::util::square`"),
        "{e}"
    );
    // Answered once, not left pending to be redelivered; the host serves on.
    wait_hosts(&pool, 1, HOSTS_UP);
    let build = pool.cluster_stats().unwrap().hosts[0].build_id.clone();
    assert!(
        e.to_string().contains(&build[..12]),
        "{e} (host build {build})"
    );
    let start = Instant::now();
    loop {
        let v: redis::Value = redis::cmd("XPENDING")
            .arg(format!("{{{name}}}:tasks"))
            .arg("workers")
            .query(&mut con)
            .unwrap();
        if matches!(&v, redis::Value::Array(a) if matches!(a.first(), Some(redis::Value::Int(0)))) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{v:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(foreign.alive());
    assert_eq!(pool.cluster_stats().unwrap().redelivered, 0);
    pool.join();
    foreign.kill9();
    cleanup(&url, &name);
}

/// The pid of the process running the task (a host's local worker).
fn own_pid(_: ()) -> u32 {
    std::process::id()
}
/// Allocates `mb` MiB (zeroed pages, not touched: address space, not memory) and
/// returns its size in MiB.
fn alloc(mb: usize) -> usize {
    let v = std::hint::black_box(vec![0u8; mb << 20]);
    v.len() >> 20
}
multiproc::task!(own_pid, alloc);

/// A host built in code with every limit [`cluster::Worker`] takes, run by the test
/// below in a child process; serves until killed.
#[test]
#[ignore = "run by t2_a_worker_built_in_code_applies_its_limits"]
fn t2_limited_worker_helper() {
    let url = std::env::var("T2W_URL").unwrap();
    let name = std::env::var("T2W_NAME").unwrap();
    cluster::Worker::new(opts(&url, &name))
        .slots(1)
        .max_tasks_per_child(1)
        .task_timeout(Duration::from_millis(500))
        .memory_limit(1 << 30)
        .serve()
        .unwrap();
}

#[test]
fn t2_a_worker_built_in_code_applies_its_limits() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host {
        child: std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "t2_limited_worker_helper",
                "--nocapture",
            ])
            .env("T2W_URL", &url)
            .env("T2W_NAME", &name)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    };
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    // max_tasks_per_child(1): every task in a fresh local worker.
    let pids: std::collections::BTreeSet<u32> =
        (0..3).map(|_| pool.apply(own_pid, ()).unwrap()).collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
    // task_timeout: the host's own limit, though the client set none.
    let start = Instant::now();
    let e = pool.apply(sleep_ms, 20_000).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // memory_limit (1 GiB of address space): 4 GiB cannot be had; 16 MiB can.
    let e = pool.apply(alloc, 4096).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    assert_eq!(pool.apply(alloc, 16).unwrap(), 16);
    pool.join();
    cleanup(&url, &name);
}
