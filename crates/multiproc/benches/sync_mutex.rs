//! Process-shared locks: multiproc's `Lock` side by side with `std::sync::Mutex` and
//! a process-shared pthread mutex, uncontended and shared by two processes; and
//! Python's `multiprocessing.Value` + lock where `python3` exists.
//!
//! ```sh
//! cargo bench -p multiproc --bench sync_mutex                          # about 40 seconds
//! MULTIPROC_BENCH_QUICK=1 cargo bench -p multiproc --bench sync_mutex  # about 10 seconds
//! ```
//!
//! # Rows
//!
//! | row | what |
//! |---|---|
//! | `mp_lock` | `multiproc::Lock`: `drop(lock.lock())` in a loop, one thread |
//! | `std_mutex` | `std::sync::Mutex<()>`, the same |
//! | `pthread_pshared` | `pthread_mutex_lock` + `unlock` of a `PTHREAD_PROCESS_SHARED` mutex in shared memory |
//! | `pthread_pshared_robust` | the same, also `PTHREAD_MUTEX_ROBUST` (glibc's robust list) |
//! | `mp_lock_2procs` | two child processes each increment a plain counter in shared memory `N` times under one `Lock` |
//! | `pthread_pshared_2procs` | the same under a process-shared pthread mutex |
//! | `py_value_lock_2procs` | Python: two `multiprocessing.Process`es, `with v.get_lock(): v.value += 1`, `N` times each |
//!
//! Uncontended rows are timed with the thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), so time slices lost to other processes do not count.
//! Two-process rows: both children are started (fork server) and wait on a flag in
//! shared memory; the clock runs from raising the flag until both have finished
//! (they count down a shared word), so process start-up is not timed.
//!
//! # Method
//!
//! Rounds are interleaved (every row once per round, the starting row rotating), and
//! each table entry is the median over rounds; ratios are of medians. A hand-rolled
//! harness rather than criterion, for the reasons given in `process_start.rs`:
//! interleaving rows, timing a peer in another process, and keeping the run short.
//!
//! # Safety
//!
//! The pthread baselines place a `pthread_mutex_t` at a fixed, suitably aligned offset
//! of a `SharedMemory` segment that outlives every use, initialize it once before any
//! other process sees it, and call only `pthread_mutex_*` on it.
#![allow(unsafe_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use multiproc::{Lock, Process, SharedMemory};

const COUNTER: usize = 0;
const READY: usize = 8;
const GO: usize = 12;
const DONE: usize = 16;
const MUTEX: usize = 64;

fn quick() -> bool {
    std::env::var_os("MULTIPROC_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench")
}

fn pthread_mutex(shm: &SharedMemory) -> *mut libc::pthread_mutex_t {
    shm.as_ptr().wrapping_add(MUTEX).cast()
}

fn init_pthread(shm: &SharedMemory, robust: bool) {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is a valid place for a mutexattr, initialized here before use.
    let rc = unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: `attr` was initialized above.
    let rc = unsafe {
        libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED)
    };
    assert_eq!(rc, 0);
    if robust {
        // SAFETY: `attr` was initialized above.
        let rc = unsafe {
            libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST)
        };
        assert_eq!(rc, 0);
    }
    // SAFETY: the mutex slot lies inside the segment (64 + 40 bytes < 4096), is 8-aligned,
    // and no other thread or process uses it yet; `attr` is initialized.
    let rc = unsafe { libc::pthread_mutex_init(pthread_mutex(shm), attr.as_ptr()) };
    assert_eq!(rc, 0);
}

fn pthread_lock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: `m` points to an initialized process-shared mutex in a live mapping.
    let rc = unsafe { libc::pthread_mutex_lock(m) };
    debug_assert_eq!(rc, 0);
}

fn pthread_unlock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: as in `pthread_lock`, and the caller holds the mutex.
    let rc = unsafe { libc::pthread_mutex_unlock(m) };
    debug_assert_eq!(rc, 0);
}

/// This thread's CPU time: unlike the wall clock, it does not run while other
/// processes have the CPU, which matters on this shared 2-core machine.
fn thread_cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// Nanoseconds of this thread's CPU time per operation over `n` calls of `f`.
fn per_op(n: u64, mut f: impl FnMut()) -> f64 {
    let t = thread_cpu_ns();
    for _ in 0..n {
        f();
    }
    (thread_cpu_ns() - t) / n as f64
}

#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Kind {
    Mp,
    Pthread,
}

fn wait_go(shm: &SharedMemory) {
    shm.atomic_u32(READY).fetch_add(1, Ordering::SeqCst);
    while shm.atomic_u32(GO).load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
}

fn counter(shm: &SharedMemory) -> &AtomicU64 {
    shm.atomic_u64(COUNTER)
}

fn worker(args: (Kind, Lock, SharedMemory, u64)) {
    let (kind, lock, shm, n) = args;
    let c = counter(&shm);
    wait_go(&shm);
    match kind {
        Kind::Mp => {
            for _ in 0..n {
                let _g = lock.lock().unwrap();
                c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
        }
        Kind::Pthread => {
            let m = pthread_mutex(&shm);
            for _ in 0..n {
                pthread_lock(m);
                c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                pthread_unlock(m);
            }
        }
    }
    shm.atomic_u32(DONE).fetch_add(1, Ordering::SeqCst);
}

/// Million increments per second by two processes.
fn two_procs(kind: Kind, n: u64) -> f64 {
    let lock = Lock::new().unwrap();
    let shm = SharedMemory::create(4096).unwrap();
    init_pthread(&shm, false);
    let kids: Vec<Process<()>> = (0..2)
        .map(|_| Process::start_with(worker, (kind, lock.clone(), shm.clone(), n)).unwrap())
        .collect();
    let spin_until = |word: &AtomicU32, v: u32| {
        while word.load(Ordering::SeqCst) != v {
            std::thread::yield_now();
        }
    };
    spin_until(shm.atomic_u32(READY), 2);
    let t = Instant::now();
    shm.atomic_u32(GO).store(1, Ordering::Release);
    spin_until(shm.atomic_u32(DONE), 2);
    let dt = t.elapsed();
    for k in kids {
        k.join().unwrap();
    }
    assert_eq!(counter(&shm).load(Ordering::SeqCst), 2 * n);
    2.0 * n as f64 / dt.as_secs_f64() / 1e6
}

const PY: &str = r#"
import multiprocessing as mp, sys, time
def w(v, n, go):
    go.wait()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
if __name__ == "__main__":
    n = int(sys.argv[1])
    v = mp.Value("q", 0)
    go = mp.Event()
    ps = [mp.Process(target=w, args=(v, n, go)) for _ in range(2)]
    for p in ps: p.start()
    time.sleep(0.3)
    t = time.perf_counter()
    go.set()
    for p in ps: p.join()
    dt = time.perf_counter() - t
    assert v.value == 2 * n
    print(2 * n / dt / 1e6)
"#;

fn python(n: u64) -> Option<f64> {
    let out = Command::new("python3")
        .args(["-c", PY, &n.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = quick();
    let rounds = if quick { 3 } else { 7 };
    let ops: u64 = if quick { 2_000_000 } else { 10_000_000 };
    let incr: u64 = if quick { 1_000_000 } else { 4_000_000 };
    let py_incr: u64 = if quick { 50_000 } else { 200_000 };
    let has_python = python(1000).is_some();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "sync_mutex: {rounds} rounds, loadavg before: {}",
        load.trim()
    );

    let lock = Lock::new().unwrap();
    let std_mutex = std::sync::Mutex::new(());
    let shm_plain = SharedMemory::create(4096).unwrap();
    init_pthread(&shm_plain, false);
    let shm_robust = SharedMemory::create(4096).unwrap();
    init_pthread(&shm_robust, true);

    let names = [
        "mp_lock",
        "std_mutex",
        "pthread_pshared",
        "pthread_pshared_robust",
        "mp_lock_2procs",
        "pthread_pshared_2procs",
        "py_value_lock_2procs",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..rounds {
        for k in 0..names.len() {
            let row = (k + round) % names.len();
            let v = match row {
                0 => per_op(ops, || drop(lock.lock())),
                1 => per_op(ops, || drop(std_mutex.lock())),
                2 => {
                    let m = pthread_mutex(&shm_plain);
                    per_op(ops, || {
                        pthread_lock(m);
                        pthread_unlock(m);
                    })
                }
                3 => {
                    let m = pthread_mutex(&shm_robust);
                    per_op(ops, || {
                        pthread_lock(m);
                        pthread_unlock(m);
                    })
                }
                4 => two_procs(Kind::Mp, incr),
                5 => two_procs(Kind::Pthread, incr),
                _ if has_python => python(py_incr).unwrap_or(f64::NAN),
                _ => continue,
            };
            samples[row].push(v);
        }
    }
    let m: Vec<f64> = samples
        .iter_mut()
        .map(|s| if s.is_empty() { f64::NAN } else { median(s) })
        .collect();
    println!("\n| row | median | unit |\n|---|---:|---|");
    for (i, name) in names.iter().enumerate() {
        let unit = if i < 4 {
            "ns/(lock+unlock), thread CPU time"
        } else {
            "Mincr/s, wall clock"
        };
        println!("| {name} | {:.2} | {unit} |", m[i]);
    }
    println!("\nratios (medians):");
    println!(
        "  mp_lock / std_mutex               = {:.2}x the time",
        m[0] / m[1]
    );
    println!(
        "  mp_lock / pthread_pshared         = {:.2}x the time",
        m[0] / m[2]
    );
    println!(
        "  mp_lock / pthread_pshared_robust  = {:.2}x the time",
        m[0] / m[3]
    );
    println!(
        "  mp_lock_2procs / pthread_2procs   = {:.2}x the throughput",
        m[4] / m[5]
    );
    if has_python {
        println!(
            "  mp_lock_2procs / py_value_lock    = {:.1}x the throughput",
            m[4] / m[6]
        );
    }
    println!(
        "targets: uncontended <= 25 ns: {}; 2 processes >= 15 Mincr/s: {}",
        if m[0] <= 25.0 { "met" } else { "MISSED" },
        if m[4] >= 15.0 { "met" } else { "MISSED" }
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("loadavg after: {}", load.trim());
}
