//! What users of CPython's `multiprocessing.Pool` and `concurrent.futures` tests
//! (`_test_multiprocessing.py`, `test_concurrent_futures`) expect of a pool, checked
//! on both backends: empty inputs, chunk sizes, errors, callbacks called once,
//! timeouts, `Future.cancel()` and `wait()` semantics, a closed pool, and
//! `maxtasksperchild`.
//!
//! Order is made certain with gates (a task waits until the test creates a file),
//! never with sleeps.

mod util;

use util::{pid, thread_id};

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use multiproc::pool::{self, Backend, Pool, WaitFor};
use multiproc::ErrorKind;

const LIMIT: Duration = Duration::from_secs(60);
const BACKENDS: [Backend; 2] = [Backend::Threads, Backend::Processes];
/// Long enough never to pass on a loaded machine; only reached if something is wrong.
const LONG: Duration = Duration::from_secs(20);

fn pool(backend: Backend, workers: usize) -> Pool {
    Pool::builder()
        .backend(backend)
        .workers(workers)
        .build()
        .unwrap()
}

fn sqr(x: i64) -> i64 {
    x * x
}

fn mul(a: i64, b: i64) -> i64 {
    a * b
}

fn fail_on_5(x: i64) -> i64 {
    assert!(x != 5, "bad item {x}");
    x
}

/// A gate a task waits at until the test opens it; it marks that it has started.
struct Gate(PathBuf);

impl Gate {
    fn new() -> Gate {
        let p = std::env::temp_dir().join(util::unique_name("mp-conformance-gate"));
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(p.with_extension("started"));
        Gate(p)
    }

    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    fn open(&self) {
        std::fs::write(&self.0, b"").unwrap();
    }

    fn wait_started(&self) {
        assert!(
            util::eventually(LONG, || self.0.with_extension("started").exists()),
            "the gated task never started"
        );
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("started"));
    }
}

/// Waits at the gate `path`; returns 7.
fn gated(path: String) -> u8 {
    let p = PathBuf::from(path);
    std::fs::write(p.with_extension("started"), b"").unwrap();
    let start = std::time::Instant::now();
    while !p.exists() {
        assert!(start.elapsed() < LONG, "the gate was never opened");
        std::thread::sleep(Duration::from_millis(1));
    }
    7
}

/// `Pool.map(f, [])` is `[]`, and so are `imap`, `imap_unordered` and `starmap`.
#[test]
fn empty_inputs_give_empty_results() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        assert_eq!(p.map(sqr, Vec::new()).unwrap(), Vec::<i64>::new(), "{b:?}");
        assert_eq!(
            p.map_chunked(sqr, Vec::new(), 1).unwrap(),
            Vec::<i64>::new()
        );
        assert!(p.map_results(sqr, Vec::new()).is_empty());
        assert_eq!(p.imap(sqr, Vec::new()).count(), 0);
        assert_eq!(p.imap_unordered(sqr, Vec::new()).count(), 0);
        assert_eq!(
            p.starmap(mul, Vec::<(i64, i64)>::new()).unwrap(),
            Vec::<i64>::new()
        );
        p.join();
    }
}

/// `map(sqr, range(100), chunksize=20)`, a chunk size larger than the input, and
/// `imap`/`imap_unordered` with chunk sizes that do not divide the input.
#[test]
fn chunk_sizes_do_not_change_results() {
    let _w = util::watchdog(LIMIT);
    let want: Vec<i64> = (0..1000).map(sqr).collect();
    for b in BACKENDS {
        let p = pool(b, 2);
        assert_eq!(
            p.map_chunked(sqr, 0..100, 20).unwrap(),
            want[..100],
            "{b:?}"
        );
        assert_eq!(p.map_chunked(sqr, 0..10, 100).unwrap(), want[..10]);
        let got: Vec<i64> = p
            .imap(sqr, 0..1000)
            .chunksize(100)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, want);
        let mut un: Vec<i64> = p
            .imap_unordered(sqr, 0..1000)
            .chunksize(53)
            .collect::<Result<_, _>>()
            .unwrap();
        un.sort_unstable();
        assert_eq!(un, want);
        let star = p.starmap(mul, (0..10).map(|i| (i, i + 1))).unwrap();
        assert_eq!(star, (0..10).map(|i| i * (i + 1)).collect::<Vec<_>>());
        p.join();
    }
}

/// `Pool(0)` and `maxtasksperchild=0` raise `ValueError`; so does `chunksize=0`.
#[test]
fn zero_sizes_are_refused() {
    let _w = util::watchdog(LIMIT);
    assert_eq!(
        Pool::threads(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        Pool::processes(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    for b in BACKENDS {
        let e = Pool::builder()
            .backend(b)
            .workers(1)
            .max_tasks_per_child(0)
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{b:?}");
        for e in [
            Pool::builder().backend(b).chunksize(0).build().unwrap_err(),
            Pool::builder().backend(b).prefetch(0).build().unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{b:?}");
        }
        let p = pool(b, 1);
        let e = p.map_chunked(sqr, 0..3, 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{b:?}");
        // `Executor.map(buffersize=0)`: one error, and nothing runs.
        let mut input = vec![0, 1, 2].into_iter();
        let got: Vec<_> = p.imap(sqr, input.by_ref()).prefetch(0).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(input.len(), 3);
        let got: Vec<_> = p.imap_unordered(sqr, 0..3).chunksize(0).collect();
        assert_eq!(got.len(), 1, "{b:?}");
        assert!(got[0].is_err());
        p.join();
    }
}

/// An exception in a task is re-raised by `get()`: `apply`, `map` and the failing
/// item of `imap` (the items around it still arrive).
#[test]
fn a_panic_is_that_tasks_result() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let e = p.apply(fail_on_5, 5).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked, "{b:?}");
        assert_eq!(e.panic().unwrap().message(), "bad item 5");
        assert_eq!(p.apply(fail_on_5, 4).unwrap(), 4);
        assert!(p.map(fail_on_5, 0..10).unwrap_err().is_panic());
        let items: Vec<_> = p.imap(fail_on_5, 0..10).chunksize(1).collect();
        for (i, r) in items.iter().enumerate() {
            assert_eq!(r.is_err(), i == 5, "{b:?} item {i}: {r:?}");
        }
        let un: Vec<_> = p.imap_unordered(fail_on_5, 0..10).collect();
        assert_eq!(un.iter().filter(|r| r.is_err()).count(), 1);
        p.join();
    }
}

/// `apply_async(callback=…, error_callback=…)`: exactly one call per task, before
/// `get()` returns, with the value or the error.
#[test]
fn callbacks_run_exactly_once() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for x in 0..10 {
            let c = Arc::clone(&calls);
            let s = Arc::clone(&seen);
            hs.push(p.apply_async_with(fail_on_5, x, move |r| {
                c.fetch_add(1, Ordering::SeqCst);
                s.lock()
                    .unwrap()
                    .push((x, r.as_ref().map_err(|e| e.kind()).copied()));
            }));
        }
        for (x, h) in (0..10).zip(hs) {
            let r = h.join();
            assert_eq!(r.is_err(), x == 5, "{b:?}");
            // The callback has run by the time the result is returned.
            assert!(seen.lock().unwrap().iter().any(|(y, _)| *y == x));
        }
        p.join();
        assert_eq!(calls.load(Ordering::SeqCst), 10, "{b:?}");
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable_by_key(|(x, _)| *x);
        for (x, r) in seen {
            match r {
                Ok(v) => assert_eq!(v, x),
                Err(k) => assert_eq!((x, k), (5, ErrorKind::Panicked)),
            }
        }
    }
}

/// `AsyncResult.get(timeout)` raises `TimeoutError` and the result stays usable.
#[test]
fn join_timeout_leaves_the_handle_usable() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 1);
        let gate = Gate::new();
        let mut h = p.submit(gated, gate.arg());
        let e = h.join_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(e.is_timeout(), "{b:?}: {e}");
        assert!(!h.is_finished());
        gate.open();
        assert_eq!(h.join_timeout(LONG).unwrap(), 7);
        p.join();
    }
}

/// `Future.cancel()`: `true` for a pending task (and again once cancelled), `false`
/// for a running or finished one; `cancelled()`, `running()` and `done()` agree.
#[test]
fn cancel_follows_future_semantics() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 1);
        let gate = Gate::new();
        let running = p.submit(gated, gate.arg());
        gate.wait_started();
        let queued = p.submit(sqr, 3);
        assert!(running.is_running(), "{b:?}");
        assert!(!queued.is_running());
        assert!(queued.cancel(), "{b:?}");
        assert!(queued.cancel(), "{b:?}: cancelling twice is still true");
        assert!(queued.is_cancelled() && queued.is_finished());
        assert!(!queued.is_running());
        assert!(
            !running.cancel(),
            "{b:?}: a running task cannot be cancelled"
        );
        assert!(!running.is_cancelled());
        gate.open();
        assert_eq!(running.join().unwrap(), 7, "{b:?}");
        assert_eq!(queued.join().unwrap_err().kind(), ErrorKind::Cancelled);
        let done = p.submit(sqr, 2);
        assert!(util::eventually(LONG, || done.is_finished()));
        assert!(!done.cancel());
        assert!(!done.is_cancelled() && !done.is_running());
        assert_eq!(done.join().unwrap(), 4);
        p.join();
    }
}

/// `wait(FIRST_COMPLETED)`, `wait(ALL_COMPLETED)`, `wait(FIRST_EXCEPTION)` and
/// `wait(timeout=…)`.
#[test]
fn wait_modes() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let gate = Gate::new();
        let blocked = p.submit(gated, gate.arg());
        let open = Gate::new();
        open.open();
        let quick = p.submit(gated, open.arg());
        let hs = vec![blocked, quick];
        assert_eq!(pool::wait(&hs, WaitFor::First, None), vec![1], "{b:?}");
        assert_eq!(
            pool::wait(&hs, WaitFor::All, Some(Duration::from_millis(20))),
            vec![1]
        );
        // No failure: FIRST_EXCEPTION waits for all.
        assert_eq!(
            pool::wait(&hs, WaitFor::FirstError, Some(Duration::from_millis(20))),
            vec![1]
        );
        let failing = p.submit(fail_on_5, 5);
        let ok = p.submit(fail_on_5, 1);
        let hs2 = vec![failing, ok];
        assert!(pool::wait(&hs2, WaitFor::FirstError, None).contains(&0));
        gate.open();
        assert_eq!(pool::wait(&hs, WaitFor::All, None), vec![0, 1]);
        assert_eq!(pool::wait(&hs, WaitFor::FirstError, None), vec![0, 1]);
        for h in hs {
            assert_eq!(h.join().unwrap(), 7);
        }
        let mut hs2 = hs2.into_iter();
        assert!(hs2.next().unwrap().join().unwrap_err().is_panic());
        assert_eq!(hs2.next().unwrap().join().unwrap(), 1);
        assert!(pool::wait::<u8>(&[], WaitFor::First, None).is_empty());
        p.join();
    }
}

/// `as_completed` yields every future exactly once, failures included.
#[test]
fn as_completed_yields_each_once() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let hs: Vec<_> = (0..20).map(|x| p.submit(fail_on_5, x)).collect();
        let mut seen = HashSet::new();
        for (i, r) in pool::as_completed(hs) {
            assert!(seen.insert(i), "{b:?}: {i} twice");
            assert_eq!(r.is_err(), i == 5);
        }
        assert_eq!(seen.len(), 20);
        p.join();
    }
}

/// `IMapIterator.next(timeout)` raises `TimeoutError` and can be called again.
#[test]
fn imap_next_timeout() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let gate = Gate::new();
        let mut it = p.imap(gated, vec![gate.arg()]);
        let e = it.next_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(e.is_timeout(), "{b:?}: {e}");
        gate.open();
        assert_eq!(it.next_timeout(LONG).unwrap().unwrap().unwrap(), 7);
        assert!(it.next_timeout(LONG).unwrap().is_none());
        let gate = Gate::new();
        let mut un = p.imap_unordered(gated, vec![gate.arg()]);
        let e = un.next_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(e.is_timeout(), "{b:?}: {e}");
        gate.open();
        assert_eq!(un.next_timeout(LONG).unwrap().unwrap().unwrap(), 7);
        assert!(un.next().is_none());
        p.join();
    }
}

/// A closed pool refuses new work (Python raises `ValueError("Pool not running")`);
/// `join` and `terminate` may be called again.
#[test]
fn a_closed_pool_refuses_work() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        assert_eq!(p.apply(sqr, 3).unwrap(), 9);
        p.close();
        let closed = |e: multiproc::Error| assert_eq!(e.kind(), ErrorKind::PoolClosed, "{b:?}");
        closed(p.apply(sqr, 3).unwrap_err());
        closed(p.submit(sqr, 3).join().unwrap_err());
        closed(p.map(sqr, 0..10).unwrap_err());
        closed(p.starmap(mul, vec![(1, 2)]).unwrap_err());
        closed(p.imap(sqr, 0..3).next().unwrap().unwrap_err());
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let h = p.apply_async_with(sqr, 2, move |r| {
            assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::PoolClosed);
            c.fetch_add(1, Ordering::SeqCst);
        });
        closed(h.join().unwrap_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        p.join();
        p.join();
        p.terminate();
        closed(p.apply(sqr, 3).unwrap_err());
    }
}

/// Work submitted before `close()` still runs and `join()` waits for it, even when
/// `maxtasksperchild` retires every worker after each task (CPython's
/// `test_pool_worker_lifetime_early_close`, `test_max_tasks_early_shutdown`).
fn close_then_join_runs_queued_work_with_max_tasks(b: Backend) {
    let _w = util::watchdog(LIMIT);
    let p = Pool::builder()
        .backend(b)
        .workers(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let mut hs: Vec<_> = (0..6).map(|x| p.submit(sqr, x)).collect();
    p.close();
    p.join();
    for (x, h) in (0..6).zip(hs.iter_mut()) {
        let r = h.join_timeout(LONG);
        assert_eq!(r.unwrap_or_else(|e| panic!("{b:?}: {e}")), x * x);
    }
}

#[test]
fn close_then_join_runs_queued_work_with_max_tasks_processes() {
    close_then_join_runs_queued_work_with_max_tasks(Backend::Processes);
}

#[test]
fn close_then_join_runs_queued_work_with_max_tasks_threads() {
    close_then_join_runs_queued_work_with_max_tasks(Backend::Threads);
}

/// `maxtasksperchild=3` with one worker: tasks 1-3 run in one worker, task 4 in
/// another (CPython's `test_max_tasks_per_child`), and the pool keeps its size.
#[test]
fn max_tasks_per_child_switches_worker() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = Pool::builder()
            .backend(b)
            .workers(1)
            .max_tasks_per_child(3)
            .build()
            .unwrap();
        let who = |p: &Pool| match b {
            Backend::Threads => p.apply(thread_id, 0).unwrap(),
            Backend::Processes => p.apply(pid, 0).unwrap().to_string(),
            other => unreachable!("{other:?} is not in BACKENDS"),
        };
        let first = who(&p);
        assert_eq!(who(&p), first, "{b:?}");
        assert_eq!(who(&p), first, "{b:?}");
        let fourth = who(&p);
        assert_ne!(fourth, first, "{b:?}");
        assert_eq!(who(&p), fourth, "{b:?}");
        p.join();
    }
    let p = Pool::builder()
        .workers(3)
        .max_tasks_per_child(10)
        .build()
        .unwrap();
    let before: HashSet<i32> = p.worker_pids().into_iter().collect();
    let hs: Vec<_> = (0..100).map(|x| p.submit(sqr, x)).collect();
    for (x, h) in (0..100).zip(hs) {
        assert_eq!(h.join().unwrap(), x * x);
    }
    assert!(util::eventually(LONG, || p.worker_pids().len() == 3));
    let after: HashSet<i32> = p.worker_pids().into_iter().collect();
    assert_ne!(before, after);
    p.join();
}

/// `terminate()` while a `map` runs in another thread: the `map` returns an error
/// instead of hanging, and the pool can be joined.
#[test]
fn terminate_while_a_map_runs() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 1);
        let gate = Gate::new();
        let args: Vec<String> = (0..4).map(|_| gate.arg()).collect();
        std::thread::scope(|s| {
            let m = s.spawn(|| p.map_chunked(gated, args, 1));
            gate.wait_started();
            p.terminate();
            // A thread cannot be killed: the running task ends when the gate opens.
            gate.open();
            let e = m.join().unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PoolClosed, "{b:?}: {e}");
        });
        p.join();
    }
}

/// `add_done_callback`: runs once when the task finishes, at once if it already has,
/// and for a cancelled task too; `exception()` (here `is_failed`) does not consume.
#[test]
fn done_callbacks_and_is_failed() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 1);
        let gate = Gate::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let count = |calls: &Arc<AtomicUsize>| {
            let c = Arc::clone(calls);
            move || {
                c.fetch_add(1, Ordering::SeqCst);
            }
        };
        let running = p.submit(gated, gate.arg());
        running.add_done_callback(count(&calls));
        gate.wait_started();
        let queued = p.submit(fail_on_5, 5);
        queued.add_done_callback(count(&calls));
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{b:?}");
        assert!(queued.cancel());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{b:?}: cancelling completes"
        );
        assert!(!queued.is_failed(), "a cancellation is not an exception");
        gate.open();
        assert!(util::eventually(LONG, || calls.load(Ordering::SeqCst) == 2));
        assert!(!running.is_failed());
        // Already finished: the callback runs at once, on this thread.
        running.add_done_callback(count(&calls));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(running.join().unwrap(), 7);

        let bad = p.submit(fail_on_5, 5);
        assert!(util::eventually(LONG, || bad.is_finished()));
        assert!(bad.is_failed() && bad.is_failed(), "{b:?}");
        assert!(bad.join().unwrap_err().is_panic());
        p.join();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "{b:?}: each callback ran once"
        );
    }
}

/// `as_completed(fs, timeout)` raises `TimeoutError` while none has finished.
#[test]
fn as_completed_with_a_timeout() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let gate = Gate::new();
        let hs = vec![p.submit(gated, gate.arg()), p.submit(gated, gate.arg())];
        let mut it = pool::as_completed(hs);
        let e = it.next_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(e.is_timeout(), "{b:?}: {e}");
        gate.open();
        let mut seen = Vec::new();
        while let Some((i, r)) = it.next_timeout(LONG).unwrap() {
            assert_eq!(r.unwrap(), 7);
            seen.push(i);
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1], "{b:?}");
        assert!(it.next().is_none());
        p.join();
    }
}

/// Dropping a pool (Python's `with Pool() as p:` block ending) does not lose the
/// tasks already submitted: their handles still get results.
#[test]
fn dropping_the_pool_finishes_submitted_tasks() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let hs: Vec<_> = (0..20).map(|x| p.submit(sqr, x)).collect();
        drop(p);
        for (x, h) in (0..20).zip(hs) {
            assert_eq!(h.join().unwrap(), x * x, "{b:?}");
        }
    }
}

/// A value that refuses to serialize.
#[derive(Debug)]
struct Unpicklable;

impl serde::Serialize for Unpicklable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value cannot be pickled"))
    }
}

impl<'de> serde::Deserialize<'de> for Unpicklable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Unpicklable)
    }
}

fn make_unpicklable(_: u8) -> Unpicklable {
    Unpicklable
}

fn take_unpicklable(_: Unpicklable) -> u8 {
    1
}

/// CPython's `test_unpickleable_result` and `test_map_unplicklable`: a result or an
/// argument that cannot cross to the worker process is that task's error (and its
/// error callback's), and the pool keeps working.
#[test]
fn unserializable_values_fail_their_task() {
    let _w = util::watchdog(LIMIT);
    let p = pool(Backend::Processes, 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let h = p.apply_async_with(make_unpicklable, 0, move |r| {
        tx.send(r.as_ref().unwrap_err().kind()).unwrap();
    });
    let e = h.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Encode, "{e}");
    assert!(e.to_string().contains("cannot be pickled"), "{e}");
    assert_eq!(rx.recv().unwrap(), ErrorKind::Encode);
    let e = p.map(take_unpicklable, vec![Unpicklable]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Encode, "{e}");
    assert_eq!(p.apply(sqr, 4).unwrap(), 16);
    p.join();
}

fn parse(s: String) -> i64 {
    s.parse().expect("not a number")
}

/// `map_async`/`starmap_async`: `get()` and `get(timeout)`, an empty input,
/// `test_map_async_callbacks` (one call with the list, or with the error), and a
/// closed pool.
#[test]
fn map_async_and_its_callbacks() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let want: Vec<i64> = (0..10).map(sqr).collect();
        assert_eq!(p.map_async(sqr, 0..10).join().unwrap(), want, "{b:?}");
        let empty = p.map_async(sqr, Vec::new());
        assert!(empty.is_finished());
        assert_eq!(empty.join().unwrap(), Vec::<i64>::new());
        let tuples: Vec<(i64, i64)> = (0..100).zip((0..100).rev()).collect();
        assert_eq!(
            p.starmap_async(mul, tuples.clone()).join().unwrap(),
            tuples.iter().map(|&(a, b)| a * b).collect::<Vec<_>>()
        );
        assert_eq!(util::block_on(p.map_async(sqr, 0..10)).unwrap(), want);

        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let c = Arc::clone(&calls);
        let h = p.map_async_with(parse, vec!["1".to_string()], move |r| {
            c.lock()
                .unwrap()
                .push(r.as_ref().map_err(|e| e.kind()).cloned());
        });
        assert!(h.wait_timeout(LONG));
        assert_eq!(*calls.lock().unwrap(), vec![Ok(vec![1])], "{b:?}");
        assert_eq!(h.join().unwrap(), vec![1]);
        let c = Arc::clone(&calls);
        let h = p.map_async_with(parse, vec!["a".to_string(), "2".into()], move |r| {
            c.lock()
                .unwrap()
                .push(r.as_ref().map_err(|e| e.kind()).cloned());
        });
        assert!(h.join().unwrap_err().is_panic());
        assert_eq!(calls.lock().unwrap().len(), 2);
        assert_eq!(calls.lock().unwrap()[1], Err(ErrorKind::Panicked), "{b:?}");

        let gate = Gate::new();
        let mut h = p.map_async(gated, vec![gate.arg(), gate.arg()]);
        let e = h.join_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(e.is_timeout(), "{b:?}: {e}");
        assert!(!h.is_finished() && !h.wait_timeout(Duration::ZERO));
        gate.open();
        assert_eq!(h.join_timeout(LONG).unwrap(), vec![7, 7]);

        p.close();
        let e = p.map_async(sqr, 0..3).join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolClosed, "{b:?}");
        p.join();
    }
}

/// CPython's `test_terminate`: `terminate()` right after a long `map_async` returns
/// without running the queue, and the map's handle gets an error.
#[test]
fn terminate_after_a_long_map_async() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let gate = Gate::new();
        let h = p.map_async(gated, vec![gate.arg(); 1000]);
        gate.wait_started();
        p.terminate();
        gate.open();
        p.join();
        let e = h.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolClosed, "{b:?}: {e}");
    }
}

fn make_bad(_: u8) -> util::BadRoundtrip {
    util::BadRoundtrip
}

fn take_bad(_: util::BadRoundtrip) -> u8 {
    1
}

/// procspawn's pool `test_bad_roundtrip_does_not_hang`: a result (or an argument)
/// that does not decode on the other side fails its task, and the pool still works.
#[test]
fn a_value_that_does_not_decode_fails_its_task() {
    let _w = util::watchdog(LIMIT);
    let p = pool(Backend::Processes, 1);
    let mut h = p.submit(make_bad, 0);
    let e = h.join_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    let mut h = p.submit(take_bad, util::BadRoundtrip);
    let e = h.join_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert_eq!(p.apply(sqr, 6).unwrap(), 36);
    p.join();
}

/// procspawn's pool `test_overload`: with more tasks than workers, exactly one task
/// per worker is running; the rest wait. `terminate` (procspawn's `kill`) ends it.
#[test]
fn more_tasks_than_workers() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 2);
        let gate = Gate::new();
        let hs: Vec<_> = (0..10).map(|_| p.submit(gated, gate.arg())).collect();
        let running = || hs.iter().filter(|h| h.is_running()).count();
        assert!(
            util::eventually(LONG, || running() == 2),
            "{b:?}: {}",
            running()
        );
        p.terminate();
        gate.open();
        p.join();
        assert!(
            hs.iter().all(|h| h.is_finished() && !h.is_running()),
            "{b:?}"
        );
    }
}

/// A sequence number per worker: the order in which one worker ran its tasks.
fn seq(_: u8) -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// rayon's `spawn_fifo_order`: one worker runs submitted tasks in submission order.
#[test]
fn one_worker_runs_tasks_in_order() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 1);
        let hs: Vec<_> = (0..50).map(|_| p.submit(seq, 0)).collect();
        let got: Vec<usize> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{b:?}: {got:?}");
        p.join();
    }
}

/// `test_concurrent_futures.test_shutdown`: `test_hang_gh94440` (a task cancelled
/// right before `join` does not hang it), `test_del_shutdown` (an async map
/// submitted before the pool is dropped still completes), `test_hang_issue12364`
/// (every result after `join`), and gh-132969 (`max_tasks_per_child=1`, a failing
/// task, then `close`: no hang).
#[test]
fn shutdown_corner_cases() {
    let _w = util::watchdog(LIMIT);
    for b in BACKENDS {
        let p = pool(b, 1);
        assert_eq!(p.apply(sqr, 1).unwrap(), 1);
        let h = p.submit(sqr, 2);
        h.cancel();
        p.join();
        assert!(h.is_finished(), "{b:?}");

        let p = pool(b, 5);
        let m = p.map_async(sqr, -5..5);
        drop(p);
        assert_eq!(
            m.join().unwrap(),
            (-5..5).map(sqr).collect::<Vec<_>>(),
            "{b:?}"
        );

        let p = pool(b, 5);
        let hs: Vec<_> = (0..50).map(|x| p.submit(sqr, x)).collect();
        p.join();
        for (x, h) in (0..50).zip(hs) {
            assert!(h.is_finished());
            assert_eq!(h.join().unwrap(), x * x);
        }

        for workers in [2, 4] {
            let p = Pool::builder()
                .backend(b)
                .workers(workers)
                .max_tasks_per_child(1)
                .build()
                .unwrap();
            let hs = [
                p.submit(fail_on_5, 1),
                p.submit(fail_on_5, 5),
                p.submit(fail_on_5, 3),
            ];
            let mut sum = 0;
            for h in hs {
                match h.join() {
                    Ok(v) => sum += v,
                    Err(_) => break,
                }
            }
            assert_eq!(sum, 1, "{b:?}");
            p.close();
            drop(p);
        }
    }
}

/// Exits the process when deserialized (in the worker).
#[derive(Debug)]
struct ExitOnDecode;

impl serde::Serialize for ExitOnDecode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> serde::Deserialize<'de> for ExitOnDecode {
    #[allow(clippy::disallowed_methods, clippy::exit)]
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        std::process::exit(3)
    }
}

/// Aborts the process when serialized (in the worker, as a result).
#[derive(Debug)]
struct AbortOnEncode;

impl serde::Serialize for AbortOnEncode {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        // No core file for this deliberate crash.
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Core,
            rustix::process::Rlimit {
                current: Some(0),
                maximum: Some(0),
            },
        );
        std::process::abort()
    }
}

impl<'de> serde::Deserialize<'de> for AbortOnEncode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| AbortOnEncode)
    }
}

fn take_exit_on_decode(_: ExitOnDecode) -> u8 {
    1
}

fn make_abort_on_encode(_: u8) -> AbortOnEncode {
    AbortOnEncode
}

/// `test_concurrent_futures.test_deadlock`: a worker that dies while decoding its
/// argument or encoding its result fails only that task, with how it died; the pool
/// replaces the worker and `join` does not hang.
#[test]
fn a_worker_dying_in_serde_fails_only_its_task() {
    let _w = util::watchdog(LIMIT);
    let p = pool(Backend::Processes, 2);
    let e = p.apply(take_exit_on_decode, ExitOnDecode).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    assert_eq!(e.exit_status().and_then(|s| s.code()), Some(3), "{e}");
    let e = p.apply(make_abort_on_encode, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    assert_eq!(e.signal(), Some(multiproc::Signal::SIGABRT), "{e}");
    assert_eq!(p.map(sqr, 0..10).unwrap()[9], 81);
    let late = p.submit(make_abort_on_encode, 0);
    p.join();
    assert_eq!(late.join().unwrap_err().kind(), ErrorKind::WorkerDied);
}
