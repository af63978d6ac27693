//! Typed channels (`ipc::channel`, `Sender<T>`/`Receiver<T>`, `Select`) between
//! threads and processes, and the debug-build type check of `Connection`'s typed
//! messages.

mod util;

use std::time::Duration;

use multiproc::ipc::{
    self, wait, Pipe, Receiver, RecvError, RecvTimeoutError, Select, Sender, TryRecvError,
    TrySendError,
};
use multiproc::{ErrorKind, Process, StartMethod};

const LIMIT: Duration = Duration::from_secs(60);

fn producer(tx: Sender<(u32, String)>) {
    for i in 0..100 {
        tx.send((i, i.to_string())).unwrap();
    }
}

#[test]
fn sender_in_a_child_by_every_start_method() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let (tx, rx) = ipc::channel().unwrap();
        let p = util::builder(method).start_with(producer, tx).unwrap();
        let got: Vec<(u32, String)> = rx.iter().take(100).collect();
        assert_eq!(got.len(), 100, "{method:?}");
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, (n, s))| *n as usize == i && *s == n.to_string()));
        p.join().unwrap();
        // The child's sender is gone with it; a Fork child's copy of ours was dropped
        // when the builder consumed it.
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(RecvTimeoutError::Disconnected)
        ));
    }
}

fn doubler(rx: Receiver<u64>) -> u64 {
    rx.iter().map(|n| n * 2).sum()
}

#[test]
fn receiver_in_a_child_ends_when_every_clone_is_dropped() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (tx, rx) = ipc::channel::<u64>().unwrap();
    let p = Process::start_with(doubler, rx).unwrap();
    let tx2 = tx.clone();
    let t = std::thread::spawn(move || {
        for n in 1..=10 {
            tx2.send(n).unwrap();
        }
    });
    for n in 11..=20 {
        tx.send(n).unwrap();
    }
    t.join().unwrap();
    drop(tx);
    assert_eq!(p.join().unwrap(), 2 * (1..=20u64).sum::<u64>());
}

#[test]
fn errors_are_typed_and_hand_the_value_back() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (tx, rx) =
        ipc::channel_with::<Vec<u8>>(Pipe::builder().capacity(4096).max_message_size(1000))
            .unwrap();
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(10)),
        Err(RecvTimeoutError::Timeout)
    ));
    let e = tx.send(vec![0; 2000]).unwrap_err();
    assert!(e.is_rejected());
    assert_eq!(e.into_inner().len(), 2000);
    let mut n = 0;
    let full = loop {
        match tx.try_send(vec![1; 500]) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(n >= 2 && matches!(full, TrySendError::Full(ref v) if v.len() == 500));
    assert!(tx
        .send_timeout(vec![2; 500], Duration::from_millis(10))
        .unwrap_err()
        .is_timeout());
    assert_eq!(rx.try_iter().count(), n);
    drop(rx);
    let e = tx.send(vec![3]).unwrap_err();
    assert!(e.is_disconnected());
    assert_eq!(e.into_inner(), [3]);
}

#[test]
fn select_takes_ready_receivers_in_turn() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (tx1, rx1) = ipc::channel::<u32>().unwrap();
    let (tx2, rx2) = ipc::channel::<String>().unwrap();
    let mut sel = Select::new();
    assert_eq!(sel.ready().unwrap_err().kind(), ErrorKind::InvalidInput);
    let i1 = sel.recv(&rx1);
    let i2 = sel.recv(&rx2);
    assert_eq!(sel.try_ready().unwrap(), None);
    assert_eq!(sel.ready_timeout(Duration::from_millis(20)).unwrap(), None);
    for i in 0..3 {
        tx1.send(i).unwrap();
        tx2.send(i.to_string()).unwrap();
    }
    // Both stay ready; neither starves the other.
    let mut order = Vec::new();
    for _ in 0..6 {
        let i = sel.ready().unwrap();
        if i == i1 {
            order.push(format!("a{}", rx1.try_recv().unwrap()));
        } else {
            assert_eq!(i, i2);
            order.push(format!("b{}", rx2.try_recv().unwrap()));
        }
    }
    assert_eq!(order, ["a0", "b0", "a1", "b1", "a2", "b2"]);
    // A blocked select is woken by a sender in another thread, and by end of stream.
    let tx2c = tx2.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        tx2c.send("late".into()).unwrap();
    });
    assert_eq!(sel.ready().unwrap(), i2);
    assert_eq!(rx2.recv().unwrap(), "late");
    t.join().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(tx1);
    });
    assert_eq!(sel.ready().unwrap(), i1);
    t.join().unwrap();
    assert!(matches!(rx1.try_recv(), Err(TryRecvError::Disconnected)));
    drop(tx2);
}

fn exit_soon() {
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn receivers_and_processes_in_wait_and_select() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (tx, rx) = ipc::channel::<u8>().unwrap();
    let p = Process::start(exit_soon).unwrap();
    let mut sel = Select::new();
    let ir = sel.recv(&rx);
    let ip = sel.add(&p);
    assert_eq!(sel.ready().unwrap(), ip);
    p.join().unwrap();
    tx.send(5).unwrap();
    assert_eq!(wait(&[&rx], Some(LIMIT)).unwrap(), [0]);
    assert_eq!(ir, 0);
    assert_eq!(rx.recv().unwrap(), 5);
}

/// The examples: the codec alone gives a wrong number (bincode gave
/// `Ok(18446744073709551615)`; postcard, which zigzag-encodes `i64`, gives `Ok(1)`) and
/// `Ok(b"text")`.
#[test]
fn connection_checks_types_in_debug_builds() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::new().unwrap();
    a.send(-1i64).unwrap();
    a.send("text".to_string()).unwrap();
    a.send((1u8, 2u8)).unwrap();
    let r1 = b.recv::<u64>();
    let r2 = b.recv::<Vec<u8>>();
    let r3 = b.recv::<u8>();
    if cfg!(debug_assertions) {
        let Err(RecvError::Invalid(e)) = r1 else {
            panic!("{r1:?}")
        };
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.to_string().contains("type mismatch"), "{e}");
        assert!(matches!(r2, Err(RecvError::Invalid(_))), "{r2:?}");
        assert!(matches!(r3, Err(RecvError::Invalid(_))), "{r3:?}");
    } else {
        assert_eq!(r1.unwrap(), 1); // postcard's zigzag varint of -1

        assert_eq!(r2.unwrap(), b"text");
        assert_eq!(r3.unwrap(), 1);
    }
    // The stream is still usable, and serde-equivalent types pass.
    a.send("str").unwrap();
    a.send(&[1u16, 2][..]).unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "str");
    assert_eq!(b.recv::<Vec<u16>>().unwrap(), [1, 2]);
    // Raw bytes carry no type: received unchecked.
    a.send_bytes(&7u32.to_le_bytes()).unwrap();
    assert_eq!(b.recv::<u32>().unwrap(), 7);
    // A typed message read as bytes still decodes with the codec.
    a.send(9u32).unwrap();
    let raw = b.recv_bytes().unwrap();
    assert_eq!(ipc::codec::decode::<u32>(&raw, Vec::new()).unwrap(), 9);
}

fn wrong_type_child(tx: Sender<i64>) {
    tx.send(-5).unwrap();
}

fn read_as_u64(conn: multiproc::ipc::Connection) -> String {
    match conn.recv::<u64>() {
        Ok(v) => format!("ok {v}"),
        Err(e) => format!("err {e}"),
    }
}

#[test]
fn type_check_holds_across_processes() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // Child sends i64, parent reads it as u64 through the untyped connection.
    let (rx, tx) = Pipe::one_way().unwrap();
    let p = Process::start_with(read_as_u64, rx).unwrap();
    tx.send(-5i64).unwrap();
    let got = p.join().unwrap();
    if cfg!(debug_assertions) {
        assert!(
            got.starts_with("err") && got.contains("type mismatch"),
            "{got}"
        );
    } else {
        assert_eq!(got, "ok 9"); // postcard's zigzag varint of -5
    }
    let (tx, rx) = ipc::channel::<i64>().unwrap();
    let p = Process::start_with(wrong_type_child, tx).unwrap();
    assert_eq!(rx.recv().unwrap(), -5);
    p.join().unwrap();
}
