//! The process backend: persistent worker processes, driven by whichever thread is
//! at hand.
//!
//! # Design
//!
//! The workers and their sockets live in one [`Manager`] behind a mutex. Any thread
//! may take it and *step* it (read the answers that arrived, reap dead workers,
//! enforce timeouts, send queued tasks, all without blocking):
//!
//! - a thread waiting for a result steps it while it spins, so a result travels
//!   worker → waiting thread with no hand-off and no wake-up;
//! - a submitting thread steps it when a worker is idle, so a task travels
//!   submitter → worker directly;
//! - the manager thread steps it whenever its `poll` on the sockets, the workers'
//!   pidfds and an `eventfd` says something happened, so tasks progress, callbacks
//!   run and timeouts fire when nobody waits.
//!
//! Tasks are batched: everything queued for a worker goes out in one `sendmsg`, and
//! each worker keeps a window of tasks in flight, sized so that about
//! [`QUEUED_WORK`] of work waits there.
//!
//! A worker answers its tasks in order, one record each, so when it dies the oldest
//! unanswered task is the one it was running: that task gets the error that names
//! how the worker died (or `Timeout`, if the manager killed it for overrunning), and
//! the tasks queued behind it go back to the front of the queue for other workers.
//!
//! Completions (and user callbacks) run after the manager's mutex is released.
//!
//! # The seam for other transports
//!
//! The manager only sees [`RemoteTask`]: an [`EntryRef`], encoded bytes, and a
//! [`Completion`]. A backend whose workers run elsewhere (Redis Streams, say) takes the
//! same tasks; it needs a named `EntryRef` variant instead of an address offset.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};

use super::task::{Completion, Drive};
use super::wire::{self, Fill, OutQueue, RecordReader};
use super::worker::{worker_main, WorkerArgs};
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::codec;
use crate::process::function::{BinaryToken, EntryRef, FailKind};
use crate::process::{ExitStatus, Process, StartMethod};
use crate::sys;

/// About this much work (in time) is kept queued at each worker.
const QUEUED_WORK: Duration = Duration::from_micros(300);
/// Tasks slower than this on average are sent one at a time per worker.
const HEAVY: Duration = Duration::from_millis(5);
/// Tasks in flight per worker, at least and at most.
const WINDOW_MIN: usize = 2;
const WINDOW_MAX: usize = 256;
/// Bytes queued for one worker before the manager stops adding to its batch.
const OUT_MAX: usize = 8 << 20;
/// Payloads at least this large are sent from the task's own buffer, not copied.
const SHARE_PAYLOAD: usize = 16 * 1024;
/// Consecutive worker starts whose initializer fails before the pool gives up.
const MAX_INIT_FAILURES: u32 = 3;
/// The manager thread looks around at least this often, whatever happens.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// One unit of work for a worker process.
pub(crate) struct RemoteTask {
    pub(crate) entry: EntryRef,
    /// Shared with the send queue, and kept for a retry.
    pub(crate) payload: Arc<Vec<u8>>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) sink: Arc<dyn Completion>,
    /// Reruns left after the worker dies or times out on this task.
    pub(crate) retries: u32,
}

/// A queued task with its id.
struct Task {
    id: u64,
    t: RemoteTask,
}

/// A completion to run once the manager's mutex is released.
enum Done {
    Value(Arc<dyn Completion>, Vec<u8>, Vec<OwnedFd>),
    Fail(Arc<dyn Completion>, Error),
}

fn run_all(done: Vec<Done>) {
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
    pub(crate) init: Option<(EntryRef, Vec<u8>)>,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) cpu_limit: Option<u64>,
    pub(crate) spin: Duration,
}

struct Queue {
    tasks: VecDeque<Task>,
    closed: bool,
    terminate: bool,
}

/// What the pool's handle, the task slots and the manager thread share.
pub(crate) struct Shared {
    mgr: Mutex<Manager>,
    queue: Mutex<Queue>,
    /// Tasks pushed since a step last took the queue.
    queued: AtomicUsize,
    /// Ready workers with nothing in flight, as of the last step.
    idle: AtomicUsize,
    /// The manager thread is (about to be) blocked in `poll`.
    sleeping: AtomicBool,
    wake: OwnedFd,
    next_id: AtomicU64,
    pids: Mutex<Vec<i32>>,
    /// Set by the manager thread when it has stopped every worker and exited.
    finished: Mutex<bool>,
    finished_cv: Condvar,
    cfg: Config,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn wake_manager(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    /// Steps the manager if no other thread does; repeats while tasks keep arriving.
    fn drive(&self) -> bool {
        loop {
            let mut m = match self.mgr.try_lock() {
                Ok(m) => m,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return false,
            };
            let mut done = Vec::new();
            let wake = m.step(self, &mut done, false);
            drop(m);
            if wake && self.sleeping.load(Ordering::SeqCst) {
                self.wake_manager();
            }
            run_all(done);
            if self.queued.load(Ordering::SeqCst) == 0 {
                return true;
            }
        }
    }
}

impl Drive for Shared {
    fn try_progress(&self) {
        self.drive();
    }
}

/// The parent side of a process pool.
pub(crate) struct ProcessPool {
    shared: Arc<Shared>,
    manager: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool")
            .field("pids", &*lock(&self.shared.pids))
            .finish()
    }
}

impl ProcessPool {
    /// Starts `cfg.workers` workers, waits until each is ready, starts the manager.
    pub(crate) fn start(cfg: Config) -> Result<ProcessPool> {
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| Error::new(ErrorKind::Start).with_source(e.into()))?;
        let mut workers = Vec::with_capacity(cfg.workers);
        for serial in 0..cfg.workers as u64 {
            workers.push(Worker::start(&cfg, serial)?);
        }
        wait_ready(&mut workers)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                closed: false,
                terminate: false,
            }),
            queued: AtomicUsize::new(0),
            idle: AtomicUsize::new(workers.len()),
            sleeping: AtomicBool::new(false),
            wake,
            next_id: AtomicU64::new(1),
            pids: Mutex::new(workers.iter().map(|w| w.proc.pid()).collect()),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
            mgr: Mutex::new(Manager {
                next_serial: workers.len() as u64,
                workers,
                pending: VecDeque::new(),
                init_failures: 0,
                last_start_failure: None,
                broken: None,
                closed: false,
                sleep_deadline: None,
            }),
            cfg,
        });
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("multiproc-pool".into())
            .spawn(move || manager_thread(&s))
            .map_err(|e| Error::new(ErrorKind::Start).with_source(e))?;
        Ok(ProcessPool {
            shared,
            manager: Mutex::new(Some(handle)),
        })
    }

    /// What task slots use to make progress while their owner waits.
    pub(crate) fn driver(&self) -> Arc<dyn Drive> {
        self.shared.clone()
    }

    /// Queues a task; a closed pool fails it at once.
    pub(crate) fn submit(&self, t: RemoteTask) {
        self.submit_all(vec![t]);
    }

    /// Queues many tasks with one lock; sends them at once if a worker is idle.
    pub(crate) fn submit_all(&self, ts: Vec<RemoteTask>) {
        let n = ts.len();
        {
            let mut q = lock(&self.shared.queue);
            if q.closed {
                drop(q);
                for t in ts {
                    t.sink.fail(closed_error());
                }
                return;
            }
            for t in ts {
                let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
                q.tasks.push_back(Task { id, t });
            }
        }
        self.shared.queued.fetch_add(n, Ordering::SeqCst);
        // With every worker busy, the next answer makes the manager send these.
        if self.shared.idle.load(Ordering::SeqCst) > 0 && !self.shared.drive() {
            // Another thread is stepping; make sure someone looks at the queue again.
            if self.shared.sleeping.load(Ordering::SeqCst) {
                self.shared.wake_manager();
            }
        }
    }

    /// The pids of the current workers.
    pub(crate) fn pids(&self) -> Vec<i32> {
        lock(&self.shared.pids).clone()
    }

    /// No more tasks; queued ones still run.
    pub(crate) fn close(&self) {
        lock(&self.shared.queue).closed = true;
        self.shared.wake_manager();
    }

    /// Kills the workers now; unfinished tasks fail with `PoolClosed`.
    pub(crate) fn terminate(&self) {
        {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            q.terminate = true;
        }
        self.shared.wake_manager();
        self.join();
    }

    /// Closes, then waits until every task has finished and every worker has exited.
    pub(crate) fn join(&self) {
        self.close();
        if let Some(h) = lock(&self.manager).take() {
            let _ = h.join();
        } else {
            // Another thread is joining: wait for the manager to finish.
            let mut done = lock(&self.shared.finished);
            while !*done {
                done = self
                    .shared
                    .finished_cv
                    .wait(done)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

impl Drop for ProcessPool {
    /// Closes the pool; the manager finishes the queued tasks in the background and
    /// then stops the workers.
    fn drop(&mut self) {
        self.close();
    }
}

/// What the manager thread polls for one worker: serial, socket, want-read,
/// want-write, process (its pidfd).
type PollEntry = (u64, Arc<OwnedFd>, bool, bool, Arc<Process<()>>);

/// The manager thread: steps the manager, then sleeps in `poll` until something
/// happens. Exits once the pool is closed and drained (or terminated).
fn manager_thread(sh: &Shared) {
    loop {
        let mut done = Vec::new();
        let (exit, fds, deadline) = {
            let mut m = lock(&sh.mgr);
            let exit = m.step(sh, &mut done, true);
            let deadline = m.next_deadline(&sh.cfg);
            m.sleep_deadline = deadline;
            let fds: Vec<PollEntry> = m
                .workers
                .iter()
                .map(|w| {
                    (
                        w.serial,
                        Arc::clone(&w.sock),
                        !w.eof,
                        !w.out.is_empty(),
                        Arc::clone(&w.proc),
                    )
                })
                .collect();
            if !exit {
                sh.sleeping.store(true, Ordering::SeqCst);
            }
            (exit, fds, deadline)
        };
        run_all(done);
        if exit {
            break;
        }
        if sh.queued.load(Ordering::SeqCst) > 0 {
            sh.sleeping.store(false, Ordering::SeqCst);
            continue;
        }
        let left = deadline.map_or(IDLE_POLL, |d| {
            // A millisecond late rather than early: poll rounds down.
            (d.saturating_duration_since(Instant::now()) + Duration::from_millis(1)).min(IDLE_POLL)
        });
        let ts = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut pfds = Vec::with_capacity(1 + 2 * fds.len());
        pfds.push(PollFd::new(&sh.wake, PollFlags::IN));
        for (_, sock, read, write, proc) in &fds {
            let mut flags = PollFlags::empty();
            if *read {
                flags |= PollFlags::IN;
            }
            if *write {
                flags |= PollFlags::OUT;
            }
            pfds.push(PollFd::new(&**sock, flags));
            pfds.push(PollFd::new(&**proc, PollFlags::IN));
        }
        let _ = poll(&mut pfds, Some(&ts));
        let exited: Vec<u64> = fds
            .iter()
            .enumerate()
            .filter(|(i, _)| !pfds[2 + 2 * i].revents().is_empty())
            .map(|(_, f)| f.0)
            .collect();
        drop(pfds);
        sh.sleeping.store(false, Ordering::SeqCst);
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&sh.wake, &mut buf);
        if !exited.is_empty() {
            let mut m = lock(&sh.mgr);
            for w in &mut m.workers {
                if exited.contains(&w.serial) {
                    w.pid_ready = true;
                }
            }
        }
    }
    *lock(&sh.finished) = true;
    sh.finished_cv.notify_all();
}

fn closed_error() -> Error {
    Error::new(ErrorKind::PoolClosed).with_message("the task was submitted after close()")
}

/// The workers and the tasks not yet sent to them.
struct Manager {
    workers: Vec<Worker>,
    next_serial: u64,
    /// Tasks taken from the shared queue (or put back after a crash), not yet sent.
    pending: VecDeque<Task>,
    init_failures: u32,
    /// When a worker last failed to start, to pace the next attempt.
    last_start_failure: Option<Instant>,
    broken: Option<String>,
    closed: bool,
    /// The timeout deadline the manager thread sleeps until, if any.
    sleep_deadline: Option<Instant>,
}

impl Manager {
    /// One non-blocking round of work. Completions go to `done`.
    ///
    /// From the manager thread (`manager`): returns `true` when the pool has shut
    /// down. From another thread: returns `true` if the manager thread must
    /// recompute what it sleeps on (a worker was replaced, a send is incomplete, a
    /// timeout clock started).
    fn step(&mut self, sh: &Shared, done: &mut Vec<Done>, manager: bool) -> bool {
        let terminate = {
            let mut q = lock(&sh.queue);
            sh.queued.store(0, Ordering::SeqCst);
            self.pending.extend(q.tasks.drain(..));
            self.closed = q.closed;
            q.terminate
        };
        if terminate {
            if manager {
                self.terminate_now(sh, done);
                return true;
            }
            return true;
        }
        let now = Instant::now();
        self.read_all(done);
        let replaced = self.reap(sh, done);
        self.check_timeouts(sh, now);
        if self.broken.is_some() {
            self.fail_pending(sh, done);
        }
        self.dispatch(&sh.cfg);
        self.flush_all();
        let idle = self
            .workers
            .iter()
            .filter(|w| w.ready && !w.eof && w.inflight.is_empty())
            .count();
        sh.idle.store(idle, Ordering::SeqCst);
        if manager {
            if self.closed
                && self.pending.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty())
            {
                self.shutdown(sh);
                return true;
            }
            return false;
        }
        let unsent = self.workers.iter().any(|w| !w.out.is_empty());
        let earlier = match (self.next_deadline(&sh.cfg), self.sleep_deadline) {
            (Some(d), Some(s)) => d < s,
            (Some(_), None) => true,
            (None, _) => false,
        };
        replaced || unsent || earlier
    }

    fn next_deadline(&self, cfg: &Config) -> Option<Instant> {
        let t = cfg.timeout?;
        self.workers
            .iter()
            .filter(|w| !w.inflight.is_empty() && w.timed_out.is_none())
            .map(|w| w.head_since + t)
            .min()
    }

    /// Reads every worker's socket until it would block; completes answered tasks.
    fn read_all(&mut self, done: &mut Vec<Done>) {
        for w in &mut self.workers {
            if w.eof {
                continue;
            }
            loop {
                match w.reader.fill(w.sock.as_fd(), true) {
                    Ok(Fill::Data) => {
                        if !handle_records(w, done) {
                            let _ = w.proc.kill();
                            w.eof = true;
                            break;
                        }
                    }
                    Ok(Fill::Empty) => break,
                    Ok(Fill::Eof) | Err(_) => {
                        w.eof = true;
                        break;
                    }
                }
            }
        }
    }

    /// Handles workers that have exited: attributes their tasks, starts replacements.
    /// Returns whether the set of workers changed.
    fn reap(&mut self, sh: &Shared, done: &mut Vec<Done>) -> bool {
        let mut changed = false;
        let mut i = 0;
        while i < self.workers.len() {
            let w = &mut self.workers[i];
            let status = if w.eof || w.pid_ready {
                w.proc.exit_status()
            } else {
                None
            };
            let Some(status) = status else {
                i += 1;
                continue;
            };
            changed = true;
            // Whatever it sent before dying counts.
            if !w.eof {
                while let Ok(Fill::Data) = w.reader.fill(w.sock.as_fd(), true) {
                    if !handle_records(w, done) {
                        break;
                    }
                }
            }
            let mut w = self.workers.swap_remove(i);
            self.on_death(&mut w, status, &sh.cfg, done);
            let needed = !(self.closed
                && self.pending.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty()));
            if needed && self.broken.is_none() {
                self.start_worker(sh);
            }
        }
        let drained = self.closed
            && self.pending.is_empty()
            && self.workers.iter().all(|w| w.inflight.is_empty());
        if self.workers.len() < sh.cfg.workers
            && self.broken.is_none()
            && !drained
            && self
                .last_start_failure
                .is_none_or(|t| t.elapsed() >= IDLE_POLL)
        {
            // A start failed earlier (out of processes, say): try again, at most every
            // IDLE_POLL (the manager thread looks at least that often).
            changed |= self.start_worker(sh);
        }
        if changed {
            *lock(&sh.pids) = self.workers.iter().map(|w| w.proc.pid()).collect();
        }
        changed
    }

    fn start_worker(&mut self, sh: &Shared) -> bool {
        self.next_serial += 1;
        match Worker::start(&sh.cfg, self.next_serial) {
            Ok(nw) => {
                self.workers.push(nw);
                self.last_start_failure = None;
                true
            }
            Err(e) => {
                self.last_start_failure = Some(Instant::now());
                self.init_failures += 1;
                if self.workers.is_empty() && self.init_failures >= MAX_INIT_FAILURES {
                    self.broken = Some(format!("could not start a pool worker: {e}"));
                }
                false
            }
        }
    }

    fn on_death(&mut self, w: &mut Worker, status: ExitStatus, cfg: &Config, done: &mut Vec<Done>) {
        let mut requeue: Vec<Task> = Vec::new();
        if let Some(msg) = w.init_failed.take() {
            self.init_failures += 1;
            if self.init_failures >= MAX_INIT_FAILURES {
                self.broken = Some(format!("the pool's initializer failed: {msg}"));
            }
            requeue.extend(w.inflight.drain(..));
        } else if let Some(mut head) = w.inflight.pop_front() {
            let err = if w.timed_out == Some(head.id) {
                Error::new(ErrorKind::Timeout).with_message(format!(
                    "the task ran longer than {:?}; its worker (pid {}) was killed",
                    cfg.timeout.unwrap_or_default(),
                    w.proc.pid()
                ))
            } else {
                Error::new(ErrorKind::WorkerDied)
                    .with_status(status)
                    .with_message(format!("worker pid {}", w.proc.pid()))
            };
            if head.t.retries > 0 {
                head.t.retries -= 1;
                requeue.push(head);
            } else {
                done.push(Done::Fail(head.t.sink, err));
            }
            requeue.extend(w.inflight.drain(..));
        }
        for t in requeue.into_iter().rev() {
            self.pending.push_front(t);
        }
    }

    fn check_timeouts(&mut self, sh: &Shared, now: Instant) {
        let Some(t) = sh.cfg.timeout else { return };
        for w in &mut self.workers {
            if w.timed_out.is_some() {
                continue;
            }
            if let Some(head) = w.inflight.front() {
                if now.duration_since(w.head_since) >= t {
                    w.timed_out = Some(head.id);
                    let _ = w.proc.kill();
                }
            }
        }
    }

    /// Sends pending tasks to the workers with room, least loaded first.
    fn dispatch(&mut self, cfg: &Config) {
        while !self.pending.is_empty() {
            let mut best: Option<usize> = None;
            for (i, w) in self.workers.iter().enumerate() {
                let room = w.ready
                    && !w.eof
                    && w.timed_out.is_none()
                    && w.init_failed.is_none()
                    && w.inflight.len() < w.window()
                    && w.out.pending < OUT_MAX
                    && cfg.max_tasks.is_none_or(|m| w.sent < m);
                if room && best.is_none_or(|b| self.workers[b].inflight.len() > w.inflight.len()) {
                    best = Some(i);
                }
            }
            let Some(i) = best else { break };
            let task = self.pending.pop_front().expect("not empty");
            let w = &mut self.workers[i];
            let fds: Vec<OwnedFd> = task
                .t
                .fds
                .iter()
                .filter_map(|fd| fd.try_clone().ok())
                .collect();
            let buf = w.out.buffer(fds);
            let EntryRef::Offset(off) = task.t.entry;
            wire::put_header(
                buf,
                wire::TASK,
                task.id,
                off as i64,
                task.t.fds.len(),
                task.t.payload.len(),
            );
            if task.t.payload.len() >= SHARE_PAYLOAD {
                w.out.push_shared(Arc::clone(&task.t.payload));
            } else {
                buf.extend_from_slice(&task.t.payload);
            }
            w.out.recount();
            if w.inflight.is_empty() {
                w.head_since = Instant::now();
            }
            w.inflight.push_back(task);
            w.sent += 1;
        }
    }

    fn flush_all(&mut self) {
        for w in &mut self.workers {
            if !w.out.is_empty() && w.out.flush(w.sock.as_fd()).is_err() {
                // The worker is gone; its death is handled when it is reaped.
                w.out = OutQueue::default();
            }
        }
    }

    fn fail_pending(&mut self, sh: &Shared, done: &mut Vec<Done>) {
        let msg = self.broken.clone().unwrap_or_default();
        let err = || Error::new(ErrorKind::PoolClosed).with_message(msg.clone());
        for t in self.pending.drain(..) {
            done.push(Done::Fail(t.t.sink, err()));
        }
        for t in lock(&sh.queue).tasks.drain(..) {
            done.push(Done::Fail(t.t.sink, err()));
        }
    }

    /// Every task is done: ask the workers to exit, wait a little, then kill stragglers.
    fn shutdown(&mut self, sh: &Shared) {
        for w in &mut self.workers {
            if !w.exit_sent {
                let buf = w.out.buffer(Vec::new());
                wire::put_header(buf, wire::EXIT, 0, 0, 0, 0);
                w.out.recount();
                w.exit_sent = true;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            self.flush_all();
            if self.workers.iter().all(|w| w.proc.exit_status().is_some()) {
                break;
            }
            let fds: Vec<_> = self.workers.iter().map(|w| w.proc.as_fd()).collect();
            let _ = sys::pidfd::poll_readable(&fds, Some(Duration::from_millis(10)));
        }
        // Dropping the last handle of a `Process` with `kill_on_drop` kills and reaps
        // a straggler.
        self.workers.clear();
        lock(&sh.pids).clear();
    }

    fn terminate_now(&mut self, sh: &Shared, done: &mut Vec<Done>) {
        for w in &self.workers {
            let _ = w.proc.kill();
        }
        let err = || Error::new(ErrorKind::PoolClosed).with_message("the pool was terminated");
        for w in &mut self.workers {
            for t in w.inflight.drain(..) {
                done.push(Done::Fail(t.t.sink, err()));
            }
        }
        for t in self.pending.drain(..) {
            done.push(Done::Fail(t.t.sink, err()));
        }
        for t in lock(&sh.queue).tasks.drain(..) {
            done.push(Done::Fail(t.t.sink, err()));
        }
        // Dropping the last handle of a `Process` with `kill_on_drop` reaps it.
        self.workers.clear();
        lock(&sh.pids).clear();
    }
}

/// Waits for `READY` from every worker of a new pool.
fn wait_ready(workers: &mut [Worker]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for w in workers.iter_mut() {
            if w.ready {
                continue;
            }
            loop {
                match w.reader.next_record() {
                    Ok(Some(rec)) if rec.tag == wire::READY => {
                        w.ready = true;
                        break;
                    }
                    Ok(Some(rec)) if rec.tag == wire::INIT_FAILED => {
                        return Err(Error::new(ErrorKind::Start).with_message(format!(
                            "the pool's initializer failed: {}",
                            String::from_utf8_lossy(&rec.payload)
                        )));
                    }
                    Ok(Some(_)) | Err(_) => {
                        return Err(Error::new(ErrorKind::Start)
                            .with_message("a pool worker sent an unexpected message"))
                    }
                    Ok(None) => {}
                }
                match w.reader.fill(w.sock.as_fd(), true) {
                    Ok(Fill::Data) => continue,
                    Ok(Fill::Empty) => break,
                    Ok(Fill::Eof) | Err(_) => {
                        let status = w.proc.exit_status();
                        let mut e = Error::new(ErrorKind::Start)
                            .with_message("a pool worker exited before it was ready");
                        if let Some(s) = status {
                            e = e.with_status(s);
                        }
                        return Err(e);
                    }
                }
            }
        }
        if workers.iter().all(|w| w.ready) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(ErrorKind::Timeout)
                .with_message("pool workers were not ready within 60 s"));
        }
        let fds: Vec<_> = workers
            .iter()
            .filter(|w| !w.ready)
            .map(|w| w.sock.as_fd())
            .collect();
        sys::pidfd::poll_readable(&fds, Some(left.min(Duration::from_millis(100))))
            .map_err(Error::os)?;
    }
}

/// One worker process as the manager sees it.
struct Worker {
    /// Shared with the manager thread's poll set, so a descriptor it polls stays open.
    proc: Arc<Process<()>>,
    sock: Arc<OwnedFd>,
    /// Tells this worker apart from its replacements.
    serial: u64,
    /// The manager's last poll saw its pidfd readable (it has exited).
    pid_ready: bool,
    reader: RecordReader,
    out: OutQueue,
    /// Tasks sent and not answered, oldest (the running one) first.
    inflight: VecDeque<Task>,
    /// When the oldest in-flight task started (as far as the parent can tell).
    head_since: Instant,
    /// Smoothed time per task, in seconds (0 until measured).
    avg: f64,
    sent: u64,
    ready: bool,
    eof: bool,
    exit_sent: bool,
    /// The task the manager killed this worker for overrunning its timeout.
    timed_out: Option<u64>,
    /// The initializer's panic, if it failed.
    init_failed: Option<String>,
}

impl Worker {
    fn start(cfg: &Config, serial: u64) -> Result<Worker> {
        let start_err = |e: std::io::Error| Error::new(ErrorKind::Start).with_source(e);
        let (ours, theirs) = sys::socket::pair().map_err(start_err)?;
        for fd in [&ours, &theirs] {
            let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, 1 << 20);
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(fd, 1 << 20);
        }
        let args = WorkerArgs {
            sock: theirs,
            token: BinaryToken::current(),
            init: cfg.init.clone(),
            max_tasks: cfg.max_tasks,
            memory_limit: cfg.memory_limit,
            cpu_limit: cfg.cpu_limit,
            spin: cfg.spin,
        };
        let proc = Process::<()>::builder()
            .name("multiproc-pool")
            .start_method(cfg.method)
            // The pool's manager thread holds no lock a forked child could need.
            .allow_threads(true)
            .kill_on_drop(true)
            .start_with(worker_main, args)?;
        Ok(Worker {
            proc: Arc::new(proc),
            sock: Arc::new(ours),
            serial,
            pid_ready: false,
            reader: RecordReader::default(),
            out: OutQueue::default(),
            inflight: VecDeque::new(),
            head_since: Instant::now(),
            avg: 0.0,
            sent: 0,
            ready: false,
            eof: false,
            exit_sent: false,
            timed_out: None,
            init_failed: None,
        })
    }

    /// How many tasks may be in flight at this worker: one while the cost of a task
    /// is unknown or large (a queued task could wait behind a long one while another
    /// worker idles), else enough for about [`QUEUED_WORK`].
    fn window(&self) -> usize {
        if self.avg <= 0.0 || self.avg > HEAVY.as_secs_f64() {
            return 1;
        }
        let w = QUEUED_WORK.as_secs_f64() / self.avg;
        (w as usize).clamp(WINDOW_MIN, WINDOW_MAX)
    }
}

/// Handles every whole record a worker's reader holds, queueing the completions in
/// `done`. `false` on a protocol error.
fn handle_records(w: &mut Worker, done: &mut Vec<Done>) -> bool {
    loop {
        let rec = match w.reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => return true,
            Err(_) => return false,
        };
        match rec.tag {
            wire::READY => w.ready = true,
            wire::INIT_FAILED => {
                w.init_failed = Some(String::from_utf8_lossy(&rec.payload).into_owned());
            }
            wire::DONE | wire::FAILED => {
                let Some(task) = w.inflight.pop_front() else {
                    return false;
                };
                if task.id != rec.id {
                    w.inflight.push_front(task);
                    return false;
                }
                let now = Instant::now();
                let took = now.duration_since(w.head_since).as_secs_f64();
                w.avg = if w.avg <= 0.0 {
                    took
                } else {
                    0.8 * w.avg + 0.2 * took
                };
                w.head_since = now;
                if rec.tag == wire::DONE {
                    done.push(Done::Value(task.t.sink, rec.payload, rec.fds));
                } else {
                    let (kind, message) =
                        codec::decode::<(FailKind, String)>(&rec.payload, Vec::new())
                            .unwrap_or((FailKind::Result, "undecodable failure report".into()));
                    let kind = match kind {
                        FailKind::Argument => ErrorKind::Decode,
                        FailKind::Result => ErrorKind::Encode,
                        FailKind::Binary => ErrorKind::BinaryMismatch,
                    };
                    done.push(Done::Fail(
                        task.t.sink,
                        Error::new(kind).with_message(message),
                    ));
                }
            }
            _ => return false,
        }
    }
}
