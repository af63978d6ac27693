//! "When to use which": rules over the figures just measured.
//!
//! Each rule reads figures from the report, and gives advice only if they were
//! measured; the advice carries the figures it rests on (`basis`) and the contenders it
//! compared, each with its range over the rounds. Every pick comes out of
//! [`verdict::decide`]: a winner only where its range is clear of the others', else
//! `no_clear_winner` with the numbers; a figure flagged impossible takes no part.
//! Nothing here is fixed text with fixed numbers.

use std::collections::BTreeMap;

use super::model::{Advice, Better, Contender, Report, Section};
use super::stats::fmt_num;
use super::verdict::{self, Outcome};

/// Share of a task's time that starting or feeding its worker may take.
const OVERHEAD_SHARE: f64 = 0.10;

/// The pick for no clear winner.
const NO_CLEAR_WINNER: &str = "no_clear_winner";

/// Derives the advice from the report's sections.
pub(crate) fn derive(r: &Report) -> Vec<Advice> {
    let mut out = Vec::new();
    out.extend(cpu_bound(r));
    out.extend(worker_per_task(r));
    out.extend(pool_break_even(r));
    // Speedups measured on a busy machine say more about the other load than about
    // threads and processes: the share of the CPUs a parallel run gets against a
    // sequential one depends on how many other tasks compete, and that drifts between
    // runs more than between the rounds of one run (release, load 13 on 2 CPUs: a
    // process pool at 0.40x..0.89x in one run, 1.28x..1.57x in the next). So no speedup
    // pick is clear on a busy machine; the figures stay, with why.
    if r.machine.busy_warning().is_some() {
        let load = r
            .machine
            .load_before
            .into_iter()
            .chain(r.machine.load_after)
            .fold(0.0, f64::max);
        let cpus = r.machine.cpus;
        for a in out
            .iter_mut()
            .filter(|a| a.id == "cpu_bound" || a.id == "process_pool_break_even")
        {
            a.basis.insert("load_average".into(), load);
            if !a.clear {
                a.text.push_str(&format!(
                    " Caution: the machine was busy (load {load:.2} on {cpus} CPUs) while \
                     this was measured; measure again on a quiet machine before relying on \
                     the speedups."
                ));
                continue;
            }
            let figures: Vec<String> = a
                .contenders
                .iter()
                .filter(|c| c.pick != "sequential")
                .map(verdict::describe)
                .collect();
            a.text = format!(
                "No clear winner at this noise level: the machine was busy (load {load:.2} \
                 on {cpus} CPUs) while this was measured, and a speedup measured on a busy \
                 machine depends on how many other tasks compete for the CPUs more than on \
                 threads or processes, so it changes from run to run. This run measured {} \
                 (the ranges alone would have picked {}). Measure again on a quiet machine.",
                figures.join(" and "),
                a.pick.replace('_', " ")
            );
            a.headline.push_str(" (busy machine)");
            a.pick = NO_CLEAR_WINNER;
            a.clear = false;
        }
    }
    out.extend(io_bound(r));
    out.extend(memory(r));
    out.extend(sharing(r));
    out.extend(fault_isolation(r));
    out
}

fn basis(items: &[(&str, f64)]) -> BTreeMap<String, f64> {
    items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Adds `{stem}_{unit}` (the median), `{stem}_min_{unit}` and `{stem}_max_{unit}` (its
/// range) of `c` to `b`.
fn add_range(b: &mut BTreeMap<String, f64>, stem: &str, unit: &str, c: &Contender) {
    b.insert(format!("{stem}_{unit}"), c.median);
    b.insert(format!("{stem}_min_{unit}"), c.min);
    b.insert(format!("{stem}_max_{unit}"), c.max);
}

/// The sequential baseline of a speedup comparison: 1x by definition.
fn sequential(rounds: u32) -> Contender {
    Contender {
        metric: "cpu_bound/time/sequential".into(),
        label: "sequential".into(),
        pick: "sequential",
        unit: "x",
        median: 1.0,
        min: 1.0,
        max: 1.0,
        rounds,
        paired: None,
        excluded: None,
    }
}

/// The pick of an outcome, and whether it is clear.
fn pick_of(o: &Outcome, cs: &[Contender]) -> (&'static str, bool) {
    match o {
        Outcome::Winner(i) => (cs[*i].pick, true),
        _ => (NO_CLEAR_WINNER, false),
    }
}

/// The text for an outcome that is not a winner: the overlap, or that nothing usable
/// was left; then the contenders left out.
fn undecided(o: &Outcome, cs: &[Contender]) -> String {
    let head = match o {
        Outcome::NoClearWinner(tied) => verdict::no_clear_winner(cs, tied),
        _ => "Nothing left to compare: every other choice's figure was left out.".to_owned(),
    };
    head + &verdict::excluded(cs)
}

fn section<'a>(r: &'a Report, id: &str) -> Option<&'a Section> {
    r.section(id)
}

/// CPU-bound: sequential, threads or processes, from the paired speedups.
fn cpu_bound(r: &Report) -> Option<Advice> {
    let sec = section(r, "cpu_bound")?;
    let st = verdict::contender(sec, "speedup", "threads", "threads")?;
    let sp = verdict::contender(sec, "speedup", "processes", "processes")?;
    let n = r.machine.workers;
    let cs = [sequential(st.rounds.max(sp.rounds)), st, sp];
    let (st, sp) = (&cs[1], &cs[2]);
    let o = verdict::decide(&cs, Better::Higher);
    let (pick, clear) = pick_of(&o, &cs);
    let figures = format!(
        "{} and {} (speedups over sequential code, paired round by round)",
        verdict::describe(st),
        verdict::describe(sp)
    );
    let text = match pick {
        "sequential" => format!(
            "CPU-bound work: {figures}: both below 1x over every round, so keep such work \
             sequential on this machine as loaded now, or measure again when it is quieter."
        ),
        "threads" => format!(
            "CPU-bound work: {figures}: threads were faster over every round. Rust threads \
             run in parallel (there is no GIL), so use threads, and processes only when you \
             need the isolation below.{}",
            verdict::excluded(&cs)
        ),
        "processes" => format!(
            "CPU-bound work: {figures}: processes were faster over every round on this \
             machine for this work.{}",
            verdict::excluded(&cs)
        ),
        _ => {
            let both_parallel = matches!(&o, Outcome::NoClearWinner(t) if !t.contains(&0));
            format!(
                "CPU-bound work with {n} workers. {}{}",
                undecided(&o, &cs),
                if both_parallel {
                    " Both beat sequential code over every round; between them, choose by the \
                     other criteria (threads share memory and start faster, processes isolate \
                     faults)."
                } else {
                    ""
                }
            )
        }
    };
    let mut b = basis(&[("workers", n as f64)]);
    add_range(&mut b, "speedup_threads", "x", st);
    add_range(&mut b, "speedup_processes", "x", sp);
    Some(Advice {
        id: "cpu_bound",
        situation: "CPU-bound work",
        pick,
        headline: format!(
            "speedup: threads {}x ({}..{}), processes {}x ({}..{})",
            fmt_num(st.median),
            fmt_num(st.min),
            fmt_num(st.max),
            fmt_num(sp.median),
            fmt_num(sp.min),
            fmt_num(sp.max)
        ),
        text,
        basis: b,
        clear,
        contenders: cs.to_vec(),
    })
}

/// One worker per task: start a process per task, or hand tasks to a running pool.
fn worker_per_task(r: &Report) -> Option<Advice> {
    let sec = section(r, "starting")?;
    let t = sec.get("start_join", "thread")?;
    let mut proc_start = verdict::contender(sec, "start_join", "forkserver", "processes")?;
    proc_start.label = "a new process (forkserver)".into();
    let mut pooled = verdict::contender(sec, "start_join", "process_pool", "process_pool")?;
    pooled.label = "a task on a running process Pool".into();
    let cs = [proc_start, pooled];
    let o = verdict::decide(&cs, Better::Lower);
    let (pick, clear) = pick_of(&o, &cs);
    let p = cs[0].median;
    let k = (1.0 - OVERHEAD_SHARE) / OVERHEAD_SHARE;
    let (min_proc_us, min_thread_us) = (k * p, k * t);
    let costs = format!(
        "Starting and joining a process (forkserver) costs {} us here, a thread {} us. For \
         that to stay under {}% of a task, a task in a new process must run at least {} ms, \
         one in a new thread at least {} us.",
        fmt_num(p),
        fmt_num(t),
        fmt_num(OVERHEAD_SHARE * 100.0),
        fmt_num(min_proc_us / 1000.0),
        fmt_num(min_thread_us)
    );
    let text = match pick {
        "process_pool" => format!(
            "{costs} Per task, {} against {}: the pool is cheaper over every round, so \
             shorter tasks should reuse workers (a pool) instead of starting one per task.",
            verdict::describe(&cs[1]),
            verdict::describe(&cs[0])
        ),
        "processes" => format!(
            "{costs} A new process per task cost less than a task on a running process Pool \
             ({}) over every round here: starting one per task is fine.",
            verdict::describe(&cs[1])
        ),
        _ => format!("{costs} {}", undecided(&o, &cs)),
    };
    let mut b = basis(&[
        ("start_thread_us", t),
        ("min_task_process_us", min_proc_us),
        ("min_task_thread_us", min_thread_us),
    ]);
    add_range(&mut b, "start_process_forkserver", "us", &cs[0]);
    add_range(&mut b, "pool_task_process", "us", &cs[1]);
    Some(Advice {
        id: "worker_per_task",
        situation: "one new worker per task",
        pick,
        headline: format!(
            "per task: new process {} us, pooled process {} us",
            fmt_num(p),
            fmt_num(cs[1].median)
        ),
        text,
        basis: b,
        clear,
        contenders: cs.to_vec(),
    })
}

/// The task size above which a process pool beats sequential code, from the pool's
/// measured cost per task and the measured speedup.
///
/// With a pool reaching speedup `S` on CPU-bound work and costing `c` of wall time per
/// task (measured with trivial tasks, all workers busy), a batch of `k` tasks of length
/// `t` takes about `k·t/S + k·c` against `k·t` sequentially: the pool wins for
/// `t > c·S / (S − 1)`. Starting the pool (`P`, create + first result) is repaid once
/// the batch's sequential time `k·t` exceeds `P·S / (S − 1)`. The pool is picked only
/// when its speedup's range is clear of 1x.
fn pool_break_even(r: &Report) -> Option<Advice> {
    let sec = section(r, "cpu_bound")?;
    let n = r.machine.workers as f64;
    // The pool's own figures when it was measured, else a process started per task.
    let (pool, c, c_what, start_ms) = match (
        verdict::contender(sec, "speedup", "process_pool", "process_pool"),
        sec.get("pool_task", "process_pool"),
        sec.get("pool_ready", "process_pool"),
    ) {
        (Some(s), Some(c), Some(p)) => (s, c, "measured with trivial tasks", p),
        _ => {
            let s = verdict::contender(sec, "speedup", "processes", "process_pool")?;
            let start = r.section("starting")?.get("start_join", "forkserver")?;
            (s, start, "a process started per task", start * n / 1000.0)
        }
    };
    let cs = [sequential(pool.rounds), pool];
    let o = verdict::decide(&cs, Better::Higher);
    let (pick, clear) = pick_of(&o, &cs);
    let pool = &cs[1];
    let speedup = pool.median;
    let mut b = basis(&[
        ("cost_per_task_us", c),
        ("pool_start_ms", start_ms),
        ("workers", n),
    ]);
    add_range(&mut b, "speedup_process_pool", "x", pool);
    let (headline, text) = match pick {
        "sequential" => (
            format!("processes: only {}x speedup", fmt_num(speedup)),
            format!(
                "{n} worker processes reached only {} on CPU-bound work here, below 1x over \
                 every round, so no task size makes a process pool pay off on this machine \
                 as loaded now.",
                verdict::describe(pool)
            ),
        ),
        "process_pool" => {
            let gain = |s: f64| s / (s - 1.0);
            let t_star = c * gain(speedup);
            let batch_ms = start_ms * gain(speedup);
            b.insert("break_even_task_us".into(), t_star);
            b.insert("break_even_task_min_us".into(), c * gain(pool.max));
            b.insert("break_even_task_max_us".into(), c * gain(pool.min));
            b.insert("break_even_batch_ms".into(), batch_ms);
            let thread_part = match (
                sec.metric("speedup", "thread_pool")
                    .filter(|m| m.usable())
                    .or(sec.metric("speedup", "threads").filter(|m| m.usable()))
                    .and_then(|m| Some((m.value?, m.min?))),
                sec.get("pool_task", "thread_pool"),
            ) {
                (Some((st, lo)), Some(ct)) if lo > 1.0 => {
                    let tt = ct * gain(st);
                    b.insert("break_even_task_threads_us".into(), tt);
                    format!(
                        " The same rule for a thread Pool ({}x, {} us per task) gives {} us: \
                         tasks between the two sizes pay off in threads only.",
                        fmt_num(st),
                        fmt_num(ct),
                        fmt_num(tt)
                    )
                }
                _ => String::new(),
            };
            (
                format!("pays off for tasks above {} us", fmt_num(t_star)),
                format!(
                    "A pool of {n} processes beats sequential code on tasks longer than about \
                     {} us here ({} to {} us over the speedup's range): {} us of overhead per \
                     task ({c_what}), times S/(S-1) with the measured speedup S = {}. \
                     Starting the pool (about {} ms) is repaid by a batch that would take {} \
                     ms sequentially.{thread_part}",
                    fmt_num(t_star),
                    fmt_num(c * gain(pool.max)),
                    fmt_num(c * gain(pool.min)),
                    fmt_num(c),
                    verdict::describe(pool),
                    fmt_num(start_ms),
                    fmt_num(batch_ms)
                ),
            )
        }
        _ => (
            format!("process pool speedup {}x: unclear", fmt_num(speedup)),
            format!(
                "Whether a pool of {n} processes pays off on CPU-bound tasks cannot be told \
                 from this run. {}",
                undecided(&o, &cs)
            ),
        ),
    };
    Some(Advice {
        id: "process_pool_break_even",
        situation: "many small CPU-bound tasks",
        pick,
        headline,
        text,
        basis: b,
        clear,
        contenders: cs.to_vec(),
    })
}

/// Many waiting tasks: the overhead per task of threads against processes.
fn io_bound(r: &Report) -> Option<Advice> {
    let sec = section(r, "io_bound")?;
    let ct = verdict::contender(sec, "overhead", "threads", "threads")?;
    let cp = verdict::contender(sec, "overhead", "processes", "processes")?;
    let cs = [ct, cp];
    let (t, p) = (cs[0].median, cs[1].median);
    let o = verdict::decide(&cs, Better::Lower);
    let (pick, clear) = pick_of(&o, &cs);
    let figures = format!(
        "Tasks that wait overlapped in both; the overhead per task beyond the wait was {} \
         and {}.",
        verdict::describe(&cs[0]),
        verdict::describe(&cs[1])
    );
    let text = match pick {
        "threads" => format!(
            "{figures} Use threads (or async I/O) for waiting: {}x cheaper here, over every \
             round.",
            fmt_num(p / t.max(1e-9))
        ),
        "processes" => format!(
            "{figures} Processes cost less per task over every round here; choose by the \
             other criteria."
        ),
        _ => format!("{figures} {}", undecided(&o, &cs)),
    };
    let mut b = BTreeMap::new();
    add_range(&mut b, "overhead_thread", "us", &cs[0]);
    add_range(&mut b, "overhead_process", "us", &cs[1]);
    Some(Advice {
        id: "io_bound",
        situation: "many tasks that mostly wait (I/O)",
        pick,
        headline: format!(
            "overhead per task: thread {} us, process {} us",
            fmt_num(t),
            fmt_num(p)
        ),
        text,
        basis: b,
        clear,
        contenders: cs.to_vec(),
    })
}

/// Memory per idle worker.
fn memory(r: &Report) -> Option<Advice> {
    let sec = section(r, "memory")?;
    let ct = verdict::contender(sec, "uss", "thread", "threads")?;
    let cp = verdict::contender(sec, "uss", "forkserver", "processes")?;
    let cs = [ct, cp];
    let (t, p) = (cs[0].median, cs[1].median);
    let spawn = sec.get("uss", "spawn");
    let o = verdict::decide(&cs, Better::Lower);
    let (pick, clear) = pick_of(&o, &cs);
    let mut b = basis(&[("uss_thread_kib", t), ("uss_process_forkserver_kib", p)]);
    if let Some(s) = spawn {
        b.insert("uss_process_spawn_kib".into(), s);
    }
    let mut text = format!(
        "An idle thread costs {} KiB of unique memory here, an idle process {} KiB \
         (forkserver){}: 1,000 workers are {} MiB as threads, {} MiB as processes. Memory \
         the workers allocate themselves comes on top, and in processes it is never shared.",
        fmt_num(t),
        fmt_num(p),
        spawn.map_or_else(String::new, |s| format!(", {} KiB (spawn)", fmt_num(s))),
        fmt_num(t * 1000.0 / 1024.0),
        fmt_num(p * 1000.0 / 1024.0)
    );
    if !clear {
        text.push(' ');
        text.push_str(&undecided(&o, &cs));
    }
    Some(Advice {
        id: "memory",
        situation: "many idle or long-lived workers",
        pick,
        headline: format!(
            "idle worker: thread {} KiB, process {} KiB",
            fmt_num(t),
            fmt_num(p)
        ),
        text,
        basis: b,
        clear,
        contenders: cs.to_vec(),
    })
}

/// Sharing state: the update rates of threads against processes sharing memory.
fn sharing(r: &Report) -> Option<Advice> {
    let sec = section(r, "sharing")?;
    let cs: Vec<Contender> = [
        ("threads_atomic", "threads"),
        ("threads_mutex", "threads"),
        ("processes_value_atomic", "processes"),
        ("processes_value_lock", "processes"),
    ]
    .into_iter()
    .filter_map(|(id, pick)| verdict::contender(sec, "rate", id, pick))
    .collect();
    let a = cs.iter().find(|c| c.metric.ends_with("/threads_atomic"))?;
    let value = cs
        .iter()
        .find(|c| c.metric.ends_with("/processes_value_lock"));
    let lost = sec
        .metric("final", "processes_private")
        .and_then(|m| m.extra.get("lost_updates").copied());
    let o = verdict::decide(&cs, Better::Higher);
    let (pick, clear) = pick_of(&o, &cs);
    let mut b = BTreeMap::new();
    add_range(&mut b, "rate_threads_atomic", "m_per_s", a);
    let mut headline = format!("threads: {} M updates/s", fmt_num(a.median));
    let mut text = match (&o, pick) {
        (Outcome::Winner(i), _) => format!(
            "Shared state: the fastest way was {}, clear of the other kind of worker over \
             every round.",
            verdict::describe(&cs[*i])
        ),
        _ => format!("Shared state: {}", undecided(&o, &cs)),
    };
    text.push_str(&format!(
        " Threads updated one counter at {} M/s with an atomic.",
        fmt_num(a.median)
    ));
    if let Some(v) = value {
        add_range(&mut b, "rate_processes_locked", "m_per_s", v);
        headline.push_str(&format!(
            ", processes with a lock: {} M/s",
            fmt_num(v.median)
        ));
        text.push_str(&format!(
            " Processes sharing an shm::Value under its lock managed {} M/s ({}x slower).",
            fmt_num(v.median),
            fmt_num(a.median / v.median)
        ));
    }
    if let Some(l) = lost {
        b.insert("lost_updates_without_shm".into(), l);
        headline.push_str(&format!("; without shared memory {} lost", fmt_num(l)));
        text.push_str(&format!(
            " Processes without shared memory lost {} of their updates to the parent: \
             state that many workers update is natural in threads, and in processes needs \
             shared memory or messages.",
            fmt_num(l)
        ));
    }
    Some(Advice {
        id: "sharing",
        situation: "workers that update shared state",
        pick,
        headline,
        text,
        basis: b,
        clear,
        contenders: cs,
    })
}

/// Crash-prone code: how many healthy workers finished next to a segfault.
fn fault_isolation(r: &Report) -> Option<Advice> {
    let sec = section(r, "fault_isolation")?;
    let cp = verdict::contender(sec, "survivors", "process", "processes")?;
    let ct = verdict::contender(sec, "survivors", "thread", "either")?;
    let (p, t) = (cp.median, ct.median);
    let cs = vec![cp, ct];
    // Counts, not timings: no noise to weigh. More survivors next to a faulty process
    // is the isolation the section demonstrates.
    let isolated = p > t;
    Some(Advice {
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
        clear: true,
        contenders: cs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::{Group, Machine, Metric, Section, Status, Worker, SCHEMA_ID};
    use crate::compare::rounds::{self, Ceiling, Rounds};

    fn rounds(v: &[f64]) -> Rounds {
        Rounds {
            values: v.iter().copied().map(Some).collect(),
            error: None,
        }
    }

    fn report(sections: Vec<Section>) -> Report {
        Report {
            schema: SCHEMA_ID,
            schema_version: 1,
            multiproc_version: "0",
            mode: "quick",
            machine: Machine {
                cpus: 2,
                workers: 2,
                kernel: "test".into(),
                build: "release",
                load_before: Some(0.1),
                load_after: Some(0.2),
            },
            started_at_unix: 0,
            duration_s: 1.0,
            sections,
            advice: Vec::new(),
        }
    }

    fn section(id: &'static str, groups: Vec<Group>) -> Section {
        Section {
            id,
            title: id,
            claim: "",
            status: Status::Measured,
            method: String::new(),
            groups,
            findings: Vec::new(),
        }
    }

    fn group(id: &'static str, unit: &'static str, better: Better, metrics: Vec<Metric>) -> Group {
        Group {
            id,
            title: id.into(),
            unit,
            better,
            metrics,
        }
    }

    /// A CPU-bound section from per-round speedups of threads, processes and a process
    /// pool, with 2 workers on 2 CPUs; the pool's task cost and start are fixed.
    fn cpu(threads: &[f64], processes: &[f64], pool: &[f64]) -> Section {
        let ceiling = Ceiling {
            max: 2.0,
            why: "2 workers on 2 CPUs can reach".into(),
        };
        let speedups = [
            ("threads", Worker::Thread, threads),
            ("processes", Worker::Process, processes),
            ("process_pool", Worker::Process, pool),
        ]
        .into_iter()
        .map(|(id, w, v)| rounds::bounded(id, id, w, "x", &rounds(v), Some(&ceiling)))
        .collect();
        section(
            "cpu_bound",
            vec![
                group("speedup", "x", Better::Higher, speedups),
                group(
                    "pool_task",
                    "us",
                    Better::Lower,
                    vec![Metric::value("process_pool", "pool", Worker::Process, 20.0)],
                ),
                group(
                    "pool_ready",
                    "ms",
                    Better::Lower,
                    vec![Metric::value("process_pool", "pool", Worker::Process, 5.0)],
                ),
            ],
        )
    }

    fn advice<'a>(all: &'a [Advice], id: &str) -> &'a Advice {
        all.iter().find(|a| a.id == id).expect("the advice")
    }

    #[test]
    fn overlapping_speedups_give_no_clear_winner() {
        // The flip: on a busy machine threads and processes land anywhere in
        // 1.1x..1.6x from round to round.
        let all = derive(&report(vec![cpu(
            &[1.1, 1.5, 1.3],
            &[1.6, 1.2, 1.4],
            &[1.3, 1.4, 1.5],
        )]));
        let a = advice(&all, "cpu_bound");
        assert_eq!((a.pick, a.clear), ("no_clear_winner", false));
        assert!(
            a.text.contains("No clear winner at this noise level"),
            "{}",
            a.text
        );
        assert!(a.text.contains("range 1.10..1.50"), "{}", a.text);
        assert!(a.text.contains("Both beat sequential"), "{}", a.text);
        assert_eq!(a.contenders.len(), 3);
        assert_eq!(a.basis["speedup_threads_min_x"], 1.1);
        // The pool's range is clear of 1x: it pays off, with a break-even from numbers.
        let p = advice(&all, "process_pool_break_even");
        assert_eq!((p.pick, p.clear), ("process_pool", true));
        let t = p.basis["break_even_task_us"];
        assert!((t - 20.0 * 1.4 / 0.4).abs() < 1e-9, "{t}");
    }

    #[test]
    fn disjoint_speedups_give_a_winner() {
        let all = derive(&report(vec![cpu(
            &[1.85, 1.9, 1.8],
            &[1.3, 1.5, 1.4],
            &[1.2, 1.3, 1.25],
        )]));
        let a = advice(&all, "cpu_bound");
        assert_eq!((a.pick, a.clear), ("threads", true));
        let all = derive(&report(vec![cpu(
            &[0.7, 0.8, 0.9],
            &[0.6, 0.7, 0.8],
            &[0.5, 0.6, 0.7],
        )]));
        assert_eq!(advice(&all, "cpu_bound").pick, "sequential");
        assert_eq!(advice(&all, "process_pool_break_even").pick, "sequential");
    }

    #[test]
    fn an_impossible_pool_efficiency_is_no_basis_for_a_pick() {
        // A process pool at 2.08x (104 % efficiency) with 2 workers in every round.
        let all = derive(&report(vec![cpu(
            &[1.5, 1.6, 1.55],
            &[1.4, 1.5, 1.45],
            &[2.06, 2.08, 2.1],
        )]));
        let p = advice(&all, "process_pool_break_even");
        assert_eq!((p.pick, p.clear), ("no_clear_winner", false));
        assert!(p.contenders[1].excluded.is_some());
        assert!(p.text.contains("Left out"), "{}", p.text);
        assert!(!p.basis.contains_key("break_even_task_us"));
        // Processes at an impossible 2.2x in every round: threads win without them.
        let all = derive(&report(vec![cpu(
            &[1.5, 1.6, 1.55],
            &[2.2, 2.3, 2.25],
            &[1.4, 1.5, 1.45],
        )]));
        let a = advice(&all, "cpu_bound");
        assert_eq!(a.pick, "threads");
        assert!(a.text.contains("Left out: processes"), "{}", a.text);
    }

    #[test]
    fn no_speedup_pick_is_clear_on_a_busy_machine() {
        // Disjoint ranges, but load 13 on 2 CPUs: the speedups say more about the other
        // load, and change from run to run.
        let mut r = report(vec![cpu(
            &[1.85, 1.9, 1.8],
            &[1.3, 1.5, 1.4],
            &[0.4, 0.6, 0.89],
        )]);
        r.machine.load_before = Some(13.0);
        let all = derive(&r);
        for id in ["cpu_bound", "process_pool_break_even"] {
            let a = advice(&all, id);
            assert_eq!((a.pick, a.clear), ("no_clear_winner", false), "{id}");
            assert!(a.text.starts_with("No clear winner at this noise level: the machine was busy (load 13.00 on 2 CPUs)"), "{}", a.text);
            assert_eq!(a.basis["load_average"], 13.0);
        }
        assert!(advice(&all, "cpu_bound")
            .text
            .contains("would have picked threads"));
        assert!(advice(&all, "process_pool_break_even")
            .text
            .contains("would have picked sequential"));
        // Just under the busy line (half the CPUs): the ranges decide.
        r.machine.load_before = Some(0.9);
        r.machine.load_after = Some(0.9);
        assert_eq!(advice(&derive(&r), "cpu_bound").pick, "threads");
    }

    #[test]
    fn the_pool_pick_for_one_worker_per_task_comes_from_the_costs() {
        let starting = |fs: &[f64], pool: &[f64]| {
            let mut ms = vec![
                rounds::metric(
                    "thread",
                    "thread",
                    Worker::Thread,
                    "us",
                    &rounds(&[40.0; 3]),
                ),
                rounds::metric("forkserver", "fs", Worker::Process, "us", &rounds(fs)),
                rounds::metric("process_pool", "pool", Worker::Process, "us", &rounds(pool)),
            ];
            rounds::pair_with(&mut ms, "thread");
            section(
                "starting",
                vec![group("start_join", "us", Better::Lower, ms)],
            )
        };
        let all = derive(&report(vec![starting(
            &[400.0, 450.0, 500.0],
            &[15.0, 18.0, 20.0],
        )]));
        let a = advice(&all, "worker_per_task");
        assert_eq!((a.pick, a.clear), ("process_pool", true));
        assert_eq!(a.basis["start_process_forkserver_max_us"], 500.0);
        // A pool as slow as a new process, in some rounds: no clear winner.
        let all = derive(&report(vec![starting(
            &[400.0, 450.0, 500.0],
            &[15.0, 420.0, 20.0],
        )]));
        assert_eq!(advice(&all, "worker_per_task").pick, "no_clear_winner");
        // A pool slower than starting processes: processes.
        let all = derive(&report(vec![starting(
            &[400.0, 450.0, 500.0],
            &[900.0, 950.0, 990.0],
        )]));
        assert_eq!(advice(&all, "worker_per_task").pick, "processes");
    }
}
