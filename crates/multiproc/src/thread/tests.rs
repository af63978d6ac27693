use std::time::Duration;

use super::*;
use crate::ErrorKind;

#[test]
fn returns_value_and_name() {
    let t = Builder::new().name("t1").start(|| 7).unwrap();
    assert_eq!(t.name(), Some("t1"));
    assert_eq!(t.join().unwrap(), 7);
}

#[test]
fn panic_carries_message_and_location() {
    let t = Thread::start(|| -> u8 { panic!("bad {}", 42) }).unwrap();
    let e = t.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    let p = e.panic().unwrap();
    assert_eq!(p.message(), "bad 42");
    let loc = p.location().expect("location recorded by hook");
    assert!(loc.file.ends_with("tests.rs"), "{loc}");
}

#[test]
fn join_timeout_then_join() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut t = Thread::start(move || rx.recv().is_ok()).unwrap();
    assert!(t.is_alive());
    assert!(t
        .join_timeout(Duration::from_millis(10))
        .unwrap_err()
        .is_timeout());
    tx.send(()).unwrap();
    assert!(t.join_timeout(Duration::from_secs(10)).unwrap());
    assert_eq!(
        t.join_timeout(Duration::from_secs(1)).unwrap_err().kind(),
        ErrorKind::AlreadyJoined
    );
}

#[test]
fn nul_in_name_is_rejected() {
    let e = Builder::new().name("a\0b").start(|| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}
