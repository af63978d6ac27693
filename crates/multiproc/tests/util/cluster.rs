//! Helpers for the cluster tests: the test Redis, unique cluster names, worker hosts
//! (this test binary re-executed with `MULTIPROC_WORKER`), private Redis servers.
#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multiproc::pool::cluster::{self, Options};
use multiproc::pool::Pool;

/// The key every test client and host shares.
pub const KEY: &str = "cluster-test-key-0123456789";
/// Shrunk timeouts: heartbeat 200 ms, min_idle 1 s, broker_timeout 3 s.
pub const HEARTBEAT_MS: u64 = 200;
pub const MIN_IDLE_MS: u64 = 1000;

/// The test Redis URL (`ci/with-redis.sh` exports it). Without it: `None` with a
/// message, or a failure under `CI=true`.
pub fn redis_url() -> Option<String> {
    match std::env::var("MULTIPROC_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "MULTIPROC_TEST_REDIS_URL is not set under CI=true: run the tests through \
                 ci/with-redis.sh"
            );
            eprintln!(
                "skipped: MULTIPROC_TEST_REDIS_URL is not set (run through ci/with-redis.sh)"
            );
            None
        }
    }
}

/// A cluster name no other test uses (it matches the ACL test user's `{mpt*}` keys).
pub fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "mpt{}x{}x{t}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Client options with the shrunk timeouts.
pub fn opts(url: &str, name: &str) -> Options {
    Options::new(url)
        .name(name)
        .auth_key(KEY.as_bytes().to_vec())
        .heartbeat(Duration::from_millis(HEARTBEAT_MS))
        .min_idle(Duration::from_millis(MIN_IDLE_MS))
        .broker_timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(2))
}

/// A worker host: this test binary re-executed with `MULTIPROC_WORKER`, which serves
/// from the pre-`main` hook. Killed (SIGKILL) and reaped on drop.
pub struct Host {
    pub child: Child,
}

impl Host {
    pub fn start(url: &str, name: &str, slots: usize) -> Host {
        Host::start_with(url, name, slots, &[])
    }

    pub fn start_with(url: &str, name: &str, slots: usize, env: &[(&str, &str)]) -> Host {
        Host::start_exe(&std::env::current_exe().unwrap(), url, name, slots, env)
    }

    /// A host running the program `exe` (another build) instead of this test binary.
    pub fn start_exe(
        exe: &std::path::Path,
        url: &str,
        name: &str,
        slots: usize,
        env: &[(&str, &str)],
    ) -> Host {
        let mut cmd = Command::new(exe);
        cmd.env(cluster::WORKER_ENV, url)
            .env(cluster::WORKER_NAME_ENV, name)
            .env(cluster::WORKER_SLOTS_ENV, slots.to_string())
            .env(
                cluster::WORKER_TIMING_ENV,
                format!("{HEARTBEAT_MS},{MIN_IDLE_MS}"),
            )
            .env(cluster::KEY_ENV, KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Host {
            child: cmd.spawn().expect("start a worker host"),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until the pool sees `n` live hosts.
pub fn wait_hosts(pool: &Pool, n: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        let seen = pool.cluster_stats().unwrap().hosts.len();
        if seen >= n {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "only {seen} of {n} hosts came up in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw connection for inspecting and forging keys.
pub fn raw(url: &str) -> redis::Connection {
    let c = redis::Client::open(url).unwrap();
    let con = c
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    con
}

/// The keys of cluster `name`.
pub fn keys(url: &str, name: &str) -> Vec<String> {
    let mut con = raw(url);
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{name}}}:*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
            .unwrap();
        out.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    out.sort();
    out
}

/// Deletes every key of cluster `name`.
pub fn cleanup(url: &str, name: &str) {
    let ks = keys(url, name);
    if !ks.is_empty() {
        let _: () = redis::cmd("DEL").arg(&ks).query(&mut raw(url)).unwrap();
    }
}

/// A private redis-server on a free loopback port, for tests that kill or restart
/// it; stopped by PID on drop. `None` (skip) without `redis-server` outside CI.
pub struct PrivateRedis {
    pub child: Option<Child>,
    pub port: u16,
    pub password: String,
    /// The address it listens on.
    pub bind: String,
    dir: std::path::PathBuf,
}

impl PrivateRedis {
    pub fn start() -> Option<PrivateRedis> {
        PrivateRedis::start_on("127.0.0.1")
    }

    /// [`start`](Self::start) on another local address (a bridge's, say).
    pub fn start_on(bind: &str) -> Option<PrivateRedis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server is missing under CI=true"
            );
            eprintln!("skipped: no redis-server");
            return None;
        }
        let port = {
            let l = std::net::TcpListener::bind((bind, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let dir =
            std::env::temp_dir().join(format!("mp-private-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = PrivateRedis {
            child: None,
            port,
            password: format!("pw{port}"),
            bind: bind.to_owned(),
            dir,
        };
        r.restart();
        Some(r)
    }

    pub fn url(&self) -> String {
        format!(
            "redis://default:{}@{}:{}/",
            self.password, self.bind, self.port
        )
    }

    /// Starts the server (empty: no persistence) and waits for PING.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", &self.bind, "--port", &self.port.to_string()])
            .args([
                "--requirepass",
                &self.password,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(c) = redis::Client::open(self.url()) {
                if let Ok(mut con) = c.get_connection_with_timeout(Duration::from_millis(200)) {
                    if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                        return;
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `cluster_worker` example: another build of a program that registers
/// `multiproc::test_support::mark` as the test binaries do. Cargo builds it beside the tests
/// (`cargo nextest run --all-features`, `cargo test --features cluster`); a run
/// limited to one test binary may not have, and skips, outside CI.
pub fn other_build() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>-<hash> → target/<profile>/examples/
    let path = exe.parent()?.parent()?.join("examples/cluster_worker");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing under CI=true",
        path.display()
    );
    eprintln!(
        "skipped: {} is missing (cargo build -p multiproc --features cluster --example \
         cluster_worker)",
        path.display()
    );
    None
}
