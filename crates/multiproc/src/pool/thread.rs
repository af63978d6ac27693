//! The thread backend: a fixed set of OS threads sharing one job queue.
//!
//! Submitters push onto a `Mutex<VecDeque>`; an idle worker polls the queue for a
//! short spin before it sleeps on a condition variable, so a steady stream of jobs
//! costs no wake-ups.
//!
//! # Wake-ups
//!
//! Every idle worker is either *spinning* or *sleeping*, and both are counted under the
//! queue's lock. A submitter that pushes `n` jobs first hands them to spinning workers
//! that nobody has counted on yet (`State::spinners`, decremented once per job it
//! covers: a spinner always looks at the queue under the lock before it leaves its
//! spin), then notifies one sleeper for each job left over. A spinner that leaves its
//! spin takes one off `spinners` if any is left; that count may then fall below the
//! number of spinners, which only costs a spare wake-up, never a missed one. (The
//! first version used one shared counter of spinners that several submitters could
//! count on for different jobs, so a second job could wait for the first to finish
//! while a worker slept; a bounded sleep hid it.) Sleepers still look at the queue
//! every [`Config::recheck`] by themselves, as a second line of defence;
//! `no_job_waits_for_a_sleeping_worker` checks the protocol with that turned off.
//!
//! A thread cannot be killed. When a job overruns the pool's task timeout, the timer
//! thread fails the job's handle with `Timeout`, retires the worker (it exits when
//! the job returns) and starts a replacement, so the pool keeps its size.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::builder::Backend;
use super::flavor::Flavor;
use super::process::chunk::{apply_each, ChunkOut};
use super::slot::{Completion, Slot};
use crate::error::{Error, ErrorKind, RemotePanic, Result};

/// A job for a worker thread: runs the work and completes its slot itself.
pub(crate) struct Job {
    pub(crate) run: Box<dyn FnOnce() + Send>,
    pub(crate) sink: Arc<dyn Completion>,
}

/// Runs once on each worker thread before its first job.
pub(crate) type Init = Arc<dyn Fn() -> std::result::Result<(), RemotePanic> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) init: Option<Init>,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) spin: Duration,
    /// How long a sleeping worker waits before it looks at the queue by itself;
    /// `None` waits for a notification only (tests of the wake-up protocol).
    pub(crate) recheck: Option<Duration>,
    /// Worker threads are named `{prefix}_{n}`, `n` counting from 0 in start order.
    pub(crate) name_prefix: Arc<str>,
}

/// The default [`Config::name_prefix`].
pub(crate) const NAME_PREFIX: &str = "multiproc-pool-worker";

struct State {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Worker threads that have not exited or been retired.
    live: usize,
    /// Workers waiting on `work` (including notified ones that have not woken yet).
    sleepers: usize,
    /// Spinning workers that no submitter has counted on yet (see the module docs).
    spinners: usize,
    broken: Option<String>,
    /// Jobs running under a timeout.
    running: Vec<Running>,
    next_key: u64,
}

struct Running {
    key: u64,
    deadline: Instant,
    sink: Arc<dyn Completion>,
    retired: Arc<AtomicBool>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    /// Signalled when `live` drops or a timed job is registered.
    change: Condvar,
    /// The queue's length, for spinners to poll without the lock.
    queued: AtomicUsize,
    cfg: Config,
    timer: Mutex<Option<JoinHandle<()>>>,
    /// Numbers this pool's worker threads (replacements included).
    names: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A pool of worker threads.
pub(crate) struct ThreadPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("workers", &self.shared.cfg.workers)
            .finish()
    }
}

impl ThreadPool {
    pub(crate) fn start(cfg: Config) -> Result<ThreadPool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                closed: false,
                live: 0,
                sleepers: 0,
                spinners: 0,
                broken: None,
                running: Vec::new(),
                next_key: 0,
            }),
            work: Condvar::new(),
            change: Condvar::new(),
            queued: AtomicUsize::new(0),
            cfg,
            timer: Mutex::new(None),
            names: AtomicUsize::new(0),
        });
        crate::panic::install_hook();
        let (tx, rx) = mpsc::channel();
        for _ in 0..shared.cfg.workers {
            spawn_worker(&shared, Some(tx.clone()))?;
        }
        drop(tx);
        for r in rx.iter().take(shared.cfg.workers) {
            if let Err(p) = r {
                let pool = ThreadPool { shared };
                pool.close();
                return Err(Error::new(ErrorKind::Start)
                    .with_message(format!("the pool's initializer failed: {p}")));
            }
        }
        if shared.cfg.timeout.is_some() {
            let s = Arc::clone(&shared);
            let h = std::thread::Builder::new()
                .name("multiproc-pool-timer".into())
                .spawn(move || timer(&s))
                .map_err(|e| Error::new(ErrorKind::Start).with_source(e))?;
            *lock(&shared.timer) = Some(h);
        }
        Ok(ThreadPool { shared })
    }

    pub(crate) fn submit_all(&self, jobs: Vec<Job>) {
        let n = jobs.len();
        let mut st = lock(&self.shared.state);
        if st.closed || st.broken.is_some() {
            let msg = st
                .broken
                .clone()
                .unwrap_or_else(|| "the task was submitted after close()".into());
            drop(st);
            for j in jobs {
                j.sink
                    .fail(Error::new(ErrorKind::PoolClosed).with_message(msg.clone()));
            }
            return;
        }
        st.jobs.extend(jobs);
        let covered = n.min(st.spinners);
        st.spinners -= covered;
        let wake = (n - covered).min(st.sleepers);
        drop(st);
        self.shared.queued.fetch_add(n, Ordering::SeqCst);
        for _ in 0..wake {
            self.shared.work.notify_one();
        }
    }

    pub(crate) fn close(&self) {
        lock(&self.shared.state).closed = true;
        self.shared.work.notify_all();
        self.shared.change.notify_all();
    }

    /// Closes and fails the queued jobs; running jobs finish in the background.
    pub(crate) fn terminate(&self) {
        let jobs: Vec<Job> = {
            let mut st = lock(&self.shared.state);
            st.closed = true;
            st.jobs.drain(..).collect()
        };
        for j in jobs {
            j.sink
                .fail(Error::new(ErrorKind::PoolClosed).with_message("the pool was terminated"));
        }
        self.shared.work.notify_all();
        self.shared.change.notify_all();
    }

    /// Closes, then waits until every queued job has run and the workers have exited
    /// (a worker retired by a timeout is not waited for).
    pub(crate) fn join(&self) {
        self.close();
        let mut st = lock(&self.shared.state);
        while st.live > 0 {
            st = self
                .shared
                .change
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(st);
        self.shared.change.notify_all();
        if let Some(h) = lock(&self.shared.timer).take() {
            let _ = h.join();
        }
    }
}

impl Flavor for ThreadPool {
    type Unit = Job;

    fn kind(&self) -> Backend {
        Backend::Threads
    }

    fn unit<F, A, R>(
        &self,
        f: F,
        items: Vec<A>,
        slot: &Arc<Slot<ChunkOut<R>>>,
        _retries: u32,
    ) -> Result<Job>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let s = Arc::clone(slot);
        Ok(Job {
            run: Box::new(move || s.deliver(Ok(apply_each(items, f)))),
            sink: Arc::clone(slot) as Arc<dyn Completion>,
        })
    }

    fn submit_all(&self, units: Vec<Job>) {
        ThreadPool::submit_all(self, units);
    }

    fn close(&self) {
        ThreadPool::close(self);
    }

    fn join(&self) {
        ThreadPool::join(self);
    }

    fn terminate(&self) {
        ThreadPool::terminate(self);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.close();
    }
}

fn spawn_worker(
    shared: &Arc<Shared>,
    ready: Option<mpsc::Sender<std::result::Result<(), RemotePanic>>>,
) -> Result<()> {
    lock(&shared.state).live += 1;
    let s = Arc::clone(shared);
    let n = s.names.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let r = std::thread::Builder::new()
        .name(format!("{}_{n}", s.cfg.name_prefix))
        .spawn(move || worker(&s, ready));
    if let Err(e) = r {
        lock(&shared.state).live -= 1;
        shared.change.notify_all();
        return Err(Error::new(ErrorKind::Start).with_source(e));
    }
    Ok(())
}

fn worker(shared: &Arc<Shared>, ready: Option<mpsc::Sender<std::result::Result<(), RemotePanic>>>) {
    if let Some(init) = &shared.cfg.init {
        let r = crate::panic::catch(|| init()).and_then(|r| r);
        if let Err(p) = &r {
            let jobs: Vec<Job> = {
                let mut st = lock(&shared.state);
                st.broken = Some(format!("the pool's initializer failed: {p}"));
                st.live -= 1;
                st.jobs.drain(..).collect()
            };
            for j in jobs {
                j.sink.fail(
                    Error::new(ErrorKind::PoolClosed)
                        .with_message(format!("the pool's initializer failed: {p}")),
                );
            }
            // Sleeping workers must see `broken` and exit.
            shared.work.notify_all();
            shared.change.notify_all();
            if let Some(tx) = ready {
                let _ = tx.send(r);
            }
            return;
        }
    }
    if let Some(tx) = ready {
        let _ = tx.send(Ok(()));
    }
    let mut done = 0u64;
    while let Some(job) = next_job(shared) {
        let timed = shared.cfg.timeout.map(|t| {
            let retired = Arc::new(AtomicBool::new(false));
            let mut st = lock(&shared.state);
            let key = st.next_key;
            st.next_key += 1;
            st.running.push(Running {
                key,
                deadline: Instant::now() + t,
                sink: Arc::clone(&job.sink),
                retired: Arc::clone(&retired),
            });
            drop(st);
            shared.change.notify_all();
            (key, retired)
        });
        (job.run)();
        if let Some((key, retired)) = timed {
            let was_retired = {
                let mut st = lock(&shared.state);
                st.running.retain(|r| r.key != key);
                retired.load(Ordering::Acquire)
            };
            if was_retired {
                // The timer replaced this worker and no longer counts it.
                return;
            }
        }
        done += 1;
        if shared.cfg.max_tasks.is_some_and(|m| done >= m) {
            let drained = {
                let st = lock(&shared.state);
                st.closed && st.jobs.is_empty()
            };
            if drained {
                break;
            }
            if spawn_worker(shared, None).is_err() {
                // No replacement (the system is out of threads): a worker past its
                // limit serves on rather than leave queued jobs with nobody to run
                // them; it tries again after its next job.
                continue;
            }
            // The replacement counts for this worker.
            lock(&shared.state).live -= 1;
            shared.change.notify_all();
            return;
        }
    }
    lock(&shared.state).live -= 1;
    shared.change.notify_all();
}

/// How long a sleeping worker waits before it looks at the queue by itself, in pools
/// built by [`Builder`](super::Builder): a second line of defence only.
pub(crate) const RECHECK: Duration = Duration::from_millis(100);

/// The next job; `None` once the pool is closed and the queue is empty.
fn next_job(shared: &Shared) -> Option<Job> {
    let spin_until = Instant::now() + shared.cfg.spin;
    let mut st = lock(&shared.state);
    loop {
        if let Some(j) = st.jobs.pop_front() {
            shared.queued.fetch_sub(1, Ordering::SeqCst);
            if !j.sink.try_start() {
                // Cancelled while queued: never run it.
                continue;
            }
            return Some(j);
        }
        if st.closed || st.broken.is_some() {
            return None;
        }
        if Instant::now() < spin_until {
            st.spinners += 1;
            drop(st);
            while Instant::now() < spin_until && shared.queued.load(Ordering::SeqCst) == 0 {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
                std::thread::yield_now();
            }
            st = lock(&shared.state);
            // Ours, or another spinner's that a submitter counted on and that has
            // not taken it off yet: either way the count stays at most the number of
            // spinners, and this worker looks at the queue next.
            st.spinners = st.spinners.saturating_sub(1);
            continue;
        }
        st.sleepers += 1;
        st = match shared.cfg.recheck {
            Some(d) => {
                shared
                    .work
                    .wait_timeout(st, d)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => shared.work.wait(st).unwrap_or_else(|e| e.into_inner()),
        };
        st.sleepers -= 1;
    }
}

/// Fails jobs that overrun the timeout and replaces their workers.
fn timer(shared: &Arc<Shared>) {
    let Some(timeout) = shared.cfg.timeout else {
        return;
    };
    let mut st = lock(&shared.state);
    loop {
        if st.closed && st.live == 0 {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        st.running.retain(|r| {
            if r.deadline <= now {
                // Under the lock, so the worker sees it when it unregisters.
                r.retired.store(true, Ordering::Release);
                expired.push(Arc::clone(&r.sink));
                false
            } else {
                true
            }
        });
        if !expired.is_empty() {
            for _ in &expired {
                st.live -= 1;
            }
            drop(st);
            for sink in expired {
                sink.fail(Error::new(ErrorKind::Timeout).with_message(format!(
                    "the task ran longer than {timeout:?}; its thread was abandoned and replaced"
                )));
                let _ = spawn_worker(shared, None);
            }
            shared.change.notify_all();
            st = lock(&shared.state);
            continue;
        }
        let next = st.running.iter().map(|r| r.deadline).min();
        st = match next {
            Some(d) => {
                shared
                    .change
                    .wait_timeout(st, d.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => shared.change.wait(st).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;
    use std::sync::mpsc;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::{Config, Job, ThreadPool};
    use crate::error::Error;
    use crate::pool::slot::Completion;

    /// A sink for jobs that complete themselves.
    struct Nothing;

    impl Completion for Nothing {
        fn fail(&self, e: Error) {
            panic!("unexpected failure: {e}");
        }
        fn deliver_raw(&self, _: Vec<u8>, _: Vec<OwnedFd>) {}
        fn try_start(&self) -> bool {
            true
        }
    }

    fn job(f: impl FnOnce() + Send + 'static) -> Job {
        Job {
            run: Box::new(f),
            sink: Arc::new(Nothing),
        }
    }

    /// Two jobs submitted one after the other, where the first cannot finish until
    /// the second runs: with two idle workers the second must never wait for the
    /// first. Sleepers never look at the queue by themselves here, so a missed
    /// wake-up is a hang, which the watchdog turns into a failure. Spins of every
    /// length put the submitter's count of spinners under strain.
    #[test]
    fn no_job_waits_for_a_sleeping_worker() {
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for spin_us in [0u64, 1, 5, 20, 50] {
                let pool = ThreadPool::start(Config {
                    workers: 2,
                    init: None,
                    max_tasks: None,
                    timeout: None,
                    spin: Duration::from_micros(spin_us),
                    recheck: None,
                    name_prefix: super::NAME_PREFIX.into(),
                })
                .unwrap();
                for round in 0..2_000u32 {
                    let both = Arc::new(Barrier::new(2));
                    let (tx, rx) = mpsc::channel();
                    for _ in 0..2 {
                        let both = Arc::clone(&both);
                        let tx = tx.clone();
                        pool.submit_all(vec![job(move || {
                            both.wait();
                            tx.send(()).unwrap();
                        })]);
                        // Vary the gap so the second submit lands in every phase
                        // of the first job's worker: waking, spinning, sleeping.
                        for _ in 0..(round % 64) * 16 {
                            std::hint::spin_loop();
                        }
                    }
                    rx.recv().unwrap();
                    rx.recv().unwrap();
                }
                pool.join();
            }
            done_tx.send(()).unwrap();
        });
        // The watchdog: a lost wake-up would leave both jobs blocked forever.
        done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a job waited for a sleeping worker: a wake-up was lost");
    }
}
