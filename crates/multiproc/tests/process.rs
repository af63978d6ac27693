//! Every way a child process can end, with every start method.
//!
//! The test harness runs tests on threads of their own, so `Fork` is used with
//! `allow_threads(true)` here; `fork_with_threads_*` tests the refusal itself. That
//! opt-in is exactly as risky as it says: under `cargo test`'s parallel threads, a
//! fork taken while another test's thread holds stderr's lock (say, printing a panic)
//! gives a child that deadlocks when it prints. The README's test command runs each
//! test in its own process (nextest), where only idle harness threads exist.
//!
//! # Safety
//!
//! Two `unsafe` blocks: a child's function that writes through a null pointer on
//! purpose (the point is its SIGSEGV), and a `kill(2)` of a child this test started and
//! has not reaped (so its pid is still that child's).
#![allow(unsafe_code)]

mod util;

use util::{answer, builder, sleeps_forever};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use multiproc::{ErrorKind, Process, Signal, StartMethod};

fn add(pair: (i64, i64)) -> i64 {
    pair.0 + pair.1
}

fn panics() -> u8 {
    panic!("the child gave up")
}

#[allow(clippy::disallowed_methods, clippy::exit)]
fn exits_3() -> u8 {
    std::process::exit(3)
}

fn aborts() -> u8 {
    std::process::abort()
}

fn segfaults() -> u8 {
    let p = std::hint::black_box(std::ptr::null_mut::<u8>());
    // SAFETY: not sound, on purpose: the point is to crash with SIGSEGV.
    unsafe { p.write_volatile(1) };
    0
}

fn spins_forever() -> u8 {
    loop {
        std::hint::spin_loop();
    }
}

fn sleeps_100ms() -> u8 {
    std::thread::sleep(Duration::from_millis(100));
    1
}

fn comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_owned()
}

#[allow(clippy::explicit_write)]
fn chatty() -> u8 {
    use std::io::Write;
    // Through the handles rather than `println!`: under libtest's output capture a
    // forked child's `println!` lands in the harness's in-memory buffer (its copy of
    // it), which is what `--nocapture` is for.
    writeln!(std::io::stdout(), "to stdout").unwrap();
    writeln!(std::io::stderr(), "to stderr").unwrap();
    5
}

fn dies_holding(_: ()) -> u8 {
    let p = Process::builder().start(sleeps_100ms).unwrap();
    let _keep = p;
    panic!("dropped while unwinding")
}

fn nested(m: StartMethod) -> u64 {
    // A child starting its own child: its own fork server / death pipe must be used.
    builder(m).start(answer).unwrap().join().unwrap() + 1
}

#[test]
fn value_comes_back() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        assert_eq!(builder(m).start(answer).unwrap().join().unwrap(), 42, "{m}");
        assert_eq!(
            builder(m).start_with(add, (40, 2)).unwrap().join().unwrap(),
            42,
            "{m}"
        );
    }
}

#[test]
fn panic_carries_message_and_location() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let p = builder(m).start(panics).unwrap();
        let pid = p.pid();
        let e = p.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked, "{m}: {e}");
        let panic = e.panic().unwrap();
        assert_eq!(panic.message(), "the child gave up");
        let loc = panic.location().expect("location");
        assert!(loc.file.ends_with("process.rs"), "{loc}");
        assert_eq!(e.exit_status().unwrap().exitcode(), 1, "{m} pid {pid}");
    }
}

#[test]
fn exit_code_is_reported() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let p = builder(m).start(exits_3).unwrap();
        let e = p.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exited, "{m}: {e}");
        assert_eq!(e.exit_status().unwrap().code(), Some(3));
        assert!(e.to_string().contains("exited with code 3"), "{e}");
    }
}

#[test]
fn abort_is_sigabrt() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let e = builder(m).start(aborts).unwrap().join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Signaled, "{m}: {e}");
        assert_eq!(e.signal(), Some(Signal::SIGABRT));
        assert!(e.to_string().contains("SIGABRT"), "{e}");
    }
}

#[test]
fn segfault_is_sigsegv_and_siblings_survive() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let sibling = builder(m).start(sleeps_100ms).unwrap();
        let e = builder(m).start(segfaults).unwrap().join().unwrap_err();
        assert_eq!(e.signal(), Some(Signal::SIGSEGV), "{m}: {e}");
        assert_eq!(e.exit_status().unwrap().exitcode(), -libc::SIGSEGV);
        assert_eq!(sibling.join().unwrap(), 1, "{m}: the sibling finishes");
    }
}

#[test]
fn sigkill_from_outside() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let p = builder(m).start(sleeps_forever).unwrap();
        assert!(p.is_alive());
        assert_eq!(p.exitcode(), None);
        // SAFETY: plain kill(2) of our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(p.pid(), libc::SIGKILL) }, 0);
        let e = p.join().unwrap_err();
        assert_eq!(e.signal(), Some(Signal::SIGKILL), "{m}: {e}");
    }
}

#[test]
fn endless_loop_timeout_then_kill() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let mut p = builder(m).start(spins_forever).unwrap();
        let e = p.join_timeout(Duration::from_millis(50)).unwrap_err();
        assert!(e.is_timeout(), "{m}: {e}");
        assert!(p.is_alive());
        p.kill().unwrap();
        let e = p.join_timeout(Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.signal(), Some(Signal::SIGKILL), "{m}: {e}");
        assert_eq!(p.exitcode(), Some(-9));
        assert_eq!(
            p.join_timeout(Duration::from_secs(1)).unwrap_err().kind(),
            ErrorKind::AlreadyJoined
        );
    }
}

#[test]
fn terminate_sends_sigterm() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let p = builder(m).start(sleeps_forever).unwrap();
        p.terminate().unwrap();
        assert!(util::eventually(Duration::from_secs(10), || !p.is_alive()));
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM), "{m}");
        // Signalling a reaped child is a no-op.
        p.kill().unwrap();
    }
}

#[test]
fn dropped_handles_leave_no_zombie() {
    let _w = util::watchdog(Duration::from_secs(30));
    let mut pids = Vec::new();
    for m in StartMethod::ALL {
        let p = builder(m).start(sleeps_100ms).unwrap();
        pids.push(p.pid());
        drop(p);
    }
    // The children run on after the drop, and are reaped in the background when they exit.
    assert!(util::eventually(Duration::from_secs(10), || pids
        .iter()
        .all(|&pid| !util::alive(pid))));
    assert!(
        util::eventually(Duration::from_secs(10), || {
            let z = util::zombie_children();
            pids.iter().all(|p| !z.contains(p))
        }),
        "zombies left: {:?}",
        util::zombie_children()
    );
}

#[test]
fn kill_on_drop_kills() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let p = builder(m).kill_on_drop(true).start(sleeps_forever).unwrap();
        let pid = p.pid();
        drop(p);
        assert!(!util::alive(pid), "{m}");
        assert!(!util::zombie_children().contains(&pid));
    }
}

#[test]
fn exec_failure_reports_errno() {
    let e = Process::builder()
        .start_method(StartMethod::Spawn)
        .executable("/nonexistent/program")
        .start(answer)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Start, "{e}");
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
}

/// Issue 9 item 11: a child signalled right after its start (before it has read its
/// launch, for Spawn) used to be reported as `Decode` ("connection reset by peer"): the
/// read error on the result socket outranked the exit status.
#[test]
fn signal_right_after_start_is_reported_as_the_signal() {
    let _w = util::watchdog(Duration::from_secs(300));
    for m in StartMethod::ALL {
        for (signo, signal) in [
            (libc::SIGTERM, Signal::SIGTERM),
            (libc::SIGKILL, Signal::SIGKILL),
        ] {
            for i in 0..50 {
                let p = builder(m).start(sleeps_forever).unwrap();
                if signo == libc::SIGTERM {
                    p.terminate().unwrap();
                } else {
                    p.kill().unwrap();
                }
                let e = p.join().unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Signaled, "{m} {signal} run {i}: {e}");
                assert_eq!(e.signal(), Some(signal), "{m} run {i}: {e}");
            }
        }
    }
}

/// Issue 9 item 11: another program run through `Builder::executable` never reads its
/// launch; its exit status is what `join` reports, not a `Decode` of a reset socket.
#[test]
fn foreign_executable_reports_its_exit() {
    let _w = util::watchdog(Duration::from_secs(60));
    for _ in 0..5 {
        let e = Process::builder()
            .start_method(StartMethod::Spawn)
            .executable("/bin/false")
            .start(answer)
            .unwrap()
            .join()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exited, "{e}");
        assert_eq!(e.exit_status().unwrap().code(), Some(1), "{e}");
        let e = Process::builder()
            .start_method(StartMethod::Spawn)
            .executable("/bin/true")
            .start(answer)
            .unwrap()
            .join()
            .unwrap_err();
        // Exit code 0 without a result is still `Exited`: the child sent nothing.
        assert_eq!(e.kind(), ErrorKind::Exited, "{e}");
        assert_eq!(e.exit_status().unwrap().code(), Some(0), "{e}");
        assert!(e.to_string().contains("without sending a result"), "{e}");
    }
}

fn unserializable() -> util::PanicsOnSerialize {
    util::PanicsOnSerialize(7)
}

fn takes_undeserializable(_: util::PanicsOnDeserialize) -> u8 {
    0
}

/// Issue 9 item 7: a result whose `Serialize` panics in the child was reported as
/// SIGABRT (Spawn, ForkServer) or exit code 101 (Fork), without the panic message.
#[test]
fn result_whose_serialize_panics_is_a_panic() {
    let _w = util::watchdog(Duration::from_secs(60));
    for m in StartMethod::ALL {
        let e = builder(m)
            .start(unserializable)
            .unwrap()
            .join()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked, "{m}: {e}");
        let panic = e.panic().unwrap();
        assert_eq!(panic.message(), "cannot serialize 7", "{m}");
        let loc = panic.location().expect("location");
        assert!(loc.file.ends_with("mod.rs"), "{m}: {loc}");
        assert_eq!(e.exit_status().unwrap().exitcode(), 1, "{m}");
    }
}

/// An argument whose `Deserialize` panics in the child is that panic too.
#[test]
fn argument_whose_deserialize_panics_is_a_panic() {
    let _w = util::watchdog(Duration::from_secs(60));
    for m in [StartMethod::Spawn, StartMethod::ForkServer] {
        let e = builder(m)
            .start_with(takes_undeserializable, util::PanicsOnDeserialize)
            .unwrap()
            .join()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked, "{m}: {e}");
        assert_eq!(e.panic().unwrap().message(), "cannot deserialize", "{m}");
        assert_eq!(e.exit_status().unwrap().exitcode(), 1, "{m}");
    }
}

#[test]
fn fork_with_threads_is_refused_unless_allowed() {
    let _w = util::watchdog(Duration::from_secs(30));
    let e = Process::builder()
        .start_method(StartMethod::Fork)
        .start(answer)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ForkWithThreads);
    assert!(e.to_string().contains("ForkServer"), "{e}");
    let ok = builder(StartMethod::Fork).start(answer);
    assert_eq!(ok.unwrap().join().unwrap(), 42);
}

#[test]
fn name_is_the_process_comm() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let p = builder(m).name("mp-worker").start(comm).unwrap();
        assert_eq!(p.name(), "mp-worker");
        assert_eq!(p.join().unwrap(), "mp-worker", "{m}");
    }
}

#[test]
fn output_can_be_captured() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let (v, out) = builder(m)
            .capture_output(true)
            .start(chatty)
            .unwrap()
            .join_with_output();
        assert_eq!(v.unwrap(), 5);
        assert_eq!(out.stdout, b"to stdout\n", "{m}");
        assert_eq!(out.stderr, b"to stderr\n", "{m}");
    }
}

#[test]
fn children_can_start_children() {
    let _w = util::watchdog(Duration::from_secs(30));
    for outer in StartMethod::ALL {
        for inner in StartMethod::ALL {
            let v = builder(outer)
                .start_with(nested, inner)
                .unwrap()
                .join()
                .unwrap();
            assert_eq!(v, 43, "{outer} -> {inner}");
        }
    }
}

#[test]
fn shared_handle_is_usable_from_many_threads() {
    let _w = util::watchdog(Duration::from_secs(30));
    for m in StartMethod::ALL {
        let p = std::sync::Arc::new(builder(m).start(sleeps_forever).unwrap());
        let watchers: Vec<_> = (0..4)
            .map(|_| {
                let p = std::sync::Arc::clone(&p);
                std::thread::spawn(move || {
                    util::eventually(Duration::from_secs(10), || !p.is_alive())
                })
            })
            .collect();
        p.kill().unwrap();
        for w in watchers {
            assert!(w.join().unwrap(), "{m}");
        }
        assert_eq!(p.exitcode(), Some(-9), "{m}");
    }
}

#[test]
fn handles_dropped_during_unwinding_are_fine() {
    let _w = util::watchdog(Duration::from_secs(30));
    let t = std::thread::spawn(|| dies_holding(()));
    assert!(t.join().is_err());
}

#[test]
fn start_join_cycles_leak_no_descriptors() {
    let _w = util::watchdog(Duration::from_secs(120));
    for m in StartMethod::ALL {
        // Warm up: the fork server and the death pipe are created once per process.
        builder(m).start(answer).unwrap().join().unwrap();
        let before = util::open_fds();
        let n = if m == StartMethod::Spawn { 200 } else { 1000 };
        for _ in 0..n {
            assert_eq!(builder(m).start(answer).unwrap().join().unwrap(), 42);
        }
        let after = util::open_fds();
        // Other tests run in parallel threads of this process and open descriptors too;
        // run this file with nextest (one process per test) for an exact count.
        assert!(
            after <= before + 8,
            "{m}: {before} descriptors before, {after} after {n} cycles"
        );
    }
}

/// What a child sees in its descriptor table: the target of every `/proc/self/fd` link.
fn open_descriptors() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect()
}

/// The pipes this process holds above stdio, as `/proc/self/fd` links (`pipe:[inode]`).
fn pipes_above_stdio() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?.display().to_string();
            (fd > 2 && link.starts_with("pipe:")).then_some(link)
        })
        .collect()
}

/// Issue 10 item 6: a child that does not watch its parent kept the parent's death pipe
/// open for life: a `Fork` child its parent's read end (forgotten, not closed, after the
/// fork), a `ForkServer` child the server's (closed only on the watching path). Run in a
/// process of its own, so that the death pipe and the fork server are made here.
#[test]
fn a_child_that_does_not_watch_holds_no_death_pipe() {
    let out = util::run_ignored("no_death_pipe_helper", Duration::from_secs(90), &[]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by a_child_that_does_not_watch_holds_no_death_pipe"]
fn no_death_pipe_helper() {
    let _w = util::watchdog(Duration::from_secs(60));
    let before = pipes_above_stdio();
    // A watching `ForkServer` child makes this process's death pipe (and the server).
    builder(StartMethod::ForkServer)
        .start(answer)
        .unwrap()
        .join()
        .unwrap();
    let death: Vec<String> = pipes_above_stdio()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!death.is_empty(), "no death pipe was made: {before:?}");
    for m in StartMethod::ALL {
        let seen = builder(m)
            .die_with_parent(false)
            .start(pipes_above_stdio)
            .unwrap()
            .join()
            .unwrap();
        assert!(
            !seen.iter().any(|p| death.contains(p)),
            "{m}: the child holds the death pipe {death:?}: {seen:?}"
        );
    }
}

/// Issue 9: a descriptor the program opened without close-on-exec leaked into `Spawn`
/// children and into the fork server, hence into every `ForkServer` child, and a
/// pipe's reader saw no EOF after the parent closed its write end. Run in a process of
/// its own, so that the fork server starts after the pipe exists.
#[test]
fn unrelated_descriptors_do_not_leak_into_children() {
    let out = util::run_ignored("unrelated_descriptors_helper", Duration::from_secs(90), &[]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by unrelated_descriptors_do_not_leak_into_children"]
fn unrelated_descriptors_helper() {
    let _w = util::watchdog(Duration::from_secs(60));
    // No flags: inherited across exec, as a careless program's pipe would be.
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let link = |fd: &std::os::fd::OwnedFd| {
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
        std::fs::read_link(path).unwrap().display().to_string()
    };
    let write_end = link(&writer);
    for m in StartMethod::ALL {
        let seen = builder(m).start(open_descriptors).unwrap().join().unwrap();
        // `Fork` keeps Python's semantics: the child is a copy, descriptors included.
        let expected = m == StartMethod::Fork;
        assert_eq!(
            seen.contains(&write_end),
            expected,
            "{m}: the child's descriptors are {seen:?}; the pipe is {write_end}"
        );
        // Stdio, the result socket, the death watch: nothing else multiproc hands a
        // child that is given nothing.
        if !expected {
            assert!(seen.len() <= 6, "{m}: {seen:?}");
        }
    }
    // Children that run on while the parent closes its write end: the reader sees EOF.
    let children: Vec<_> = [StartMethod::Spawn, StartMethod::ForkServer]
        .into_iter()
        .map(|m| builder(m).kill_on_drop(true).start(sleeps_forever).unwrap())
        .collect();
    drop(writer);
    let mut fds = [rustix::event::PollFd::new(
        &reader,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::time::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut fds, Some(&timeout)).unwrap();
    assert_eq!(
        ready, 1,
        "no EOF on the pipe within 10 s: a child holds its write end"
    );
    let mut buf = [0u8; 1];
    assert_eq!(rustix::io::read(&reader, &mut buf).unwrap(), 0, "EOF");
    for p in &children {
        assert!(p.is_alive(), "the children still run");
    }
    for p in children {
        p.kill().unwrap();
        assert!(p.join().is_err());
    }
}

/// Starts `per_thread` `ForkServer` children from each of `threads` threads at once, so
/// that their requests are in flight together, then joins them; each child reports
/// its own pid, which must be the one its `Process` holds (an answer filed under the
/// wrong request would swap them). Counts the starts in `started`; returns the start
/// errors.
fn forkserver_burst(
    threads: usize,
    per_thread: usize,
    count: &AtomicUsize,
) -> Vec<multiproc::Error> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut errors = Vec::new();
                    let mut started = Vec::new();
                    for _ in 0..per_thread {
                        match builder(StartMethod::ForkServer).start_with(util::pid::<()>, ()) {
                            Ok(p) => started.push(p),
                            Err(e) => errors.push(e),
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    for p in started {
                        let pid = p.pid();
                        let reported = p.join().expect("join");
                        assert_eq!(i32::try_from(reported).unwrap(), pid);
                    }
                    errors
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    })
}

#[test]
fn forkserver_starts_from_many_threads_each_get_their_own_child() {
    let _w = util::watchdog(Duration::from_secs(120));
    let errors = forkserver_burst(8, 12, &AtomicUsize::new(0));
    assert!(errors.is_empty(), "{errors:?}");
}

/// The fork server killed while several threads' requests are in flight: every start
/// returns (a child, or a typed `Start` error), every started child joins, and the
/// next start gets a new server.
#[test]
fn forkserver_killed_mid_burst_gives_children_or_start_errors_and_no_hang() {
    let _w = util::watchdog(Duration::from_secs(120));
    multiproc::process::preload_forkserver().unwrap();
    let me = i32::try_from(std::process::id()).unwrap();
    let servers = || {
        util::children_of(me)
            .into_iter()
            .filter(|&(pid, _)| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "multiproc-fsrv")
            })
            .map(|(pid, _)| pid)
            .collect::<Vec<_>>()
    };
    // The server names itself after it answers, so its name may lag the preload.
    util::eventually(Duration::from_secs(20), || servers().len() == 1);
    let first = servers();
    assert_eq!(first.len(), 1, "{first:?}");
    let count = AtomicUsize::new(0);
    let errors = std::thread::scope(|s| {
        let burst = s.spawn(|| forkserver_burst(6, 30, &count));
        // Mid-burst: a fifth of the starts made.
        while count.load(Ordering::Relaxed) < 36 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let pid = rustix::process::Pid::from_raw(first[0]).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        burst.join().expect("burst")
    });
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Start, "{e}");
    }
    assert_eq!(
        builder(StartMethod::ForkServer)
            .start(answer)
            .unwrap()
            .join()
            .unwrap(),
        42
    );
    let now = servers();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, first, "a new server");
}
