//! The process pool's manager: the workers, their windows of tasks, deaths,
//! timeouts and replacements (see the [module docs](super) for the design).

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared::{
    lock, Config, Done, Shared, Task, BLIND_TASK, HEAVY, MAX_INIT_FAILURES, OUT_MAX, QUEUED_WORK,
    RESTART_BACKOFF_MAX, RESTART_BACKOFF_MIN, SHARE_PAYLOAD, WINDOW_MAX, WINDOW_MIN,
};
use super::wire::{self, Fill, OutQueue, RecordReader};
use super::worker::{worker_main, WorkerArgs};
use crate::error::{Error, ErrorKind, Result};
use crate::identity::BinaryToken;
use crate::ipc::codec;
use crate::process::outcome::FailKind;
use crate::process::{ExitStatus, Process};
use crate::sys;

/// The workers and the tasks not yet sent to them.
pub(super) struct Manager {
    pub(super) workers: Vec<Worker>,
    pub(super) next_serial: u64,
    /// Tasks taken from the shared queue (or put back after a crash), not yet sent.
    pub(super) pending: VecDeque<Task>,
    pub(super) init_failures: u32,
    /// The current run of failed worker starts, if the last start failed.
    pub(super) start_trouble: Option<StartTrouble>,
    pub(super) broken: Option<String>,
    pub(super) closed: bool,
    /// The timeout deadline the manager thread sleeps until, if any.
    pub(super) sleep_deadline: Option<Instant>,
}

/// What [`Manager::round`] did.
enum Round {
    /// The pool is being terminated: nothing else was done.
    Terminate,
    /// A round of work; `replaced`: the set of workers changed.
    Ran { replaced: bool },
}

/// A run of failed worker starts (issue 9, item 10): a transient shortage (of
/// descriptors, processes, memory) must not break the pool for good.
pub(super) struct StartTrouble {
    /// When the first start of the run failed.
    since: Instant,
    /// The last start's error, for the tasks that fail because of it.
    error: Error,
    /// The pause before the next attempt (doubling, up to [`RESTART_BACKOFF_MAX`]).
    backoff: Duration,
    /// When the next attempt may be made.
    next_try: Instant,
    /// The last attempt was made during the current `step`.
    tried_this_step: bool,
}

impl Manager {
    /// Starts `cfg.workers` workers and waits until each is ready.
    pub(super) fn start(cfg: &Config) -> Result<Manager> {
        let mut workers = Vec::with_capacity(cfg.workers);
        for serial in 0..cfg.workers as u64 {
            workers.push(Worker::start(cfg, serial)?);
        }
        wait_ready(&mut workers)?;
        Ok(Manager {
            next_serial: workers.len() as u64,
            workers,
            pending: VecDeque::new(),
            init_failures: 0,
            start_trouble: None,
            broken: None,
            closed: false,
            sleep_deadline: None,
        })
    }

    /// The process ids of the current workers.
    pub(super) fn pids(&self) -> Vec<i32> {
        self.workers.iter().map(|w| w.proc.pid()).collect()
    }

    /// One non-blocking round of work from the manager thread; completions go to
    /// `done`. Returns `true` when the pool has shut down (terminated, or closed and
    /// drained: the workers are then stopped) and the thread must exit.
    pub(super) fn step_as_manager(&mut self, sh: &Shared, done: &mut Vec<Done>) -> bool {
        let Round::Ran { .. } = self.round(sh, done) else {
            self.terminate_now(sh, done);
            return true;
        };
        if self.closed
            && self.pending.is_empty()
            && self.workers.iter().all(|w| w.inflight.is_empty())
        {
            self.shutdown(sh);
            return true;
        }
        false
    }

    /// One non-blocking round of work from a thread that waits for a result or submits
    /// a task (the manager thread may be asleep in `poll`); completions go to `done`.
    /// Returns `true` if the manager thread must wake and recompute what it sleeps on:
    /// a worker was replaced, a send is incomplete, an earlier deadline started, or the
    /// pool is being terminated (which only the manager thread carries out).
    pub(super) fn step_as_driver(&mut self, sh: &Shared, done: &mut Vec<Done>) -> bool {
        let Round::Ran { replaced } = self.round(sh, done) else {
            return true;
        };
        let unsent = self.workers.iter().any(|w| !w.out.is_empty());
        let earlier = match (self.next_deadline(&sh.cfg), self.sleep_deadline) {
            (Some(d), Some(s)) => d < s,
            (Some(_), None) => true,
            (None, _) => false,
        };
        replaced || unsent || earlier
    }

    /// The work every step does: take the queued tasks, read answers, reap and replace
    /// dead workers, enforce timeouts, send, and publish the counters the drive
    /// handshake reads (`idle`, `inflight`, `short_tasks`).
    fn round(&mut self, sh: &Shared, done: &mut Vec<Done>) -> Round {
        let terminate = {
            let mut q = lock(&sh.queue);
            sh.hs.queued.store(0, Ordering::SeqCst);
            self.pending.extend(q.tasks.drain(..));
            self.closed = q.closed;
            q.terminate
        };
        if terminate {
            return Round::Terminate;
        }
        let now = Instant::now();
        if let Some(t) = &mut self.start_trouble {
            t.tried_this_step = false;
        }
        self.read_all(done);
        let replaced = self.reap(sh, done);
        self.check_timeouts(sh, now);
        if self.broken.is_some() {
            self.fail_pending(sh, done);
        } else {
            self.give_up_on_starts(sh, done);
        }
        self.dispatch(&sh.cfg);
        self.flush_all();
        let idle = self
            .workers
            .iter()
            .filter(|w| w.life == Life::Ready && w.inflight.is_empty())
            .count();
        sh.hs.idle.store(idle, Ordering::SeqCst);
        let inflight = self.workers.iter().map(|w| w.inflight.len()).sum();
        sh.hs.inflight.store(inflight, Ordering::SeqCst);
        // Workers that have not answered a task yet (avg 0) have no say.
        let mut measured = self
            .workers
            .iter()
            .filter(|w| w.life == Life::Ready && w.avg > 0.0);
        let short =
            measured.clone().next().is_some() && measured.all(|w| w.avg < BLIND_TASK.as_secs_f64());
        sh.hs.short_tasks.store(short, Ordering::SeqCst);
        Round::Ran { replaced }
    }

    /// The next moment the manager must act on its own: a task's time limit, the
    /// next attempt to start a worker, or giving up on starts.
    pub(super) fn next_deadline(&self, cfg: &Config) -> Option<Instant> {
        let task = self
            .workers
            .iter()
            .filter(|w| w.killed.is_none())
            .filter_map(|w| {
                let head = w.inflight.front()?;
                Some(w.head_since + head.t.timeout.or(cfg.timeout)?)
            })
            .min();
        let start = self.start_trouble.as_ref().and_then(|t| {
            if self.workers.len() >= cfg.workers {
                return None;
            }
            let give_up = t
                .since
                .checked_add(cfg.restart_timeout)
                .filter(|g| *g > Instant::now());
            Some(give_up.map_or(t.next_try, |g| g.min(t.next_try)))
        });
        match (task, start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// With no worker left and starts failing for longer than the restart timeout,
    /// fails the waiting tasks with the start's error. A task submitted after that
    /// first gets a start attempt of its own.
    fn give_up_on_starts(&mut self, sh: &Shared, done: &mut Vec<Done>) {
        let Some(t) = &self.start_trouble else { return };
        if !self.workers.is_empty() || t.since.elapsed() < sh.cfg.restart_timeout {
            return;
        }
        if self.pending.is_empty() && lock(&sh.queue).tasks.is_empty() {
            return;
        }
        // Unless `reap` just tried (this step), these tasks get an attempt of their own.
        if !t.tried_this_step && self.start_worker(sh) {
            return;
        }
        let Some(t) = &self.start_trouble else { return };
        let msg = format!(
            "no pool worker could be started for {:?}: {}",
            sh.cfg.restart_timeout, t.error
        );
        let err = || t.error.duplicate().with_message(msg.clone());
        for task in self.pending.drain(..) {
            done.push(Done::Fail(task.t.sink, err()));
        }
        for task in lock(&sh.queue).tasks.drain(..) {
            done.push(Done::Fail(task.t.sink, err()));
        }
    }

    /// Reads every worker's socket until it would block; completes answered tasks.
    fn read_all(&mut self, done: &mut Vec<Done>) {
        for w in &mut self.workers {
            if w.life == Life::Closed {
                continue;
            }
            loop {
                let bad = match w.reader.fill(w.sock.as_fd(), true) {
                    Ok(Fill::Data) => handle_records(w, done).err(),
                    Ok(Fill::Empty) => break,
                    // A socket error (reset by a dying worker) is its end; only
                    // what it sent can break the protocol.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::OutOfMemory
                            || wire::is_fds_dropped(&e) =>
                    {
                        Some(e.to_string())
                    }
                    Ok(Fill::Eof) | Err(_) => {
                        w.life = Life::Closed;
                        break;
                    }
                };
                if let Some(why) = bad {
                    // A worker that breaks the protocol cannot be trusted with more
                    // tasks: it is killed, and replaced when reaped.
                    let _ = w.proc.kill();
                    w.protocol_error = Some(why);
                    w.life = Life::Closed;
                    break;
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
            let status = if w.life == Life::Closed || w.pid_ready {
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
            if w.life != Life::Closed {
                while let Ok(Fill::Data) = w.reader.fill(w.sock.as_fd(), true) {
                    if let Err(why) = handle_records(w, done) {
                        w.protocol_error = Some(why);
                        break;
                    }
                }
            }
            let mut w = self.workers.swap_remove(i);
            self.on_death(&mut w, status, done);
            let needed = !(self.closed
                && self.pending.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty()));
            if needed && self.broken.is_none() && self.start_due() {
                self.start_worker(sh);
            }
        }
        let drained = self.closed
            && self.pending.is_empty()
            && self.workers.iter().all(|w| w.inflight.is_empty());
        if self.workers.len() < sh.cfg.workers
            && self.broken.is_none()
            && !drained
            && self.start_due()
        {
            // A start failed earlier (out of descriptors, say): try again once its
            // backoff has passed (the manager thread wakes for it: `next_deadline`).
            changed |= self.start_worker(sh);
        }
        if changed {
            *lock(&sh.pids) = self.workers.iter().map(|w| w.proc.pid()).collect();
        }
        changed
    }

    /// Whether a worker start may be attempted now (no failed start is backing off).
    fn start_due(&self) -> bool {
        self.start_trouble
            .as_ref()
            .is_none_or(|t| Instant::now() >= t.next_try)
    }

    fn start_worker(&mut self, sh: &Shared) -> bool {
        self.next_serial += 1;
        match Worker::start(&sh.cfg, self.next_serial) {
            Ok(nw) => {
                self.workers.push(nw);
                self.start_trouble = None;
                true
            }
            Err(error) => {
                let now = Instant::now();
                let (since, backoff) = match &self.start_trouble {
                    Some(t) => (t.since, (t.backoff * 2).min(RESTART_BACKOFF_MAX)),
                    None => (now, RESTART_BACKOFF_MIN),
                };
                self.start_trouble = Some(StartTrouble {
                    since,
                    error,
                    backoff,
                    next_try: now + backoff,
                    tried_this_step: true,
                });
                false
            }
        }
    }

    fn on_death(&mut self, w: &mut Worker, status: ExitStatus, done: &mut Vec<Done>) {
        let mut requeue: Vec<Task> = Vec::new();
        if let Some(msg) = w.init_failed.take() {
            self.init_failures += 1;
            if self.init_failures >= MAX_INIT_FAILURES {
                self.broken = Some(format!("the pool's initializer failed: {msg}"));
            }
            requeue.extend(w.inflight.drain(..));
        } else if let Some(mut head) = w.inflight.pop_front() {
            let err = if let Some(why) = w.protocol_error.take() {
                Error::new(ErrorKind::Corrupt).with_message(format!(
                    "worker pid {} sent a malformed answer ({why}); it was replaced",
                    w.proc.pid()
                ))
            } else if let Some((_, why)) = w.killed.filter(|(id, _)| *id == head.id) {
                match why {
                    Killed::Timeout(t) => Error::new(ErrorKind::Timeout).with_message(format!(
                        "the task ran longer than {t:?}; its worker (pid {}) was killed",
                        w.proc.pid()
                    )),
                    Killed::Abandoned => Error::new(ErrorKind::Cancelled).with_message(format!(
                        "the task was cancelled while it ran; its worker (pid {}) was killed",
                        w.proc.pid()
                    )),
                }
            } else {
                Error::new(ErrorKind::WorkerDied)
                    .with_status(status)
                    .with_message(format!("worker pid {}", w.proc.pid()))
            };
            if head.t.retries > 0 && err.kind() != ErrorKind::Cancelled {
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

    /// Kills the workers whose running task overran its time limit or was abandoned
    /// by its owner ([`Completion::abandoned`](crate::pool::slot::Completion::abandoned)).
    fn check_timeouts(&mut self, sh: &Shared, now: Instant) {
        for w in &mut self.workers {
            if w.killed.is_some() {
                continue;
            }
            let Some(head) = w.inflight.front() else {
                continue;
            };
            let why = match head.t.timeout.or(sh.cfg.timeout) {
                Some(t) if now.duration_since(w.head_since) >= t => Killed::Timeout(t),
                _ if head.t.sink.abandoned() => Killed::Abandoned,
                _ => continue,
            };
            w.killed = Some((head.id, why));
            let _ = w.proc.kill();
        }
    }

    /// Sends pending tasks to the workers with room, least loaded first.
    fn dispatch(&mut self, cfg: &Config) {
        while !self.pending.is_empty() {
            let mut best: Option<usize> = None;
            for (i, w) in self.workers.iter().enumerate() {
                let room = w.life == Life::Ready
                    && w.killed.is_none()
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
            if !task.t.sink.try_start() {
                // Cancelled while queued: never send it.
                continue;
            }
            let w = &mut self.workers[i];
            let fds: Vec<OwnedFd> = task
                .t
                .fds
                .iter()
                .filter_map(|fd| fd.try_clone().ok())
                .collect();
            let buf = w.out.buffer(fds);
            wire::put_task(
                buf,
                task.id,
                task.t.entry,
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
            if matches!(w.life, Life::Starting | Life::Ready) {
                let buf = w.out.buffer(Vec::new());
                wire::put_header(buf, wire::EXIT, 0, 0, 0, 0);
                w.out.recount();
                w.life = Life::Retiring;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            self.flush_all();
            if self.workers.iter().all(|w| w.proc.exit_status().is_some()) {
                break;
            }
            let fds: Vec<_> = self.workers.iter().map(|w| w.proc.as_fd()).collect();
            let _ =
                sys::pidfd::poll_readable(&fds, Some(Instant::now() + Duration::from_millis(10)));
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
            if w.life != Life::Starting {
                continue;
            }
            loop {
                match w.reader.next_record() {
                    Ok(Some(rec)) if rec.tag == wire::READY => {
                        w.life = Life::Ready;
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
        if workers.iter().all(|w| w.life != Life::Starting) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(ErrorKind::Timeout)
                .with_message("pool workers were not ready within 60 s"));
        }
        let fds: Vec<_> = workers
            .iter()
            .filter(|w| w.life == Life::Starting)
            .map(|w| w.sock.as_fd())
            .collect();
        sys::pidfd::poll_readable(
            &fds,
            Some(Instant::now() + left.min(Duration::from_millis(100))),
        )
        .map_err(Error::os)?;
    }
}

/// Why the manager killed a worker.
#[derive(Debug, Clone, Copy)]
pub(super) enum Killed {
    /// Its task ran past this limit.
    Timeout(Duration),
    /// Its task's owner gave it up ([`Completion::abandoned`](crate::pool::slot::Completion::abandoned)).
    Abandoned,
}

/// Where a worker process is in its life, as the manager sees it. It only moves
/// down this list (`Closed` may follow any other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// Started; its `READY` (its initializer ran) has not arrived.
    Starting,
    /// Ready for tasks.
    Ready,
    /// Sent `EXIT`: the pool is shutting down, and it exits once its tasks are done.
    Retiring,
    /// Its socket is closed (it exited, or broke the protocol and was killed): it
    /// gets no more tasks and waits to be reaped.
    Closed,
}

/// One worker process as the manager sees it.
pub(super) struct Worker {
    /// Shared with the manager thread's poll set, so a descriptor it polls stays open.
    pub(super) proc: Arc<Process<()>>,
    pub(super) sock: Arc<OwnedFd>,
    /// Tells this worker apart from its replacements.
    pub(super) serial: u64,
    /// The manager's last poll saw its pidfd readable (it has exited).
    pub(super) pid_ready: bool,
    pub(super) reader: RecordReader,
    pub(super) out: OutQueue,
    /// Tasks sent and not answered, oldest (the running one) first.
    pub(super) inflight: VecDeque<Task>,
    /// When the oldest in-flight task started (as far as the parent can tell).
    pub(super) head_since: Instant,
    /// Smoothed time per task, in seconds (0 until measured).
    pub(super) avg: f64,
    pub(super) sent: u64,
    pub(super) life: Life,
    /// The task the manager killed this worker for, and why.
    pub(super) killed: Option<(u64, Killed)>,
    /// The initializer's panic, if it failed.
    pub(super) init_failed: Option<String>,
    /// Why the worker was killed for breaking the wire protocol, if it was.
    pub(super) protocol_error: Option<String>,
}

impl Worker {
    pub(super) fn start(cfg: &Config, serial: u64) -> Result<Worker> {
        let start_err = |e: std::io::Error| Error::new(ErrorKind::Start).with_source(e);
        let (ours, theirs) = sys::socket::pair().map_err(start_err)?;
        for fd in [&ours, &theirs] {
            sys::socket::set_buffer_sizes(fd.as_fd(), 1 << 20);
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
            reader: RecordReader::with_max_len(cfg.max_result),
            out: OutQueue::default(),
            inflight: VecDeque::new(),
            head_since: Instant::now(),
            avg: 0.0,
            sent: 0,
            life: Life::Starting,
            killed: None,
            init_failed: None,
            protocol_error: None,
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
/// `done`. `Err` (what is wrong) on a protocol error.
fn handle_records(w: &mut Worker, done: &mut Vec<Done>) -> std::result::Result<(), String> {
    loop {
        let rec = match w.reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        match rec.tag {
            wire::READY if w.life == Life::Starting => w.life = Life::Ready,
            wire::READY => {}
            wire::INIT_FAILED => {
                w.init_failed = Some(String::from_utf8_lossy(&rec.payload).into_owned());
            }
            wire::DONE | wire::FAILED => {
                let Some(task) = w.inflight.pop_front() else {
                    return Err(format!("an answer to task {} it was not given", rec.id));
                };
                if task.id != rec.id {
                    let e = format!("an answer to task {} instead of {}", rec.id, task.id);
                    w.inflight.push_front(task);
                    return Err(e);
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
                    let kind = kind.error_kind();
                    done.push(Done::Fail(
                        task.t.sink,
                        Error::new(kind).with_message(message),
                    ));
                }
            }
            tag => return Err(format!("a record with the unknown tag {tag}")),
        }
    }
}
