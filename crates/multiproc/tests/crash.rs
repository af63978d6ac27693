//! Faults that need a process of their own: the parent dies, descriptors run out.
//!
//! Each test re-executes this test binary to run an `#[ignore]`d helper (rayon's idiom)
//! under a deadline.
//!
//! # Safety
//!
//! Two `unsafe` calls with no memory-safety preconditions: `kill(2)` of a child this
//! test spawned and has not reaped, and `setrlimit` with an initialized struct.
#![allow(unsafe_code)]

mod util;

use util::{answer, sleeps_forever};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use multiproc::{ErrorKind, Process, StartMethod};

#[test]
#[ignore = "helper: run in a child by `parent_sigkill_takes_children_along`"]
fn helper_start_children_and_wait() {
    let kids = start_family(StartMethod::ForkServer);
    for p in &kids {
        println!("child {}", p.pid());
    }
    println!("ready");
    std::thread::sleep(Duration::from_secs(60));
    drop(kids);
}

/// One sleeping child per start method, started from this thread, and one more started
/// with `from_thread` by a thread that exits at once: that child must stay tied to the
/// process, not to the thread.
fn start_family(from_thread: StartMethod) -> Vec<Process<u8>> {
    let mut kids: Vec<Process<u8>> = StartMethod::ALL
        .into_iter()
        .map(|m| util::builder(m).start(sleeps_forever).unwrap())
        .collect();
    let late =
        std::thread::spawn(move || util::builder(from_thread).start(sleeps_forever).unwrap())
            .join()
            .unwrap();
    kids.push(late);
    kids
}

#[test]
fn parent_sigkill_takes_children_along() {
    let _w = util::watchdog(Duration::from_secs(60));
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_start_children_and_wait",
            "--test-threads=1",
            "--nocapture",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let helper_pid = helper.id() as i32;
    let mut pids = Vec::new();
    for line in BufReader::new(helper.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest prints "test <name> ... " in front of the first line of output.
        if let Some((_, pid)) = line.split_once("child ") {
            pids.push(pid.trim().parse::<i32>().unwrap());
        }
        if line.ends_with("ready") {
            break;
        }
    }
    assert_eq!(pids.len(), 4);
    // The fork server is a child of the helper too.
    let all_children: Vec<i32> = util::children_of(helper_pid)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(
        pids.iter().all(|p| all_children.contains(p)),
        "{pids:?} vs {all_children:?}"
    );
    // SAFETY: kill(2) of a child process we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(helper_pid, libc::SIGKILL) }, 0);
    helper.wait().unwrap();
    let gone = util::eventually(Duration::from_secs(1), || {
        all_children.iter().all(|&p| !util::alive(p))
    });
    let left: Vec<i32> = all_children
        .iter()
        .copied()
        .filter(|&p| util::alive(p))
        .collect();
    assert!(
        gone,
        "still alive 1 s after the parent was killed: {left:?}"
    );
}

#[test]
#[ignore = "helper: run in a child by `descriptor_exhaustion_is_a_clear_error`"]
fn helper_exhaust_descriptors() {
    // Warm up what is created once (fork server, death pipe), then lower the limit.
    for m in StartMethod::ALL {
        util::builder(m).start(answer).unwrap().join().unwrap();
    }
    let lim = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit with a valid, initialized struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    for m in StartMethod::ALL {
        let e = util::builder(m).start(answer).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Start, "{m}: {e}");
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{m}: {e}");
        // The OS error is the source, not part of the message: print the chain.
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        println!("{m}: {e}: {}", cause.unwrap_or_default());
    }
    drop(hog);
    for m in StartMethod::ALL {
        let p = util::builder(m).start(answer);
        assert_eq!(
            p.unwrap().join().unwrap(),
            42,
            "{m} works again once descriptors are free"
        );
    }
    println!("exhaustion ok");
}

#[test]
fn descriptor_exhaustion_is_a_clear_error() {
    let out = util::run_ignored("helper_exhaust_descriptors", Duration::from_secs(60), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("exhaustion ok"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Too many open files"), "{stdout}");
}

/// Runs in a `Spawn` child, whose function runs on the main thread (before the test
/// harness's `main`): the children it starts from there use `PR_SET_PDEATHSIG`, the one
/// from a short-lived thread uses the death pipe. Writes their pids to `path`.
fn start_family_then_wait(path: String) -> u8 {
    let kids = start_family(StartMethod::Fork);
    let text: Vec<String> = kids.iter().map(|p| p.pid().to_string()).collect();
    std::fs::write(format!("{path}.tmp"), text.join("\n")).unwrap();
    std::fs::rename(format!("{path}.tmp"), &path).unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(kids);
    0
}

#[test]
fn parent_sigkill_takes_children_along_from_main_thread() {
    let _w = util::watchdog(Duration::from_secs(60));
    let path = std::env::temp_dir()
        .join(util::unique_name("family"))
        .to_string_lossy()
        .into_owned();
    let parent = Process::builder()
        .start_method(StartMethod::Spawn)
        .start_with(start_family_then_wait, path.clone())
        .unwrap();
    assert!(util::eventually(Duration::from_secs(30), || {
        std::path::Path::new(&path).exists()
    }));
    let pids: Vec<i32> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(pids.len(), 4);
    let family: Vec<i32> = util::children_of(parent.pid())
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(
        pids.iter().all(|p| family.contains(p)),
        "{pids:?} vs {family:?}"
    );
    parent.kill().unwrap();
    let e = parent.join().unwrap_err();
    assert_eq!(e.signal(), Some(multiproc::Signal::SIGKILL));
    let gone = util::eventually(Duration::from_secs(1), || {
        family.iter().all(|&p| !util::alive(p))
    });
    let left: Vec<i32> = family.iter().copied().filter(|&p| util::alive(p)).collect();
    assert!(
        gone,
        "still alive 1 s after the parent was killed: {left:?}"
    );
}
