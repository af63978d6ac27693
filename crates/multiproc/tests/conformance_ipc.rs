//! What CPython's `_test_multiprocessing.py` checks of `Pipe`/`Connection`, `Queue`
//! and `JoinableQueue`, asked of multiproc's types, between threads and processes.
//!
//! Python's `queue.Empty`/`queue.Full` are `TryRecvError::Empty`/`TrySendError::Full`
//! (and the `Timeout` variants of the timed calls), `EOFError` is `Disconnected`.

mod util;

use std::time::Duration;

use multiproc::ipc::{
    Connection, Pipe, RecvError, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError,
};
use multiproc::{ErrorKind, Event, JoinableQueue, Process, Queue, StartMethod};
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(60);
const LONG: Duration = Duration::from_secs(20);
const SHORT: Duration = Duration::from_millis(20);

// ---- Pipe / Connection ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Unit,
    Num(i64),
    Text(String),
    List(Vec<Option<u8>>),
    Pair(Box<Msg>, Box<Msg>),
}

fn echo_until_none(conn: Connection) -> usize {
    let mut n = 0;
    while let Some(m) = conn.recv::<Option<Msg>>().unwrap() {
        conn.send(Some(m)).unwrap();
        n += 1;
    }
    // Then raw bytes, until an empty message.
    let mut buf = Vec::new();
    loop {
        conn.recv_bytes_into(&mut buf).unwrap();
        conn.send_bytes(&buf).unwrap();
        if buf.is_empty() {
            return n;
        }
    }
}

#[test]
fn duplex_pipe_echoes_objects_and_bytes_through_a_child() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (conn, child_conn) = Pipe::new().unwrap();
    assert!(conn.is_readable() && conn.is_writable());
    let p = Process::start_with(echo_until_none, child_conn).unwrap();
    let msgs = [
        Msg::Unit,
        Msg::Num(-7),
        Msg::Text("hello".into()),
        Msg::List(vec![None, Some(3)]),
        Msg::Pair(Box::new(Msg::Num(1)), Box::new(Msg::Text(String::new()))),
    ];
    for m in &msgs {
        conn.send(Some(m.clone())).unwrap();
        assert_eq!(conn.recv::<Option<Msg>>().unwrap(), Some(m.clone()));
    }
    conn.send(None::<Msg>).unwrap();
    // Bytes, including a 16 MiB message (much larger than the 1 MiB ring) and an
    // empty one, which ends the child's loop.
    let big: Vec<u8> = (0..16 << 20).map(|i| (i % 251) as u8).collect();
    for m in [&b"abc"[..], &big[..], &b"x"[..], &[][..]] {
        conn.send_bytes(m).unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), m);
    }
    assert_eq!(p.join().unwrap(), msgs.len());
    // The child exited: end of stream, and poll says a receive would not block.
    assert!(conn.poll(Duration::ZERO));
    assert!(matches!(conn.recv::<u8>(), Err(RecvError::Disconnected)));
    assert!(matches!(conn.recv_bytes(), Err(RecvError::Disconnected)));
    assert!(matches!(
        conn.try_recv::<u8>(),
        Err(TryRecvError::Disconnected)
    ));
    assert!(matches!(
        conn.recv_timeout::<u8>(SHORT),
        Err(RecvTimeoutError::Disconnected)
    ));
}

#[test]
fn one_way_pipe_has_a_receiving_and_a_sending_end() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // Python: `reader, writer = Pipe(duplex=False)`.
    let (reader, writer) = Pipe::one_way().unwrap();
    assert!(reader.is_readable() && !reader.is_writable());
    assert!(writer.is_writable() && !writer.is_readable());
    writer.send(1u32).unwrap();
    writer.send_bytes(b"two").unwrap();
    assert_eq!(reader.recv::<u32>().unwrap(), 1);
    assert_eq!(reader.recv_bytes().unwrap(), b"two");
    // Wrong direction: errors, not hangs.
    let e = reader.send(3u32).unwrap_err();
    assert!(e.is_rejected());
    assert_eq!(e.into_inner(), 3);
    assert_eq!(
        reader.send_bytes(b"x").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(matches!(writer.recv::<u32>(), Err(RecvError::Invalid(_))));
    assert!(matches!(writer.recv_bytes(), Err(RecvError::Invalid(_))));
    assert!(!writer.poll(Duration::ZERO));
    let (reader2, writer2) = Pipe::builder().duplex(false).build().unwrap();
    assert!(reader2.is_readable() && writer2.is_writable());
    writer.close();
    assert!(matches!(reader.recv::<u32>(), Err(RecvError::Disconnected)));
}

#[test]
fn poll_waits_for_a_message_without_taking_it() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::new().unwrap();
    assert!(!b.poll(Duration::ZERO));
    assert!(!b.poll(SHORT));
    a.send_bytes(b"m").unwrap();
    assert!(b.poll(Duration::ZERO));
    assert!(b.poll(LONG));
    assert_eq!(b.recv_bytes().unwrap(), b"m");
    assert!(!b.poll(Duration::ZERO));
    // A message sent while polling ends the poll.
    std::thread::scope(|s| {
        s.spawn(|| a.send(9u8).unwrap());
        assert!(b.poll(LONG));
    });
    assert_eq!(b.recv::<u8>().unwrap(), 9);
    // Messages sent before the peer closed are still delivered, then end of stream.
    a.send(1u8).unwrap();
    a.send(2u8).unwrap();
    drop(a);
    assert!(b.poll(Duration::ZERO));
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert_eq!(b.recv::<u8>().unwrap(), 2);
    assert!(b.poll(Duration::ZERO));
    assert!(matches!(b.recv::<u8>(), Err(RecvError::Disconnected)));
}

#[test]
fn recv_bytes_with_a_maximum_length_refuses_longer_messages() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // Python: `recv_bytes(maxlength)` raises OSError for a longer message.
    let (a, b) = Pipe::new().unwrap();
    a.send_bytes(b"0123456789").unwrap();
    a.send_bytes(b"short").unwrap();
    let e = b.recv_bytes_max(4).unwrap_err();
    assert!(matches!(e, RecvError::Invalid(ref err) if err.kind() == ErrorKind::Decode));
    // The long message was dropped whole; the connection goes on.
    assert_eq!(b.recv_bytes_max(5).unwrap(), b"short");
    let big = vec![7u8; 3 << 20];
    std::thread::scope(|s| {
        s.spawn(|| {
            a.send_bytes(&big).unwrap();
            a.send_bytes(b"after").unwrap();
        });
        // Larger than the ring: it is refused at its first fragment, the rest is
        // skipped as it arrives.
        assert!(b.recv_bytes_max(1 << 20).is_err());
        assert_eq!(b.recv_bytes_max(usize::MAX).unwrap(), b"after");
    });
}

fn send_then_exit(conn: Connection) {
    for i in 0..100u32 {
        conn.send(i).unwrap();
    }
}

#[test]
fn everything_a_child_sent_arrives_before_end_of_stream() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let (reader, writer) = Pipe::one_way().unwrap();
        let p = util::builder(method)
            .start_with(send_then_exit, writer)
            .unwrap();
        p.join().unwrap();
        // The child is gone and our copy of the writer went to it: all 100
        // messages, then end of stream.
        for i in 0..100u32 {
            assert_eq!(reader.recv::<u32>().unwrap(), i, "{method:?}");
        }
        assert!(matches!(reader.recv::<u32>(), Err(RecvError::Disconnected)));
    }
}

#[test]
fn send_after_the_receiving_end_is_dropped_fails_at_once() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // crossbeam's and ipc-channel's "send after the receiver is dropped", and a
    // write to a closed socket in Python: an error, not a buffered message.
    let (a, b) = Pipe::new().unwrap();
    a.send(1u8).unwrap();
    drop(b);
    let e = a.send(2u8).unwrap_err();
    assert!(e.is_disconnected());
    assert_eq!(e.into_inner(), 2);
    assert!(a.try_send(3u8).unwrap_err().is_disconnected());
    assert!(a.send_timeout(4u8, SHORT).unwrap_err().is_disconnected());
    assert_eq!(
        a.send_bytes(b"x").unwrap_err().kind(),
        ErrorKind::Disconnected
    );
    // And the other way round: a dropped sender is end of stream for the receiver.
    assert!(matches!(a.recv::<u8>(), Err(RecvError::Disconnected)));

    let (reader, writer) = Pipe::one_way().unwrap();
    reader.close();
    assert!(writer.send(1u8).unwrap_err().is_disconnected());
}

#[test]
fn a_sender_blocked_on_a_full_pipe_fails_when_the_receiver_goes() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (reader, writer) = Pipe::builder()
        .duplex(false)
        .capacity(4096)
        .build()
        .unwrap();
    while writer.try_send_bytes(&[0; 512]).is_ok() {}
    std::thread::scope(|s| {
        let t = s.spawn(|| writer.send_bytes(&[1; 512]));
        // Drop the receiver whether or not the sender is asleep yet: either way its
        // send fails instead of waiting for room forever.
        drop(reader);
        assert_eq!(
            t.join().unwrap().unwrap_err().kind(),
            ErrorKind::Disconnected
        );
    });
}

fn read_one_when_told(args: (Connection, Event)) -> u32 {
    let (reader, go) = args;
    go.wait();
    reader.recv::<u32>().unwrap()
}

#[test]
fn sends_go_on_while_a_copy_of_the_receiver_lives_in_a_child() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let (reader, writer) = Pipe::one_way().unwrap();
        let go = Event::new().unwrap();
        // The parent's copy of `reader` is dropped here; the child's lives on.
        let p = util::builder(method)
            .start_with(read_one_when_told, (reader, go.clone()))
            .unwrap();
        writer.send(7u32).unwrap();
        go.set();
        assert_eq!(p.join().unwrap(), 7, "{method:?}");
        // The child dropped the last copy when its function returned.
        assert!(
            writer.send(8u32).unwrap_err().is_disconnected(),
            "{method:?}"
        );
    }
}

fn send_big_then_exit(conn: Connection) {
    conn.send_bytes(&vec![5u8; 4 << 20]).unwrap();
    conn.send(1u8).unwrap();
}

#[test]
fn a_big_message_sent_just_before_the_sender_exits_arrives_whole() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // ipc-channel's so_linger: the last message is not lost when its sender
    // closes right after sending (here a child that exits).
    let (reader, writer) = Pipe::one_way().unwrap();
    let p = Process::start_with(send_big_then_exit, writer).unwrap();
    assert_eq!(reader.recv_bytes().unwrap(), vec![5u8; 4 << 20]);
    assert_eq!(reader.recv::<u8>().unwrap(), 1);
    assert!(matches!(reader.recv::<u8>(), Err(RecvError::Disconnected)));
    p.join().unwrap();
}

fn send_ten(args: (Connection, bool)) {
    let (w, slow) = args;
    for i in 0..10u32 {
        if slow {
            std::thread::sleep(Duration::from_millis(1));
        }
        w.send((i, std::process::id())).unwrap();
    }
}

#[test]
fn wait_over_readers_until_every_writer_is_done() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // _TestWait.test_wait / test_wait_slow: wait() over four readers, receive
    // from the ready ones, drop a reader at end of stream.
    for slow in [false, true] {
        let mut readers = Vec::new();
        let mut kids = Vec::new();
        for _ in 0..4 {
            let (r, w) = Pipe::one_way().unwrap();
            kids.push(Process::start_with(send_ten, (w, slow)).unwrap());
            readers.push(r);
        }
        let pids: Vec<u32> = kids.iter().map(|k| k.pid() as u32).collect();
        let mut messages = Vec::new();
        while !readers.is_empty() {
            let objs: Vec<&dyn multiproc::ipc::Waitable> = readers
                .iter()
                .map(|r| r as &dyn multiproc::ipc::Waitable)
                .collect();
            let mut ready = multiproc::ipc::wait(&objs, None).unwrap();
            assert!(!ready.is_empty());
            ready.sort_unstable();
            for i in ready.into_iter().rev() {
                match readers[i].recv::<(u32, u32)>() {
                    Ok(m) => messages.push(m),
                    Err(RecvError::Disconnected) => drop(readers.remove(i)),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        messages.sort_unstable();
        let mut expected: Vec<(u32, u32)> = (0..10)
            .flat_map(|i| pids.iter().map(move |&p| (i, p)))
            .collect();
        expected.sort_unstable();
        assert_eq!(messages, expected, "slow: {slow}");
        for k in kids {
            k.join().unwrap();
        }
    }
}

#[test]
fn wait_times_out_empty_then_reports_the_ready_connection() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // _TestWait.test_wait_timeout.
    let (a, b) = Pipe::new().unwrap();
    assert_eq!(
        multiproc::ipc::wait(&[&a], Some(SHORT)).unwrap(),
        Vec::<usize>::new()
    );
    assert_eq!(
        multiproc::ipc::wait(&[&a, &b], Some(Duration::ZERO)).unwrap(),
        Vec::<usize>::new()
    );
    b.send(10u8).unwrap();
    assert_eq!(multiproc::ipc::wait(&[&a, &b], Some(LONG)).unwrap(), [0]);
    assert_eq!(multiproc::ipc::wait(&[&a], None).unwrap(), [0]);
    assert_eq!(a.recv::<u8>().unwrap(), 10);
    // A closed peer makes the other end ready (a receive reports end of stream).
    drop(a);
    assert_eq!(multiproc::ipc::wait(&[&b], Some(LONG)).unwrap(), [0]);
    assert!(matches!(b.recv::<u8>(), Err(RecvError::Disconnected)));

    // A send-only end is ready once its receiver is gone, and not before.
    let (reader, writer) = Pipe::one_way().unwrap();
    assert!(multiproc::ipc::wait(&[&writer], Some(SHORT))
        .unwrap()
        .is_empty());
    drop(reader);
    assert_eq!(multiproc::ipc::wait(&[&writer], Some(LONG)).unwrap(), [0]);
}

fn echo_bytes_until_empty(conn: Connection) {
    loop {
        let m = conn.recv_bytes().unwrap();
        if m.is_empty() {
            return;
        }
        conn.send_bytes(&m).unwrap();
    }
}

#[test]
fn the_parent_closes_the_child_s_end_right_after_start() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // _TestConnection.test_spawn_close: the child's copy keeps the pipe open.
    for method in StartMethod::ALL {
        let (conn, child_conn) = Pipe::new().unwrap();
        let p = util::builder(method)
            .start_with(echo_bytes_until_empty, child_conn)
            .unwrap();
        // (`child_conn` was moved into the start call and dropped here.)
        conn.send_bytes(b"hello").unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"hello", "{method:?}");
        conn.send_bytes(b"").unwrap();
        p.join().unwrap();
    }
}

#[test]
fn empty_messages_are_messages() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // _TestPoll.test_empty_string / test_strings / test_dont_merge.
    let (a, b) = Pipe::new().unwrap();
    assert!(!a.poll(Duration::ZERO));
    b.send_bytes(b"").unwrap();
    assert!(a.poll(Duration::ZERO));
    assert!(a.poll(Duration::ZERO));
    assert_eq!(a.recv_bytes().unwrap(), b"");
    let strings: [&[u8]; 8] = [b"hello", b"", b"a", b"b", b"", b"bye", b"", b"lop"];
    for s in strings {
        b.send_bytes(s).unwrap();
    }
    for s in strings {
        assert!(a.poll(LONG));
        assert_eq!(a.recv_bytes().unwrap(), s);
    }
    assert!(!a.poll(Duration::ZERO));
}

// ---- Queue ----

fn drain_six(args: (Queue<u32>, Event, Event)) {
    let (q, can_start, done) = args;
    can_start.wait();
    for _ in 0..6 {
        q.get().unwrap();
    }
    done.set();
}

#[test]
fn bounded_queue_full_and_empty_like_python_test_put() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<u32> = Queue::bounded(6).unwrap();
    assert_eq!(q.maxsize(), Some(6));
    let can_start = Event::new().unwrap();
    let done = Event::new().unwrap();
    let p = Process::start_with(drain_six, (q.clone(), can_start.clone(), done.clone())).unwrap();
    assert!(q.is_empty());
    assert!(!q.is_full());
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.put_timeout(3, LONG).unwrap();
    q.try_put(4).unwrap();
    q.try_put(5).unwrap();
    q.put(6).unwrap();
    assert!(!q.is_empty());
    assert!(q.is_full());
    assert_eq!(q.qsize(), 6);
    let e = q.try_put(7).unwrap_err();
    assert!(matches!(e, TrySendError::Full(7)));
    let e = q.put_timeout(7, SHORT).unwrap_err();
    assert!(matches!(e, SendTimeoutError::Timeout(7)));
    assert!(e.is_timeout());
    can_start.set();
    done.wait();
    assert!(q.is_empty());
    assert!(!q.is_full());
    assert_eq!(q.qsize(), 0);
    p.join().unwrap();
}

fn put_four(args: (Queue<u32>, Event, Event)) {
    let (q, can_start, done) = args;
    can_start.wait();
    for i in 2..6 {
        q.put(i).unwrap();
    }
    done.set();
}

#[test]
fn get_variants_like_python_test_get() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<u32> = Queue::new().unwrap();
    assert_eq!(q.maxsize(), None);
    let can_start = Event::new().unwrap();
    let done = Event::new().unwrap();
    let p = Process::start_with(put_four, (q.clone(), can_start.clone(), done.clone())).unwrap();
    assert!(q.is_empty());
    can_start.set();
    done.wait();
    // A put is complete when it returns: no feeder thread, no delay.
    assert!(!q.is_empty());
    assert_eq!(q.qsize(), 4);
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get_timeout(LONG).unwrap(), 3);
    assert_eq!(q.get_timeout(Duration::ZERO).unwrap(), 4);
    assert_eq!(q.try_get().unwrap(), 5);
    assert!(q.is_empty());
    assert!(matches!(q.try_get(), Err(TryRecvError::Empty)));
    assert!(q.try_get().unwrap_err().is_empty());
    assert!(matches!(
        q.get_timeout(SHORT),
        Err(RecvTimeoutError::Timeout)
    ));
    assert!(matches!(
        q.get_timeout(Duration::ZERO),
        Err(RecvTimeoutError::Timeout)
    ));
    p.join().unwrap();
}

fn put_ten_more(q: Queue<u32>) {
    for i in 10..20 {
        q.put(i).unwrap();
    }
}

#[test]
fn items_from_parent_then_child_come_out_in_order() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    for method in [StartMethod::Fork, StartMethod::ForkServer] {
        let q: Queue<u32> = Queue::new().unwrap();
        for i in 0..10 {
            q.put(i).unwrap();
        }
        let p = util::builder(method)
            .start_with(put_ten_more, q.clone())
            .unwrap();
        for i in 0..20 {
            assert_eq!(q.get_timeout(LONG).unwrap(), i, "{method:?}");
        }
        assert!(matches!(q.try_get(), Err(TryRecvError::Empty)));
        p.join().unwrap();
    }
}

#[test]
fn qsize_counts_items() {
    let q: Queue<u8> = Queue::new().unwrap();
    assert_eq!(q.qsize(), 0);
    q.put(1).unwrap();
    assert_eq!(q.qsize(), 1);
    q.put(5).unwrap();
    assert_eq!(q.qsize(), 2);
    q.get().unwrap();
    assert_eq!(q.qsize(), 1);
    q.get().unwrap();
    assert_eq!(q.qsize(), 0);
    assert!(!q.is_full(), "an unbounded queue is never full");
}

/// Serializes as its number, except `Bad`, which fails to serialize.
#[derive(Debug, PartialEq, Deserialize)]
enum Maybe {
    Good(u32),
    Bad,
}

impl Serialize for Maybe {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Maybe::Good(n) => s.serialize_newtype_variant("Maybe", 0, "Good", n),
            Maybe::Bad => Err(serde::ser::Error::custom("refuses to serialize")),
        }
    }
}

#[test]
fn a_failed_put_takes_no_room_bpo_33078() {
    let _w = util::watchdog(LIMIT);
    let q: Queue<Maybe> = Queue::bounded(1).unwrap();
    let e = q.put(Maybe::Bad).unwrap_err();
    assert!(e.is_rejected());
    assert_eq!(e.into_inner(), Maybe::Bad);
    assert_eq!(q.qsize(), 0);
    q.put(Maybe::Good(1)).unwrap();
    assert_eq!(q.qsize(), 1);
    assert!(matches!(
        q.try_put(Maybe::Bad),
        Err(TrySendError::Rejected(..) | TrySendError::Full(_))
    ));
    assert_eq!(q.get_timeout(LONG).unwrap(), Maybe::Good(1));
    assert!(q.is_empty());
    assert_eq!(q.qsize(), 0);
    let jq: JoinableQueue<Maybe> = JoinableQueue::new().unwrap();
    assert!(jq.put(Maybe::Bad).unwrap_err().is_rejected());
    assert_eq!(jq.unfinished(), 0);
    assert!(jq.join_timeout(Duration::ZERO));
}

#[test]
fn get_after_close_drains_then_reports_end() {
    let _w = util::watchdog(LIMIT);
    let q: Queue<u8> = Queue::new().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.close();
    assert!(q.is_closed());
    let e = q.put(3).unwrap_err();
    assert!(e.is_disconnected());
    assert_eq!(e.into_inner(), 3);
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    assert!(matches!(q.get(), Err(RecvError::Disconnected)));
    assert!(matches!(q.try_get(), Err(TryRecvError::Disconnected)));
    assert!(matches!(
        q.get_timeout(SHORT),
        Err(RecvTimeoutError::Disconnected)
    ));
}

fn task_worker(q: JoinableQueue<Option<u32>>) -> u32 {
    let mut n = 0;
    while let Some(_item) = q.get().unwrap() {
        n += 1;
        q.task_done().unwrap();
    }
    q.task_done().unwrap();
    n
}

#[test]
fn joinable_queue_join_waits_for_every_task_done() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: JoinableQueue<Option<u32>> = JoinableQueue::new().unwrap();
    // Nothing put: join returns at once.
    q.join();
    q.put(Some(0)).unwrap();
    assert_eq!(q.unfinished(), 1);
    assert!(!q.join_timeout(SHORT));
    assert_eq!(q.get().unwrap(), Some(0));
    // Taken but not done: still unfinished.
    assert!(!q.join_timeout(Duration::ZERO));
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::ZERO));
    // Python: task_done() more times than items raises ValueError.
    assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(q.unfinished(), 0);

    let workers: Vec<_> = (0..4)
        .map(|_| Process::start_with(task_worker, q.clone()).unwrap())
        .collect();
    for i in 0..10 {
        q.put(Some(i)).unwrap();
    }
    q.join();
    assert_eq!(q.unfinished(), 0);
    for _ in &workers {
        q.put(None).unwrap();
    }
    let total: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(total, 10);
    q.join();
    assert!(q.is_empty());
}

#[test]
fn try_get_after_put_on_the_same_thread_finds_the_item_under_contention() {
    let _w = util::watchdog(LIMIT);
    // crossbeam-channel's `linearizable`: every thread puts one item and at once
    // takes one without blocking; with items in the queue, a non-blocking get must
    // not report Empty just because another consumer holds the queue for a moment.
    const THREADS: usize = 4;
    const COUNT: usize = 5_000;
    for q in [
        Queue::<u32>::new().unwrap(),
        Queue::bounded(THREADS).unwrap(),
    ] {
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..COUNT {
                        q.try_put(0).unwrap();
                        q.try_get().unwrap();
                    }
                });
            }
        });
        assert!(q.is_empty());
    }
}

#[test]
fn the_largest_timeouts_are_accepted() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::new().unwrap();
    a.send_timeout(1u8, Duration::MAX).unwrap();
    assert!(b.poll(Duration::MAX));
    assert_eq!(b.recv_timeout::<u8>(Duration::MAX).unwrap(), 1);
    let q: JoinableQueue<u8> = JoinableQueue::bounded(1).unwrap();
    q.put_timeout(2, Duration::MAX).unwrap();
    assert_eq!(q.get_timeout(Duration::MAX).unwrap(), 2);
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::MAX));
    drop(a);
    assert_eq!(
        multiproc::ipc::wait(&[&b], Some(Duration::MAX)).unwrap(),
        [0]
    );
}

/// Sends `Nested(None)` on the connection in `REENTRANT` while being serialized
/// (ipc-channel's `HasWeirdSerializer`).
#[derive(Debug, PartialEq, Deserialize)]
struct Nested(Option<String>);

thread_local! {
    static REENTRANT: std::cell::RefCell<Option<std::sync::Arc<Connection>>> =
        const { std::cell::RefCell::new(None) };
}

impl Serialize for Nested {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_some() {
            REENTRANT.with(|c| c.borrow().as_ref().unwrap().send(Nested(None)).unwrap());
        }
        self.0.serialize(s)
    }
}

#[test]
fn a_value_that_sends_while_being_serialized_does_not_deadlock() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // ipc-channel's test_reentrant: the nested message goes first.
    let (a, b) = Pipe::new().unwrap();
    let a = std::sync::Arc::new(a);
    REENTRANT.with(|c| *c.borrow_mut() = Some(a.clone()));
    a.send(Nested(Some("hello".into()))).unwrap();
    assert_eq!(b.recv::<Nested>().unwrap(), Nested(None));
    assert_eq!(b.recv::<Nested>().unwrap(), Nested(Some("hello".into())));
    a.send(Nested(None)).unwrap();
    assert_eq!(b.recv::<Nested>().unwrap(), Nested(None));
    REENTRANT.with(|c| *c.borrow_mut() = None);
}

#[test]
fn dropping_the_sender_wakes_a_blocked_receiver() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // crossbeam's disconnect_wakes_receiver, on a one-way and a duplex pipe.
    let (reader, writer) = Pipe::one_way().unwrap();
    let (a, b) = Pipe::new().unwrap();
    std::thread::scope(|s| {
        let t1 = s.spawn(|| reader.recv::<u8>());
        let t2 = s.spawn(|| b.recv_bytes());
        drop(writer);
        drop(a);
        assert!(matches!(t1.join().unwrap(), Err(RecvError::Disconnected)));
        assert!(matches!(t2.join().unwrap(), Err(RecvError::Disconnected)));
    });
}

#[test]
fn shutdown_immediate_discards_the_items_and_counts_them_done() {
    let _w = util::watchdog(LIMIT);
    // _TestQueue.test_shutdown_empty / test_shutdown_immediate /
    // test_shutdown_immediate_with_unfinished.
    let q: Queue<String> = Queue::new().unwrap();
    assert_eq!(q.shutdown(false), 0);
    assert!(q.put("data".into()).unwrap_err().is_disconnected());
    assert!(matches!(q.try_get(), Err(TryRecvError::Disconnected)));
    assert!(matches!(q.get(), Err(RecvError::Disconnected)));

    let q: JoinableQueue<String> = JoinableQueue::new().unwrap();
    q.put("data".into()).unwrap();
    std::thread::scope(|s| {
        let joiner = s.spawn(|| q.join());
        assert_eq!(q.shutdown(true), 1);
        assert_eq!(q.qsize(), 0);
        joiner.join().unwrap();
    });
    assert!(q.put("data".into()).unwrap_err().is_disconnected());
    assert!(matches!(q.get(), Err(RecvError::Disconnected)));
    // Python: "Didn't appear to mark all tasks done".
    assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::InvalidInput);

    let q: JoinableQueue<String> = JoinableQueue::new().unwrap();
    q.put("data".into()).unwrap();
    q.put("data".into()).unwrap();
    assert_eq!(q.get().unwrap(), "data");
    assert_eq!(q.shutdown(true), 1);
    assert_eq!(q.qsize(), 0);
    // The item taken is not done yet.
    assert!(!q.join_timeout(SHORT));
    assert!(matches!(q.try_get(), Err(TryRecvError::Disconnected)));
    q.task_done().unwrap();
    assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::InvalidInput);
    q.join();
}

#[test]
fn close_during_a_large_put_does_not_strand_a_consumer() {
    let _w = util::watchdog(LIMIT);
    // The producer stops half-way when the queue is closed under it; a consumer
    // that then takes the half-written item must not wait for the rest forever.
    let q: Queue<Vec<u8>> = Queue::builder().capacity(64 << 10).build().unwrap();
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || q.put(vec![3u8; 4 << 20]))
    };
    // Close once the item is started (whenever the close lands, the item is cut
    // short: the ring holds a sixteenth of it and nobody takes from it meanwhile).
    while q.qsize() == 0 {
        std::thread::yield_now();
    }
    q.close();
    assert!(producer.join().unwrap().unwrap_err().is_disconnected());
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let q = q.clone();
        std::thread::spawn(move || tx.send(q.get().is_err()).unwrap());
    }
    assert_eq!(rx.recv_timeout(LONG), Ok(true), "get after close hung");
}
