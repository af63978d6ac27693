//! `pool::ThreadPool` against the cases of CPython's `test_multiprocessing` pool tests
//! (`_TestPool` run with `ThreadPool`): empty inputs, chunksize edges, `imap` order
//! and errors, callbacks, `maxtasksperchild`, `close`/`join`/`terminate` and the end
//! of a `with` block (here: dropping the pool).

mod util;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use multiproc::pool::ThreadPool;
use multiproc::ErrorKind;

const LIMIT: Duration = Duration::from_secs(60);

fn sqr(x: u64) -> u64 {
    x * x
}

/// Panics for 5, as `test_map_unplicklable`'s and `test_imap`'s raising items do.
fn fails_on_5(x: u64) -> u64 {
    assert_ne!(x, 5, "five");
    x
}

#[test]
fn an_empty_input_gives_an_empty_result_everywhere() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    assert!(pool.map(sqr, Vec::<u64>::new()).unwrap().is_empty());
    assert!(pool.map(sqr, (0..10).filter(|_| false)).unwrap().is_empty());
    assert!(pool
        .map_chunked(sqr, Vec::<u64>::new(), 1)
        .unwrap()
        .is_empty());
    assert!(pool.map_results(sqr, Vec::<u64>::new()).is_empty());
    assert!(pool
        .map_async(sqr, Vec::<u64>::new())
        .join()
        .unwrap()
        .is_empty());
    assert!(pool
        .starmap(|a: u64, b: u64| a + b, Vec::<(u64, u64)>::new())
        .unwrap()
        .is_empty());
    assert_eq!(pool.imap(sqr, Vec::<u64>::new()).count(), 0);
    assert_eq!(pool.imap_unordered(sqr, Vec::<u64>::new()).count(), 0);
    let (tx, rx) = mpsc::channel();
    let h = pool.map_async_with(sqr, Vec::<u64>::new(), move |r| {
        tx.send(r.as_ref().map(Vec::len).ok()).unwrap()
    });
    assert_eq!(h.join().unwrap(), Vec::<u64>::new());
    assert_eq!(
        rx.recv_timeout(LIMIT).unwrap(),
        Some(0),
        "the callback runs once"
    );
}

#[test]
fn chunksize_edges_give_the_same_results() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(3).unwrap();
    let want: Vec<u64> = (0..100).map(sqr).collect();
    for cs in [1, 2, 7, 99, 100, 101, usize::MAX] {
        assert_eq!(
            pool.map_chunked(sqr, 0..100, cs).unwrap(),
            want,
            "map chunksize {cs}"
        );
        let it: Vec<u64> = pool
            .imap(sqr, 0..100)
            .chunksize(cs)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(it, want, "imap chunksize {cs}");
        let mut un: Vec<u64> = pool
            .imap_unordered(sqr, 0..100)
            .chunksize(cs)
            .collect::<Result<_, _>>()
            .unwrap();
        un.sort_unstable();
        assert_eq!(un, want, "imap_unordered chunksize {cs}");
    }
    let e = pool.map_chunked(sqr, 0..10, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let mut it = pool.imap(sqr, 0..10).chunksize(0);
    assert_eq!(
        it.next().unwrap().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let built = ThreadPool::builder()
        .workers(1)
        .chunksize(0)
        .build_thread_pool();
    assert_eq!(built.unwrap_err().kind(), ErrorKind::InvalidInput);
    let built = ThreadPool::builder().workers(0).build_thread_pool();
    assert_eq!(built.unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[test]
fn imap_keeps_input_order_when_later_items_finish_first() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(4).unwrap();
    // Earlier items sleep longer, so they finish last.
    let nap = |x: u64| {
        std::thread::sleep(Duration::from_millis(40 - 5 * x));
        x
    };
    let got: Vec<u64> = pool
        .imap(nap, 0..8)
        .chunksize(1)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    let got: HashSet<u64> = pool
        .imap_unordered(nap, 0..8)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, (0..8).collect::<HashSet<_>>());
}

#[test]
fn a_raising_item_fails_alone_and_imap_goes_on() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    // test_imap: `it.next()` raises at the failing item, the next call goes on.
    for cs in [1, 3, 100] {
        let all: Vec<_> = pool.imap(fails_on_5, 0..10).chunksize(cs).collect();
        assert_eq!(all.len(), 10, "chunksize {cs}");
        for (i, r) in all.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i as u64),
                Err(e) => {
                    assert_eq!(i, 5, "chunksize {cs}: only item 5 fails");
                    assert_eq!(e.kind(), ErrorKind::Panicked);
                    assert!(e.to_string().contains("five"), "{e}");
                }
            }
        }
        let un: Vec<_> = pool
            .imap_unordered(fails_on_5, 0..10)
            .chunksize(cs)
            .collect();
        assert_eq!(un.iter().filter(|r| r.is_err()).count(), 1);
        assert_eq!(un.iter().filter(|r| r.is_ok()).count(), 9);
    }
    // map raises the (first) failure; map_results keeps every item's own result.
    let e = pool.map(fails_on_5, 0..10).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    let rs = pool.map_results(fails_on_5, 0..10);
    assert!(rs[5].is_err() && rs.iter().filter(|r| r.is_ok()).count() == 9);
    // The pool is still usable (test_map_unplicklable's last line).
    assert_eq!(pool.map(sqr, 0..3).unwrap(), [0, 1, 4]);
}

#[test]
fn apply_async_callback_and_error_callback() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    let ok = pool.apply_async_with(sqr, 7, move |r| t.send(r.as_ref().ok().copied()).unwrap());
    assert_eq!(ok.join().unwrap(), 49);
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), Some(49));
    // error_callback: the callback sees the task's error, the handle too.
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let k = Arc::clone(&kinds);
    let bad = pool.apply_async_with(fails_on_5, 5, move |r| {
        k.lock().unwrap().push(r.as_ref().err().map(|e| e.kind()));
    });
    assert_eq!(bad.join().unwrap_err().kind(), ErrorKind::Panicked);
    assert_eq!(*kinds.lock().unwrap(), [Some(ErrorKind::Panicked)]);
    // map_async(callback=…, error_callback=…): one call with the list or the error.
    let t = tx.clone();
    let h = pool.map_async_with(fails_on_5, 0..10, move |r| {
        t.send(r.as_ref().ok().map(|v| v.len() as u64)).unwrap()
    });
    assert_eq!(h.join().unwrap_err().kind(), ErrorKind::Panicked);
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), None);
    let h = pool.map_async_with(sqr, 0..10, move |r| {
        tx.send(r.as_ref().ok().map(|v| v.len() as u64)).unwrap()
    });
    assert_eq!(h.join().unwrap().len(), 10);
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), Some(10));
    // A panicking callback does not take the pool down.
    let h = pool.apply_async_with(sqr, 3, |_| panic!("callback"));
    let _ = h.join();
    assert_eq!(pool.apply(sqr, 4).unwrap(), 16);
}

#[test]
fn maxtasksperchild_replaces_the_worker_thread() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::builder()
        .workers(1)
        .max_tasks_per_child(1)
        .build_thread_pool()
        .unwrap();
    let name = |()| std::thread::current().name().unwrap_or("").to_owned();
    let names: HashSet<String> = (0..4).map(|_| pool.apply(name, ()).unwrap()).collect();
    assert_eq!(names.len(), 4, "one task per thread: {names:?}");
    // and map still completes (test_pool_worker_lifetime).
    let want: Vec<u64> = (0..50).map(sqr).collect();
    assert_eq!(pool.map_chunked(sqr, 0..50, 1).unwrap(), want);
    let bad = ThreadPool::builder()
        .workers(1)
        .max_tasks_per_child(0)
        .build_thread_pool();
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[test]
fn close_then_join_runs_what_was_queued_and_refuses_the_rest() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&done);
    let h = pool.map_async(
        move |x: u64| {
            std::thread::sleep(Duration::from_millis(5));
            d.fetch_add(1, Ordering::SeqCst);
            x
        },
        0..20,
    );
    pool.close();
    assert_eq!(
        pool.apply_async(sqr, 2).join().unwrap_err().kind(),
        ErrorKind::PoolClosed
    );
    assert_eq!(
        pool.map(sqr, 0..3).unwrap_err().kind(),
        ErrorKind::PoolClosed
    );
    assert_eq!(
        pool.map_async(sqr, 0..3).join().unwrap_err().kind(),
        ErrorKind::PoolClosed
    );
    let first = pool.imap(sqr, 0..3).next().unwrap();
    assert_eq!(first.unwrap_err().kind(), ErrorKind::PoolClosed);
    pool.join();
    assert_eq!(done.load(Ordering::SeqCst), 20);
    assert_eq!(h.join().unwrap().len(), 20);
    // A second join, and terminate after join, return at once.
    pool.join();
    pool.terminate();
}

#[test]
fn terminate_while_busy_fails_queued_work_and_returns() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::builder()
        .workers(2)
        .chunksize(1)
        .build_thread_pool()
        .unwrap();
    // test_terminate: `p.map_async(time.sleep, [0.1] * 1000, chunksize=1)`, terminated.
    let h = pool.map_async(
        |x: u64| {
            std::thread::sleep(Duration::from_millis(50));
            x
        },
        0..1000,
    );
    pool.terminate();
    assert_eq!(h.join().unwrap_err().kind(), ErrorKind::PoolClosed);
    // join returns once the two running items end, not after 1000 of them.
    pool.join();
    assert_eq!(
        pool.apply_async(sqr, 2).join().unwrap_err().kind(),
        ErrorKind::PoolClosed
    );
}

#[test]
fn dropping_the_pool_leaves_its_handles_usable() {
    let _w = util::watchdog(LIMIT);
    // The end of a `with` block: handles taken inside still give an answer.
    let (h, m) = {
        let pool = ThreadPool::new(2).unwrap();
        let h = pool.apply_async(
            |x: u64| {
                std::thread::sleep(Duration::from_millis(20));
                x
            },
            9,
        );
        (h, pool.map_async(sqr, 0..50))
    };
    assert_eq!(h.join().unwrap(), 9);
    assert_eq!(m.join().unwrap().len(), 50);
}

#[test]
fn a_task_may_submit_to_its_own_pool() {
    let _w = util::watchdog(LIMIT);
    let pool = Arc::new(ThreadPool::new(2).unwrap());
    let p = Arc::clone(&pool);
    // The inner task is only submitted, not waited for on the one busy worker.
    let inner = pool.apply(move |x: u64| p.apply_async(sqr, x), 6).unwrap();
    assert_eq!(inner.join().unwrap(), 36);
}
