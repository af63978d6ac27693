//! The cluster backend when Redis or a client goes away (`t8`, `t9`, `t11`, `t13`):
//! tests that kill Redis start their own `redis-server` on a free port.
//! Worker hosts are this test binary re-executed with `MULTIPROC_WORKER`.
#![cfg(feature = "cluster")]

#[path = "util/cluster.rs"]
mod cluster_util;
mod util;

use util::sleep_ms;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_util::{
    cleanup, keys, opts, raw, redis_url, unique_name, wait_hosts, FakeRedis, Host, PrivateRedis,
    KEY,
};
use multiproc::pool::{cluster, Pool};
use multiproc::ErrorKind;

/// A stream entry's field pairs.
type Fields = Vec<(String, Vec<u8>)>;

const LIMIT: Duration = Duration::from_secs(90);
const HOSTS_UP: Duration = Duration::from_secs(30);
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);

/// Sleeps, then appends a line to `path`.
fn count(path: String) -> u32 {
    use std::io::Write;
    std::thread::sleep(Duration::from_millis(300));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "ran").unwrap();
    1
}
/// The length of `s`.
fn size(s: String) -> u64 {
    s.len() as u64
}
/// Writes `start` to `path`, sleeps 1.5 s, then appends `end`.
fn slow_mark(path: String) -> u32 {
    use std::io::Write;
    std::fs::write(&path, "start\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "end").unwrap();
    1
}
multiproc::task!(sleep_ms, count, size, slow_mark);

#[test]
fn t8_a_long_task_on_a_live_host_is_not_reclaimed() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _hosts: Vec<Host> = (0..2).map(|_| Host::start(&url, &name, 1)).collect();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&pool, 2, HOSTS_UP);
    // 3.5 × min_idle.
    assert_eq!(pool.apply(sleep_ms, 3500).unwrap(), 3500);
    let s = pool.cluster_stats().unwrap();
    assert_eq!((s.redelivered, s.duplicates_dropped), (0, 0), "{s:?}");
    pool.join();
    cleanup(&url, &name);
}

/// The largest `idle` (seconds since its last command) of the connections whose last
/// command is one a host's reader sends (`XREADGROUP`, then `EXISTS` for a new
/// client's lease and `GET` for an argument blob), from `CLIENT LIST`.
fn idlest_reader(url: &str) -> u64 {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut raw(url))
        .unwrap();
    list.lines()
        .filter(|l| {
            [" cmd=xreadgroup ", " cmd=exists ", " cmd=get "]
                .iter()
                .any(|c| l.contains(c))
        })
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("idle="))
                .and_then(|v| v.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn t19_a_busy_host_reads_its_next_task_with_the_answer() {
    let _w = util::watchdog(LIMIT);
    // Its own server: no other test's connections in CLIENT LIST.
    let Some(redis) = PrivateRedis::start() else {
        return;
    };
    let url = redis.url();
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    // 100 tasks of 50 ms on one slot: at least 5 s, each answer freeing the slot.
    let hs: Vec<_> = (0..100).map(|_| pool.submit(sleep_ms, 50)).collect();
    // The host's writer reads the next entry in the round trip that answers the last
    // one, so its reader sends nothing while the slot stays full: its connection
    // idles for seconds. A reader that read each task itself would show 0 (the
    // other connections, the host's writer and housekeeper and the client's two, send
    // something every heartbeat or task).
    let mut idlest = 0;
    while idlest < 2 && !hs.last().unwrap().is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        idlest = idlest.max(idlest_reader(&url));
    }
    assert!(
        idlest >= 2,
        "the host's reader read while its slot was busy"
    );
    for h in hs {
        assert_eq!(h.join().unwrap(), 50);
    }
    pool.join();
}

#[test]
fn t9_redis_killed_and_kept_down_is_broker_unavailable() {
    let _w = util::watchdog(LIMIT);
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let url = redis.url();
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    let h = pool.map_async(sleep_ms, vec![400u64; 8]);
    std::thread::sleep(Duration::from_millis(300));
    redis.kill();
    let killed = Instant::now();
    let e = h.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokerUnavailable, "{e}");
    assert!(
        killed.elapsed() < BROKER_TIMEOUT + Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    // While it stays away, a new task fails at once.
    let start = Instant::now();
    let e = pool.submit(sleep_ms, 1).join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokerUnavailable, "{e}");
    assert!(start.elapsed() < Duration::from_secs(1));
    pool.join();
}

#[test]
fn t9_redis_restarted_empty_the_map_completes() {
    let _w = util::watchdog(LIMIT);
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let url = redis.url();
    let name = unique_name();
    let _hosts: Vec<Host> = (0..2).map(|_| Host::start(&url, &name, 1)).collect();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&pool, 2, HOSTS_UP);
    let h = pool.map_async(sleep_ms, (0..10u64).map(|i| 200 + i).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(300));
    redis.kill();
    std::thread::sleep(Duration::from_millis(500));
    redis.restart(); // empty: no persistence
    let out = h.join().unwrap();
    assert_eq!(out, (0..10u64).map(|i| 200 + i).collect::<Vec<_>>());
    let s = pool.cluster_stats().unwrap();
    assert!(s.resubmitted >= 1, "{s:?}");
    pool.join();
}

#[test]
fn t13_the_documented_acl_user_is_enough() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let Ok(acl) = std::env::var("MULTIPROC_TEST_REDIS_ACL_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no ACL URL under CI=true"
        );
        eprintln!("skipped: MULTIPROC_TEST_REDIS_ACL_URL is not set");
        return;
    };
    let name = unique_name(); // `{mpt…}`: inside the user's key pattern
    let _host = Host::start(&acl, &name, 1);
    let pool = Pool::builder().cluster(opts(&acl, &name)).build().unwrap();
    wait_hosts(&pool, 1, HOSTS_UP);
    assert_eq!(pool.map(sleep_ms, vec![1u64, 2, 3]).unwrap(), vec![1, 2, 3]);
    pool.join();
    // Outside its keys: refused at build.
    let e = Pool::builder()
        .cluster(opts(&acl, "forbidden"))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokerUnavailable, "{e}");
    // Redis's refusal is the error's source (what anyhow's `{:#}` prints after it).
    let chain = std::iter::successors(Some(&e as &dyn std::error::Error), |c| c.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    assert!(chain.to_lowercase().contains("noperm"), "{chain}");
    cleanup(&url, &name);
}

/// T11's client, run in a child process: submits `count` tasks, says so, waits to be
/// killed.
#[test]
#[ignore = "run by t11_a_killed_clients_tasks_are_dropped_and_its_keys_expire"]
fn t11_client_helper() {
    let url = std::env::var("T11_URL").unwrap();
    let name = std::env::var("T11_NAME").unwrap();
    let path = std::env::var("T11_PATH").unwrap();
    let pool = Pool::builder()
        .cluster(opts(&url, &name).lease(Duration::from_secs(2)))
        .build()
        .unwrap();
    let _hs: Vec<_> = (0..20).map(|_| pool.submit(count, path.clone())).collect();
    println!("submitted");
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn t11_a_killed_clients_tasks_are_dropped_and_its_keys_expire() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    let probe = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&probe, 1, HOSTS_UP);
    probe.join();
    let stable = |ks: Vec<String>| -> Vec<String> {
        ks.into_iter().filter(|k| !k.contains(":lock:")).collect()
    };
    let before = stable(keys(&url, &name));
    let path = std::env::temp_dir().join(format!("mp-t11-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let client = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "t11_client_helper", "--nocapture"])
        .env("T11_URL", &url)
        .env("T11_NAME", &name)
        .env("T11_PATH", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // A `Host` for its kill-on-drop: the client dies even if an assertion fails.
    let mut client = Host { child: client };
    // Wait until some tasks ran, then SIGKILL the client.
    let start = Instant::now();
    let lines = || {
        std::fs::read_to_string(&path)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    while lines() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the client's tasks did not run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    client.kill9();
    // After the lease (2 s) and the hosts' 1 s liveness cache, nothing more runs.
    std::thread::sleep(Duration::from_secs(4));
    let ran = lines();
    assert!(ran < 20, "every task ran: the lease did not stop them");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines(), ran, "tasks of a dead client kept running");
    // Its keys are gone: the lease and the result stream expired.
    assert_eq!(stable(keys(&url, &name)), before);
    let _ = std::fs::remove_file(&path);
    cleanup(&url, &name);
}

/// The threads of this process (nextest runs each test in a process of its own).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn t19_a_redis_older_than_6_2_is_refused_by_clients_and_hosts() {
    let _w = util::watchdog(LIMIT);
    // What Redis 6.0.16 (Debian bullseye's) answers to what a client sends at connect.
    let fake = FakeRedis::start("6.0.16");
    let url = fake.url();
    let name = unique_name();
    let (threads_before, fds_before) = (threads(), util::open_fds());
    let refused = |e: &multiproc::Error, took: Duration| {
        assert_eq!(e.kind(), ErrorKind::BrokerUnavailable, "{e}");
        assert!(
            e.to_string().contains("Redis 6.0.16 is too old") && e.to_string().contains("6.2"),
            "{e}"
        );
        // One connect and two INFO round trips: well within the connect timeout.
        assert!(
            took < Duration::from_secs(2) + Duration::from_secs(3),
            "{took:?}"
        );
    };
    let start = Instant::now();
    let e = Pool::builder()
        .cluster(opts(&url, &name))
        .build()
        .unwrap_err();
    refused(&e, start.elapsed());
    let start = Instant::now();
    let e = cluster::Worker::new(opts(&url, &name))
        .slots(1)
        .serve()
        .unwrap_err();
    refused(&e, start.elapsed());
    // Nothing was asked of the server beyond connecting and INFO, and both closed
    // their connection: no thread, socket or local worker process is left.
    let seen = fake.seen();
    assert!(
        seen.iter()
            .all(|c| ["AUTH", "CLIENT", "INFO"].contains(&c[0].to_uppercase().as_str())),
        "{seen:?}"
    );
    assert!(util::eventually(Duration::from_secs(5), || fake.all_closed()));
    assert_eq!(threads(), threads_before);
    assert_eq!(util::open_fds(), fds_before);
    assert!(util::children_of(std::process::id() as i32).is_empty());
    // The one-line worker mode (this binary with MULTIPROC_WORKER): it exits 1 from
    // before `main`, naming the version.
    let start = Instant::now();
    let out = util::run_ignored(
        "no_such_test",
        Duration::from_secs(20),
        &[
            (cluster::WORKER_ENV, url.as_str()),
            (cluster::WORKER_NAME_ENV, name.as_str()),
            (cluster::WORKER_SLOTS_ENV, "1"),
            (cluster::KEY_ENV, KEY),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Redis 6.0.16 is too old"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // The control: the same fake reporting 7.0.15 gets past the check (and fails at
    // the first stream command, which it does not know).
    let newer = FakeRedis::start("7.0.15");
    let e = Pool::builder()
        .cluster(opts(&newer.url(), &name))
        .build()
        .unwrap_err();
    assert!(!e.to_string().contains("too old"), "{e}");
    assert!(
        newer
            .seen()
            .iter()
            .any(|c| c[0].eq_ignore_ascii_case("XGROUP")),
        "{:?}",
        newer.seen()
    );
}

/// The warning scenario's client, in a child whose stderr the test reads: builds a
/// pool on `T19_URL` and joins it.
#[test]
#[ignore = "run by t19_a_maxmemory_policy_other_than_noeviction_is_warned_on_stderr"]
fn t19_warning_client_helper() {
    let url = std::env::var("T19_URL").unwrap();
    let name = std::env::var("T19_NAME").unwrap();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    pool.join();
    eprintln!("client built and joined");
}

#[test]
fn t19_a_maxmemory_policy_other_than_noeviction_is_warned_on_stderr() {
    let _w = util::watchdog(LIMIT);
    // The shared Redis runs with noeviction (ci/with-redis.sh): it must not be
    // reconfigured, other tests use it at the same time. This test's own server
    // evicts.
    let Some(shared) = redis_url() else { return };
    let Some(evicting) =
        PrivateRedis::start_with("127.0.0.1", &["--maxmemory-policy", "allkeys-lru"])
    else {
        return;
    };
    let warning = "warning: Redis runs with maxmemory-policy allkeys-lru";
    let dir = std::env::temp_dir();
    for (url, policy) in [
        (evicting.url(), "allkeys-lru"),
        (shared.clone(), "noeviction"),
    ] {
        let name = unique_name();
        // The client.
        let out = util::run_ignored(
            "t19_warning_client_helper",
            Duration::from_secs(30),
            &[("T19_URL", url.as_str()), ("T19_NAME", name.as_str())],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("client built and joined"), "{err}");
        let warned = err.matches("multiproc cluster: warning:").count();
        if policy == "noeviction" {
            assert_eq!(warned, 0, "{err}");
        } else {
            assert_eq!(warned, 1, "{err}");
            assert!(
                err.contains(warning) && err.contains("set maxmemory-policy noeviction"),
                "{err}"
            );
        }
        // A host: its stderr goes to a file; once it serves, it has checked.
        let log = dir.join(format!("mp-t19-{}-{policy}.log", std::process::id()));
        let mut cmd = Host::command(&std::env::current_exe().unwrap(), &url, &name, 1, &[]);
        cmd.stderr(std::fs::File::create(&log).unwrap());
        let host = Host {
            child: cmd.spawn().unwrap(),
        };
        let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
        wait_hosts(&pool, 1, HOSTS_UP);
        pool.join();
        drop(host);
        let err = std::fs::read_to_string(&log).unwrap();
        let warned = err.matches("multiproc worker: warning:").count();
        if policy == "noeviction" {
            assert_eq!(warned, 0, "{err}");
        } else {
            assert_eq!(warned, 1, "{err}");
            assert!(err.contains(warning), "{err}");
        }
        let _ = std::fs::remove_file(&log);
        cleanup(&url, &name);
    }
}

/// T15's client, run in a child process: writes 5 tasks of 300 KiB each (no host
/// runs them), then waits to be killed.
#[test]
#[ignore = "run by t15_large_payloads_go_to_side_keys_that_expire_after_their_client"]
fn t15_blob_client_helper() {
    let url = std::env::var("T15_URL").unwrap();
    let name = std::env::var("T15_NAME").unwrap();
    let pool = Pool::builder()
        .cluster(
            opts(&url, &name)
                .lease(Duration::from_secs(2))
                .blob_ttl(Duration::from_secs(3)),
        )
        .build()
        .unwrap();
    let _hs: Vec<_> = (0..5u8)
        .map(|i| pool.submit(size, char::from(b'a' + i).to_string().repeat(300 << 10)))
        .collect();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn t15_large_payloads_go_to_side_keys_that_expire_after_their_client() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let probe = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    probe.join();
    let before = keys(&url, &name);
    let client = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "t15_blob_client_helper",
            "--nocapture",
        ])
        .env("T15_URL", &url)
        .env("T15_NAME", &name)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // A `Host` for its kill-on-drop: the client dies even if an assertion fails.
    let mut client = Host { child: client };
    let blobs = || -> Vec<String> {
        keys(&url, &name)
            .into_iter()
            .filter(|k| k.contains(":blob:"))
            .collect()
    };
    // Over 256 KiB (the default threshold): each argument is a side key with an
    // expiry (blob_ttl, 3 s), and its entry carries only a reference to it.
    assert!(
        util::eventually(Duration::from_secs(20), || blobs().len() == 5),
        "{:?}",
        keys(&url, &name)
    );
    let mut con = raw(&url);
    for b in blobs() {
        let ttl: i64 = redis::cmd("PTTL").arg(&b).query(&mut con).unwrap();
        assert!((1..=3000).contains(&ttl), "{b}: PTTL {ttl}");
        let len: usize = redis::cmd("STRLEN").arg(&b).query(&mut con).unwrap();
        assert!(len > 300 << 10, "{b}: {len} bytes");
    }
    let entries: Vec<(String, Fields)> = redis::cmd("XRANGE")
        .arg(format!("{{{name}}}:tasks"))
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert_eq!(entries.len(), 5);
    for (id, fields) in &entries {
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            names.contains(&"b") && !names.contains(&"p"),
            "{id}: {names:?}"
        );
        let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(bytes < 1024, "{id}: {bytes} bytes in the stream");
    }
    // Killed: its lease and result stream (2 s) and its side keys (3 s) expire, and
    // Redis is back at its key baseline.
    client.kill9();
    assert!(
        util::eventually(Duration::from_secs(10), || keys(&url, &name) == before),
        "{:?} left, {before:?} before",
        keys(&url, &name)
    );
    cleanup(&url, &name);
}

/// The late-result scenario's client, in a child process: one 1.5 s task, then it
/// waits to be killed.
#[test]
#[ignore = "run by t11_a_late_result_does_not_bring_back_a_gone_clients_stream"]
fn t11_late_result_client_helper() {
    let url = std::env::var("T11L_URL").unwrap();
    let name = std::env::var("T11L_NAME").unwrap();
    let path = std::env::var("T11L_PATH").unwrap();
    let pool = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    let _h = pool.submit(slow_mark, path);
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn t11_a_late_result_does_not_bring_back_a_gone_clients_stream() {
    let _w = util::watchdog(LIMIT);
    let Some(url) = redis_url() else { return };
    let name = unique_name();
    let _host = Host::start(&url, &name, 1);
    let probe = Pool::builder().cluster(opts(&url, &name)).build().unwrap();
    wait_hosts(&probe, 1, HOSTS_UP);
    probe.join();
    let path = std::env::temp_dir().join(format!("mp-t11l-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let client = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "t11_late_result_client_helper",
            "--nocapture",
        ])
        .env("T11L_URL", &url)
        .env("T11L_NAME", &name)
        .env("T11L_PATH", &path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // A `Host` for its kill-on-drop: the client dies even if an assertion fails.
    let mut client = Host { child: client };
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    assert!(util::eventually(HOSTS_UP, || read().starts_with("start")));
    // The client dies while its task runs, and its result stream goes (as when it
    // expires); its lease (60 s) still stands, so the host finishes the task.
    client.kill9();
    let res: Vec<String> = keys(&url, &name)
        .into_iter()
        .filter(|k| k.contains(":res:"))
        .collect();
    assert_eq!(res.len(), 1, "{res:?}");
    let _: () = redis::cmd("DEL").arg(&res).query(&mut raw(&url)).unwrap();
    assert!(
        util::eventually(Duration::from_secs(10), || read().ends_with("end\n")),
        "the task never ended: {:?}",
        read()
    );
    // Its answer, written after that (XADD … NOMKSTREAM), went nowhere: the stream
    // is not back, which would have been without an expiry.
    std::thread::sleep(Duration::from_millis(500));
    let back: Vec<String> = keys(&url, &name)
        .into_iter()
        .filter(|k| k.contains(":res:"))
        .collect();
    assert!(back.is_empty(), "{back:?}");
    let _ = std::fs::remove_file(&path);
    cleanup(&url, &name);
}
