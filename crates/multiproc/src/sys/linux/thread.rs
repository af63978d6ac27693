//! Thread identity for lock ownership: a cached `gettid`, each thread's start time,
//! and "is thread `tid` (still the same thread) alive?".
//!
//! Lock words hold the owner's kernel thread id. A thread id is reused after its
//! thread exits, so owners also publish their *start time* (field 22 of
//! `/proc/<tid>/stat`, in clock ticks since boot): a live thread with the same id but
//! another start time is a different thread, and the recorded owner is dead.
//!
//! The id is cached per thread and re-read after a fork (the child's thread has a new
//! id): glibc's `atfork` child handler and multiproc's own raw `clone` path both call
//! [`forget_after_fork`].
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/gettid.2.html>
//! - <https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html>
//! - <https://man7.org/linux/man-pages/man3/pthread_atfork.3.html>
//!
//! # Safety
//!
//! One unsafe call registers an `atfork` handler that only bumps an atomic
//! counter, which is async-signal-safe; the others are glibc's `sched_getcpu`, which
//! takes no arguments, and `sched_getscheduler`, which takes and returns integers. ("Is thread `tid` alive" is rustix's safe `kill(tid, 0)`.)
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Bumped in every forked child; a cached id from an older generation is stale.
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// `(generation, tid, start_time)`; `tid == 0` means "not read yet".
    static CACHE: Cell<(u32, u32, u64)> = const { Cell::new((0, 0, 0)) };
}

extern "C" fn child_after_fork() {
    forget_after_fork();
}

/// Invalidates every thread's cached id. Async-signal-safe: called in a fresh child
/// between `fork` and anything else.
pub(crate) fn forget_after_fork() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// How many forks separate this process from the one that first used thread ids:
/// a value saved before a fork differs in the child, never in the parent.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Registers the `atfork` child handler that bumps the fork generation, once per
/// process image (a forked child inherits the registration).
///
/// A flag rather than a `Once`: a `Once` caught running by a fork would block the
/// child forever. A thread that finds the flag set while another is still
/// registering may miss a fork in that instant; callers that must not also compare
/// pids.
pub(crate) fn watch_forks() {
    static ATFORK: AtomicBool = AtomicBool::new(false);
    if ATFORK.load(Ordering::Relaxed) || ATFORK.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: `child_after_fork` is a valid `extern "C" fn()` that lives for the
    // whole program and is async-signal-safe; null prepare/parent handlers are
    // allowed.
    let rc = unsafe { libc::pthread_atfork(None, None, Some(child_after_fork)) };
    debug_assert_eq!(rc, 0, "pthread_atfork failed");
}

/// The calling thread's kernel id (`gettid`), read afresh (see
/// [`current_with_start`] for the cached one).
pub(crate) fn gettid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

#[cold]
fn refresh(generation: u32) -> (u32, u64) {
    watch_forks();
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    let tid = u32::try_from(tid).expect("thread ids are positive");
    let start = stat(tid).map_or(0, |s| s.start_time);
    CACHE.with(|c| c.set((generation, tid, start)));
    (tid, start)
}

/// The calling thread's kernel id and start time, cached (a few nanoseconds); (`0` if `/proc` is unavailable).
#[inline]
pub(crate) fn current_with_start() -> (u32, u64) {
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    let (g, tid, start) = CACHE.with(Cell::get);
    if tid != 0 && g == generation {
        (tid, start)
    } else {
        refresh(generation)
    }
}

/// What `/proc/<tid>/stat` says about a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// State letter (`R`, `S`, `D`, `Z`, `X`, …).
    pub(crate) state: u8,
    /// Start time in clock ticks after boot.
    pub(crate) start_time: u64,
}

/// Reads `/proc/<tid>/stat`; `None` if there is no such thread (or no `/proc`).
pub(crate) fn stat(tid: u32) -> Option<Stat> {
    let buf = std::fs::read(format!("/proc/{tid}/stat")).ok()?;
    parse_stat(&buf)
}

fn parse_stat(buf: &[u8]) -> Option<Stat> {
    let close = buf.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&buf[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // After ")": state is field 3, starttime field 22 => 19 fields after state.
    let state = *fields.next()?.as_bytes().first()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// Returns `true` only if the thread that published (`tid`, `start_time`) has
/// certainly ended: no thread `tid` exists (by `/proc` and by `kill(tid, 0)`), it is
/// a zombie, or thread `tid` is now another thread (different start time).
///
/// `start_time == 0` means "unknown" and only the first two tests apply. If this
/// process cannot read its own `/proc` entry, nothing is ever declared dead: a false
/// "dead" would hand a held lock to a second owner.
pub(crate) fn is_dead(tid: u32, start_time: u64) -> bool {
    if current_with_start().1 == 0 {
        return false;
    }
    match stat(tid) {
        Some(s) => {
            matches!(s.state, b'Z' | b'X' | b'x') || (start_time != 0 && s.start_time != start_time)
        }
        None => {
            let Some(pid) = i32::try_from(tid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            else {
                return false;
            };
            // `kill(tid, 0)`: sends nothing, only checks that the target exists.
            rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        }
    }
}

/// The CPU this thread runs on, or `None` if the kernel cannot say.
///
/// Through glibc's `sched_getcpu` rather than rustix's: rustix reads the vDSO from the
/// auxiliary vector itself, which crashes under valgrind (its vDSO is not mapped
/// where the auxiliary vector says); glibc's call works there too.
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: `sched_getcpu` takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// Whether this thread runs under a real-time policy (`SCHED_FIFO`, `SCHED_RR`,
/// `SCHED_DEADLINE`, as `chrt` sets): then ordinary runnable tasks never take its CPU.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn is_realtime() -> bool {
    // SAFETY: `sched_getscheduler` takes a pid (0: this thread) and returns the
    // policy or -1; it touches no memory of ours.
    let policy = unsafe { libc::sched_getscheduler(0) };
    // SCHED_DEADLINE is 6 (not in every libc version's constants).
    matches!(policy, libc::SCHED_FIFO | libc::SCHED_RR | 6)
}

/// How many CPUs this thread may run on (its affinity mask), or `None` if the kernel
/// cannot say.
pub(crate) fn usable_cpus() -> Option<usize> {
    rustix::thread::sched_getaffinity(None)
        .ok()
        .map(|set| set.count() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_thread_is_not_realtime() {
        // Test runners start threads under the default policy (`SCHED_OTHER`).
        assert!(!is_realtime());
    }

    #[test]
    fn usable_cpus_are_counted() {
        let n = usable_cpus().expect("the affinity mask is readable");
        assert!(n >= 1);
    }

    #[test]
    fn parses_stat() {
        let line = b"42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 20 21";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: b'S',
                start_time: 777
            })
        );
    }

    #[test]
    fn current_is_cached_and_alive() {
        let (tid, start) = current_with_start();
        assert_eq!(current_with_start().0, tid);
        assert_ne!(start, 0);
        assert!(!is_dead(tid, start));
        assert!(is_dead(tid, start + 1), "same id, other start time");
    }

    #[test]
    fn exited_thread_is_dead() {
        let (tid, start) = std::thread::spawn(current_with_start).join().unwrap();
        assert_ne!(tid, current_with_start().0);
        // `join` returns when the kernel clears the thread's tid word, a moment before
        // the thread is fully gone.
        let t0 = std::time::Instant::now();
        while !is_dead(tid, start) {
            assert!(t0.elapsed() < std::time::Duration::from_secs(5));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
