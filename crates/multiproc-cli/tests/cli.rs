//! The `multiproc` binary as a user runs it: every subcommand and flag, the JSON
//! against its schema, and the HTML page rendered by headless Chromium.
//!
//! The measuring runs use `--quick`; no test looks at how fast anything was, only at
//! what was reported and how.

#[path = "../../multiproc/tests/util/mod.rs"]
mod util;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_multiproc");
const SCHEMA: &str = include_str!("../schema/compare.v1.json");
/// A generous bound for one `--quick` run of a debug build on a loaded 2-core machine.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Runs the binary with `args`, killing it (and failing) after `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    run_env(args, &[], limit)
}

/// [`run`] with extra environment variables.
fn run_env(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start multiproc");
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("multiproc {args:?} ran for more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_ok(args: &[&str], o: &Output) {
    assert!(
        o.status.success(),
        "multiproc {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(util::unique_name(name))
}

fn section<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no section {id}"))
}

fn metric<'a>(report: &'a Value, sec: &str, group: &str, id: &str) -> &'a Value {
    section(report, sec)["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["id"] == group)
        .unwrap_or_else(|| panic!("no group {sec}/{group}"))["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no metric {sec}/{group}/{id}"))
}

fn validate(report: &Value) {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("the schema is a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "the report breaks its schema:\n{}",
        errors.join("\n")
    );
}

/// The median of `v` (sorted copy), as the report computes it.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let at = 0.5 * (v.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// What the interleaved rounds promise, checked on every metric that has rounds: the
/// value is the median of the kept rounds and the range their min..max; a ratio is paired
/// with its baseline; a speedup whose whole range is above what the workers and CPUs allow
/// is flagged impossible.
fn check_rounds(report: &Value) {
    let workers = report["machine"]["workers"].as_f64().unwrap();
    let cpus = report["machine"]["cpus"].as_f64().unwrap();
    let mut with_rounds = 0;
    for sec in report["sections"].as_array().unwrap() {
        for g in sec["groups"].as_array().unwrap() {
            for m in g["metrics"].as_array().unwrap() {
                let at = format!("{}/{}/{}", sec["id"], g["id"], m["id"]);
                let rounds = m["rounds"].as_array().unwrap();
                let Some(v) = m["value"].as_f64() else {
                    continue;
                };
                if rounds.is_empty() {
                    continue;
                }
                with_rounds += 1;
                let excluded: Vec<usize> = m["excluded_rounds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as usize)
                    .collect();
                let kept: Vec<f64> = rounds
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !excluded.contains(i))
                    .filter_map(|(_, r)| r.as_f64())
                    .collect();
                let impossible = m["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["kind"] == "impossible");
                if kept.is_empty() {
                    assert!(impossible, "{at}: a value with no kept round: {m}");
                    continue;
                }
                assert!(
                    close(v, median(&kept)),
                    "{at}: value is not the median: {m}"
                );
                let lo = kept.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = kept.iter().copied().fold(0.0, f64::max);
                assert!(close(m["min"].as_f64().unwrap(), lo), "{at}: {m}");
                assert!(close(m["max"].as_f64().unwrap(), hi), "{at}: {m}");
                assert_eq!(m["samples"].as_u64().unwrap() as usize, kept.len(), "{at}");
                if !excluded.is_empty() {
                    assert!(
                        m["flags"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|f| f["kind"] == "rounds_excluded"),
                        "{at}: rounds left out without a flag: {m}"
                    );
                }
                if g["id"] == "speedup" {
                    let most = workers.min(cpus);
                    assert_eq!(
                        impossible,
                        lo > most,
                        "{at}: range {lo}..{hi}, most {most}: {m}"
                    );
                }
                if let Some(r) = m["ratio"].as_object() {
                    let r_lo = r["min"].as_f64().unwrap();
                    let r_hi = r["max"].as_f64().unwrap();
                    let r_med = r["median"].as_f64().unwrap();
                    assert!(r_lo <= r_med && r_med <= r_hi, "{at}: {m}");
                    if r["to"] == m["id"] {
                        assert_eq!((r_lo, r_hi), (1.0, 1.0), "{at}: {m}");
                    }
                }
            }
        }
    }
    assert!(with_rounds > 0, "no metric was measured in rounds");
}

/// Every pick follows from its contenders: a clear pick's best contender is clear of
/// every other pick's range (paired with a common baseline when all have one); otherwise the pick is `no_clear_winner` and the text says
/// why with the numbers. No contender left out as impossible wins.
fn check_picks(report: &Value) {
    for a in report["advice"].as_array().unwrap() {
        let id = a["id"].as_str().unwrap();
        let pick = a["pick"].as_str().unwrap();
        let cs = a["contenders"].as_array().unwrap();
        assert!(!cs.is_empty(), "{id}: no contenders: {a}");
        assert_eq!(a["clear"], pick != "no_clear_winner", "{id}: {a}");
        let text = a["text"].as_str().unwrap();
        if pick == "no_clear_winner" {
            assert!(
                text.contains("No clear winner at this noise level")
                    || text.contains("Nothing left to compare"),
                "{id}: {text}"
            );
            continue;
        }
        if id == "fault_isolation" {
            continue; // counts, not timings: no ranges to weigh
        }
        let higher = matches!(cs[0]["unit"].as_str(), Some("x" | "M/s"));
        let usable: Vec<&Value> = cs.iter().filter(|c| c["excluded"].is_null()).collect();
        // Paired ranges when every usable contender has one against the same baseline.
        let to = &usable[0]["paired"]["to"];
        let paired = !to.is_null() && usable.iter().all(|c| &c["paired"]["to"] == to);
        let fig = |c: &Value, what: &str| {
            if paired {
                c["paired"][what].as_f64().unwrap()
            } else {
                c[what].as_f64().unwrap()
            }
        };
        let score = |c: &Value| {
            let m = fig(c, "median");
            if higher {
                -m
            } else {
                m
            }
        };
        let best = usable
            .iter()
            .min_by(|x, y| score(x).total_cmp(&score(y)))
            .unwrap();
        assert_eq!(
            best["pick"], pick,
            "{id}: the pick is not the best figure: {a}"
        );
        for c in usable.iter().filter(|c| c["pick"] != pick) {
            let clear = if higher {
                fig(best, "min") > fig(c, "max")
            } else {
                fig(best, "max") < fig(c, "min")
            };
            assert!(clear, "{id}: picked {pick} though the ranges overlap: {a}");
        }
    }
}

#[test]
fn help_lists_subcommands_with_examples() {
    let o = run(&["--help"], Duration::from_secs(30));
    assert_ok(&["--help"], &o);
    let help = text(&o.stdout);
    for want in ["demo", "compare", "Examples:", "multiproc compare --quick"] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
    assert!(
        !help.contains("__fault-child"),
        "the internal subcommand is listed:\n{help}"
    );

    let o = run(&["compare", "--help"], Duration::from_secs(30));
    assert_ok(&["compare", "--help"], &o);
    let help = text(&o.stdout);
    for want in [
        "Examples:",
        "--quick",
        "--json",
        "--html",
        "--only",
        "--workers",
        "--no-progress",
        "--print-schema",
        "cpu-bound",
    ] {
        assert!(
            help.contains(want),
            "compare --help lacks {want:?}:\n{help}"
        );
    }

    let o = run(&["demo", "--help"], Duration::from_secs(30));
    assert_ok(&["demo", "--help"], &o);
    assert!(text(&o.stdout).contains("Examples:"));

    let o = run(&["--version"], Duration::from_secs(30));
    assert_ok(&["--version"], &o);
    assert!(text(&o.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_flags_fail_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage"),
        (&["nosuch"], "unrecognized subcommand 'nosuch'"),
        (&["compare", "--bogus"], "unexpected argument '--bogus'"),
        (&["compare", "--only", "nosuch"], "invalid value 'nosuch'"),
        (&["compare", "--workers", "0"], "invalid value '0'"),
        (&["compare", "--workers", "many"], "invalid value 'many'"),
        (&["worker", "--", "./app"], "--redis <REDIS>"),
        (
            &[
                "worker",
                "--redis",
                "redis://h/",
                "--start-method",
                "fork",
                "--",
                "./app",
            ],
            "invalid value 'fork'",
        ),
        (
            &["compare", "--html"],
            "a value is required for '--html <FILE>'",
        ),
        (
            &["compare", "--print-schema", "--quick"],
            "cannot be used with",
        ),
    ];
    for (args, want) in cases {
        let o = run(args, Duration::from_secs(30));
        assert_eq!(
            o.status.code(),
            Some(2),
            "multiproc {args:?} should exit 2: {o:?}"
        );
        let err = text(&o.stderr);
        assert!(
            err.contains(want),
            "multiproc {args:?}: stderr lacks {want:?}:\n{err}"
        );
    }
    // A file that cannot be created fails at once, before any measuring.
    let args = [
        "compare",
        "--quick",
        "--html",
        "/nonexistent-dir/x/report.html",
    ];
    let o = run(&args, Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = text(&o.stderr);
    assert!(
        err.contains("cannot create the HTML file /nonexistent-dir/x/report.html"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "it measured before failing");
}

#[test]
fn demo_runs() {
    let o = run(&["demo"], Duration::from_secs(60));
    assert_ok(&["demo"], &o);
    assert!(!o.stdout.is_empty());
}

/// The demo's deliberate panics print no "thread panicked at" line and no backtrace, even with
/// `RUST_BACKTRACE=1`, for every start method (a Spawn or ForkServer child does not inherit the
/// parent's panic hook); the message `join` hands back is in the output as data.
#[test]
fn demo_panics_are_data_not_noise() {
    for method in multiproc::StartMethod::ALL {
        let args = ["demo", "--start-method", method.name()];
        let o = run_env(
            &args,
            &[("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "1")],
            Duration::from_secs(90),
        );
        assert_ok(&args, &o);
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        for noise in [
            "panicked at",
            "stack backtrace",
            "RUST_BACKTRACE",
            "rust_begin_unwind",
        ] {
            assert!(
                !err.contains(noise),
                "{method}: stderr has {noise:?}:\n{err}"
            );
        }
        for who in ["thread: ", "process: "] {
            let line = out
                .lines()
                .find(|l| l.starts_with(who))
                .unwrap_or_else(|| panic!("{method}: no {who:?} line in:\n{out}"));
            assert!(
                line.contains("Err(Panicked), message \"this thread gave up\""),
                "{method}: {line}"
            );
        }
    }
}

#[test]
fn print_schema_prints_the_shipped_schema() {
    let o = run(&["compare", "--print-schema"], Duration::from_secs(30));
    assert_ok(&["compare", "--print-schema"], &o);
    assert_eq!(text(&o.stdout), SCHEMA);
}

#[test]
fn quick_json_report_follows_its_schema() {
    let _w = util::watchdog(RUN_LIMIT + Duration::from_secs(30));
    let args = ["compare", "--quick", "--json"];
    let o = run(&args, RUN_LIMIT);
    assert_ok(&args, &o);
    let report: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    validate(&report);
    check_rounds(&report);
    check_picks(&report);

    assert_eq!(report["mode"], "quick");
    // The load average at the start and the end of the run.
    for when in ["load_before", "load_after"] {
        assert!(
            report["machine"][when].as_f64().is_some_and(|l| l >= 0.0),
            "{when}: {}",
            report["machine"]
        );
    }
    let ids: Vec<&str> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "starting",
            "memory",
            "sharing",
            "communicating",
            "cpu_bound",
            "io_bound",
            "fault_isolation"
        ]
    );
    // What is in this build is measured.
    for (sec, group, id) in [
        ("starting", "start_join", "thread"),
        ("starting", "start_join", "fork"),
        ("starting", "start_join", "forkserver"),
        ("starting", "start_join", "spawn"),
        ("memory", "uss", "thread"),
        ("memory", "uss", "forkserver"),
        ("sharing", "rate", "processes_value_atomic"),
        ("sharing", "rate", "processes_value_lock"),
        ("communicating", "round_trip", "threads_mpsc"),
        ("communicating", "round_trip", "processes_pipe"),
        ("communicating", "round_trip", "processes_queue"),
        ("communicating", "bandwidth", "processes_pipe"),
        ("communicating", "bandwidth", "processes_queue"),
        ("cpu_bound", "speedup", "threads"),
        ("cpu_bound", "speedup", "processes"),
        ("cpu_bound", "speedup", "thread_pool"),
        ("cpu_bound", "speedup", "process_pool"),
        ("cpu_bound", "pool_task", "process_pool"),
        ("cpu_bound", "pool_ready", "process_pool"),
        ("io_bound", "wall", "threads"),
        ("io_bound", "wall", "processes"),
    ] {
        let m = metric(&report, sec, group, id);
        assert!(
            m["value"].as_f64().is_some_and(|v| v > 0.0),
            "{sec}/{group}/{id}: {m}"
        );
    }
    // The behavior each section demonstrates (not its speed).
    let n = report["machine"]["workers"].as_f64().unwrap();
    let per_worker = |sec: &str| -> f64 {
        let t = section(&report, sec)["groups"][0]["title"]
            .as_str()
            .unwrap()
            .to_owned();
        t.split("expected ")
            .nth(1)
            .unwrap()
            .trim_end_matches(')')
            .replace(',', "")
            .parse()
            .unwrap()
    };
    let expected = per_worker("sharing");
    assert_eq!(
        metric(&report, "sharing", "final", "threads_atomic")["value"],
        expected
    );
    assert_eq!(
        metric(&report, "sharing", "final", "threads_mutex")["value"],
        expected
    );
    let private = metric(&report, "sharing", "final", "processes_private");
    assert_eq!(private["value"], 0.0, "{private}");
    assert_eq!(
        private["extra"]["counted_by_children"], expected,
        "{private}"
    );
    assert!(expected > 0.0 && n >= 2.0);
    let survivors = |id| metric(&report, "fault_isolation", "survivors", id);
    assert_eq!(
        survivors("process")["value"],
        3.0,
        "{}",
        survivors("process")
    );
    assert_eq!(survivors("process")["extra"]["signal"], 11.0);
    assert_eq!(survivors("process")["extra"]["program_survived"], 1.0);
    assert_eq!(survivors("thread")["value"], 0.0, "{}", survivors("thread"));
    assert_eq!(survivors("thread")["extra"]["signal"], 11.0);
    assert_eq!(survivors("thread")["extra"]["program_survived"], 0.0);

    // The advice rests on figures of this run.
    let advice = report["advice"].as_array().unwrap();
    let ids: Vec<&str> = advice.iter().map(|a| a["id"].as_str().unwrap()).collect();
    for want in [
        "cpu_bound",
        "worker_per_task",
        "process_pool_break_even",
        "io_bound",
        "memory",
        "fault_isolation",
    ] {
        assert!(ids.contains(&want), "no advice {want}: {ids:?}");
    }
    let fault = advice
        .iter()
        .find(|a| a["id"] == "fault_isolation")
        .unwrap();
    assert_eq!(fault["pick"], "processes");
    // Every advice rests on contenders with ranges, the one-worker-per-task and sharing
    // picks included (they were fixed text once).
    for a in advice {
        assert!(!a["contenders"].as_array().unwrap().is_empty(), "{a}");
    }
    let start = advice
        .iter()
        .find(|a| a["id"] == "worker_per_task")
        .unwrap();
    let pool = metric(&report, "starting", "start_join", "process_pool");
    assert_eq!(
        start["basis"]["pool_task_process_us"].as_f64(),
        pool["value"].as_f64(),
        "{start}"
    );
    let fs = metric(&report, "starting", "start_join", "forkserver")["value"]
        .as_f64()
        .unwrap();
    assert_eq!(
        start["basis"]["start_process_forkserver_us"].as_f64(),
        Some(fs)
    );
}

#[test]
fn schema_rejects_what_breaks_it() {
    let _w = util::watchdog(RUN_LIMIT + Duration::from_secs(30));
    let args = ["compare", "--quick", "--json", "--only", "fault-isolation"];
    let o = run(&args, RUN_LIMIT);
    assert_ok(&args, &o);
    let report: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    validate(&report);
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    type Breakage = fn(&mut Value);
    let breakages: [(&str, Breakage); 10] = [
        ("no machine", |r| {
            r.as_object_mut().unwrap().remove("machine");
        }),
        ("another version", |r| r["schema_version"] = 2.into()),
        ("a text value", |r| {
            r["sections"][0]["groups"][0]["metrics"][0]["value"] = "3".into();
        }),
        ("an unknown section", |r| {
            r["sections"][0]["id"] = "gpu".into()
        }),
        ("a missing value without a note", |r| {
            let m = &mut r["sections"][0]["groups"][0]["metrics"][0];
            m["value"] = Value::Null;
            m["note"] = Value::Null;
        }),
        ("an unknown flag kind", |r| {
            r["sections"][0]["groups"][0]["metrics"][0]["flags"] =
                serde_json::json!([{ "kind": "odd", "text": "x" }]);
        }),
        ("a ratio without its range", |r| {
            r["sections"][0]["groups"][0]["metrics"][0]["ratio"] =
                serde_json::json!({ "to": "thread", "median": 2.0 });
        }),
        ("an unknown pick", |r| {
            r["advice"][0]["pick"] = "maybe".into()
        }),
        ("no clear winner called clear", |r| {
            r["advice"][0]["pick"] = "no_clear_winner".into();
            r["advice"][0]["clear"] = true.into();
        }),
        ("a contender without its range", |r| {
            r["advice"][0]["contenders"][0]
                .as_object_mut()
                .unwrap()
                .remove("min");
        }),
    ];
    for (what, breakage) in breakages {
        let mut broken = report.clone();
        breakage(&mut broken);
        assert!(!validator.is_valid(&broken), "the schema accepts {what}");
    }
}

#[test]
fn table_is_the_default_output() {
    let _w = util::watchdog(RUN_LIMIT + Duration::from_secs(30));
    let args = ["compare", "--quick", "--only", "starting,fault-isolation"];
    let o = run(&args, RUN_LIMIT);
    assert_ok(&args, &o);
    let out = text(&o.stdout);
    for want in [
        "multiproc compare (quick run",
        "load average (1 min): ",
        " at start, ",
        " at end",
        "== Starting a worker ==",
        "process (forkserver)",
        "median, range = min..max of 8 interleaved rounds",
        "== Fault isolation ==",
        "killed by SIGSEGV",
        "== When to use which",
        "* one new worker per task -> ",
    ] {
        assert!(out.contains(want), "the table lacks {want:?}:\n{out}");
    }
    // It fits a classic 80-column terminal.
    for line in out.lines() {
        assert!(
            line.chars().count() <= 80,
            "a line of {} columns:\n{line}",
            line.chars().count()
        );
    }
    assert!(
        !out.contains("== Memory"),
        "--only ran another section:\n{out}"
    );
    // No terminal, so no progress display on stderr.
    assert!(o.stderr.is_empty(), "stderr: {}", text(&o.stderr));
}

#[test]
fn only_and_workers_shape_the_run() {
    let _w = util::watchdog(RUN_LIMIT + Duration::from_secs(30));
    let args = [
        "compare",
        "--quick",
        "--json",
        "--no-progress",
        "--workers",
        "3",
        "--only",
        "cpu-bound,sharing",
    ];
    let o = run(&args, RUN_LIMIT);
    assert_ok(&args, &o);
    let report: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    validate(&report);
    check_rounds(&report);
    check_picks(&report);
    assert_eq!(report["machine"]["workers"], 3);
    let ids: Vec<&str> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["sharing", "cpu_bound"],
        "sections run in their fixed order"
    );
    assert!(metric(&report, "cpu_bound", "time", "threads")["label"]
        .as_str()
        .unwrap()
        .starts_with("3 threads"));
}

#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let _w = util::watchdog(RUN_LIMIT + Duration::from_secs(30));
    // `script` (util-linux) gives the command a pseudo-terminal.
    let on_tty = |extra: &str| {
        let cmd = format!("{BIN} compare --quick --only starting {extra}");
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("run script(1)");
        assert_ok(&["compare", "--quick", "--only", "starting", extra], &o);
        text(&o.stdout)
    };
    let shown = on_tty("");
    assert!(
        shown.contains("measuring ["),
        "no progress display:\n{shown}"
    );
    assert!(shown.contains("starting: process (forkserver)"), "{shown}");
    assert!(shown.contains("== Starting a worker =="), "{shown}");
    let hidden = on_tty("--no-progress");
    assert!(
        !hidden.contains("measuring ["),
        "--no-progress drew progress:\n{hidden}"
    );
    assert!(hidden.contains("== Starting a worker =="), "{hidden}");
}

/// Chromium's binary, or `None` (with a loud message) outside CI when it is missing.
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = text(&o.stdout).trim().to_owned();
            if o.status.success() && !path.is_empty() {
                return Some(PathBuf::from(path));
            }
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium is not installed, and CI must check the HTML page (ci/setup.sh installs it)"
    );
    eprintln!(
        "\n!!! SKIPPED the HTML rendering check: chromium is not installed.\n\
         !!! Install it with `apt-get install -y chromium` (ci/setup.sh does).\n"
    );
    None
}

/// Takes a 1200x2600 screenshot of `page` (the page top: the advice at a
/// glance, then the first sections' charts) with headless Chromium.
fn screenshot(chromium: &Path, page: &Path) -> png::Reader<std::fs::File> {
    let dir = temp_path("multiproc-chromium");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("page.png");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,2600")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "chromium hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    let file = std::fs::File::open(&shot).expect("chromium wrote no screenshot");
    png::Decoder::new(file).read_info().expect("a PNG")
}

/// Rows of the image holding a horizontal run of at least `min_run` pixels within a
/// small distance of `rgb`: bars of that color, not borders or text.
fn rows_with_bar(img: &[u8], width: usize, channels: usize, rgb: [u8; 3], min_run: usize) -> usize {
    img.chunks(width * channels)
        .filter(|row| {
            let mut run = 0;
            for px in row.chunks(channels) {
                let close = (0..3).all(|i| px[i].abs_diff(rgb[i]) <= 10);
                run = if close { run + 1 } else { 0 };
                if run >= min_run {
                    return true;
                }
            }
            false
        })
        .count()
}

fn hex(s: &str) -> [u8; 3] {
    let v = u32::from_str_radix(s.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

#[test]
fn html_page_renders_charts_in_chromium() {
    let _w = util::watchdog(RUN_LIMIT + Duration::from_secs(150));
    let Some(chromium) = chromium() else { return };
    let page = temp_path("multiproc-compare").with_extension("html");
    let page_arg = page.to_str().unwrap().to_owned();
    let args = ["compare", "--quick", "--no-progress", "--html", &page_arg];
    let o = run(&args, RUN_LIMIT);
    assert_ok(&args, &o);
    assert!(text(&o.stdout).contains("HTML report written to"));

    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    // The new figures are on the page: the load, the ranges, what each pick compared.
    for want in [
        "load average (1 min)",
        "min&ndash;max of",
        "<table class=\"contenders\">",
        "range (min&ndash;max)",
    ] {
        assert!(html.contains(want), "the page lacks {want:?}");
    }
    assert!(html.matches("<svg ").count() >= 10, "too few charts");
    for external in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the page is not self-contained: {external}"
        );
    }

    let mut reader = screenshot(&chromium, &page);
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    assert_eq!((info.width, info.height), (1200, 2600));
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG color type {other:?}"),
    };
    let img = &buf[..info.buffer_size()];
    let width = info.width as usize;

    // Not blank: many colors, and a good share of non-background pixels.
    let mut colors = std::collections::HashSet::new();
    let mut ink = 0usize;
    for px in img.chunks(channels) {
        colors.insert((px[0] >> 3, px[1] >> 3, px[2] >> 3));
        if px[..3].iter().any(|&c| c < 235) {
            ink += 1;
        }
    }
    assert!(colors.len() >= 30, "only {} distinct colors", colors.len());
    assert!(
        ink * 100 / (img.len() / channels) >= 3,
        "almost blank: {ink} ink pixels"
    );

    // Chart bars (runs of 30+ pixels of a worker's color) for threads and processes.
    let thread_rows = rows_with_bar(img, width, channels, hex("#2563eb"), 30);
    let process_rows: usize = ["#fb923c", "#ea580c", "#c2410c"]
        .iter()
        .map(|c| rows_with_bar(img, width, channels, hex(c), 30))
        .sum();
    assert!(
        thread_rows >= 15,
        "no thread bars rendered ({thread_rows} rows)"
    );
    assert!(
        process_rows >= 30,
        "no process bars rendered ({process_rows} rows)"
    );
    let _ = std::fs::remove_file(&page);
}

#[test]
fn worker_runs_the_program_in_worker_mode() {
    let _w = util::watchdog(Duration::from_secs(60));
    let out = run(
        &[
            "worker",
            "--redis",
            "redis://h:1/",
            "--name",
            "n",
            "--slots",
            "3",
            "--timing",
            "200,1000",
            "--start-method",
            "forkserver",
            "--tls-ca",
            "/etc/ca.pem",
            "--",
            "env",
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let env = String::from_utf8_lossy(&out.stdout);
    for want in [
        "MULTIPROC_WORKER=redis://h:1/",
        "MULTIPROC_WORKER_NAME=n",
        "MULTIPROC_WORKER_SLOTS=3",
        "MULTIPROC_WORKER_TIMING=200,1000",
        "MULTIPROC_WORKER_START_METHOD=forkserver",
        "MULTIPROC_WORKER_TLS_CA=/etc/ca.pem",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing from\n{env}");
    }
    let out = run(&["worker", "--list", "--", "env"], Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "MULTIPROC_LIST_TASKS=1"));
    // No program: a usage error.
    let out = run(
        &["worker", "--redis", "redis://h:1/"],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    // A program that cannot be run: an error naming it.
    let out = run(
        &["worker", "--list", "--", "/nonexistent/app"],
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/app"),
        "{out:?}"
    );
}
