//! `Queue`/`JoinableQueue` with real processes and threads: many producers and
//! consumers, backpressure, close, huge items, serialization failures, joinable
//! counting, and crash tests that SIGKILL a consumer in the middle of a `get` and a
//! producer in the middle of a `put`.

mod util;

use util::builder;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use multiproc::ipc::{Connection, Pipe, RecvTimeoutError, TryRecvError};
use multiproc::{JoinableQueue, Process, Queue, StartMethod};
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(120);

/// An item whose payload is derived from its id, so corruption is detectable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: u64,
    payload: Vec<u8>,
}

impl Item {
    fn new(id: u64) -> Item {
        // Every 7th item is larger than a quarter of the crash tests' 64 KiB ring (and
        // of the default 1 MiB one): it travels in fragments, so kills land in the
        // middle of one.
        let len = if id % 7 == 3 {
            40_000
        } else {
            (id % 50) as usize
        };
        Item {
            id,
            payload: (0..len).map(|i| (id as usize * 31 + i) as u8).collect(),
        }
    }

    fn is_intact(&self) -> bool {
        *self == Item::new(self.id)
    }
}

fn produce((q, from, to): (Queue<Item>, u64, u64)) {
    for id in from..to {
        q.put(Item::new(id)).unwrap();
    }
}

fn consume_into((q, report): (Queue<Item>, Connection)) {
    while let Ok(item) = q.get() {
        assert!(item.is_intact());
        report.send(item.id).unwrap();
    }
}

#[test]
fn many_producers_many_consumers_by_every_start_method() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<Item> = Queue::new().unwrap();
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    let mut reports = Vec::new();
    for (i, method) in StartMethod::ALL.into_iter().enumerate() {
        let i = i as u64;
        producers.push(
            builder(method)
                .start_with(produce, (q.clone(), i * 1000, i * 1000 + 300))
                .unwrap(),
        );
        // One report pipe per consumer: two processes must not write one end at once.
        let (rep_rx, rep_tx) = Pipe::one_way().unwrap();
        consumers.push(
            builder(method)
                .start_with(consume_into, (q.clone(), rep_tx))
                .unwrap(),
        );
        reports.push(rep_rx);
    }
    // This process is a producer and a consumer too, from two threads.
    let q2 = q.clone();
    let t = std::thread::spawn(move || produce((q2, 10_000, 10_300)));
    let mut seen = HashSet::new();
    let record = |seen: &mut HashSet<u64>, id: u64| assert!(seen.insert(id), "duplicate {id}");
    while seen.len() < 1200 {
        if let Ok(item) = q.try_get() {
            assert!(item.is_intact());
            record(&mut seen, item.id);
        }
        let waitables: Vec<&dyn multiproc::ipc::Waitable> = reports
            .iter()
            .map(|r| r as &dyn multiproc::ipc::Waitable)
            .collect();
        for i in multiproc::ipc::wait(&waitables, Some(Duration::from_millis(1))).unwrap() {
            while let Ok(id) = reports[i].try_recv::<u64>() {
                record(&mut seen, id);
            }
        }
    }
    t.join().unwrap();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    for c in consumers {
        c.join().unwrap();
    }
    for r in &reports {
        assert!(r.try_recv::<u64>().unwrap_err().is_disconnected());
    }
    assert_eq!(seen.len(), 1200);
}

#[test]
fn threads_only() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<u64> = Queue::bounded(16).unwrap();
    let producers: Vec<_> = (0..3u64)
        .map(|t| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..2000 {
                    q.put(t * 100_000 + i).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(v) = q.get() {
                    got.push(v);
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    let mut want: Vec<u64> = (0..3u64)
        .flat_map(|t| (0..2000).map(move |i| t * 100_000 + i))
        .collect();
    want.sort_unstable();
    assert_eq!(all, want);
}

#[test]
fn bounded_backpressure_hands_items_back() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<String> = Queue::bounded(2).unwrap();
    q.put("a".into()).unwrap();
    q.try_put("b".into()).unwrap();
    assert!(q.is_full());
    assert_eq!(q.qsize(), 2);
    let e = q.try_put("c".into()).unwrap_err();
    assert!(e.is_full());
    assert_eq!(e.into_inner(), "c");
    let e = q
        .put_timeout("d".into(), Duration::from_millis(20))
        .unwrap_err();
    assert!(e.is_timeout());
    assert_eq!(e.into_inner(), "d");
    assert_eq!(q.get().unwrap(), "a");
    q.put_timeout("e".into(), Duration::from_secs(5)).unwrap();
    assert_eq!(q.get().unwrap(), "b");
    assert_eq!(q.get().unwrap(), "e");
    assert!(q.is_empty());
    assert!(matches!(q.try_get(), Err(TryRecvError::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(10)),
        Err(RecvTimeoutError::Timeout)
    ));
}

#[test]
fn close_wakes_waiters_and_drains() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<u8> = Queue::new().unwrap();
    let q2 = q.clone();
    let waiter = std::thread::spawn(move || q2.get().map_err(|e| e.is_disconnected()));
    std::thread::sleep(Duration::from_millis(30));
    q.close();
    assert_eq!(waiter.join().unwrap(), Err(true));
    assert!(q.put(1).unwrap_err().is_disconnected());
    assert!(q.try_put(1).unwrap_err().is_disconnected());
}

struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to serialize"))
    }
}

impl<'de> Deserialize<'de> for Unserializable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unserializable)
    }
}

#[test]
fn a_value_that_fails_to_serialize_fails_put_at_once() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<Unserializable> = Queue::new().unwrap();
    let e = q.put(Unserializable).unwrap_err();
    assert!(e.is_rejected());
    assert_eq!(e.rejection().unwrap().kind(), multiproc::ErrorKind::Encode);
    assert_eq!(q.qsize(), 0);
    // Over the maximum message size: refused too, the queue stays usable.
    let q: Queue<Vec<u8>> = Queue::builder().max_message_size(100).build().unwrap();
    assert!(q.put(vec![0; 200]).unwrap_err().is_rejected());
    q.put(vec![1; 10]).unwrap();
    assert_eq!(q.get().unwrap(), vec![1; 10]);
}

fn produce_small((q, n): (Queue<u64>, u64)) {
    for i in 0..n {
        q.put(i).unwrap();
    }
}

#[test]
fn producer_exits_with_items_unread() {
    // Python deadlocks when a parent joins a child whose feeder thread still holds
    // items; here `put` is complete when it returns (what fits in the queue's
    // buffer; a larger backlog makes `put` wait, by design).
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<u64> = Queue::new().unwrap();
    let p = Process::start_with(produce_small, (q.clone(), 10_000)).unwrap();
    p.join().unwrap();
    for i in 0..10_000 {
        assert_eq!(q.get().unwrap(), i);
    }
}

/// Bytes serialized in one piece (what `serde_bytes` does), so a debug build moves
/// 64 MiB quickly.
#[derive(Debug, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

fn pattern(len: usize) -> Vec<u8> {
    let block: Vec<u8> = (0..251u8).collect();
    let mut v = block.repeat(len / 251 + 1);
    v.truncate(len);
    v
}

fn put_huge((q, len): (Queue<Blob>, usize)) {
    q.put(Blob(pattern(len))).unwrap();
}

#[test]
fn items_of_64_mib_and_more() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let len = (64 << 20) + 12345;
    let q: Queue<Blob> = Queue::new().unwrap();
    let p = Process::start_with(put_huge, (q.clone(), len)).unwrap();
    let v = q.get().unwrap();
    p.join().unwrap();
    assert!(v.0 == pattern(len));
    // And the other way, from a thread, through a pipe.
    let (a, b) = Pipe::new().unwrap();
    let t = std::thread::spawn(move || a.send_bytes(&pattern(len)).unwrap());
    assert!(b.recv_bytes().unwrap() == pattern(len));
    t.join().unwrap();
}

fn joinable_worker(q: JoinableQueue<u32>) -> u32 {
    let mut n = 0;
    while let Ok(v) = q.get() {
        n += v;
        q.task_done().unwrap();
    }
    n
}

#[test]
fn joinable_queue_join_and_task_done() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
        let workers: Vec<Process<u32>> = (0..2)
            .map(|_| {
                builder(method)
                    .start_with(joinable_worker, q.clone())
                    .unwrap()
            })
            .collect();
        for i in 1..=100 {
            q.put(i).unwrap();
        }
        q.join();
        assert_eq!(q.unfinished(), 0);
        q.close();
        let total: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(total, 5050, "{method:?}");
    }
    let q: JoinableQueue<u8> = JoinableQueue::new().unwrap();
    assert!(q.task_done().is_err(), "more task_done than items");
    q.put(1).unwrap();
    assert!(!q.join_timeout(Duration::from_millis(10)));
    q.get().unwrap();
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::from_secs(5)));
}

// ---------------------------------------------------------------- crash tests

/// A small deterministic generator for kill times (no extra dependency).
struct XorShift(u64);

impl XorShift {
    fn seeded() -> XorShift {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("crash test seed {t}");
        XorShift(t | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const ITERATIONS: u64 = 12;
const ITEMS: u64 = 100;

fn crash_queue(maxsize: usize) -> Queue<Item> {
    Queue::builder()
        .capacity(64 * 1024)
        .maxsize(maxsize)
        .build()
        .unwrap()
}

#[test]
fn consumer_killed_mid_get_loses_nothing_else() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let mut rng = XorShift::seeded();
    for iter in 0..ITERATIONS {
        let q = crash_queue(0);
        let producer = Process::start_with(produce, (q.clone(), 0, ITEMS)).unwrap();
        let (rep_rx, rep_tx) = Pipe::one_way().unwrap();
        let victim = Process::start_with(consume_into, (q.clone(), rep_tx)).unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(15_000)));
        victim.kill().unwrap();
        let _ = victim.join();
        let mut seen = HashSet::new();
        while let Ok(id) = rep_rx.recv::<u64>() {
            assert!(seen.insert(id));
        }
        let reported = seen.len();
        // The queue is still usable: everything else arrives, intact, once.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match q.get_timeout(Duration::from_millis(200)) {
                Ok(item) => {
                    assert!(item.is_intact(), "iteration {iter}: corrupted item");
                    assert!(
                        seen.insert(item.id),
                        "iteration {iter}: duplicate {}",
                        item.id
                    );
                }
                Err(RecvTimeoutError::Timeout) if !producer.is_alive() => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(e) => panic!("iteration {iter}: {e}"),
            }
            assert!(Instant::now() < deadline, "iteration {iter}: drain hung");
        }
        producer.join().unwrap();
        let lost = ITEMS - seen.len() as u64;
        assert!(
            lost <= 1,
            "iteration {iter}: {lost} items lost (victim reported {reported})"
        );
    }
}

fn produce_forever((q, from): (Queue<Item>, u64)) {
    for id in from.. {
        q.put(Item::new(id)).unwrap();
    }
}

#[test]
fn producer_killed_mid_put_leaves_the_queue_usable() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let mut rng = XorShift::seeded();
    for iter in 0..ITERATIONS {
        // Bounded, so the producer blocks and is often killed while holding the lock
        // or with half an item in the ring.
        let q = crash_queue(20);
        let victim = Process::start_with(produce_forever, (q.clone(), 0)).unwrap();
        let mut next = 0;
        let t_kill = Instant::now() + Duration::from_micros(rng.below(15_000));
        while Instant::now() < t_kill {
            if let Ok(item) = q.get_timeout(Duration::from_millis(1)) {
                assert!(item.is_intact());
                assert_eq!(item.id, next, "iteration {iter}: out of order");
                next += 1;
            }
        }
        victim.kill().unwrap();
        let _ = victim.join();
        // A new producer takes over the put side and its items arrive.
        let helper = Process::start_with(produce, (q.clone(), 1_000_000, 1_000_010)).unwrap();
        let mut helper_ids = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while helper_ids.len() < 10 {
            let item = q.get_timeout(Duration::from_secs(10)).unwrap_or_else(|e| {
                panic!("iteration {iter}: queue unusable after a producer died: {e}")
            });
            assert!(item.is_intact(), "iteration {iter}: corrupted item");
            if item.id >= 1_000_000 {
                helper_ids.push(item.id);
            } else {
                assert_eq!(item.id, next, "iteration {iter}: out of order");
                next += 1;
            }
            assert!(Instant::now() < deadline);
        }
        assert_eq!(helper_ids, (1_000_000..1_000_010).collect::<Vec<_>>());
        helper.join().unwrap();
    }
}

// ---------------------------------------------------------------- batches

fn put_batches((q, p, n): (Queue<(u8, u32)>, u8, u32)) {
    let mut i = 0;
    while i < n {
        let k = (i % 150 + 1).min(n - i);
        assert_eq!(q.put_all((i..i + k).map(|j| (p, j))).unwrap(), k as usize);
        i += k;
    }
}

fn get_batches((q, report): (Queue<(u8, u32)>, Connection)) {
    let mut got = Vec::new();
    while q.get_many(100, &mut got).is_ok() {}
    report.send(got).unwrap();
}

/// Producer processes put batches, consumer processes and threads take them with
/// `get_many`: every item arrives once, and each consumer sees each producer's
/// items in order.
#[test]
fn batches_between_processes() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let q: Queue<(u8, u32)> = Queue::builder().capacity(16 << 10).build().unwrap();
    let per = 20_000u32;
    let producers: Vec<_> = (0..3u8)
        .map(|p| Process::start_with(put_batches, (q.clone(), p, per)).unwrap())
        .collect();
    let (rep_rx, rep_tx) = Pipe::one_way().unwrap();
    let consumer = Process::start_with(get_batches, (q.clone(), rep_tx)).unwrap();
    let thread = {
        let q = q.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while q.get_many(64, &mut got).is_ok() {}
            got
        })
    };
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    let mut streams = vec![
        thread.join().unwrap(),
        rep_rx.recv::<Vec<(u8, u32)>>().unwrap(),
    ];
    consumer.join().unwrap();
    for s in &streams {
        let mut last = [None::<u32>; 3];
        for &(p, i) in s {
            let l = &mut last[p as usize];
            assert!(l.is_none_or(|l| l < i), "producer {p}: {l:?} then {i}");
            *l = Some(i);
        }
    }
    let mut all: Vec<_> = streams.drain(..).flatten().collect();
    all.sort_unstable();
    let want: Vec<_> = (0..3u8)
        .flat_map(|p| (0..per).map(move |i| (p, i)))
        .collect();
    assert!(all == want, "items lost or duplicated");
    assert_eq!(q.qsize(), 0);
}

/// A `u64` item whose serialization, at the value this process was told to stop
/// at, reports that on a pipe and waits to be killed: a producer killed at a
/// known point of a batch.
#[derive(Debug, PartialEq, Deserialize)]
struct Stopper(u64);

static STOP_AT: std::sync::Mutex<Option<(u64, Connection)>> = std::sync::Mutex::new(None);

impl Serialize for Stopper {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Some((at, report)) = &*STOP_AT.lock().unwrap() {
            if *at == self.0 {
                report.send(self.0).unwrap();
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        s.serialize_u64(self.0)
    }
}

fn put_until_stopped((q, stop, report): (Queue<Stopper>, u64, Connection)) {
    *STOP_AT.lock().unwrap() = Some((stop, report));
    q.put_all((0..).map(Stopper)).unwrap();
}

/// Takes every item that comes within `quiet` into `got`.
fn drain_batches(q: &Queue<Stopper>, got: &mut Vec<u64>, quiet: Duration) {
    let mut items = Vec::new();
    while q.get_many_timeout(64, &mut items, quiet).is_ok() {}
    got.extend(items.into_iter().map(|s| s.0));
}

/// A producer killed in the middle of a batch (holding the producers' side, with
/// a run written and not published) leaves a prefix of the batch: whole items,
/// none twice, the unpublished run nowhere (not in `qsize` either); the next
/// producer takes the side over and its items arrive. Through a large ring (the
/// run is exactly what was lost) and a small bounded one (the producer waited
/// for room in the middle of the batch).
#[test]
fn producer_killed_mid_batch_leaves_a_prefix() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    // (ring bytes, maxsize, stop at, items that must have arrived or None)
    for (capacity, maxsize, stop, exact) in [
        (1 << 20, 0, 5, Some(0)),
        (1 << 20, 0, 101, Some(64)),
        (1 << 20, 0, 128, Some(128)),
        (4096, 0, 1013, None),
        (4096, 50, 777, None),
    ] {
        let q: Queue<Stopper> = Queue::builder()
            .capacity(capacity)
            .maxsize(maxsize)
            .build()
            .unwrap();
        let (rep_rx, rep_tx) = Pipe::one_way().unwrap();
        let victim = Process::start_with(put_until_stopped, (q.clone(), stop, rep_tx)).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !rep_rx.poll(Duration::ZERO) {
            drain_batches(&q, &mut got, Duration::from_millis(1));
            assert!(
                Instant::now() < deadline,
                "the producer never got to {stop}"
            );
        }
        assert_eq!(rep_rx.recv::<u64>().unwrap(), stop);
        victim.kill().unwrap();
        let _ = victim.join();
        drain_batches(&q, &mut got, Duration::from_millis(100));
        let j = got.len() as u64;
        assert_eq!(got, (0..j).collect::<Vec<_>>(), "stop {stop}: not a prefix");
        assert!(j <= stop && j + 64 > stop, "stop {stop}: {j} items arrived");
        if let Some(e) = exact {
            assert_eq!(j, e, "stop {stop}");
        }
        assert_eq!(q.qsize(), 0, "stop {stop}: the lost run is counted");
        // The next producer takes the producers' side over.
        q.put_all_timeout((1000..1010).map(Stopper), Duration::from_secs(10))
            .unwrap();
        let mut after = Vec::new();
        drain_batches(&q, &mut after, Duration::from_millis(100));
        assert_eq!(after, (1000..1010).collect::<Vec<_>>(), "stop {stop}");
        assert_eq!(q.qsize(), 0);
    }
}

fn put_batches_forever((q, from): (Queue<u64>, u64)) {
    q.put_all(from..).unwrap();
}

/// A producer of batches killed at a random time, consumed with `get_many`
/// meanwhile: what arrived is 0, 1, 2, ... with no gap or repeat, and a new
/// producer's items arrive after it.
#[test]
fn producer_killed_at_random_mid_batch_leaves_the_queue_usable() {
    let _s = util::serial();
    let _w = util::watchdog(LIMIT);
    let mut rng = XorShift::seeded();
    for iter in 0..ITERATIONS {
        let q: Queue<u64> = Queue::builder()
            .capacity(4096)
            .maxsize(if iter % 2 == 0 { 0 } else { 100 })
            .build()
            .unwrap();
        let victim = Process::start_with(put_batches_forever, (q.clone(), 0)).unwrap();
        let mut got = Vec::new();
        let t_kill = Instant::now() + Duration::from_micros(rng.below(15_000));
        while Instant::now() < t_kill {
            let _ = q.get_many_timeout(50, &mut got, Duration::from_millis(1));
        }
        victim.kill().unwrap();
        let _ = victim.join();
        while q
            .get_many_timeout(50, &mut got, Duration::from_millis(100))
            .is_ok()
        {}
        let n = got.len() as u64;
        assert!(
            got == (0..n).collect::<Vec<_>>(),
            "iteration {iter}: not 0..{n}"
        );
        assert_eq!(q.qsize(), 0, "iteration {iter}");
        q.put_all_timeout(1u64 << 40..(1 << 40) + 50, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("iteration {iter}: {e}"));
        let mut after = Vec::new();
        while after.len() < 50 {
            q.get_many_timeout(64, &mut after, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("iteration {iter}: {e}"));
        }
        assert!(after == ((1 << 40)..(1 << 40) + 50).collect::<Vec<u64>>());
    }
}
