//! `cpu_count()`: the CPUs this process may actually use.

use std::path::{Path, PathBuf};

/// The number of CPUs this process can use: the CPUs in its affinity mask
/// (`sched_getaffinity`, as set by `taskset` or a container's cpuset), further
/// limited by a cgroup v2 CPU quota (`cpu.max`, as set by `docker --cpus`), rounded
/// up. At least 1.
///
/// This is the default number of pool workers. Unlike Python's `os.cpu_count()`,
/// which counts every CPU of the machine, it does not oversubscribe a container.
///
/// # Examples
///
/// ```
/// let n = multiproc::pool::cpu_count();
/// assert!(n >= 1);
/// ```
pub fn cpu_count() -> usize {
    let affinity = rustix::thread::sched_getaffinity(None)
        .map(|set| set.count() as usize)
        .ok()
        .filter(|&n| n > 0);
    let quota = cgroup_quota();
    let n = match (affinity, quota) {
        (Some(a), Some(q)) => a.min(q),
        (Some(a), None) => a,
        (None, Some(q)) => q,
        (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    n.max(1)
}

/// The tightest `cpu.max` quota on the path from this process's cgroup to the root.
fn cgroup_quota() -> Option<usize> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cgroup_v2_path(&cgroup)?;
    let mut dir = PathBuf::from("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let root = Path::new("/sys/fs/cgroup");
    let mut best: Option<usize> = None;
    loop {
        if let Ok(s) = std::fs::read_to_string(dir.join("cpu.max")) {
            if let Some(q) = parse_cpu_max(&s) {
                best = Some(best.map_or(q, |b| b.min(q)));
            }
        }
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            return best;
        }
    }
}

/// The unified-hierarchy line of `/proc/self/cgroup` (`0::/path`).
fn cgroup_v2_path(s: &str) -> Option<&str> {
    s.lines().find_map(|l| l.strip_prefix("0::"))
}

/// `"max 100000"` → no limit; `"150000 100000"` → 2 CPUs (rounded up).
fn parse_cpu_max(s: &str) -> Option<usize> {
    let mut it = s.split_whitespace();
    let quota = it.next()?;
    let period: u64 = it.next()?.parse().ok()?;
    if quota == "max" || period == 0 {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    Some(quota.div_ceil(period).max(1) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_max() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("400000 100000"), Some(4));
        assert_eq!(parse_cpu_max("garbage"), None);
    }

    #[test]
    fn finds_the_unified_line() {
        let s = "12:cpu,cpuacct:/x\n0::/user.slice/a.scope\n";
        assert_eq!(cgroup_v2_path(s), Some("/user.slice/a.scope"));
    }

    #[test]
    fn count_is_within_affinity() {
        let n = cpu_count();
        let aff = rustix::thread::sched_getaffinity(None).unwrap().count() as usize;
        assert!(n >= 1 && n <= aff);
    }
}
