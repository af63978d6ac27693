//! `Pipe`/`Connection` with real child processes, by every start method: messages
//! both ways, large messages, end of stream when the peer exits or is killed,
//! `wait` over connections and processes, limits and errors.

mod util;

use util::builder;

use std::time::Duration;

use multiproc::ipc::{wait, Connection, Pipe, RecvTimeoutError, TryRecvError};
use multiproc::{Process, StartMethod};
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(60);

fn echo(conn: Connection) -> u64 {
    let mut n = 0;
    let mut buf = Vec::new();
    // An empty message ends the conversation: with `Fork` the child also holds a
    // copy of the parent's end, so it would never see end of stream (as in Python).
    while conn.recv_bytes_into(&mut buf).is_ok() && !buf.is_empty() {
        conn.send_bytes(&buf).unwrap();
        n += 1;
    }
    n
}

#[test]
fn echo_by_every_start_method() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let (a, b) = Pipe::new().unwrap();
        let p = builder(method).start_with(echo, b).unwrap();
        for i in 0..100u32 {
            a.send(i).unwrap();
            assert_eq!(a.recv::<u32>().unwrap(), i, "{method:?}");
        }
        // A message far larger than the ring goes through in fragments.
        let big: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7) as u8).collect();
        a.send_bytes(&big).unwrap();
        assert_eq!(a.recv_bytes().unwrap(), big);
        a.send_bytes(b"").unwrap();
        assert_eq!(p.join().unwrap(), 101, "{method:?}");
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Msg {
    Text(String),
    Nums(Vec<i64>),
}

fn typed_child(conn: Connection) {
    conn.send(Msg::Text("hi".into())).unwrap();
    conn.send(Msg::Nums(vec![1, -2, 3])).unwrap();
}

#[test]
fn typed_messages_then_end_of_stream_when_child_exits() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (rx, tx) = Pipe::one_way().unwrap();
    let p = Process::start_with(typed_child, tx).unwrap();
    assert_eq!(rx.recv::<Msg>().unwrap(), Msg::Text("hi".into()));
    assert_eq!(rx.recv::<Msg>().unwrap(), Msg::Nums(vec![1, -2, 3]));
    // The child exits: its end closes and the receiver gets end of stream.
    assert!(rx.recv::<Msg>().unwrap_err().is_disconnected());
    p.join().unwrap();
}

fn sleeper(_conn: Connection) {
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn killed_peer_gives_end_of_stream_not_a_hang() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let (a, b) = Pipe::new().unwrap();
        let p = builder(method).start_with(sleeper, b).unwrap();
        let t = std::thread::spawn(move || a.recv::<u8>().map_err(|e| e.is_disconnected()));
        std::thread::sleep(Duration::from_millis(50));
        p.kill().unwrap();
        assert_eq!(t.join().unwrap(), Err(true), "{method:?}");
        let _ = p.join();
    }
}

#[test]
fn sender_to_a_dead_peer_is_disconnected_once_full() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::builder().capacity(4096).build().unwrap();
    drop(b);
    let mut last: Result<(), multiproc::ipc::SendError<Vec<u8>>> = Ok(());
    for _ in 0..10_000 {
        last = a.send(vec![0u8; 100]);
        if last.is_err() {
            break;
        }
    }
    let e = last.unwrap_err();
    assert!(e.is_disconnected());
    assert_eq!(e.into_inner(), vec![0u8; 100]);
}

#[test]
fn try_and_timeout_variants() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::builder().capacity(4096).build().unwrap();
    assert!(matches!(b.try_recv::<u8>(), Err(TryRecvError::Empty)));
    assert!(matches!(
        b.recv_timeout::<u8>(Duration::from_millis(10)),
        Err(RecvTimeoutError::Timeout)
    ));
    let mut n = 0;
    while a.try_send(vec![1u8; 200]).is_ok() {
        n += 1;
    }
    assert!(n > 5);
    let e = a
        .send_timeout(vec![2u8; 200], Duration::from_millis(10))
        .unwrap_err();
    assert!(e.is_timeout());
    assert_eq!(e.into_inner(), vec![2u8; 200]);
    for _ in 0..n {
        assert_eq!(b.try_recv::<Vec<u8>>().unwrap(), vec![1u8; 200]);
    }
    assert!(!b.poll(Duration::ZERO));
    drop(a);
    assert!(b.poll(Duration::ZERO), "end of stream makes poll true");
    assert!(b.try_recv::<u8>().unwrap_err().is_disconnected());
}

#[test]
fn limits_and_bad_messages_are_errors() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::builder().max_message_size(1000).build().unwrap();
    let e = a.send(vec![0u8; 2000]).unwrap_err();
    assert!(e.is_rejected());
    assert_eq!(e.into_inner().len(), 2000);
    // A message that does not decode as the requested type.
    // (A compact format decodes many wrong types, such as these bytes as a `Vec<u64>`
    // of 12 small numbers; 12 is no `bool`.)
    a.send("not a number".to_string()).unwrap();
    let e = b.recv::<bool>().unwrap_err();
    assert!(
        matches!(e, multiproc::ipc::RecvError::Invalid(ref err) if err.kind() == multiproc::ErrorKind::Decode)
    );
    // The stream goes on.
    a.send(5u16).unwrap();
    assert_eq!(b.recv::<u16>().unwrap(), 5);
    // A value that owns a descriptor goes through (tests/ipc_fd_passing.rs has more).
    let (c, d) = Pipe::new().unwrap();
    a.send(c).unwrap();
    b.recv::<Connection>().unwrap().send(9u8).unwrap();
    assert_eq!(d.recv::<u8>().unwrap(), 9);
    // The receiver enforces its own limit too.
    let (x, y) = Pipe::builder().max_message_size(10_000).build().unwrap();
    x.send_bytes(&[1; 5000]).unwrap();
    assert_eq!(y.recv_bytes().unwrap().len(), 5000);
}

fn reply_after(conn: Connection) {
    let d: u64 = conn.recv().unwrap();
    std::thread::sleep(Duration::from_millis(d));
    conn.send(d).unwrap();
}

fn exit_after(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn wait_over_connections_and_processes() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (a1, b1) = Pipe::new().unwrap();
    let (a2, b2) = Pipe::new().unwrap();
    let p1 = Process::start_with(reply_after, b1).unwrap();
    let p2 = Process::start_with(reply_after, b2).unwrap();
    let p3 = Process::start_with(exit_after, 30).unwrap();
    a1.send(400u64).unwrap();
    a2.send(10u64).unwrap();
    let ready = wait(&[&a1, &a2], Some(Duration::from_secs(20))).unwrap();
    assert_eq!(ready, [1]);
    assert_eq!(a2.recv::<u64>().unwrap(), 10);
    let ready = wait(&[&a1, &p3], Some(Duration::from_secs(20))).unwrap();
    assert_eq!(ready, [1]);
    let ready = wait(&[&a1], Some(Duration::from_secs(20))).unwrap();
    assert_eq!(ready, [0]);
    assert_eq!(a1.recv::<u64>().unwrap(), 400);
    assert!(
        wait(&[&a1, &a2], Some(Duration::from_millis(5)))
            .unwrap()
            .len()
            <= 2
    );
    p1.join().unwrap();
    p2.join().unwrap();
    p3.join().unwrap();
    // Both children exited: once every copy of their ends is closed (the fork
    // server may drop its copies a moment later), both connections are ready.
    let mut ready = std::collections::BTreeSet::new();
    while ready.len() < 2 {
        ready.extend(wait(&[&a1, &a2], Some(Duration::from_secs(20))).unwrap());
    }
    assert!(a1.recv::<u64>().unwrap_err().is_disconnected());
    assert!(a2.recv::<u64>().unwrap_err().is_disconnected());
}

#[test]
fn threads_share_one_connection() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::new().unwrap();
    let a = std::sync::Arc::new(a);
    let senders: Vec<_> = (0..4u64)
        .map(|t| {
            let a = std::sync::Arc::clone(&a);
            std::thread::spawn(move || {
                for i in 0..1000u64 {
                    a.send(t * 10_000 + i).unwrap();
                }
            })
        })
        .collect();
    let mut seen = [0u64; 4];
    for _ in 0..4000 {
        let v: u64 = b.recv().unwrap();
        let t = (v / 10_000) as usize;
        assert_eq!(v % 10_000, seen[t], "per-sender order is kept");
        seen[t] += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
}

/// Regression: `wait` used to return as soon as one object was ready when armed, so a
/// connection whose peer had closed (ready for good) hid a second one that closed later.
#[test]
fn wait_reports_every_ready_connection_not_only_the_first() {
    let _w = util::watchdog(LIMIT);
    let (a1, b1) = Pipe::new().unwrap();
    let (a2, b2) = Pipe::new().unwrap();
    drop(b2);
    assert_eq!(
        wait(&[&a1, &a2], Some(Duration::from_secs(20))).unwrap(),
        [1]
    );
    drop(b1);
    assert_eq!(
        wait(&[&a1, &a2], Some(Duration::from_secs(20))).unwrap(),
        [0, 1]
    );
}
