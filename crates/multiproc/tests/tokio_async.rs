//! The async waits of the `tokio` feature, inside a current-thread runtime: there a wait that
//! blocked the thread would also stop the task that makes it ready, so each test would hang
//! (and its watchdog abort it) if `join_async`/`recv_async`/`get_async` blocked.
#![cfg(feature = "tokio")]

mod util;

use std::time::Duration;

use multiproc::ipc::{channel, Pipe, RecvError, TryRecvError};
use multiproc::{Process, Queue, StartMethod};
use tokio::task::yield_now;

const LIMIT: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The child exits only after this runtime's other task sends it a byte.
#[test]
fn join_async_lets_the_runtime_run_while_the_child_lives() {
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let (here, there) = Pipe::new().expect("pipe");
        let child = util::builder(method)
            .start_with(
                |c: multiproc::ipc::Connection| c.recv::<u32>().expect("go") * 2,
                there,
            )
            .expect("start");
        let (joined, sent) = runtime().block_on(async {
            tokio::join!(child.join_async(), async {
                yield_now().await;
                here.send(21u32)
            })
        });
        sent.expect("send");
        assert_eq!(joined.expect("join"), 42, "{method:?}");
    }
}

#[test]
fn join_async_reports_how_the_child_ended() {
    let _w = util::watchdog(LIMIT);
    let child = Process::builder()
        .allow_threads(true)
        .start(|| -> u32 { multiproc::fault::abort() })
        .expect("start");
    let r = runtime().block_on(child.join_async());
    assert_eq!(
        r.expect_err("aborted").kind(),
        multiproc::ErrorKind::Signaled
    );
}

#[test]
fn connection_recv_async_waits_without_blocking() {
    let _w = util::watchdog(LIMIT);
    let (tx, rx) = Pipe::new().expect("pipe");
    let rt = runtime();
    let (got, sent) = rt.block_on(async {
        tokio::join!(rx.recv_async::<String>(), async {
            yield_now().await;
            tx.send("hello".to_owned())
        })
    });
    sent.expect("send");
    assert_eq!(got.expect("recv"), "hello");

    // Bytes, and two waits on one connection at once (each has its own registration).
    let (a, b, sent) = rt.block_on(async {
        tokio::join!(rx.recv_bytes_async(), rx.recv_bytes_async(), async {
            yield_now().await;
            tx.send_bytes(b"one")?;
            yield_now().await;
            tx.send_bytes(b"two")
        })
    });
    sent.expect("send");
    let mut got = [a.expect("a"), b.expect("b")];
    got.sort();
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);

    // End of stream once the sender is gone.
    let ended = rt.block_on(async {
        tokio::join!(rx.recv_async::<u8>(), async {
            yield_now().await;
            drop(tx);
        })
        .0
    });
    assert!(matches!(ended, Err(RecvError::Disconnected)), "{ended:?}");
}

/// A message from another process wakes the waiting task (the sender writes the wake-up).
#[test]
fn connection_recv_async_from_a_child() {
    let _w = util::watchdog(LIMIT);
    let (here, there) = Pipe::new().expect("pipe");
    let child = Process::builder()
        .start_method(StartMethod::Spawn)
        .start_with(
            |c: multiproc::ipc::Connection| {
                let n: u64 = c.recv().expect("n");
                c.send(n + 1).expect("reply");
            },
            there,
        )
        .expect("start");
    let rt = runtime();
    let (reply, sent) = rt.block_on(async {
        tokio::join!(here.recv_async::<u64>(), async {
            yield_now().await;
            here.send(41u64)
        })
    });
    sent.expect("send");
    assert_eq!(reply.expect("reply"), 42);
    child.join().expect("child");
}

#[test]
fn dropped_recv_async_receives_nothing() {
    let _w = util::watchdog(LIMIT);
    let (tx, rx) = Pipe::new().expect("pipe");
    let rt = runtime();
    let timed_out = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(50), rx.recv_async::<u8>()).await
    });
    assert!(timed_out.is_err(), "nothing was sent");
    tx.send(9u8).expect("send");
    assert_eq!(rx.try_recv::<u8>().expect("still there"), 9);
}

#[test]
fn typed_receiver_recv_async() {
    let _w = util::watchdog(LIMIT);
    let (tx, rx) = channel::<Vec<u16>>().expect("channel");
    let (got, sent) = runtime().block_on(async {
        tokio::join!(rx.recv_async(), async {
            yield_now().await;
            tx.send(vec![1, 2, 3])
        })
    });
    sent.expect("send");
    assert_eq!(got.expect("recv"), [1, 2, 3]);
}

#[test]
fn queue_get_async_waits_without_blocking_and_loses_nothing_when_dropped() {
    let _w = util::watchdog(LIMIT);
    let q = Queue::<u32>::new().expect("queue");
    let rt = runtime();
    let (got, put) = rt.block_on(async {
        tokio::join!(q.get_async(), async {
            yield_now().await;
            q.put(5)
        })
    });
    put.expect("put");
    assert_eq!(got.expect("get"), 5);

    // A dropped get takes nothing: the item put after it is still there.
    let timed_out =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(50), q.get_async()).await });
    assert!(timed_out.is_err(), "the queue was empty");
    q.put(6).expect("put");
    assert_eq!(
        q.get_timeout(Duration::from_secs(5)).expect("still there"),
        6
    );
    assert!(matches!(q.try_get(), Err(TryRecvError::Empty)));

    // From another process, and the end once the queue is closed and drained.
    let producer = q.clone();
    let child = Process::builder()
        .start_method(StartMethod::Spawn)
        .start_with(
            |q: Queue<u32>| {
                std::thread::sleep(Duration::from_millis(100));
                q.put(7).expect("put");
            },
            producer,
        )
        .expect("start");
    assert_eq!(rt.block_on(q.get_async()).expect("from the child"), 7);
    child.join().expect("child");
    q.close();
    let closed = rt.block_on(q.get_async());
    assert!(matches!(closed, Err(RecvError::Disconnected)), "{closed:?}");
}

/// The futures can go to `tokio::spawn` on a multi-threaded runtime.
#[test]
fn the_futures_are_send() {
    fn send<F: std::future::Future + Send>(_: &F) {}
    let (tx, rx) = Pipe::new().expect("pipe");
    let (_typed_tx, typed_rx) = channel::<u8>().expect("channel");
    let q = Queue::<u8>::new().expect("queue");
    send(&rx.recv_async::<u8>());
    send(&rx.recv_bytes_async());
    send(&typed_rx.recv_async());
    send(&q.get_async());
    let child = Process::start(|| 1u8).expect("start");
    let joined = child.join_async();
    send(&joined);
    assert_eq!(runtime().block_on(joined).expect("join"), 1);
    drop(tx);
}
