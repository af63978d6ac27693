//! `pool::ThreadPool`: any `Send` closure over any `Send` data, with `Pool`'s methods,
//! handles, timeouts and errors.

mod util;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use multiproc::pool::{self, Backend, Pool, ThreadPool, WaitFor};
use multiproc::ErrorKind;
use util::square;

const LIMIT: Duration = Duration::from_secs(60);

/// Data with no serde form: a channel end and a boxed closure.
struct Job {
    reply: mpsc::Sender<u64>,
    scale: Box<dyn Fn(u64) -> u64 + Send>,
    x: u64,
}

#[test]
fn an_arc_argument_and_a_capturing_closure_run() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    let table: Arc<Vec<u64>> = Arc::new((0..10).collect());
    // The argument is an `Arc` (the example: `Pool` refuses it at compile time).
    let args = vec![Arc::clone(&table); 4];
    assert_eq!(
        pool.map(|t: Arc<Vec<u64>>| t.iter().sum::<u64>(), args)
            .unwrap(),
        [45; 4]
    );
    // The closure captures an `Arc` and a `Mutex`.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let t = Arc::clone(&table);
    let got = pool
        .map(
            move |i: usize| {
                s.lock().unwrap().push(i);
                t[i] * 2
            },
            0..10,
        )
        .unwrap();
    assert_eq!(got, (0..10).map(|i| i * 2).collect::<Vec<u64>>());
    let mut order = seen.lock().unwrap().clone();
    order.sort_unstable();
    assert_eq!(order, (0..10).collect::<Vec<usize>>());
}

#[test]
fn arguments_and_results_need_no_serde() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    let (tx, rx) = mpsc::channel();
    let jobs: Vec<Job> = (1..=3)
        .map(|x| Job {
            reply: tx.clone(),
            scale: Box::new(move |v| v * 10),
            x,
        })
        .collect();
    drop(tx);
    // The result is a closure: no serde form either.
    let fs = pool
        .map(
            |j: Job| {
                j.reply.send((j.scale)(j.x)).unwrap();
                Box::new(move |y: u64| y + j.x) as Box<dyn Fn(u64) -> u64 + Send>
            },
            jobs,
        )
        .unwrap();
    let mut sent: Vec<u64> = rx.iter().collect();
    sent.sort_unstable();
    assert_eq!(sent, [10, 20, 30]);
    assert_eq!(
        fs.iter().map(|f| f(100)).collect::<Vec<_>>(),
        [101, 102, 103]
    );
}

#[test]
fn a_panic_is_that_items_error_and_the_pool_goes_on() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    let bad = 3;
    let rs = pool.map_results(
        move |x: u32| {
            assert!(x != bad, "item {x} is bad");
            x
        },
        0..8,
    );
    for (i, r) in rs.iter().enumerate() {
        if i == 3 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Panicked);
            assert_eq!(e.panic().unwrap().message(), "item 3 is bad");
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u32);
        }
    }
    // `map` returns the first error; `submit`'s `FnOnce` panics the same way.
    let e = pool
        .map(|x: u32| if x == 5 { panic!("five") } else { x }, 0..8)
        .unwrap_err();
    assert_eq!(e.panic().unwrap().message(), "five");
    let e = pool.submit(|(): ()| -> u8 { panic!("once") }, ()).join();
    assert_eq!(e.unwrap_err().panic().unwrap().message(), "once");
    // Every worker is still there.
    assert_eq!(pool.map(square, 0..100).unwrap().len(), 100);
}

#[test]
fn submit_takes_an_fn_once_and_its_handle_is_a_future() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(1).unwrap();
    let owned = String::from("moved in");
    // `FnOnce`: the closure gives away what it captured.
    let h = pool.submit(move |suffix: &'static str| owned + suffix, "!");
    assert_eq!(util::block_on(h).unwrap(), "moved in!");
    assert_eq!(pool.apply(|v: Vec<u8>| v.len(), vec![1, 2, 3]).unwrap(), 3);
    let (tx, rx) = mpsc::channel();
    let h = pool.apply_async_with(
        |x: i32| x - 1,
        43,
        move |r: &multiproc::Result<i32>| tx.send(*r.as_ref().unwrap()).unwrap(),
    );
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 42);
    assert_eq!(h.join().unwrap(), 42);
}

#[test]
fn handles_work_with_wait_as_completed_and_cancel() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(1).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let busy = pool.submit(move |()| go_rx.recv_timeout(LIMIT).is_ok(), ());
    let queued = pool.submit(|x: u8| x, 1);
    assert!(queued.cancel());
    assert_eq!(queued.join().unwrap_err().kind(), ErrorKind::Cancelled);
    let hs: Vec<_> = (0..3).map(|i| pool.submit(move |()| i * 10, ())).collect();
    assert!(pool::wait(&hs, WaitFor::First, Some(Duration::from_millis(50))).is_empty());
    go_tx.send(()).unwrap();
    assert!(busy.join().unwrap());
    let mut got: Vec<u32> = pool::as_completed(hs).map(|(_, r)| r.unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, [0, 10, 20]);
}

#[test]
fn imap_is_ordered_lazy_and_bounded() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let it = pool.imap(
        move |x: u64| {
            c.fetch_add(1, Ordering::SeqCst);
            x + 1
        },
        0..,
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing runs before next()"
    );
    let first: Vec<u64> = it
        .chunksize(1)
        .prefetch(4)
        .take(10)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, (1..=10).collect::<Vec<_>>());
    // An endless input: only what was consumed plus the prefetch ran.
    let ran = calls.load(Ordering::SeqCst);
    assert!((10..=14).contains(&ran), "{ran} calls");

    let offset = Arc::new(1000u64);
    let got: HashSet<u64> = pool
        .imap_unordered(move |x: u64| x + *offset, 0..100)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, (1000..1100).collect());
    // A zero setting is the first item, as an error.
    let mut it = pool.imap(|x: u8| x, 0..3).chunksize(0);
    assert_eq!(
        it.next().unwrap().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(it.next().is_none());
}

#[test]
fn map_async_starmap_and_chunked_match_map() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(2).unwrap();
    let k = Arc::new(3u64);
    let k2 = Arc::clone(&k);
    let want: Vec<u64> = (0..50).map(|x| x * 3).collect();
    let h = pool.map_async(move |x: u64| x * *k2, 0..50);
    assert_eq!(util::block_on(h).unwrap(), want);
    let (tx, rx) = mpsc::channel();
    let h = pool.map_async_with(
        |x: u64| x * 3,
        0..50,
        move |r: &multiproc::Result<Vec<u64>>| tx.send(r.as_ref().unwrap().len()).unwrap(),
    );
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 50);
    assert_eq!(h.join().unwrap(), want);
    assert_eq!(pool.map_chunked(|x: u64| x * 3, 0..50, 7).unwrap(), want);
    assert_eq!(
        pool.map_chunked(|x: u64| x, 0..5, 0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let pairs: Vec<(u64, u64)> = (0..50).map(|x| (x, 3)).collect();
    assert_eq!(
        pool.starmap(|a: u64, b: u64| a * b, pairs.clone()).unwrap(),
        want
    );
    assert_eq!(
        pool.starmap_async(move |a: u64, b: u64| a * b, pairs)
            .join()
            .unwrap(),
        want
    );
    // An input of unknown length is collected, then chunked.
    let odd = (0..100u64).filter(|x| x % 2 == 1);
    assert_eq!(pool.map(|x: u64| x, odd).unwrap().len(), 50);
}

#[test]
fn a_task_past_its_timeout_fails_and_its_thread_is_replaced() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(200))
        .build_thread_pool()
        .unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let start = Instant::now();
    let stuck = pool.submit(move |()| release_rx.recv_timeout(LIMIT).is_ok(), ());
    let e = stuck.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_secs(2) + Duration::from_millis(200));
    // The one worker is stuck, yet the pool has a thread for the next task.
    assert_eq!(pool.apply(|x: u8| x + 1, 1).unwrap(), 2);
    drop(release_tx);
}

#[test]
fn close_and_terminate_fail_what_cannot_run() {
    let _w = util::watchdog(LIMIT);
    let pool = ThreadPool::new(1).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let busy = pool.submit(
        move |()| {
            started_tx.send(()).unwrap();
            go_rx.recv_timeout(LIMIT).is_ok()
        },
        (),
    );
    started_rx.recv_timeout(LIMIT).unwrap();
    let queued = pool.submit(|x: u8| x, 7);
    pool.terminate();
    assert_eq!(queued.join().unwrap_err().kind(), ErrorKind::PoolClosed);
    go_tx.send(()).unwrap();
    assert!(busy.join().unwrap(), "a running task ends normally");
    let late = pool.submit(|x: u8| x, 8).join().unwrap_err();
    assert_eq!(late.kind(), ErrorKind::PoolClosed);

    let pool = ThreadPool::new(2).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..20 {
        let d = Arc::clone(&done);
        // Kept, not joined: `join` on the pool is what waits.
        handles.push(pool.submit(
            move |()| {
                std::thread::sleep(Duration::from_millis(2));
                d.fetch_add(1, Ordering::SeqCst);
            },
            (),
        ));
    }
    pool.join();
    assert!(handles.iter().all(|h| h.is_finished()));
    assert_eq!(done.load(Ordering::SeqCst), 20, "join waits for every task");
}

#[test]
fn thread_initializer_and_builder_settings_apply() {
    let _w = util::watchdog(LIMIT);
    let started = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&started);
    let pool = ThreadPool::builder()
        .workers(2)
        .max_tasks_per_child(1)
        .thread_name_prefix("tp")
        .thread_initializer(move || {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .build_thread_pool()
        .unwrap();
    assert_eq!(pool.workers(), 2);
    assert_eq!(started.load(Ordering::SeqCst), 2);
    let names: HashSet<String> = (0..6)
        .map(|_| {
            pool.apply(|()| std::thread::current().name().unwrap().to_owned(), ())
                .unwrap()
        })
        .collect();
    // One task per thread: every task ran on a new thread, initialized too.
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("tp_")), "{names:?}");
    pool.join();
    assert!(started.load(Ordering::SeqCst) >= 6);

    // A closure initializer is for threads: a process pool refuses it.
    let e = Pool::builder()
        .backend(Backend::Processes)
        .thread_initializer(|| {})
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // `Pool`'s thread backend takes it.
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let p = Pool::builder()
        .backend(Backend::Threads)
        .workers(1)
        .thread_initializer(move || {
            h.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    assert_eq!(p.map(square, 0..3).unwrap(), [0, 1, 4]);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // An initializer that panics fails the build with its message.
    let e = ThreadPool::builder()
        .workers(1)
        .thread_initializer(|| panic!("no setup"))
        .build_thread_pool()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Start);
    assert!(e.to_string().contains("no setup"), "{e}");
    assert_eq!(
        ThreadPool::new(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// The one-word switch: code written for one pool type runs on the other when its
/// function is a `fn` item and its data is serde.
macro_rules! sum_of_squares {
    ($pool:expr) => {{
        let pool = $pool;
        let mapped: u64 = pool.map(square, 0..100u64).unwrap().into_iter().sum();
        let submitted = pool.submit(square, 12).join().unwrap();
        let lazy: u64 = pool.imap(square, 0..10u64).map(Result::unwrap).sum();
        (mapped, submitted, lazy)
    }};
}

#[test]
fn switching_between_pool_types_is_one_word() {
    let _w = util::watchdog(LIMIT);
    let a = sum_of_squares!(ThreadPool::new(2).unwrap());
    let b = sum_of_squares!(Pool::processes(2).unwrap());
    let c = sum_of_squares!(Pool::threads(2).unwrap());
    assert_eq!(a, (328_350, 144, 285));
    assert_eq!(a, b);
    assert_eq!(a, c);
}

/// An item or value that counts its drops.
#[derive(Debug)]
struct Counted {
    n: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn counted(len: u64, drops: &Arc<AtomicUsize>) -> Vec<Counted> {
    (0..len)
        .map(|n| Counted {
            n,
            drops: Arc::clone(drops),
        })
        .collect()
}

/// Waits (at most `LIMIT`) until `c` reaches `want`, then a little longer, and
/// returns what it is: a drop counted twice shows as more than `want`.
fn settles_at(c: &AtomicUsize, want: usize) -> usize {
    let deadline = Instant::now() + LIMIT;
    while c.load(Ordering::SeqCst) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    c.load(Ordering::SeqCst)
}

/// `map` on threads moves items out of the input and writes values into the result
/// in place: every item and every value is dropped exactly once, whether the map
/// (or `map_async`) succeeds, an item panics, a chunk overruns the timeout (its abandoned thread
/// finishes later) or the pool is terminated with chunks queued (their items are
/// never passed to the function).
#[test]
fn map_drops_every_item_and_value_once_on_every_path() {
    let _w = util::watchdog(LIMIT);
    let fresh = || (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    // Success, then a panic in the middle of a chunk.
    let pool = ThreadPool::builder()
        .workers(2)
        .chunksize(7)
        .build_thread_pool()
        .unwrap();
    for bad in [None, Some(40)] {
        let (ins, outs) = fresh();
        let o = Arc::clone(&outs);
        let r = pool.map(
            move |x: Counted| {
                assert!(Some(x.n) != bad, "item {} is bad", x.n);
                Counted {
                    n: x.n + 1,
                    drops: Arc::clone(&o),
                }
            },
            counted(100, &ins),
        );
        match bad {
            None => {
                let v = r.unwrap();
                assert!(v.iter().enumerate().all(|(i, x)| x.n == i as u64 + 1));
                drop(v);
                assert_eq!(settles_at(&outs, 100), 100);
            }
            Some(_) => {
                let e = r.unwrap_err();
                assert_eq!(e.panic().unwrap().message(), "item 40 is bad");
                assert_eq!(settles_at(&outs, 99), 99, "every value but the bad one's");
            }
        }
        assert_eq!(settles_at(&ins, 100), 100);
    }

    // `map_async`: joined, and dropped unjoined once complete (the list it holds goes).
    for join in [true, false] {
        let (ins, outs) = fresh();
        let o = Arc::clone(&outs);
        let h = pool.map_async(
            move |x: Counted| Counted {
                n: x.n * 2,
                drops: Arc::clone(&o),
            },
            counted(100, &ins),
        );
        if join {
            let v = h.join().unwrap();
            assert!(v.iter().enumerate().all(|(i, x)| x.n == 2 * i as u64));
        } else {
            assert!(h.wait_timeout(LIMIT));
            assert_eq!(
                outs.load(Ordering::SeqCst),
                0,
                "values dropped before the handle"
            );
            drop(h);
        }
        assert_eq!(settles_at(&outs, 100), 100, "join {join}");
        assert_eq!(settles_at(&ins, 100), 100, "join {join}");
    }

    // A chunk past its timeout: the map fails at once, its thread finishes later.
    let pool = ThreadPool::builder()
        .workers(2)
        .chunksize(10)
        .task_timeout(Duration::from_millis(200))
        .build_thread_pool()
        .unwrap();
    let (ins, outs) = fresh();
    let o = Arc::clone(&outs);
    let e = pool
        .map(
            move |x: Counted| {
                if x.n == 55 {
                    std::thread::sleep(Duration::from_millis(600));
                }
                Counted {
                    n: x.n,
                    drops: Arc::clone(&o),
                }
            },
            counted(100, &ins),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(settles_at(&ins, 100), 100);
    assert_eq!(settles_at(&outs, 100), 100, "the late chunk's values too");

    // Terminated with chunks queued behind a running one.
    let pool = ThreadPool::builder()
        .workers(1)
        .chunksize(10)
        .build_thread_pool()
        .unwrap();
    let (ins, outs) = fresh();
    let calls = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let (o, c) = (Arc::clone(&outs), Arc::clone(&calls));
    let items = counted(100, &ins);
    std::thread::scope(|s| {
        let m = s.spawn(|| {
            pool.map(
                move |x: Counted| {
                    c.fetch_add(1, Ordering::SeqCst);
                    if x.n == 0 {
                        started_tx.send(()).unwrap();
                        go_rx.lock().unwrap().recv_timeout(LIMIT).unwrap();
                    }
                    Counted {
                        n: x.n,
                        drops: Arc::clone(&o),
                    }
                },
                items,
            )
        });
        started_rx.recv_timeout(LIMIT).unwrap();
        pool.terminate();
        go_tx.send(()).unwrap();
        let e = m.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolClosed);
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        10,
        "only the running chunk ran"
    );
    assert_eq!(settles_at(&ins, 100), 100);
    assert_eq!(settles_at(&outs, 10), 10);
}
