//! Shared helpers for integration tests: a watchdog, re-exec of `#[ignore]`d helpers,
//! a lock that runs a file's tests one at a time, descriptor, zombie and segment
//! counting, unique names, the process builder and worker functions the test files
//! share, values that cannot make the round trip.
#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use multiproc::{Process, StartMethod};

/// Aborts the whole test process with a message if it is still alive after `limit`,
/// so that a hang fails loudly instead of wedging CI. Disarmed on drop.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// Starts a watchdog for the current test.
pub fn watchdog(limit: Duration) -> Watchdog {
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let name = std::thread::current().name().unwrap_or("test").to_owned();
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let start = Instant::now();
            while start.elapsed() < limit {
                if d.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Straight to the descriptor: `eprintln!` may be captured by the harness.
            let msg = format!("WATCHDOG: {name} still running after {limit:?}; aborting\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
            std::process::abort();
        })
        .expect("spawn watchdog");
    Watchdog { done }
}

/// Runs the tests of one binary one at a time: hold the guard for the whole test.
///
/// A `Fork` child inherits every descriptor of this (multi-threaded) test process,
/// including pipe ends another test is waiting to see closed, so overlapping tests
/// would delay each other's end of stream (the same holds in Python). `cargo nextest`
/// runs each test in its own process anyway; `cargo test` does not. A test that
/// panicked while holding the lock does not poison it for the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the `#[ignore]`d test `test` of this test binary in a child process, killing
/// it if it outlives `deadline`. Returns its output.
pub fn run_ignored(test: &str, deadline: Duration, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--ignored",
        "--exact",
        test,
        "--test-threads=1",
        "--nocapture",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn test helper");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{test} hung for more than {deadline:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number of open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The number of multiproc shared-memory mappings (memfd segments) of this process.
pub fn mapped_segments() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .filter(|l| l.contains("memfd:multiproc-shm"))
        .count()
}

/// Pids of this process's children that are zombies right now.
pub fn zombie_children() -> Vec<i32> {
    children_of(std::process::id() as i32)
        .into_iter()
        .filter(|&(_, state)| state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// `(pid, state)` of every process whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let parent: i32 = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if parent == ppid {
            out.push((pid, state));
        }
    }
    out
}

/// Returns `true` if a process with this pid exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .is_some_and(|c| !stat[c + 1..].trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until `cond` holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A name unique to this process and call, for shared-memory segments and sockets.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A process builder for `method` that may fork a multi-threaded test process.
pub fn builder(method: StartMethod) -> multiproc::process::Builder {
    Process::builder().start_method(method).allow_threads(true)
}

// ---- Worker functions: `fn` items, so that every start method and both pool
// backends can run them. ----

/// Returns 42.
pub fn answer() -> u64 {
    42
}

/// Returns `x * x`.
pub fn square(x: u64) -> u64 {
    x * x
}

/// Sleeps `ms` milliseconds and returns `ms`.
pub fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Never returns (until killed).
pub fn sleeps_forever() -> u8 {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The pid of the process that runs it (which pool worker took the task).
pub fn pid<T>(_: T) -> u32 {
    std::process::id()
}

/// The id of the thread that runs it, as text (which pool thread took the task).
pub fn thread_id<T>(_: T) -> String {
    format!("{:?}", std::thread::current().id())
}

/// Polls a future to completion on this thread (parking between polls): enough to
/// check that a handle is a correct `Future` without an async runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Serializes as a number but deserializes as a string: it never survives the trip.
#[derive(Debug)]
pub struct BadRoundtrip;

impl serde::Serialize for BadRoundtrip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(42)
    }
}

impl<'de> serde::Deserialize<'de> for BadRoundtrip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d)?;
        Ok(BadRoundtrip)
    }
}

/// A value whose `Serialize` panics when its number is odd (an even one makes the trip):
/// a result that cannot be sent back.
#[derive(Debug, PartialEq, Eq)]
pub struct PanicsOnSerialize(pub u32);

impl serde::Serialize for PanicsOnSerialize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 2 == 1 {
            panic!("cannot serialize {}", self.0);
        }
        s.serialize_u32(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PanicsOnSerialize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <u32 as serde::Deserialize>::deserialize(d).map(PanicsOnSerialize)
    }
}

/// A value that serializes, and whose `Deserialize` panics: an argument the child
/// cannot take.
#[derive(Debug)]
pub struct PanicsOnDeserialize;

impl serde::Serialize for PanicsOnDeserialize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(0)
    }
}

impl<'de> serde::Deserialize<'de> for PanicsOnDeserialize {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("cannot deserialize")
    }
}

/// The most the parent's peak resident set may grow in one case.
pub const MEM_BOUND: u64 = 64 << 20;

/// A field of `/proc/self/status`, in bytes.
pub fn status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = s
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kb * 1024
}

/// Measures how far the peak resident set rises over the current one while `f` runs.
pub struct MemProbe {
    base: u64,
}

impl MemProbe {
    pub fn start() -> MemProbe {
        // "5" resets the peak (VmHWM) to the current resident set (Linux >= 4.0).
        std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
        MemProbe {
            base: status_bytes("VmRSS:"),
        }
    }

    /// The rise of the peak so far, in bytes.
    pub fn rise(&self) -> u64 {
        status_bytes("VmHWM:").saturating_sub(self.base)
    }

    pub fn check(&self, what: &str) -> u64 {
        let rise = self.rise();
        eprintln!("{what}: peak RSS rose by {} KiB", rise >> 10);
        assert!(
            rise < MEM_BOUND,
            "{what}: the peak resident set rose by {} MiB (bound {} MiB)",
            rise >> 20,
            MEM_BOUND >> 20
        );
        rise
    }
}
