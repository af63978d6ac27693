//! The thread pool: the same API as the process pool, and the failures that make
//! sense for threads (a panic, a timeout reported).

mod util;

use util::{sleep_ms, square, thread_id};

use std::collections::HashSet;
use std::time::Duration;

use multiproc::pool::{self, Backend, Pool, WaitFor};
use multiproc::ErrorKind;

const LIMIT: Duration = Duration::from_secs(60);

fn maybe_panic(x: u32) -> u32 {
    assert!(x % 10 != 3, "task {x} panicked");
    x + 1
}

#[test]
fn map_matches_sequential() {
    let _w = util::watchdog(LIMIT);
    let pool = Pool::threads(3).unwrap();
    assert_eq!(pool.backend(), Backend::Threads);
    let want: Vec<u64> = (0..100_000).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..100_000).unwrap(), want);
    assert_eq!(pool.map(square, Vec::new()).unwrap(), Vec::<u64>::new());
    // An input of unknown length is collected first.
    let odd = (0..1000u64).filter(|x| x % 2 == 1);
    assert_eq!(pool.map(square, odd).unwrap()[0], 1);
    pool.join();
}

#[test]
fn panic_is_that_items_error() {
    let _w = util::watchdog(LIMIT);
    let pool = Pool::threads(2).unwrap();
    let rs = pool.map_results(maybe_panic, 0..20);
    for (x, r) in (0..20).zip(&rs) {
        match r {
            Ok(v) => assert_eq!(*v, x + 1),
            Err(e) => {
                assert_eq!(x % 10, 3);
                assert_eq!(e.kind(), ErrorKind::Panicked);
                assert_eq!(e.panic().unwrap().message(), format!("task {x} panicked"));
            }
        }
    }
    let e = pool.map(maybe_panic, 0..20).unwrap_err();
    assert_eq!(e.panic().unwrap().message(), "task 3 panicked");
    assert_eq!(pool.apply(maybe_panic, 1).unwrap(), 2);
    pool.join();
}

#[test]
fn timeout_is_reported_and_the_pool_keeps_its_size() {
    let _w = util::watchdog(LIMIT);
    let pool = Pool::builder()
        .backend(Backend::Threads)
        .workers(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let slow = pool.submit(sleep_ms, 2_000);
    let next = pool.submit(sleep_ms, 1);
    assert_eq!(slow.join().unwrap_err().kind(), ErrorKind::Timeout);
    // The stuck thread was replaced: the next task does not wait for it.
    assert_eq!(next.join().unwrap(), 1);
    pool.join();
}

#[test]
fn initializer_and_max_tasks() {
    let _w = util::watchdog(LIMIT);
    thread_local!(static BASE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
    fn set_base(b: u32) {
        assert!(b != 0, "zero base");
        BASE.with(|c| c.set(b));
    }
    fn add_base(x: u32) -> u32 {
        x + BASE.with(std::cell::Cell::get)
    }
    let pool = Pool::builder()
        .backend(Backend::Threads)
        .workers(1)
        .initializer(set_base, 10)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    assert_eq!(
        pool.map_chunked(add_base, 0..6, 1).unwrap(),
        vec![10, 11, 12, 13, 14, 15]
    );
    let ids: HashSet<String> = pool
        .map_chunked(thread_id, 0..6, 1)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 3);
    pool.join();
    let e = Pool::builder()
        .backend(Backend::Threads)
        .workers(2)
        .initializer(set_base, 0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("zero base"), "{e}");
}

#[test]
fn close_terminate_and_late_submits() {
    let _w = util::watchdog(LIMIT);
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    fn flag_then_sleep(ms: u64) -> u64 {
        STARTED.store(true, std::sync::atomic::Ordering::SeqCst);
        sleep_ms(ms)
    }
    let pool = Pool::threads(1).unwrap();
    let running = pool.submit(flag_then_sleep, 100);
    let queued: Vec<_> = (0..3).map(|_| pool.submit(sleep_ms, 100)).collect();
    assert!(util::eventually(Duration::from_secs(10), || STARTED
        .load(std::sync::atomic::Ordering::SeqCst)));
    pool.terminate();
    assert_eq!(running.join().unwrap(), 100);
    for h in queued {
        assert_eq!(h.join().unwrap_err().kind(), ErrorKind::PoolClosed);
    }
    assert_eq!(
        pool.submit(square, 2).join().unwrap_err().kind(),
        ErrorKind::PoolClosed
    );

    let pool = Pool::threads(2).unwrap();
    let hs: Vec<_> = (0..10).map(|i| pool.submit(square, i)).collect();
    pool.close();
    pool.join();
    assert!(hs.iter().all(multiproc::pool::TaskHandle::is_finished));
}

#[test]
fn imap_endless_and_unordered() {
    let _w = util::watchdog(LIMIT);
    let pool = Pool::threads(2).unwrap();
    let got: Vec<u64> = pool
        .imap(square, 0..)
        .take(10_000)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got[9_999], 9_999 * 9_999);
    let mut un: Vec<u64> = pool
        .imap_unordered(square, 0..1000)
        .chunksize(7)
        .collect::<Result<_, _>>()
        .unwrap();
    un.sort_unstable();
    assert_eq!(un, (0..1000).map(|x| x * x).collect::<Vec<_>>());
    let starred = pool
        .starmap(|a: u64, b: u64| a * b, vec![(2, 3), (4, 5)])
        .unwrap();
    assert_eq!(starred, vec![6, 20]);
    pool.join();
}

#[test]
fn executor_interface() {
    let _w = util::watchdog(LIMIT);
    // Task 0 waits at a gate the test opens, so the order is known without timing.
    static GATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    fn gated(x: u64) -> u64 {
        if x == 0 {
            while !GATE.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        x
    }
    let pool = Pool::threads(2).unwrap();
    let hs: Vec<_> = [0, 1, 2]
        .into_iter()
        .map(|x| pool.submit(gated, x))
        .collect();
    let done = pool::wait(&hs, WaitFor::First, None);
    assert!(!done.is_empty() && !done.contains(&0), "{done:?}");
    assert!(pool::wait(&hs, WaitFor::All, Some(Duration::from_millis(1))).len() < 3);
    assert_eq!(pool::wait(&hs[1..], WaitFor::All, None), vec![0, 1]);
    GATE.store(true, std::sync::atomic::Ordering::SeqCst);
    let order: Vec<usize> = pool::as_completed(hs)
        .map(|(i, r)| r.map(|_| i).unwrap())
        .collect();
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(order[2], 0, "{order:?}");
    assert_eq!(util::block_on(pool.submit(square, 9)).unwrap(), 81);
    let (tx, rx) = std::sync::mpsc::channel();
    let h = pool.apply_async_with(square, 5, move |r| tx.send(*r.as_ref().unwrap()).unwrap());
    assert_eq!(rx.recv().unwrap(), 25);
    assert_eq!(h.join().unwrap(), 25);
    pool.join();
}

#[cfg(feature = "progress")]
#[test]
fn progress_bar_does_not_change_results() {
    let _w = util::watchdog(LIMIT);
    let pool = Pool::builder()
        .backend(Backend::Threads)
        .workers(2)
        .progress(true)
        .build()
        .unwrap();
    assert_eq!(pool.map(square, 0..1000).unwrap()[999], 999 * 999);
    let n = pool.imap(square, 0..100).filter(Result::is_ok).count();
    assert_eq!(n, 100);
    pool.join();
}

#[test]
fn cancel_skips_a_queued_task() {
    let _w = util::watchdog(LIMIT);
    static RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    fn mark(_: u8) -> u8 {
        RAN.store(true, std::sync::atomic::Ordering::SeqCst);
        1
    }
    let pool = Pool::threads(1).unwrap();
    let busy = pool.submit(sleep_ms, 100);
    let queued = pool.submit(mark, 0);
    assert!(queued.cancel());
    assert_eq!(queued.join().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(busy.join().unwrap(), 100);
    pool.join();
    assert!(!RAN.load(std::sync::atomic::Ordering::SeqCst));
}

fn thread_name(_: u32) -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn worker_threads_carry_the_name_prefix_replacements_included() {
    let _w = util::watchdog(std::time::Duration::from_secs(60));
    let pool = multiproc::pool::Builder::new()
        .backend(multiproc::pool::Backend::Threads)
        .workers(1)
        .max_tasks_per_child(1)
        .thread_name_prefix("mp-io")
        .build()
        .unwrap();
    let names: Vec<String> = (0..3)
        .map(|i| pool.apply(thread_name, i).unwrap())
        .collect();
    assert_eq!(names, ["mp-io_0", "mp-io_1", "mp-io_2"]);
    let default = multiproc::Pool::threads(1).unwrap();
    assert_eq!(
        default.apply(thread_name, 0).unwrap(),
        "multiproc-pool-worker_0"
    );
}
