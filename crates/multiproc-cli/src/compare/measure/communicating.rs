//! Communicating: a channel between threads against a Pipe and a Queue between
//! processes. Round-trip latency of a small message, and bandwidth of 1 MiB messages.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use multiproc::ipc::{Connection, Pipe, Queue};
use multiproc::{Process, Thread};
use serde_bytes::ByteBuf;

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::stats::{self, Summary};

/// Bytes per message in the bandwidth measurement.
pub(crate) const CHUNK: usize = 1 << 20;
/// How long a Queue operation may wait for the child before the measurement fails. A
/// Queue does not know who is on the other side, so a child that died would otherwise
/// leave the parent waiting forever (a Pipe reports the peer's death by itself).
const PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages every bandwidth run sends, whatever its time limit.
const MIN_MESSAGES: usize = 8;
/// Round trips per latency sample.
const TRIPS_PER_SAMPLE: u32 = 50;

/// Measures the section.
pub(crate) fn run(ctx: &Ctx<'_>) -> Section {
    let plan = ctx.plan;
    let limit = Limit {
        max_messages: plan.pick(512, 64),
        time: plan.budget(400),
    };
    let total_mib = limit.max_messages;
    let mut rtt = Vec::new();
    let mut bw = Vec::new();

    ctx.step("communicating: std::sync::mpsc round trip between threads");
    rtt.push(summary_or_missing(
        "threads_mpsc",
        "threads, std::sync::mpsc",
        Worker::Thread,
        mpsc_round_trip(plan.budget(1500)),
    ));
    ctx.step("communicating: std::sync::mpsc bandwidth between threads");
    bw.push(summary_or_missing(
        "threads_mpsc",
        "threads, std::sync::mpsc",
        Worker::Thread,
        mpsc_bandwidth(limit, plan.pick(3, 1)),
    ));
    ctx.step("communicating: Pipe round trip between processes");
    rtt.push(process_metric(
        "processes_pipe",
        "processes, ipc::Pipe",
        pipe_round_trip(plan.budget(1500)),
    ));
    ctx.step("communicating: Pipe bandwidth between processes");
    bw.push(process_metric(
        "processes_pipe",
        "processes, ipc::Pipe",
        pipe_bandwidth(limit, plan.pick(3, 1)),
    ));
    ctx.step("communicating: Queue round trip between processes");
    rtt.push(process_metric(
        "processes_queue",
        "processes, ipc::Queue",
        queue_round_trip(plan.budget(1500)),
    ));
    ctx.step("communicating: Queue bandwidth between processes");
    bw.push(process_metric(
        "processes_queue",
        "processes, ipc::Queue",
        queue_bandwidth(limit, plan.pick(3, 1)),
    ));

    let mut section = Section {
        id: "communicating",
        title: "Communicating",
        claim: "Threads pass data within one memory; processes need a channel between \
                memories, which costs latency and bandwidth.",
        status: Status::Measured,
        method: format!(
            "Round trip: one side sends a u64, the other sends it back; median of samples of \
             {TRIPS_PER_SAMPLE} round trips. Bandwidth: 1 MiB messages, one way, for {} ms \
             or {total_mib} messages, whichever comes first (at least {MIN_MESSAGES}); the sender copies its buffer into each message (threads: \
             a clone moved through a sync_channel of 4; Pipe: send_bytes; Queue: put of a \
             serde_bytes::ByteBuf), the receiver takes it and drops it. Pipe and Queue use their default \
             settings; the child process is started by forkserver. Reported: the byte count the receiver acknowledges, over the time \
             from the first send to the acknowledgement, in GB/s (10^9 bytes).",
            limit.time.as_millis()
        ),
        groups: vec![
            Group {
                id: "round_trip",
                title: "round trip of a small message".into(),
                unit: "us",
                better: Better::Lower,
                metrics: rtt,
            },
            Group {
                id: "bandwidth",
                title: "bandwidth, 1 MiB messages, one way".into(),
                unit: "GB/s",
                better: Better::Higher,
                metrics: bw,
            },
        ],
        findings: Vec::new(),
    };
    let t = section.get("round_trip", "threads_mpsc");
    for (id, what) in [("processes_pipe", "a Pipe"), ("processes_queue", "a Queue")] {
        if let (Some(t), Some(p)) = (t, section.get("round_trip", id)) {
            section.findings.push(format!(
                "A round trip through {what} between processes took {} us, {}x the {} us of a channel between threads.",
                stats::fmt_num(p),
                stats::fmt_num(p / t),
                stats::fmt_num(t)
            ));
        }
    }
    section.finish()
}

/// A metric from a sampled summary, or missing with the error.
pub(crate) fn summary_or_missing<E: std::fmt::Display>(
    id: &str,
    label: &str,
    worker: Worker,
    r: Result<Summary, E>,
) -> Metric {
    match r {
        Ok(s) => super::starting::summary_metric(id, label.to_owned(), worker, s),
        Err(e) => Metric::missing(id, label, worker, format!("failed: {e}")),
    }
}

fn process_metric(id: &str, label: &str, r: anyhow::Result<Summary>) -> Metric {
    summary_or_missing(id, label, Worker::Process, r).method(multiproc::StartMethod::ForkServer)
}

/// A child that sends back every `u64` it receives, until `u64::MAX`.
fn pipe_echo(conn: Connection) {
    while let Ok(v) = conn.recv::<u64>() {
        if v == u64::MAX || conn.send(v).is_err() {
            break;
        }
    }
}

/// A child that receives byte messages until an empty one, then acknowledges with the
/// byte count.
fn pipe_sink(conn: Connection) {
    let mut buf = Vec::with_capacity(CHUNK);
    let mut bytes = 0u64;
    loop {
        match conn.recv_bytes_into(&mut buf) {
            Ok(0) => break,
            Ok(len) => bytes += len as u64,
            Err(_) => return,
        }
    }
    let _ = conn.send(bytes);
}

/// A child that puts back on `back` every `u64` it gets from `to`, until `u64::MAX`.
fn queue_echo((to, back): (Queue<u64>, Queue<u64>)) {
    while let Ok(v) = to.get() {
        if v == u64::MAX || back.put(v).is_err() {
            break;
        }
    }
}

/// A child that gets buffers from `data` until an empty one, then puts the byte count
/// on `ack`.
fn queue_sink((data, ack): (Queue<ByteBuf>, Queue<u64>)) {
    let mut bytes = 0u64;
    loop {
        match data.get() {
            Ok(v) if v.is_empty() => break,
            Ok(v) => bytes += v.len() as u64,
            Err(_) => return,
        }
    }
    let _ = ack.put(bytes);
}

/// Whether a bandwidth run that started at `t0` and sent `sent` messages goes on.
fn more(t0: Instant, sent: usize, limit: Limit) -> bool {
    sent < MIN_MESSAGES || (sent < limit.max_messages && t0.elapsed() < limit.time)
}

/// How much a bandwidth run may send: up to `max_messages`, for up to `time`.
#[derive(Debug, Clone, Copy)]
struct Limit {
    max_messages: usize,
    time: Duration,
}

fn pipe_round_trip(budget: Duration) -> anyhow::Result<Summary> {
    let (ours, theirs) = Pipe::new()?;
    let child = Process::start_with(pipe_echo, theirs)?;
    let r = stats::sample(budget, 2, 5, 100_000, || {
        let t0 = Instant::now();
        for i in 0..u64::from(TRIPS_PER_SAMPLE) {
            ours.send(i)?;
            ours.recv::<u64>()?;
        }
        Ok::<_, anyhow::Error>(stats::us(t0.elapsed()) / f64::from(TRIPS_PER_SAMPLE))
    });
    ours.send(u64::MAX)?;
    child.join()?;
    r
}

fn pipe_bandwidth(limit: Limit, reps: u32) -> anyhow::Result<Summary> {
    let buf = vec![7u8; CHUNK];
    let mut samples = Vec::new();
    for _ in 0..reps {
        let (ours, theirs) = Pipe::new()?;
        let child = Process::start_with(pipe_sink, theirs)?;
        // The child may still be starting when the clock starts: a fraction of a
        // millisecond against the whole transfer.
        let t0 = Instant::now();
        let mut sent = 0;
        while more(t0, sent, limit) {
            ours.send_bytes(&buf)?;
            sent += 1;
        }
        ours.send_bytes(&[])?;
        let bytes: u64 = ours.recv()?;
        samples.push(bytes as f64 / t0.elapsed().as_secs_f64() / 1e9);
        child.join()?;
    }
    Ok(Summary::of(&samples).expect("reps >= 1"))
}

fn queue_round_trip(budget: Duration) -> anyhow::Result<Summary> {
    let to = Queue::<u64>::new()?;
    let back = Queue::<u64>::new()?;
    let child = Process::start_with(queue_echo, (to.clone(), back.clone()))?;
    let r = stats::sample(budget, 2, 5, 100_000, || {
        let t0 = Instant::now();
        for i in 0..u64::from(TRIPS_PER_SAMPLE) {
            to.put_timeout(i, PEER_TIMEOUT)?;
            back.get_timeout(PEER_TIMEOUT)?;
        }
        Ok::<_, anyhow::Error>(stats::us(t0.elapsed()) / f64::from(TRIPS_PER_SAMPLE))
    });
    to.put_timeout(u64::MAX, PEER_TIMEOUT)?;
    child.join()?;
    r
}

fn queue_bandwidth(limit: Limit, reps: u32) -> anyhow::Result<Summary> {
    let buf = vec![7u8; CHUNK];
    let mut samples = Vec::new();
    for _ in 0..reps {
        // `ByteBuf` serializes as one block of bytes; a `Vec<u8>` would go through
        // serde one byte at a time.
        let data = Queue::<ByteBuf>::new()?;
        let ack = Queue::<u64>::new()?;
        let child = Process::start_with(queue_sink, (data.clone(), ack.clone()))?;
        let t0 = Instant::now();
        let mut sent = 0;
        while more(t0, sent, limit) {
            data.put_timeout(ByteBuf::from(buf.clone()), PEER_TIMEOUT)?;
            sent += 1;
        }
        data.put_timeout(ByteBuf::new(), PEER_TIMEOUT)?;
        let bytes = ack.get_timeout(PEER_TIMEOUT)?;
        samples.push(bytes as f64 / t0.elapsed().as_secs_f64() / 1e9);
        child.join()?;
    }
    Ok(Summary::of(&samples).expect("reps >= 1"))
}

fn mpsc_round_trip(budget: Duration) -> anyhow::Result<Summary> {
    let (to_tx, to_rx) = mpsc::channel::<u64>();
    let (back_tx, back_rx) = mpsc::channel::<u64>();
    let echo = Thread::start(move || {
        while let Ok(v) = to_rx.recv() {
            if back_tx.send(v).is_err() {
                break;
            }
        }
    })?;
    let r = stats::sample(budget, 2, 5, 100_000, || {
        let t0 = Instant::now();
        for i in 0..u64::from(TRIPS_PER_SAMPLE) {
            to_tx.send(i)?;
            back_rx.recv()?;
        }
        Ok::<_, anyhow::Error>(stats::us(t0.elapsed()) / f64::from(TRIPS_PER_SAMPLE))
    });
    drop(to_tx);
    echo.join()?;
    r
}

fn mpsc_bandwidth(limit: Limit, reps: u32) -> anyhow::Result<Summary> {
    let buf = vec![7u8; CHUNK];
    let mut samples = Vec::new();
    for _ in 0..reps {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let t0 = Instant::now();
        let consumer = Thread::start(move || {
            let mut bytes = 0usize;
            while let Ok(v) = rx.recv() {
                bytes += v.len();
            }
            bytes
        })?;
        let mut sent = 0;
        while more(t0, sent, limit) {
            tx.send(buf.clone())?;
            sent += 1;
        }
        drop(tx);
        let bytes = consumer.join()?;
        samples.push(bytes as f64 / t0.elapsed().as_secs_f64() / 1e9);
    }
    Ok(Summary::of(&samples).expect("reps >= 1"))
}
