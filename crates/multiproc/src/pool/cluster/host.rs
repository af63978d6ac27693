//! The worker host: [`Worker`], which serves a cluster's tasks through a local
//! process pool.
//!
//! A host is a thin dispatcher around the unmodified local process pool
//! (`pool::process`): it reads task entries from Redis, checks their MAC, resolves
//! their key to the local pool entry, and hands the payload bytes to the local pool as
//! any local task. Crash isolation, timeouts, memory limits and `max_tasks_per_child`
//! are therefore the local pool's. The result bytes go back as the local worker
//! produced them; the host never decodes arguments or results.
//!
//! Three threads, each with its own connection:
//!
//! - the *reader* (the thread that called [`Worker::serve`]) waits for a free slot and
//!   reads at most as many entries as there are free slots (`XREADGROUP … COUNT free`),
//!   so that delivery counts track real executions;
//! - the *writer* gathers finished tasks and writes them in one transaction:
//!   `MULTI; XADD {P}:res:<client> NOMKSTREAM …; [DEL argument blob]; XACK …; EXEC`
//!   (`NOMKSTREAM`: the result of a client that is gone vanishes), followed in the same
//!   round trip by an `XREADGROUP` (without `BLOCK`) for the slots those answers free,
//!   when the reader is not reading: a busy host then costs one round trip and no
//!   wake-up of the reader per task, which counts under a CPU quota (the reader takes
//!   over when the stream runs dry);
//! - the *housekeeper* runs the guarded heartbeat (a Lua script that refreshes only
//!   the entries this host still owns: a plain `XCLAIM … JUSTID` would take back
//!   entries another host has reclaimed), publishes the host record, reclaims entries
//!   idle past `min_idle` (hosts that died), gives up on entries delivered
//!   `max_deliveries` times, and trims the task stream below everything delivered and
//!   acknowledged (`XTRIM MINID`, never `MAXLEN`).
//!
//! SIGTERM drains the host: it stops reading, finishes and answers its running tasks,
//! removes its record and returns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::Value;
use serde::{Deserialize, Serialize};

use super::config::{hex, random_id, Options, Resolved, GROUP};
use super::conn::{self, broker_error, is_connection_error};
use super::registry::registry;
use super::wire::{self, BlobRef, Entry, ResultHeader, Status, TaskHeader, WireError};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::process::{Config, ProcessPool, RemoteTask};
use crate::pool::slot::Completion;
use crate::process::StartMethod;

/// Environment: serve this Redis URL as a worker host from the pre-`main` hook.
pub const WORKER_ENV: &str = "MULTIPROC_WORKER";
/// Environment: the cluster name a host started by [`WORKER_ENV`] serves.
pub const WORKER_NAME_ENV: &str = "MULTIPROC_WORKER_NAME";
/// Environment: the slots of a host started by [`WORKER_ENV`] (default: `cpu_count`).
pub const WORKER_SLOTS_ENV: &str = "MULTIPROC_WORKER_SLOTS";
/// Environment: `heartbeat,min_idle` in milliseconds for a host started by
/// [`WORKER_ENV`] (for tests and tuning; default 5000,30000).
pub const WORKER_TIMING_ENV: &str = "MULTIPROC_WORKER_TIMING";
/// Environment: print the program's registered tasks (name, signature, key, build
/// id; tab-separated) from the pre-`main` hook and exit (`multiproc worker --list`).
pub const LIST_ENV: &str = "MULTIPROC_LIST_TASKS";
/// Environment: a CA file (PEM) a host started by [`WORKER_ENV`] trusts for a
/// `rediss://` URL (feature `cluster-tls`).
pub const WORKER_TLS_CA_ENV: &str = "MULTIPROC_WORKER_TLS_CA";
/// Environment: the start method of the host's local workers (`spawn`, `forkserver`).
pub const WORKER_METHOD_ENV: &str = "MULTIPROC_WORKER_START_METHOD";

const BLOCK: Duration = Duration::from_millis(500);
/// Tasks shorter than this on average are read ahead of free slots ([`PREFETCH`] per
/// slot), so a stream of tiny tasks costs a fraction of a round trip each; longer
/// ones are read only for free slots, so a host that dies loses (and redelivers)
/// only what it was running.
const SHORT_TASK_US: u64 = 1000;
pub(crate) const PREFETCH: usize = 32;
const HEARTBEAT_LUA: &str = r"
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
";

/// What a host publishes about itself in `{P}:host:<id>`, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostInfo {
    pub(crate) id: String,
    pub(crate) pid: u32,
    pub(crate) version: String,
    pub(crate) build_id: String,
    pub(crate) slots: u32,
    pub(crate) running: u32,
    pub(crate) unauthenticated: u64,
    /// Tasks it stopped (or never started) because their client terminated or is gone.
    pub(crate) cancelled: u64,
    /// Sorted task keys.
    pub(crate) keys: Vec<u64>,
}

impl HostInfo {
    fn signed(&self, key: &[u8], record: &str) -> Vec<u8> {
        let body = crate::ipc::codec::encode(self)
            .map(|e| e.bytes)
            .unwrap_or_default();
        let mut v = wire::sign(key, record, &[("i", body.clone())]);
        v.extend_from_slice(&body);
        v
    }

    /// Parses a record read from `record`, if its MAC verifies.
    pub(crate) fn verified(key: &[u8], record: &str, v: &[u8]) -> Option<HostInfo> {
        if v.len() < 32 {
            return None;
        }
        let (mac, body) = v.split_at(32);
        if !wire::verify(key, record, &[("i", body.to_vec())], mac) {
            return None;
        }
        // Bounded: the codec refuses lengths beyond the input.
        let mut h: HostInfo = crate::ipc::codec::decode(body, Vec::new()).ok()?;
        h.keys.sort_unstable();
        Some(h)
    }
}

/// This executable's GNU build-id (hex), or the SHA-256 of the file if it has none.
pub(crate) fn build_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let exe = std::fs::read("/proc/self/exe").unwrap_or_default();
        match gnu_build_id(&exe) {
            Some(id) => hex(id),
            None => {
                use sha2::Digest;
                hex(&sha2::Sha256::digest(&exe))
            }
        }
    })
}

/// The first 8 bytes of [`build_id`] as a number, never 0: what a
/// [`same_build`](Options::same_build) client puts in its task headers.
pub(crate) fn build_key() -> u64 {
    build_key_of(build_id())
}

fn build_key_of(id: &str) -> u64 {
    u64::from_str_radix(id.get(..16).unwrap_or(id), 16)
        .unwrap_or(1)
        .max(1)
}

/// Finds the `NT_GNU_BUILD_ID` note in an ELF64 little-endian image.
fn gnu_build_id(elf: &[u8]) -> Option<&[u8]> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(ph)? != 4 {
            continue; // not PT_NOTE
        }
        let off = usize::try_from(u64_at(ph + 8)?).ok()?;
        let size = usize::try_from(u64_at(ph + 32)?).ok()?;
        let notes = elf.get(off..off.checked_add(size)?)?;
        let mut at = 0;
        while at + 12 <= notes.len() {
            let n =
                |o: usize| Some(u32::from_le_bytes(notes.get(o..o + 4)?.try_into().ok()?) as usize);
            let (namesz, descsz, ty) = (n(at)?, n(at + 4)?, n(at + 8)?);
            let name_at = at + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            let end = desc_at + descsz.div_ceil(4) * 4;
            if ty == 3 && notes.get(name_at..name_at + namesz)? == b"GNU\0" {
                return notes.get(desc_at..desc_at + descsz);
            }
            at = end;
        }
    }
    None
}

/// A worker host: serves a cluster's tasks with a local process pool.
///
/// # Examples
///
/// A program that is both a client and, when started with `--worker`, a host:
///
/// ```no_run
/// use multiproc::pool::cluster::{self, Worker};
///
/// #[multiproc::remote]
/// fn render(tile: u32) -> Vec<u8> {
///     vec![tile as u8; 16]
/// }
///
/// fn main() -> multiproc::Result<()> {
///     let url = "redis://mp:PASSWORD@10.0.0.5:6379/";
///     if std::env::args().any(|a| a == "--worker") {
///         // Returns after SIGTERM, once the running tasks are answered.
///         return Worker::new(cluster::Options::new(url).name("render")).slots(8).serve();
///     }
///     let pool = multiproc::Pool::builder().cluster(cluster::Options::new(url).name("render")).build()?;
///     let tiles = pool.map(render, 0..1000)?;
///     # let _ = tiles;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Worker does nothing until serve() is called"]
pub struct Worker {
    opts: Options,
    slots: Option<usize>,
    method: Option<StartMethod>,
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    max_tasks: Option<u64>,
    drain_timeout: Duration,
}

impl Worker {
    /// A host for the cluster `opts` describes, with [`cpu_count`](crate::pool::cpu_count)
    /// slots.
    pub fn new(opts: Options) -> Worker {
        Worker {
            opts,
            slots: None,
            method: None,
            timeout: None,
            memory_limit: None,
            max_tasks: None,
            drain_timeout: Duration::from_secs(30),
        }
    }

    /// How many tasks run at once: the local pool's worker processes.
    pub fn slots(mut self, n: usize) -> Worker {
        self.slots = Some(n);
        self
    }

    /// How the local workers are started (default: [`StartMethod::default`]).
    pub fn start_method(mut self, m: StartMethod) -> Worker {
        self.method = Some(m);
        self
    }

    /// Kills a local worker whose task runs longer than this; the task fails with
    /// [`ErrorKind::Timeout`] naming the host.
    pub fn task_timeout(mut self, t: Duration) -> Worker {
        self.timeout = Some(t);
        self
    }

    /// Limits each local worker's address space (as [`Builder::memory_limit`](crate::pool::Builder::memory_limit)).
    pub fn memory_limit(mut self, bytes: u64) -> Worker {
        self.memory_limit = Some(bytes);
        self
    }

    /// Replaces a local worker after `n` tasks.
    pub fn max_tasks_per_child(mut self, n: u64) -> Worker {
        self.max_tasks = Some(n);
        self
    }

    /// How long a SIGTERM waits for running tasks before the host leaves them to be
    /// reclaimed by others (default 30 s).
    pub fn drain_timeout(mut self, t: Duration) -> Worker {
        self.drain_timeout = t;
        self
    }

    /// Serves until SIGTERM, then drains and returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a missing or short key or bad options,
    /// [`ErrorKind::BrokerUnavailable`] if Redis cannot be reached at the start, is
    /// older than 6.2 or refuses the pool's commands, [`ErrorKind::Start`] if the
    /// local pool cannot start. Once serving, a lost connection is retried forever.
    pub fn serve(self) -> Result<()> {
        let cfg = self.opts.resolve()?;
        let slots = self.slots.unwrap_or_else(crate::pool::cpu_count);
        if slots == 0 {
            return Err(
                Error::new(ErrorKind::InvalidInput).with_message("a host needs at least 1 slot")
            );
        }
        let mut con = conn::connect(&cfg, BLOCK + Duration::from_secs(5))?;
        let info = conn::server_info(&mut con)?;
        if let Some(w) = &info.warning {
            eprintln!("multiproc worker: warning: {w}");
        }
        conn::ensure_group(&mut con, &cfg)?;
        let pool = ProcessPool::start(Config {
            workers: slots,
            method: self.method.unwrap_or_default(),
            init: None,
            max_tasks: self.max_tasks,
            timeout: self.timeout,
            memory_limit: self.memory_limit,
            cpu_limit: None,
            // No spin: a worker that runs out of tasks waits for the next one to come
            // through Redis, which takes longer than a spin window, so spinning would
            // only burn the host's CPU (50 µs a task, 4% of a 1.3 ms task under a
            // quota); short tasks are read ahead and wait in the worker's socket.
            spin: Duration::ZERO,
            // A larger result could not go through the broker anyway.
            max_result: self.opts.max_payload as u64,
            restart_timeout: crate::pool::DEFAULT_RESTART_TIMEOUT,
        })?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        let id = format!(
            "{hostname}-{}-{}",
            std::process::id(),
            hex(&random_id()[..3])
        );
        let (tx, rx) = mpsc::channel();
        let term = crate::sys::signal::catch_sigterm();
        let sh = Arc::new(Host {
            cfg,
            id,
            slots,
            pool,
            read_gate: Mutex::new(()),
            term,
            wcon: Mutex::new(None),
            running: Mutex::new(HashMap::new()),
            timeout: self.timeout,
            reclaimed: Mutex::new(Vec::new()),
            cv: Condvar::new(),
            tx: Mutex::new(Some(tx)),
            exit: AtomicBool::new(false),
            unauthenticated: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            avg_us: AtomicU64::new(0),
            last_done: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
        });
        let writer = {
            let s = Arc::clone(&sh);
            spawn("multiproc-host-write", move || s.writer(rx))?
        };
        let keeper = {
            let s = Arc::clone(&sh);
            spawn("multiproc-host-keep", move || s.housekeeper())?
        };
        // The record goes up before the first read, so clients see the host at once.
        let _ = sh.publish(&mut con);
        let mut con = Some(con);
        while !term.load(Ordering::SeqCst) {
            sh.read_once(&mut con);
        }
        // Drain: no more reads; answer what runs, then leave.
        let deadline = Instant::now() + self.drain_timeout;
        {
            let mut r = lock(&sh.running);
            while !r.is_empty() && Instant::now() < deadline {
                r = sh
                    .cv
                    .wait_timeout(r, Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        sh.exit.store(true, Ordering::SeqCst);
        *lock(&sh.tx) = None;
        let _ = writer.join();
        let _ = keeper.join();
        if let Some(c) = con.as_mut() {
            let _: redis::RedisResult<()> = redis::pipe()
                .cmd("DEL")
                .arg(sh.cfg.host(&sh.id))
                .ignore()
                .cmd("SREM")
                .arg(sh.cfg.hosts())
                .arg(&sh.id)
                .ignore()
                .query(c);
        }
        sh.pool.terminate();
        Ok(())
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::new(ErrorKind::Start).with_source(e))
}

/// Serves the cluster at `url` with the key from [`KEY_ENV`](super::KEY_ENV), the
/// default name and `cpu_count` slots, until SIGTERM: the one-line worker mode.
///
/// # Errors
///
/// As [`Worker::serve`].
pub fn serve(url: &str) -> Result<()> {
    Worker::new(Options::new(url)).serve()
}

/// Serves as a worker host if [`WORKER_ENV`] is set (reading [`WORKER_NAME_ENV`],
/// [`WORKER_SLOTS_ENV`], [`WORKER_TIMING_ENV`], [`WORKER_METHOD_ENV`] and
/// [`KEY_ENV`](super::KEY_ENV)); returns `Ok(false)` at once if it is not. The
/// variables are removed first, so the host's local workers do not see them.
///
/// Programs that link multiproc with the `cluster` feature do this before `main`
/// already (see [the module docs](super)); calling it from `main` is for programs
/// that want to set something up first.
///
/// # Errors
///
/// As [`Worker::serve`], and [`ErrorKind::InvalidInput`] for a malformed variable.
pub fn serve_from_env() -> Result<bool> {
    let Some(url) = std::env::var_os(WORKER_ENV) else {
        return Ok(false);
    };
    let get = |k: &str| std::env::var(k).ok();
    let bad = |k: &str, v: &str| {
        Error::new(ErrorKind::InvalidInput).with_message(format!("malformed {k}={v:?}"))
    };
    let mut opts = Options::new(url.to_string_lossy().into_owned());
    if let Some(n) = get(WORKER_NAME_ENV) {
        opts = opts.name(n);
    }
    if let Some(t) = get(WORKER_TIMING_ENV) {
        let ms: Vec<u64> = t
            .split(',')
            .map(|p| p.trim().parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad(WORKER_TIMING_ENV, &t))?;
        let [hb, idle] = ms[..] else {
            return Err(bad(WORKER_TIMING_ENV, &t));
        };
        opts = opts
            .heartbeat(Duration::from_millis(hb))
            .min_idle(Duration::from_millis(idle));
    }
    #[cfg(feature = "cluster-tls")]
    if let Some(ca) = get(WORKER_TLS_CA_ENV) {
        let pem = std::fs::read(&ca).map_err(|e| {
            Error::new(ErrorKind::InvalidInput)
                .with_message(format!("{WORKER_TLS_CA_ENV}={ca:?}"))
                .with_source(e)
        })?;
        opts = opts.tls_root_cert(pem);
    }
    let mut w = Worker::new(opts);
    if let Some(s) = get(WORKER_SLOTS_ENV) {
        w = w.slots(s.parse().map_err(|_| bad(WORKER_SLOTS_ENV, &s))?);
    }
    if let Some(m) = get(WORKER_METHOD_ENV) {
        w = w.start_method(match m.as_str() {
            "spawn" => StartMethod::Spawn,
            "forkserver" => StartMethod::ForkServer,
            _ => return Err(bad(WORKER_METHOD_ENV, &m)),
        });
    }
    // Resolve the key now, so that removing the variable below loses nothing.
    if w.opts.key.is_none() {
        if let Some(k) = std::env::var_os(super::KEY_ENV) {
            w.opts = w
                .opts
                .auth_key(std::os::unix::ffi::OsStringExt::into_vec(k));
        }
    }
    for k in [
        WORKER_ENV,
        WORKER_NAME_ENV,
        WORKER_SLOTS_ENV,
        WORKER_TLS_CA_ENV,
        WORKER_TIMING_ENV,
        WORKER_METHOD_ENV,
        super::KEY_ENV,
    ] {
        std::env::remove_var(k);
    }
    w.serve().map(|()| true)
}

// Runs before `main` (after a multiproc child's hook, order 0: a host's local workers
// are such children).
crate::sys::premain::premain_hook!(HOST_HOOK, 1, premain);

/// Makes sure the linker keeps [`HOST_HOOK`]: every program with a registered task may
/// be started as a worker host.
pub(crate) fn keep_hook_linked() {
    crate::sys::premain::keep_linked();
    std::hint::black_box(&HOST_HOOK);
}

/// The pre-`main` hook: serve and exit if [`WORKER_ENV`] is set.
fn premain() {
    if std::env::var_os(LIST_ENV).is_some() {
        // `multiproc worker --list -- ./app`: the task table, then exit.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for t in super::registered() {
            let _ = writeln!(
                out,
                "{}\t{}\t{:016x}\t{}",
                t.name(),
                t.signature(),
                t.key(),
                build_id()
            );
        }
        let _ = out.flush();
        crate::sys::fork::exit_now(0);
    }
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    crate::sys::signal::ignore_sigpipe();
    let code = match serve_from_env() {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("multiproc worker: {e}");
            1
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    crate::sys::fork::exit_now(code)
}

/// The time a task took in the local pool, from its `latency` (hand-over to answer)
/// and the time `since_prev` since the previous answer: not counting its wait behind
/// the tasks read ahead of it, so at most `since_prev × slots` (answers leave a busy
/// pool that often). Counting the wait in made a host under load see 1 ms "tasks" and
/// stop reading ahead: one round trip per task.
fn run_time(latency: Duration, since_prev: Option<Duration>, slots: usize) -> Duration {
    match since_prev {
        Some(d) => latency.min(d.saturating_mul(slots.max(1) as u32)),
        None => latency,
    }
}

/// The local definition of the task `key` (named `name` by the client); a typed
/// refusal, never another function, when this build does not have it.
fn resolve(key: u64, name: &str, host: &str) -> Result<&'static super::registry::TaskDef> {
    if let Some(d) = registry().get(key) {
        return Ok(d);
    }
    let others: Vec<String> = registry().named(name).map(|d| d.signature()).collect();
    Err(if others.is_empty() {
        Error::new(ErrorKind::NotRegistered).with_message(format!(
            "host {host} (build {}) has no task `{name}`",
            &build_id()[..12.min(build_id().len())]
        ))
    } else {
        Error::new(ErrorKind::BinaryMismatch).with_message(format!(
            "host {host} has `{name}` as {}, not with the client's signature (key {key:016x}); \
             the client and the host run different builds",
            others.join(" / ")
        ))
    })
}

/// Entries claimed by the reaper, for the reader to dispatch: id, fields, deliveries.
type Reclaimed = Vec<(String, Option<Vec<(Vec<u8>, Vec<u8>)>>, u32)>;

/// What the writer writes.
enum Out {
    /// A task's answer (or the host's refusal), then XACK.
    Result {
        id: String,
        client: String,
        task: u64,
        attempt: u8,
        deliveries: u32,
        run_us: u64,
        outcome: Result<Vec<u8>>,
        arg_blob: Option<String>,
        dead: bool,
    },
    /// XACK only (an entry that is not answered: unauthenticated, or its client is gone).
    Ack(String),
}

struct Host {
    cfg: Resolved,
    id: String,
    slots: usize,
    /// The local pool the tasks run in.
    pool: ProcessPool,
    /// Held by whoever reads task entries (the reader, or the writer reading for the
    /// slots its answers free), so that two reads never take the same free slots.
    read_gate: Mutex<()>,
    /// Set by SIGTERM: no more reads.
    term: &'static AtomicBool,
    /// The writer's connection; also taken by [`answer`](Self::answer).
    wcon: Mutex<Option<redis::Connection>>,
    /// Entry ids of the tasks from hand-over until their answer is written, with the
    /// task's state once it is in the local pool.
    running: Mutex<HashMap<String, Option<Arc<Run>>>>,
    /// The host's own limit per task ([`Worker::task_timeout`]).
    timeout: Option<Duration>,
    reclaimed: Mutex<Reclaimed>,
    cv: Condvar,
    tx: Mutex<Option<mpsc::Sender<Out>>>,
    exit: AtomicBool,
    unauthenticated: AtomicU64,
    cancelled: AtomicU64,
    /// Moving average of the tasks' run time in µs (0: none measured yet).
    avg_us: AtomicU64,
    /// When the last task was answered.
    last_done: Mutex<Option<Instant>>,
    /// Client id → (checked at, alive).
    clients: Mutex<HashMap<String, (Instant, bool)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A task in the local pool: whose it is, and whether its client gave it up.
struct Run {
    client: String,
    /// Set by the heartbeat when the client's lease key is gone (it terminated the
    /// pool, or died): the local pool then skips the task, or kills the worker
    /// running it ([`Completion::abandoned`]).
    cancelled: AtomicBool,
}

impl Out {
    /// The task entry it answers or acknowledges.
    fn id(&self) -> &str {
        match self {
            Out::Result { id, .. } | Out::Ack(id) => id,
        }
    }
}

/// Completes a task of the local pool by sending its answer to the writer.
struct HostSink {
    host: Arc<Host>,
    run: Arc<Run>,
    id: String,
    client: String,
    task: u64,
    attempt: u8,
    deliveries: u32,
    start: Instant,
    arg_blob: Option<String>,
}

impl HostSink {
    /// Answers the task; `direct`: from this thread if it can (not from inside the
    /// local pool's step, which holds its lock).
    fn send(&self, outcome: Result<Vec<u8>>, direct: bool) {
        if matches!(&outcome, Err(e) if e.kind() == ErrorKind::Cancelled) {
            self.host.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        let now = Instant::now();
        let latency = now.duration_since(self.start);
        let prev = lock(&self.host.last_done).replace(now);
        let us = run_time(
            latency,
            prev.map(|p| now.duration_since(p)),
            self.host.slots,
        )
        .as_micros() as u64;
        let avg = self.host.avg_us.load(Ordering::Relaxed);
        let next = if avg == 0 {
            us.max(1)
        } else {
            (avg * 7 + us) / 8
        };
        self.host.avg_us.store(next.max(1), Ordering::Relaxed);
        let out = Out::Result {
            id: self.id.clone(),
            client: self.client.clone(),
            task: self.task,
            attempt: self.attempt,
            deliveries: self.deliveries,
            run_us: self.start.elapsed().as_micros() as u64,
            outcome,
            arg_blob: self.arg_blob.clone(),
            dead: false,
        };
        if direct {
            self.host.answer(out);
        } else {
            self.host.send(out);
        }
    }
}

impl Completion for HostSink {
    fn fail(&self, e: Error) {
        self.send(Err(e), true);
    }
    fn deliver_raw(&self, bytes: Vec<u8>, _fds: Vec<std::os::fd::OwnedFd>) {
        self.send(Ok(bytes), true);
    }
    fn try_start(&self) -> bool {
        if self.run.cancelled.load(Ordering::SeqCst) {
            // The local pool drops the task: answer it here, once.
            self.send(
                Err(Error::new(ErrorKind::Cancelled).with_message(
                    "the task's client terminated the pool or is gone; it was not started",
                )),
                false,
            );
            return false;
        }
        true
    }
    fn abandoned(&self) -> bool {
        self.run.cancelled.load(Ordering::SeqCst)
    }
}

impl Host {
    fn send(&self, o: Out) {
        if let Some(tx) = lock(&self.tx).as_ref() {
            let _ = tx.send(o);
        }
    }

    fn log(&self, msg: &str) {
        eprintln!("multiproc worker {}: {msg}", self.id);
    }

    /// Entries this host takes at once: its slots, plus a prefetch while tasks are
    /// known to be short.
    fn capacity(&self) -> usize {
        let avg = self.avg_us.load(Ordering::Relaxed);
        if avg > 0 && avg < SHORT_TASK_US {
            self.slots * (1 + PREFETCH)
        } else {
            self.slots
        }
    }

    fn free(&self) -> usize {
        self.capacity().saturating_sub(lock(&self.running).len())
    }

    /// One read: waits for a free slot, reads up to that many entries, dispatches them.
    fn read_once(self: &Arc<Self>, con: &mut Option<redis::Connection>) {
        // Entries the reaper claimed count as running already (so that the heartbeat
        // keeps them): hand them over first.
        let reclaimed = std::mem::take(&mut *lock(&self.reclaimed));
        if !reclaimed.is_empty() {
            let Some(c) = self.connection(con) else {
                lock(&self.reclaimed).extend(reclaimed);
                return;
            };
            for (id, fields, deliveries) in reclaimed {
                let t = self.dispatch(c, id, fields, deliveries);
                self.pool.submit_all(t.into_iter().collect());
            }
        }
        {
            let r = lock(&self.running);
            if r.len() >= self.capacity() {
                let _ = self.cv.wait_timeout(r, Duration::from_millis(100));
                return;
            }
        }
        let Some(c) = self.connection(con) else {
            return;
        };
        let _gate = lock(&self.read_gate);
        // The writer may have filled the slots meanwhile.
        let free = self.free();
        if free == 0 {
            return;
        }
        let r: redis::RedisResult<Value> = self.read_cmd(free, Some(BLOCK)).query(c);
        match r {
            Ok(v) => {
                self.dispatch_read(c, &v);
                self.catch_answers();
            }
            Err(e) => {
                if is_connection_error(&e) {
                    *con = None;
                } else if !self.read_failed(c, &e) {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// After a read handed short tasks to an otherwise idle local pool: steps the pool
    /// from this thread for a spin window ([`Backoff`](crate::backoff::Backoff)), so
    /// that their answers are read (and, for a lone task, written to Redis by
    /// [`answer`](Self::answer)) here instead of after a wake-up of the pool's manager
    /// thread, which sleeps in `poll` (about 20 µs when its CPU is idle). Skipped for
    /// long tasks or an unknown length, a host with tasks waiting for a slot, and a
    /// crowded machine, where a spinner only holds a CPU the workers need.
    fn catch_answers(&self) {
        let avg = self.avg_us.load(Ordering::Relaxed);
        if avg == 0 || avg >= SHORT_TASK_US {
            return;
        }
        {
            let r = lock(&self.running);
            if r.is_empty() || r.len() > self.slots {
                return;
            }
        }
        let backoff = crate::backoff::Backoff::new();
        if crate::backoff::crowded(Instant::now()) {
            return;
        }
        let d = self.pool.driver();
        d.spinning(true);
        while backoff.spinning() && !lock(&self.running).is_empty() {
            d.try_progress();
            std::thread::yield_now();
        }
        d.spinning(false);
    }

    /// `XREADGROUP` of at most `count` new entries, waiting at most `block` for one.
    fn read_cmd(&self, count: usize, block: Option<Duration>) -> redis::Cmd {
        let mut c = redis::cmd("XREADGROUP");
        c.arg("GROUP")
            .arg(GROUP)
            .arg(&self.id)
            .arg("COUNT")
            .arg(count);
        if let Some(b) = block {
            c.arg("BLOCK").arg(b.as_millis() as u64);
        }
        c.arg("STREAMS").arg(self.cfg.tasks()).arg(">");
        c
    }

    /// Checks the entries of an `XREADGROUP` reply and hands them to the local pool
    /// together (one lock and one wake-up).
    fn dispatch_read(self: &Arc<Self>, con: &mut redis::Connection, v: &Value) {
        let tasks: Vec<RemoteTask> = conn::read_reply(v)
            .into_iter()
            .filter_map(|(id, fields)| self.dispatch(con, id, fields, 1))
            .collect();
        if !tasks.is_empty() {
            self.pool.submit_all(tasks);
        }
    }

    /// Handles a failed `XREADGROUP` that is not a lost connection: recreates the group
    /// Redis lost (restarted empty) and returns `true`, or logs it and returns `false`.
    fn read_failed(&self, con: &mut redis::Connection, e: &redis::RedisError) -> bool {
        if e.code() == Some("NOGROUP") {
            let _ = conn::ensure_group(con, &self.cfg);
            true
        } else {
            self.log(&format!("XREADGROUP failed: {e}"));
            false
        }
    }

    /// The connection, reconnecting with backoff (a host retries forever).
    fn connection<'a>(
        &self,
        con: &'a mut Option<redis::Connection>,
    ) -> Option<&'a mut redis::Connection> {
        if con.is_none() {
            let deadline = Instant::now() + Duration::from_secs(2);
            match conn::reconnect(&self.cfg, BLOCK + Duration::from_secs(5), deadline, &|| {
                self.exit.load(Ordering::SeqCst)
            }) {
                Ok(mut c) => {
                    let _ = conn::ensure_group(&mut c, &self.cfg);
                    *con = Some(c);
                }
                Err(_) => return None,
            }
        }
        con.as_mut()
    }

    /// Checks one entry and returns it as a task for the local pool, or answers it at
    /// once (`None`).
    fn dispatch(
        self: &Arc<Self>,
        con: &mut redis::Connection,
        id: String,
        fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
        deliveries: u32,
    ) -> Option<RemoteTask> {
        let stream = self.cfg.tasks();
        let Some(e) = fields.and_then(|f| Entry::verified(&self.cfg.key, &stream, id.clone(), f))
        else {
            self.unauthenticated.fetch_add(1, Ordering::Relaxed);
            self.log(&format!(
                "dropped task entry {id}: missing fields or a MAC that does not verify"
            ));
            self.send(Out::Ack(id));
            return None;
        };
        let Ok(h) = TaskHeader::decode(&e.h) else {
            self.log(&format!("dropped task entry {id}: malformed header"));
            self.send(Out::Ack(id));
            return None;
        };
        let client = hex(&h.client);
        if !self.client_alive(con, &client) {
            // Answered, not only acknowledged: the answer vanishes if the client is
            // gone (its result stream with it), and a live client whose lease Redis
            // lost renews it and sends the task again instead of waiting for ever.
            lock(&self.running).insert(id.clone(), None);
            self.cancelled.fetch_add(1, Ordering::Relaxed);
            self.send(Out::Result {
                id,
                client,
                task: h.task,
                attempt: h.attempt,
                deliveries,
                run_us: 0,
                outcome: Err(Error::new(ErrorKind::Cancelled)
                    .with_message("the task's client terminated the pool or is gone")),
                arg_blob: None,
                dead: false,
            });
            return None;
        }
        lock(&self.running).insert(id.clone(), None);
        let name = String::from_utf8_lossy(&e.n).into_owned();
        let answer = |outcome: Result<Vec<u8>>, arg_blob: Option<String>| Out::Result {
            id: id.clone(),
            client: client.clone(),
            task: h.task,
            attempt: h.attempt,
            deliveries,
            run_us: 0,
            outcome,
            arg_blob,
            dead: false,
        };
        if h.build != 0 && h.build != build_key() {
            // The client wants its own build, and this is another one: same name and
            // types, perhaps other code.
            let err = Error::new(ErrorKind::BinaryMismatch).with_message(format!(
                "host {} runs build {}, not the client's build {:016x}, and the client \
                 runs its tasks only on its own build (same_build); `{name}` did not run",
                self.id,
                &build_id()[..16.min(build_id().len())],
                h.build
            ));
            self.send(answer(Err(err), None));
            return None;
        }
        let def = match resolve(h.key, &name, &self.id) {
            Ok(d) => d,
            Err(err) => {
                self.send(answer(Err(err), None));
                return None;
            }
        };
        let (payload, arg_blob) = match (e.p, e.b) {
            (Some(p), _) => (Ok(p), None),
            (None, Some(b)) => match BlobRef::decode(&b) {
                Ok(r) => (self.fetch_blob(con, &r, &client), Some(r.key)),
                Err(e) => (Err(e), None),
            },
            (None, None) => (
                Err(Error::new(ErrorKind::Decode).with_message("an entry without payload")),
                None,
            ),
        };
        let payload = match payload {
            Ok(p) => p,
            Err(err) => {
                self.send(answer(Err(err), arg_blob));
                return None;
            }
        };
        let run = Arc::new(Run {
            client: client.clone(),
            cancelled: AtomicBool::new(false),
        });
        lock(&self.running).insert(id.clone(), Some(Arc::clone(&run)));
        // The client's limit, or the host's own if that is shorter.
        let timeout = match (h.timeout_ms, self.timeout) {
            (0, t) => t,
            (ms, t) => Some(Duration::from_millis(u64::from(ms)).min(t.unwrap_or(Duration::MAX))),
        };
        let sink = HostSink {
            host: Arc::clone(self),
            run,
            id: id.clone(),
            client: client.clone(),
            task: h.task,
            attempt: h.attempt,
            deliveries,
            start: Instant::now(),
            arg_blob,
        };
        Some(RemoteTask {
            entry: def.entry(),
            payload: Arc::new(payload),
            fds: Vec::new(),
            sink: Arc::new(sink),
            retries: 0,
            timeout,
        })
    }

    fn fetch_blob(
        &self,
        con: &mut redis::Connection,
        r: &BlobRef,
        client: &str,
    ) -> Result<Vec<u8>> {
        if !r
            .key
            .starts_with(&format!("{}:blob:{client}:", self.cfg.prefix))
        {
            return Err(Error::new(ErrorKind::Decode)
                .with_message("an argument blob outside its client's keys"));
        }
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&r.key)
            .query(con)
            .map_err(|e| broker_error("GET of an argument blob failed", e))?;
        let v = v.ok_or_else(|| {
            Error::new(ErrorKind::Decode)
                .with_message(format!("the argument blob {} expired", r.key))
        })?;
        r.check(&v)?;
        Ok(v)
    }

    /// Whether the client's lease key exists (cached for a second).
    fn client_alive(&self, con: &mut redis::Connection, client: &str) -> bool {
        if let Some((at, alive)) = lock(&self.clients).get(client) {
            // A live client is rechecked every second, a gone one every 200 ms (its
            // lease may come back: a client whose lease Redis lost renews it).
            let ttl = if *alive { 1000 } else { 200 };
            if at.elapsed() < Duration::from_millis(ttl) {
                return *alive;
            }
        }
        let alive = redis::cmd("EXISTS")
            .arg(self.cfg.client(client))
            .query::<i64>(con)
            .map(|n| n > 0)
            // Unknown: run it; the result goes nowhere if the client is gone.
            .unwrap_or(true);
        let mut c = lock(&self.clients);
        if c.len() > 4096 {
            c.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(1));
        }
        c.insert(client.to_owned(), (Instant::now(), alive));
        alive
    }

    // ---- the writer -------------------------------------------------------------

    fn writer(self: &Arc<Self>, rx: mpsc::Receiver<Out>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(o) => o,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            // Retry until written: the answers are kept (bounded by the slots).
            let mut wait = Duration::from_millis(50);
            loop {
                let mut con = lock(&self.wcon);
                let written = match self.connection(&mut con) {
                    Some(c) => match self.write_and_read(c, &batch) {
                        Ok(()) => true,
                        Err(e) => {
                            if is_connection_error(&e) {
                                *con = None;
                            } else {
                                self.log(&format!("writing results failed: {e}"));
                            }
                            false
                        }
                    },
                    None => false,
                };
                drop(con);
                if written {
                    break;
                }
                if self.exit.load(Ordering::SeqCst) && wait >= Duration::from_secs(2) {
                    // Leaving: the entries stay pending and are reclaimed by others.
                    break;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            self.written(&batch);
        }
    }

    /// After `batch` is written (or given up on): its tasks leave `running`.
    fn written(&self, batch: &[Out]) {
        let mut r = lock(&self.running);
        for o in batch {
            r.remove(o.id());
        }
        // The reader sleeps on while a read with the answers filled the slots.
        let wake = r.len() < self.capacity() || r.is_empty();
        drop(r);
        if wake {
            self.cv.notify_all();
        }
    }

    /// Sends a finished task's answer: written at once from this thread (the local
    /// pool's manager, which has just read it) when the writer's connection is free
    /// and tasks are long enough that answers leave the host at most about once a
    /// millisecond (the round trip holds up the manager); that saves the hand-over to
    /// the writer thread, two context switches a task, which count under a CPU quota
    /// (1 host / local pool under 0.4 CPU: medians 1.08-1.13 -> 1.03-1.07). Otherwise,
    /// or if that write fails, through the writer, which retries.
    ///
    /// A task that is the host's only one is answered at once too, whatever its
    /// length: no other answer waits behind the round trip, and the hand-over to the
    /// writer would be a wake-up (about 20 µs on an idle CPU) on the way of one
    /// `apply` at a time.
    fn answer(self: &Arc<Self>, o: Out) {
        let avg = self.avg_us.load(Ordering::Relaxed);
        let alone = lock(&self.running).len() <= 1;
        if alone || avg == 0 || avg >= SHORT_TASK_US * self.slots as u64 {
            if let Ok(mut con) = self.wcon.try_lock() {
                if let Some(c) = con.as_mut() {
                    let batch = [o];
                    match self.write_and_read(c, &batch) {
                        Ok(()) => {
                            drop(con);
                            self.written(&batch);
                            return;
                        }
                        Err(e) if is_connection_error(&e) => *con = None,
                        Err(_) => {}
                    }
                    let [o] = batch;
                    drop(con);
                    self.send(o);
                    return;
                }
            }
        }
        self.send(o);
    }

    /// Writes `batch`, and in the same round trip reads new entries for the slots its
    /// answers free, unless the reader is reading or the host drains. A task longer
    /// than a round trip then costs the host one round trip and no wake-up of the
    /// reader: under a CPU quota each wake-up is time taken from the tasks.
    fn write_and_read(
        self: &Arc<Self>,
        con: &mut redis::Connection,
        batch: &[Out],
    ) -> redis::RedisResult<()> {
        let p = self.write_pipe(batch);
        let gate = self.read_gate.try_lock().ok();
        let free = match &gate {
            Some(_) if !self.term.load(Ordering::SeqCst) => {
                let r = lock(&self.running);
                let answered = batch.iter().filter(|o| r.contains_key(o.id())).count();
                self.capacity().saturating_sub(r.len() - answered)
            }
            _ => 0,
        };
        if free == 0 {
            return p.query::<()>(con);
        }
        // MULTI … EXEC, then XREADGROUP without BLOCK: replies MULTI's OK, one QUEUED
        // per command, EXEC's array, the read's.
        let mut packed = p.get_packed_pipeline();
        packed.extend_from_slice(&self.read_cmd(free, None).get_packed_command());
        let mut replies = redis::ConnectionLike::req_packed_commands(con, &packed, 0, p.len() + 3)?;
        let read = replies.pop().unwrap_or(Value::Nil);
        // What the read delivered is this host's now, whatever became of the write.
        match read.extract_error() {
            Ok(v) => self.dispatch_read(con, &v),
            Err(e) => {
                self.read_failed(con, &e);
            }
        }
        drop(gate);
        let exec = replies.pop().unwrap_or(Value::Nil);
        for v in replies {
            v.extract_error()?;
        }
        match exec.extract_error()? {
            Value::Array(items) => items
                .into_iter()
                .try_for_each(|v| v.extract_error().map(drop)),
            other => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "a transaction that did not run",
                format!("{other:?}"),
            ))),
        }
    }

    /// The transaction that writes `batch`: each answer, then one XACK.
    fn write_pipe(&self, batch: &[Out]) -> redis::Pipeline {
        let tasks = self.cfg.tasks();
        let mut p = redis::pipe();
        p.atomic();
        let mut ids = Vec::with_capacity(batch.len());
        for o in batch {
            match o {
                Out::Ack(id) => ids.push(id.as_str()),
                Out::Result {
                    id,
                    client,
                    task,
                    attempt,
                    deliveries,
                    run_us,
                    outcome,
                    arg_blob,
                    dead,
                } => {
                    ids.push(id.as_str());
                    let (status, payload) = match outcome {
                        Ok(b) => (Status::Ok, b.clone()),
                        Err(e) => (Status::Failed, WireError::new(e, &self.id).encode()),
                    };
                    let h = ResultHeader {
                        task: *task,
                        status,
                        deliveries: *deliveries,
                        run_us: *run_us,
                    };
                    let res = self.cfg.results(client);
                    let mut fields: wire::Fields = vec![("h", h.encode())];
                    if payload.len() >= self.cfg.opts.blob_threshold {
                        let key = self.cfg.blob(client, *task, *attempt, 'r');
                        p.cmd("SET")
                            .arg(&key)
                            .arg(payload.as_slice())
                            .arg("EX")
                            .arg(self.cfg.opts.blob_ttl.as_secs().max(1))
                            .ignore();
                        fields.push(("b", BlobRef::of(key, &payload).encode()));
                    } else {
                        fields.push(("p", payload));
                    }
                    let sig = wire::sign(&self.cfg.key, &res, &fields);
                    let c = p.cmd("XADD").arg(&res).arg("NOMKSTREAM").arg("*");
                    for (n, v) in &fields {
                        c.arg(*n).arg(v.as_slice());
                    }
                    c.arg("s").arg(sig).ignore();
                    if let Some(b) = arg_blob {
                        p.cmd("DEL").arg(b).ignore();
                    }
                    if *dead {
                        p.cmd("XADD")
                            .arg(self.cfg.dead())
                            .arg("MAXLEN")
                            .arg("~")
                            .arg(10_000)
                            .arg("*")
                            .arg("entry")
                            .arg(id)
                            .arg("client")
                            .arg(client)
                            .arg("task")
                            .arg(*task)
                            .arg("deliveries")
                            .arg(*deliveries)
                            .ignore();
                    }
                }
            }
        }
        p.cmd("XACK").arg(&tasks).arg(GROUP).arg(&ids).ignore();
        p
    }

    // ---- the housekeeper ----------------------------------------------------------

    fn housekeeper(self: &Arc<Self>) {
        let o = &self.cfg.opts;
        let mut con: Option<redis::Connection> = None;
        let reap_every = o.min_idle / 2;
        let trim_every = Duration::from_secs(5).max(o.heartbeat);
        let mut next_hb = Instant::now();
        let mut next_reap = Instant::now() + reap_every;
        let mut next_trim = Instant::now() + trim_every;
        while !self.exit.load(Ordering::SeqCst) {
            let now = Instant::now();
            let next = next_hb.min(next_reap).min(next_trim);
            if now < next {
                std::thread::sleep((next - now).min(Duration::from_millis(50)));
                continue;
            }
            let Some(c) = self.connection(&mut con) else {
                continue;
            };
            let r = if now >= next_hb {
                next_hb = now + o.heartbeat;
                // The host record is published even when the heartbeat failed: a
                // record left to expire makes a live host look gone.
                let hb = self.heartbeat(c).and_then(|()| self.cancel_orphans(c));
                self.publish(c).and(hb)
            } else if now >= next_reap {
                next_reap = now + reap_every;
                self.reap(c)
            } else {
                next_trim = now + trim_every;
                self.trim(c)
            };
            if let Err(e) = r {
                if is_connection_error(&e) {
                    con = None;
                }
            }
        }
    }

    /// Refreshes the idle time of the entries this host runs and still owns.
    fn heartbeat(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let ids: Vec<String> = lock(&self.running).keys().cloned().collect();
        if ids.is_empty() {
            return Ok(());
        }
        redis::cmd("EVAL")
            .arg(HEARTBEAT_LUA)
            .arg(1)
            .arg(self.cfg.tasks())
            .arg(GROUP)
            .arg(&self.id)
            .arg(&ids)
            .query::<i64>(con)
            .map(|_| ())
    }

    /// Cancels the tasks in the local pool whose client's lease key is gone (the
    /// client terminated the pool, or died): queued ones are not started, running
    /// ones have their worker killed, and each is answered as cancelled.
    fn cancel_orphans(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let mut clients: Vec<String> = lock(&self.running)
            .values()
            .flatten()
            .filter(|r| !r.cancelled.load(Ordering::Relaxed))
            .map(|r| r.client.clone())
            .collect();
        clients.sort_unstable();
        clients.dedup();
        if clients.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for c in &clients {
            p.cmd("EXISTS").arg(self.cfg.client(c));
        }
        let alive: Vec<i64> = p.query(con)?;
        let gone: Vec<&String> = clients
            .iter()
            .zip(&alive)
            .filter(|(_, n)| **n == 0)
            .map(|(c, _)| c)
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        {
            // The next entry of these clients is checked afresh: a live client whose
            // lease Redis lost renews it when its task is answered as cancelled.
            let mut cache = lock(&self.clients);
            for c in &gone {
                cache.remove(*c);
            }
        }
        for r in lock(&self.running).values().flatten() {
            if gone.contains(&&r.client) {
                r.cancelled.store(true, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Publishes this host's record.
    fn publish(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let info = HostInfo {
            id: self.id.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            build_id: build_id().into(),
            slots: self.slots as u32,
            running: lock(&self.running).len() as u32,
            unauthenticated: self.unauthenticated.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            keys: registry().keys(),
        };
        let record = self.cfg.host(&self.id);
        redis::pipe()
            .cmd("SET")
            .arg(&record)
            .arg(info.signed(&self.cfg.key, &record))
            .arg("PX")
            .arg(3 * self.cfg.opts.heartbeat.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(self.cfg.hosts())
            .arg(&self.id)
            .ignore()
            .query(con)
    }

    /// Reclaims entries whose host stopped its heartbeat for `min_idle`; gives up on
    /// those delivered `max_deliveries` times.
    fn reap(self: &Arc<Self>, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let o = &self.cfg.opts;
        let got: Option<Value> = redis::cmd("SET")
            .arg(self.cfg.lock("reap"))
            .arg(&self.id)
            .arg("NX")
            .arg("PX")
            .arg((o.min_idle / 2).as_millis() as u64)
            .query(con)?;
        if got.is_none() || matches!(got, Some(Value::Nil)) {
            return Ok(());
        }
        let idle = o.min_idle.as_millis() as u64;
        let pending: Value = redis::cmd("XPENDING")
            .arg(self.cfg.tasks())
            .arg(GROUP)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(64)
            .query(con)?;
        let mut free = self.free();
        for p in conn::array(&pending).unwrap_or(&[]) {
            let Some(a) = conn::array(p) else { continue };
            let (Some(id), Some(owner), Some(count)) = (
                a.first().and_then(conn::string),
                a.get(1).and_then(conn::string),
                a.get(3).and_then(conn::int),
            ) else {
                continue;
            };
            if owner == self.id && lock(&self.running).contains_key(&id) {
                continue; // ours, and alive: the heartbeat is just late
            }
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            // Read the entry without claiming it: a claim counts a delivery, so only
            // an entry this host will run (or give up on) is claimed.
            let found: Value = redis::cmd("XRANGE")
                .arg(self.cfg.tasks())
                .arg(&id)
                .arg(&id)
                .query(con)?;
            let header = conn::entries(&found)
                .into_iter()
                .next()
                .and_then(|(eid, f)| {
                    Entry::verified(&self.cfg.key, &self.cfg.tasks(), eid, f?)
                        .and_then(|e| TaskHeader::decode(&e.h).ok())
                });
            let give_up = match &header {
                Some(h) => count >= u32::from(h.max_deliveries),
                None => true, // unauthenticated or gone: acknowledge it away
            };
            if !give_up && free == 0 {
                continue;
            }
            let claimed: Value = redis::cmd("XCLAIM")
                .arg(self.cfg.tasks())
                .arg(GROUP)
                .arg(&self.id)
                .arg(idle)
                .arg(&id)
                .query(con)?;
            let Some((id, fields)) = conn::entries(&claimed).into_iter().next() else {
                continue; // another host won, or the entry is gone
            };
            // Covered by the heartbeat from now on.
            lock(&self.running).insert(id.clone(), None);
            let Some(h) = header else {
                self.unauthenticated.fetch_add(1, Ordering::Relaxed);
                self.send(Out::Ack(id));
                continue;
            };
            if give_up {
                let e = Error::new(ErrorKind::WorkerDied).with_message(format!(
                    "delivered {count} times; every host running it disappeared (last: {owner})"
                ));
                self.send(Out::Result {
                    id,
                    client: hex(&h.client),
                    task: h.task,
                    attempt: h.attempt,
                    deliveries: count,
                    run_us: 0,
                    outcome: Err(e),
                    arg_blob: None,
                    dead: true,
                });
                continue;
            }
            free -= 1;
            self.log(&format!(
                "reclaimed task entry {id} from {owner} (delivery {})",
                count + 1
            ));
            lock(&self.reclaimed).push((id, fields, count + 1));
        }
        Ok(())
    }

    /// Trims the task stream below every entry still pending or not yet delivered.
    fn trim(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let got: Option<Value> = redis::cmd("SET")
            .arg(self.cfg.lock("trim"))
            .arg(&self.id)
            .arg("NX")
            .arg("PX")
            .arg(5000)
            .query(con)?;
        if got.is_none() || matches!(got, Some(Value::Nil)) {
            return Ok(());
        }
        let groups: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.cfg.tasks())
            .query(con)?;
        let mut last = None;
        for g in conn::array(&groups).unwrap_or(&[]) {
            let fields: Vec<&Value> = match g {
                Value::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
                other => conn::array(other)
                    .map(|a| a.iter().collect())
                    .unwrap_or_default(),
            };
            let mut it = fields.chunks(2);
            let mut name = None;
            let mut ld = None;
            for kv in it.by_ref() {
                if let [k, v] = kv {
                    match conn::string(k).as_deref() {
                        Some("name") => name = conn::string(v),
                        Some("last-delivered-id") => ld = conn::string(v),
                        _ => {}
                    }
                }
            }
            if name.as_deref() == Some(GROUP) {
                last = ld.as_deref().and_then(conn::parse_id);
            }
        }
        let Some((ms, seq)) = last else { return Ok(()) };
        let summary: Value = redis::cmd("XPENDING")
            .arg(self.cfg.tasks())
            .arg(GROUP)
            .query(con)?;
        let a = conn::array(&summary).unwrap_or(&[]);
        let pending = a.first().and_then(conn::int).unwrap_or(0);
        let after_last = if seq == u64::MAX {
            (ms + 1, 0)
        } else {
            (ms, seq + 1)
        };
        let min = if pending > 0 {
            match a
                .get(1)
                .and_then(conn::string)
                .as_deref()
                .and_then(conn::parse_id)
            {
                Some(p) => p.min(after_last),
                None => return Ok(()),
            }
        } else {
            after_last
        };
        redis::cmd("XTRIM")
            .arg(self.cfg.tasks())
            .arg("MINID")
            .arg(format!("{}-{}", min.0, min.1))
            .query::<i64>(con)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_binarys_build_id() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        // Rust binaries on Linux get a GNU build-id by default; if this toolchain did
        // not emit one, the fallback is the file's SHA-256.
        match gnu_build_id(&exe) {
            Some(id) => assert!(id.len() >= 8 && build_id() == hex(id)),
            None => assert_eq!(build_id().len(), 64),
        }
        assert!(gnu_build_id(b"\x7fELF\x02\x01garbage").is_none());
        assert!(gnu_build_id(&exe[..64]).is_none());
    }

    fn sq(x: u16) -> u16 {
        x * x
    }
    crate::task!(sq);

    #[test]
    fn another_signature_is_a_binary_mismatch_and_never_runs() {
        let def = super::super::TaskDef::of(sq);
        assert_eq!(
            resolve(def.key(), def.name(), "h").unwrap().key(),
            def.key()
        );
        // The same name with another key: what a client built with `sq(u32) -> u32` sends.
        let e = resolve(def.key() ^ 1, def.name(), "host-b").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BinaryMismatch);
        assert!(
            e.to_string().contains("(u16) -> u16") && e.to_string().contains("host-b"),
            "{e}"
        );
        let e = resolve(def.key() ^ 1, "app::elsewhere", "host-b").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotRegistered);
        assert!(e.to_string().contains("app::elsewhere"), "{e}");
    }

    #[test]
    fn build_keys_are_the_ids_first_8_bytes_and_never_0() {
        assert_eq!(build_key_of("0123456789abcdef00ff"), 0x0123_4567_89ab_cdef);
        assert_eq!(build_key_of(&"0".repeat(40)), 1);
        assert_eq!(build_key_of("not hex"), 1);
        assert_ne!(build_key(), 0);
    }

    #[test]
    fn run_time_leaves_out_the_wait_behind_tasks_read_ahead() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        // The 33rd of 33 tasks read ahead on one slot: answered 5 ms after hand-over,
        // 150 µs after the one before it. It is a short task.
        assert_eq!(run_time(ms(5), Some(us(150)), 1), us(150));
        assert!(run_time(ms(5), Some(us(150)), 1) < us(SHORT_TASK_US));
        // Two slots: answers come twice as often as each task takes.
        assert_eq!(run_time(ms(5), Some(us(150)), 2), us(300));
        // Alone on an idle host: its latency.
        assert_eq!(run_time(ms(2), Some(ms(900)), 1), ms(2));
        assert_eq!(run_time(ms(2), None, 4), ms(2));
    }

    #[test]
    fn host_records_are_signed() {
        let h = HostInfo {
            id: "h-1".into(),
            pid: 1,
            version: "0".into(),
            build_id: "ab".into(),
            slots: 2,
            running: 0,
            unauthenticated: 0,
            cancelled: 0,
            keys: vec![3, 1, 2],
        };
        let v = h.signed(b"0123456789abcdef", "{p}:host:h-1");
        let got = HostInfo::verified(b"0123456789abcdef", "{p}:host:h-1", &v).unwrap();
        assert_eq!(got.keys, vec![1, 2, 3]);
        assert!(HostInfo::verified(b"0123456789abcdeX", "{p}:host:h-1", &v).is_none());
        assert!(HostInfo::verified(b"0123456789abcdef", "{p}:host:h-2", &v).is_none());
        let mut bad = v.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(HostInfo::verified(b"0123456789abcdef", "{p}:host:h-1", &bad).is_none());
    }
}

/// The guarded heartbeat against a real Redis: it must not take back
/// an entry another host has reclaimed, where a plain `XCLAIM … JUSTID` does.
#[cfg(test)]
mod redis_tests {
    use super::HEARTBEAT_LUA;

    fn url() -> Option<String> {
        match std::env::var("MULTIPROC_TEST_REDIS_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "MULTIPROC_TEST_REDIS_URL is not set under CI=true"
                );
                eprintln!("skipped: MULTIPROC_TEST_REDIS_URL is not set");
                None
            }
        }
    }

    fn owner(con: &mut redis::Connection, s: &str, id: &str) -> String {
        let v: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(s)
            .arg("g")
            .arg(id)
            .arg(id)
            .arg(1)
            .query(con)
            .unwrap();
        v[0].1.clone()
    }

    #[test]
    fn guarded_heartbeat_does_not_steal_a_reclaimed_entry() {
        let Some(url) = url() else { return };
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let s = format!("{{mpt-hb-{}}}:tasks", std::process::id());
        let _: () = redis::cmd("DEL").arg(&s).query(&mut con).unwrap();
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&s)
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut con)
            .unwrap();
        let id: String = redis::cmd("XADD")
            .arg(&s)
            .arg("*")
            .arg("f")
            .arg("v")
            .query(&mut con)
            .unwrap();
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("A")
            .arg("STREAMS")
            .arg(&s)
            .arg(">")
            .query(&mut con)
            .unwrap();
        // B reclaims it (A looked dead).
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&s)
            .arg("g")
            .arg("B")
            .arg(0)
            .arg(&id)
            .query(&mut con)
            .unwrap();
        assert_eq!(owner(&mut con, &s, &id), "B");
        // A's guarded heartbeat refreshes nothing and leaves B the owner...
        let n: i64 = redis::cmd("EVAL")
            .arg(HEARTBEAT_LUA)
            .arg(1)
            .arg(&s)
            .arg("g")
            .arg("A")
            .arg(&id)
            .query(&mut con)
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(owner(&mut con, &s, &id), "B");
        // ...B's refreshes its entry...
        let n: i64 = redis::cmd("EVAL")
            .arg(HEARTBEAT_LUA)
            .arg(1)
            .arg(&s)
            .arg("g")
            .arg("B")
            .arg(&id)
            .query(&mut con)
            .unwrap();
        assert_eq!(n, 1);
        // ...where the naive heartbeat steals it back.
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&s)
            .arg("g")
            .arg("A")
            .arg(0)
            .arg(&id)
            .arg("JUSTID")
            .query(&mut con)
            .unwrap();
        assert_eq!(owner(&mut con, &s, &id), "A");
        let _: () = redis::cmd("DEL").arg(&s).query(&mut con).unwrap();
    }
}
