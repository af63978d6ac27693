//! The loop a process-pool worker runs: read task records, run each chunk, answer.
//!
//! A worker is an ordinary [`Process`](crate::Process) started (by any start method)
//! with [`worker_main`] and a [`WorkerArgs`] that carries its end of a socket pair. It
//! runs its tasks strictly in arrival order and answers each one with its own record
//! as soon as it finishes, which is what lets the parent tell, when a worker dies,
//! which task it was running (the oldest unanswered one) and which it had not started.
//!
//! Idle, it polls its socket for [`WorkerArgs::spin`] before it blocks, so a task
//! that follows within that window costs no wake-up.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::chunk;
use super::wire::{self, Fill, RecordReader};
use crate::identity::{BinaryToken, EntryRef};
use crate::ipc::codec;
use crate::process::outcome::FailKind;

/// What a worker process is started with.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    #[serde(with = "codec::fd")]
    pub(crate) sock: OwnedFd,
    pub(crate) token: BinaryToken,
    /// The initializer, if the pool has one.
    pub(crate) init: Option<Init>,
    /// Exit after this many tasks (Python's `maxtasksperchild`).
    pub(crate) max_tasks: Option<u64>,
    /// `RLIMIT_AS` for the worker, in bytes.
    pub(crate) memory_limit: Option<u64>,
    /// CPU seconds each task may use (`RLIMIT_CPU`, re-armed before every task).
    pub(crate) cpu_limit: Option<u64>,
    /// How long to poll for the next task before blocking.
    pub(crate) spin: Duration,
}

/// A pool's initializer as each worker gets it: a chunk entry, its one-item argument
/// chunk, and the descriptors that argument owns (a `Value`, a `Lock`, a `Queue`), in
/// the order its encoding numbered them. They travel with the worker's start, as a
/// [`Builder::start_with`](crate::process::Builder::start_with) argument's do, so
/// replacement workers get them too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Init {
    pub(crate) entry: EntryRef,
    pub(crate) arg: Vec<u8>,
    pub(crate) fds: Vec<SharedFd>,
}

/// A descriptor that the pool's configuration and its workers' start share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SharedFd(
    #[serde(
        serialize_with = "codec::fd::serialize",
        deserialize_with = "shared_fd"
    )]
    pub(crate) Arc<OwnedFd>,
);

fn shared_fd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<OwnedFd>, D::Error> {
    codec::fd::deserialize(d).map(Arc::new)
}

impl Init {
    /// The initializer `entry` with its encoded argument.
    pub(crate) fn new(entry: EntryRef, arg: codec::Encoded) -> Init {
        Init {
            entry,
            arg: arg.bytes,
            fds: arg
                .fds
                .into_iter()
                .map(|fd| SharedFd(Arc::new(fd)))
                .collect(),
        }
    }

    /// Runs the initializer; the panic or error message if it failed.
    fn run(&self, token: &BinaryToken) -> Option<String> {
        let Some(run) = chunk::resolve_chunk(self.entry, token) else {
            return Some(crate::Error::new(crate::ErrorKind::BinaryMismatch).to_string());
        };
        // Its own copies: decoding takes ownership, and `self` may be a pool's
        // configuration (a forked worker shares nothing with it, but a thread would).
        let fds = match self.fds.iter().map(|f| f.0.try_clone()).collect() {
            Ok(fds) => fds,
            Err(e) => return Some(format!("cannot duplicate its argument's descriptors: {e}")),
        };
        let mut res = Vec::new();
        match crate::panic::catch(|| run(&self.arg, fds, &mut res)) {
            Err(p) => Some(format!("panicked at {p}")),
            Ok(Err((_, m))) => Some(m),
            Ok(Ok(_)) => match codec::decode::<chunk::ChunkOut<()>>(&res, Vec::new()) {
                Ok(o) => o.panics.into_iter().next().map(|(_, p)| p.to_string()),
                Err(e) => Some(e.to_string()),
            },
        }
    }
}

/// The socket this process talks to its pool on, when it is a pool worker (read by
/// the hostile-peer tests through `test_support::worker_socket`).
static WORKER_SOCKET: AtomicI32 = AtomicI32::new(-1);

/// In a process pool's worker: the socket its records go back on.
pub(crate) fn worker_socket() -> Option<RawFd> {
    Some(WORKER_SOCKET.load(Ordering::Relaxed)).filter(|&fd| fd >= 0)
}

/// The worker process's function. Returns when the parent sends `EXIT` or closes.
pub(crate) fn worker_main(args: WorkerArgs) {
    let sock = args.sock;
    let fd = sock.as_fd();
    WORKER_SOCKET.store(fd.as_raw_fd(), Ordering::Relaxed);
    // Chunk after chunk allocates and frees the same sizes: keep the memory.
    crate::sys::mm::keep_freed_heap();
    let mut out = Vec::with_capacity(64 * 1024);
    if let Some(init) = &args.init {
        let failed = init.run(&args.token);
        if let Some(msg) = failed {
            let bytes = msg.into_bytes();
            wire::put_header(&mut out, wire::INIT_FAILED, 0, 0, 0, bytes.len());
            out.extend_from_slice(&bytes);
            let _ = wire::send_all(fd, &out, &[]);
            return;
        }
    }
    if let Some(bytes) = args.memory_limit {
        let _ = crate::sys::rlimit::limit_address_space(bytes);
    }
    wire::put_header(&mut out, wire::READY, 0, 0, 0, 0);
    if wire::send_all(fd, &out, &[]).is_err() {
        return;
    }
    let mut reader = RecordReader::default();
    let mut done_tasks = 0u64;
    loop {
        let rec = match next(&mut reader, fd, args.spin) {
            Some(r) => r,
            None => return,
        };
        match rec.tag {
            wire::TASK => {}
            _ => return,
        }
        if let Some(secs) = args.cpu_limit {
            // Re-armed before every task: this task may use `secs` more seconds.
            let _ = crate::sys::rlimit::limit_cpu_from_now(secs);
        }
        out.clear();
        let at = out.len();
        wire::put_header(&mut out, wire::DONE, rec.id, 0, 0, 0);
        let entry = rec.entry();
        let result = match chunk::resolve_chunk(entry, &args.token) {
            // The entry reports a panicking `Serialize` as the item's panic; a panic
            // that still escapes it fails the task, and the worker serves on.
            Some(run) => match crate::panic::catch(|| run(&rec.payload, rec.fds, &mut out)) {
                Ok(r) => r,
                Err(p) => Err((FailKind::Result, format!("panicked at {p}"))),
            },
            None => Err((
                FailKind::Binary,
                "the worker runs a different build of the program than its parent".into(),
            )),
        };
        let fds = match result {
            Ok(fds) => {
                wire::finish_record(&mut out, at, fds.len());
                fds
            }
            Err(fail) => {
                out.clear();
                let bytes = codec::encode(&fail).map(|e| e.bytes).unwrap_or_default();
                wire::put_header(&mut out, wire::FAILED, rec.id, 0, 0, bytes.len());
                out.extend_from_slice(&bytes);
                Vec::new()
            }
        };
        if wire::send_all(fd, &out, &fds).is_err() {
            return;
        }
        done_tasks += 1;
        if args.max_tasks.is_some_and(|m| done_tasks >= m) {
            return;
        }
        if out.capacity() > 4 << 20 {
            out = Vec::with_capacity(64 * 1024);
        }
    }
}

/// The next record, polling for `spin` before blocking; `None` when the parent is gone.
fn next(
    reader: &mut RecordReader,
    fd: std::os::fd::BorrowedFd<'_>,
    spin: Duration,
) -> Option<wire::Record> {
    let mut spin_until: Option<Instant> = None;
    loop {
        match reader.next_record() {
            Ok(Some(r)) => return Some(r),
            Ok(None) => {}
            Err(_) => return None,
        }
        let block = match spin_until {
            None => {
                spin_until = Some(Instant::now() + spin);
                spin.is_zero()
            }
            Some(t) => Instant::now() >= t,
        };
        match reader.fill(fd, !block) {
            Ok(Fill::Data) => spin_until = None,
            // Under load, let whatever else is runnable here go first.
            Ok(Fill::Empty) => std::thread::yield_now(),
            Ok(Fill::Eof) | Err(_) => return None,
        }
    }
}
