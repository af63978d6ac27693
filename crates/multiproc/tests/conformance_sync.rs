//! What CPython's `lock_tests.py` and `_test_multiprocessing.py` check of `Lock`,
//! `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Condition` and `Barrier`,
//! asked of multiproc's types, between threads and between processes.
//!
//! Python's `acquire(False)` is `try_lock`/`try_acquire`, `acquire(timeout=t)` is
//! `lock_timeout`/`acquire_timeout`, exceptions are `Err` values. No test depends on
//! timing: threads that must be asleep first are waited for through the objects'
//! own counters (`n_waiting`, a shared count under the lock).

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use multiproc::{
    Barrier, BoundedSemaphore, Condition, ErrorKind, Event, Lock, Process, RLock, Semaphore, Value,
};

const LIMIT: Duration = Duration::from_secs(60);
/// Long enough never to expire in a passing run; bounds a failing one.
const LONG: Duration = Duration::from_secs(20);
/// A timeout that is meant to expire.
const SHORT: Duration = Duration::from_millis(50);

fn until(mut cond: impl FnMut() -> bool) {
    assert!(util::eventually(LIMIT, &mut cond), "condition never held");
}

// ---- Lock ----

#[test]
fn lock_non_blocking_and_timed_acquire_fail_while_held_even_by_the_holder() {
    let _w = util::watchdog(LIMIT);
    let lock = Lock::new().unwrap();
    let g = lock.try_lock().unwrap();
    assert!(lock.is_locked());
    // Python: `acquire(False)` and `acquire(timeout=...)` return False, even from
    // the thread that holds a (non-recursive) lock.
    assert!(lock.try_lock().unwrap_err().is_would_block());
    assert!(lock
        .lock_timeout(Duration::from_millis(10))
        .unwrap_err()
        .is_would_block());
    thread::scope(|s| {
        s.spawn(|| {
            assert!(lock.try_lock().unwrap_err().is_would_block());
            assert!(lock
                .lock_timeout(Duration::from_millis(10))
                .unwrap_err()
                .is_would_block());
        });
    });
    // State after a timeout (bpo-11618): releasing leaves it unlocked and free.
    drop(g);
    assert!(!lock.is_locked());
    drop(lock.try_lock().unwrap());
    drop(lock.lock_timeout(LONG).unwrap());
}

#[test]
fn lock_contended_waiters_all_get_through_after_release() {
    let _w = util::watchdog(LIMIT);
    let lock = Lock::new().unwrap();
    let done = AtomicUsize::new(0);
    let g = lock.lock().unwrap();
    thread::scope(|s| {
        for _ in 0..5 {
            s.spawn(|| {
                drop(lock.lock().unwrap());
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(done.load(Ordering::SeqCst), 0);
        drop(g);
    });
    assert_eq!(done.load(Ordering::SeqCst), 5);
}

fn try_in_child(lock: Lock) -> (bool, bool) {
    (
        lock.try_lock().unwrap_err().is_would_block(),
        lock.lock_timeout(Duration::from_millis(10))
            .unwrap_err()
            .is_would_block(),
    )
}

fn lock_in_child(lock: Lock) -> bool {
    lock.lock_timeout(LONG).is_ok()
}

#[test]
fn lock_held_by_parent_is_unavailable_to_a_child_until_released() {
    let _w = util::watchdog(LIMIT);
    let lock = Lock::new().unwrap();
    let g = lock.lock().unwrap();
    let p = Process::start_with(try_in_child, lock.clone()).unwrap();
    assert_eq!(p.join().unwrap(), (true, true));
    drop(g);
    let p = Process::start_with(lock_in_child, lock.clone()).unwrap();
    assert!(p.join().unwrap());
    assert!(!lock.is_locked());
}

// ---- RLock ----

#[test]
fn rlock_reacquire_counts_and_ownership() {
    let _w = util::watchdog(LIMIT);
    let r = RLock::new().unwrap();
    assert!(!r.is_owned());
    assert_eq!(r.count(), 0);
    let a = r.lock().unwrap();
    let b = r.try_lock().unwrap();
    let c = r.lock_timeout(Duration::ZERO).unwrap();
    assert!(r.is_owned());
    assert_eq!(r.count(), 3);
    thread::scope(|s| {
        s.spawn(|| {
            assert!(!r.is_owned());
            assert_eq!(r.count(), 0);
            assert!(r.is_locked());
            assert!(r.try_lock().unwrap_err().is_would_block());
            assert!(r
                .lock_timeout(Duration::from_millis(10))
                .unwrap_err()
                .is_would_block());
        });
    });
    // Guards may be released in any order; the lock is free after the last.
    b.unlock().unwrap();
    assert_eq!(r.count(), 2);
    drop(a);
    assert_eq!(r.count(), 1);
    assert!(r.is_owned());
    c.unlock().unwrap();
    assert!(!r.is_owned());
    assert!(!r.is_locked());
    thread::scope(|s| {
        s.spawn(|| drop(r.try_lock().unwrap()));
    });
}

fn rlock_in_child(args: (RLock, Event)) -> (bool, bool, u32) {
    let (r, tried) = args;
    let would_block = r.try_lock().unwrap_err().is_would_block();
    tried.set();
    let g = r.lock_timeout(LONG).unwrap();
    let g2 = r.lock().unwrap();
    let n = r.count();
    drop(g2);
    drop(g);
    (would_block, r.is_owned(), n)
}

#[test]
fn rlock_excludes_another_process_until_fully_released() {
    let _w = util::watchdog(LIMIT);
    let r = RLock::new().unwrap();
    let tried = Event::new().unwrap();
    let a = r.lock().unwrap();
    let b = r.lock().unwrap();
    let p = Process::start_with(rlock_in_child, (r.clone(), tried.clone())).unwrap();
    tried.wait();
    // One release of two does not free it; the second does.
    drop(b);
    assert!(r.is_owned());
    assert_eq!(r.count(), 1);
    drop(a);
    let (would_block, owned_after, n) = p.join().unwrap();
    assert!(would_block);
    assert!(!owned_after);
    assert_eq!(n, 2);
    assert!(!r.is_locked());
}

// ---- Semaphore / BoundedSemaphore ----

#[test]
fn semaphore_try_and_timed_acquire_return_false_when_exhausted() {
    let _w = util::watchdog(LIMIT);
    let s = Semaphore::new(2).unwrap();
    assert_eq!(s.value(), 2);
    assert!(s.try_acquire());
    assert!(s.acquire_timeout(Duration::from_millis(5)));
    assert!(!s.try_acquire());
    assert!(!s.acquire_timeout(Duration::from_millis(5)));
    assert_eq!(s.value(), 0);
    s.release().unwrap();
    assert!(s.try_acquire());
    // Unbounded: releases past the initial value are allowed.
    s.release_n(3).unwrap();
    assert_eq!(s.value(), 3);
    let zero = Semaphore::new(0).unwrap();
    assert!(!zero.try_acquire());
}

#[test]
fn semaphore_contended_acquisitions_match_releases_exactly() {
    let _w = util::watchdog(LIMIT);
    // lock_tests.BaseSemaphoreTests.test_acquire_contended.
    let s = Semaphore::new(7).unwrap();
    s.acquire();
    let got = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..10 {
            scope.spawn(|| {
                for _ in 0..2 {
                    s.acquire();
                    got.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        until(|| got.load(Ordering::SeqCst) >= 6);
        assert_eq!(s.value(), 0);
        assert_eq!(got.load(Ordering::SeqCst), 6);
        for _ in 0..7 {
            s.release().unwrap();
        }
        until(|| got.load(Ordering::SeqCst) >= 13);
        s.release_n(6).unwrap();
        until(|| got.load(Ordering::SeqCst) >= 19);
        assert!(!s.try_acquire());
        assert_eq!(got.load(Ordering::SeqCst), 19);
        s.release().unwrap();
    });
    assert_eq!(got.load(Ordering::SeqCst), 20);
    assert_eq!(s.value(), 0);
}

#[test]
fn semaphore_try_acquire_contended_grants_exactly_the_value() {
    let _w = util::watchdog(LIMIT);
    let s = Semaphore::new(4).unwrap();
    s.acquire();
    let yes = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..5 {
            scope.spawn(|| {
                for _ in 0..2 {
                    if s.try_acquire() {
                        yes.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(yes.load(Ordering::SeqCst), 3);
}

#[test]
fn bounded_semaphore_rejects_releases_past_its_initial_value() {
    let _w = util::watchdog(LIMIT);
    let b = BoundedSemaphore::new(1).unwrap();
    assert_eq!(b.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
    b.acquire();
    b.release().unwrap();
    assert_eq!(b.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
    assert_eq!(b.value(), 1);

    let b = BoundedSemaphore::new(3).unwrap();
    assert!(b.try_acquire() && b.try_acquire());
    // All or nothing: 3 would exceed the bound by one.
    assert_eq!(
        b.release_n(3).unwrap_err().kind(),
        ErrorKind::TooManyReleases
    );
    assert_eq!(b.value(), 1);
    b.release_n(2).unwrap();
    assert_eq!(b.value(), 3);

    // Python allows BoundedSemaphore(0): nothing can be acquired or released.
    let z = BoundedSemaphore::new(0).unwrap();
    assert_eq!(z.value(), 0);
    assert!(!z.try_acquire());
    assert_eq!(z.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
}

fn acquire_in_child(args: (Semaphore, BoundedSemaphore)) -> (bool, bool, bool) {
    let (s, b) = args;
    let timed = s.acquire_timeout(LONG);
    let more = s.try_acquire();
    let over = b.release().unwrap_err().kind() == ErrorKind::TooManyReleases;
    (timed, more, over)
}

#[test]
fn semaphores_between_processes() {
    let _w = util::watchdog(LIMIT);
    let s = Semaphore::new(0).unwrap();
    let b = BoundedSemaphore::new(2).unwrap();
    let p = Process::start_with(acquire_in_child, (s.clone(), b.clone())).unwrap();
    s.release().unwrap();
    let (timed, more, over) = p.join().unwrap();
    assert!(timed);
    assert!(!more);
    assert!(over);
    assert_eq!(s.value(), 0);
}

// ---- Event ----

#[test]
fn event_flag_and_timeouts() {
    let _w = util::watchdog(LIMIT);
    let e = Event::new().unwrap();
    assert!(!e.is_set());
    assert!(!e.wait_timeout(Duration::ZERO));
    assert!(!e.wait_timeout(Duration::from_millis(5)));
    e.set();
    assert!(e.is_set());
    e.set();
    assert!(e.is_set());
    assert!(e.wait_timeout(Duration::ZERO));
    e.wait();
    e.clear();
    assert!(!e.is_set());
    e.clear();
    assert!(!e.is_set());
    assert!(!e.wait_timeout(Duration::ZERO));
}

#[test]
fn event_set_releases_every_waiter_twice_over() {
    let _w = util::watchdog(LIMIT);
    let e = Event::new().unwrap();
    for _ in 0..2 {
        let results = Mutex::new(Vec::new());
        thread::scope(|s| {
            for _ in 0..5 {
                s.spawn(|| {
                    let first = e.wait_timeout(LONG);
                    let second = e.wait_timeout(LONG);
                    results.lock().unwrap().push((first, second));
                });
            }
            e.set();
        });
        assert_eq!(*results.lock().unwrap(), vec![(true, true); 5]);
        e.clear();
    }
}

/// How many threads of this process named `name` are asleep in the kernel.
fn asleep(name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let state = stat[stat.rfind(')')? + 1..].trim_start().chars().next()?;
            (comm.trim_end() == name && state == 'S').then_some(())
        })
        .count()
}

#[test]
fn event_set_then_clear_at_once_still_releases_the_waiters() {
    let _w = util::watchdog(LIMIT);
    // bpo-13502: `wait` returns true for a set that happened while it waited,
    // even if the flag was cleared again before the waiter ran.
    let e = Event::new().unwrap();
    let results = Mutex::new(Vec::new());
    let entering = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..5 {
            thread::Builder::new()
                .name("ev-waiter".into())
                .spawn_scoped(s, || {
                    entering.fetch_add(1, Ordering::SeqCst);
                    let r = e.wait_timeout(LONG);
                    results.lock().unwrap().push(r);
                })
                .unwrap();
        }
        // Counted, then asleep: nothing blocks between the count and the wait.
        until(|| entering.load(Ordering::SeqCst) == 5 && asleep("ev-waiter") == 5);
        e.set();
        e.clear();
    });
    assert_eq!(*results.lock().unwrap(), vec![true; 5]);
    assert!(!e.is_set());
}

fn wait_and_report(args: (Event, Event)) -> bool {
    let (go, ready) = args;
    ready.set();
    go.wait_timeout(LONG)
}

/// Whether process `pid`'s main thread is asleep in the kernel.
fn process_asleep(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .is_some_and(|c| stat[c + 1..].trim_start().starts_with('S'))
    })
}

#[test]
fn event_set_and_cleared_by_parent_releases_a_waiting_child() {
    let _w = util::watchdog(LIMIT);
    let go = Event::new().unwrap();
    let ready = Event::new().unwrap();
    let p = Process::start_with(wait_and_report, (go.clone(), ready.clone())).unwrap();
    // Set, then asleep: nothing blocks between `ready.set()` and the wait.
    ready.wait();
    until(|| process_asleep(p.pid()));
    go.set();
    go.clear();
    assert!(p.join().unwrap());
}

// ---- Condition ----

#[test]
fn condition_wait_timeout_without_notify_reports_a_timeout() {
    let _w = util::watchdog(LIMIT);
    let c = Condition::new().unwrap();
    thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let g = c.lock().unwrap();
                let (g, notified) = c.wait_timeout(g, Duration::from_millis(20)).unwrap();
                assert!(!notified);
                // The lock is held again on return.
                assert!(c.as_lock().is_locked());
                drop(g);
            });
        }
    });
    assert!(!c.as_lock().is_locked());
}

/// lock_tests.ConditionTests._check_notify: each of 5 threads waits twice and
/// records, under the lock, the phase in which it woke. The main thread sets the
/// phase under the lock right after each notify, so a waiter woken by a notify
/// records that notify's phase: exact counts show in the records.
fn check_notify(c: &Condition) {
    // Touched only under the condition's lock.
    let phase = AtomicUsize::new(0);
    let ready = AtomicUsize::new(0);
    let first = Mutex::new(Vec::new());
    let second = Mutex::new(Vec::new());
    let settled = |n: usize| {
        until(|| {
            let _g = c.lock().unwrap();
            ready.load(Ordering::SeqCst) >= n
        });
    };
    let notify = |n: u32, p: usize| {
        let _g = c.lock().unwrap();
        if n == u32::MAX {
            c.notify_all();
        } else {
            c.notify(n);
        }
        phase.store(p, Ordering::SeqCst);
    };
    thread::scope(|s| {
        for _ in 0..5 {
            s.spawn(|| {
                for results in [&first, &second] {
                    let g = c.lock().unwrap();
                    ready.fetch_add(1, Ordering::SeqCst);
                    let g = c.wait(g).unwrap();
                    results.lock().unwrap().push(phase.load(Ordering::SeqCst));
                    drop(g);
                }
            });
        }
        // A waiter that counted itself under the lock is registered with the
        // condition before that lock is released: no notify below can miss it.
        settled(5);
        notify(3, 1);
        until(|| first.lock().unwrap().len() >= 3);
        settled(8);
        assert_eq!(*first.lock().unwrap(), [1; 3]);
        assert!(second.lock().unwrap().is_empty());
        // Two still in their first wait, three in their second: all five wake.
        notify(5, 2);
        until(|| first.lock().unwrap().len() + second.lock().unwrap().len() >= 8);
        assert_eq!(*first.lock().unwrap(), [1, 1, 1, 2, 2]);
        assert_eq!(*second.lock().unwrap(), [2; 3]);
        settled(10);
        notify(u32::MAX, 3);
    });
    assert_eq!(*second.lock().unwrap(), [2, 2, 2, 3, 3]);
}

#[test]
fn condition_notify_n_wakes_exactly_n_waiters() {
    let _w = util::watchdog(LIMIT);
    let c = Condition::new().unwrap();
    check_notify(&c);
    // Again, to check the internal state is still right.
    check_notify(&c);
    // Nobody waits: notifies are no-ops, and a later waiter is not woken by them.
    c.notify(3);
    c.notify_all();
    let g = c.lock().unwrap();
    let (_g, notified) = c.wait_timeout(g, Duration::from_millis(10)).unwrap();
    assert!(!notified);
}

#[test]
fn condition_timed_out_waiters_do_not_absorb_notifications() {
    let _w = util::watchdog(LIMIT);
    let c = Condition::new().unwrap();
    let woke = AtomicUsize::new(0);
    let ready = AtomicUsize::new(0);
    thread::scope(|s| {
        // One waiter times out; one waits for good.
        s.spawn(|| {
            let g = c.lock().unwrap();
            let (_g, notified) = c.wait_timeout(g, Duration::from_millis(1)).unwrap();
            assert!(!notified);
        })
        .join()
        .unwrap();
        s.spawn(|| {
            let g = c.lock().unwrap();
            ready.fetch_add(1, Ordering::SeqCst);
            let _g = c.wait(g).unwrap();
            woke.fetch_add(1, Ordering::SeqCst);
        });
        until(|| {
            let _g = c.lock().unwrap();
            ready.load(Ordering::SeqCst) == 1
        });
        // The timed-out waiter is gone: this one notification reaches the other.
        let _g = c.lock().unwrap();
        c.notify_one();
    });
    assert_eq!(woke.load(Ordering::SeqCst), 1);
}

#[test]
fn condition_timeouts_racing_notifications_lose_and_leave_nothing() {
    let _w = util::watchdog(LIMIT);
    // A waiter whose timeout races a notify either takes it (returns notified) or
    // leaves it to the other waiter; no wake-up is lost and none is left over.
    let c = Condition::new().unwrap();
    let waiting = AtomicUsize::new(0);
    for round in 0..200u64 {
        thread::scope(|s| {
            let short = s.spawn(|| {
                let g = c.lock().unwrap();
                waiting.fetch_add(1, Ordering::SeqCst);
                let (_g, notified) = c
                    .wait_timeout(g, Duration::from_micros(round % 50))
                    .unwrap();
                notified
            });
            let long = s.spawn(|| {
                let g = c.lock().unwrap();
                waiting.fetch_add(1, Ordering::SeqCst);
                let (_g, notified) = c.wait_timeout(g, LONG).unwrap();
                notified
            });
            // Spin (the watchdog bounds it): a sleep per round would dominate.
            loop {
                let g = c.lock().unwrap();
                if waiting.load(Ordering::SeqCst) == 2 {
                    c.notify_one();
                    break;
                }
                drop(g);
                thread::yield_now();
            }
            if short.join().unwrap() {
                // The short one took this notification: the long one needs another.
                let _g = c.lock().unwrap();
                c.notify_one();
            }
            assert!(long.join().unwrap(), "round {round}");
        });
        waiting.store(0, Ordering::SeqCst);
    }
    // Nothing is left over for a newcomer.
    let g = c.lock().unwrap();
    let (_g, notified) = c.wait_timeout(g, Duration::from_millis(5)).unwrap();
    assert!(!notified);
}

fn wait_once(args: (Condition, Semaphore, Semaphore)) {
    let (c, sleeping, woken) = args;
    let g = c.lock().unwrap();
    sleeping.release().unwrap();
    let g = c.wait(g).unwrap();
    woken.release().unwrap();
    drop(g);
}

#[test]
fn condition_notify_one_at_a_time_reaches_a_process_and_a_thread() {
    let _w = util::watchdog(LIMIT);
    // _test_multiprocessing._TestCondition.test_notify / test_notify_n.
    let c = Condition::new().unwrap();
    let sleeping = Semaphore::new(0).unwrap();
    let woken = Semaphore::new(0).unwrap();
    let args = (c.clone(), sleeping.clone(), woken.clone());
    let kids: Vec<_> = (0..2)
        .map(|_| Process::start_with(wait_once, args.clone()).unwrap())
        .collect();
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| wait_once(args.clone()));
        }
        for _ in 0..4 {
            sleeping.acquire();
        }
        // Each waiter released `sleeping` holding the lock, so taking the lock
        // here means it is registered.
        drop(c.lock().unwrap());
        assert_eq!(woken.value(), 0);
        let mut total = 0;
        for n in [1, 2, 1] {
            {
                let _g = c.lock().unwrap();
                c.notify(n);
            }
            total += n;
            until(|| woken.value() >= total);
            // Exactly as many as notified have woken: once the count is reached,
            // taking the lock (which every woken waiter holds while it releases
            // `woken`) shows no further one.
            drop(c.lock().unwrap());
            assert_eq!(woken.value(), total);
        }
    });
    for k in kids {
        k.join().unwrap();
    }
}

#[test]
fn condition_wait_for_returns_once_the_predicate_holds() {
    let _w = util::watchdog(LIMIT);
    let c = Condition::new().unwrap();
    let state = AtomicUsize::new(0);
    thread::scope(|s| {
        let t = s.spawn(|| {
            let g = c.lock().unwrap();
            let g = c.wait_for(g, || state.load(Ordering::SeqCst) == 4).unwrap();
            assert_eq!(state.load(Ordering::SeqCst), 4);
            drop(g);
        });
        for _ in 0..4 {
            let _g = c.lock().unwrap();
            state.fetch_add(1, Ordering::SeqCst);
            c.notify_one();
        }
        t.join().unwrap();
    });
}

#[test]
fn condition_wait_for_timeout_returns_the_predicate_value() {
    let _w = util::watchdog(LIMIT);
    let c = Condition::new().unwrap();
    let state = AtomicUsize::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            // The predicate never holds: false, with the lock held.
            let g = c.lock().unwrap();
            let (g, ok) = c
                .wait_for_timeout(g, Duration::from_millis(50), || {
                    state.load(Ordering::SeqCst) == 4
                })
                .unwrap();
            assert!(!ok);
            drop(g);
        });
        for _ in 0..3 {
            let _g = c.lock().unwrap();
            state.fetch_add(1, Ordering::SeqCst);
            c.notify_one();
        }
    });
    // Already true: no wait at all, even with a zero timeout.
    let g = c.lock().unwrap();
    let (_g, ok) = c.wait_for_timeout(g, Duration::ZERO, || true).unwrap();
    assert!(ok);
}

fn consume_one(args: (Condition, Value<u32>)) -> u32 {
    let (c, v) = args;
    let g = c.lock().unwrap();
    let (g, ok) = c.wait_for_timeout(g, LONG, || v.get() > 0).unwrap();
    assert!(ok);
    let got = v.get();
    v.set(got - 1);
    drop(g);
    got
}

#[test]
fn condition_notify_all_reaches_waiting_processes() {
    let _w = util::watchdog(LIMIT);
    let c = Condition::new().unwrap();
    let v = Value::new(0u32).unwrap();
    let kids: Vec<_> = (0..2)
        .map(|_| Process::start_with(consume_one, (c.clone(), v.clone())).unwrap())
        .collect();
    {
        let _g = c.lock().unwrap();
        v.set(2);
        c.notify_all();
    }
    let mut got: Vec<u32> = kids.into_iter().map(|k| k.join().unwrap()).collect();
    got.sort();
    assert_eq!(got, [1, 2]);
    assert_eq!(v.get(), 0);
}

// ---- Barrier ----

const N: usize = 5;

/// Runs `f` on `N - 1` threads and this one (lock_tests' `run_threads`).
fn run_parties(f: impl Fn() + Sync) {
    thread::scope(|s| {
        for _ in 0..N - 1 {
            s.spawn(&f);
        }
        f();
    });
}

#[test]
fn barrier_passes_in_lockstep_ten_times() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::new(N as u32).unwrap();
    assert_eq!(b.parties(), N as u32);
    let before = AtomicUsize::new(0);
    let after = AtomicUsize::new(0);
    run_parties(|| {
        for i in 0..10 {
            before.fetch_add(1, Ordering::SeqCst);
            assert_eq!(after.load(Ordering::SeqCst), i * N);
            b.wait().unwrap();
            after.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before.load(Ordering::SeqCst), (i + 1) * N);
            b.wait().unwrap();
        }
    });
    assert_eq!(b.n_waiting(), 0);
    assert!(!b.is_broken());
}

static ACTIONS: AtomicUsize = AtomicUsize::new(0);

fn count_action() {
    ACTIONS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn barrier_indices_are_distinct_and_the_action_runs_once_per_pass() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::with_action(N as u32, count_action).unwrap();
    let seen = Mutex::new(Vec::new());
    run_parties(|| {
        for pass in 0..3 {
            let i = b.wait().unwrap();
            // Every party sees this wait's action done (two waits a pass).
            assert_eq!(ACTIONS.load(Ordering::SeqCst), 2 * pass + 1);
            seen.lock().unwrap().push((pass, i));
            b.wait().unwrap();
        }
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    let want: Vec<_> = (0..3).flat_map(|p| (0..N).map(move |i| (p, i))).collect();
    assert_eq!(seen, want);
    // Once per round: 3 passes × 2 waits.
    assert_eq!(ACTIONS.load(Ordering::SeqCst), 6);
}

#[test]
fn barrier_abort_breaks_it_for_every_waiter() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::new(N as u32).unwrap();
    let passed = AtomicUsize::new(0);
    let broken = AtomicUsize::new(0);
    run_parties(|| {
        let i = b.wait().unwrap();
        if i == N / 2 {
            // Abort only once the others are all waiting for the second pass.
            until(|| b.n_waiting() == N as u32 - 1);
            b.abort();
            return;
        }
        match b.wait() {
            Ok(_) => passed.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
                broken.fetch_add(1, Ordering::SeqCst)
            }
        };
    });
    assert_eq!(passed.load(Ordering::SeqCst), 0);
    assert_eq!(broken.load(Ordering::SeqCst), N - 1);
    assert!(b.is_broken());
    assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
}

#[test]
fn barrier_reset_frees_waiters_and_the_barrier_works_again() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::new(N as u32).unwrap();
    let passed = AtomicUsize::new(0);
    let broken = AtomicUsize::new(0);
    let again = AtomicUsize::new(0);
    run_parties(|| {
        let i = b.wait().unwrap();
        if i == N / 2 {
            until(|| b.n_waiting() == N as u32 - 1);
            b.reset();
        } else {
            match b.wait() {
                Ok(_) => passed.fetch_add(1, Ordering::SeqCst),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
                    broken.fetch_add(1, Ordering::SeqCst)
                }
            };
        }
        // Everyone passes the reset barrier again.
        b.wait().unwrap();
        again.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(passed.load(Ordering::SeqCst), 0);
    assert_eq!(broken.load(Ordering::SeqCst), N - 1);
    assert_eq!(again.load(Ordering::SeqCst), N);
    assert!(!b.is_broken());
}

#[test]
fn barrier_abort_then_reset_makes_it_usable() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::new(N as u32).unwrap();
    let b2 = Barrier::new(N as u32).unwrap();
    let broken = AtomicUsize::new(0);
    let again = AtomicUsize::new(0);
    run_parties(|| {
        let i = b.wait().unwrap();
        if i == N / 2 {
            until(|| b.n_waiting() == N as u32 - 1);
            b.abort();
        } else if b.wait().is_err() {
            broken.fetch_add(1, Ordering::SeqCst);
        }
        // Synchronize, reset once, synchronize again, then pass.
        if b2.wait().unwrap() == N / 2 {
            b.reset();
        }
        b2.wait().unwrap();
        b.wait().unwrap();
        again.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(broken.load(Ordering::SeqCst), N - 1);
    assert_eq!(again.load(Ordering::SeqCst), N);
}

/// lock_tests' `_test_timeout_f`: one party arrives late, after the barrier broke.
fn late_party(b: &Barrier, wait: impl Fn() -> multiproc::Result<usize> + Sync) -> usize {
    let broken = AtomicUsize::new(0);
    run_parties(|| {
        let i = b.wait_timeout(LONG).unwrap();
        if i == N / 2 {
            until(|| b.is_broken());
        }
        match wait() {
            Ok(_) => panic!("passed a barrier with a late party"),
            Err(e) => {
                // Python raises BrokenBarrierError in every party, the one whose
                // timeout broke the barrier included.
                assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
                broken.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    broken.into_inner()
}

#[test]
fn barrier_timeout_breaks_it_for_every_party() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::new(N as u32).unwrap();
    assert_eq!(late_party(&b, || b.wait_timeout(SHORT)), N);
    assert!(b.is_broken());
}

#[test]
fn barrier_default_timeout_applies_to_wait() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::new(N as u32).unwrap().with_default_timeout(SHORT);
    assert_eq!(b.default_timeout(), Some(SHORT));
    assert_eq!(b.clone().default_timeout(), Some(SHORT));
    assert_eq!(late_party(&b, || b.wait()), N);
    assert!(b.is_broken());
    assert_eq!(Barrier::new(2).unwrap().default_timeout(), None);
}

fn wait_with_default(b: Barrier) -> (Option<Duration>, bool) {
    let broken = b.wait().unwrap_err().kind() == ErrorKind::BrokenBarrier;
    (b.default_timeout(), broken)
}

#[test]
fn barrier_default_timeout_travels_to_a_child() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::new(2).unwrap().with_default_timeout(SHORT);
    let p = Process::start_with(wait_with_default, b.clone()).unwrap();
    assert_eq!(p.join().unwrap(), (Some(SHORT), true));
    assert!(b.is_broken());
}

#[test]
fn barrier_of_one_never_waits() {
    let b = Barrier::new(1).unwrap();
    assert_eq!(b.wait().unwrap(), 0);
    assert_eq!(b.wait().unwrap(), 0);
    assert_eq!(b.n_waiting(), 0);
    assert_eq!(Barrier::new(0).unwrap_err().kind(), ErrorKind::InvalidInput);
}

/// The arrival index, or `None` if the barrier broke.
fn wait_at(b: Barrier) -> Option<usize> {
    match b.wait() {
        Ok(i) => Some(i),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
            None
        }
    }
}

#[test]
fn barrier_reset_and_abort_reach_waiting_processes() {
    let _w = util::watchdog(LIMIT);
    let b = Barrier::new(3).unwrap();
    let kids: Vec<_> = (0..2)
        .map(|_| Process::start_with(wait_at, b.clone()).unwrap())
        .collect();
    until(|| b.n_waiting() == 2);
    b.reset();
    for k in kids {
        assert_eq!(k.join().unwrap(), None);
    }
    assert!(!b.is_broken());
    // Usable again: two children and this thread pass together.
    let kids: Vec<_> = (0..2)
        .map(|_| Process::start_with(wait_at, b.clone()).unwrap())
        .collect();
    let mine = b.wait().unwrap();
    let mut all: Vec<usize> = kids
        .into_iter()
        .map(|k| k.join().unwrap().unwrap())
        .collect();
    all.push(mine);
    all.sort();
    assert_eq!(all, [0, 1, 2]);
    let kid = Process::start_with(wait_at, b.clone()).unwrap();
    until(|| b.n_waiting() == 1);
    b.abort();
    assert_eq!(kid.join().unwrap(), None);
    assert!(b.is_broken());
}

fn pass_many(args: (Barrier, multiproc::Queue<u32>, u32)) {
    let (b, q, passes) = args;
    for i in 0..passes {
        b.wait().unwrap();
        q.put(i).unwrap();
    }
}

#[test]
fn barrier_many_passes_between_processes_stay_in_lockstep() {
    let _w = util::watchdog(LIMIT);
    // _TestBarrier.test_thousand, with fewer passes: no party reports pass `i + 1`
    // before every party reported pass `i`.
    const PARTIES: u32 = 3;
    const PASSES: u32 = 200;
    let b = Barrier::new(PARTIES).unwrap();
    let q = multiproc::Queue::new().unwrap();
    let args = (b.clone(), q.clone(), PASSES);
    let kids: Vec<_> = (0..PARTIES - 1)
        .map(|_| Process::start_with(pass_many, args.clone()).unwrap())
        .collect();
    pass_many(args);
    for i in 0..PASSES {
        for _ in 0..PARTIES {
            assert_eq!(q.get_timeout(LONG).unwrap(), i);
        }
    }
    for k in kids {
        k.join().unwrap();
    }
    assert!(!b.is_broken());
}

#[test]
fn the_largest_timeouts_are_accepted() {
    let _w = util::watchdog(LIMIT);
    // lock_tests' test_timeout: `acquire(timeout=TIMEOUT_MAX)` works. A timeout
    // too large for the clock means no timeout at all.
    let lock = Lock::new().unwrap();
    drop(lock.lock_timeout(Duration::MAX).unwrap());
    let r = RLock::new().unwrap();
    let g = r.lock_timeout(Duration::MAX).unwrap();
    drop(r.lock_timeout(Duration::MAX).unwrap());
    drop(g);
    let s = Semaphore::new(1).unwrap();
    assert!(s.acquire_timeout(Duration::MAX));
    let e = Event::new().unwrap();
    e.set();
    assert!(e.wait_timeout(Duration::MAX));
    let c = Condition::new().unwrap();
    let g = c.lock().unwrap();
    let (_g, ok) = c.wait_for_timeout(g, Duration::MAX, || true).unwrap();
    assert!(ok);
    let b = Barrier::new(1).unwrap();
    assert_eq!(b.wait_timeout(Duration::MAX).unwrap(), 0);
    let b = Barrier::new(1).unwrap().with_default_timeout(Duration::MAX);
    assert_eq!(b.wait().unwrap(), 0);
}
