//! Loom models of the [`Slot`] protocol (see the `slot` module docs): a completion is
//! never lost by a waiter that parks, exactly one completion wins, and `cancel` and
//! `try_start` agree on who won.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p multiproc --lib --release loom_slot`

use std::os::fd::OwnedFd;

use loom::sync::Arc;
use loom::thread;

use super::slot::{Completion, Slot};
use crate::error::{ErrorKind, Result};

fn never(_: &[u8], _: Vec<OwnedFd>) -> Result<u32> {
    unreachable!("the models deliver values, not bytes")
}

fn slot() -> std::sync::Arc<Slot<u32>> {
    Slot::new(never, None, None)
}

/// A waiter that parks is woken by the completion, and sees its value.
#[test]
fn deliver_wakes_a_parked_waiter() {
    loom::model(|| {
        let s = Arc::new(slot());
        let t = thread::spawn({
            let s = Arc::clone(&s);
            move || s.deliver(Ok(42))
        });
        assert_eq!(s.join().unwrap(), 42);
        t.join().unwrap();
    });
}

/// Two waiters and two racing completions: both waiters return, the value is one of
/// the two, taken once.
#[test]
fn first_completion_wins_and_every_waiter_returns() {
    loom::model(|| {
        let s = Arc::new(slot());
        let a = thread::spawn({
            let s = Arc::clone(&s);
            move || s.deliver(Ok(1))
        });
        let b = thread::spawn({
            let s = Arc::clone(&s);
            move || {
                s.fail(crate::Error::new(ErrorKind::WorkerDied));
                assert!(s.wait_until(None));
            }
        });
        assert!(s.wait_until(None));
        let first = s.take();
        assert!(matches!(&first, Ok(1)) || first.unwrap_err().kind() == ErrorKind::WorkerDied);
        assert_eq!(s.take().unwrap_err().kind(), ErrorKind::AlreadyJoined);
        a.join().unwrap();
        b.join().unwrap();
    });
}

/// `cancel` and a backend's `try_start` race: exactly one wins, and the slot's state
/// says which.
#[test]
fn cancel_and_start_agree() {
    loom::model(|| {
        let s = Arc::new(slot());
        let starter = thread::spawn({
            let s = Arc::clone(&s);
            move || {
                let started = s.try_start();
                if started {
                    s.deliver(Ok(7));
                }
                started
            }
        });
        let cancelled = s.cancel();
        let started = starter.join().unwrap();
        assert!(
            started != cancelled,
            "started {started}, cancelled {cancelled}"
        );
        assert_eq!(s.is_cancelled(), cancelled);
        match s.join() {
            Ok(v) => assert!(started && v == 7),
            Err(e) => assert!(cancelled && e.kind() == ErrorKind::Cancelled),
        }
    });
}
