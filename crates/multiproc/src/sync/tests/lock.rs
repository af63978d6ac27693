//! `Lock` between threads of one process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sync::{Lock, TryLockError};

#[test]
fn threads_exclude_each_other() {
    let lock = Lock::new().unwrap();
    let shared = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (lock, shared) = (lock.clone(), Arc::clone(&shared));
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let _g = lock.lock().unwrap();
                    // A non-atomic read-modify-write: lost updates if exclusion failed.
                    let v = shared.load(Ordering::Relaxed);
                    std::hint::spin_loop();
                    shared.store(v + 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(shared.load(Ordering::Relaxed), 8000);
    assert!(!lock.is_locked());
}

#[test]
fn try_lock_and_timeout() {
    let lock = Lock::new().unwrap();
    let g = lock.try_lock().unwrap();
    let other = lock.clone();
    std::thread::spawn(move || {
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(other
            .lock_timeout(Duration::from_millis(20))
            .unwrap_err()
            .is_would_block());
    })
    .join()
    .unwrap();
    drop(g);
    assert!(lock.lock_timeout(Duration::from_millis(20)).is_ok());
}

#[test]
fn waiter_is_woken_by_unlock() {
    let lock = Lock::new().unwrap();
    let g = lock.lock().unwrap();
    let other = lock.clone();
    let t = std::thread::spawn(move || drop(other.lock().unwrap()));
    std::thread::sleep(Duration::from_millis(20));
    drop(g);
    t.join().unwrap();
}

#[test]
fn panicking_holder_reports_owner_died_once() {
    let lock = Lock::new().unwrap();
    let other = lock.clone();
    let r = std::thread::spawn(move || {
        let _g = other.lock().unwrap();
        panic!("holder panics");
    })
    .join();
    assert!(r.is_err());
    let died = lock.lock().unwrap_err();
    assert!(died.to_string().contains("died"));
    drop(died.into_inner());
    assert!(lock.lock().is_ok(), "reported only once");
}

#[test]
fn exited_thread_holding_the_lock_is_detected() {
    let lock = Lock::new().unwrap();
    let other = lock.clone();
    std::thread::spawn(move || std::mem::forget(other.lock().unwrap()))
        .join()
        .unwrap();
    assert!(lock.is_locked());
    // `join` returns a moment before the thread is gone, so try_lock may first
    // still see it alive.
    let t0 = std::time::Instant::now();
    let g = loop {
        match lock.try_lock() {
            Err(TryLockError::OwnerDied(d)) => break d.into_inner(),
            Err(TryLockError::WouldBlock) if t0.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            other => panic!("expected OwnerDied, got {other:?}"),
        }
    };
    drop(g);
    let other = lock.clone();
    std::thread::spawn(move || std::mem::forget(other.lock().unwrap()))
        .join()
        .unwrap();
    assert!(lock.lock().is_err());
}

#[test]
#[should_panic(expected = "deadlock")]
fn relocking_from_the_holder_panics() {
    let lock = Lock::new().unwrap();
    let _g = lock.lock().unwrap();
    let _h = lock.lock();
}

#[test]
fn reused_thread_id_is_not_mistaken_for_the_owner() {
    use crate::sync::robust::{Acquired, RawLock};
    // A live thread (this one's sibling) whose id is in the word, but with another
    // start time: the recorded owner is a dead thread whose id was reused.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (id_tx, id_rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        id_tx
            .send(crate::sys::thread::current_with_start())
            .unwrap();
        rx.recv().ok();
    });
    let (tid, start) = id_rx.recv().unwrap();
    let lock = RawLock::default();
    lock.force_owner(tid, start);
    assert_eq!(
        lock.lock(Some(std::time::Instant::now() + Duration::from_millis(120))),
        None,
        "a live owner keeps the lock"
    );
    lock.force_owner(tid, start + 1);
    assert_eq!(lock.lock(None), Some(Acquired::OwnerDied));
    lock.unlock(false);
    // Unknown start time (0) and a live id: alive.
    lock.force_owner(tid, 0);
    assert_eq!(lock.try_lock(), None);
    tx.send(()).unwrap();
    t.join().unwrap();
}
