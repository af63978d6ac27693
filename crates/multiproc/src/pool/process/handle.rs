//! `ProcessPool`: the shared state, submission, and the manager thread.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use super::manager::{wait_ready, Manager, Worker};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::task::{Completion, Drive};
use crate::pool::worker::Init;
use crate::process::function::EntryRef;
use crate::process::{Process, StartMethod};
use crate::sys;

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
    /// Tasks pushed since a step last took the queue.
    pub(super) queued: AtomicUsize,
    /// Ready workers with nothing in flight, as of the last step.
    pub(super) idle: AtomicUsize,
    /// Tasks sent to workers and not yet answered, as of the last step.
    pub(super) inflight: AtomicUsize,
    /// Every worker's tasks take less than [`BLIND_TASK`] on average, as of the last
    /// step: a spinning waiter is then likely to see its answer while it spins.
    pub(super) short_tasks: AtomicBool,
    /// The manager thread is (about to be) blocked in `poll`.
    pub(super) sleeping: AtomicBool,
    /// Threads spinning on `drive` while they wait for a task (`Drive::spinning`):
    /// they read the workers' answers themselves, so meanwhile the manager thread
    /// does not wake for them (a third runnable thread on a 2-CPU machine took a CPU
    /// from the waiter or the worker: `submit_wait` went from ~7 to ~20 µs per task).
    pub(super) drivers: AtomicUsize,
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

    fn spinning(&self, yes: bool) {
        if yes {
            self.drivers.fetch_add(1, Ordering::SeqCst);
        } else if self.drivers.fetch_sub(1, Ordering::SeqCst) == 1
            && self.short_tasks.load(Ordering::SeqCst)
            && self.sleeping.load(Ordering::SeqCst)
            && self.inflight.load(Ordering::SeqCst) > 0
        {
            // The manager thread may be asleep without the workers' sockets in its
            // poll set: with answers still to come, it must look at them again now
            // that nobody spins.
            self.wake_manager();
        }
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
            inflight: AtomicUsize::new(0),
            short_tasks: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            drivers: AtomicUsize::new(0),
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
                start_trouble: None,
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
        // After `sleeping` was set: a waiter that stops spinning from now on sees it
        // and wakes this thread if answers are still to come (`Drive::spinning`);
        // only with short tasks (`BLIND_TASK`).
        // Meanwhile this thread leaves the workers' answers to the spinners, and
        // looks again at least every `BLIND_POLL` for a task submitted without a
        // waiter while it was not looking.
        let driven = sh.short_tasks.load(Ordering::SeqCst) && sh.drivers.load(Ordering::SeqCst) > 0;
        let idle_poll = if driven { BLIND_POLL } else { IDLE_POLL };
        let left = deadline.map_or(idle_poll, |d| {
            // A millisecond late rather than early: poll rounds down.
            (d.saturating_duration_since(Instant::now()) + Duration::from_millis(1)).min(idle_poll)
        });
        let wake_at = Instant::now() + left;
        let mut pfds = Vec::with_capacity(1 + 2 * fds.len());
        pfds.push(PollFd::new(&sh.wake, PollFlags::IN));
        for (_, sock, read, write, proc) in &fds {
            let mut flags = PollFlags::empty();
            if *read && !driven {
                flags |= PollFlags::IN;
            }
            if *write {
                flags |= PollFlags::OUT;
            }
            pfds.push(PollFd::new(&**sock, flags));
            pfds.push(PollFd::new(&**proc, PollFlags::IN));
        }
        let _ = sys::poll::until(&mut pfds, Some(wake_at));
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
