//! Start+join of an empty function: multiproc's `Thread` and `Process` (every start
//! method) side by side with their baselines and peers in one run, with the ratios and
//! issue 2's targets; and the unique memory of an idle child.
//!
//! ```sh
//! cargo bench -p multiproc --bench process_start                          # about 1 minute
//! MULTIPROC_BENCH_QUICK=1 cargo bench -p multiproc --bench process_start  # about 20 seconds
//! ```
//!
//! # Rows
//!
//! Each operation starts a function that does nothing and joins it; for processes the
//! join includes reaping the child and, for multiproc and procspawn, receiving and
//! decoding its `()` result.
//!
//! | row | what |
//! |---|---|
//! | `std_thread` | `std::thread::spawn(..).join()` |
//! | `mp_thread` | `multiproc::Thread::start(empty)?.join()` |
//! | `raw_fork` | `fork()`; child `_exit(0)`; parent `waitpid` (libc) |
//! | `mp_fork` | `Process` with `StartMethod::Fork` (default builder: the thread check runs) |
//! | `mp_forkserver` | `Process` with `StartMethod::ForkServer`, server preloaded |
//! | `raw_fork_x100` | 100 `fork()`s in a row (each child `_exit(0)`), then 100 `waitpid`s; per process |
//! | `mp_fork_x100` | 100 `Process` starts with `StartMethod::Fork` in a row, then 100 joins; per process |
//! | `mp_forkserver_x100` | the same with `StartMethod::ForkServer`; per process |
//! | `mp_forkserver_4threads_x100` | the same burst spread over 4 threads (25 starts, then 25 joins, each) |
//! | `posix_spawn_self` | `posix_spawn` of this very binary, whose `main` `_exit`s at once; `waitpid` |
//! | `std_command_self` | the same through `std::process::Command::status` |
//! | `mp_spawn` | `Process` with `StartMethod::Spawn` |
//! | `procspawn` | `procspawn::spawn((), f).join()` (procspawn re-executes this binary too) |
//! | `py_*` | Python's `threading.Thread` and `multiprocessing.Process` per start method, timed inside Python (`process_start.py`), skipped without `python3` |
//!
//! Memory: a child started by each method blocks reading a pipe while its
//! `/proc/PID/smaps_rollup` is read; USS = `Private_Clean + Private_Dirty`, the memory
//! that the child alone holds and that its exit would free.
//!
//! # Method
//!
//! Rounds are interleaved: each round runs one batch of every row, starting one row
//! further on each round, and odd rounds go in reverse order (A B C, C B A, B C A, A C B,
//! ...), so that no row always follows the same neighbour. A batch repeats the
//! operation enough times to last about `BATCH_TARGET` (calibrated after a warm-up);
//! its time divided by its size is one sample. The two thread rows share one place in
//! the round and alternate operation by operation (`std mp`, `mp std`, ...), each
//! operation timed on its own: a thread start+join here runs in either ~12 µs or
//! ~35 µs depending on whether the other vCPU is still awake from what ran just
//! before, and in whole batches the row that ran second after a process row was the
//! slow one, whichever row that was (see `PAIRS`). The table shows the median sample
//! over the rounds. A ratio is given two ways:
//! the ratio of the medians, and "paired", the median over rounds of the ratio within
//! the round, which cancels load that changes from one round to the next. The bench
//! records `/proc/loadavg` before, during (highest 1-minute figure) and after the run,
//! and how busy the CPUs were with other processes meanwhile (`/proc/stat` minus this
//! bench's own CPU time and its children's).
//!
//! # Why not criterion
//!
//! The other benches use criterion. Criterion measures one benchmark to completion before
//! it starts the next, so load that comes and goes on this shared 2-core machine (other
//! engineers compile here) lands on a row and not on its baseline, and the ratio, which
//! is the point of this bench, takes the whole error. Interleaved rounds and paired
//! ratios are not something criterion offers. It also cannot drive a peer that is timed
//! in another process (Python), and its warm-up and sample count would take minutes for
//! a 45 ms Python `spawn`. So this is a small hand-rolled harness (`harness = false`).
//!
//! Phases: for the process rows, single operations whose child reads the monotonic
//! clock first thing (in the function, or in `main`/after `fork` for the baselines) and
//! sends it back, so the table shows how long until the child's code ran and how long
//! from there until the join returned.
//!
//! Arguments after `--` choose rows by name (substring), for example
//! `cargo bench -p multiproc --bench process_start -- fork` runs the rows whose name
//! contains `fork` (a filter that is a row's exact name selects just that row); the
//! memory and phase tables run only without arguments, or with
//! `memory` / `phases`.
//!
//! `MULTIPROC_BENCH_HOG=1` runs every row with a busy-looping process on each CPU but
//! the first (issue 11's rows under load; see `benches/common/hog.rs`); the load line
//! then counts the hogs among the "other processes".
//!
//! Run as a test (`cargo test --benches`, no `--bench` argument) it only runs each row
//! a couple of times, as criterion does.
//!
//! # Safety
//!
//! The baselines call `fork`, `_exit`, `waitpid` and `posix_spawn` through libc. The
//! bench forks only from its single thread, and a forked baseline child calls only
//! async-signal-safe functions (`write`, `read`, `_exit`). Every pointer handed to libc
//! points to a live, NUL-terminated buffer owned by the caller for the whole call.
#![allow(unsafe_code)]

#[path = "common/hog.rs"]
mod hog;

use std::cell::RefCell;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use multiproc::process::Builder;
use multiproc::{StartMethod, Thread};
use serde::{Deserialize, Serialize};

/// Environment variable that turns this binary into a baseline child: `exit` (exit at
/// once) or `idle:<ready fd>:<go fd>` (signal readiness, block until a byte arrives on `go`).
const CHILD_ENV: &str = "MULTIPROC_BENCH_CHILD";

/// Environment variable for the quick mode.
const QUICK_ENV: &str = "MULTIPROC_BENCH_QUICK";

const PY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/process_start.py");

fn main() {
    // Before anything else, so that a baseline child costs no more than the runtime's
    // own startup. multiproc's `Spawn` children never get here: its startup hook takes
    // them over before `main` (only when MULTIPROC_BOOTSTRAP_FD is set).
    if let Some(mode) = std::env::var_os(CHILD_ENV) {
        baseline_child(mode.as_bytes());
    }
    // procspawn re-executes this binary and takes its children over here.
    procspawn::init();

    let smoke = !std::env::args().any(|a| a == "--bench");
    let quick = std::env::var_os(QUICK_ENV).is_some_and(|v| v != "0");
    let config = if smoke {
        Config {
            rounds: 2,
            batch_target: Duration::ZERO,
            memory_rounds: 1,
            phase_ops: 2,
            mode: "smoke test (run with `cargo bench` for figures)",
        }
    } else if quick {
        Config {
            rounds: 11,
            batch_target: Duration::from_millis(15),
            memory_rounds: 3,
            phase_ops: 150,
            mode: "quick (MULTIPROC_BENCH_QUICK=1)",
        }
    } else {
        Config {
            rounds: 31,
            batch_target: Duration::from_millis(40),
            memory_rounds: 5,
            phase_ops: 600,
            mode: "full",
        }
    };

    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want_python = filters.is_empty()
        || filters
            .iter()
            .any(|f| f == "memory" || PY_ROWS.iter().any(|(name, _)| name.contains(f.as_str())));
    let python = if want_python {
        let py = Python::start().map(|p| Rc::new(RefCell::new(p)));
        if py.is_none() {
            println!("python3 not found or failed to start: Python rows skipped");
        }
        py
    } else {
        None
    };
    multiproc::process::preload_forkserver().expect("start the fork server");

    // Before the load meter, so that it counts the hogs as other processes.
    let hogs = hog::Hogs::from_env();
    let hog_pids = hogs.as_ref().map_or(Vec::new(), |h| h.pids());
    let load = LoadMeter::start(hog_pids.iter().map(|p| p.to_string()).collect());
    let mut cases = cases(python.clone());
    if !filters.is_empty() {
        // A filter that names a row exactly selects that row only (`mp_fork` without
        // `mp_forkserver`); any other filter selects the rows that contain it.
        let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        cases.retain(|c| {
            filters.iter().any(|f| {
                c.name == f.as_str()
                    || (!names.contains(&f.as_str()) && c.name.contains(f.as_str()))
            })
        });
    }
    run_rounds(&mut cases, &config, &load);
    let memory = if filters.is_empty() || filters.iter().any(|f| f == "memory") {
        measure_memory(python.as_ref(), config.memory_rounds)
    } else {
        Vec::new()
    };
    let phases = if filters.is_empty() || filters.iter().any(|f| f == "phases") {
        measure_phases(config.phase_ops)
    } else {
        Vec::new()
    };
    if let Some(py) = &python {
        py.borrow_mut().quit();
    }
    let load = load.finish();
    drop(hogs);

    report(&cases, &memory, &config, &load);
    report_phases(&phases);
}

struct Config {
    rounds: usize,
    batch_target: Duration,
    memory_rounds: usize,
    /// Single operations per row for the phase timings.
    phase_ops: usize,
    mode: &'static str,
}

// ---------------------------------------------------------------------------
// The rows
// ---------------------------------------------------------------------------

type Op = Box<dyn FnMut(u32) -> Duration>;

struct Case {
    name: &'static str,
    run: Op,
    batch: u32,
    /// Nanoseconds per operation, one per round.
    samples: Vec<f64>,
    /// CPU nanoseconds per operation (this process, its children, the fork server),
    /// one per round; not measured for the Python rows.
    cpu: Vec<f64>,
    /// Minor page faults per operation (same processes), one per round.
    faults: Vec<f64>,
}

/// Times `n` runs of `op`.
fn timed(n: u32, mut op: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed()
}

fn empty() {}

/// Processes per operation of the `_x100` rows.
const BURST: u32 = 100;

/// `n` bursts: `BURST` starts in a row, then `BURST` joins. The time is per process.
fn process_burst(method: StartMethod) -> Op {
    Box::new(move |n| {
        timed(n, || {
            let children: Vec<_> = (0..BURST)
                .map(|_| {
                    Builder::new()
                        .start_method(method)
                        .start(empty)
                        .expect("start")
                })
                .collect();
            for c in children {
                c.join().expect("join");
            }
        }) / BURST
    })
}

/// As [`process_burst`] with the burst spread over `threads` threads, each starting its
/// share of the processes and then joining them.
fn process_burst_threads(method: StartMethod, threads: u32) -> Op {
    Box::new(move |n| {
        timed(n, || {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        let children: Vec<_> = (0..BURST / threads)
                            .map(|_| {
                                Builder::new()
                                    .start_method(method)
                                    .start(empty)
                                    .expect("start")
                            })
                            .collect();
                        for c in children {
                            c.join().expect("join");
                        }
                    });
                }
            });
        }) / BURST
    })
}

/// `n` bursts of `BURST` raw forks, then as many `waitpid`s; the time is per process.
fn raw_fork_burst(n: u32) -> Duration {
    timed(n, || {
        let pids: Vec<libc::pid_t> = (0..BURST).map(|_| raw_fork()).collect();
        for pid in pids {
            wait_ok(pid);
        }
    }) / BURST
}

fn process(method: StartMethod) -> Op {
    Box::new(move |n| {
        timed(n, || {
            Builder::new()
                .start_method(method)
                .start(empty)
                .expect("start")
                .join()
                .expect("join")
        })
    })
}

/// The Python rows and the `kind` the script knows them by.
const PY_ROWS: &[(&str, &str)] = &[
    ("py_thread", "thread"),
    ("py_fork", "fork"),
    ("py_forkserver", "forkserver"),
    ("py_spawn", "spawn"),
];

fn cases(python: Option<Rc<RefCell<Python>>>) -> Vec<Case> {
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let spawn_env = Rc::new(child_env("exit"));
    let mut list: Vec<(&'static str, Op)> = vec![
        (
            "std_thread",
            Box::new(|n| timed(n, || std::thread::spawn(empty).join().expect("join"))),
        ),
        (
            "mp_thread",
            Box::new(|n| {
                timed(n, || {
                    Thread::start(empty).expect("start").join().expect("join")
                })
            }),
        ),
        ("raw_fork", Box::new(|n| timed(n, raw_fork_join))),
        ("mp_fork", process(StartMethod::Fork)),
        ("mp_forkserver", process(StartMethod::ForkServer)),
        ("raw_fork_x100", Box::new(raw_fork_burst)),
        ("mp_fork_x100", process_burst(StartMethod::Fork)),
        ("mp_forkserver_x100", process_burst(StartMethod::ForkServer)),
        (
            "mp_forkserver_4threads_x100",
            process_burst_threads(StartMethod::ForkServer, 4),
        ),
        (
            "posix_spawn_self",
            Box::new(move |n| timed(n, || posix_spawn_join(&exe, &spawn_env, &[]))),
        ),
        (
            "std_command_self",
            Box::new(|n| {
                timed(n, || {
                    let status = Command::new("/proc/self/exe")
                        .env(CHILD_ENV, "exit")
                        .status()
                        .expect("spawn");
                    assert!(status.success());
                })
            }),
        ),
        ("mp_spawn", process(StartMethod::Spawn)),
        (
            "procspawn",
            Box::new(|n| {
                timed(n, || {
                    procspawn::spawn((), |()| ())
                        .join()
                        .expect("procspawn join");
                })
            }),
        ),
    ];
    if let Some(py) = python {
        for &(name, kind) in PY_ROWS {
            let py = Rc::clone(&py);
            list.push((
                name,
                Box::new(move |n| {
                    let ns = py.borrow_mut().ask(&format!("time {kind} {n}"));
                    Duration::from_nanos(ns)
                }),
            ));
        }
    }
    list.into_iter()
        .map(|(name, run)| Case {
            name,
            run,
            batch: 1,
            samples: Vec::new(),
            cpu: Vec::new(),
            faults: Vec::new(),
        })
        .collect()
}

fn run_rounds(cases: &mut [Case], config: &Config, load: &LoadMeter) {
    // Warm-up (the first Python forkserver start launches its server, the first
    // thread start installs multiproc's panic hook, ...), then calibrate.
    for case in cases.iter_mut() {
        (case.run)(2);
        // Doubling batches (at least 1, 2, 4, 8) until they add up to half the target;
        // the fastest per op counts, because a batch that was preempted says nothing.
        let mut per_op = f64::INFINITY;
        let mut spent = Duration::ZERO;
        let mut n = 1u32;
        while (spent * 2 < config.batch_target || (n < 16 && !config.batch_target.is_zero()))
            && n <= 4096
        {
            let t = (case.run)(n);
            per_op = per_op.min(t.as_nanos().max(1) as f64 / f64::from(n));
            spent += t;
            n *= 2;
        }
        // A `_x100` row times per process, but its operation is a burst of `BURST`.
        let unit = if case.name.ends_with("_x100") {
            f64::from(BURST)
        } else {
            1.0
        };
        case.batch =
            (config.batch_target.as_nanos() as f64 / per_op / unit).clamp(1.0, 20_000.0) as u32;
    }
    let server = fork_server_pid();
    let start = Instant::now();
    let slots = slots(cases);
    let n = slots.len();
    for round in 0..config.rounds {
        for i in 0..n {
            let k = if round % 2 == 0 { i } else { n - 1 - i };
            match slots[(round + k) % n] {
                Slot::One(c) => {
                    let case = &mut cases[c];
                    let before = usage(server.as_deref());
                    let t = (case.run)(case.batch);
                    let after = usage(server.as_deref());
                    let ops = f64::from(case.batch);
                    case.samples.push(t.as_nanos() as f64 / ops);
                    if !case.name.starts_with("py_") {
                        // A `_x100` row's operation is a burst; its time is already
                        // per process, and so are its CPU time and faults.
                        let ops = if case.name.ends_with("_x100") {
                            ops * f64::from(BURST)
                        } else {
                            ops
                        };
                        case.cpu.push((after.cpu_ns - before.cpu_ns) as f64 / ops);
                        case.faults
                            .push((after.minor_faults - before.minor_faults) as f64 / ops);
                    }
                }
                Slot::Pair(a, b) => run_pair(cases, a, b),
            }
        }
        load.sample();
    }
    eprintln!(
        "{} rounds of {} rows in {:.1} s",
        config.rounds,
        n,
        start.elapsed().as_secs_f64()
    );
}

/// One place in a round: a row on its own, or two rows whose operations alternate.
#[derive(Clone, Copy)]
enum Slot {
    One(usize),
    Pair(usize, usize),
}

/// Rows that are timed in alternation, one operation each in turn, within one slot.
///
/// A thread start+join on this VM takes either ~12 µs or ~35 µs, depending on whether
/// the other vCPU is still awake from what ran just before (a halted vCPU is woken
/// through the hypervisor): in whole batches, which of the two thread rows
/// ran second after a process row decided which looked slow. Alternating single
/// operations gives both rows the same history, so their ratio measures the code.
const PAIRS: &[(&str, &str)] = &[("std_thread", "mp_thread")];

fn slots(cases: &[Case]) -> Vec<Slot> {
    let index = |name: &str| cases.iter().position(|c| c.name == name);
    let mut paired = vec![false; cases.len()];
    let mut slots = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        if paired[i] {
            continue;
        }
        let partner = PAIRS
            .iter()
            .find_map(|&(a, b)| match (c.name == a, c.name == b) {
                (true, _) => index(b),
                (_, true) => index(a),
                _ => None,
            });
        match partner {
            Some(j) => {
                paired[j] = true;
                slots.push(Slot::Pair(i, j));
            }
            None => slots.push(Slot::One(i)),
        }
    }
    slots
}

/// Runs the smaller of the two batches of each row, one operation at a time, the two
/// rows in turn (`a b`, then `b a`, ...), timing each operation on its own and this
/// process's CPU time and faults around it (RUSAGE_SELF: the rows start threads only).
fn run_pair(cases: &mut [Case], a: usize, b: usize) {
    let batch = cases[a].batch.min(cases[b].batch);
    let mut sums = [[0f64; 3]; 2];
    for op in 0..batch {
        let order = if op % 2 == 0 { [a, b] } else { [b, a] };
        for c in order {
            let before = self_usage();
            let t = (cases[c].run)(1);
            let after = self_usage();
            let s = &mut sums[usize::from(c == b)];
            s[0] += t.as_nanos() as f64;
            s[1] += (after.cpu_ns - before.cpu_ns) as f64;
            s[2] += (after.minor_faults - before.minor_faults) as f64;
        }
    }
    let ops = f64::from(batch);
    for (c, s) in [a, b].into_iter().zip(sums) {
        let case = &mut cases[c];
        case.samples.push(s[0] / ops);
        case.cpu.push(s[1] / ops);
        case.faults.push(s[2] / ops);
    }
}

/// Resources used so far by this process, its reaped children and the fork server.
#[derive(Clone, Copy)]
struct Usage {
    cpu_ns: u64,
    minor_faults: u64,
}

fn usage(server: Option<&str>) -> Usage {
    let mut u = Usage {
        cpu_ns: 0,
        minor_faults: 0,
    };
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        let r = rusage(who);
        u.cpu_ns += r.cpu_ns;
        u.minor_faults += r.minor_faults;
    }
    // The fork server forks the children but is not reaped until the end: read its
    // run time (first field of schedstat, nanoseconds) and faults (stat field 10).
    if let Some(pid) = server {
        u.cpu_ns += std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
            .unwrap_or(0);
        u.minor_faults += std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let (_, rest) = s.rsplit_once(')')?;
                rest.split_whitespace().nth(7)?.parse().ok()
            })
            .unwrap_or(0);
    }
    u
}

/// CPU time and minor faults of this process so far, its threads included.
fn self_usage() -> Usage {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> Usage {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is a valid, writable `rusage`; `who` is a valid selector.
    let rc = unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: zero-initialized above and filled in by a successful `getrusage`.
    let ru = unsafe { ru.assume_init() };
    let mut u = Usage {
        cpu_ns: 0,
        minor_faults: ru.ru_minflt as u64,
    };
    for tv in [ru.ru_utime, ru.ru_stime] {
        u.cpu_ns += tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    }
    u
}

/// This process's living children (pids as strings).
fn living_children() -> Vec<String> {
    let mut pids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            pids.extend(children.split_whitespace().map(String::from));
        }
    }
    pids
}

/// The pid of multiproc's fork server for this process.
fn fork_server_pid() -> Option<String> {
    living_children().into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "multiproc-fsrv")
    })
}

// ---------------------------------------------------------------------------
// Baselines through libc
// ---------------------------------------------------------------------------

fn raw_fork_join() {
    wait_ok(raw_fork());
}

/// Forks a child that exits at once; returns its pid.
fn raw_fork() -> libc::pid_t {
    // SAFETY: the bench is single-threaded here; the child only calls `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: `_exit` is async-signal-safe and never returns.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
    pid
}

fn wait_ok(pid: libc::pid_t) {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for the call to write to.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "waitpid: {e}");
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "baseline child failed: status {status:#x}"
    );
}

/// This process's environment plus `CHILD_ENV=mode`, for `posix_spawn`.
fn child_env(mode: &str) -> Vec<CString> {
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != CHILD_ENV)
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("{CHILD_ENV}={mode}")).expect("no NUL"));
    env
}

/// `posix_spawn`s `exe` with `env`, keeping the descriptors `keep` open in the child
/// (at the same numbers), and returns the pid.
fn posix_spawn(exe: &CString, env: &[CString], keep: &[i32]) -> libc::pid_t {
    let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    // SAFETY: initializes the object in place.
    let rc = unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) };
    assert_eq!(rc, 0);
    for &fd in keep {
        // SAFETY: `actions` was initialized above. dup2 onto itself clears FD_CLOEXEC
        // in the child (glibc >= 2.29).
        let rc = unsafe { libc::posix_spawn_file_actions_adddup2(actions.as_mut_ptr(), fd, fd) };
        assert_eq!(rc, 0);
    }
    let argv0 = CString::new(
        std::env::args_os()
            .next()
            .map(|a| a.as_bytes().to_vec())
            .unwrap_or_default(),
    )
    .expect("no NUL in argv[0]");
    let argv = [argv0.as_ptr().cast_mut(), std::ptr::null_mut()];
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let mut pid: libc::pid_t = 0;
    // SAFETY: `exe`, `argv` and `envp` are NUL-terminated and outlive the call;
    // `actions` is initialized; a null attribute pointer means defaults.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            exe.as_ptr(),
            actions.as_ptr(),
            std::ptr::null(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    };
    // SAFETY: initialized above, destroyed once.
    unsafe { libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr()) };
    assert_eq!(
        rc,
        0,
        "posix_spawn: {}",
        std::io::Error::from_raw_os_error(rc)
    );
    pid
}

fn posix_spawn_join(exe: &CString, env: &[CString], keep: &[i32]) {
    wait_ok(posix_spawn(exe, env, keep));
}

/// The body of a baseline child started with `CHILD_ENV` set; never returns.
fn baseline_child(mode: &[u8]) -> ! {
    if let Some(fd) = mode.strip_prefix(b"stamp:") {
        let fd: i32 = std::str::from_utf8(fd)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        write_stamp(fd);
        // SAFETY: `_exit` never returns.
        unsafe { libc::_exit(0) };
    }
    if let Some(fds) = mode.strip_prefix(b"idle:") {
        let fds: Vec<i32> = std::str::from_utf8(fds)
            .ok()
            .map(|s| s.split(':').filter_map(|f| f.parse().ok()).collect())
            .unwrap_or_default();
        let code = match fds[..] {
            [ready, go] => {
                idle_on_fds(ready, go);
                0
            }
            _ => 2,
        };
        // SAFETY: `_exit` never returns.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: `_exit` never returns; nothing in this fresh process needs flushing.
    unsafe { libc::_exit(0) }
}

/// Writes [`now_ns`] to `fd` as 8 bytes. Async-signal-safe (used in a forked child).
fn write_stamp(fd: i32) {
    let stamp = now_ns().to_ne_bytes();
    // SAFETY: writes 8 bytes from a live buffer.
    unsafe { libc::write(fd, stamp.as_ptr().cast(), stamp.len()) };
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process (vDSO, no lock).
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Writes a byte to `ready`, then blocks until a byte arrives on `go`.
/// Async-signal-safe (used in a forked child).
fn idle_on_fds(ready: i32, go: i32) {
    let byte = [1u8];
    // SAFETY: writes one byte from a live buffer.
    unsafe { libc::write(ready, byte.as_ptr().cast(), 1) };
    let mut buf = [0u8; 1];
    // SAFETY: reads at most one byte into a live buffer.
    unsafe { libc::read(go, buf.as_mut_ptr().cast(), 1) };
}

// ---------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------

/// Where the time of one start+join goes: the child reads `CLOCK_MONOTONIC` first thing
/// in its function (multiproc) or in `main`/after `fork` (baselines) and sends it back.
struct PhaseRow {
    name: &'static str,
    /// Median ns from before the start call until it returned (multiproc only).
    start_returned: Option<f64>,
    /// Median ns from before the start call until the child's code ran.
    to_child: f64,
    /// Median ns from the child's code until the join (or wait) returned.
    child_to_joined: f64,
    /// Median ns of the whole operation.
    total: f64,
}

/// One timed operation: (start returned, child ran, joined), ns after its beginning.
type PhaseOp = Box<dyn FnMut() -> (Option<u64>, u64, u64)>;

fn mp_phases(method: StartMethod) -> PhaseOp {
    Box::new(move || {
        let t0 = now_ns();
        let p = Builder::new()
            .start_method(method)
            .start(now_ns)
            .expect("start");
        let t1 = now_ns();
        let child = p.join().expect("join");
        let t2 = now_ns();
        (Some(t1 - t0), child.saturating_sub(t0), t2 - t0)
    })
}

fn raw_phases(spawn: bool) -> PhaseOp {
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    Box::new(move || {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        let wfd = w.as_raw_fd();
        let env = if spawn {
            child_env(&format!("stamp:{wfd}"))
        } else {
            Vec::new()
        };
        let t0 = now_ns();
        let pid = if spawn {
            posix_spawn(&exe, &env, &[wfd])
        } else {
            // SAFETY: single-threaded here; the child calls only async-signal-safe
            // functions (`clock_gettime` through the vDSO, `write`, `_exit`).
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                write_stamp(wfd);
                // SAFETY: `_exit` never returns.
                unsafe { libc::_exit(0) };
            }
            assert!(pid > 0, "fork failed");
            pid
        };
        wait_ok(pid);
        let t2 = now_ns();
        drop(w);
        let mut buf = [0u8; 8];
        File::from(r).read_exact(&mut buf).expect("child's stamp");
        let child = u64::from_ne_bytes(buf);
        (None, child.saturating_sub(t0), t2 - t0)
    })
}

fn measure_phases(ops: usize) -> Vec<PhaseRow> {
    let mut rows: Vec<(&'static str, PhaseOp)> = vec![
        ("raw_fork", raw_phases(false)),
        ("mp_fork", mp_phases(StartMethod::Fork)),
        ("mp_forkserver", mp_phases(StartMethod::ForkServer)),
        ("posix_spawn_self", raw_phases(true)),
        ("mp_spawn", mp_phases(StartMethod::Spawn)),
    ];
    let mut samples: Vec<[Vec<f64>; 4]> = rows.iter().map(|_| Default::default()).collect();
    for _ in 0..ops {
        for (i, (_, op)) in rows.iter_mut().enumerate() {
            let (started, to_child, total) = op();
            let s = &mut samples[i];
            if let Some(t) = started {
                s[0].push(t as f64);
            }
            s[1].push(to_child as f64);
            s[2].push(total.saturating_sub(to_child) as f64);
            s[3].push(total as f64);
        }
    }
    rows.iter()
        .zip(&samples)
        .map(|((name, _), s)| PhaseRow {
            name,
            start_returned: (!s[0].is_empty()).then(|| median(&s[0])),
            to_child: median(&s[1]),
            child_to_joined: median(&s[2]),
            total: median(&s[3]),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Idle memory
// ---------------------------------------------------------------------------

/// The two pipe ends an idle multiproc child gets (sent as descriptors by every method).
#[derive(Serialize, Deserialize)]
struct IdlePipes {
    #[serde(with = "multiproc::ipc::codec::fd")]
    ready: OwnedFd,
    #[serde(with = "multiproc::ipc::codec::fd")]
    go: OwnedFd,
}

fn idle(pipes: IdlePipes) {
    let _ = File::from(pipes.ready).write_all(b"r");
    let mut buf = [0u8; 1];
    let _ = File::from(pipes.go).read(&mut buf);
}

/// Pipes for one idle child: (parent's ready read end, parent's go write end, child's ends).
fn idle_pipes() -> (File, File, IdlePipes) {
    let flags = rustix::pipe::PipeFlags::CLOEXEC;
    let (ready_r, ready_w) = rustix::pipe::pipe_with(flags).expect("pipe");
    let (go_r, go_w) = rustix::pipe::pipe_with(flags).expect("pipe");
    (
        File::from(ready_r),
        File::from(go_w),
        IdlePipes {
            ready: ready_w,
            go: go_r,
        },
    )
}

/// Memory of a process: (RSS, USS) in bytes.
fn memory_of(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (
        field("Rss:"),
        field("Private_Clean:") + field("Private_Dirty:"),
    )
}

/// Starts one idle child of `kind`, waits until it blocks, reads its memory, lets it go.
fn idle_memory(kind: &str) -> (u64, u64) {
    let (mut ready, go, pipes) = idle_pipes();
    let mut byte = [0u8; 1];
    match kind {
        "raw_fork" | "posix_spawn_self" => {
            let (r, g) = (pipes.ready.as_raw_fd(), pipes.go.as_raw_fd());
            let pid = if kind == "raw_fork" {
                // SAFETY: single-threaded here; the child calls only async-signal-safe
                // functions (`write`, `read`, `_exit`).
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    idle_on_fds(r, g);
                    // SAFETY: `_exit` never returns.
                    unsafe { libc::_exit(0) };
                }
                assert!(pid > 0, "fork failed");
                pid
            } else {
                let exe = CString::new("/proc/self/exe").expect("no NUL");
                posix_spawn(&exe, &child_env(&format!("idle:{r}:{g}")), &[r, g])
            };
            drop(pipes);
            ready.read_exact(&mut byte).expect("idle child ready");
            settle();
            let mem = memory_of(pid);
            release(go);
            wait_ok(pid);
            mem
        }
        _ => {
            let method = match kind {
                "mp_fork" => StartMethod::Fork,
                "mp_forkserver" => StartMethod::ForkServer,
                "mp_spawn" => StartMethod::Spawn,
                other => unreachable!("no idle child kind {other}"),
            };
            let p = Builder::new()
                .start_method(method)
                .start_with(idle, pipes)
                .expect("start idle child");
            ready.read_exact(&mut byte).expect("idle child ready");
            settle();
            let mem = memory_of(p.pid());
            release(go);
            p.join().expect("join idle child");
            mem
        }
    }
}

/// Lets an idle child go on. (Writing, not closing: a forked child holds a copy of the
/// write end itself, so it would never see end of file.)
fn release(mut go: File) {
    go.write_all(b"g").expect("release idle child");
}

/// Gives a child that has just said "ready" time to block in `read`.
fn settle() {
    std::thread::sleep(Duration::from_millis(20));
}

struct MemoryRow {
    name: String,
    rss: f64,
    uss: f64,
}

fn measure_memory(python: Option<&Rc<RefCell<Python>>>, rounds: usize) -> Vec<MemoryRow> {
    let mut kinds: Vec<String> = [
        "raw_fork",
        "posix_spawn_self",
        "mp_fork",
        "mp_forkserver",
        "mp_spawn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if python.is_some() {
        kinds.extend(["py_fork", "py_forkserver", "py_spawn"].map(String::from));
    }
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut uss: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for _ in 0..rounds {
        for (i, kind) in kinds.iter().enumerate() {
            if let Some(method) = kind.strip_prefix("py_") {
                let py = python.expect("python rows only with python");
                let bytes = py.borrow_mut().ask(&format!("uss {method}"));
                uss[i].push(bytes as f64);
            } else {
                let (r, u) = idle_memory(kind);
                rss[i].push(r as f64);
                uss[i].push(u as f64);
            }
        }
    }
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, name)| MemoryRow {
            name,
            rss: median(&rss[i]),
            uss: median(&uss[i]),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The Python peer
// ---------------------------------------------------------------------------

struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    fn start() -> Option<Python> {
        let mut child = Command::new("python3")
            .arg(PY_SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = BufReader::new(child.stdout.take()?);
        Some(Python {
            child,
            stdin,
            stdout,
        })
    }

    fn ask(&mut self, command: &str) -> u64 {
        writeln!(self.stdin, "{command}").expect("write to python3");
        self.stdin.flush().expect("write to python3");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from python3");
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("python3 answered {line:?} to {command:?}"))
    }

    /// Stops the peer and reaps it (so that its CPU time counts as this bench's own).
    fn quit(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

struct LoadMeter {
    start: Instant,
    loadavg_before: String,
    max_load1: RefCell<f64>,
    stat_before: (u64, u64),
    own_before: u64,
    /// Children that are not the bench's (the hogs): left out of its own CPU time.
    exclude: Vec<String>,
}

struct Load {
    loadavg_before: String,
    loadavg_after: String,
    max_load1: f64,
    seconds: f64,
    /// Share of all CPUs busy during the run, and the share used by other processes.
    busy: f64,
    others: f64,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// (busy, total) clock ticks of all CPUs since boot.
fn cpu_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU ticks used by process `pid` and its reaped children (`/proc/PID/stat` fields 14-17).
fn process_ticks(pid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|x| x.parse::<u64>().ok())
        .sum()
}

/// CPU ticks used by this process, its reaped children and its living children (the
/// fork server), but not by the living children in `exclude`.
fn own_ticks(exclude: &[String]) -> u64 {
    process_ticks("self")
        + living_children()
            .iter()
            .filter(|pid| !exclude.contains(pid))
            .map(|pid| process_ticks(pid))
            .sum::<u64>()
}

impl LoadMeter {
    fn start(exclude: Vec<String>) -> LoadMeter {
        LoadMeter {
            start: Instant::now(),
            loadavg_before: loadavg(),
            max_load1: RefCell::new(0.0),
            stat_before: cpu_ticks(),
            own_before: own_ticks(&exclude),
            exclude,
        }
    }

    fn sample(&self) {
        let l1: f64 = loadavg()
            .split_whitespace()
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0.0);
        let mut max = self.max_load1.borrow_mut();
        *max = max.max(l1);
    }

    fn finish(self) -> Load {
        self.sample();
        let (busy1, total1) = cpu_ticks();
        let (busy0, total0) = self.stat_before;
        let own = own_ticks(&self.exclude).saturating_sub(self.own_before);
        let total = (total1 - total0).max(1) as f64;
        let busy = (busy1 - busy0) as f64;
        Load {
            loadavg_before: self.loadavg_before,
            loadavg_after: loadavg(),
            max_load1: *self.max_load1.borrow(),
            seconds: self.start.elapsed().as_secs_f64(),
            busy: busy / total,
            others: ((busy - own as f64) / total).max(0.0),
        }
    }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn us(ns: f64) -> String {
    let us = ns / 1000.0;
    if us >= 100.0 {
        format!("{us:.0}")
    } else {
        format!("{us:.1}")
    }
}

/// (row, baseline, target ratio or none) in the order they are printed.
const RATIOS: &[(&str, &str, Option<f64>)] = &[
    ("mp_thread", "std_thread", Some(1.2)),
    ("mp_thread", "py_thread", None),
    ("mp_fork", "raw_fork", Some(1.5)),
    ("mp_fork", "procspawn", None),
    ("mp_fork", "py_fork", None),
    ("mp_forkserver", "raw_fork", Some(2.0)),
    ("mp_forkserver", "py_forkserver", None),
    ("mp_fork_x100", "raw_fork_x100", None),
    ("mp_forkserver_x100", "raw_fork_x100", Some(1.5)),
    ("mp_forkserver_4threads_x100", "raw_fork_x100", None),
    ("mp_spawn", "posix_spawn_self", Some(1.3)),
    ("mp_spawn", "std_command_self", None),
    ("mp_spawn", "procspawn", None),
    ("mp_spawn", "py_spawn", None),
];

/// Idle child USS target, bytes.
const USS_TARGET: f64 = 1024.0 * 1024.0;

fn report(cases: &[Case], memory: &[MemoryRow], config: &Config, load: &Load) {
    let uname = rustix::system::uname();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("## process_start: start+join of an empty function");
    println!();
    println!(
        "mode: {}; {} interleaved rounds, batches of ~{} ms, {:.1} s",
        config.mode,
        config.rounds,
        config.batch_target.as_millis(),
        load.seconds
    );
    println!(
        "machine: {model}, {cpus} CPUs, Linux {}",
        uname.release().to_string_lossy()
    );
    println!(
        "load: loadavg before {} / highest 1-min during {:.2} / after {}; CPUs {:.0}% busy, \
         {:.0}% by other processes",
        load.loadavg_before,
        load.max_load1,
        load.loadavg_after,
        load.busy * 100.0,
        load.others * 100.0
    );
    println!();
    println!("| row | median µs/op | min | max | CPU µs/op | faults/op | ops/batch |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for c in cases {
        let min = c.samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = c.samples.iter().copied().fold(0.0, f64::max);
        let (cpu, faults) = if c.cpu.is_empty() {
            (String::new(), String::new())
        } else {
            (us(median(&c.cpu)), format!("{:.1}", median(&c.faults)))
        };
        println!(
            "| {} | {} | {} | {} | {cpu} | {faults} | {} |",
            c.name,
            us(median(&c.samples)),
            us(min),
            us(max),
            c.batch
        );
    }
    println!();
    println!("| ratio | of medians | paired | target | |");
    println!("|---|---:|---:|---:|---|");
    let find = |name: &str| cases.iter().find(|c| c.name == name);
    for &(row, base, target) in RATIOS {
        let (Some(a), Some(b)) = (find(row), find(base)) else {
            continue;
        };
        let ratio = median(&a.samples) / median(&b.samples);
        let per_round: Vec<f64> = a
            .samples
            .iter()
            .zip(&b.samples)
            .map(|(x, y)| x / y)
            .collect();
        let paired = median(&per_round);
        let (target_s, verdict) = match target {
            Some(t) => (format!("≤ {t}×"), if ratio <= t { "met" } else { "MISSED" }),
            None => (String::new(), ""),
        };
        println!("| {row} / {base} | {ratio:.2}× | {paired:.2}× | {target_s} | {verdict} |");
    }
    println!();
    println!("| idle child | USS MiB | RSS MiB | target | |");
    println!("|---|---:|---:|---:|---|");
    for m in memory {
        let mib = |b: f64| b / (1024.0 * 1024.0);
        let rss = if m.rss.is_nan() {
            "".to_string()
        } else {
            format!("{:.2}", mib(m.rss))
        };
        let (target, verdict) = if m.name.starts_with("mp_") {
            (
                "≤ 1 MiB",
                if m.uss <= USS_TARGET { "met" } else { "MISSED" },
            )
        } else {
            ("", "")
        };
        println!(
            "| {} | {:.3} | {rss} | {target} | {verdict} |",
            m.name,
            mib(m.uss)
        );
    }
}

fn report_phases(rows: &[PhaseRow]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!("Phases of one start+join (medians of single operations, µs): when the child's");
    println!("code first ran and when the join returned, counted from the start call.");
    println!();
    println!("| row | start() returned | child code runs | child code → joined | total |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.name,
            r.start_returned.map(us).unwrap_or_default(),
            us(r.to_child),
            us(r.child_to_joined),
            us(r.total)
        );
    }
}
