//! RLock, semaphores, Event, Condition and Barrier across processes.

mod util;

use util::mapped_segments;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use multiproc::process::Builder;
use multiproc::{
    Barrier, BoundedSemaphore, Condition, ErrorKind, Event, Process, RLock, Semaphore, StartMethod,
    Value,
};

fn rlock_twice_and_abort(r: RLock) {
    std::mem::forget(r.lock().unwrap());
    std::mem::forget(r.lock().unwrap());
    std::process::abort();
}

#[test]
fn rlock_holder_death_is_reported_with_count_one() {
    let _w = util::watchdog(Duration::from_secs(60));
    let r = RLock::new().unwrap();
    assert!(Process::start_with(rlock_twice_and_abort, r.clone())
        .unwrap()
        .join()
        .is_err());
    let g = r.lock().unwrap_err().into_inner();
    assert_eq!(r.count(), 1);
    g.unlock().unwrap();
    assert!(!r.is_locked());
}

#[test]
fn rlock_release_by_a_forked_non_owner_is_an_error() {
    let _w = util::watchdog(Duration::from_secs(60));
    let r = RLock::new().unwrap();
    let g = r.lock().unwrap();
    let p = Builder::new()
        .allow_threads(true)
        .fork(|| {
            // The child inherited the guard but is another thread: not the owner.
            let e = g.unlock().unwrap_err();
            e.kind() == ErrorKind::NotOwner
        })
        .unwrap();
    assert!(p.join().unwrap());
    // The parent's lock was untouched by the child (the parent's copy of the guard
    // was dropped with the closure, by the owner).
    assert!(!r.is_locked());
}

fn release_twice(args: (Semaphore, BoundedSemaphore)) -> bool {
    let (s, b) = args;
    s.release().unwrap();
    s.release().unwrap();
    b.release().unwrap_err().kind() == ErrorKind::TooManyReleases
}

#[test]
fn semaphores_across_processes() {
    let _w = util::watchdog(Duration::from_secs(60));
    let s = Semaphore::new(0).unwrap();
    let b = BoundedSemaphore::new(1).unwrap();
    let p = Process::start_with(release_twice, (s.clone(), b.clone())).unwrap();
    s.acquire();
    assert!(s.acquire_timeout(Duration::from_secs(20)));
    assert!(p.join().unwrap());
    assert_eq!(s.value(), 0);
    assert_eq!(b.value(), 1);
}

fn wait_event(args: (Event, Event)) -> bool {
    let (go, done) = args;
    go.wait();
    done.set();
    go.is_set()
}

#[test]
fn event_across_processes_by_every_start_method() {
    let _w = util::watchdog(Duration::from_secs(60));
    for m in StartMethod::ALL {
        let go = Event::new().unwrap();
        let done = Event::new().unwrap();
        let p = Builder::new()
            .start_method(m)
            .allow_threads(true)
            .start_with(wait_event, (go.clone(), done.clone()))
            .unwrap();
        assert!(!done.wait_timeout(Duration::from_millis(5)));
        go.set();
        done.wait();
        assert!(p.join().unwrap());
    }
}

fn consume(args: (Condition, Value<u32>)) -> u32 {
    let (c, v) = args;
    let g = c.lock().unwrap();
    let _g = c.wait_for(g, || v.get() >= 3).unwrap();
    v.get()
}

#[test]
fn condition_across_processes() {
    let _w = util::watchdog(Duration::from_secs(60));
    let c = Condition::new().unwrap();
    let v = Value::new(0u32).unwrap();
    let kids: Vec<Process<u32>> = (0..2)
        .map(|_| Process::start_with(consume, (c.clone(), v.clone())).unwrap())
        .collect();
    for _ in 0..3 {
        let _g = c.lock().unwrap();
        v.set(v.get() + 1);
        c.notify_all();
    }
    for k in kids {
        assert_eq!(k.join().unwrap(), 3);
    }
}

static ACTION_RAN: AtomicBool = AtomicBool::new(false);

fn mark() {
    ACTION_RAN.store(true, Ordering::SeqCst);
}

fn party(b: Barrier) -> (usize, bool) {
    let i = b.wait().unwrap();
    (i, ACTION_RAN.load(Ordering::SeqCst))
}

#[test]
fn barrier_across_processes_runs_the_action_once() {
    let _w = util::watchdog(Duration::from_secs(60));
    let b = Barrier::with_action(3, mark).unwrap();
    let kids: Vec<Process<(usize, bool)>> = [StartMethod::Spawn, StartMethod::ForkServer]
        .into_iter()
        .map(|m| {
            Builder::new()
                .start_method(m)
                .start_with(party, b.clone())
                .unwrap()
        })
        .collect();
    let mine = b.wait().unwrap();
    let mut idx = vec![mine];
    let mut ran = usize::from(ACTION_RAN.load(Ordering::SeqCst));
    for k in kids {
        let (i, r) = k.join().unwrap();
        idx.push(i);
        ran += usize::from(r);
    }
    idx.sort_unstable();
    assert_eq!(idx, [0, 1, 2]);
    assert_eq!(ran, 1, "the action ran in exactly one process");
}

fn wait_long(b: Barrier) -> bool {
    b.wait().unwrap_err().kind() == ErrorKind::BrokenBarrier
}

#[test]
fn barrier_abort_reaches_a_waiting_process() {
    let _w = util::watchdog(Duration::from_secs(60));
    let b = Barrier::new(2).unwrap();
    let p = Process::start_with(wait_long, b.clone()).unwrap();
    assert!(util::eventually(Duration::from_secs(20), || b.n_waiting() == 1));
    b.abort();
    assert!(p.join().unwrap());
}

fn wait_to_be_killed(b: Barrier) -> u8 {
    let _ = b.wait();
    0
}

/// A party's outcome, as `Ok(index)` or `Err((kind, message))`.
fn wait_outcome(b: Barrier) -> Result<usize, (String, String)> {
    b.wait()
        .map_err(|e| (format!("{:?}", e.kind()), e.to_string()))
}

/// Issue 9 item 13: `Barrier(3)` released two live parties as if three had arrived
/// when the third died (SIGKILL) while it waited. The dead party breaks the barrier:
/// the other two get `BrokenBarrier` naming it, whether the death is seen by a
/// waiter's liveness tick (the second party waits alone for a while first) or by the
/// last arrival (both arrive at once).
#[test]
fn barrier_party_killed_while_waiting_breaks_it() {
    let _w = util::watchdog(Duration::from_secs(120));
    for m in StartMethod::ALL {
        for linger in [Duration::ZERO, Duration::from_millis(100)] {
            let b = Barrier::new(3).unwrap();
            let victim = Builder::new()
                .start_method(m)
                .allow_threads(true)
                .start_with(wait_to_be_killed, b.clone())
                .unwrap();
            let pid = victim.pid();
            assert!(util::eventually(Duration::from_secs(20), || b.n_waiting() == 1));
            victim.kill().unwrap();
            assert!(victim.join().is_err());
            let started = std::time::Instant::now();
            let other = Builder::new()
                .start_method(m)
                .allow_threads(true)
                .start_with(wait_outcome, b.clone())
                .unwrap();
            assert!(util::eventually(Duration::from_secs(20), || {
                b.n_waiting() >= 2 || b.is_broken()
            }));
            if !linger.is_zero() {
                // The second party's liveness tick finds the death on its own.
                assert!(
                    util::eventually(linger + Duration::from_secs(10), || b.is_broken()),
                    "{m}: the waiting party did not notice the death"
                );
            }
            let e = b
                .wait()
                .expect_err("released as if the dead party had arrived");
            assert_eq!(e.kind(), ErrorKind::BrokenBarrier, "{m}: {e}");
            let died = format!("pid {pid}) died");
            assert!(e.to_string().contains(&died), "{m}: {e}");
            let (kind, msg) = other
                .join()
                .unwrap()
                .expect_err("the other party is released");
            assert_eq!(kind, "BrokenBarrier", "{m}: {msg}");
            assert!(msg.contains(&died), "{m}: {msg}");
            // Within the liveness period, plus a generous margin for a loaded machine.
            assert!(
                started.elapsed() < linger + Duration::from_secs(10),
                "{m}: {:?}",
                started.elapsed()
            );
            assert!(b.is_broken());
            b.reset();
            assert!(!b.is_broken());
        }
    }
}

fn touch_all(args: (RLock, Semaphore, Event, Condition, Barrier)) -> bool {
    let (r, s, e, c, b) = args;
    drop(r.lock().unwrap());
    s.release().unwrap();
    e.set();
    c.notify_all();
    b.wait().is_ok()
}

#[test]
fn dropped_primitives_free_their_segments() {
    let _w = util::watchdog(Duration::from_secs(60));
    let make = || {
        (
            RLock::new().unwrap(),
            Semaphore::new(0).unwrap(),
            Event::new().unwrap(),
            Condition::new().unwrap(),
            Barrier::new(1).unwrap(),
        )
    };
    // Warm up (fork server, codec) before counting.
    assert!(Process::start_with(touch_all, make())
        .unwrap()
        .join()
        .unwrap());
    let (fds, maps) = (util::open_fds(), mapped_segments());
    for _ in 0..3 {
        let all = make();
        assert!(mapped_segments() > maps);
        assert!(Process::start_with(touch_all, all.clone())
            .unwrap()
            .join()
            .unwrap());
        assert!(all.2.is_set());
        assert_eq!(all.1.value(), 1);
    }
    assert_eq!(util::open_fds(), fds);
    assert_eq!(mapped_segments(), maps);
}

fn lock_all(locks: Vec<multiproc::Lock>) -> usize {
    let fds = util::open_fds();
    let n = locks.iter().filter(|l| l.try_lock().is_ok()).count();
    // 200 locks from one arena arrived as 200 descriptors, kept as one mapping.
    assert!(mapped_segments() <= 2, "{} mappings", mapped_segments());
    drop(locks);
    assert!(util::open_fds() <= fds);
    n
}

#[test]
fn many_small_objects_share_a_few_segments() {
    let _w = util::watchdog(Duration::from_secs(60));
    // Start the fork server before counting descriptors.
    assert_eq!(
        Process::start_with(lock_all, Vec::new())
            .unwrap()
            .join()
            .unwrap(),
        0
    );
    let fds = util::open_fds();
    let locks: Vec<multiproc::Lock> = (0..2000).map(|_| multiproc::Lock::new().unwrap()).collect();
    // 16-byte locks, 256 to a page-sized arena: 8 descriptors, not 2000.
    assert!(
        util::open_fds() - fds <= 16,
        "{} descriptors",
        util::open_fds() - fds
    );
    let held: Vec<_> = locks.iter().step_by(2).map(|l| l.lock().unwrap()).collect();
    // One message carries at most ~250 descriptors (one per object): send a slice.
    let p = Process::start_with(lock_all, locks[..200].to_vec()).unwrap();
    assert_eq!(
        p.join().unwrap(),
        100,
        "neighbours in an arena are independent"
    );
    drop(held);
    drop(locks);
    assert_eq!(util::open_fds(), fds);
}

#[test]
fn semaphore_guard_gives_the_unit_back_even_on_a_panic() {
    let _w = util::watchdog(Duration::from_secs(60));
    let s = BoundedSemaphore::new(2).unwrap();
    let g = s.guard();
    assert_eq!(s.value(), 1);
    let s2 = s.clone();
    let r = std::thread::spawn(move || {
        let _g = s2.try_guard().expect("a unit is free");
        assert!(s2.try_guard().is_none());
        panic!("with the unit held");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(s.value(), 1, "the panicking thread's unit came back");
    assert!(s.guard_timeout(Duration::from_millis(10)).is_some());
    drop(g);
    assert_eq!(s.value(), 2);
    s.guard().forget();
    assert_eq!(s.value(), 1);
    s.release().unwrap();
    // A guard's release never trips the bound.
    assert!(s.release().is_err());
}
