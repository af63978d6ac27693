//! Hog mode, shared by the benches (`#[path]`-included by `ipc.rs`, `pool_map.rs`,
//! `process_start.rs` and `benches/peers`): issue 11 asks for every row measured
//! again "with a CPU hog on the other core too", because spinning waiters that win on
//! an idle machine can lose when the CPU they spin for is taken.
//!
//! With `MULTIPROC_BENCH_HOG=1` (any value but empty or `0`), [`Hogs::from_env`]
//! starts one busy-looping child process per "other" CPU: every CPU the bench may run
//! on except the lowest-numbered one, each hog pinned to its CPU (on this project's
//! 2-vCPU machine: one hog on CPU 1). The bench's own processes are not pinned: they
//! share the hogged CPUs with the hogs at normal priority, and have the first CPU to
//! themselves. The hogs run from the call until the returned guard is dropped, which
//! kills (`SIGKILL`) and reaps each; a bench keeps the guard over its measured section.
//!
//! No hog outlives the bench: the guard's `Drop` runs when the bench panics (benches
//! unwind), and each hog asks for `SIGKILL` when its parent dies (`PR_SET_PDEATHSIG`,
//! then checks that the parent is still the one that forked it, closing the race with
//! a parent that died before the `prctl`). `PR_SET_PDEATHSIG` fires when the *thread*
//! that forked exits, so call [`Hogs::from_env`] from the bench's main thread.
//! Each hog names itself `mp-bench-hog` (`ps`, `/proc/PID/comm`).
//!
//! # Safety
//!
//! `fork` is called from the calling thread while others may run: the child calls only
//! async-signal-safe system calls (`prctl`, `getppid`, `sched_setaffinity`, `_exit`)
//! and then loops on a register, touching no lock and no heap; everything it needs (the
//! CPU set, the parent's pid) is built before the fork. `kill` and `waitpid` get pids
//! this guard forked and has not reaped yet, and pointers handed to libc point to live
//! locals for the whole call.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

/// The environment variable that turns hog mode on.
pub(crate) const HOG_ENV: &str = "MULTIPROC_BENCH_HOG";

/// Busy-looping child processes, killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Hogs {
    /// (pid, CPU) of each hog.
    hogs: Vec<(libc::pid_t, usize)>,
}

impl Hogs {
    /// Starts the hogs if `MULTIPROC_BENCH_HOG` asks for them, and prints what it
    /// started (one line on stdout, for the bench's log).
    pub(crate) fn from_env() -> Option<Hogs> {
        let on = std::env::var(HOG_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        if !on {
            return None;
        }
        let hogs = Hogs::start();
        println!("{}", hogs.describe());
        Some(hogs)
    }

    /// One hog on each CPU of this thread's affinity set but the first (one hog on
    /// CPU 0 if the set has a single CPU: then the bench has no CPU of its own).
    pub(crate) fn start() -> Hogs {
        let cpus = allowed_cpus();
        let targets: Vec<usize> = if cpus.len() > 1 {
            cpus[1..].to_vec()
        } else {
            cpus
        };
        let mut hogs = Hogs { hogs: Vec::new() };
        for cpu in targets {
            hogs.hogs.push((spawn_hog(cpu), cpu));
        }
        hogs
    }

    /// "hog mode: N busy processes (pids ...) on CPUs ...".
    pub(crate) fn describe(&self) -> String {
        let pids: Vec<String> = self.hogs.iter().map(|h| h.0.to_string()).collect();
        let cpus: Vec<String> = self.hogs.iter().map(|h| h.1.to_string()).collect();
        format!(
            "hog mode ({HOG_ENV}): {} busy process(es), pid {}, pinned to CPU {}",
            self.hogs.len(),
            pids.join(","),
            cpus.join(",")
        )
    }

    /// The hogs' pids (a bench that counts its children's CPU time leaves them out).
    #[allow(dead_code)] // Only `process_start` needs it.
    pub(crate) fn pids(&self) -> Vec<libc::pid_t> {
        self.hogs.iter().map(|h| h.0).collect()
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for &(pid, _) in &self.hogs {
            // SAFETY: `pid` is a child this guard forked and has not reaped, so the
            // signal cannot reach another process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for &(pid, _) in &self.hogs {
            let mut status = 0;
            loop {
                // SAFETY: `status` is a live local; `pid` is our unreaped child.
                let r = unsafe { libc::waitpid(pid, &mut status, 0) };
                if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
        }
    }
}

/// The CPUs this thread may run on, in increasing order.
fn allowed_cpus() -> Vec<usize> {
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is a live, zeroed `cpu_set_t` of the size passed.
    let rc = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set.as_mut_ptr())
    };
    if rc != 0 {
        return vec![0];
    }
    // SAFETY: zeroed and then filled by the kernel: initialized.
    let set = unsafe { set.assume_init() };
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE and `set` is a valid set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    if cpus.is_empty() {
        vec![0]
    } else {
        cpus
    }
}

/// Forks a child that spins on `cpu` until it is killed, or its parent dies.
fn spawn_hog(cpu: usize) -> libc::pid_t {
    // Everything the child needs, built before the fork.
    // SAFETY: all-zero bytes are a valid (empty) `cpu_set_t`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from `allowed_cpus`, below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let name = c"mp-bench-hog";
    // SAFETY: see the module's Safety section: the child only makes async-signal-safe
    // system calls and spins.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork for a CPU hog failed");
    if pid == 0 {
        // SAFETY: integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        // SAFETY: no preconditions.
        if unsafe { libc::getppid() } != parent {
            // SAFETY: no preconditions; ends this child at once.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: `name` is a static NUL-terminated string.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong) };
        // SAFETY: `set` is a live local of the size passed.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    pid
}
