//! RLock, semaphores, Event, Condition and Barrier between threads of one process.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ErrorKind;
use crate::sync::{Barrier, BoundedSemaphore, Condition, Event, RLock, Semaphore, TryLockError};

#[test]
fn rlock_reenters_and_excludes_other_threads() {
    let r = RLock::new().unwrap();
    let a = r.lock().unwrap();
    let b = r.try_lock().unwrap();
    assert_eq!(r.count(), 2);
    let other = r.clone();
    std::thread::spawn(move || {
        assert!(!other.is_owned());
        assert_eq!(other.count(), 0);
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
    })
    .join()
    .unwrap();
    drop(b);
    assert!(r.is_locked());
    a.unlock().unwrap();
    assert!(!r.is_locked());
}

#[test]
fn rlock_panicking_holder_reports_owner_died() {
    let r = RLock::new().unwrap();
    let other = r.clone();
    let _ = std::thread::spawn(move || {
        let _a = other.lock().unwrap();
        let _b = other.lock().unwrap();
        panic!("boom");
    })
    .join();
    let g = r.lock().unwrap_err().into_inner();
    assert_eq!(r.count(), 1);
    drop(g);
    assert!(!r.is_locked());
}

#[test]
fn semaphore_counts_and_wakes() {
    let s = Semaphore::new(2).unwrap();
    assert!(s.try_acquire());
    assert!(s.try_acquire());
    assert!(!s.try_acquire());
    assert!(!s.acquire_timeout(Duration::from_millis(5)));
    let other = s.clone();
    let t = std::thread::spawn(move || other.acquire());
    std::thread::sleep(Duration::from_millis(10));
    s.release().unwrap();
    t.join().unwrap();
    assert_eq!(s.value(), 0);
    s.release_n(3).unwrap();
    assert_eq!(s.value(), 3);
}

#[test]
fn semaphore_bounds_concurrency() {
    let s = Semaphore::new(2).unwrap();
    let inside = Arc::new(AtomicU32::new(0));
    let max = Arc::new(AtomicU32::new(0));
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let (s, inside, max) = (s.clone(), Arc::clone(&inside), Arc::clone(&max));
            std::thread::spawn(move || {
                for _ in 0..200 {
                    s.acquire();
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    s.release().unwrap();
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert!(max.load(Ordering::SeqCst) <= 2);
    assert_eq!(s.value(), 2);
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    let s = BoundedSemaphore::new(1).unwrap();
    assert_eq!(s.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
    s.acquire();
    assert_eq!(
        s.release_n(2).unwrap_err().kind(),
        ErrorKind::TooManyReleases
    );
    s.release().unwrap();
    assert_eq!(s.value(), 1);
    // Python allows a bound of 0: nothing to acquire, nothing to release.
    let z = BoundedSemaphore::new(0).unwrap();
    assert!(!z.try_acquire());
    assert_eq!(z.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
    let m = BoundedSemaphore::new(u32::MAX).unwrap();
    assert!(m.try_acquire());
    m.release().unwrap();
    assert_eq!(m.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
    let u = Semaphore::new(u32::MAX).unwrap();
    assert_eq!(u.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
}

#[test]
fn event_wakes_all_waiters() {
    let e = Event::new().unwrap();
    let ts: Vec<_> = (0..3)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || e.wait())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(10));
    e.set();
    for t in ts {
        t.join().unwrap();
    }
    assert!(e.is_set());
    e.clear();
    assert!(!e.wait_timeout(Duration::from_millis(5)));
}

#[test]
fn condition_wait_for_and_notify() {
    let c = Condition::new().unwrap();
    let items = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let (c, items) = (c.clone(), Arc::clone(&items));
            std::thread::spawn(move || {
                let g = c.lock().unwrap();
                let _g = c.wait_for(g, || items.load(Ordering::SeqCst) > 0).unwrap();
                items.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(5));
        let _g = c.lock().unwrap();
        items.fetch_add(1, Ordering::SeqCst);
        c.notify(1);
    }
    for t in consumers {
        t.join().unwrap();
    }
    assert_eq!(items.load(Ordering::SeqCst), 0);
    let g = c.lock().unwrap();
    let (_g, ok) = c
        .wait_for_timeout(g, Duration::from_millis(5), || false)
        .unwrap();
    assert!(!ok);
}

#[test]
#[should_panic(expected = "another lock")]
fn condition_rejects_a_foreign_guard() {
    let c = Condition::new().unwrap();
    let other = crate::sync::Lock::new().unwrap();
    let g = other.lock().unwrap();
    let _ = c.wait(g);
}

static ACTIONS: AtomicUsize = AtomicUsize::new(0);

fn count_action() {
    ACTIONS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn barrier_releases_rounds_and_runs_the_action_once_each() {
    let b = Barrier::with_action(3, count_action).unwrap();
    let ts: Vec<_> = (0..3)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || (0..50).map(|_| b.wait().unwrap()).collect::<Vec<_>>())
        })
        .collect();
    let results: Vec<Vec<usize>> = ts.into_iter().map(|t| t.join().unwrap()).collect();
    for round in 0..50 {
        let mut idx: Vec<usize> = results.iter().map(|r| r[round]).collect();
        idx.sort_unstable();
        assert_eq!(idx, [0, 1, 2]);
    }
    assert_eq!(ACTIONS.load(Ordering::SeqCst), 50);
    assert_eq!(b.n_waiting(), 0);
}

/// The table of waiting parties is capped: a barrier for `u32::MAX` parties is a
/// sparse 1 MiB table, not 64 GiB, and waiting on it works.
#[test]
fn barrier_for_huge_party_counts_is_bounded() {
    let b = Barrier::new(u32::MAX).unwrap();
    let e = b.wait_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
    // Threads of one process are never taken for dead parties.
    let b = Barrier::new(3).unwrap();
    let ts: Vec<_> = (0..2)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || b.wait().unwrap())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(120));
    assert!(
        !b.is_broken(),
        "a liveness tick broke a barrier of live threads"
    );
    let mine = b.wait().unwrap();
    let mut idx: Vec<usize> = ts.into_iter().map(|t| t.join().unwrap()).collect();
    idx.push(mine);
    idx.sort_unstable();
    assert_eq!(idx, [0, 1, 2]);
}

#[test]
fn barrier_timeout_breaks_and_reset_repairs() {
    let b = Barrier::new(3).unwrap();
    let other = b.clone();
    let t = std::thread::spawn(move || other.wait());
    while b.n_waiting() != 1 {
        std::thread::yield_now();
    }
    let e = b.wait_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
    assert_eq!(
        t.join().unwrap().unwrap_err().kind(),
        ErrorKind::BrokenBarrier
    );
    assert!(b.is_broken());
    assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    b.reset();
    let b1 = Barrier::new(2).unwrap();
    let other = b1.clone();
    let t = std::thread::spawn(move || other.wait().unwrap());
    let mine = b1.wait().unwrap();
    assert_eq!(mine + t.join().unwrap(), 1);
}

#[test]
fn barrier_abort_and_reset_fail_waiters() {
    let b = Barrier::new(2).unwrap();
    let other = b.clone();
    let t = std::thread::spawn(move || other.wait());
    while b.n_waiting() != 1 {
        std::thread::yield_now();
    }
    b.reset();
    assert_eq!(
        t.join().unwrap().unwrap_err().kind(),
        ErrorKind::BrokenBarrier
    );
    assert!(!b.is_broken(), "reset leaves it usable");
    b.abort();
    assert!(b.is_broken());
    assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
}

fn panicking_action() {
    panic!("action failed");
}

#[test]
fn barrier_action_panic_breaks_it() {
    let b = Barrier::with_action(2, panicking_action).unwrap();
    let other = b.clone();
    let t = std::thread::spawn(move || other.wait());
    while b.n_waiting() != 1 {
        std::thread::yield_now();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.wait()));
    assert!(r.is_err());
    assert_eq!(
        t.join().unwrap().unwrap_err().kind(),
        ErrorKind::BrokenBarrier
    );
    assert!(b.is_broken());
}
