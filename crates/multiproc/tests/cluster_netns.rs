//! The cluster backend with worker hosts on simulated machines (`t5`): each
//! host in its own network namespace, reaching a private Redis on a bridge over a
//! veth pair. A host killed with SIGKILL mid-task loses nothing; a host whose link
//! goes down long enough for its task to be reclaimed, then comes back, has its late
//! result dropped as a duplicate.
//!
//! Needs root, `ip` and `redis-server` (CI runs as root). Without them the tests say
//! why and skip, or fail under `CI=true`.
#![cfg(feature = "cluster")]

#[path = "util/cluster.rs"]
mod cluster_util;
#[path = "util/netns.rs"]
mod netns;
mod util;

use std::time::{Duration, Instant};

use cluster_util::{
    opts, unique_name, wait_hosts, Host, PrivateRedis, HEARTBEAT_MS, KEY, MIN_IDLE_MS,
};
use multiproc::pool::{cluster, Pool};

const LIMIT: Duration = Duration::from_secs(120);
const HOSTS_UP: Duration = Duration::from_secs(30);

fn slow(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}
multiproc::task!(slow);

/// Hosts `0..n` (one slot each) in their namespaces, a Redis on the bridge, a pool.
fn setup(what: &str, n: u8) -> Option<(netns::Net, PrivateRedis, String, Vec<Host>, Pool)> {
    let mut net = netns::net_or_skip(what)?;
    for k in 0..n {
        if let Err(why) = net.add_machine(k) {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{what}: cannot create a namespace host under CI=true: {why}"
            );
            eprintln!("SKIPPED {what}: cannot create a namespace host: {why}");
            return None;
        }
    }
    let redis = PrivateRedis::start_on(&net.gateway())?;
    let url = redis.url();
    let name = unique_name();
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let timing = format!("{HEARTBEAT_MS},{MIN_IDLE_MS}");
    let hosts: Vec<Host> = (0..n)
        .map(|k| Host {
            child: net
                .spawn(
                    k,
                    None,
                    &[exe],
                    &[
                        (cluster::WORKER_ENV, &url),
                        (cluster::WORKER_NAME_ENV, &name),
                        (cluster::WORKER_SLOTS_ENV, "1"),
                        (cluster::WORKER_TIMING_ENV, &timing),
                        (cluster::KEY_ENV, KEY),
                    ],
                )
                .expect("start a host in its namespace"),
        })
        .collect();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&pool, n as usize, HOSTS_UP);
    Some((net, redis, name, hosts, pool))
}

#[test]
fn t5_namespace_host_killed_mid_task_loses_nothing() {
    let _w = util::watchdog(LIMIT);
    let Some((_net, _redis, _name, mut hosts, pool)) = setup("t5 kill", 2) else {
        return;
    };
    let h = pool.map_async(slow, vec![600u64; 6]);
    std::thread::sleep(Duration::from_millis(300));
    hosts[0].kill9();
    let killed = Instant::now();
    assert_eq!(h.join().unwrap(), vec![600u64; 6]);
    assert!(
        killed.elapsed() < Duration::from_millis(MIN_IDLE_MS + 2000 + 6 * 600 + 5000),
        "{:?}",
        killed.elapsed()
    );
    let s = pool.cluster_stats().unwrap();
    assert!(s.redelivered >= 1, "{s:?}");
    assert_eq!(s.duplicates_dropped, 0, "{s:?}");
    pool.join();
}

#[test]
fn t5_partitioned_host_comes_back_and_its_late_result_is_dropped() {
    let _w = util::watchdog(LIMIT);
    let Some((net, redis, name, hosts, pool)) = setup("t5 partition", 2) else {
        return;
    };
    // One 1.5 s task: find the host that took it, then cut its link.
    let h = pool.submit(slow, 1500);
    let mut con = cluster_util::raw(&redis.url());
    let tasks = format!("{{{name}}}:tasks");
    let start = Instant::now();
    let owner = loop {
        let v: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&tasks)
            .arg("workers")
            .arg("-")
            .arg("+")
            .arg(10)
            .query(&mut con)
            .unwrap();
        if let Some((_, owner, _, _)) = v.into_iter().next() {
            break owner;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nobody took the task"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // Host ids are `hostname-pid-random`.
    let k = hosts
        .iter()
        .position(|h| owner.contains(&format!("-{}-", h.pid())))
        .unwrap_or_else(|| panic!("{owner} is none of the hosts")) as u8;
    net.link(k, false).unwrap();
    let down = Instant::now();
    // Down for 3 × min_idle: the other host reclaims the task and answers it; the
    // partitioned host finishes meanwhile and answers once its link is back, well
    // before its connections' 5.5 s read timeout.
    std::thread::sleep(Duration::from_millis(3 * MIN_IDLE_MS));
    net.link(k, true).unwrap();
    assert_eq!(h.join().unwrap(), 1500);
    assert!(
        down.elapsed() < Duration::from_secs(20),
        "{:?}",
        down.elapsed()
    );
    let start = Instant::now();
    loop {
        let s = pool.cluster_stats().unwrap();
        // Two answers for one task: both hosts ran it (the task was reclaimed), and
        // the one that came second was dropped. Which came first is a race under load
        // (the reclaiming host may finish after the link is back), so `redelivered`,
        // which counts only an accepted second delivery, is not asserted.
        if s.duplicates_dropped >= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no late result arrived: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both hosts serve on.
    wait_hosts(&pool, 2, HOSTS_UP);
    assert_eq!(
        pool.map(slow, vec![1u64, 2, 3, 4]).unwrap(),
        vec![1, 2, 3, 4]
    );
    pool.join();
}

/// T10's client, run by the test below inside a machine whose link is down.
#[test]
#[ignore = "run by t10_build_behind_a_link_that_is_down_is_broker_unavailable_in_time"]
fn t10_client_helper() {
    let url = std::env::var("T10_URL").unwrap();
    let start = Instant::now();
    let e = Pool::builder()
        .cluster(opts(&url, &unique_name()).connect_timeout(Duration::from_secs(1)))
        .build()
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), multiproc::ErrorKind::BrokerUnavailable, "{e}");
    assert!(
        took < Duration::from_secs(1) + Duration::from_secs(2),
        "{took:?}"
    );
    println!("T10 refused in {took:?}: {e}");
}

#[test]
fn t10_build_behind_a_link_that_is_down_is_broker_unavailable_in_time() {
    let _w = util::watchdog(LIMIT);
    let Some(mut net) = netns::net_or_skip("t10") else {
        return;
    };
    if let Err(why) = net.add_machine(0) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "t10: cannot create a namespace host under CI=true: {why}"
        );
        eprintln!("SKIPPED t10: cannot create a namespace host: {why}");
        return;
    }
    let Some(redis) = PrivateRedis::start_on(&net.gateway()) else {
        return;
    };
    net.link(0, false).unwrap();
    let exe = std::env::current_exe().unwrap();
    let url = redis.url();
    let mut child = net
        .spawn(
            0,
            None,
            &[
                exe.to_str().unwrap(),
                "--ignored",
                "--exact",
                "t10_client_helper",
                "--nocapture",
            ],
            &[("T10_URL", &url)],
        )
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the client behind a down link hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
