//! IPC benchmarks: multiproc's `Queue` and `Pipe` against a raw pipe, ipc-channel,
//! crossbeam-channel (threads) and Python's multiprocessing, side by side.
//!
//! `pipe_rtt_u64_proc` and `queue_rtt_u64_proc` are the same round trip (typed
//! `send`/`recv` of a `u64`) through a Pipe and through two Queues, and
//! `queue_bytes_1MiB_proc` puts 1 MiB `ByteBuf`s (shared by the producer through an
//! `Arc`, as the Pipe row lends its buffer) beside `pipe_bytes_1MiB_proc`: the
//! interleaved rounds pair them, and the summary prints their ratios (issue 14).
//! `queue_bytes_1MiB_cpu` / `pipe_bytes_1MiB_cpu` put and take 1 MiB items in one
//! thread and count its CPU time: the cost of the copies, which a loaded machine
//! hides in the two-process rows (there, waiting for a CPU decides the figure).
//! `pipe_msg8_cpu` / `queue_msg8_cpu` do the same for `u64` messages (messages per
//! second of one thread's CPU, both sides' work counted).
//! `queue_msg8_batch_proc` / `queue_msg8_batch_cpu` are `queue_msg8_proc` /
//! `queue_msg8_cpu` with `put_all` of 64 items and `get_many` of up to 64; the
//! summary pairs each with its per-item row.
//! `loan_bytes_1MiB_proc` moves 1 MiB payloads through a `loan_channel` (copied into
//! a loaned slot by the producer, out of it by the receiver: the same two copies as
//! the Pipe row) and `loan_inplace_1MiB_proc` reads them in place; the summary pairs
//! both with `pipe_bytes_1MiB_proc`.
//!
//! Run: `cargo bench -p multiproc --bench ipc` (add `MULTIPROC_BENCH_QUICK=1` for a
//! run of about a minute without criterion's statistics). Every measure is taken in
//! `ROUNDS` interleaved rounds; the summary prints medians and ratios. Round trips
//! are also measured with both processes pinned to CPU 0: the bench re-executes
//! itself under `taskset -c 0`. `MULTIPROC_BENCH_ONLY=queue,rtt` runs only the
//! measures whose names contain one of the words; `MULTIPROC_BENCH_NO_PYTHON=1`
//! skips Python. `MULTIPROC_BENCH_FORK=1` starts the children with `fork` instead
//! of the fork server, so that they inherit the bench's scheduling: under
//! `chrt -f 10` both ends of every measure then run at real-time priority, and a
//! machine loaded by other work no longer decides the figures (the fork server
//! starts its children at normal priority). `MULTIPROC_BENCH_HOG=1` measures with a
//! busy-looping process on every CPU but the first (issue 11's rows under load; see
//! `benches/common/hog.rs`); the pinned rows then share CPU 0 with nothing, as before.

#[path = "common/hog.rs"]
mod hog;

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ipc_channel::ipc::{self, IpcBytesSender, IpcOneShotServer, IpcSender};
use multiproc::ipc::{loan_channel, Connection, LoanSender, Pipe};
use multiproc::{Process, Queue};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

fn quick() -> bool {
    std::env::var_os("MULTIPROC_BENCH_QUICK").is_some()
}

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------- children

fn queue_producer((q, n): (Queue<u64>, u64)) {
    for i in 0..n {
        q.put(i).unwrap();
    }
}

/// Items per `put_all` / most per `get_many` in the `_batch` rows.
const BATCH: u64 = 64;

fn queue_batch_producer((q, n): (Queue<u64>, u64)) {
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        q.put_all(i..i + k).unwrap();
        i += k;
    }
}

fn pipe_producer((c, n): (Connection, u64)) {
    for i in 0..n {
        c.send(i).unwrap();
    }
}

fn pipe_echo(c: Connection) {
    let mut buf = Vec::new();
    while c.recv_bytes_into(&mut buf).is_ok() && !buf.is_empty() {
        c.send_bytes(&buf).unwrap();
    }
}

/// Sends back every `u64` until `u64::MAX` (typed `send`/`recv`, as users write it).
fn pipe_echo_u64(c: Connection) {
    while let Ok(v) = c.recv::<u64>() {
        if v == u64::MAX || c.send(v).is_err() {
            break;
        }
    }
}

/// Puts back on `back` every `u64` it gets from `to`, until `u64::MAX`.
fn queue_echo((to, back): (Queue<u64>, Queue<u64>)) {
    while let Ok(v) = to.get() {
        if v == u64::MAX || back.put(v).is_err() {
            break;
        }
    }
}

/// Puts `n` 1 MiB items. The producer keeps its data and shares it with each `put`
/// (an `Arc`, serialized as its bytes), as `pipe_bytes_producer` lends its buffer to
/// each `send_bytes`: until 2026-12-03 it put a fresh copy of the buffer each time
/// (`data.clone()`), a copy the Pipe row does not make (17 % of the Queue row's CPU).
fn queue_bytes_producer((q, n): (Queue<Arc<ByteBuf>>, u64)) {
    let data = Arc::new(ByteBuf::from(vec![7u8; MIB]));
    for _ in 0..n {
        q.put(Arc::clone(&data)).unwrap();
    }
}

/// Sends `n` 1 MiB payloads through a loan channel: each copied from the
/// producer's buffer into a loaned slot (as iceoryx2's `copy_1MiB` fills a loaned
/// sample with `write_from_slice`).
fn loan_bytes_producer((tx, n): (LoanSender, u64)) {
    let data = vec![7u8; MIB];
    for _ in 0..n {
        tx.send_bytes(&data).unwrap();
    }
}

fn pipe_bytes_producer((c, n): (Connection, u64)) {
    let data = vec![7u8; MIB];
    for _ in 0..n {
        c.send_bytes(&data).unwrap();
    }
}

#[derive(Serialize, Deserialize)]
struct Fds {
    #[serde(with = "multiproc::ipc::codec::fd")]
    a: OwnedFd,
    #[serde(with = "multiproc::ipc::codec::fd")]
    b: OwnedFd,
}

fn write_all(fd: &OwnedFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        let n = rustix::io::write(fd, buf).unwrap();
        buf = &buf[n..];
    }
}

fn read_exact(fd: &OwnedFd, mut buf: &mut [u8]) -> bool {
    while !buf.is_empty() {
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) => return false,
            Ok(n) => buf = &mut buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("{e}"),
        }
    }
    true
}

fn raw_msg8_producer((fds, n): (Fds, u64)) {
    for i in 0..n {
        write_all(&fds.b, &i.to_le_bytes());
    }
}

fn raw_echo(fds: Fds) {
    let mut b = [0u8; 8];
    // Stops at `u64::MAX` (end of stream is not enough: a `fork` child inherits
    // the parent's copy of the write end too).
    while read_exact(&fds.a, &mut b) && b != u64::MAX.to_le_bytes() {
        write_all(&fds.b, &b);
    }
}

fn raw_bytes_producer((fds, n): (Fds, u64)) {
    let data = vec![7u8; MIB];
    for _ in 0..n {
        write_all(&fds.b, &data);
    }
}

fn ipcc_msg8_producer((name, n): (String, u64)) {
    let tx = IpcSender::<u64>::connect(name).unwrap();
    for i in 0..=n {
        tx.send(i).unwrap();
    }
}

fn ipcc_echo((name1, name2): (String, String)) {
    let (ctx, crx) = ipc::channel::<u64>().unwrap();
    IpcSender::<IpcSender<u64>>::connect(name1)
        .unwrap()
        .send(ctx)
        .unwrap();
    let reply = IpcSender::<u64>::connect(name2).unwrap();
    reply.send(0).unwrap();
    while let Ok(v) = crx.recv() {
        if v == u64::MAX {
            break;
        }
        reply.send(v).unwrap();
    }
}

fn ipcc_bytes_producer((name, n): (String, u64)) {
    let (stx, srx) = ipc::channel::<IpcBytesSender>().unwrap();
    IpcSender::<IpcSender<IpcBytesSender>>::connect(name)
        .unwrap()
        .send(stx)
        .unwrap();
    let btx = srx.recv().unwrap();
    let data = vec![7u8; MIB];
    for _ in 0..n {
        btx.send(&data).unwrap();
    }
}

// ---------------------------------------------------------------- measures
//
// Each takes a number of operations and returns the time they took, excluding
// process start-up (the first message is received before the clock starts).

fn queue_msg8(n: u64) -> Duration {
    let q: Queue<u64> = Queue::new().unwrap();
    let p = Process::start_with(queue_producer, (q.clone(), n + 1)).unwrap();
    q.get().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(q.get().unwrap());
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

/// `queue_msg8` in batches: the producer puts `BATCH` items at a time with
/// `put_all`, the consumer takes up to `BATCH` with `get_many`.
fn queue_msg8_batch(n: u64) -> Duration {
    let q: Queue<u64> = Queue::new().unwrap();
    let p = Process::start_with(queue_batch_producer, (q.clone(), n + 1)).unwrap();
    q.get().unwrap();
    let mut buf = Vec::with_capacity(BATCH as usize);
    let mut got = 0;
    let t = Instant::now();
    while got < n {
        buf.clear();
        got += q.get_many(BATCH.min(n - got) as usize, &mut buf).unwrap() as u64;
        std::hint::black_box(&buf);
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

fn pipe_msg8(n: u64) -> Duration {
    let (rx, tx) = Pipe::one_way().unwrap();
    let p = Process::start_with(pipe_producer, (tx, n + 1)).unwrap();
    rx.recv::<u64>().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(rx.recv::<u64>().unwrap());
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

fn raw_pipe_msg8(n: u64) -> Duration {
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (r2, _w2) = rustix::pipe::pipe().unwrap();
    let p = Process::start_with(raw_msg8_producer, (Fds { a: r2, b: w }, n + 1)).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut first = [0u8; 8];
    read_exact(&r, &mut first);
    let t = Instant::now();
    let mut left = n as usize * 8;
    while left > 0 {
        let k = left.min(buf.len());
        let got = rustix::io::read(&r, &mut buf[..k]).unwrap();
        left -= got;
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

fn ipcc_msg8(n: u64) -> Duration {
    let (server, name) = IpcOneShotServer::<u64>::new().unwrap();
    let p = Process::start_with(ipcc_msg8_producer, (name, n)).unwrap();
    let (rx, _) = server.accept().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(rx.recv().unwrap());
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

fn crossbeam_msg8(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
    let h = std::thread::spawn(move || {
        for i in 0..=n {
            tx.send(i).unwrap();
        }
    });
    rx.recv().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(rx.recv().unwrap());
    }
    let d = t.elapsed();
    h.join().unwrap();
    d
}

fn pipe_rtt(n: u64) -> Duration {
    let (a, b) = Pipe::new().unwrap();
    let p = Process::start_with(pipe_echo, b).unwrap();
    let mut buf = Vec::new();
    a.send_bytes(&1u64.to_le_bytes()).unwrap();
    a.recv_bytes_into(&mut buf).unwrap();
    let t = Instant::now();
    for i in 0..n {
        a.send_bytes(&i.to_le_bytes()).unwrap();
        a.recv_bytes_into(&mut buf).unwrap();
    }
    let d = t.elapsed();
    a.send_bytes(b"").unwrap();
    p.join().unwrap();
    d
}

/// The round trip of `compare --only communicating`: typed `send`/`recv` of a `u64`.
fn pipe_rtt_u64(n: u64) -> Duration {
    let (a, b) = Pipe::new().unwrap();
    let p = Process::start_with(pipe_echo_u64, b).unwrap();
    a.send(0u64).unwrap();
    a.recv::<u64>().unwrap();
    let t = Instant::now();
    for i in 0..n {
        a.send(i).unwrap();
        std::hint::black_box(a.recv::<u64>().unwrap());
    }
    let d = t.elapsed();
    a.send(u64::MAX).unwrap();
    p.join().unwrap();
    d
}

/// The same round trip through two `Queue`s.
fn queue_rtt_u64(n: u64) -> Duration {
    let to = Queue::<u64>::new().unwrap();
    let back = Queue::<u64>::new().unwrap();
    let p = Process::start_with(queue_echo, (to.clone(), back.clone())).unwrap();
    to.put(0).unwrap();
    back.get().unwrap();
    let t = Instant::now();
    for i in 0..n {
        to.put(i).unwrap();
        std::hint::black_box(back.get().unwrap());
    }
    let d = t.elapsed();
    to.put(u64::MAX).unwrap();
    p.join().unwrap();
    d
}

fn raw_pipe_rtt(n: u64) -> Duration {
    let (r1, w1) = rustix::pipe::pipe().unwrap();
    let (r2, w2) = rustix::pipe::pipe().unwrap();
    let p = Process::start_with(raw_echo, Fds { a: r1, b: w2 }).unwrap();
    let mut b = [0u8; 8];
    write_all(&w1, &b);
    read_exact(&r2, &mut b);
    let t = Instant::now();
    for i in 0..n {
        write_all(&w1, &i.to_le_bytes());
        read_exact(&r2, &mut b);
    }
    let d = t.elapsed();
    write_all(&w1, &u64::MAX.to_le_bytes());
    drop(w1);
    p.join().unwrap();
    d
}

fn ipcc_rtt(n: u64) -> Duration {
    let (s1, name1) = IpcOneShotServer::<IpcSender<u64>>::new().unwrap();
    let (s2, name2) = IpcOneShotServer::<u64>::new().unwrap();
    let p = Process::start_with(ipcc_echo, (name1, name2)).unwrap();
    let (_r1, ctx) = s1.accept().unwrap();
    let (rx, _) = s2.accept().unwrap();
    let t = Instant::now();
    for i in 0..n {
        ctx.send(i).unwrap();
        std::hint::black_box(rx.recv().unwrap());
    }
    let d = t.elapsed();
    ctx.send(u64::MAX).unwrap();
    p.join().unwrap();
    d
}

fn crossbeam_rtt(n: u64) -> Duration {
    let (tx1, rx1) = crossbeam_channel::bounded::<u64>(1);
    let (tx2, rx2) = crossbeam_channel::bounded::<u64>(1);
    let h = std::thread::spawn(move || {
        while let Ok(v) = rx1.recv() {
            tx2.send(v).unwrap();
        }
    });
    let t = Instant::now();
    for i in 0..n {
        tx1.send(i).unwrap();
        rx2.recv().unwrap();
    }
    let d = t.elapsed();
    drop(tx1);
    h.join().unwrap();
    d
}

fn pipe_bytes_1mib(n: u64) -> Duration {
    let (rx, tx) = Pipe::one_way().unwrap();
    let p = Process::start_with(pipe_bytes_producer, (tx, n + 1)).unwrap();
    let mut buf = Vec::new();
    rx.recv_bytes_into(&mut buf).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        rx.recv_bytes_into(&mut buf).unwrap();
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

/// 1 MiB payloads through a `loan_channel` (4 slots of 1 MiB): copied in by the
/// producer, copied out by this process into a reused buffer (`read_into`), the
/// same two copies as `pipe_bytes_1MiB_proc`, without the ring's 128 KiB pieces.
fn loan_bytes_1mib(n: u64) -> Duration {
    let (tx, rx) = loan_channel(4, MIB).unwrap();
    let p = Process::start_with(loan_bytes_producer, (tx, n + 1)).unwrap();
    let mut buf = Vec::new();
    rx.recv().unwrap().read_into(&mut buf);
    let t = Instant::now();
    for _ in 0..n {
        rx.recv().unwrap().read_into(&mut buf);
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

/// The same, read in place: the receiver looks at one byte of each payload and
/// gives the slot back (the zero-copy use; the producer still copies its buffer in).
fn loan_inplace_1mib(n: u64) -> Duration {
    let (tx, rx) = loan_channel(4, MIB).unwrap();
    let p = Process::start_with(loan_bytes_producer, (tx, n + 1)).unwrap();
    let mut b = [0u8; 1];
    rx.recv().unwrap().read(MIB - 1, &mut b).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let s = rx.recv().unwrap();
        s.read(MIB - 1, &mut b).unwrap();
        std::hint::black_box(b);
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

fn queue_bytes_1mib(n: u64) -> Duration {
    let q = Queue::<Arc<ByteBuf>>::new().unwrap();
    let p = Process::start_with(queue_bytes_producer, (q.clone(), n + 1)).unwrap();
    q.get().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(q.get().unwrap());
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

/// CPU time of this thread (load-independent: waiting for a CPU is not counted).
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The CPU cost of a 1 MiB `Queue` item, both sides in one thread: put (the
/// shared buffer, as `queue_bytes_producer` does) then get, with a ring that holds
/// the item whole. Thread CPU time: what the copies cost, whatever the load.
fn queue_bytes_1mib_cpu(n: u64) -> Duration {
    let q = Queue::<Arc<ByteBuf>>::builder()
        .capacity(4 * MIB)
        .build()
        .unwrap();
    let data = Arc::new(ByteBuf::from(vec![7u8; MIB]));
    q.put(Arc::clone(&data)).unwrap();
    q.get().unwrap();
    let t = thread_cpu();
    for _ in 0..n {
        q.put(Arc::clone(&data)).unwrap();
        std::hint::black_box(q.get().unwrap());
    }
    thread_cpu() - t
}

/// The CPU cost of a typed `u64` message through a one-way `Pipe`, both ends in
/// one thread (batches of 1,000 sends, then 1,000 receives; thread CPU time): the
/// per-message work of the two sides, which a loaded machine hides in
/// `pipe_msg8_proc`.
fn pipe_msg8_cpu(n: u64) -> Duration {
    let (rx, tx) = Pipe::one_way().unwrap();
    let t = thread_cpu();
    for _ in 0..n.div_ceil(1000) {
        for i in 0..1000u64 {
            tx.send(i).unwrap();
        }
        for _ in 0..1000 {
            std::hint::black_box(rx.recv::<u64>().unwrap());
        }
    }
    thread_cpu() - t
}

/// The same through a `Queue`.
fn queue_msg8_cpu(n: u64) -> Duration {
    let q = Queue::<u64>::new().unwrap();
    let t = thread_cpu();
    for _ in 0..n.div_ceil(1000) {
        for i in 0..1000u64 {
            q.put(i).unwrap();
        }
        for _ in 0..1000 {
            std::hint::black_box(q.get().unwrap());
        }
    }
    thread_cpu() - t
}

/// The same in batches of `BATCH` (`put_all`, `get_many`).
fn queue_msg8_batch_cpu(n: u64) -> Duration {
    let q = Queue::<u64>::new().unwrap();
    let mut buf = Vec::with_capacity(BATCH as usize);
    let t = thread_cpu();
    for _ in 0..n.div_ceil(1024) {
        for i in (0..1024u64).step_by(BATCH as usize) {
            q.put_all(i..i + BATCH).unwrap();
        }
        let mut got = 0;
        while got < 1024 {
            buf.clear();
            got += q.get_many(BATCH as usize, &mut buf).unwrap();
            std::hint::black_box(&buf);
        }
    }
    thread_cpu() - t
}

/// The same for a `Pipe` (`send_bytes`, `recv_bytes_into`).
fn pipe_bytes_1mib_cpu(n: u64) -> Duration {
    let (rx, tx) = Pipe::builder()
        .capacity(4 * MIB)
        .duplex(false)
        .build()
        .unwrap();
    let data = vec![7u8; MIB];
    let mut buf = Vec::new();
    tx.send_bytes(&data).unwrap();
    rx.recv_bytes_into(&mut buf).unwrap();
    let t = thread_cpu();
    for _ in 0..n {
        tx.send_bytes(&data).unwrap();
        rx.recv_bytes_into(&mut buf).unwrap();
    }
    thread_cpu() - t
}

fn raw_pipe_bytes_1mib(n: u64) -> Duration {
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (r2, _w2) = rustix::pipe::pipe().unwrap();
    let p = Process::start_with(raw_bytes_producer, (Fds { a: r2, b: w }, n + 1)).unwrap();
    let mut buf = vec![0u8; MIB];
    read_exact(&r, &mut buf);
    let t = Instant::now();
    for _ in 0..n {
        read_exact(&r, &mut buf);
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

fn ipcc_bytes_1mib(n: u64) -> Duration {
    let (server, name) = IpcOneShotServer::<IpcSender<IpcBytesSender>>::new().unwrap();
    let p = Process::start_with(ipcc_bytes_producer, (name, n + 1)).unwrap();
    let (_r, stx) = server.accept().unwrap();
    let (btx, brx) = ipc::bytes_channel().unwrap();
    stx.send(btx).unwrap();
    brx.recv().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(brx.recv().unwrap());
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

/// CPU time a child uses over `ms` milliseconds while blocked in `recv` on an idle
/// pipe (from `/proc/<pid>/schedstat`, in nanoseconds), returned as a `Duration`.
fn idle_waiter_cpu(ms: u64) -> Duration {
    let (a, b) = Pipe::new().unwrap();
    let p = Process::start_with(pipe_echo, b).unwrap();
    // Let it start and settle into its sleep.
    a.send_bytes(b"x").unwrap();
    a.recv_bytes().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let cpu = |pid: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = cpu(p.pid());
    std::thread::sleep(Duration::from_millis(ms));
    let used = cpu(p.pid()) - before;
    a.send_bytes(b"").unwrap();
    p.join().unwrap();
    Duration::from_nanos(used)
}

fn cpu_percent(ms: u64, d: Duration) -> f64 {
    d.as_secs_f64() * 1e3 / ms as f64 * 100.0
}

// ---------------------------------------------------------------- driver

/// One measure: a name, its unit, how to turn (ops, time) into the figure, the
/// operations per round, and the function.
struct Measure {
    name: &'static str,
    unit: &'static str,
    ops: u64,
    run: fn(u64) -> Duration,
    figure: fn(u64, Duration) -> f64,
}

fn mmsg_per_s(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64() / 1e6
}

fn us_per_op(n: u64, d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn gb_per_s(n: u64, d: Duration) -> f64 {
    (n as f64 * MIB as f64) / d.as_secs_f64() / 1e9
}

/// The measures to run: all, or those whose name contains `MULTIPROC_BENCH_ONLY`.
fn measures(pinned: bool) -> Vec<Measure> {
    let only = std::env::var("MULTIPROC_BENCH_ONLY").unwrap_or_default();
    all_measures(pinned)
        .into_iter()
        .filter(|m| only.split(',').any(|o| m.name.contains(o)))
        .collect()
}

fn all_measures(pinned: bool) -> Vec<Measure> {
    let scale = if quick() { 1 } else { 3 };
    let m = |name, unit, ops: u64, run, figure| Measure {
        name,
        unit,
        ops: ops * scale,
        run,
        figure,
    };
    let mut v = Vec::new();
    if !pinned {
        v.push(m(
            "queue_msg8_proc",
            "Mmsg/s",
            2_000_000,
            queue_msg8 as fn(u64) -> Duration,
            mmsg_per_s as fn(u64, Duration) -> f64,
        ));
        v.push(m(
            "queue_msg8_batch_proc",
            "Mmsg/s",
            2_000_000,
            queue_msg8_batch,
            mmsg_per_s,
        ));
        v.push(m(
            "pipe_msg8_proc",
            "Mmsg/s",
            2_000_000,
            pipe_msg8,
            mmsg_per_s,
        ));
        v.push(m(
            "pipe_msg8_cpu",
            "Mmsg/s",
            1_000_000,
            pipe_msg8_cpu,
            mmsg_per_s,
        ));
        v.push(m(
            "queue_msg8_cpu",
            "Mmsg/s",
            1_000_000,
            queue_msg8_cpu,
            mmsg_per_s,
        ));
        v.push(m(
            "queue_msg8_batch_cpu",
            "Mmsg/s",
            1_000_000,
            queue_msg8_batch_cpu,
            mmsg_per_s,
        ));
        v.push(m(
            "raw_pipe_msg8_proc",
            "Mmsg/s",
            1_000_000,
            raw_pipe_msg8,
            mmsg_per_s,
        ));
        v.push(m(
            "ipc_channel_msg8_proc",
            "Mmsg/s",
            100_000,
            ipcc_msg8,
            mmsg_per_s,
        ));
        v.push(m(
            "crossbeam_msg8_threads",
            "Mmsg/s",
            1_000_000,
            crossbeam_msg8,
            mmsg_per_s,
        ));
        v.push(m(
            "pipe_bytes_1MiB_proc",
            "GB/s",
            300,
            pipe_bytes_1mib,
            gb_per_s,
        ));
        v.push(m(
            "queue_bytes_1MiB_proc",
            "GB/s",
            300,
            queue_bytes_1mib,
            gb_per_s,
        ));
        v.push(m(
            "loan_bytes_1MiB_proc",
            "GB/s",
            300,
            loan_bytes_1mib,
            gb_per_s,
        ));
        v.push(m(
            "loan_inplace_1MiB_proc",
            "GB/s",
            300,
            loan_inplace_1mib,
            gb_per_s,
        ));
        v.push(m(
            "pipe_bytes_1MiB_cpu",
            "GB/s",
            300,
            pipe_bytes_1mib_cpu,
            gb_per_s,
        ));
        v.push(m(
            "queue_bytes_1MiB_cpu",
            "GB/s",
            300,
            queue_bytes_1mib_cpu,
            gb_per_s,
        ));
        v.push(m(
            "raw_pipe_bytes_1MiB_proc",
            "GB/s",
            100,
            raw_pipe_bytes_1mib,
            gb_per_s,
        ));
        v.push(m(
            "ipc_channel_bytes_1MiB_proc",
            "GB/s",
            100,
            ipcc_bytes_1mib,
            gb_per_s,
        ));
        v.push(m(
            "crossbeam_rtt_threads",
            "us/rtt",
            20_000,
            crossbeam_rtt,
            us_per_op,
        ));
        v.push(m(
            "pipe_idle_waiter_cpu",
            "% of a CPU",
            500 / scale,
            idle_waiter_cpu,
            cpu_percent,
        ));
    }
    let rtt_ops = if pinned { 5_000 } else { 20_000 };
    v.push(m("pipe_rtt_proc", "us/rtt", rtt_ops, pipe_rtt, us_per_op));
    v.push(m(
        "pipe_rtt_u64_proc",
        "us/rtt",
        rtt_ops,
        pipe_rtt_u64,
        us_per_op,
    ));
    v.push(m(
        "queue_rtt_u64_proc",
        "us/rtt",
        rtt_ops,
        queue_rtt_u64,
        us_per_op,
    ));
    v.push(m(
        "raw_pipe_rtt_proc",
        "us/rtt",
        rtt_ops / 4,
        raw_pipe_rtt,
        us_per_op,
    ));
    v.push(m(
        "ipc_channel_rtt_proc",
        "us/rtt",
        rtt_ops / 4,
        ipcc_rtt,
        us_per_op,
    ));
    v
}

const ROUNDS: usize = 5;

/// Per-round figures of the measures run, by name (for paired ratios).
static ROUND_FIGURES: std::sync::Mutex<Vec<(String, Vec<f64>)>> = std::sync::Mutex::new(Vec::new());

/// Runs every measure `ROUNDS` times, interleaved; returns (name, unit, medians).
fn interleaved(ms: &[Measure]) -> Vec<(String, &'static str, f64, f64, f64)> {
    let mut figs: Vec<Vec<f64>> = vec![Vec::new(); ms.len()];
    for _ in 0..ROUNDS {
        for (i, m) in ms.iter().enumerate() {
            figs[i].push((m.figure)(m.ops, (m.run)(m.ops)));
        }
    }
    ROUND_FIGURES.lock().unwrap().extend(
        ms.iter()
            .zip(&figs)
            .map(|(m, f)| (m.name.to_string(), f.clone())),
    );
    ms.iter()
        .zip(figs)
        .map(|(m, mut f)| {
            f.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (
                m.name.to_string(),
                m.unit,
                f[f.len() / 2],
                f[0],
                f[f.len() - 1],
            )
        })
        .collect()
}

/// The median over rounds of `ours / peer` (or `peer / ours`) within each round,
/// when both ran in this process's rounds.
fn paired(ours: &str, peer: &str, higher_is_better: bool) -> Option<f64> {
    let figs = ROUND_FIGURES.lock().unwrap();
    let get = |n: &str| figs.iter().find(|f| f.0 == n).map(|f| f.1.clone());
    let (a, b) = (get(ours)?, get(peer)?);
    let mut r: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(a, b)| if higher_is_better { a / b } else { b / a })
        .collect();
    r.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some(r[r.len() / 2])
}

fn pinned_child() {
    let rows = interleaved(&measures(true));
    for (name, unit, med, min, max) in rows {
        println!("PINNED {name}_cpu0 {unit} {med} {min} {max}");
    }
}

fn run_pinned() -> Vec<(String, &'static str, f64, f64, f64)> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("taskset")
        .args(["-c", "0"])
        .arg(&exe)
        .env("MULTIPROC_BENCH_PINNED_CHILD", "1")
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        _ => {
            eprintln!("taskset unavailable or failed; skipping pinned round trips");
            return Vec::new();
        }
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("PINNED "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                "us/rtt",
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
        })
        .collect()
}

const PYTHON: &str = r#"
import multiprocessing as mp, time, sys, statistics
N_Q, N_RTT, N_B = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def prod(q, n):
    for i in range(n): q.put(i)
def echo(c):
    while True:
        o = c.recv()
        if o is None: break
        c.send(o)
def bytes_prod(c, n):
    d = b"\x07" * (1 << 20)
    for _ in range(n): c.send_bytes(d)
def queue_tp():
    q = mp.Queue(); p = mp.Process(target=prod, args=(q, N_Q + 1)); p.start(); q.get()
    t = time.perf_counter()
    for _ in range(N_Q): q.get()
    d = time.perf_counter() - t; p.join(); return N_Q / d / 1e6
def rtt():
    a, b = mp.Pipe(); p = mp.Process(target=echo, args=(b,)); p.start()
    a.send((12345, "x")); a.recv()
    t = time.perf_counter()
    for _ in range(N_RTT): a.send((12345, "x")); a.recv()
    d = time.perf_counter() - t; a.send(None); p.join(); return d / N_RTT * 1e6
def bw():
    a, b = mp.Pipe(duplex=False); p = mp.Process(target=bytes_prod, args=(b, N_B + 1)); p.start(); a.recv_bytes()
    t = time.perf_counter()
    for _ in range(N_B): a.recv_bytes()
    d = time.perf_counter() - t; p.join(); return N_B * (1 << 20) / d / 1e9
if __name__ == "__main__":
    rows = {"python_queue_msg8_proc": [], "python_pipe_rtt_proc": [], "python_pipe_bytes_1MiB_proc": []}
    for _ in range(int(sys.argv[4])):
        rows["python_queue_msg8_proc"].append(queue_tp())
        rows["python_pipe_rtt_proc"].append(rtt())
        rows["python_pipe_bytes_1MiB_proc"].append(bw())
    for k, v in rows.items():
        v.sort(); print("PY", k, statistics.median(v), v[0], v[-1])
"#;

fn run_python(pinned: bool) -> Vec<(String, f64, f64, f64)> {
    if std::env::var_os("MULTIPROC_BENCH_NO_PYTHON").is_some() {
        return Vec::new();
    }
    let rounds = if quick() { "3" } else { "5" };
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "python3"]);
        c
    } else {
        Command::new("python3")
    };
    let out = cmd
        .args(["-c", PYTHON, "100000", "5000", "200", rounds])
        .output();
    let Ok(out) = out else {
        eprintln!("python3 not found; skipping Python peers");
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("PY "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = if pinned {
                format!("{}_cpu0", f[0])
            } else {
                f[0].to_string()
            };
            (
                name,
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

fn main() {
    if std::env::var_os("MULTIPROC_BENCH_FORK").is_some() {
        multiproc::StartMethod::set_default(multiproc::StartMethod::Fork);
    }
    if std::env::var_os("MULTIPROC_BENCH_PINNED_CHILD").is_some() {
        pinned_child();
        return;
    }
    // Over every measure below, criterion's included; the pinned child (above) runs
    // under this process's hogs.
    let hogs = hog::Hogs::from_env();
    if !quick() {
        let mut c = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2))
            .configure_from_args();
        let mut g = c.benchmark_group("ipc");
        for m in measures(false) {
            let run = m.run;
            g.bench_function(m.name, |b| b.iter_custom(|iters| run(iters.max(1))));
        }
        g.finish();
    }
    println!("load before: {}", load_avg().trim());
    let mut rows = interleaved(&measures(false));
    rows.extend(run_pinned());
    let py: Vec<_> = run_python(false)
        .into_iter()
        .chain(run_python(true))
        .map(|(n, med, min, max)| {
            let unit = if n.contains("rtt") {
                "us/rtt"
            } else if n.contains("bytes") {
                "GB/s"
            } else {
                "Mmsg/s"
            };
            (n, unit, med, min, max)
        })
        .collect();
    rows.extend(py);
    println!("load after: {}", load_avg().trim());
    drop(hogs);
    let get = |n: &str| rows.iter().find(|r| r.0 == n).map(|r| r.2);
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n| measure | median | min | max | unit |").unwrap();
    writeln!(out, "|---|---:|---:|---:|---|").unwrap();
    for (n, u, med, min, max) in &rows {
        writeln!(out, "| {n} | {med:.4} | {min:.4} | {max:.4} | {u} |").unwrap();
    }
    writeln!(
        out,
        "\nratios of the medians (ours vs peer; > 1 means ours is better), and paired: the \
         median over rounds of the ratio within a round"
    )
    .unwrap();
    let pairs: &[(&str, &str, bool)] = &[
        ("queue_msg8_proc", "raw_pipe_msg8_proc", true),
        ("queue_msg8_proc", "ipc_channel_msg8_proc", true),
        ("queue_msg8_proc", "crossbeam_msg8_threads", true),
        ("queue_msg8_proc", "python_queue_msg8_proc", true),
        ("pipe_rtt_proc", "raw_pipe_rtt_proc", false),
        ("pipe_rtt_proc", "ipc_channel_rtt_proc", false),
        ("pipe_rtt_proc", "crossbeam_rtt_threads", false),
        ("pipe_rtt_proc", "python_pipe_rtt_proc", false),
        ("pipe_rtt_proc_cpu0", "raw_pipe_rtt_proc_cpu0", false),
        ("pipe_rtt_proc_cpu0", "ipc_channel_rtt_proc_cpu0", false),
        ("pipe_rtt_proc_cpu0", "python_pipe_rtt_proc_cpu0", false),
        ("queue_rtt_u64_proc", "pipe_rtt_u64_proc", false),
        ("pipe_rtt_u64_proc", "pipe_rtt_proc", false),
        ("queue_bytes_1MiB_proc", "pipe_bytes_1MiB_proc", true),
        ("queue_bytes_1MiB_cpu", "pipe_bytes_1MiB_cpu", true),
        ("loan_bytes_1MiB_proc", "pipe_bytes_1MiB_proc", true),
        ("loan_inplace_1MiB_proc", "pipe_bytes_1MiB_proc", true),
        ("queue_msg8_cpu", "pipe_msg8_cpu", true),
        ("queue_msg8_batch_proc", "queue_msg8_proc", true),
        ("queue_msg8_batch_cpu", "queue_msg8_cpu", true),
        ("pipe_bytes_1MiB_proc", "raw_pipe_bytes_1MiB_proc", true),
        ("pipe_bytes_1MiB_proc", "ipc_channel_bytes_1MiB_proc", true),
        ("pipe_bytes_1MiB_proc", "python_pipe_bytes_1MiB_proc", true),
    ];
    for &(ours, peer, higher_is_better) in pairs {
        if let (Some(a), Some(b)) = (get(ours), get(peer)) {
            let r = if higher_is_better { a / b } else { b / a };
            match paired(ours, peer, higher_is_better) {
                Some(p) => writeln!(out, "  {ours} vs {peer}: {r:.2}x (paired {p:.2}x)").unwrap(),
                None => writeln!(out, "  {ours} vs {peer}: {r:.2}x").unwrap(),
            }
        }
    }
}
