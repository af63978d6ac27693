//! The process backend: persistent worker processes fed by one manager thread.
//!
//! # Design
//!
//! Submitting threads push [`RemoteTask`]s onto a shared queue and wake the manager
//! only if it sleeps (an `eventfd`). The manager owns every worker: it batches the
//! queued tasks into each worker's socket (a window of tasks in flight per worker,
//! sized so that about [`QUEUED_WORK`] of work waits there), reads answers in bulk,
//! completes the tasks' slots, enforces task timeouts, and replaces workers that die.
//! After any activity it keeps polling without blocking for a short spin, so a busy
//! pool pays no wake-ups.
//!
//! A worker answers its tasks in order, one record each, so when it dies the oldest
//! unanswered task is the one it was running: that task gets the error that names
//! how the worker died (or `Timeout`, if the manager killed it for overrunning), and
//! the tasks queued behind it go back to the front of the queue for other workers.
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

use super::task::Completion;
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
/// Consecutive worker starts whose initializer fails before the pool gives up.
const MAX_INIT_FAILURES: u32 = 3;

/// One unit of work for a worker process.
pub(crate) struct RemoteTask {
    pub(crate) entry: EntryRef,
    pub(crate) payload: Vec<u8>,
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

struct Shared {
    queue: Mutex<Queue>,
    /// Tasks pushed since the manager last looked (a hint for its sleep decision).
    queued: AtomicUsize,
    sleeping: AtomicBool,
    wake: OwnedFd,
    next_id: AtomicU64,
    pids: Mutex<Vec<i32>>,
    /// Set by the manager when it has stopped every worker and exited.
    finished: Mutex<bool>,
    finished_cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        for _ in 0..cfg.workers {
            workers.push(Worker::start(&cfg)?);
        }
        wait_ready(&mut workers)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                closed: false,
                terminate: false,
            }),
            queued: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            wake,
            next_id: AtomicU64::new(1),
            pids: Mutex::new(workers.iter().map(|w| w.proc.pid()).collect()),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
        });
        let mut manager = Manager {
            shared: Arc::clone(&shared),
            cfg,
            workers,
            pending: VecDeque::new(),
            init_failures: 0,
            broken: None,
            closed: false,
        };
        let handle = std::thread::Builder::new()
            .name("multiproc-pool".into())
            .spawn(move || manager.run())
            .map_err(|e| Error::new(ErrorKind::Start).with_source(e))?;
        Ok(ProcessPool {
            shared,
            manager: Mutex::new(Some(handle)),
        })
    }

    /// Queues a task; a closed pool fails it at once.
    pub(crate) fn submit(&self, t: RemoteTask) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut q = lock(&self.shared.queue);
            if q.closed {
                drop(q);
                t.sink.fail(closed_error());
                return;
            }
            q.tasks.push_back(Task { id, t });
        }
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.wake_manager();
    }

    /// Queues many tasks with one lock and at most one wake-up.
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
        self.wake_manager();
    }

    fn wake_manager(&self) {
        if self.shared.sleeping.load(Ordering::SeqCst) {
            let _ = rustix::io::write(&self.shared.wake, &1u64.to_ne_bytes());
        }
    }

    /// The pids of the current workers.
    pub(crate) fn pids(&self) -> Vec<i32> {
        lock(&self.shared.pids).clone()
    }

    /// No more tasks; queued ones still run.
    pub(crate) fn close(&self) {
        lock(&self.shared.queue).closed = true;
        let _ = rustix::io::write(&self.shared.wake, &1u64.to_ne_bytes());
    }

    /// Kills the workers now; unfinished tasks fail with `PoolClosed`.
    pub(crate) fn terminate(&self) {
        {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            q.terminate = true;
        }
        let _ = rustix::io::write(&self.shared.wake, &1u64.to_ne_bytes());
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

fn closed_error() -> Error {
    Error::new(ErrorKind::PoolClosed).with_message("the task was submitted after close()")
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
    proc: Process<()>,
    sock: OwnedFd,
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
    fn start(cfg: &Config) -> Result<Worker> {
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
            proc,
            sock: ours,
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

/// The manager thread's state: it alone touches the workers.
struct Manager {
    shared: Arc<Shared>,
    cfg: Config,
    workers: Vec<Worker>,
    /// Tasks taken from the shared queue (or put back after a crash), not yet sent.
    pending: VecDeque<Task>,
    init_failures: u32,
    broken: Option<String>,
    closed: bool,
}

impl Manager {
    fn run(&mut self) {
        let mut last_activity = Instant::now();
        let mut pid_ready = vec![false; self.workers.len()];
        loop {
            let now = Instant::now();
            let mut activity = false;
            let terminate = {
                let mut q = lock(&self.shared.queue);
                if !q.tasks.is_empty() {
                    activity = true;
                    self.pending.extend(q.tasks.drain(..));
                }
                self.closed = q.closed;
                q.terminate
            };
            self.shared.queued.store(0, Ordering::Relaxed);
            if terminate {
                self.terminate_now();
                break;
            }
            activity |= self.read_all();
            activity |= self.reap(&pid_ready);
            self.check_timeouts(now);
            if self.broken.is_some() {
                self.fail_pending();
            }
            activity |= self.dispatch();
            self.flush_all();
            if self.closed
                && self.pending.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty())
            {
                self.shutdown();
                break;
            }
            let now = Instant::now();
            if activity {
                last_activity = now;
            }
            if now.duration_since(last_activity) < self.cfg.spin {
                std::thread::yield_now();
                continue;
            }
            self.shared.sleeping.store(true, Ordering::SeqCst);
            if self.shared.queued.load(Ordering::SeqCst) > 0 {
                self.shared.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            pid_ready = self.sleep();
            self.shared.sleeping.store(false, Ordering::SeqCst);
        }
        *lock(&self.shared.finished) = true;
        self.shared.finished_cv.notify_all();
    }

    /// Blocks until a worker has something, a task arrives, or a timeout is due.
    /// Returns which workers' pidfds are readable.
    fn sleep(&mut self) -> Vec<bool> {
        let timeout = self.next_deadline().map(|d| {
            // A millisecond late rather than early: poll rounds down.
            let left = d.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
            rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        let mut pfds = Vec::with_capacity(1 + 2 * self.workers.len());
        pfds.push(PollFd::new(&self.shared.wake, PollFlags::IN));
        for w in &self.workers {
            let mut flags = PollFlags::empty();
            if !w.eof {
                flags |= PollFlags::IN;
            }
            if !w.out.is_empty() {
                flags |= PollFlags::OUT;
            }
            pfds.push(PollFd::new(&w.sock, flags));
            pfds.push(PollFd::new(&w.proc, PollFlags::IN));
        }
        let _ = poll(&mut pfds, timeout.as_ref());
        let ready = (0..self.workers.len())
            .map(|i| !pfds[2 + 2 * i].revents().is_empty())
            .collect();
        drop(pfds);
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.shared.wake, &mut buf);
        ready
    }

    fn next_deadline(&self) -> Option<Instant> {
        let t = self.cfg.timeout?;
        self.workers
            .iter()
            .filter(|w| !w.inflight.is_empty() && w.timed_out.is_none())
            .map(|w| w.head_since + t)
            .min()
    }

    /// Reads every worker's socket until it would block; completes answered tasks.
    fn read_all(&mut self) -> bool {
        let mut activity = false;
        for w in &mut self.workers {
            if w.eof {
                continue;
            }
            loop {
                match w.reader.fill(w.sock.as_fd(), true) {
                    Ok(Fill::Data) => {
                        activity = true;
                        if !handle_records(w) {
                            let _ = w.proc.kill();
                            w.eof = true;
                            break;
                        }
                    }
                    Ok(Fill::Empty) => break,
                    Ok(Fill::Eof) | Err(_) => {
                        activity = true;
                        w.eof = true;
                        break;
                    }
                }
            }
        }
        activity
    }

    /// Handles workers that have exited: attributes their tasks, starts replacements.
    fn reap(&mut self, pid_ready: &[bool]) -> bool {
        let mut activity = false;
        let mut i = 0;
        while i < self.workers.len() {
            let w = &mut self.workers[i];
            let check = w.eof || pid_ready.get(i).copied().unwrap_or(false);
            let status = if check { w.proc.exit_status() } else { None };
            let Some(status) = status else {
                i += 1;
                continue;
            };
            activity = true;
            // Whatever it sent before dying counts.
            if !w.eof {
                while let Ok(Fill::Data) = w.reader.fill(w.sock.as_fd(), true) {
                    if !handle_records(w) {
                        break;
                    }
                }
            }
            let mut w = self.workers.swap_remove(i);
            self.on_death(&mut w, status);
            if !(self.closed
                && self.pending.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty()))
                && self.broken.is_none()
            {
                match Worker::start(&self.cfg) {
                    Ok(nw) => {
                        self.workers.push(nw);
                    }
                    Err(e) => {
                        self.init_failures += 1;
                        if self.workers.is_empty() && self.init_failures >= MAX_INIT_FAILURES {
                            self.broken = Some(format!("could not start a pool worker: {e}"));
                        }
                    }
                }
            }
            self.publish_pids();
        }
        if self.workers.is_empty() && self.broken.is_none() && !self.closed {
            // Every start failed this round: try again next round.
            if let Ok(nw) = Worker::start(&self.cfg) {
                self.workers.push(nw);
                self.publish_pids();
            }
        }
        activity
    }

    fn on_death(&mut self, w: &mut Worker, status: ExitStatus) {
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
                    self.cfg.timeout.unwrap_or_default(),
                    w.proc.pid()
                ))
            } else {
                Error::new(ErrorKind::WorkerDied)
                    .with_status(status)
                    .with_message(format!("pid {}", w.proc.pid()))
            };
            if head.t.retries > 0 {
                head.t.retries -= 1;
                requeue.push(head);
            } else {
                head.t.sink.fail(err);
            }
            requeue.extend(w.inflight.drain(..));
        }
        for t in requeue.into_iter().rev() {
            self.pending.push_front(t);
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        let Some(t) = self.cfg.timeout else { return };
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
    fn dispatch(&mut self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let mut any = false;
        loop {
            let mut best: Option<usize> = None;
            for (i, w) in self.workers.iter().enumerate() {
                let room = w.ready
                    && !w.eof
                    && w.timed_out.is_none()
                    && w.init_failed.is_none()
                    && w.inflight.len() < w.window()
                    && w.out.pending < OUT_MAX
                    && self.cfg.max_tasks.is_none_or(|m| w.sent < m);
                if room && best.is_none_or(|b| self.workers[b].inflight.len() > w.inflight.len()) {
                    best = Some(i);
                }
            }
            let Some(i) = best else { break };
            let Some(task) = self.pending.pop_front() else {
                break;
            };
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
            buf.extend_from_slice(&task.t.payload);
            w.out.recount();
            if w.inflight.is_empty() {
                w.head_since = Instant::now();
            }
            w.inflight.push_back(task);
            w.sent += 1;
            any = true;
            if self.pending.is_empty() {
                break;
            }
        }
        any
    }

    fn flush_all(&mut self) {
        for w in &mut self.workers {
            if !w.out.is_empty() && w.out.flush(w.sock.as_fd()).is_err() {
                // The worker is gone; its death is handled when it is reaped.
                w.out = OutQueue::default();
            }
        }
    }

    fn fail_pending(&mut self) {
        let msg = self.broken.clone().unwrap_or_default();
        for t in self.pending.drain(..) {
            t.t.sink
                .fail(Error::new(ErrorKind::PoolClosed).with_message(msg.clone()));
        }
        let mut q = lock(&self.shared.queue);
        for t in q.tasks.drain(..) {
            t.t.sink
                .fail(Error::new(ErrorKind::PoolClosed).with_message(msg.clone()));
        }
    }

    fn publish_pids(&self) {
        *lock(&self.shared.pids) = self.workers.iter().map(|w| w.proc.pid()).collect();
    }

    /// Every task is done: ask the workers to exit, wait a little, then kill stragglers.
    fn shutdown(&mut self) {
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
        // Dropping a `Process` with `kill_on_drop` kills and reaps a straggler.
        self.workers.clear();
        self.publish_pids();
    }

    fn terminate_now(&mut self) {
        for w in &self.workers {
            let _ = w.proc.kill();
        }
        let err = || Error::new(ErrorKind::PoolClosed).with_message("the pool was terminated");
        for w in &mut self.workers {
            for t in w.inflight.drain(..) {
                t.t.sink.fail(err());
            }
        }
        for t in self.pending.drain(..) {
            t.t.sink.fail(err());
        }
        for t in lock(&self.shared.queue).tasks.drain(..) {
            t.t.sink.fail(err());
        }
        self.workers.clear();
        self.publish_pids();
    }
}

/// Handles every whole record a worker's reader holds. `false` on a protocol error.
fn handle_records(w: &mut Worker) -> bool {
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
                    task.t.sink.deliver_raw(rec.payload, rec.fds);
                } else {
                    let (kind, message) =
                        codec::decode::<(FailKind, String)>(&rec.payload, Vec::new())
                            .unwrap_or((FailKind::Result, "undecodable failure report".into()));
                    let kind = match kind {
                        FailKind::Argument => ErrorKind::Decode,
                        FailKind::Result => ErrorKind::Encode,
                        FailKind::Binary => ErrorKind::BinaryMismatch,
                    };
                    task.t.sink.fail(Error::new(kind).with_message(message));
                }
            }
            _ => return false,
        }
    }
}
