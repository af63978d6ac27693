//! Memory figures of a process from `/proc/PID/smaps_rollup`.
//!
//! USS (unique set size) is the memory that would be freed if the process exited:
//! `Private_Clean + Private_Dirty`. PSS shares each shared page among its users; RSS
//! counts every resident page in full.

use std::io;

/// Resident memory of one process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    /// Resident set size.
    pub(crate) rss_kib: f64,
    /// Proportional set size.
    pub(crate) pss_kib: f64,
    /// Unique set size.
    pub(crate) uss_kib: f64,
}

/// Reads the usage of process `pid`, or of this process if `None`.
///
/// # Errors
///
/// If the file cannot be read (no such process, or a kernel without `smaps_rollup`).
pub(crate) fn usage(pid: Option<i32>) -> io::Result<Usage> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/smaps_rollup"),
        None => "/proc/self/smaps_rollup".to_owned(),
    };
    parse(&std::fs::read_to_string(path)?)
}

fn parse(text: &str) -> io::Result<Usage> {
    let field = |name: &str| -> Option<f64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
    };
    let missing = || io::Error::new(io::ErrorKind::InvalidData, "smaps_rollup without Rss/Pss");
    let rss_kib = field("Rss").ok_or_else(missing)?;
    let pss_kib = field("Pss").ok_or_else(missing)?;
    let uss_kib = field("Private_Clean").unwrap_or(0.0) + field("Private_Dirty").unwrap_or(0.0);
    Ok(Usage {
        rss_kib,
        pss_kib,
        uss_kib,
    })
}

/// The 1-minute load average, if `/proc/loadavg` is readable.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The running kernel's release (`uname -r`).
pub(crate) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_a_rollup() {
        let text = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  2048 kB\nPss:  1024 kB\n\
                    Pss_Anon: 10 kB\nShared_Clean: 1000 kB\nPrivate_Clean: 24 kB\nPrivate_Dirty: 100 kB\n";
        let u = super::parse(text).unwrap();
        assert_eq!((u.rss_kib, u.pss_kib, u.uss_kib), (2048.0, 1024.0, 124.0));
    }

    #[test]
    fn reads_this_process() {
        let u = super::usage(None).unwrap();
        assert!(u.rss_kib > 0.0 && u.uss_kib > 0.0);
    }
}
