//! `Lock` across processes, including holders that crash or are killed.

mod util;

use std::sync::atomic::Ordering;
use std::time::Duration;

use multiproc::sync::TryLockError;
use multiproc::{Lock, Process, SharedMemory, StartMethod};

const N: u64 = 20_000;

/// Increments a plain (load + store) counter under the lock: exclusion failures
/// lose updates.
fn increment(args: (Lock, SharedMemory)) -> u64 {
    let (lock, shm) = args;
    let counter = shm.atomic_u64(0);
    for _ in 0..N {
        let _g = lock.lock().unwrap();
        let v = counter.load(Ordering::Relaxed);
        counter.store(v + 1, Ordering::Relaxed);
    }
    N
}

#[test]
fn processes_and_threads_exclude_each_other() {
    let _w = util::watchdog(Duration::from_secs(60));
    let lock = Lock::new().unwrap();
    let shm = SharedMemory::create(8).unwrap();
    let children: Vec<_> = [StartMethod::ForkServer, StartMethod::Spawn]
        .into_iter()
        .map(|m| {
            multiproc::process::Builder::new()
                .start_method(m)
                .start_with(increment, (lock.clone(), shm.clone()))
                .unwrap()
        })
        .collect();
    let t = std::thread::spawn({
        let args = (lock.clone(), shm.clone());
        move || increment(args)
    });
    increment((lock.clone(), shm.clone()));
    t.join().unwrap();
    for c in children {
        assert_eq!(c.join().unwrap(), N);
    }
    assert_eq!(shm.atomic_u64(0).load(Ordering::Relaxed), 4 * N);
    assert!(!lock.is_locked());
}

fn lock_and_abort(lock: Lock) {
    std::mem::forget(lock.lock().unwrap());
    std::process::abort();
}

#[test]
fn holder_that_aborts_is_reported() {
    let _w = util::watchdog(Duration::from_secs(60));
    let lock = Lock::new().unwrap();
    let child = Process::start_with(lock_and_abort, lock.clone()).unwrap();
    assert!(child.join().is_err());
    let guard = lock.lock().unwrap_err().into_inner();
    drop(guard);
    drop(lock.lock().unwrap());
}

fn lock_and_hang(args: (Lock, SharedMemory)) {
    let (lock, shm) = args;
    std::mem::forget(lock.lock().unwrap());
    shm.atomic_u32(0).store(1, Ordering::SeqCst);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn sleeping_waiter_learns_of_a_sigkilled_holder() {
    let _w = util::watchdog(Duration::from_secs(60));
    let lock = Lock::new().unwrap();
    let flag = SharedMemory::create(4).unwrap();
    let child = multiproc::process::Builder::new()
        .start_method(StartMethod::Fork)
        .allow_threads(true)
        .start_with(lock_and_hang, (lock.clone(), flag.clone()))
        .unwrap();
    assert!(util::eventually(Duration::from_secs(20), || flag
        .atomic_u32(0)
        .load(Ordering::SeqCst)
        == 1));
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    // Two waiters asleep in `lock()`; exactly one is told, the other gets it after.
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let lock = lock.clone();
            std::thread::spawn(move || lock.lock().is_err())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    child.kill().unwrap();
    let told: usize = waiters
        .into_iter()
        .map(|t| usize::from(t.join().unwrap()))
        .sum();
    assert_eq!(told, 1);
    assert!(lock.lock_timeout(Duration::from_secs(5)).is_ok());
}

#[test]
fn lock_timeout_expires_while_a_live_process_holds_it() {
    let _w = util::watchdog(Duration::from_secs(60));
    let lock = Lock::new().unwrap();
    let flag = SharedMemory::create(4).unwrap();
    let child = Process::start_with(lock_and_hang, (lock.clone(), flag.clone())).unwrap();
    assert!(util::eventually(Duration::from_secs(20), || flag
        .atomic_u32(0)
        .load(Ordering::SeqCst)
        == 1));
    // Longer than a liveness period: the holder is checked and found alive.
    let r = lock.lock_timeout(Duration::from_millis(120));
    assert!(matches!(r, Err(TryLockError::WouldBlock)));
    child.kill().unwrap();
    assert!(lock.lock().is_err());
}

fn hold_and_signal(args: (Lock, SharedMemory, u32)) {
    let (lock, shm, round) = args;
    let g = lock.lock().unwrap_or_else(|d| d.into_inner());
    // Half of an update: the parent repairs it.
    shm.atomic_u64(8)
        .store(u64::from(round) + 1000, Ordering::SeqCst);
    shm.atomic_u32(0).store(round, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(60));
    drop(g);
}

#[test]
fn repeated_kills_of_holders_never_hang_and_report_each_death_once() {
    let _w = util::watchdog(Duration::from_secs(90));
    let lock = Lock::new().unwrap();
    let shm = SharedMemory::create(16).unwrap();
    for round in 1..=4u32 {
        let child =
            Process::start_with(hold_and_signal, (lock.clone(), shm.clone(), round)).unwrap();
        assert!(util::eventually(Duration::from_secs(20), || shm
            .atomic_u32(0)
            .load(Ordering::SeqCst)
            == round));
        child.kill().unwrap();
        let g = lock.lock().unwrap_err().into_inner();
        assert_eq!(
            shm.atomic_u64(8).load(Ordering::SeqCst),
            u64::from(round) + 1000
        );
        shm.atomic_u64(8).store(0, Ordering::SeqCst); // repaired
        drop(g);
        assert!(lock.try_lock().is_ok(), "reported once, then a normal lock");
    }
}

#[test]
fn a_guard_copied_into_a_forked_child_does_not_unlock_the_parent() {
    let _w = util::watchdog(Duration::from_secs(60));
    let lock = Lock::new().unwrap();
    let relocked = multiproc::Event::new().unwrap();
    let g = lock.lock().unwrap();
    let (child_lock, child_relocked) = (lock.clone(), relocked.clone());
    let p = multiproc::process::Builder::new()
        .allow_threads(true)
        .fork(move || {
            child_relocked.wait();
            drop(g); // the child's copy: not the owner, releases nothing
            child_lock.is_locked()
        })
        .unwrap();
    // The parent's copy of `g` went with the closure and was released here by its
    // owner; lock again, then let the child drop its copy.
    let g2 = lock.lock().unwrap();
    relocked.set();
    assert!(
        p.join().unwrap(),
        "the child's copy did not unlock the parent's lock"
    );
    assert!(lock.is_locked());
    drop(g2);
    assert!(!lock.is_locked());
}
