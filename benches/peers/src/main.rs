//! multiproc against iceoryx2 (0.10), paired: every round runs each measure once
//! (ABAB...), odd rounds in reverse order so that no measure always follows the same
//! neighbour, and the summary gives each measure's median over the rounds, the ratio
//! of the medians and the paired ratio (the median over rounds of the ratio within a
//! round, which cancels load that drifts between rounds).
//!
//! This crate is outside the workspace (its own `[workspace]`, lock file and target
//! directory): iceoryx2 and its bindgen build take minutes to compile, which the
//! workspace's tests and clippy must not pay. Run it from this directory:
//!
//! ```text
//! cargo run --release -- [rounds]                      # default 5 rounds
//! MULTIPROC_BENCH_HOG=1 cargo run --release -- [rounds] # with a CPU hog, see below
//! MULTIPROC_BENCH_ONLY=rtt,copy cargo run --release     # measures whose names contain a word
//! ```
//!
//! `MULTIPROC_BENCH_HOG=1` runs every round with a busy-looping process on each CPU but
//! the first (issue 11: every row "with a CPU hog on the other core too"); the code is
//! the workspace benches' `crates/multiproc/benches/common/hog.rs`.
//!
//! It needs libclang for iceoryx2's bindgen (Debian: `apt-get install libclang-dev`).
//!
//! Measures (each child process is started by `multiproc::Process`, so both sides
//! pay the same start-up, which is not timed):
//!
//! * `rtt_spin`: round trip of a `u64`; iceoryx2 publish-subscribe with both sides
//!   busy-polling `receive`, against a multiproc `Pipe` (`send`/`recv`, which spin
//!   briefly and then sleep).
//! * `rtt_block`: the same with iceoryx2's blocking pattern (publish, then notify an
//!   event; the other side `blocking_wait`s on a listener), against the same Pipe.
//! * `msg8`: one-way `u64`s; iceoryx2 with back-pressure (`RetryUntilDelivered`, no
//!   overflow) and a busy-polling subscriber, against a one-way Pipe and a `Queue`.
//! * `copy_1MiB`: 1 MiB messages copied in by the sender and out by the receiver
//!   (iceoryx2: a loaned slice filled with `write_from_slice`, the sample copied into
//!   a reused buffer; multiproc: `send_bytes`/`recv_bytes_into` through a Pipe, and
//!   `copy_1MiB/multiproc_loan`: a slot of `ipc::loan_channel`'s pool filled with
//!   `Loan::write`, the sample copied out with `Sample::read_into`).
//!
//! iceoryx2 drops samples published before a subscriber is connected, so every
//! measure waits for a go-signal from the child (over a multiproc Pipe) and then
//! exchanges a first message before the clock starts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[path = "../../../crates/multiproc/benches/common/hog.rs"]
mod hog;

use iceoryx2::prelude::*;
use multiproc::ipc::{loan_channel, Connection, LoanSender, Pipe};
use multiproc::{Process, Queue};

const MIB: usize = 1 << 20;

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn node() -> R<Node<ipc::Service>> {
    Ok(NodeBuilder::new().create::<ipc::Service>()?)
}

/// A service name no other run or measure uses.
fn name(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "multiproc-peers/{}/{what}/{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn pubsub_u64(
    node: &Node<ipc::Service>,
    name: &str,
    buffer: usize,
) -> R<iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>> {
    Ok(node
        .service_builder(&name.try_into()?)
        .publish_subscribe::<u64>()
        .subscriber_max_buffer_size(buffer)
        .enable_safe_overflow(false)
        .open_or_create()?)
}

fn pubsub_bytes(
    node: &Node<ipc::Service>,
    name: &str,
) -> R<iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>> {
    Ok(node
        .service_builder(&name.try_into()?)
        .publish_subscribe::<[u8]>()
        .subscriber_max_buffer_size(4)
        .enable_safe_overflow(false)
        .open_or_create()?)
}

fn event(
    node: &Node<ipc::Service>,
    name: &str,
) -> R<iceoryx2::service::port_factory::event::PortFactory<ipc::Service>> {
    Ok(node
        .service_builder(&name.try_into()?)
        .event()
        .open_or_create()?)
}

// ------------------------------------------------------------------ iceoryx2 children

/// Echoes `u64`s from `ping` to `pong` until `u64::MAX`; with `block`, waits on the
/// `ping` event and notifies the `pong` event instead of busy-polling.
fn iox_echo((names, block, go): ([String; 4], bool, Connection)) {
    let run = || -> R<()> {
        let node = node()?;
        let ping = pubsub_u64(&node, &names[0], 2)?;
        let pong = pubsub_u64(&node, &names[1], 2)?;
        let sub = ping.subscriber_builder().create()?;
        let publ = pong
            .publisher_builder()
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()?;
        let (ev_ping, ev_pong) = (event(&node, &names[2])?, event(&node, &names[3])?);
        let listener = ev_ping.listener_builder().create()?;
        let notifier = ev_pong.notifier_builder().create()?;
        go.send(0u64)?;
        loop {
            let v = loop {
                if let Some(s) = sub.receive()? {
                    break *s;
                }
                if block {
                    listener.blocking_wait(|_| {})?;
                } else {
                    std::hint::spin_loop();
                }
            };
            if v == u64::MAX {
                return Ok(());
            }
            publ.send_copy(v)?;
            if block {
                notifier.notify()?;
            }
        }
    };
    run().expect("iceoryx2 echo");
}

/// Publishes `n` `u64`s (waiting for room), after the go-signal.
fn iox_msg8_producer((name, n, go): (String, u64, Connection)) {
    let run = || -> R<()> {
        let node = node()?;
        let svc = pubsub_u64(&node, &name, 1024)?;
        let publ = svc
            .publisher_builder()
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()?;
        go.recv::<u64>()?;
        for i in 0..n {
            publ.send_copy(i)?;
        }
        go.recv::<u64>()?;
        Ok(())
    };
    run().expect("iceoryx2 producer");
}

/// Publishes `n` 1 MiB slices copied from one buffer, after the go-signal.
fn iox_bytes_producer((name, n, go): (String, u64, Connection)) {
    let run = || -> R<()> {
        let node = node()?;
        let svc = pubsub_bytes(&node, &name)?;
        let publ = svc
            .publisher_builder()
            .initial_max_slice_len(MIB)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()?;
        let data = vec![7u8; MIB];
        go.recv::<u64>()?;
        for _ in 0..n {
            publ.loan_slice_uninit(MIB)?
                .write_from_slice(&data)
                .send()?;
        }
        go.recv::<u64>()?;
        Ok(())
    };
    run().expect("iceoryx2 producer");
}

// ------------------------------------------------------------------ multiproc children

fn mp_echo(c: Connection) {
    while let Ok(v) = c.recv::<u64>() {
        if v == u64::MAX || c.send(v).is_err() {
            break;
        }
    }
}

fn mp_msg8_producer((c, n): (Connection, u64)) {
    for i in 0..n {
        c.send(i).unwrap();
    }
}

fn mp_queue_producer((q, n): (Queue<u64>, u64)) {
    for i in 0..n {
        q.put(i).unwrap();
    }
}

fn mp_bytes_producer((c, n): (Connection, u64)) {
    let data = vec![7u8; MIB];
    for _ in 0..n {
        c.send_bytes(&data).unwrap();
    }
}

/// Sends `n` 1 MiB payloads through a loan channel, each copied from one buffer
/// into a loaned slot (as `iox_bytes_producer` fills a loaned slice).
fn mp_loan_producer((tx, n): (LoanSender, u64)) {
    let data = vec![7u8; MIB];
    for _ in 0..n {
        let mut loan = tx.loan(MIB).unwrap();
        loan.write(0, &data).unwrap();
        loan.send().unwrap();
    }
}

// ------------------------------------------------------------------ measures

fn iox_rtt(n: u64, block: bool) -> R<Duration> {
    let node = node()?;
    let names = [name("ping"), name("pong"), name("ev_ping"), name("ev_pong")];
    let ping = pubsub_u64(&node, &names[0], 2)?;
    let pong = pubsub_u64(&node, &names[1], 2)?;
    let sub = pong.subscriber_builder().create()?;
    let publ = ping
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()?;
    let (ev_ping, ev_pong) = (event(&node, &names[2])?, event(&node, &names[3])?);
    let listener = ev_pong.listener_builder().create()?;
    let notifier = ev_ping.notifier_builder().create()?;
    let (go, theirs) = Pipe::new()?;
    let p = Process::start_with(iox_echo, (names, block, theirs))?;
    go.recv::<u64>()?;
    let trip = |v: u64| -> R<u64> {
        publ.send_copy(v)?;
        if block {
            notifier.notify()?;
        }
        loop {
            if let Some(s) = sub.receive()? {
                return Ok(*s);
            }
            if block {
                listener.blocking_wait(|_| {})?;
            } else {
                std::hint::spin_loop();
            }
        }
    };
    trip(0)?;
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(trip(i)?);
    }
    let d = t.elapsed();
    publ.send_copy(u64::MAX)?;
    if block {
        notifier.notify()?;
    }
    p.join()?;
    Ok(d)
}

fn mp_rtt(n: u64) -> R<Duration> {
    let (a, b) = Pipe::new()?;
    let p = Process::start_with(mp_echo, b)?;
    a.send(0u64)?;
    a.recv::<u64>()?;
    let t = Instant::now();
    for i in 0..n {
        a.send(i)?;
        std::hint::black_box(a.recv::<u64>()?);
    }
    let d = t.elapsed();
    a.send(u64::MAX)?;
    p.join()?;
    Ok(d)
}

fn iox_msg8(n: u64) -> R<Duration> {
    let node = node()?;
    let svc_name = name("msg8");
    let svc = pubsub_u64(&node, &svc_name, 1024)?;
    let sub = svc.subscriber_builder().create()?;
    let (go, theirs) = Pipe::new()?;
    let p = Process::start_with(iox_msg8_producer, (svc_name, n + 1, theirs))?;
    // The subscriber exists before the child publishes: the go-signal.
    go.send(0u64)?;
    let next = || -> R<u64> {
        loop {
            if let Some(s) = sub.receive()? {
                return Ok(*s);
            }
            std::hint::spin_loop();
        }
    };
    next()?;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(next()?);
    }
    let d = t.elapsed();
    go.send(0u64)?;
    p.join()?;
    Ok(d)
}

fn mp_msg8(n: u64) -> R<Duration> {
    let (rx, tx) = Pipe::one_way()?;
    let p = Process::start_with(mp_msg8_producer, (tx, n + 1))?;
    rx.recv::<u64>()?;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(rx.recv::<u64>()?);
    }
    let d = t.elapsed();
    p.join()?;
    Ok(d)
}

fn mp_queue_msg8(n: u64) -> R<Duration> {
    let q: Queue<u64> = Queue::new()?;
    let p = Process::start_with(mp_queue_producer, (q.clone(), n + 1))?;
    q.get()?;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(q.get()?);
    }
    let d = t.elapsed();
    p.join()?;
    Ok(d)
}

fn iox_copy_1mib(n: u64) -> R<Duration> {
    let node = node()?;
    let svc_name = name("bytes");
    let svc = pubsub_bytes(&node, &svc_name)?;
    let sub = svc.subscriber_builder().create()?;
    let (go, theirs) = Pipe::new()?;
    let p = Process::start_with(iox_bytes_producer, (svc_name, n + 1, theirs))?;
    go.send(0u64)?;
    let mut buf = vec![0u8; MIB];
    let next = |buf: &mut Vec<u8>| -> R<()> {
        loop {
            if let Some(s) = sub.receive()? {
                buf.copy_from_slice(s.payload());
                return Ok(());
            }
            std::hint::spin_loop();
        }
    };
    next(&mut buf)?;
    let t = Instant::now();
    for _ in 0..n {
        next(&mut buf)?;
        std::hint::black_box(&buf);
    }
    let d = t.elapsed();
    go.send(0u64)?;
    p.join()?;
    Ok(d)
}

fn mp_copy_1mib(n: u64) -> R<Duration> {
    let (rx, tx) = Pipe::one_way()?;
    let p = Process::start_with(mp_bytes_producer, (tx, n + 1))?;
    let mut buf = Vec::new();
    rx.recv_bytes_into(&mut buf)?;
    let t = Instant::now();
    for _ in 0..n {
        rx.recv_bytes_into(&mut buf)?;
        std::hint::black_box(&buf);
    }
    let d = t.elapsed();
    p.join()?;
    Ok(d)
}

/// 1 MiB payloads through `multiproc::ipc::loan_channel` (4 slots: whole samples
/// in a shared pool, as iceoryx2 queues them), copied out into a reused buffer.
fn mp_loan_copy_1mib(n: u64) -> R<Duration> {
    let (tx, rx) = loan_channel(4, MIB)?;
    let p = Process::start_with(mp_loan_producer, (tx, n + 1))?;
    let mut buf = Vec::new();
    rx.recv()?.read_into(&mut buf);
    let t = Instant::now();
    for _ in 0..n {
        rx.recv()?.read_into(&mut buf);
        std::hint::black_box(&buf);
    }
    let d = t.elapsed();
    p.join()?;
    Ok(d)
}

// ------------------------------------------------------------------ driver

struct Measure {
    name: &'static str,
    unit: &'static str,
    ops: u64,
    run: fn(u64) -> R<Duration>,
    figure: fn(u64, Duration) -> f64,
}

fn us_per_op(n: u64, d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn mmsg_per_s(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64() / 1e6
}

fn gb_per_s(n: u64, d: Duration) -> f64 {
    n as f64 * MIB as f64 / d.as_secs_f64() / 1e9
}

fn measures() -> Vec<Measure> {
    vec![
        Measure {
            name: "rtt_spin/iceoryx2",
            unit: "us",
            ops: 20_000,
            run: |n| iox_rtt(n, false),
            figure: us_per_op,
        },
        Measure {
            name: "rtt/multiproc_pipe",
            unit: "us",
            ops: 20_000,
            run: mp_rtt,
            figure: us_per_op,
        },
        Measure {
            name: "rtt_block/iceoryx2",
            unit: "us",
            ops: 5_000,
            run: |n| iox_rtt(n, true),
            figure: us_per_op,
        },
        Measure {
            name: "msg8/iceoryx2",
            unit: "Mmsg/s",
            ops: 1_000_000,
            run: iox_msg8,
            figure: mmsg_per_s,
        },
        Measure {
            name: "msg8/multiproc_pipe",
            unit: "Mmsg/s",
            ops: 2_000_000,
            run: mp_msg8,
            figure: mmsg_per_s,
        },
        Measure {
            name: "msg8/multiproc_queue",
            unit: "Mmsg/s",
            ops: 2_000_000,
            run: mp_queue_msg8,
            figure: mmsg_per_s,
        },
        Measure {
            name: "copy_1MiB/iceoryx2",
            unit: "GB/s",
            ops: 300,
            run: iox_copy_1mib,
            figure: gb_per_s,
        },
        Measure {
            name: "copy_1MiB/multiproc_pipe",
            unit: "GB/s",
            ops: 300,
            run: mp_copy_1mib,
            figure: gb_per_s,
        },
        Measure {
            name: "copy_1MiB/multiproc_loan",
            unit: "GB/s",
            ops: 300,
            run: mp_loan_copy_1mib,
            figure: gb_per_s,
        },
    ]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The median of `v` (sorted in place); the upper middle for an even count.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> R<()> {
    set_log_level(LogLevel::Error);
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .max(1);
    // `MULTIPROC_BENCH_ONLY=rtt,msg8`: only the measures whose names contain a word.
    let only = std::env::var("MULTIPROC_BENCH_ONLY").unwrap_or_default();
    let ms: Vec<Measure> = measures()
        .into_iter()
        .filter(|m| only.split(',').any(|o| m.name.contains(o)))
        .collect();
    let mut figs = vec![Vec::new(); ms.len()];
    // Over every round, both peers alike; dropped (killed and reaped) before the summary.
    let hogs = hog::Hogs::from_env();
    println!("load before: {}", load());
    for r in 0..rounds {
        let order: Vec<usize> = if r % 2 == 0 {
            (0..ms.len()).collect()
        } else {
            (0..ms.len()).rev().collect()
        };
        for i in order {
            let m = &ms[i];
            let f = (m.figure)(m.ops, (m.run)(m.ops)?);
            eprintln!("round {r} {} {f:.4} {}", m.name, m.unit);
            figs[i].push(f);
        }
    }
    println!("load after: {}", load());
    drop(hogs);
    let med: Vec<f64> = figs.iter().map(|f| median(&mut f.clone())).collect();
    println!("\n| measure | median | min | max | unit |\n|---|---:|---:|---:|---|");
    for ((m, f), md) in ms.iter().zip(&figs).zip(&med) {
        let min = f.iter().copied().fold(f64::INFINITY, f64::min);
        let max = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "| {} | {md:.4} | {min:.4} | {max:.4} | {} |",
            m.name, m.unit
        );
    }
    let at = |n: &str| ms.iter().position(|m| m.name == n);
    println!(
        "\nratios, multiproc vs iceoryx2 (> 1: multiproc is better): of the medians, and \
         paired (median over rounds of the ratio within a round)"
    );
    for (ours, peer, higher) in [
        ("rtt/multiproc_pipe", "rtt_spin/iceoryx2", false),
        ("rtt/multiproc_pipe", "rtt_block/iceoryx2", false),
        ("msg8/multiproc_pipe", "msg8/iceoryx2", true),
        ("msg8/multiproc_queue", "msg8/iceoryx2", true),
        ("copy_1MiB/multiproc_pipe", "copy_1MiB/iceoryx2", true),
        ("copy_1MiB/multiproc_loan", "copy_1MiB/iceoryx2", true),
    ] {
        if let (Some(a), Some(b)) = (at(ours), at(peer)) {
            let ratio = |x: f64, y: f64| if higher { x / y } else { y / x };
            let mut within: Vec<f64> = figs[a]
                .iter()
                .zip(&figs[b])
                .map(|(&x, &y)| ratio(x, y))
                .collect();
            println!(
                "  {ours} vs {peer}: {:.2}x (paired {:.2}x)",
                ratio(med[a], med[b]),
                median(&mut within)
            );
        }
    }
    Ok(())
}
