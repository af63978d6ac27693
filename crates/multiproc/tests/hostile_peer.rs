//! A hostile peer: a child process that forges length prefixes, scribbles control
//! words, stops in the middle of an item or dies in the middle of a frame, against
//! process results, the process pool, [`Pipe`] and [`Queue`]. The parent must get a
//! typed error (or its deadline), keep its memory bounded, and never panic or hang.
//!
//! Memory is measured as the peak resident set (`VmHWM`, reset through
//! `/proc/self/clear_refs` before each case) over the resident set before it; the
//! tests take one lock so that their peaks do not mix when they share a process.
//! The children reach the internals they attack through `multiproc::test_support`.
//!
//! # Safety
//!
//! The children borrow the socket `test_support` names by number
//! (`BorrowedFd::borrow_raw`) while it is open (the result socket until the child's
//! function returns, a pool worker's socket while the worker runs tasks), and one ends
//! its process at once with `_exit`, after which nothing runs.
#![allow(unsafe_code)]
// SAFETY (for the file): the only `unsafe` is borrowing the raw descriptor of the
// child's own result or worker socket, which stays open while the child's function runs.

mod util;

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use multiproc::pool::Pool;
use multiproc::test_support;
use multiproc::{ErrorKind, Process, StartMethod};
use util::MemProbe;

/// Generous slack over a deadline on a loaded 2-CPU machine.
const MARGIN: Duration = Duration::from_secs(3);
/// Writes all of `bytes` on a socket, or as much as the reader takes before it
/// hangs up (without `SIGPIPE`: the child must end as it chooses).
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match rustix::net::send(fd, bytes, rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// Runs `f` on this child's result socket.
fn with_result_socket(f: impl FnOnce(BorrowedFd<'_>)) {
    let fd = test_support::result_socket().expect("running in a multiproc child");
    // SAFETY: the result socket stays open until the child's function has returned.
    f(unsafe { BorrowedFd::borrow_raw(fd) });
}

/// A result frame header (length `u64`, descriptor count `u32`) claiming `len` bytes.
fn frame_header(len: u64) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..8].copy_from_slice(&len.to_le_bytes());
    h
}

// ---- process results (issue 9, item 3) ----

/// Announces a 2 GiB result, sends 64 KiB of it, returns.
fn forge_2gib_result() -> u64 {
    with_result_socket(|fd| {
        write_all(fd, &frame_header(2 << 30));
        write_all(fd, &[7u8; 64 << 10]);
    });
    0
}

/// Announces a 512 MiB result (under the limit), sends 1 MiB of it and stalls.
fn forge_512mib_result_and_stall() -> u64 {
    with_result_socket(|fd| {
        write_all(fd, &frame_header(512 << 20));
        write_all(fd, &[7u8; 1 << 20]);
    });
    std::thread::sleep(Duration::from_secs(60));
    0
}

/// Announces a 256 MiB result, sends 1 MiB of it and exits (dies mid-frame).
fn forge_result_and_die_mid_frame() -> u64 {
    with_result_socket(|fd| {
        write_all(fd, &frame_header(256 << 20));
        write_all(fd, &[7u8; 1 << 20]);
    });
    // SAFETY: `_exit` ends the process at once; nothing runs after it.
    unsafe { libc::_exit(0) }
}

fn builder(method: StartMethod) -> multiproc::process::Builder {
    util::builder(method).kill_on_drop(true)
}

#[test]
fn forged_result_length_is_refused_before_allocating() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(120));
    for method in StartMethod::ALL {
        let probe = MemProbe::start();
        let mut p = builder(method).start(forge_2gib_result).unwrap();
        let timeout = Duration::from_secs(5);
        let t = Instant::now();
        let e = p.join_timeout(timeout).unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind(), ErrorKind::Decode, "{method:?}: {e}");
        assert!(
            e.to_string().contains("maximum"),
            "{method:?}: not the length check: {e}"
        );
        assert!(took < timeout + MARGIN, "{method:?}: join took {took:?}");
        probe.check(&format!("{method:?} 2 GiB result header"));
    }
}

#[test]
fn configured_result_limit_applies() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(60));
    fn big() -> Vec<u8> {
        vec![1u8; 100_000]
    }
    let p = builder(StartMethod::Spawn)
        .max_result_size(50_000)
        .start(big)
        .unwrap();
    let e = p.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    let p = builder(StartMethod::Spawn)
        .max_result_size(200_000)
        .start(big)
        .unwrap();
    assert_eq!(p.join().unwrap().len(), 100_000);
}

#[test]
fn stalled_result_under_the_limit_keeps_memory_and_deadline() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(120));
    for method in StartMethod::ALL {
        let probe = MemProbe::start();
        let mut p = builder(method)
            .start(forge_512mib_result_and_stall)
            .unwrap();
        let timeout = Duration::from_millis(1500);
        let t = Instant::now();
        let e = p.join_timeout(timeout).unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{method:?}: {e}");
        assert!(took < timeout + MARGIN, "{method:?}: join took {took:?}");
        probe.check(&format!("{method:?} stalled 512 MiB result"));
        p.kill().unwrap();
        let e = p.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Signaled, "{method:?}: {e}");
    }
}

#[test]
fn child_dying_mid_frame_is_a_truncated_result() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(120));
    for method in StartMethod::ALL {
        let probe = MemProbe::start();
        let p = builder(method)
            .start(forge_result_and_die_mid_frame)
            .unwrap();
        let e = p.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Exited, "{method:?}: {e}");
        assert!(
            e.to_string().contains("middle"),
            "{method:?}: not reported as truncated: {e}"
        );
        probe.check(&format!("{method:?} result cut mid-frame"));
    }
}

// ---- the process pool's wire ----

/// A pool record header (`tag u8, id u64, aux i64, nfds u32, len u64`).
fn pool_header(tag: u8, id: u64, nfds: u32, len: u64) -> Vec<u8> {
    let mut h = vec![tag];
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&0i64.to_le_bytes());
    h.extend_from_slice(&nfds.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

/// A task that writes a forged record on its worker's socket, then stalls (the
/// parent must act on the record, not on the task's end).
fn forge_pool_record(kind: u32) -> u32 {
    let fd = test_support::worker_socket().expect("running in a pool worker");
    // SAFETY: the worker's socket stays open while the worker runs tasks.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let rec = match kind {
        // A 2 GiB answer (over the 1 GiB limit).
        0 => pool_header(3, 0, 0, 2 << 30),
        // A length past the address space.
        1 => pool_header(3, 0, 0, u64::MAX),
        // Descriptors no message can carry.
        2 => pool_header(3, 0, u32::MAX, 8),
        // An unknown tag.
        _ => pool_header(200, 0, 0, 0),
    };
    write_all(fd, &rec);
    write_all(fd, &[0u8; 4096]);
    std::thread::sleep(Duration::from_secs(60));
    kind
}

fn plus_one(x: u32) -> u32 {
    x + 1
}

#[test]
fn forged_pool_records_fail_the_task_and_the_pool_goes_on() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(180));
    for method in StartMethod::ALL {
        let pool = Pool::builder()
            .workers(1)
            .start_method(method)
            .build()
            .unwrap();
        for kind in 0..4u32 {
            let probe = MemProbe::start();
            let before = pool.worker_pids();
            let t = Instant::now();
            let e = pool.apply(forge_pool_record, kind).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{method:?} kind {kind}: {e}");
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{method:?} kind {kind}: took {:?}",
                t.elapsed()
            );
            probe.check(&format!("{method:?} forged pool record {kind}"));
            // The worker was replaced and the pool still works.
            assert_eq!(pool.apply(plus_one, 41).unwrap(), 42);
            assert_ne!(
                pool.worker_pids(),
                before,
                "{method:?}: worker not replaced"
            );
        }
    }
}

// ---- pipes and queues (issue 9, items 4, 5 and 6) ----

use multiproc::ipc::{Connection, RecvTimeoutError, SendTimeoutError};
use multiproc::{Event, Pipe, Queue, SharedMemory};
use test_support::ring;

/// Runs `f` on a thread and waits at most `limit` for it: a call that does not come
/// back in time fails the test (instead of waiting for the watchdog).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no answer within {limit:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// Writes one forged `FIRST` record at the ring's tail: it claims `claim` bytes
/// from this (live) process, carries 100 of them, and is published.
fn forge_first(mem: &SharedMemory, base: usize, claim: u64) {
    use std::sync::atomic::Ordering::{Acquire, Release};
    let cap = mem.atomic_u64(base + ring::CAP).load(Acquire);
    let tail = mem.atomic_u64(base + ring::TAIL).load(Acquire);
    let seq = mem.atomic_u64(base + ring::PUT).load(Acquire);
    let at = base + ring::DATA + (tail & (cap - 1)) as usize;
    let payload = 16 + 100;
    let mut rec = Vec::new();
    rec.extend_from_slice(&(payload as u32).to_le_bytes());
    rec.extend_from_slice(&(ring::FIRST | ((seq as u32) << 4)).to_le_bytes());
    rec.extend_from_slice(&claim.to_le_bytes());
    rec.extend_from_slice(&std::process::id().to_le_bytes());
    rec.extend_from_slice(&[0u8; 4]);
    rec.extend_from_slice(&[7u8; 100]);
    mem.write(at, &rec).unwrap();
    mem.atomic_u64(base + ring::PUT).store(seq + 1, Release);
    mem.atomic_u64(base + ring::TAIL)
        .store(tail + (8 + payload as u64).next_multiple_of(8), Release);
}

/// A tiny deterministic generator for scribbles.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// What a hostile child does to a ring (`mem`, `base`) before it signals `ready`.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Attack {
    /// Publish one `FIRST` record claiming 1 GiB.
    ForgeFirst,
    /// Random bytes over the whole ring, control words and data (seeded).
    Scribble(u64),
    /// Set the 64-bit word at this offset to `u64::MAX`.
    Max(usize),
}

fn attack(mem: &SharedMemory, base: usize, a: Attack) {
    match a {
        Attack::ForgeFirst => forge_first(mem, base, 1 << 30),
        Attack::Scribble(seed) => {
            let cap = mem
                .atomic_u64(base + ring::CAP)
                .load(std::sync::atomic::Ordering::Acquire);
            let mut st = seed | 1;
            let bytes: Vec<u8> = (0..ring::DATA + cap as usize)
                .map(|_| xorshift(&mut st) as u8)
                .collect();
            mem.write(base, &bytes).unwrap();
        }
        Attack::Max(off) => mem
            .atomic_u64(base + off)
            .store(u64::MAX, std::sync::atomic::Ordering::Release),
    }
}

/// The child side for a pipe: attacks the ring its peer receives from (`toward`
/// true) or sends on, signals, and stays alive (a live peer is the hard case).
fn hostile_pipe_end((end, a, toward, ready): (Connection, Attack, bool, Event)) {
    let (mem, base) = if toward {
        test_support::pipe_send_ring(&end)
    } else {
        test_support::pipe_recv_ring(&end)
    }
    .expect("a duplex end");
    attack(&mem, base, a);
    ready.set();
    std::thread::sleep(Duration::from_secs(60));
    drop(end);
}

fn hostile_queue((q, a, ready): (Queue<Vec<u8>>, Attack, Event)) {
    let (mem, base) = test_support::queue_ring(&q);
    attack(&mem, base, a);
    ready.set();
    std::thread::sleep(Duration::from_secs(60));
}

fn start_hostile_pipe(a: Attack, toward: bool) -> (Connection, Process<()>) {
    let (ours, theirs) = Pipe::new().unwrap();
    let ready = Event::new().unwrap();
    let p = builder(StartMethod::ForkServer)
        .start_with(hostile_pipe_end, (theirs, a, toward, ready.clone()))
        .unwrap();
    assert!(
        ready.wait_timeout(Duration::from_secs(30)),
        "the child did not attack"
    );
    (ours, p)
}

fn start_hostile_queue(a: Attack) -> (Queue<Vec<u8>>, Process<()>) {
    let q = Queue::new().unwrap();
    let ready = Event::new().unwrap();
    let p = builder(StartMethod::ForkServer)
        .start_with(hostile_queue, (q.clone(), a, ready.clone()))
        .unwrap();
    assert!(
        ready.wait_timeout(Duration::from_secs(30)),
        "the child did not attack"
    );
    (q, p)
}

/// Item 4: one forged `FIRST` record claiming 1 GiB.
#[test]
fn forged_first_record_costs_no_memory_and_keeps_the_deadline() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(120));
    let timeout = Duration::from_millis(100);
    let probe = MemProbe::start();
    let (conn, p) = start_hostile_pipe(Attack::ForgeFirst, true);
    let t = Instant::now();
    let r = within(timeout + MARGIN, "pipe recv_timeout", move || {
        let r = conn.recv_timeout::<Vec<u8>>(timeout);
        (r, conn)
    });
    assert!(matches!(r.0, Err(RecvTimeoutError::Timeout)), "{:?}", r.0);
    assert!(t.elapsed() < timeout + MARGIN, "took {:?}", t.elapsed());
    probe.check("pipe: forged 1 GiB FIRST");
    p.kill().unwrap();

    let probe = MemProbe::start();
    let (q, p) = start_hostile_queue(Attack::ForgeFirst);
    let t = Instant::now();
    let q2 = q.clone();
    let r = within(timeout + MARGIN, "queue get_timeout", move || {
        q2.get_timeout(timeout)
    });
    assert!(matches!(r, Err(RecvTimeoutError::Timeout)), "{r:?}");
    assert!(t.elapsed() < timeout + MARGIN, "took {:?}", t.elapsed());
    probe.check("queue: forged 1 GiB FIRST");
    // The queue goes on: a real item after the forged one's missing rest.
    q.put(vec![1, 2, 3]).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), [1, 2, 3]);
    p.kill().unwrap();
}

/// Item 5: control words at `u64::MAX` (tail, put, head, got) on both rings of a
/// pipe and on a queue's ring: typed errors or normal answers, never a panic, and
/// every call back within its deadline.
#[test]
fn control_words_at_max_give_typed_errors() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(180));
    let timeout = Duration::from_millis(100);
    let limit = timeout + MARGIN;
    let words = [ring::TAIL, ring::PUT, ring::HEAD, ring::GOT];
    for &word in &words {
        for toward in [true, false] {
            let (conn, p) = start_hostile_pipe(Attack::Max(word), toward);
            let what = format!("pipe word {word} toward parent {toward}");
            let corrupt = within(limit * 4, &what, move || {
                let mut corrupt = 0;
                // The third send needs the room the first two took: it reads `head`.
                for len in [10usize, 600_000, 600_000] {
                    match conn.send_timeout(vec![3u8; len], timeout) {
                        Err(SendTimeoutError::Rejected(_, e)) => {
                            assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
                            corrupt += 1;
                        }
                        Ok(()) | Err(SendTimeoutError::Timeout(_)) => {}
                        Err(e) => panic!("send: {e}"),
                    }
                }
                match conn.recv_timeout::<Vec<u8>>(timeout) {
                    Err(RecvTimeoutError::Invalid(e)) => {
                        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
                        corrupt += 1;
                    }
                    Err(RecvTimeoutError::Timeout) | Ok(_) => {}
                    Err(e) => panic!("recv: {e}"),
                }
                corrupt
            });
            // A tail or head at u64::MAX cannot be; put and got are mere counters.
            if word == ring::TAIL || word == ring::HEAD {
                assert!(corrupt > 0, "{what}: not reported");
            }
            p.kill().unwrap();
        }
        let (q, p) = start_hostile_queue(Attack::Max(word));
        let what = format!("queue word {word}");
        let corrupt = within(limit * 4, &what, move || {
            let mut corrupt = 0;
            for len in [10usize, 600_000] {
                match q.put_timeout(vec![3u8; len], timeout) {
                    Err(SendTimeoutError::Rejected(_, e)) => {
                        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
                        corrupt += 1;
                    }
                    Ok(()) | Err(SendTimeoutError::Timeout(_)) => {}
                    Err(e) => panic!("put: {e}"),
                }
                match q.get_timeout(timeout) {
                    Err(RecvTimeoutError::Invalid(e)) => {
                        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
                        corrupt += 1;
                    }
                    Err(RecvTimeoutError::Timeout) | Ok(_) => {}
                    Err(e) => panic!("get: {e}"),
                }
            }
            let _ = q.qsize();
            corrupt
        });
        if word == ring::TAIL || word == ring::HEAD {
            assert!(corrupt > 0, "{what}: not reported");
        }
        p.kill().unwrap();
    }
}

/// Item 5: random bytes over a whole ring (control words and data), 8 seeds per
/// direction: every call back within its deadline, no panic.
#[test]
fn scribbled_rings_never_hang_or_panic() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(300));
    let timeout = Duration::from_millis(100);
    // Each call also encodes or decodes up to 1.5 MB in a debug build, on a machine
    // that may be loaded: more slack than for a bare wait.
    const SLACK: Duration = Duration::from_secs(6);
    let probe = MemProbe::start();
    for seed in 1..=8u64 {
        for toward in [true, false] {
            let (conn, p) = start_hostile_pipe(Attack::Scribble(seed * 7919), toward);
            let what = format!("pipe seed {seed} toward parent {toward}");
            within(timeout * 8 + SLACK * 8, &what, move || {
                for len in [10usize, 300_000, 10, 1_500_000] {
                    let t = Instant::now();
                    let _ = conn.send_timeout(vec![3u8; len], timeout);
                    assert!(t.elapsed() < timeout + SLACK, "send took {:?}", t.elapsed());
                    let t = Instant::now();
                    let _ = conn.recv_timeout::<Vec<u8>>(timeout);
                    assert!(t.elapsed() < timeout + SLACK, "recv took {:?}", t.elapsed());
                }
            });
            p.kill().unwrap();
        }
        let (q, p) = start_hostile_queue(Attack::Scribble(seed * 104_729));
        within(
            timeout * 8 + SLACK * 8,
            &format!("queue seed {seed}"),
            move || {
                for len in [10usize, 300_000, 10, 1_500_000] {
                    let t = Instant::now();
                    let _ = q.put_timeout(vec![3u8; len], timeout);
                    assert!(t.elapsed() < timeout + SLACK, "put took {:?}", t.elapsed());
                    let t = Instant::now();
                    let _ = q.get_timeout(timeout);
                    assert!(t.elapsed() < timeout + SLACK, "get took {:?}", t.elapsed());
                }
            },
        );
        p.kill().unwrap();
    }
    probe.check("scribbled rings");
}

/// A 32 MiB item whose bytes say where they are (built by whole blocks: this is a
/// debug build on a loaded machine).
fn big_item() -> Vec<u8> {
    let mut v = Vec::with_capacity(32 << 20);
    let mut block = 0u8;
    while v.len() < 32 << 20 {
        v.extend_from_slice(&[block; 4099]);
        block = block.wrapping_add(1);
    }
    v.truncate(32 << 20);
    v
}

fn put_big(q: Queue<Vec<u8>>) {
    q.put(big_item()).unwrap();
}

fn send_big(c: Connection) {
    c.send_bytes(&big_item()).unwrap();
}

fn stop(p: &Process<()>) {
    p.send_signal(libc::SIGSTOP).unwrap();
}

/// Item 6: the producer is stopped in the middle of a 32 MiB item: the timed
/// receive keeps its deadline, and once the producer goes on, the next receive
/// continues the item and gets it whole.
#[test]
fn producer_stopped_mid_item_keeps_the_deadline_and_the_item() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(400));
    let timeout = Duration::from_secs(2);

    // Queue.
    let q: Queue<Vec<u8>> = Queue::new().unwrap();
    let p = builder(StartMethod::ForkServer)
        .start_with(put_big, q.clone())
        .unwrap();
    // The item has started (and filled the ring): stop its producer there.
    assert!(util::eventually(Duration::from_secs(120), || q.qsize() >= 1));
    std::thread::sleep(Duration::from_millis(200));
    stop(&p);
    let probe = MemProbe::start();
    let t = Instant::now();
    let q2 = q.clone();
    let (r, q2) = within(timeout + MARGIN, "queue get_timeout", move || {
        (q2.get_timeout(timeout), q2)
    });
    assert!(
        matches!(r, Err(RecvTimeoutError::Timeout)),
        "{:?}",
        r.map(|v| v.len())
    );
    assert!(t.elapsed() < timeout + MARGIN, "took {:?}", t.elapsed());
    probe.check("queue: producer stopped mid-item");
    p.send_signal(libc::SIGCONT).unwrap();
    let item = q2.get_timeout(Duration::from_secs(120)).unwrap();
    assert!(item == big_item(), "the resumed item is not intact");
    p.join().unwrap();

    // Pipe.
    let (ours, theirs) = Pipe::new().unwrap();
    let p = builder(StartMethod::ForkServer)
        .start_with(send_big, theirs)
        .unwrap();
    assert!(util::eventually(Duration::from_secs(120), || ours.poll(Duration::ZERO)));
    std::thread::sleep(Duration::from_millis(200));
    stop(&p);
    let probe = MemProbe::start();
    let t = Instant::now();
    let (r, ours) = within(timeout + MARGIN, "pipe recv_timeout", move || {
        let mut buf = Vec::new();
        (ours.recv_bytes_into_timeout(&mut buf, timeout), ours)
    });
    assert!(matches!(r, Err(RecvTimeoutError::Timeout)), "{:?}", r);
    assert!(t.elapsed() < timeout + MARGIN, "took {:?}", t.elapsed());
    probe.check("pipe: producer stopped mid-item");
    p.send_signal(libc::SIGCONT).unwrap();
    let mut item = Vec::new();
    ours.recv_bytes_into_timeout(&mut item, Duration::from_secs(120))
        .unwrap();
    assert!(item == big_item(), "the resumed item is not intact");
    p.join().unwrap();
}

/// A producer killed in the middle of a 32 MiB item: the receiver gets end of
/// stream (pipe) or nothing (queue) within its deadline, no partial item, bounded
/// memory, and the queue goes on.
#[test]
fn producer_killed_mid_item_leaves_no_partial_item() {
    let _s = util::serial();
    let _w = util::watchdog(Duration::from_secs(400));
    let timeout = Duration::from_secs(2);

    let (ours, theirs) = Pipe::new().unwrap();
    let p = builder(StartMethod::ForkServer)
        .start_with(send_big, theirs)
        .unwrap();
    assert!(util::eventually(Duration::from_secs(120), || ours.poll(Duration::ZERO)));
    let probe = MemProbe::start();
    p.kill().unwrap();
    let t = Instant::now();
    let r = within(timeout + MARGIN, "pipe recv_timeout", move || {
        let mut buf = Vec::new();
        ours.recv_bytes_into_timeout(&mut buf, timeout)
    });
    assert!(matches!(r, Err(RecvTimeoutError::Disconnected)), "{r:?}");
    assert!(t.elapsed() < timeout + MARGIN, "took {:?}", t.elapsed());
    probe.check("pipe: producer killed mid-item");
    assert_eq!(p.join().unwrap_err().kind(), ErrorKind::Signaled);

    let q: Queue<Vec<u8>> = Queue::new().unwrap();
    let p = builder(StartMethod::ForkServer)
        .start_with(put_big, q.clone())
        .unwrap();
    assert!(util::eventually(Duration::from_secs(120), || q.qsize() >= 1));
    let probe = MemProbe::start();
    p.kill().unwrap();
    let t = Instant::now();
    let q2 = q.clone();
    let r = within(timeout + MARGIN, "queue get_timeout", move || {
        q2.get_timeout(timeout)
    });
    assert!(
        matches!(r, Err(RecvTimeoutError::Timeout)),
        "{:?}",
        r.map(|v| v.len())
    );
    assert!(t.elapsed() < timeout + MARGIN, "took {:?}", t.elapsed());
    probe.check("queue: producer killed mid-item");
    assert_eq!(p.join().unwrap_err().kind(), ErrorKind::Signaled);
    q.put(vec![4, 5]).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), [4, 5]);
}
