//! "When to use which": rules over the figures just measured.
//!
//! Each rule reads figures from the report, and gives advice only if they were
//! measured; the advice carries the figures it rests on (`basis`). Nothing here is
//! fixed text with fixed numbers.

use std::collections::BTreeMap;

use super::model::{Advice, Report};
use super::stats::fmt_num;

/// Share of a task's time that starting or feeding its worker may take.
const OVERHEAD_SHARE: f64 = 0.10;

/// Derives the advice from the report's sections.
pub(crate) fn derive(r: &Report) -> Vec<Advice> {
    let get = |s: &str, g: &str, m: &str| r.section(s).and_then(|s| s.get(g, m));
    let n = r.machine.workers as f64;
    let mut out = Vec::new();
    let basis = |items: &[(&str, f64)]| -> BTreeMap<String, f64> {
        items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };

    // CPU-bound: threads or processes, from the measured speedups.
    if let (Some(st), Some(sp)) = (
        get("cpu_bound", "speedup", "threads"),
        get("cpu_bound", "speedup", "processes"),
    ) {
        let b = basis(&[
            ("speedup_threads_x", st),
            ("speedup_processes_x", sp),
            ("workers", n),
        ]);
        let (pick, text) = if st.max(sp) < 1.1 {
            (
                "sequential",
                format!(
                    "Neither {n} threads ({}x) nor {n} processes ({}x) sped up CPU-bound work on \
                     this machine as loaded now: keep such work sequential here, or measure \
                     again when the machine is quieter.",
                    fmt_num(st),
                    fmt_num(sp)
                ),
            )
        } else if st >= 0.9 * sp {
            (
                "threads",
                format!(
                    "CPU-bound work: {n} threads ran {}x faster than sequential code and {n} \
                     processes {}x. Rust threads run in parallel (there is no GIL), so use \
                     threads, and processes only when you need the isolation below.",
                    fmt_num(st),
                    fmt_num(sp)
                ),
            )
        } else {
            (
                "processes",
                format!(
                    "CPU-bound work: {n} processes ran {}x faster than sequential code, {n} \
                     threads only {}x: on this machine processes scale better for this work.",
                    fmt_num(sp),
                    fmt_num(st)
                ),
            )
        };
        out.push(Advice {
            id: "cpu_bound",
            situation: "CPU-bound work",
            pick,
            headline: format!(
                "speedup: threads {}x, processes {}x",
                fmt_num(st),
                fmt_num(sp)
            ),
            text,
            basis: b,
        });
    }

    // One worker per task: how long a task must be for its start to be cheap.
    if let (Some(t), Some(p)) = (
        get("starting", "start_join", "thread"),
        get("starting", "start_join", "forkserver"),
    ) {
        let k = (1.0 - OVERHEAD_SHARE) / OVERHEAD_SHARE;
        let min_proc_us = k * p;
        let min_thread_us = k * t;
        out.push(Advice {
            id: "worker_per_task",
            situation: "one new worker per task",
            pick: "process_pool",
            headline: format!(
                "start + join: thread {} us, process {} us",
                fmt_num(t),
                fmt_num(p)
            ),
            text: format!(
                "Starting and joining a process (forkserver) costs {} us here, a thread {} us. \
                 For that to stay under {}% of a task, a task in a new process must run at \
                 least {} ms, one in a new thread at least {} us. Shorter tasks: reuse \
                 workers (a pool) instead of starting one per task.",
                fmt_num(p),
                fmt_num(t),
                fmt_num(OVERHEAD_SHARE * 100.0),
                fmt_num(min_proc_us / 1000.0),
                fmt_num(min_thread_us)
            ),
            basis: basis(&[
                ("start_process_forkserver_us", p),
                ("start_thread_us", t),
                ("min_task_process_us", min_proc_us),
                ("min_task_thread_us", min_thread_us),
            ]),
        });
    }

    if let Some(a) = pool_break_even(r) {
        out.push(a);
    }
    // Speedups measured on a busy machine say more about the other load than about
    // threads and processes.
    if r.machine.busy_warning().is_some() {
        let load = r
            .machine
            .load_before
            .into_iter()
            .chain(r.machine.load_after)
            .fold(0.0, f64::max);
        for a in out
            .iter_mut()
            .filter(|a| a.id == "cpu_bound" || a.id == "process_pool_break_even")
        {
            a.text.push_str(&format!(
                " Caution: the machine was busy (load {load:.2} on {} CPUs) while this was \
                 measured; measure again on a quiet machine before relying on the speedups.",
                r.machine.cpus
            ));
            a.basis.insert("load_average".into(), load);
        }
    }

    // Many waiting tasks.
    if let (Some(t), Some(p)) = (
        get("io_bound", "overhead", "threads"),
        get("io_bound", "overhead", "processes"),
    ) {
        let threads_win = t <= p;
        out.push(Advice {
            id: "io_bound",
            situation: "many tasks that mostly wait (I/O)",
            pick: if threads_win { "threads" } else { "processes" },
            headline: format!(
                "overhead per task: thread {} us, process {} us",
                fmt_num(t),
                fmt_num(p)
            ),
            text: format!(
                "Tasks that wait overlapped in both, but each cost {} us of overhead in a \
                 thread and {} us in a process: {}.",
                fmt_num(t),
                fmt_num(p),
                if threads_win {
                    format!(
                        "use threads (or async I/O) for waiting, {}x cheaper here",
                        fmt_num(p / t.max(1e-9))
                    )
                } else {
                    "processes were no worse here, so choose by the other criteria".to_owned()
                }
            ),
            basis: basis(&[("overhead_thread_us", t), ("overhead_process_us", p)]),
        });
    }

    // Memory per idle worker.
    if let (Some(t), Some(p)) = (
        get("memory", "uss", "thread"),
        get("memory", "uss", "forkserver"),
    ) {
        let spawn = get("memory", "uss", "spawn");
        let mut b = basis(&[("uss_thread_kib", t), ("uss_process_forkserver_kib", p)]);
        if let Some(s) = spawn {
            b.insert("uss_process_spawn_kib".into(), s);
        }
        out.push(Advice {
            id: "memory",
            situation: "many idle or long-lived workers",
            pick: if t <= p { "threads" } else { "processes" },
            headline: format!(
                "idle worker: thread {} KiB, process {} KiB",
                fmt_num(t),
                fmt_num(p)
            ),
            text: format!(
                "An idle thread costs {} KiB of unique memory here, an idle process {} KiB \
                 (forkserver){}: 1,000 workers are {} MiB as threads, {} MiB as processes. \
                 Memory the workers allocate themselves comes on top, and in processes it \
                 is never shared.",
                fmt_num(t),
                fmt_num(p),
                spawn.map_or_else(String::new, |s| format!(", {} KiB (spawn)", fmt_num(s))),
                fmt_num(t * 1000.0 / 1024.0),
                fmt_num(p * 1000.0 / 1024.0)
            ),
            basis: b,
        });
    }

    // Sharing state.
    if let Some(a) = get("sharing", "rate", "threads_atomic") {
        let value = get("sharing", "rate", "processes_value_lock")
            .map(|v| (v, "an shm::Value under its lock"));
        let lost = r
            .section("sharing")
            .and_then(|s| s.groups.iter().find(|g| g.id == "final"))
            .and_then(|g| g.metrics.iter().find(|m| m.id == "processes_private"))
            .and_then(|m| m.extra.get("lost_updates").copied());
        let mut b = basis(&[("rate_threads_atomic_m_per_s", a)]);
        let mut headline = format!("threads: {} M updates/s", fmt_num(a));
        let mut text = format!(
            "Shared state: threads updated one counter at {} M/s with an atomic.",
            fmt_num(a)
        );
        if let Some((v, what)) = value {
            b.insert("rate_processes_locked_m_per_s".into(), v);
            headline.push_str(&format!(", processes with a lock: {} M/s", fmt_num(v)));
            text.push_str(&format!(
                " Processes sharing {what} managed {} M/s ({}x slower).",
                fmt_num(v),
                fmt_num(a / v)
            ));
        }
        if let Some(l) = lost {
            b.insert("lost_updates_without_shm".into(), l);
            headline.push_str(&format!("; without shared memory {} lost", fmt_num(l)));
            text.push_str(&format!(
                " Processes without shared memory lost {} of their updates to the parent: \
                 state that many workers update is natural in threads, and in processes \
                 needs shared memory or messages.",
                fmt_num(l)
            ));
        }
        out.push(Advice {
            id: "sharing",
            situation: "workers that update shared state",
            pick: "threads",
            headline,
            text,
            basis: b,
        });
    }

    // Crash-prone code.
    if let (Some(p), Some(t)) = (
        get("fault_isolation", "survivors", "process"),
        get("fault_isolation", "survivors", "thread"),
    ) {
        let isolated = p > t;
        out.push(Advice {
            id: "fault_isolation",
            situation: "code that may crash (unsafe code, FFI, C libraries)",
            pick: if isolated { "processes" } else { "either" },
            headline: format!(
                "healthy workers finished next to a segfault: thread {}, process {}",
                fmt_num(t),
                fmt_num(p)
            ),
            text: if isolated {
                format!(
                    "A segfault in a worker thread took the whole program down ({} healthy \
                     workers finished); in a worker process it ended only that process ({} \
                     finished). Run code that may crash in processes.",
                    fmt_num(t),
                    fmt_num(p)
                )
            } else {
                format!(
                    "The fault demonstration did not separate the two ({} healthy workers \
                     finished next to a faulty process, {} next to a faulty thread).",
                    fmt_num(p),
                    fmt_num(t)
                )
            },
            basis: basis(&[
                ("finished_next_to_process", p),
                ("finished_next_to_thread", t),
            ]),
        });
    }
    out
}

/// The task size above which a process pool beats sequential code, from the pool's
/// measured cost per task and the measured speedup.
///
/// With a pool reaching speedup `S` on CPU-bound work and costing `c` of wall time per
/// task (measured with trivial tasks, all workers busy), a batch of `k` tasks of length
/// `t` takes about `k·t/S + k·c` against `k·t` sequentially: the pool wins for
/// `t > c·S / (S − 1)`. Starting the pool (`P`, create + first result) is repaid once
/// the batch's sequential time `k·t` exceeds `P·S / (S − 1)`.
fn pool_break_even(r: &Report) -> Option<Advice> {
    let get = |s: &str, g: &str, m: &str| r.section(s).and_then(|s| s.get(g, m));
    let n = r.machine.workers as f64;
    // The pool's own figures when it was measured, else a process started per task.
    let (speedup, c, c_what, start_ms) = match (
        get("cpu_bound", "speedup", "process_pool"),
        get("cpu_bound", "pool_task", "process_pool"),
        get("cpu_bound", "pool_ready", "process_pool"),
    ) {
        (Some(s), Some(c), Some(p)) => (s, c, "measured with trivial tasks", p),
        _ => {
            let s = get("cpu_bound", "speedup", "processes")?;
            let start = get("starting", "start_join", "forkserver")?;
            (s, start, "a process started per task", start * n / 1000.0)
        }
    };
    let mut b: BTreeMap<String, f64> = [
        ("speedup_process_pool_x".to_owned(), speedup),
        ("cost_per_task_us".to_owned(), c),
        ("pool_start_ms".to_owned(), start_ms),
        ("workers".to_owned(), n),
    ]
    .into_iter()
    .collect();
    if speedup <= 1.05 {
        return Some(Advice {
            id: "process_pool_break_even",
            situation: "many small CPU-bound tasks",
            pick: "sequential",
            headline: format!("processes: only {}x speedup", fmt_num(speedup)),
            text: format!(
                "{n} worker processes reached only {}x on CPU-bound work here, so no task \
                 size makes a process pool pay off on this machine as loaded now.",
                fmt_num(speedup)
            ),
            basis: b,
        });
    }
    let gain = speedup / (speedup - 1.0);
    let t_star = c * gain;
    let batch_ms = start_ms * gain;
    b.insert("break_even_task_us".into(), t_star);
    b.insert("break_even_batch_ms".into(), batch_ms);
    let thread_part = match (
        get("cpu_bound", "speedup", "thread_pool").or(get("cpu_bound", "speedup", "threads")),
        get("cpu_bound", "pool_task", "thread_pool"),
    ) {
        (Some(st), Some(ct)) if st > 1.05 => {
            let tt = ct * st / (st - 1.0);
            b.insert("break_even_task_threads_us".into(), tt);
            format!(
                " The same rule for a thread Pool ({}x, {} us per task) gives {} us: tasks \
                 between the two sizes pay off in threads only.",
                fmt_num(st),
                fmt_num(ct),
                fmt_num(tt)
            )
        }
        _ => String::new(),
    };
    Some(Advice {
        id: "process_pool_break_even",
        situation: "many small CPU-bound tasks",
        pick: "process_pool",
        headline: format!("pays off for tasks above {} us", fmt_num(t_star)),
        text: format!(
            "A pool of {n} processes beats sequential code on tasks longer than about {} us \
             here: {} us of overhead per task ({c_what}), times S/(S-1) with the measured speedup S = \
             {}x. Starting the pool (about {} ms) is repaid by a batch that would take {} ms \
             sequentially.{thread_part}",
            fmt_num(t_star),
            fmt_num(c),
            fmt_num(speedup),
            fmt_num(start_ms),
            fmt_num(batch_ms)
        ),
        basis: b,
    })
}
