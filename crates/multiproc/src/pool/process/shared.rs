//! What the process pool's handle, its manager and the threads that drive it share:
//! the configuration, the tuning constants, the task types and the [`Shared`] state.
//!
//! [`ProcessPool`](super::ProcessPool) (the handle), [`Manager`] (the workers) and the
//! driving threads (`drive.rs`) each import from here, never from each other.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::handshake::Handshake;
use super::manager::Manager;
use super::worker::Init;
use crate::error::{Error, ErrorKind, Result};
use crate::identity::EntryRef;
use crate::pool::slot::Completion;
use crate::process::StartMethod;

/// About this much work (in time) is kept queued at each worker.
pub(super) const QUEUED_WORK: Duration = Duration::from_micros(300);
/// Tasks slower than this on average are sent one at a time per worker.
pub(super) const HEAVY: Duration = Duration::from_millis(1);
/// Tasks in flight per worker, at least and at most.
pub(super) const WINDOW_MIN: usize = 2;
pub(super) const WINDOW_MAX: usize = 256;
/// Bytes queued for one worker before the manager stops adding to its batch.
pub(super) const OUT_MAX: usize = 8 << 20;
/// Payloads at least this large are sent from the task's own buffer, not copied.
pub(super) const SHARE_PAYLOAD: usize = 16 * 1024;
/// The first pause before another attempt to start a worker after one failed; it
/// doubles with each failure, up to [`RESTART_BACKOFF_MAX`].
pub(super) const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(10);
pub(super) const RESTART_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Consecutive worker starts whose initializer fails before the pool gives up.
pub(super) const MAX_INIT_FAILURES: u32 = 3;
/// The manager thread looks around at least this often, whatever happens.
pub(super) const IDLE_POLL: Duration = Duration::from_millis(100);
/// ... and at least this often while waiters spin on the workers' answers for it.
pub(super) const BLIND_POLL: Duration = Duration::from_millis(1);
/// The manager thread leaves the answers to spinning waiters only while tasks take
/// less than this on average (well under a waiter's spin, `backoff::SPIN_WINDOW`); for longer
/// tasks the waiters park before the answer comes and the manager thread handles it,
/// without an extra wake-up per wait.
pub(super) const BLIND_TASK: Duration = Duration::from_micros(20);

/// One unit of work for a worker process.
pub(crate) struct RemoteTask {
    pub(crate) entry: EntryRef,
    /// Shared with the send queue, and kept for a retry.
    pub(crate) payload: Arc<Vec<u8>>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) sink: Arc<dyn Completion>,
    /// Reruns left after the worker dies or times out on this task.
    pub(crate) retries: u32,
    /// This task's time limit, instead of the pool's ([`Config::timeout`]).
    pub(crate) timeout: Option<Duration>,
}

/// A queued task with its id.
pub(super) struct Task {
    pub(super) id: u64,
    pub(super) t: RemoteTask,
}

/// A completion to run once the manager's mutex is released.
pub(super) enum Done {
    Value(Arc<dyn Completion>, Vec<u8>, Vec<OwnedFd>),
    Fail(Arc<dyn Completion>, Error),
}

/// Runs completions (after the manager's mutex is released).
pub(super) fn run_all(done: Vec<Done>) {
    for d in done {
        match d {
            Done::Value(sink, bytes, fds) => sink.deliver_raw(bytes, fds),
            Done::Fail(sink, e) => sink.fail(e),
        }
    }
}

/// Everything the process backend is configured with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) method: StartMethod,
    pub(crate) init: Option<Init>,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) cpu_limit: Option<u64>,
    pub(crate) spin: Duration,
    /// The largest record payload accepted from a worker.
    pub(crate) max_result: u64,
    /// How long starts may fail, with no worker left, before waiting tasks fail.
    pub(crate) restart_timeout: Duration,
}

pub(super) struct Queue {
    pub(super) tasks: VecDeque<Task>,
    pub(super) closed: bool,
    pub(super) terminate: bool,
}

/// What the pool's handle, the task slots and the manager thread share.
pub(crate) struct Shared {
    pub(super) mgr: Mutex<Manager>,
    pub(super) queue: Mutex<Queue>,
    /// Who looks at the workers while the manager thread sleeps.
    pub(super) hs: Handshake,
    pub(super) wake: OwnedFd,
    pub(super) next_id: AtomicU64,
    pub(super) pids: Mutex<Vec<i32>>,
    /// Set by the manager thread when it has stopped every worker and exited.
    pub(super) finished: Mutex<bool>,
    pub(super) finished_cv: Condvar,
    pub(super) cfg: Config,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Starts `cfg.workers` workers, waits until each is ready, and returns the state
    /// the pool's threads share (the manager thread is not started yet).
    pub(super) fn start(cfg: Config) -> Result<Arc<Shared>> {
        let wake =
            crate::sys::eventfd::new().map_err(|e| Error::new(ErrorKind::Start).with_source(e))?;
        let mgr = Manager::start(&cfg)?;
        Ok(Arc::new(Shared {
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                closed: false,
                terminate: false,
            }),
            hs: Handshake::new(mgr.workers.len()),
            wake,
            next_id: AtomicU64::new(1),
            pids: Mutex::new(mgr.pids()),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
            mgr: Mutex::new(mgr),
            cfg,
        }))
    }
}
