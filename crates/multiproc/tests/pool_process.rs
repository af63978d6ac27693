//! The process pool: results, every way a task can fail, worker replacement, the
//! executor interface, and a chaos run.

mod util;

use util::{pid, sleep_ms, square};

use std::collections::HashSet;
use std::time::Duration;

use multiproc::pool::{self, Backend, Pool, WaitFor};
use multiproc::{ErrorKind, Signal, StartMethod};

const LIMIT: Duration = Duration::from_secs(120);

fn no_core_dumps() {
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
}

fn raise(sig: rustix::process::Signal) {
    no_core_dumps();
    let _ = rustix::process::kill_process(rustix::process::getpid(), sig);
    std::thread::sleep(Duration::from_secs(10));
}

/// How a chaos task behaves.
fn behave(x: u32) -> u32 {
    match x % 100 {
        0 => raise(rustix::process::Signal::SEGV),
        1 => {
            no_core_dumps();
            std::process::abort()
        }
        2 => exit_7(),
        3 => raise(rustix::process::Signal::KILL),
        4 => raise(rustix::process::Signal::BUS),
        5 => panic!("task {x} panicked"),
        50 => std::thread::sleep(Duration::from_secs(60)),
        _ => {}
    }
    x + 1
}

#[allow(clippy::exit, clippy::disallowed_methods)]
fn exit_7() {
    std::process::exit(7)
}

fn processes(n: usize) -> Pool {
    Pool::builder()
        .backend(Backend::Processes)
        .workers(n)
        .build()
        .unwrap()
}

#[test]
fn map_every_start_method() {
    let _w = util::watchdog(LIMIT);
    for m in StartMethod::ALL {
        let pool = Pool::builder().workers(2).start_method(m).build().unwrap();
        let want: Vec<u64> = (0..1000).map(|x| x * x).collect();
        assert_eq!(pool.map(square, 0..1000).unwrap(), want, "{m}");
        assert_eq!(pool.map_chunked(square, 0..10, 1).unwrap()[3], 9, "{m}");
        pool.join();
    }
}

/// Automatic chunk sizes follow the cost measured by earlier maps of the same
/// function (one chunk for a whole trivial input, the fixed split for heavy items):
/// whatever sizes they take, every way to map keeps the input's order and count.
#[test]
fn maps_keep_order_as_automatic_chunk_sizes_adapt() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(2);
    for round in 0..3 {
        for n in [0u64, 1, 7, 1_000, 20_000] {
            let want: Vec<u64> = (0..n).map(|x| x * x).collect();
            assert_eq!(pool.map(square, 0..n).unwrap(), want, "map {n} #{round}");
            let got: Vec<u64> = pool
                .map_results(square, 0..n)
                .into_iter()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(got, want, "map_results {n} #{round}");
            let got = pool.map_async(square, 0..n).join().unwrap();
            assert_eq!(got, want, "map_async {n} #{round}");
            assert_eq!(pool.map_chunked(square, 0..n, 3).unwrap(), want);
        }
        assert_eq!(pool.map(sleep_ms, [1u64; 8]).unwrap().len(), 8);
    }
    pool.join();
}

fn neg_i8(x: i8) -> i16 {
    -i16::from(x)
}

fn halve(x: i64) -> f64 {
    x as f64 / 2.0
}

fn odd(x: u64) -> bool {
    x % 2 == 1
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Meters(u32);

fn meters(x: f32) -> Meters {
    Meters(x as u32)
}

/// Chunks of plain numbers take a faster way than the codec (`flat`) with the same
/// bytes: every integer width, signed and not, floats, `bool`s and newtypes, at
/// their extremes, map as they do locally.
#[test]
fn maps_of_plain_numbers_keep_every_value() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(2);
    let bytes: Vec<i8> = (i8::MIN..=i8::MAX).collect();
    let want: Vec<i16> = bytes.iter().map(|&x| neg_i8(x)).collect();
    assert_eq!(pool.map(neg_i8, bytes).unwrap(), want);
    let mut wide: Vec<i64> = vec![i64::MIN, i64::MAX, -1, 0, 1, 1 << 56, -(1 << 56)];
    wide.extend((-5_000..5_000).map(|x| x * 977_777_777));
    let want: Vec<f64> = wide.iter().map(|&x| halve(x)).collect();
    assert_eq!(pool.map(halve, wide).unwrap(), want);
    let big: Vec<u64> = (0..64).map(|s| 1u64 << s).chain([u64::MAX]).collect();
    let want: Vec<bool> = big.iter().map(|&x| odd(x)).collect();
    assert_eq!(pool.map(odd, big).unwrap(), want);
    let floats = vec![0.0f32, 1.5, 3e9, f32::MAX, -2.0];
    let want: Vec<Meters> = floats.iter().map(|&x| meters(x)).collect();
    assert_eq!(pool.map(meters, floats).unwrap(), want);
    pool.join();
}

/// A task timeout applies to a whole chunk, so with one the automatic split stays the
/// fixed one: chunks grown on the cost of earlier, cheaper calls of the same function
/// would run past the timeout although each item passes.
#[test]
fn a_task_timeout_keeps_chunks_small_after_cheap_maps() {
    let _w = util::watchdog(LIMIT);
    let pool = Pool::builder()
        .backend(Backend::Processes)
        .workers(2)
        .task_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for _ in 0..5 {
        assert_eq!(pool.map(sleep_ms, [0u64; 2_000]).unwrap().len(), 2_000);
    }
    assert_eq!(pool.map(sleep_ms, [150u64; 16]).unwrap(), [150u64; 16]);
    pool.join();
}

#[test]
fn panic_is_that_tasks_error() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(2);
    let rs = pool.map_results(behave, [10, 5, 11]);
    assert_eq!(*rs[0].as_ref().unwrap(), 11);
    let e = rs[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.panic().unwrap().message(), "task 5 panicked");
    assert_eq!(*rs[2].as_ref().unwrap(), 12);
    pool.join();
}

fn wrap(x: u32) -> util::PanicsOnSerialize {
    util::PanicsOnSerialize(x)
}

/// Issue 9 item 7: a result whose `Serialize` panics in a worker killed the worker
/// (every task of its chunk became `WorkerDied`). It is that item's panic, the other
/// items of the chunk keep their values, and the worker serves on.
#[test]
fn result_whose_serialize_panics_is_that_items_panic() {
    let _w = util::watchdog(LIMIT);
    for m in StartMethod::ALL {
        let pool = Pool::builder()
            .backend(Backend::Processes)
            .start_method(m)
            .workers(1)
            .chunksize(4)
            .build()
            .unwrap();
        let worker = pool.apply(pid, 0).unwrap();
        let e = pool.apply(wrap, 3).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked, "{m}: {e}");
        let panic = e.panic().unwrap();
        assert_eq!(panic.message(), "cannot serialize 3", "{m}");
        assert!(panic.location().expect("location").file.ends_with("mod.rs"));
        assert_eq!(
            pool.apply(wrap, 4).unwrap(),
            util::PanicsOnSerialize(4),
            "{m}"
        );
        let rs = pool.map_results(wrap, 0..8);
        assert_eq!(rs.len(), 8);
        for (i, r) in rs.into_iter().enumerate() {
            if i % 2 == 1 {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Panicked, "{m} item {i}: {e}");
                assert_eq!(
                    e.panic().unwrap().message(),
                    format!("cannot serialize {i}")
                );
            } else {
                assert_eq!(
                    r.unwrap(),
                    util::PanicsOnSerialize(i as u32),
                    "{m} item {i}"
                );
            }
        }
        assert_eq!(
            pool.apply(pid, 0).unwrap(),
            worker,
            "{m}: the worker serves on"
        );
        pool.join();
    }
}

fn undecodable(_: u8) -> util::PanicsOnDeserialize {
    util::PanicsOnDeserialize
}

/// A result whose `Deserialize` panics in the parent is that task's panic, also when a
/// callback makes the pool's own thread decode it (a panic there ended the manager
/// thread, and with it the pool).
#[test]
fn result_whose_deserialize_panics_fails_only_its_task() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let h = pool.apply_async_with(undecodable, 0, move |r| {
        let _ = tx.send(r.as_ref().err().map(|e| e.kind()));
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)).unwrap(),
        Some(ErrorKind::Panicked)
    );
    let e = h.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked, "{e}");
    assert_eq!(e.panic().unwrap().message(), "cannot deserialize");
    let e = pool.apply(undecodable, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked, "{e}");
    assert_eq!(pool.apply(square, 3).unwrap(), 9, "the pool serves on");
    pool.join();
}

#[test]
fn each_way_to_die_is_named() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(2);
    let died = |x: u32| {
        let e = pool.apply(behave, x).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
        e
    };
    assert_eq!(died(0).signal(), Some(Signal::SIGSEGV));
    assert_eq!(died(1).signal(), Some(Signal::SIGABRT));
    assert_eq!(died(2).exit_status().unwrap().code(), Some(7));
    let e = died(3);
    assert_eq!(e.signal(), Some(Signal::SIGKILL));
    assert!(e.to_string().contains("SIGKILL"), "{e}");
    // The pool is whole afterwards.
    assert_eq!(pool.map(square, 0..10).unwrap()[9], 81);
    assert_eq!(pool.worker_pids().len(), 2);
    pool.join();
}

#[test]
fn tasks_queued_behind_a_crash_complete() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(1);
    let handles: Vec<_> = [10, 0, 11, 12, 3, 13]
        .into_iter()
        .map(|x| pool.submit(behave, x))
        .collect();
    let rs: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    assert_eq!(*rs[0].as_ref().unwrap(), 11);
    assert_eq!(rs[1].as_ref().unwrap_err().signal(), Some(Signal::SIGSEGV));
    assert_eq!(*rs[2].as_ref().unwrap(), 12);
    assert_eq!(*rs[3].as_ref().unwrap(), 13);
    assert_eq!(rs[4].as_ref().unwrap_err().signal(), Some(Signal::SIGKILL));
    assert_eq!(*rs[5].as_ref().unwrap(), 14);
    pool.join();
}

#[test]
fn timeout_kills_and_replaces_the_worker() {
    let _w = util::watchdog(LIMIT);
    let pool = Pool::builder()
        .workers(1)
        // Long enough that the 1 ms task is never mistaken for a hung one on a loaded
        // machine.
        .task_timeout(Duration::from_millis(1000))
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let slow = pool.submit(sleep_ms, 30_000);
    let after = pool.submit(sleep_ms, 1);
    let e = slow.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(after.join().unwrap(), 1);
    assert_ne!(pool.worker_pids(), before);
    pool.join();
}

#[test]
fn worker_killed_from_outside_is_replaced() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(2);
    let victim = pool.worker_pids()[0];
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(victim).unwrap(),
        rustix::process::Signal::KILL,
    );
    assert!(util::eventually(Duration::from_secs(10), || {
        let pids = pool.worker_pids();
        pids.len() == 2 && !pids.contains(&victim)
    }));
    assert_eq!(pool.map(square, 0..100).unwrap()[10], 100);
    pool.join();
}

#[test]
fn memory_limit_contains_a_runaway_task() {
    let _w = util::watchdog(LIMIT);
    fn hog(mb: usize) -> usize {
        no_core_dumps();
        let v = vec![1u8; mb << 20];
        std::hint::black_box(&v);
        v.len()
    }
    let pool = Pool::builder()
        .workers(1)
        .memory_limit(512 << 20)
        .build()
        .unwrap();
    let e = pool.apply(hog, 2048).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    assert_eq!(e.signal(), Some(Signal::SIGABRT));
    assert_eq!(pool.apply(hog, 1).unwrap(), 1 << 20);
    pool.join();
}

#[test]
fn cpu_time_limit_contains_a_spinning_task() {
    let _w = util::watchdog(LIMIT);
    fn spin(_: u8) -> u8 {
        no_core_dumps();
        loop {
            std::hint::spin_loop();
        }
    }
    let pool = Pool::builder()
        .workers(1)
        .cpu_time_limit(Duration::from_secs(1))
        .build()
        .unwrap();
    let e = pool.apply(spin, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    assert_eq!(e.signal().and_then(Signal::name), Some("SIGXCPU"));
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
    pool.join();
}

#[test]
fn retries_rerun_a_task_whose_worker_died() {
    let _w = util::watchdog(LIMIT);
    fn crash_once(path: String) -> String {
        if std::fs::metadata(&path).is_err() {
            std::fs::write(&path, b"x").unwrap();
            raise(rustix::process::Signal::KILL);
        }
        path
    }
    let path = std::env::temp_dir().join(util::unique_name("mp-pool-retry"));
    let path = path.to_string_lossy().into_owned();
    let pool = Pool::builder().workers(1).retries(1).build().unwrap();
    assert_eq!(pool.apply(crash_once, path.clone()).unwrap(), path);
    let _ = std::fs::remove_file(&path);
    pool.join();
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    let _w = util::watchdog(LIMIT);
    let pool = Pool::builder()
        .workers(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let pids: HashSet<u32> = pool
        .map_chunked(pid, 0..10, 1)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(pids.len(), 5);
    pool.join();
}

#[test]
fn initializer_runs_in_every_worker_and_its_panic_fails_build() {
    let _w = util::watchdog(LIMIT);
    fn set_env(v: String) {
        assert!(v != "bad", "bad initializer argument");
        std::env::set_var("MP_POOL_INIT", v);
    }
    fn read_env(_: u8) -> String {
        std::env::var("MP_POOL_INIT").unwrap_or_default()
    }
    let pool = Pool::builder()
        .workers(2)
        .initializer(set_env, "ok".to_string())
        .build()
        .unwrap();
    assert!(pool
        .map_chunked(read_env, 0..8, 1)
        .unwrap()
        .iter()
        .all(|s| s == "ok"));
    pool.join();
    let e = Pool::builder()
        .workers(1)
        .initializer(set_env, "bad".to_string())
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Start);
    assert!(e.to_string().contains("bad initializer argument"), "{e}");
}

/// What a worker's initializer shares with the parent: all three hold descriptors.
type Shared = (
    multiproc::Value<u64>,
    multiproc::Lock,
    multiproc::Queue<u32>,
);

fn count_worker(shared: Shared) {
    let (count, lock, pids) = shared;
    let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    count.set(count.get() + 1);
    drop(guard);
    pids.put(std::process::id()).unwrap();
}

/// Issue 9 item 12: an initializer argument holding a descriptor failed to build the
/// pool ("file descriptor #0 did not arrive"), with every start method. Replacement
/// workers (after a crash, or max_tasks_per_child) run the initializer again with the
/// same objects.
#[test]
fn initializer_argument_may_hold_descriptors() {
    let _w = util::watchdog(LIMIT);
    for m in StartMethod::ALL {
        for max_tasks in [None, Some(1)] {
            let count = multiproc::Value::<u64>::new(0).unwrap();
            let lock = multiproc::Lock::new().unwrap();
            let pids = multiproc::Queue::<u32>::new().unwrap();
            let shared = (count.clone(), lock.clone(), pids.clone());
            let mut b = Pool::builder()
                .backend(Backend::Processes)
                .start_method(m)
                .workers(2)
                .initializer(count_worker, shared);
            if let Some(n) = max_tasks {
                b = b.max_tasks_per_child(n);
            }
            let pool = b
                .build()
                .unwrap_or_else(|e| panic!("{m} {max_tasks:?}: {e}"));
            let mut ran: HashSet<u32> = pool
                .map_chunked(pid, 0..6, 1)
                .unwrap()
                .into_iter()
                .collect();
            if max_tasks.is_none() {
                // A worker that dies is replaced by one that runs the initializer too.
                let e = pool.apply(behave, 3).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::WorkerDied, "{m}: {e}");
                ran.extend(pool.map_chunked(pid, 0..6, 1).unwrap());
            }
            pool.join();
            let mut inited = HashSet::new();
            while let Ok(p) = pids.try_get() {
                assert!(inited.insert(p), "{m}: pid {p} ran the initializer twice");
            }
            assert!(ran.is_subset(&inited), "{m}: {ran:?} not all in {inited:?}");
            assert_eq!(count.get(), inited.len() as u64, "{m} {max_tasks:?}");
            match max_tasks {
                None => assert_eq!(inited.len(), 3, "{m}: two workers and a replacement"),
                Some(_) => assert!(ran.len() == 6 && inited.len() >= 6, "{m}: {inited:?}"),
            }
        }
    }
}

fn bump(count: multiproc::Value<u64>) -> u64 {
    count.fetch_add(1) + 1
}

/// A task's argument may hold descriptors too: they travel with the task.
#[test]
fn task_argument_may_hold_descriptors() {
    let _w = util::watchdog(LIMIT);
    for m in StartMethod::ALL {
        let pool = Pool::builder()
            .backend(Backend::Processes)
            .start_method(m)
            .workers(2)
            .build()
            .unwrap();
        let count = multiproc::Value::<u64>::new(0).unwrap();
        let mut seen: Vec<u64> = pool.map_chunked(bump, vec![count.clone(); 10], 3).unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (1..=10).collect::<Vec<_>>(), "{m}");
        assert_eq!(pool.apply(bump, count.clone()).unwrap(), 11, "{m}");
        assert_eq!(count.get(), 11, "{m}");
        pool.join();
    }
}

#[test]
fn terminate_fails_what_has_not_finished() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(1);
    let handles: Vec<_> = (0..5).map(|_| pool.submit(sleep_ms, 10_000)).collect();
    std::thread::sleep(Duration::from_millis(50));
    pool.terminate();
    for h in handles {
        assert_eq!(h.join().unwrap_err().kind(), ErrorKind::PoolClosed);
    }
    assert!(pool.worker_pids().is_empty());
    assert_eq!(
        pool.submit(square, 1).join().unwrap_err().kind(),
        ErrorKind::PoolClosed
    );
}

#[test]
fn imap_is_lazy_and_ordered() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(2);
    let got: Vec<u64> = pool
        .imap(square, 0..)
        .prefetch(4)
        .take(1000)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got[999], 999 * 999);
    let mut un: Vec<u64> = pool
        .imap_unordered(square, (0..500).filter(|x| x % 2 == 0))
        .collect::<Result<_, _>>()
        .unwrap();
    un.sort_unstable();
    assert_eq!(un.len(), 250);
    assert_eq!(un[249], 498 * 498);
    pool.join();
}

#[test]
fn executor_interface() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(2);
    let hs: Vec<_> = [300, 1, 2]
        .into_iter()
        .map(|ms| pool.submit(sleep_ms, ms))
        .collect();
    let first = pool::wait(&hs, WaitFor::First, None);
    assert!(!first.is_empty());
    let order: Vec<usize> = pool::as_completed(hs)
        .map(|(i, r)| {
            r.unwrap();
            i
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 2], "{order:?}");
    // A handle is a Future.
    assert_eq!(util::block_on(pool.submit(square, 7)).unwrap(), 49);
    pool.join();
}

#[test]
fn callbacks_run_before_join_returns() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let h = pool.apply_async_with(behave, 5, move |r| {
        tx.send(r.as_ref().map_err(|e| e.kind()).copied()).unwrap();
    });
    assert!(h.join().is_err());
    assert_eq!(rx.recv().unwrap(), Err(ErrorKind::Panicked));
    pool.join();
}

/// Runs alone in its own process, so that descriptor and child counts are its own.
#[test]
fn chaos() {
    let out = util::run_ignored(
        "chaos_body",
        Duration::from_secs(300),
        &[("RUST_BACKTRACE", "0")],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("panicked"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
#[ignore = "run by `chaos` in a process of its own"]
fn chaos_body() {
    let _w = util::watchdog(Duration::from_secs(240));
    multiproc::process::preload_forkserver().unwrap();
    let fds_before = util::open_fds();
    let pool = Pool::builder()
        // Hung tasks occupy a worker until their timeout: many more workers than CPUs
        // keep the run short (they sleep). The timeout must also hold for the trivial
        // tasks on a loaded CI machine, where a process can be starved (or its cgroup
        // throttled) for a second at worst: 2 s.
        .workers(24)
        .task_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    const N: u32 = 10_000;
    let handles: Vec<_> = (0..N).map(|x| pool.submit(behave, x)).collect();
    let rs: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    let mut counts = [0usize; 7];
    for (x, r) in (0..N).zip(&rs) {
        match (x % 100, r) {
            (0, Err(e)) if e.signal() == Some(Signal::SIGSEGV) => counts[0] += 1,
            (1, Err(e)) if e.signal() == Some(Signal::SIGABRT) => counts[1] += 1,
            (2, Err(e)) if e.exit_status().and_then(|s| s.code()) == Some(7) => counts[2] += 1,
            (3, Err(e)) if e.signal() == Some(Signal::SIGKILL) => counts[3] += 1,
            (4, Err(e)) if e.signal() == Some(Signal::from_raw(libc::SIGBUS)) => counts[4] += 1,
            (5, Err(e)) if e.is_panic() => counts[5] += 1,
            (50, Err(e)) if e.is_timeout() => counts[6] += 1,
            (_, Ok(v)) if *v == x + 1 => {}
            (k, r) => panic!("task {x} (kind {k}) got {r:?}"),
        }
    }
    assert_eq!(counts, [100; 7]);
    // Still usable.
    assert_eq!(pool.map(square, 0..100).unwrap()[99], 99 * 99);
    pool.join();
    drop(pool);
    assert!(
        util::zombie_children().is_empty(),
        "{:?}",
        util::zombie_children()
    );
    assert_eq!(util::open_fds(), fds_before);
}

/// CPython gh-66587: `Pool.map` waits forever when a worker is killed mid-task.
#[test]
fn killing_a_worker_during_map_does_not_hang_it() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(2);
    let victim = pool.worker_pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(120));
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(victim).unwrap(),
            rustix::process::Signal::KILL,
        );
    });
    let rs = pool.map_results(sleep_ms, vec![40u64; 20]);
    killer.join().unwrap();
    let errors: Vec<_> = rs.iter().filter_map(|r| r.as_ref().err()).collect();
    // The task the victim was running (if it was between tasks, none) fails; the rest ran.
    assert!(errors.len() <= 1, "{errors:?}");
    for e in errors {
        assert_eq!(e.signal(), Some(Signal::SIGKILL), "{e}");
    }
    assert!(rs.iter().flatten().all(|&v| v == 40));
    assert!(!pool.worker_pids().contains(&victim));
    pool.join();
}

#[test]
fn cancel_skips_a_queued_task() {
    let _w = util::watchdog(LIMIT);
    let pool = processes(1);
    let busy = pool.submit(sleep_ms, 300);
    let queued = pool.submit(pid, 0);
    assert!(queued.cancel());
    // Python's `Future.cancel()`: true again once cancelled.
    assert!(queued.cancel());
    assert_eq!(queued.join().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(busy.join().unwrap(), 300);
    let done = pool.submit(square, 3);
    while !done.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!done.cancel());
    assert_eq!(done.join().unwrap(), 9);
    pool.join();
}
