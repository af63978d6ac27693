//! Facts about this process: its ids (pid, parent, effective user), thread count and
//! executable identity (from `/proc`), secure-execution mode (from the auxiliary vector);
//! and about the machine: how many tasks are runnable, on how many online CPUs.
//!
//! # Safety
//!
//! The two `unsafe` calls, `getauxval` and `sysconf`, take and return integers
//! (`getauxval` reads the auxiliary vector the kernel gave this process).
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/getpid.2.html>
//! - <https://man7.org/linux/man-pages/man2/geteuid.2.html>
//! - <https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html>
//! - <https://man7.org/linux/man-pages/man3/getauxval.3.html> (`AT_SECURE`)
//! - <https://man7.org/linux/man-pages/man5/proc_loadavg.5.html>
//! - <https://man7.org/linux/man-pages/man3/sysconf.3.html> (`_SC_NPROCESSORS_ONLN`)
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;

use super::fork::PerProcess;

/// This process's id.
pub(crate) fn pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// The parent's process id; `None` if the parent is outside this pid namespace.
pub(crate) fn ppid() -> Option<i32> {
    rustix::process::getppid().map(|p| p.as_raw_nonzero().get())
}

/// This process's effective user id.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `/proc/self/task`, kept open per process (a forked child opens its own).
static TASK_DIR: PerProcess<Option<File>> = PerProcess::new(|| None);

/// The number of threads in this process right now.
///
/// procfs computes the link count of `/proc/<pid>/task` at each `stat` as two plus the
/// number of threads, so one `fstat` of a directory kept open answers it; reading
/// `/proc/self/stat` costs several times more (the kernel formats 52 fields).
pub(crate) fn thread_count() -> io::Result<usize> {
    let mut guard = TASK_DIR.lock();
    if guard.is_none() {
        *guard = Some(File::open("/proc/self/task")?);
    }
    let dir = guard.as_ref().expect("set above");
    let links = dir.metadata()?.nlink();
    match usize::try_from(links.saturating_sub(2)) {
        Ok(n) if n >= 1 => Ok(n),
        _ => thread_count_from_stat(),
    }
}

/// The slow path: field 20 of `/proc/self/stat`.
fn thread_count_from_stat() -> io::Result<usize> {
    let stat = std::fs::read("/proc/self/stat")?;
    parse_num_threads(&stat).ok_or_else(|| io::Error::other("unexpected /proc/self/stat format"))
}

/// Field 20 (`num_threads`), counted after the `)` that closes the command name,
/// which may itself contain spaces and parentheses.
fn parse_num_threads(stat: &[u8]) -> Option<usize> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After ")": state(3) ppid(4) ... num_threads(20) => index 17 of the rest.
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

/// An identity for the running executable: device, inode and size of `/proc/self/exe`.
///
/// A child that re-executes `/proc/self/exe` runs the very same file, so this matches;
/// a different build at another path does not.
///
/// The file is opened and then `fstat`ed, not `stat`ed by path: under valgrind an `open`
/// of `/proc/self/exe` yields the client program, but a `stat` sees valgrind's own
/// binary, so a child run under memcheck (`ci/valgrind.sh`) would be refused as a
/// different build. An executable that may not be read is still `stat`ed.
pub(crate) fn exe_identity() -> io::Result<(u64, u64, u64)> {
    let m = match std::fs::File::open("/proc/self/exe") {
        Ok(exe) => exe.metadata()?,
        Err(_) => std::fs::metadata("/proc/self/exe")?,
    };
    Ok((m.dev(), m.ino(), m.size()))
}

/// How many tasks (threads) of the whole machine are runnable right now, this one
/// included: the first half of the fourth field of `/proc/loadavg` ("4/312"), which
/// the kernel computes at each read. The file is opened for each read (a few µs; the
/// caller samples at most once a millisecond), so the process keeps no descriptor a
/// user would count as leaked.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn runnable_tasks() -> io::Result<u32> {
    use std::io::Read;
    let mut buf = [0u8; 128];
    let n = File::open("/proc/loadavg")?.read(&mut buf)?;
    parse_runnable(&buf[..n]).ok_or_else(|| io::Error::other("unexpected /proc/loadavg format"))
}

/// The runnable count of a `/proc/loadavg` line: "0.50 0.40 0.30 4/312 9876" -> 4.
#[cfg_attr(loom, allow(dead_code))]
fn parse_runnable(line: &[u8]) -> Option<u32> {
    let line = std::str::from_utf8(line).ok()?;
    let (running, _) = line.split_ascii_whitespace().nth(3)?.split_once('/')?;
    running.parse().ok()
}

/// How many CPUs are online (at least 1).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn online_cpus() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    static CACHE: AtomicU32 = AtomicU32::new(0);
    match CACHE.load(Relaxed) {
        0 => {
            // SAFETY: `sysconf` takes an integer name and returns an integer (-1 if
            // the name is unknown).
            let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
            let n = u32::try_from(n).unwrap_or(1).max(1);
            CACHE.store(n, Relaxed);
            n
        }
        n => n,
    }
}

/// Whether this process runs in secure-execution mode (`AT_SECURE`): it was executed
/// set-user-ID or set-group-ID, with file capabilities, or under a security module that
/// asked for it. Its environment then comes from a less privileged process, and the
/// dynamic loader ignores `LD_PRELOAD` and the like.
pub(crate) fn secure_execution() -> bool {
    // SAFETY: `getauxval` has no preconditions; an absent entry reads as 0.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_stat_with_odd_comm() {
        let line = b"123 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 7 0 0";
        assert_eq!(super::parse_num_threads(line), Some(7));
    }

    #[test]
    fn parses_loadavg() {
        assert_eq!(
            super::parse_runnable(b"0.50 0.40 0.30 4/312 9876\n"),
            Some(4)
        );
        assert_eq!(super::parse_runnable(b"0.50 0.40 0.30 4 9876"), None);
        assert_eq!(super::parse_runnable(b"garbage"), None);
        // This thread is running while it reads.
        assert!(super::runnable_tasks().unwrap() >= 1);
        assert!(super::online_cpus() >= 1);
    }

    #[test]
    fn a_test_binary_is_not_secure() {
        assert!(!super::secure_execution());
    }

    #[test]
    fn counts_threads() {
        let before = super::thread_count().unwrap();
        assert!(before >= 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        let during = super::thread_count().unwrap();
        assert!(during >= 2, "{during}");
        assert!(super::thread_count_from_stat().unwrap() >= 2);
        tx.send(()).unwrap();
        t.join().unwrap().unwrap();
    }
}
