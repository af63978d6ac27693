//! `multiproc::scope`: scoped threads and Fork children that borrow the caller's data.

mod util;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use multiproc::{ErrorKind, Process, Value};

const LIMIT: Duration = Duration::from_secs(60);

/// Data with no serde form and no `Send`: a Fork child may still read it.
struct Local {
    cells: Rc<RefCell<Vec<u64>>>,
}

#[test]
fn threads_borrow_and_mutate_the_callers_data() {
    let _w = util::watchdog(LIMIT);
    let words = ["alpha", "be", "gam"];
    let mut lens = [0usize; 3];
    let total = AtomicU32::new(0);
    let joined = multiproc::scope(|s| -> multiproc::Result<usize> {
        let mut handles = Vec::new();
        for (w, l) in words.iter().zip(lens.iter_mut()) {
            let total = &total;
            handles.push(s.spawn(move || {
                *l = w.len();
                total.fetch_add(1, Ordering::SeqCst);
                w.len()
            })?);
        }
        let mut sum = 0;
        for h in handles {
            sum += h.join()?;
        }
        Ok(sum)
    })
    .unwrap()
    .unwrap();
    assert_eq!(joined, 10);
    assert_eq!(lens, [5, 2, 3]);
    assert_eq!(total.load(Ordering::SeqCst), 3);
}

#[test]
fn a_joined_threads_panic_is_its_error_and_an_unjoined_ones_is_the_scopes() {
    let _w = util::watchdog(LIMIT);
    let r = multiproc::scope(|s| {
        let h = s.spawn(|| -> u8 { panic!("joined boom") }).unwrap();
        let e = h.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.panic().unwrap().message(), "joined boom");
        7
    });
    assert_eq!(r.unwrap(), 7, "a joined failure is not the scope's");

    let r = multiproc::scope(|s| {
        let _ok = s.spawn(|| 1).unwrap();
        let _bad = s.spawn(|| -> u8 { panic!("left behind") }).unwrap();
        let _later = s.spawn(|| -> u8 { panic!("second") }).unwrap();
    });
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(
        e.panic().unwrap().message(),
        "left behind",
        "the first failure in start order"
    );
}

#[test]
fn a_fork_child_reads_a_snapshot_and_its_writes_stay_in_it() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let local = Local {
        cells: Rc::new(RefCell::new(vec![1, 2, 3])),
    };
    let mut owned = vec![10u64];
    let (seen, len_in_child) = multiproc::scope(|s| -> multiproc::Result<(u64, usize)> {
        // Borrows `!Send` data: the child runs on a copy of this very thread.
        let a = s.fork(|| local.cells.borrow().iter().sum::<u64>())?;
        // Writes through `&mut`: the child changes its own copy only.
        let b = s.fork(|| {
            owned.push(11);
            local.cells.borrow_mut().clear();
            owned.len()
        })?;
        Ok((a.join()?, b.join()?))
    })
    .unwrap()
    .unwrap();
    assert_eq!(seen, 6);
    assert_eq!(len_in_child, 2);
    assert_eq!(owned, [10], "the parent's data is unchanged");
    assert_eq!(*local.cells.borrow(), [1, 2, 3]);
}

#[test]
fn a_fork_child_writes_the_parent_sees_go_through_shared_memory() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let counter = Value::new(0u64).unwrap();
    let inputs: Vec<u64> = (1..=100).collect();
    multiproc::scope(|s| {
        for half in inputs.chunks(50) {
            let counter = &counter;
            let c = s
                .fork(move || {
                    counter.fetch_add(half.iter().sum());
                })
                .unwrap();
            c.join().unwrap();
        }
    })
    .unwrap();
    assert_eq!(counter.get(), 5050);
}

#[test]
fn a_childs_failure_comes_back_from_join() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let name = String::from("data");
    multiproc::scope(|s| {
        let e = s
            .fork(|| -> u8 { panic!("child says {name}") })
            .unwrap()
            .join()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.panic().unwrap().message(), "child says data");
        let e = s
            .fork(|| -> u8 { multiproc::fault::segfault() })
            .unwrap()
            .join()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Signaled);
        let mut sleeper = s
            .fork(|| -> u8 {
                std::thread::sleep(LIMIT);
                0
            })
            .unwrap();
        let e = sleeper.join_timeout(Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(sleeper.is_alive());
        sleeper.kill().unwrap();
        assert_eq!(sleeper.join().unwrap_err().kind(), ErrorKind::Signaled);
    })
    .unwrap();
}

#[test]
fn the_scope_waits_for_unjoined_children_and_reports_their_failure() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let done = Value::new(0u32).unwrap();
    let mut pids = Vec::new();
    let r = multiproc::scope(|s| {
        let slow = s
            .fork(|| {
                std::thread::sleep(Duration::from_millis(300));
                done.set(1);
            })
            .unwrap();
        pids.push(slow.pid());
        // Dropped unjoined: the scope waits for it.
        drop(slow);
        let bad = s.fork(|| -> u8 { std::process::abort() }).unwrap();
        pids.push(bad.pid());
    });
    assert_eq!(done.get(), 1, "scope returned before its child ended");
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Signaled, "{e}");
    // Both children are reaped: no zombie, no process left.
    for pid in pids {
        assert!(!util::alive(pid), "{pid} still there");
        assert!(!util::zombie_children().contains(&pid), "{pid} is a zombie");
    }
}

#[test]
fn threads_start_threads_and_children_with_a_copied_scope() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let base = vec![5u64, 6, 7];
    let got = multiproc::scope(|s| {
        let base = &base;
        s.spawn(move || -> multiproc::Result<u64> {
            // `Scope` is `Copy`: this thread starts a thread and a child of its own.
            let t = s.spawn(move || base[0])?;
            let c = s.fork(move || base[1] + base[2])?;
            Ok(t.join()? + c.join()?)
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap()
    })
    .unwrap();
    assert_eq!(got, 18);
}

#[test]
fn fork_with_takes_a_builders_settings() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let msg = String::from("from the snapshot");
    let (r, out) = multiproc::scope(|s| {
        let b = Process::builder()
            .allow_threads(true)
            .capture_output(true)
            .name("scoped-child");
        let p = s
            .fork_with(b, || {
                // Through the handle: under libtest's capture `println!` would go to
                // the harness's buffer (in the child's copy of it).
                writeln!(std::io::stdout(), "{msg}").unwrap();
                multiproc::process::current_process().name().to_owned()
            })
            .unwrap();
        p.join_with_output()
    })
    .unwrap();
    assert_eq!(r.unwrap(), "scoped-child");
    assert_eq!(out.stdout, b"from the snapshot\n");
}

#[test]
fn a_panicking_scope_still_waits_for_its_children() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let done = Value::new(0u32).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        multiproc::scope(|s| {
            let _child = s
                .fork(|| {
                    // Longer than the panic hook takes to print a backtrace.
                    std::thread::sleep(Duration::from_millis(1500));
                    done.set(1);
                })
                .unwrap();
            panic!("the scope's own closure");
        })
    }));
    let msg = r.unwrap_err();
    assert_eq!(msg.downcast_ref::<&str>(), Some(&"the scope's own closure"));
    assert_eq!(done.get(), 1, "the panic left before the child ended");
}

#[test]
fn a_fork_child_that_joins_a_parents_thread_gets_a_typed_error() {
    let _w = util::watchdog(Duration::from_secs(120));
    // Before: std's join panicked in the child ('threads should not terminate
    // unexpectedly': the thread is not there).
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let r = multiproc::scope(|s| {
        let t = s.spawn(move || go_rx.recv_timeout(Duration::from_secs(60)).is_ok())?;
        // The thread exists only in this process; the child has its handle's copy.
        let mut p = s.fork(move || t.join().map_err(|e| e.kind()).err())?;
        let got = p.join_timeout(Duration::from_secs(20));
        if got.is_err() {
            let _ = p.kill();
        }
        go_tx.send(()).unwrap();
        got
    });
    assert_eq!(
        r.unwrap().unwrap(),
        Some(multiproc::ErrorKind::InvalidInput)
    );
}

#[test]
fn a_child_joined_with_a_timeout_is_not_joined_again_by_the_scope() {
    let _w = util::watchdog(Duration::from_secs(120));
    let r = multiproc::scope(|s| {
        let mut p = s.fork(|| 6 * 7)?;
        let v = p.join_timeout(Duration::from_secs(60))?;
        // The handle stays usable after its child was joined.
        assert!(!p.is_alive());
        Ok::<_, multiproc::Error>(v)
    });
    assert_eq!(r.unwrap().unwrap(), 42);
}
