//! Communicating: a channel between threads against a Pipe and a Queue between
//! processes. Round-trip latency of a small message, and bandwidth of 1 MiB messages.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use multiproc::ipc::{Connection, Pipe, Queue};
use multiproc::{Process, Thread};
use serde_bytes::ByteBuf;

use super::Ctx;
use crate::compare::model::{Better, Group, Metric, Section, Status, Worker};
use crate::compare::rounds::{self, Contender};
use crate::compare::stats;

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
        time: plan.budget(200),
    };
    let total_mib = limit.max_messages;
    let rtt_rounds = plan.pick(20, 10);
    let bw_rounds = plan.pick(6, 5);
    let per_batch = Duration::from_millis(plan.pick(75, 25));

    ctx.step("communicating: starting the echo partners");
    let kinds = [
        ("threads_mpsc", "threads, std::sync::mpsc", Worker::Thread),
        ("processes_pipe", "processes, ipc::Pipe", Worker::Process),
        ("processes_queue", "processes, ipc::Queue", Worker::Process),
    ];
    let mpsc_echo = MpscEcho::start();
    let pipe_echo = PipeEcho::start();
    let queue_echo = QueueEcho::start();
    let mut contenders = vec![
        Contender::new("std::sync::mpsc round trip between threads", || {
            let e = mpsc_echo.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            trips(per_batch, |i| e.trip(i))
        }),
        Contender::new("Pipe round trip between processes", || {
            let e = pipe_echo.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            trips(per_batch, |i| e.trip(i))
        }),
        Contender::new("Queue round trip between processes", || {
            let e = queue_echo.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            trips(per_batch, |i| e.trip(i))
        }),
    ];
    let rtt_rounds_measured = rounds::interleave(ctx, "communicating", rtt_rounds, &mut contenders);
    drop(contenders);
    let stopped = [
        mpsc_echo.and_then(MpscEcho::stop),
        pipe_echo.and_then(PipeEcho::stop),
        queue_echo.and_then(QueueEcho::stop),
    ];

    let mut contenders = vec![
        Contender::new("std::sync::mpsc bandwidth between threads", || {
            mpsc_bandwidth(limit)
        }),
        Contender::new("Pipe bandwidth between processes", || pipe_bandwidth(limit)),
        Contender::new("Queue bandwidth between processes", || {
            queue_bandwidth(limit)
        }),
    ];
    let bw_rounds_measured = rounds::interleave(ctx, "communicating", bw_rounds, &mut contenders);
    drop(contenders);

    let mut rtt = Vec::new();
    let mut bw = Vec::new();
    for (i, (id, label, worker)) in kinds.into_iter().enumerate() {
        let method = |m: Metric| {
            if worker == Worker::Process {
                m.method(multiproc::StartMethod::ForkServer)
            } else {
                m
            }
        };
        let mut m = method(rounds::metric(
            id,
            label,
            worker,
            "us",
            &rtt_rounds_measured[i],
        ));
        if let Err(e) = &stopped[i] {
            m = m.note(format!("the echo partner did not stop cleanly: {e:#}"));
        }
        rtt.push(m);
        bw.push(method(rounds::metric(
            id,
            label,
            worker,
            "GB/s",
            &bw_rounds_measured[i],
        )));
    }
    rounds::pair_with(&mut rtt, "threads_mpsc");
    rounds::pair_with(&mut bw, "threads_mpsc");

    let mut section = Section {
        id: "communicating",
        title: "Communicating",
        claim: "Threads pass data within one memory; processes need a channel between \
                memories, which costs latency and bandwidth.",
        status: Status::Measured,
        method: format!(
            "Round trip: one side sends a u64, the other sends it back; {rtt_rounds} \
             interleaved rounds (every kind once per round, the order rotated per round), in \
             each a batch of about {} ms of samples of {TRIPS_PER_SAMPLE} round trips per kind, \
             the batch's median per trip is the round's figure. Bandwidth: {bw_rounds} \
             interleaved rounds of one run per kind: 1 MiB messages, one way, for {} ms \
             or {total_mib} messages, whichever comes first (at least {MIN_MESSAGES}); the sender copies its buffer into each message (threads: \
             a clone moved through a sync_channel of 4; Pipe: send_bytes; Queue: put of a \
             serde_bytes::ByteBuf), the receiver takes it and drops it. Pipe and Queue use their default \
             settings; the child process is started by forkserver. Reported: the byte count the receiver acknowledges, over the time \
             from the first send to the acknowledgement, in GB/s (10^9 bytes). Figures: the \
             median over the rounds, the range their min..max; ratio: over the threads' \
             figure of the same round.",
            per_batch.as_millis(),
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
        let Some(m) = section.metric("round_trip", id) else {
            continue;
        };
        if let (Some(t), Some(p), Some(r)) = (t, m.value, &m.ratio) {
            section.findings.push(format!(
                "A round trip through {what} between processes took {} us, {}x the {} us of \
                 a channel between threads ({}x to {}x round by round).",
                stats::fmt_num(p),
                stats::fmt_num(r.median),
                stats::fmt_num(t),
                stats::fmt_num(r.min),
                stats::fmt_num(r.max)
            ));
        }
    }
    section.finish()
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

/// The median time per round trip of a batch of samples lasting about `budget`.
fn trips(budget: Duration, mut trip: impl FnMut(u64) -> anyhow::Result<()>) -> anyhow::Result<f64> {
    stats::sample(budget, 1, 3, 100_000, || {
        let t0 = Instant::now();
        for i in 0..u64::from(TRIPS_PER_SAMPLE) {
            trip(i)?;
        }
        Ok(stats::us(t0.elapsed()) / f64::from(TRIPS_PER_SAMPLE))
    })
    .map(|s| s.median)
}

/// A thread echoing `u64`s through two `std::sync::mpsc` channels.
struct MpscEcho {
    to: mpsc::Sender<u64>,
    back: mpsc::Receiver<u64>,
    echo: Thread<()>,
}

impl MpscEcho {
    fn start() -> anyhow::Result<MpscEcho> {
        let (to, to_rx) = mpsc::channel::<u64>();
        let (back_tx, back) = mpsc::channel::<u64>();
        let echo = Thread::start(move || {
            while let Ok(v) = to_rx.recv() {
                if back_tx.send(v).is_err() {
                    break;
                }
            }
        })?;
        Ok(MpscEcho { to, back, echo })
    }

    fn trip(&self, i: u64) -> anyhow::Result<()> {
        self.to.send(i)?;
        self.back.recv()?;
        Ok(())
    }

    fn stop(self) -> anyhow::Result<()> {
        drop(self.to);
        self.echo.join()?;
        Ok(())
    }
}

/// A child process echoing `u64`s through a Pipe.
struct PipeEcho {
    ours: Connection,
    child: Process<()>,
}

impl PipeEcho {
    fn start() -> anyhow::Result<PipeEcho> {
        let (ours, theirs) = Pipe::new()?;
        let child = Process::start_with(pipe_echo, theirs)?;
        Ok(PipeEcho { ours, child })
    }

    fn trip(&self, i: u64) -> anyhow::Result<()> {
        self.ours.send(i)?;
        self.ours.recv::<u64>()?;
        Ok(())
    }

    fn stop(self) -> anyhow::Result<()> {
        self.ours.send(u64::MAX)?;
        self.child.join()?;
        Ok(())
    }
}

/// A child process echoing `u64`s from one Queue to another.
struct QueueEcho {
    to: Queue<u64>,
    back: Queue<u64>,
    child: Process<()>,
}

impl QueueEcho {
    fn start() -> anyhow::Result<QueueEcho> {
        let to = Queue::<u64>::new()?;
        let back = Queue::<u64>::new()?;
        let child = Process::start_with(queue_echo, (to.clone(), back.clone()))?;
        Ok(QueueEcho { to, back, child })
    }

    fn trip(&self, i: u64) -> anyhow::Result<()> {
        self.to.put_timeout(i, PEER_TIMEOUT)?;
        self.back.get_timeout(PEER_TIMEOUT)?;
        Ok(())
    }

    fn stop(self) -> anyhow::Result<()> {
        self.to.put_timeout(u64::MAX, PEER_TIMEOUT)?;
        self.child.join()?;
        Ok(())
    }
}

/// One bandwidth run, in GB/s.
fn pipe_bandwidth(limit: Limit) -> anyhow::Result<f64> {
    let buf = vec![7u8; CHUNK];
    {
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
        let gbps = bytes as f64 / t0.elapsed().as_secs_f64() / 1e9;
        child.join()?;
        Ok(gbps)
    }
}

/// One bandwidth run, in GB/s.
fn queue_bandwidth(limit: Limit) -> anyhow::Result<f64> {
    let buf = vec![7u8; CHUNK];
    {
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
        let gbps = bytes as f64 / t0.elapsed().as_secs_f64() / 1e9;
        child.join()?;
        Ok(gbps)
    }
}

/// One bandwidth run, in GB/s.
fn mpsc_bandwidth(limit: Limit) -> anyhow::Result<f64> {
    let buf = vec![7u8; CHUNK];
    {
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
        Ok(bytes as f64 / t0.elapsed().as_secs_f64() / 1e9)
    }
}
