//! The valgrind target: one pass through shared memory, IPC and process lifecycle.
//!
//! Without arguments (`cargo test --test valgrind`, nextest) it runs everything natively:
//! it creates, uses and drops `SharedMemory` (also attached by name), `Value`, `Array`,
//! a `Lock`, an `Event`, a `Pipe` and a `Queue`; starts and joins threads (one exits
//! holding a `Lock`, which then reports `OwnerDied`) and a thread `Pool`; and starts
//! children by `Fork`, `ForkServer` and `Spawn` that talk through a pipe, a queue and a
//! shared value; one child panics, one is killed, one is dropped unjoined (reaped in the
//! background).
//!
//! `ci/valgrind.sh` runs it twice under memcheck:
//!
//! * `in-process`: everything but the child processes, with this process under memcheck.
//!   Starting a child needs `pidfd_open` (syscall 434), which valgrind 3.19 (Debian 12's)
//!   does not implement: it fails with `ENOSYS`.
//! * `spawn-through WRAPPER`: this process natively, its children by `Spawn` through
//!   `Builder::executable(WRAPPER)`, a script that runs this program under memcheck. This
//!   checks the child's side: the startup hook, the launch frame, descriptors received,
//!   the function run, its result or panic sent back, the exit.
//!
//! It is a `harness = false` test, so it is a small program with no libtest threads, and
//! it answers nextest's `--list` as <https://nexte.st/docs/design/custom-test-harnesses/>
//! asks.

use std::time::Duration;

use multiproc::ipc::Connection;
use multiproc::{
    process, Array, Barrier, ErrorKind, Event, Lock, Pipe, Pool, Process, Queue, Semaphore,
    SharedMemory, Signal, StartMethod, Thread, Value,
};

#[path = "util/mod.rs"]
mod util;

use util::square;

/// The one test this binary holds, under the name nextest lists.
const TEST: &str = "lifecycle";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // Nextest's protocol: the tests, one `name: test` line each; none is ignored.
        if !args.iter().any(|a| a == "--ignored") {
            println!("{TEST}: test");
        }
        return;
    }
    if args.iter().any(|a| a == "--ignored") {
        return;
    }
    // Under valgrind every instruction is instrumented: a generous limit.
    let _watchdog = util::watchdog(Duration::from_secs(300));
    match args.first().map(String::as_str) {
        Some("in-process") => in_process(),
        Some("spawn-through") => {
            let wrapper = args.get(1).expect("usage: spawn-through WRAPPER").clone();
            processes("Spawn under memcheck", || {
                Process::builder()
                    .start_method(StartMethod::Spawn)
                    .executable(wrapper.clone())
            });
        }
        _ => {
            in_process();
            for method in StartMethod::ALL {
                // This program runs a watchdog thread, so `Fork` must be allowed to fork it.
                processes(method.name(), || util::builder(method));
            }
        }
    }
    println!("{TEST}: ok");
}

fn in_process() {
    shared_memory();
    locks();
    pipe_and_queue();
    threads();
}

fn shared_memory() {
    let shm = SharedMemory::create(4096).expect("create");
    shm.write(100, b"hello").expect("write");
    let other = SharedMemory::attach(&shm.name()).expect("attach");
    let mut buf = [0u8; 5];
    other.read(100, &mut buf).expect("read");
    assert_eq!(&buf, b"hello");
    other
        .atomic_u64(8)
        .fetch_add(3, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        shm.atomic_u64(8).load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    drop(shm);
    drop(other);

    let v = Value::with_lock(40u64).expect("value");
    v.fetch_add(2);
    assert_eq!(v.clone().get(), 42);
    let a = Array::from_slice(&[1i32, 2, 3]).expect("array");
    a.set(1, 20);
    assert_eq!(a.to_vec(), [1, 20, 3]);
}

fn locks() {
    let lock = Lock::new().expect("lock");
    let g = lock.lock().expect("uncontended");
    assert!(lock.try_lock().is_err());
    drop(g);
    drop(
        lock.lock_timeout(Duration::from_secs(1))
            .expect("free again"),
    );
    let e = Event::new().expect("event");
    e.set();
    assert!(e.wait_timeout(Duration::ZERO));
}

fn pipe_and_queue() {
    let (a, b) = Pipe::new().expect("pipe");
    a.send(String::from("ping")).expect("send");
    assert_eq!(b.recv::<String>().expect("recv"), "ping");
    b.send_bytes(&[7; 100_000]).expect("send_bytes");
    assert_eq!(a.recv_bytes().expect("recv_bytes").len(), 100_000);
    drop(b);
    assert!(a.recv::<u8>().unwrap_err().is_disconnected());

    let q = Queue::new().expect("queue");
    q.put(vec![1u32, 2, 3]).expect("put");
    assert_eq!(q.get().expect("get"), [1, 2, 3]);
    q.close();
    assert!(q.get().unwrap_err().is_disconnected());
}

fn threads() {
    let t = Thread::start_with(|n: u64| n * 2, 21).expect("thread");
    assert_eq!(t.join().expect("join thread"), 42);

    // A thread takes the lock and exits holding it, after a barrier and a semaphore.
    let lock = Lock::new().expect("lock");
    let barrier = Barrier::new(2).expect("barrier");
    let sem = Semaphore::new(0).expect("semaphore");
    let t = Thread::start_with(
        |(lock, barrier, sem): (Lock, Barrier, Semaphore)| {
            std::mem::forget(lock.lock().expect("free"));
            barrier.wait().expect("barrier");
            sem.release().expect("release");
        },
        (lock.clone(), barrier.clone(), sem.clone()),
    )
    .expect("thread");
    barrier.wait().expect("barrier");
    sem.acquire();
    t.join().expect("join thread");
    match lock.lock() {
        Ok(_) => panic!("the lock's owner exited holding it: OwnerDied expected"),
        Err(died) => drop(died.into_inner()),
    }

    let pool = Pool::threads(2).expect("thread pool");
    let squares = pool.map(square, 1..=20).expect("map");
    assert_eq!(squares.iter().sum::<u64>(), 2870);
    pool.join();
}

/// Runs in a child: takes numbers from the pipe up to a `None`, puts their sum on the
/// queue, adds it to the shared value, and returns how many it took. (The end of the
/// pipe is marked, not found by end of stream: a `Fork` child holds a copy of the
/// parent's end too, as in Python.)
fn child_sum((conn, results, total): (Connection, Queue<u64>, Value<u64>)) -> usize {
    let mut n = 0;
    let mut sum = 0;
    while let Some(x) = conn.recv::<Option<u64>>().expect("recv in the child") {
        n += 1;
        sum += x;
    }
    results.put(sum).expect("put from the child");
    total.fetch_add(sum);
    n
}

fn child_panics() {
    panic!("planned panic in a child");
}

fn child_sleeps() {
    std::thread::sleep(Duration::from_secs(60));
}

fn child_returns() -> u32 {
    7
}

/// Children made by `builder()` take numbers through a pipe and return results through a
/// queue, shared memory and `join`; one panics, one is killed, one is never joined.
fn processes(label: &str, builder: impl Fn() -> process::Builder) {
    let (parent, child) = Pipe::new().expect("pipe");
    let results = Queue::new().expect("queue");
    let total = Value::new(0u64).expect("value");
    let p = builder()
        .start_with(child_sum, (child, results.clone(), total.clone()))
        .expect("start");
    for x in (1..=10u64).map(Some).chain([None]) {
        parent.send(x).expect("send to child");
    }
    assert_eq!(p.join().expect("join"), 10);
    assert_eq!(results.get().expect("result"), 55);
    assert_eq!(total.get(), 55);

    let err = builder()
        .start(child_panics)
        .expect("start")
        .join()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);

    let mut p = builder().start(child_sleeps).expect("start");
    assert!(p.is_alive());
    assert!(p
        .join_timeout(Duration::from_millis(10))
        .unwrap_err()
        .is_timeout());
    p.kill().expect("kill");
    let err = p.join().unwrap_err();
    assert_eq!(err.signal(), Some(Signal::SIGKILL));

    // Dropped unjoined: reaped in the background, so it must vanish, not stay a zombie.
    let p = builder().start(child_returns).expect("start");
    let pid = p.pid();
    drop(p);
    let me = std::process::id() as i32;
    assert!(
        util::eventually(Duration::from_secs(120), || util::children_of(me)
            .iter()
            .all(|&(child, _)| child != pid)),
        "dropped child {pid} was not reaped"
    );
    println!("{label}: ok");
}
