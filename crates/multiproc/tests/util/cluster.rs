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
        Host {
            child: Host::command(exe, url, name, slots, env)
                .spawn()
                .expect("start a worker host"),
        }
    }

    /// The command [`start_exe`](Self::start_exe) runs (stderr inherited), to adjust.
    pub fn command(
        exe: &std::path::Path,
        url: &str,
        name: &str,
        slots: usize,
        env: &[(&str, &str)],
    ) -> Command {
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
        cmd
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
    /// Further `redis-server` arguments (`--maxmemory-policy allkeys-lru`, say).
    args: Vec<String>,
    dir: std::path::PathBuf,
}

impl PrivateRedis {
    pub fn start() -> Option<PrivateRedis> {
        PrivateRedis::start_on("127.0.0.1")
    }

    /// [`start`](Self::start) on another local address (a bridge's, say).
    pub fn start_on(bind: &str) -> Option<PrivateRedis> {
        PrivateRedis::start_with(bind, &[])
    }

    /// [`start_on`](Self::start_on) with further `redis-server` arguments.
    pub fn start_with(bind: &str, args: &[&str]) -> Option<PrivateRedis> {
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
            args: args.iter().map(|a| (*a).to_owned()).collect(),
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
            .args(&self.args)
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

/// A fake Redis on a free loopback port, for what a real one cannot be made to say:
/// one thread accepts connections one at a time and answers each command (an array of
/// bulk strings, as the `redis` crate sends them) as a server reporting
/// `redis_version` `version` would: `AUTH` is accepted, `CLIENT SETINFO` is unknown
/// (as before Redis 7.2), `INFO` gives the `server` and `memory` sections, `PING`
/// answers; anything else is an unknown command. Stopped and joined on drop.
pub struct FakeRedis {
    pub port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>,
    /// Connections accepted, and closed by the peer.
    counts: std::sync::Arc<[std::sync::atomic::AtomicUsize; 2]>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRedis {
    pub fn start(version: &str) -> FakeRedis {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        let (s, c, st, version) = (
            Arc::clone(&seen),
            Arc::clone(&counts),
            Arc::clone(&stop),
            version.to_owned(),
        );
        let thread = std::thread::Builder::new()
            .name("fake-redis".into())
            .spawn(move || {
                while !st.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((con, _)) => {
                            c[0].fetch_add(1, Ordering::AcqRel);
                            FakeRedis::serve(con, &version, &s, &st);
                            c[1].fetch_add(1, Ordering::AcqRel);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .unwrap();
        FakeRedis {
            port,
            seen,
            counts,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://default:fakepassword@127.0.0.1:{}/", self.port)
    }

    /// Every command received so far, as words.
    pub fn seen(&self) -> Vec<Vec<String>> {
        self.seen.lock().unwrap().clone()
    }

    /// Whether every accepted connection has been closed by the peer.
    pub fn all_closed(&self) -> bool {
        use std::sync::atomic::Ordering;
        let accepted = self.counts[0].load(Ordering::Acquire);
        accepted > 0 && self.counts[1].load(Ordering::Acquire) == accepted
    }

    fn serve(
        con: std::net::TcpStream,
        version: &str,
        seen: &std::sync::Mutex<Vec<Vec<String>>>,
        stop: &std::sync::atomic::AtomicBool,
    ) {
        use std::io::{BufRead, Read, Write};
        con.set_nonblocking(false).unwrap();
        con.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut out = con.try_clone().unwrap();
        let mut r = std::io::BufReader::new(con);
        // One line, waiting through read timeouts until the peer closes or `stop`.
        let line = |r: &mut std::io::BufReader<std::net::TcpStream>| -> Option<String> {
            let mut l = Vec::new();
            loop {
                match r.read_until(b'\n', &mut l) {
                    Ok(0) => return None,
                    Ok(_) if l.ends_with(b"\r\n") => {
                        l.truncate(l.len() - 2);
                        return Some(String::from_utf8_lossy(&l).into_owned());
                    }
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) && !stop.load(std::sync::atomic::Ordering::Acquire) => {}
                    Err(_) => return None,
                }
            }
        };
        loop {
            let Some(head) = line(&mut r) else { return };
            let n: usize = head
                .strip_prefix('*')
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut words = Vec::with_capacity(n);
            for _ in 0..n {
                let Some(len) = line(&mut r) else { return };
                let len: usize = len
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let mut b = vec![0; len + 2];
                let mut got = 0;
                while got < b.len() {
                    match r.read(&mut b[got..]) {
                        Ok(0) => return,
                        Ok(k) => got += k,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) && !stop.load(std::sync::atomic::Ordering::Acquire) => {}
                        Err(_) => return,
                    }
                }
                b.truncate(len);
                words.push(String::from_utf8_lossy(&b).into_owned());
            }
            let answer = FakeRedis::answer(&words, version);
            seen.lock().unwrap().push(words);
            if out.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn answer(words: &[String], version: &str) -> String {
        let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
        let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
        let w: Vec<&str> = upper.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["AUTH", ..] => "+OK\r\n".into(),
            ["PING", ..] => "+PONG\r\n".into(),
            ["CLIENT", sub, ..] => format!(
                "-ERR Unknown subcommand or wrong number of arguments for '{}'. Try CLIENT \
                 HELP\r\n",
                sub.to_lowercase()
            ),
            ["INFO", "SERVER"] => bulk(&format!(
                "# Server\r\nredis_version:{version}\r\nredis_git_sha1:00000000\r\n\
                 redis_git_dirty:0\r\nredis_mode:standalone\r\nos:Linux x86_64\r\n\
                 arch_bits:64\r\nprocess_id:1\r\n\
                 run_id:0123456789abcdef0123456789abcdef01234567\r\ntcp_port:6379\r\n"
            )),
            ["INFO", "MEMORY"] => bulk(
                "# Memory\r\nused_memory:866176\r\nmaxmemory:0\r\n\
                 maxmemory_policy:noeviction\r\n",
            ),
            _ => format!(
                "-ERR unknown command `{}`, with args beginning with: \r\n",
                words.first().map_or("", String::as_str)
            ),
        }
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
