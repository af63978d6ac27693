//! Loom models of the semaphore, event, condition and barrier protocols.

use crate::sync::condition::RawCondition;
use crate::sync::event::RawEvent;
use crate::sync::robust::RawLock;
use crate::sync::semaphore::RawSemaphore;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

#[test]
fn loom_semaphore_release_wakes_acquirer() {
    loom::model(|| {
        let s = Arc::new(RawSemaphore::default());
        let data = Arc::new(AtomicU32::new(0));
        let t = thread::spawn({
            let (s, data) = (Arc::clone(&s), Arc::clone(&data));
            move || {
                data.store(7, Ordering::Relaxed);
                s.release(1).unwrap();
            }
        });
        assert!(s.acquire(None));
        assert_eq!(
            data.load(Ordering::Relaxed),
            7,
            "release happens-before acquire"
        );
        t.join().unwrap();
        assert_eq!(s.value(), 0);
    });
}

#[test]
fn loom_semaphore_two_acquirers_one_unit_each() {
    loom::model(|| {
        let s = Arc::new(RawSemaphore::default());
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || assert!(s.acquire(None)))
            })
            .collect();
        s.release(1).unwrap();
        s.release(1).unwrap();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(s.value(), 0);
    });
}

#[test]
fn loom_event_set_happens_before_wait_returns() {
    loom::model(|| {
        let e = Arc::new(RawEvent::default());
        let data = Arc::new(AtomicU32::new(0));
        let t = thread::spawn({
            let (e, data) = (Arc::clone(&e), Arc::clone(&data));
            move || {
                data.store(1, Ordering::Relaxed);
                e.set();
            }
        });
        assert!(e.wait(None));
        assert_eq!(data.load(Ordering::Relaxed), 1);
        t.join().unwrap();
    });
}

#[test]
fn loom_event_set_then_clear_releases_a_sleeping_waiter() {
    // bpo-13502: a set immediately undone by a clear still releases a waiter that
    // was waiting (here: had announced that it sleeps) when the set came.
    loom::model(|| {
        let e = Arc::new(RawEvent::default());
        let t = thread::spawn({
            let e = Arc::clone(&e);
            move || assert!(e.wait(None))
        });
        while !e.has_waiters() {
            thread::yield_now();
        }
        e.set();
        e.clear();
        t.join().unwrap();
    });
}

#[test]
fn loom_condition_no_lost_wakeup() {
    loom::model(|| {
        let lock = Arc::new(RawLock::default());
        let cond = Arc::new(RawCondition::default());
        let flag = Arc::new(AtomicU32::new(0));
        let t = thread::spawn({
            let (lock, cond, flag) = (Arc::clone(&lock), Arc::clone(&cond), Arc::clone(&flag));
            move || {
                lock.lock(None);
                flag.store(1, Ordering::Relaxed);
                cond.notify(1);
                lock.unlock(false);
            }
        });
        lock.lock(None);
        while flag.load(Ordering::Relaxed) == 0 {
            let seq = cond.prepare();
            lock.unlock(false);
            cond.sleep(seq, None);
            lock.lock(None);
        }
        lock.unlock(false);
        t.join().unwrap();
    });
}

#[test]
fn loom_condition_notify_one_wakes_exactly_one_of_two() {
    loom::model(|| {
        let lock = Arc::new(RawLock::default());
        let cond = Arc::new(RawCondition::default());
        let woken = Arc::new(AtomicU32::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (lock, cond, woken) =
                    (Arc::clone(&lock), Arc::clone(&cond), Arc::clone(&woken));
                thread::spawn(move || {
                    lock.lock(None);
                    let seq = cond.prepare();
                    lock.unlock(false);
                    assert!(cond.sleep(seq, None));
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        while cond.waiters() < 2 {
            thread::yield_now();
        }
        // Both registered, asleep or about to be: one notify wakes one of them.
        lock.lock(None);
        cond.notify(1);
        lock.unlock(false);
        while woken.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        cond.notify(1);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn loom_barrier_two_parties_one_round() {
    loom::model(|| {
        let b = crate::sync::Barrier::new(2).unwrap();
        let t = thread::spawn({
            let b = b.clone();
            move || b.wait().unwrap()
        });
        let mine = b.wait().unwrap();
        let theirs = t.join().unwrap();
        assert_eq!(mine + theirs, 1, "indices are 0 and 1");
        assert_eq!(b.n_waiting(), 0);
    });
}

#[test]
fn loom_barrier_abort_releases_waiter() {
    loom::model(|| {
        let b = crate::sync::Barrier::new(2).unwrap();
        let t = thread::spawn({
            let b = b.clone();
            move || b.wait().is_err()
        });
        b.abort();
        assert!(t.join().unwrap(), "a wait after or during abort fails");
    });
}
