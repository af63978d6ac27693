//! Resource limits a process sets on itself (`setrlimit(2)`): address space and CPU
//! time.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/setrlimit.2.html>
//! - <https://man7.org/linux/man-pages/man2/clock_gettime.2.html> (`CLOCK_PROCESS_CPUTIME_ID`)

use std::io;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use rustix::time::{clock_gettime, ClockId};

/// Limits this process's address space (`RLIMIT_AS`, soft and hard) to `bytes`.
///
/// # Errors
///
/// `EPERM` when raising a hard limit without the privilege.
pub(crate) fn limit_address_space(bytes: u64) -> io::Result<()> {
    Ok(setrlimit(
        Resource::As,
        Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        },
    )?)
}

/// Sets the soft `RLIMIT_CPU` so that this process may use `secs` more seconds of CPU
/// time (rounded up to the next whole second it has used), never above the hard
/// limit; past it, the kernel sends `SIGXCPU`. Only the soft limit moves: an
/// unprivileged process cannot raise a hard limit it has lowered.
///
/// # Errors
///
/// `setrlimit`'s errors.
pub(crate) fn limit_cpu_from_now(secs: u64) -> io::Result<()> {
    let used = clock_gettime(ClockId::ProcessCPUTime);
    let soft = (used.tv_sec.max(0) as u64) + secs + u64::from(used.tv_nsec > 0);
    let hard = getrlimit(Resource::Cpu).maximum;
    Ok(setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(hard.map_or(soft, |h| soft.min(h))),
            maximum: hard,
        },
    )?)
}
