//! What users of CPython's `_TestProcess` and `test_threading` expect of a process or
//! thread handle: `exitcode` is `None` while running, then `0`, the exit code, `1`
//! after an uncaught panic, or `-signal`; `join(timeout)` leaves a running child
//! alive; `is_alive()` is false once it ended; `terminate()` gives `-SIGTERM`, also
//! for many children at once (`test_many_processes`); the `sentinel` becomes ready.

mod util;

use util::{answer, builder, sleeps_forever};

use std::os::fd::AsFd;
use std::time::Duration;

use multiproc::{ErrorKind, Process, Signal, StartMethod, Thread};

const LIMIT: Duration = Duration::from_secs(60);
const LONG: Duration = Duration::from_secs(20);

#[allow(clippy::disallowed_methods, clippy::exit)]
fn exits_with(code: i32) -> u64 {
    std::process::exit(code)
}

fn panics() -> u64 {
    panic!("uncaught")
}

/// `rustix::event::poll` of the sentinel: readable means the child has ended.
fn sentinel_ready<T>(p: &Process<T>, timeout: Duration) -> bool {
    let fd = p.as_fd();
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    rustix::event::poll(&mut fds, Some(&ts)).unwrap() == 1
}

#[test]
fn exitcode_through_a_childs_life() {
    let _w = util::watchdog(LIMIT);
    for m in StartMethod::ALL {
        let mut p = builder(m).name("sleeper").start(sleeps_forever).unwrap();
        assert_eq!(p.name(), "sleeper");
        assert!(p.pid() > 0 && p.pid() as u32 != std::process::id());
        assert_eq!(p.exitcode(), None, "{m}");
        assert!(p.is_alive());
        assert!(!sentinel_ready(&p, Duration::ZERO));
        // `join(0)` returns at once and the child lives on.
        assert!(p.join_timeout(Duration::ZERO).unwrap_err().is_timeout());
        assert!(p.is_alive() && p.exitcode().is_none(), "{m}");
        p.terminate().unwrap();
        assert!(sentinel_ready(&p, LONG), "{m}");
        let e = p.join_timeout(LONG).unwrap_err();
        assert_eq!(e.signal(), Some(Signal::SIGTERM), "{m}: {e}");
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM), "{m}");
        assert!(!p.is_alive());
        // Signalling an ended child is a no-op, as in Python.
        p.terminate().unwrap();
        p.kill().unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM));

        let mut p = builder(m).start(answer).unwrap();
        assert_eq!(p.join_timeout(LONG).unwrap(), 42, "{m}");
        assert_eq!(p.exitcode(), Some(0));
        assert!(!p.is_alive());
        assert!(sentinel_ready(&p, Duration::ZERO));

        let mut p = builder(m).start_with(exits_with, 8).unwrap();
        assert_eq!(p.join_timeout(LONG).unwrap_err().kind(), ErrorKind::Exited);
        assert_eq!(p.exitcode(), Some(8), "{m}");

        let mut p = builder(m).start(panics).unwrap();
        assert!(p.join_timeout(LONG).unwrap_err().is_panic());
        assert_eq!(
            p.exitcode(),
            Some(1),
            "{m}: an uncaught panic is exit code 1"
        );

        let mut p = builder(m).start(sleeps_forever).unwrap();
        p.kill().unwrap();
        assert!(p.join_timeout(LONG).is_err());
        assert_eq!(p.exitcode(), Some(-libc::SIGKILL), "{m}");
    }
}

/// `test_many_processes`: many children at once, all joined; then many terminated.
#[test]
fn many_processes() {
    let _w = util::watchdog(LIMIT);
    let n = 20;
    let ps: Vec<_> = (0..n)
        .map(|_| Process::builder().start(answer).unwrap())
        .collect();
    for p in ps {
        assert_eq!(p.join().unwrap(), 42);
    }
    let mut ps: Vec<_> = (0..n)
        .map(|_| Process::builder().start(sleeps_forever).unwrap())
        .collect();
    for p in &ps {
        assert!(p.is_alive());
        p.terminate().unwrap();
    }
    for p in &mut ps {
        assert!(p.join_timeout(LONG).is_err());
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM));
    }
}

/// `test_threading`: a thread's name, `is_alive()` false once its function returned
/// (joined or not), `join(timeout)` on a running thread, and the panic from `join`.
#[test]
fn thread_lifecycle() {
    let _w = util::watchdog(LIMIT);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut t = Thread::builder()
        .name("worker-1")
        .start(move || rx.recv().is_ok())
        .unwrap();
    assert_eq!(t.name(), Some("worker-1"));
    assert!(t.is_alive());
    assert!(t.join_timeout(Duration::ZERO).unwrap_err().is_timeout());
    assert!(t.is_alive());
    tx.send(()).unwrap();
    assert!(t.join_timeout(LONG).unwrap());
    assert!(!t.is_alive());

    let quick = Thread::start(|| 5).unwrap();
    assert!(util::eventually(LONG, || !quick.is_alive()));
    assert_eq!(quick.join().unwrap(), 5);

    let bad = Thread::start(|| -> u8 { panic!("thread failed") }).unwrap();
    assert!(util::eventually(LONG, || !bad.is_alive()));
    let e = bad.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.panic().unwrap().message(), "thread failed");
}

fn env_of(names: Vec<String>) -> Vec<Option<String>> {
    names.into_iter().map(|n| std::env::var(n).ok()).collect()
}

/// procspawn's `test_envvar`, `test_env_remove` and `test_env_clear`, with every
/// start method.
#[test]
fn environment_of_the_child() {
    let _w = util::watchdog(LIMIT);
    let names = || vec!["MP_TEST_FOO".to_string(), "PATH".to_string()];
    for m in StartMethod::ALL {
        let got = builder(m)
            .env("MP_TEST_FOO", "42")
            .start_with(env_of, names())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got[0].as_deref(), Some("42"), "{m}");
        assert!(got[1].is_some(), "{m}: PATH is inherited");
        let got = builder(m)
            .env_remove("PATH")
            .start_with(env_of, names())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got, vec![None, None], "{m}");
        let got = builder(m)
            .env("MP_TEST_DROPPED", "x")
            .env_clear()
            .env("MP_TEST_FOO", "present")
            .start_with(
                env_of,
                vec![
                    "MP_TEST_FOO".into(),
                    "PATH".into(),
                    "MP_TEST_DROPPED".into(),
                ],
            )
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got, vec![Some("present".into()), None, None], "{m}");
    }
}

fn bad_roundtrip() -> util::BadRoundtrip {
    util::BadRoundtrip
}

/// procspawn's `test_bad_roundtrip_does_not_hang`: a result that does not decode is
/// an error, not a hang or a timeout.
#[test]
fn a_result_that_does_not_decode_is_an_error() {
    let _w = util::watchdog(LIMIT);
    for m in StartMethod::ALL {
        let mut p = builder(m).start(bad_roundtrip).unwrap();
        let e = p.join_timeout(LONG).unwrap_err();
        assert!(!e.is_timeout(), "{m}: {e}");
        assert_eq!(e.kind(), ErrorKind::Decode, "{m}: {e}");
    }
}

/// `test_threading`'s `test_joining_current_thread`: a thread joining itself gets an
/// error instead of waiting forever.
#[test]
fn a_thread_cannot_join_itself() {
    let _w = util::watchdog(LIMIT);
    let (tx, rx) = std::sync::mpsc::channel::<Thread<()>>();
    let (kinds_tx, kinds_rx) = std::sync::mpsc::channel();
    let t = Thread::start(move || {
        let mut me = rx.recv().unwrap();
        let a = me.join_timeout(Duration::ZERO).map_err(|e| e.kind());
        let b = me.join().map_err(|e| e.kind());
        kinds_tx.send((a, b)).unwrap();
    })
    .unwrap();
    tx.send(t).unwrap();
    let (a, b) = kinds_rx.recv().unwrap();
    assert_eq!(a, Err(ErrorKind::InvalidInput));
    assert_eq!(b, Err(ErrorKind::InvalidInput));
}
