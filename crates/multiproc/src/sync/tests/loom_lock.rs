//! Loom model of the robust lock protocol: mutual exclusion, no lost wake-up.

use crate::sync::robust::{Acquired, RawLock};
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

#[test]
fn loom_lock_mutual_exclusion_and_wakeup() {
    loom::model(|| {
        let lock = Arc::new(RawLock::default());
        let data = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (lock, data) = (Arc::clone(&lock), Arc::clone(&data));
                thread::spawn(move || {
                    assert_eq!(lock.lock(None), Some(Acquired::Clean));
                    // A split read-modify-write: loses an update without exclusion.
                    let v = data.load(Ordering::Relaxed);
                    data.store(v + 1, Ordering::Relaxed);
                    lock.unlock(false);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(lock.lock(None), Some(Acquired::Clean));
        assert_eq!(data.load(Ordering::Relaxed), 2);
        lock.unlock(false);
    });
}

#[test]
fn loom_lock_owner_died_flag_reaches_next_locker() {
    loom::model(|| {
        let lock = Arc::new(RawLock::default());
        let t = thread::spawn({
            let lock = Arc::clone(&lock);
            move || {
                lock.lock(None);
                lock.unlock(true);
            }
        });
        let first = lock.lock(None);
        lock.unlock(false);
        t.join().unwrap();
        let second = lock.try_lock();
        // Exactly one acquisition after the "dying" unlock sees OwnerDied.
        let died = [first, second]
            .iter()
            .filter(|a| **a == Some(Acquired::OwnerDied))
            .count();
        assert!(died <= 1);
        if first == Some(Acquired::Clean) {
            assert_eq!(second, Some(Acquired::OwnerDied));
        }
        lock.unlock(false);
    });
}
