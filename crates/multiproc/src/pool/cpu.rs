//! `cpu_count()`: the CPUs this process may actually use.

/// The number of CPUs this process can use: [`std::thread::available_parallelism`],
/// which on Linux counts the CPUs in the calling thread's affinity mask
/// (`sched_getaffinity`, as set by `taskset` or a container's cpuset) and limits that
/// by the cgroup CPU quota (v2 `cpu.max` or v1 `cpu.cfs_quota_us`, as set by
/// `docker --cpus`, the tightest on the path to the root), rounded down. At least 1.
///
/// This is the default number of pool workers. Unlike Python's `os.cpu_count()`,
/// which counts every CPU of the machine, it does not oversubscribe a container.
/// A fractional quota rounds down (1.5 CPUs gives 1 worker): a pool that wants the
/// last half CPU asks for its workers explicitly.
///
/// # Examples
///
/// ```
/// let n = multiproc::pool::cpu_count();
/// assert!(n >= 1);
/// ```
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_within_affinity() {
        let n = cpu_count();
        let aff = crate::sys::thread::usable_cpus().unwrap();
        assert!(n >= 1 && n <= aff);
    }

    /// A thread pinned to one CPU (as `taskset -c 0` pins a program) counts one.
    #[test]
    fn follows_the_affinity_mask() {
        std::thread::spawn(|| {
            let mut one = rustix::thread::CpuSet::new();
            let cpu = (0..rustix::thread::CpuSet::MAX_CPU)
                .find(|&c| rustix::thread::sched_getaffinity(None).unwrap().is_set(c))
                .unwrap();
            one.set(cpu);
            rustix::thread::sched_setaffinity(None, &one).unwrap();
            assert_eq!(cpu_count(), 1);
        })
        .join()
        .unwrap();
    }
}
