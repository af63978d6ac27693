//! A hostile peer: a child process that forges length prefixes, scribbles control
//! words, stops in the middle of an item or dies in the middle of a frame, against
//! process results, the process pool, [`Pipe`] and [`Queue`]. The parent must get a
//! typed error (or its deadline), keep its memory bounded, and never panic or hang.
//!
//! Memory is measured as the peak resident set (`VmHWM`, reset through
//! `/proc/self/clear_refs` before each case) over the resident set before it; the
//! tests take one lock so that their peaks do not mix when they share a process.
//! The children reach the internals they attack through `multiproc::test_support`.
#![allow(unsafe_code)]
// SAFETY (for the file): the only `unsafe` is borrowing the raw descriptor of the
// child's own result or worker socket, which stays open while the child's function runs.

mod util;

use std::os::fd::BorrowedFd;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use multiproc::pool::Pool;
use multiproc::test_support;
use multiproc::{ErrorKind, Process, StartMethod};

/// Generous slack over a deadline on a loaded 2-CPU machine.
const MARGIN: Duration = Duration::from_secs(3);
/// The most the parent's peak resident set may grow in one case.
const MEM_BOUND: u64 = 64 << 20;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
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
struct MemProbe {
    base: u64,
}

impl MemProbe {
    fn start() -> MemProbe {
        // "5" resets the peak (VmHWM) to the current resident set (Linux >= 4.0).
        std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
        MemProbe {
            base: status_bytes("VmRSS:"),
        }
    }

    /// The rise of the peak so far, in bytes.
    fn rise(&self) -> u64 {
        status_bytes("VmHWM:").saturating_sub(self.base)
    }

    fn check(&self, what: &str) -> u64 {
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

/// Writes all of `bytes`, or as much as the reader takes before it hangs up.
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// Runs `f` on this child's result socket.
fn with_result_socket(f: impl FnOnce(BorrowedFd<'_>)) {
    let fd = test_support::result_socket().expect("running in a multiproc child");
    // SAFETY: the result socket stays open until the child's function has returned.
    f(unsafe { BorrowedFd::borrow_raw(fd) });
}

/// A result frame header (length `u64`, descriptor count `u32`) claiming `len` bytes.
fn frame_header(len: u64) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..8].copy_from_slice(&len.to_le_bytes());
    h
}

// ---- process results (issue 9, item 3) ----

/// Announces a 2 GiB result, sends 64 KiB of it, returns.
fn forge_2gib_result() -> u64 {
    with_result_socket(|fd| {
        write_all(fd, &frame_header(2 << 30));
        write_all(fd, &[7u8; 64 << 10]);
    });
    0
}

/// Announces a 512 MiB result (under the limit), sends 1 MiB of it and stalls.
fn forge_512mib_result_and_stall() -> u64 {
    with_result_socket(|fd| {
        write_all(fd, &frame_header(512 << 20));
        write_all(fd, &[7u8; 1 << 20]);
    });
    std::thread::sleep(Duration::from_secs(60));
    0
}

/// Announces a 256 MiB result, sends 1 MiB of it and exits (dies mid-frame).
fn forge_result_and_die_mid_frame() -> u64 {
    with_result_socket(|fd| {
        write_all(fd, &frame_header(256 << 20));
        write_all(fd, &[7u8; 1 << 20]);
    });
    // SAFETY: `_exit` ends the process at once; nothing runs after it.
    unsafe { libc::_exit(0) }
}

fn builder(method: StartMethod) -> multiproc::process::Builder {
    Process::builder()
        .start_method(method)
        .allow_threads(true)
        .kill_on_drop(true)
}

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

#[test]
fn forged_result_length_is_refused_before_allocating() {
    let _s = serial();
    let _w = util::watchdog(Duration::from_secs(120));
    for method in METHODS {
        let probe = MemProbe::start();
        let mut p = builder(method).start(forge_2gib_result).unwrap();
        let timeout = Duration::from_secs(5);
        let t = Instant::now();
        let e = p.join_timeout(timeout).unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind(), ErrorKind::Decode, "{method:?}: {e}");
        assert!(
            e.to_string().contains("maximum"),
            "{method:?}: not the length check: {e}"
        );
        assert!(took < timeout + MARGIN, "{method:?}: join took {took:?}");
        probe.check(&format!("{method:?} 2 GiB result header"));
    }
}

#[test]
fn configured_result_limit_applies() {
    let _s = serial();
    let _w = util::watchdog(Duration::from_secs(60));
    fn big() -> Vec<u8> {
        vec![1u8; 100_000]
    }
    let p = builder(StartMethod::Spawn)
        .max_result_size(50_000)
        .start(big)
        .unwrap();
    let e = p.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    let p = builder(StartMethod::Spawn)
        .max_result_size(200_000)
        .start(big)
        .unwrap();
    assert_eq!(p.join().unwrap().len(), 100_000);
}

#[test]
fn stalled_result_under_the_limit_keeps_memory_and_deadline() {
    let _s = serial();
    let _w = util::watchdog(Duration::from_secs(120));
    for method in METHODS {
        let probe = MemProbe::start();
        let mut p = builder(method)
            .start(forge_512mib_result_and_stall)
            .unwrap();
        let timeout = Duration::from_millis(1500);
        let t = Instant::now();
        let e = p.join_timeout(timeout).unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{method:?}: {e}");
        assert!(took < timeout + MARGIN, "{method:?}: join took {took:?}");
        probe.check(&format!("{method:?} stalled 512 MiB result"));
        p.kill().unwrap();
        let e = p.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Signaled, "{method:?}: {e}");
    }
}

#[test]
fn child_dying_mid_frame_is_a_truncated_result() {
    let _s = serial();
    let _w = util::watchdog(Duration::from_secs(120));
    for method in METHODS {
        let probe = MemProbe::start();
        let p = builder(method)
            .start(forge_result_and_die_mid_frame)
            .unwrap();
        let e = p.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exited, "{method:?}: {e}");
        assert!(
            e.to_string().contains("middle"),
            "{method:?}: not reported as truncated: {e}"
        );
        probe.check(&format!("{method:?} result cut mid-frame"));
    }
}

// ---- the process pool's wire ----

/// A pool record header (`tag u8, id u64, aux i64, nfds u32, len u64`).
fn pool_header(tag: u8, id: u64, nfds: u32, len: u64) -> Vec<u8> {
    let mut h = vec![tag];
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&0i64.to_le_bytes());
    h.extend_from_slice(&nfds.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

/// A task that writes a forged record on its worker's socket, then stalls (the
/// parent must act on the record, not on the task's end).
fn forge_pool_record(kind: u32) -> u32 {
    let fd = test_support::worker_socket().expect("running in a pool worker");
    // SAFETY: the worker's socket stays open while the worker runs tasks.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let rec = match kind {
        // A 2 GiB answer (over the 1 GiB limit).
        0 => pool_header(3, 0, 0, 2 << 30),
        // A length past the address space.
        1 => pool_header(3, 0, 0, u64::MAX),
        // Descriptors no message can carry.
        2 => pool_header(3, 0, u32::MAX, 8),
        // An unknown tag.
        _ => pool_header(200, 0, 0, 0),
    };
    write_all(fd, &rec);
    write_all(fd, &[0u8; 4096]);
    std::thread::sleep(Duration::from_secs(60));
    kind
}

fn plus_one(x: u32) -> u32 {
    x + 1
}

#[test]
fn forged_pool_records_fail_the_task_and_the_pool_goes_on() {
    let _s = serial();
    let _w = util::watchdog(Duration::from_secs(180));
    for method in METHODS {
        let pool = Pool::builder()
            .workers(1)
            .start_method(method)
            .build()
            .unwrap();
        for kind in 0..4u32 {
            let probe = MemProbe::start();
            let before = pool.worker_pids();
            let t = Instant::now();
            let e = pool.apply(forge_pool_record, kind).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{method:?} kind {kind}: {e}");
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{method:?} kind {kind}: took {:?}",
                t.elapsed()
            );
            probe.check(&format!("{method:?} forged pool record {kind}"));
            // The worker was replaced and the pool still works.
            assert_eq!(pool.apply(plus_one, 41).unwrap(), 42);
            assert_ne!(
                pool.worker_pids(),
                before,
                "{method:?}: worker not replaced"
            );
        }
    }
}
