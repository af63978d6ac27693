//! `pool::Builder`: backend, worker count, start method, limits and defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::closure::ThreadPool;
use super::cpu::cpu_count;
use super::flavor::Inner;
use super::handle::Pool;
use super::process::Init;
use super::{process, thread};
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::codec;

use crate::process::StartMethod;

/// How long a process pool with no worker left keeps trying to start one before the
/// waiting tasks fail with the start's error (see [`Builder::restart_timeout`]).
pub const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a pool's workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// OS threads of this process: cheap, shared memory, but a crash (a segfault, an
    /// abort) takes the whole process down, and a timed-out task cannot be stopped.
    Threads,
    /// Worker processes: isolated, so a crash costs only the task that caused it.
    Processes,
    /// Worker hosts on other machines, through Redis Streams (feature `cluster`; set
    /// with [`Builder::redis`] or [`Builder::cluster`]).
    #[cfg(feature = "cluster")]
    Cluster,
}

/// Configures a [`Pool`] before it starts.
///
/// # Examples
///
/// ```
/// use multiproc::pool::{Backend, Pool};
/// use multiproc::StartMethod;
/// use std::time::Duration;
///
/// fn inc(x: i64) -> i64 {
///     x + 1
/// }
///
/// let pool = Pool::builder()
///     .backend(Backend::Processes)
///     .start_method(StartMethod::ForkServer)
///     .workers(2)
///     .task_timeout(Duration::from_secs(10))
///     .retries(1)
///     .build()?;
/// assert_eq!(pool.map(inc, vec![1, 2, 3])?, vec![2, 3, 4]);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "a Builder does nothing until build() is called"]
pub struct Builder {
    backend: Backend,
    method: Option<StartMethod>,
    workers: Option<usize>,
    init_thread: Option<thread::Init>,
    init_process: Option<Result<Init>>,
    max_tasks: Option<u64>,
    timeout: Option<Duration>,
    retries: u32,
    memory_limit: Option<u64>,
    cpu_limit: Option<Duration>,
    chunksize: Option<usize>,
    prefetch: Option<usize>,
    progress: bool,
    spin: Duration,
    max_result: u64,
    restart_timeout: Duration,
    name_prefix: Option<String>,
    #[cfg(feature = "cluster")]
    cluster: Option<super::cluster::Options>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("backend", &self.backend)
            .field("start_method", &self.method)
            .field("workers", &self.workers)
            .field("initializer", &self.init_thread.is_some())
            .field("max_tasks_per_child", &self.max_tasks)
            .field("task_timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("restart_timeout", &self.restart_timeout)
            .field("chunksize", &self.chunksize)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder for a process pool with [`cpu_count`] workers, the default start
    /// method, no limits, no retries and automatic chunking.
    pub fn new() -> Builder {
        Builder {
            backend: Backend::Processes,
            method: None,
            workers: None,
            init_thread: None,
            init_process: None,
            max_tasks: None,
            timeout: None,
            retries: 0,
            memory_limit: None,
            cpu_limit: None,
            chunksize: None,
            prefetch: None,
            progress: false,
            spin: crate::backoff::SPIN_WINDOW,
            max_result: crate::ipc::frame::DEFAULT_MAX_MESSAGE as u64,
            restart_timeout: DEFAULT_RESTART_TIMEOUT,
            name_prefix: None,
            #[cfg(feature = "cluster")]
            cluster: None,
        }
    }

    /// Runs the tasks on worker hosts through the Redis at `url`, with the default
    /// [cluster options](super::cluster::Options) (feature `cluster`): the same calls,
    /// handles and errors as the local backends. Only functions registered with
    /// [`task!`](crate::task) can run. The settings of the local backends (workers,
    /// start method, limits) are the hosts' own ([`Worker`](super::cluster::Worker))
    /// and are ignored here; `task_timeout` (sent with each task and enforced by the
    /// host's local pool), `retries`, `chunksize`, `prefetch` and `progress` apply.
    #[cfg(feature = "cluster")]
    pub fn redis(self, url: impl Into<String>) -> Builder {
        self.cluster(super::cluster::Options::new(url))
    }

    /// [`redis`](Self::redis) with every cluster setting (feature `cluster`).
    #[cfg(feature = "cluster")]
    pub fn cluster(mut self, opts: super::cluster::Options) -> Builder {
        self.backend = Backend::Cluster;
        self.cluster = Some(opts);
        self
    }

    /// Chooses threads or processes (default: [`Backend::Processes`]).
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = backend;
        self
    }

    /// How worker processes are started (default: [`StartMethod::default`]). Ignored
    /// by the thread backend.
    ///
    /// With [`StartMethod::Fork`] the workers are forked from this process, which
    /// runs the pool's own threads; like Python's `fork` context, this is only safe
    /// if no other thread holds a lock (the stdout lock, say) at that moment.
    pub fn start_method(mut self, method: StartMethod) -> Builder {
        self.method = Some(method);
        self
    }

    /// The number of workers (default: [`cpu_count`]). Zero makes
    /// [`build`](Self::build) fail, as Python's `Pool(0)` does.
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// Runs `f(arg)` once in every worker before its first task (Python's
    /// `initializer`/`initargs`), in replacement workers too.
    ///
    /// `arg` may hold shared objects ([`Value`](crate::Value), [`Lock`](crate::Lock),
    /// [`Queue`](crate::Queue), a pipe end…): the pool keeps their descriptors and
    /// hands every worker process its own copies, with every start method. A task's
    /// argument may hold them too; they travel with the task.
    ///
    /// If it panics while the pool is built, [`build`](Self::build) fails with the
    /// panic message; if it keeps panicking in replacement workers, the pool gives up
    /// and fails the queued tasks with [`ErrorKind::PoolClosed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    /// use std::cell::Cell;
    ///
    /// thread_local!(static BASE: Cell<u32> = const { Cell::new(0) });
    ///
    /// fn set_base(b: u32) {
    ///     BASE.with(|c| c.set(b));
    /// }
    /// fn add_base(x: u32) -> u32 {
    ///     x + BASE.with(Cell::get)
    /// }
    ///
    /// let pool = Pool::builder().workers(2).initializer(set_base, 100).build()?;
    /// assert_eq!(pool.map(add_base, vec![1, 2])?, vec![101, 102]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn initializer<F, A>(mut self, f: F, arg: A) -> Builder
    where
        F: Fn(A) + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.init_process = Some(
            codec::encode(std::slice::from_ref(&arg))
                .map(|e| Init::new(process::chunk::chunk_entry_ref::<F, A, ()>(), e)),
        );
        self.init_thread = Some(Arc::new(move || crate::panic::catch(|| f(arg.clone()))));
        self
    }

    /// Replaces a worker after it has run `n` tasks (Python's `maxtasksperchild`);
    /// a chunk of a `map` counts as one task. Zero makes [`build`](Self::build) fail.
    pub fn max_tasks_per_child(mut self, n: u64) -> Builder {
        self.max_tasks = Some(n);
        self
    }

    /// Fails a task that runs longer than `timeout` with [`ErrorKind::Timeout`].
    ///
    /// The process backend kills the worker running it and starts another; the
    /// thread backend cannot stop a thread, so it abandons the thread (the task runs
    /// on, its result is dropped) and starts another.
    pub fn task_timeout(mut self, timeout: Duration) -> Builder {
        self.timeout = Some(timeout);
        self
    }

    /// Reruns a task up to `n` times when its worker process dies or it times out
    /// (default 0). A panic is not retried: it is the task's own answer. The thread
    /// backend does not retry.
    pub fn retries(mut self, n: u32) -> Builder {
        self.retries = n;
        self
    }

    /// Limits each worker process's address space (`RLIMIT_AS`) to `bytes`; a task
    /// that allocates past it fails, and usually its worker dies (Rust aborts on an
    /// allocation failure: [`ErrorKind::WorkerDied`] with `SIGABRT`). Ignored by the
    /// thread backend.
    pub fn memory_limit(mut self, bytes: u64) -> Builder {
        self.memory_limit = Some(bytes);
        self
    }

    /// Limits the CPU time of each task in a worker process (`RLIMIT_CPU`, re-armed
    /// before every task, whole seconds rounded up): a task that spins past it is
    /// killed with `SIGXCPU` ([`ErrorKind::WorkerDied`]). Ignored by the thread backend.
    pub fn cpu_time_limit(mut self, limit: Duration) -> Builder {
        self.cpu_limit = Some(limit);
        self
    }

    /// The default number of items per task for `map`, `imap` and friends (default:
    /// automatic, see [`Pool::map`]). Zero makes [`build`](Self::build) fail.
    pub fn chunksize(mut self, n: usize) -> Builder {
        self.chunksize = Some(n);
        self
    }

    /// How many chunks `imap`/`imap_unordered` may have submitted ahead of the
    /// consumer (default: 64 per worker). Bounds memory for endless inputs. Zero
    /// makes [`build`](Self::build) fail.
    pub fn prefetch(mut self, chunks: usize) -> Builder {
        self.prefetch = Some(chunks);
        self
    }

    /// Shows a progress bar on stderr for `map`, `starmap` and `imap` over inputs of
    /// known length (requires the `progress` feature).
    #[cfg(feature = "progress")]
    pub fn progress(mut self, yes: bool) -> Builder {
        self.progress = yes;
        self
    }

    /// How long an idle worker keeps polling for work before it sleeps (default
    /// 50 µs), so that a task arriving soon after the last one costs no wake-up
    /// (about 20 µs between idle CPUs). Longer spins trade CPU for latency; zero
    /// never spins.
    pub fn spin(mut self, spin: Duration) -> Builder {
        self.spin = spin;
        self
    }

    /// The largest answer the parent accepts from a worker process for one task
    /// (bytes of its encoding; default
    /// [`DEFAULT_MAX_MESSAGE`](crate::ipc::DEFAULT_MAX_MESSAGE), 1 GiB). A worker that
    /// announces a larger one is killed and replaced, and the task fails with
    /// [`ErrorKind::Corrupt`], before the parent allocates it; the parent's memory
    /// otherwise grows only with the bytes that actually arrive. Ignored by the
    /// thread backend.
    pub fn max_result_size(mut self, bytes: usize) -> Builder {
        self.max_result = bytes as u64;
        self
    }

    /// How long a process pool keeps trying to replace its workers while none is
    /// left (default [`DEFAULT_RESTART_TIMEOUT`], 10 s).
    ///
    /// A worker that dies is replaced at once; if the replacement cannot be started
    /// (out of descriptors, processes or memory, say), the pool tries again after
    /// 10 ms, then 20, 40… up to every 500 ms, and tasks wait meanwhile. If it has
    /// no worker left and the starts have failed for `timeout`, the tasks waiting
    /// fail with the start's error ([`ErrorKind::Start`], with the OS error as its
    /// source: [`Error::raw_os_error`](crate::Error::raw_os_error)), and so does each
    /// task submitted while the next start attempt fails. The pool keeps trying: once
    /// resources return, it has workers again and later tasks run. Ignored by the
    /// thread backend.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    /// use std::time::Duration;
    ///
    /// fn double(x: u32) -> u32 {
    ///     2 * x
    /// }
    ///
    /// let pool = Pool::builder()
    ///     .workers(1)
    ///     .restart_timeout(Duration::from_secs(2))
    ///     .build()?;
    /// assert_eq!(pool.apply(double, 21)?, 42);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn restart_timeout(mut self, timeout: Duration) -> Builder {
        self.restart_timeout = timeout;
        self
    }

    /// Names the worker threads of a thread pool `{prefix}_0`, `{prefix}_1`, … in
    /// start order, replacements included (Python's `ThreadPoolExecutor(
    /// thread_name_prefix=…)`); default `multiproc-pool-worker`. The name shows in
    /// panic messages, debuggers and `top -H` (first 15 bytes). Process workers are
    /// processes, not threads: the process backend ignores it.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::{Backend, Builder};
    ///
    /// fn name(_: u8) -> String {
    ///     std::thread::current().name().unwrap().to_string()
    /// }
    ///
    /// let pool = Builder::new().backend(Backend::Threads).workers(1).thread_name_prefix("io").build()?;
    /// assert_eq!(pool.map(name, [0])?, ["io_0"]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Builder {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Starts the workers and returns the pool once every worker is ready.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if a worker cannot be started or its initializer
    /// panics (with the panic message), [`ErrorKind::Encode`] if the initializer's
    /// argument does not serialize, [`ErrorKind::InvalidInput`] for zero workers,
    /// or a zero [`max_tasks_per_child`](Self::max_tasks_per_child),
    /// [`chunksize`](Self::chunksize) or [`prefetch`](Self::prefetch).
    pub fn build(self) -> Result<Pool> {
        let workers = self.checked_workers()?;
        let inner = match self.backend {
            #[cfg(feature = "cluster")]
            Backend::Cluster => {
                let opts = self.cluster.ok_or_else(|| {
                    Error::new(ErrorKind::InvalidInput).with_message(
                        "Backend::Cluster needs Builder::redis(url) or Builder::cluster(options)",
                    )
                })?;
                // The limit travels with each task; the host's local pool enforces it.
                let opts = match self.timeout {
                    Some(t) => opts.task_timeout(t),
                    None => opts,
                };
                Inner::Cluster(super::cluster::client::ClusterPool::start(opts.resolve()?)?)
            }
            Backend::Threads => Inner::Threads(self.start_threads(workers)?),
            Backend::Processes => {
                if self.init_thread.is_some() && self.init_process.is_none() {
                    return Err(Error::new(ErrorKind::InvalidInput).with_message(
                        "a thread_initializer runs in threads only: a process pool needs \
                         Builder::initializer",
                    ));
                }
                let init = self.init_process.transpose()?;
                let cpu_limit = self
                    .cpu_limit
                    .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
                if cpu_limit == Some(0) {
                    return Err(Error::new(ErrorKind::InvalidInput)
                        .with_message("the CPU time limit must be positive"));
                }
                Inner::Processes(process::ProcessPool::start(process::Config {
                    workers,
                    method: self.method.unwrap_or_default(),
                    init,
                    max_tasks: self.max_tasks,
                    timeout: self.timeout,
                    memory_limit: self.memory_limit,
                    cpu_limit,
                    spin: self.spin,
                    max_result: self.max_result,
                    restart_timeout: self.restart_timeout,
                })?)
            }
        };
        Ok(Pool::new(
            inner,
            workers,
            self.chunksize,
            self.prefetch.unwrap_or(64 * workers),
            self.retries,
            self.progress,
            self.timeout,
        ))
    }

    /// Starts a [`ThreadPool`] with these settings: a pool of threads that takes any
    /// `Send` closure and data (see [`ThreadPool`]). The backend, the start method,
    /// the process limits, `retries` and `max_result_size` do not apply to threads
    /// and are ignored; the process [`initializer`](Self::initializer) runs as for
    /// [`Backend::Threads`], and [`thread_initializer`](Self::thread_initializer)
    /// takes any closure.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if a thread cannot be started or the initializer panics,
    /// [`ErrorKind::InvalidInput`] for the zero settings [`build`](Self::build) refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Builder;
    ///
    /// let pool = Builder::new().workers(2).chunksize(10).build_thread_pool()?;
    /// assert_eq!(pool.map(|x: u8| x / 2, 0..4)?, [0, 0, 1, 1]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn build_thread_pool(self) -> Result<ThreadPool> {
        let workers = self.checked_workers()?;
        let engine = self.start_threads(workers)?;
        Ok(ThreadPool::from_parts(
            engine,
            workers,
            self.chunksize,
            self.prefetch.unwrap_or(64 * workers),
            self.progress,
        ))
    }

    /// Runs `f` once on every worker thread before its first task, in replacement
    /// threads too: [`initializer`](Self::initializer) for a closure, which may
    /// capture anything `Send + Sync`. Threads only: [`build`](Self::build) refuses
    /// it for a process pool ([`ErrorKind::InvalidInput`]), and it replaces an
    /// `initializer` given before.
    ///
    /// A panic in it fails [`build`](Self::build) or
    /// [`build_thread_pool`](Self::build_thread_pool) with the message, as for
    /// `initializer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::ThreadPool;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let s = Arc::clone(&started);
    /// let pool = ThreadPool::builder()
    ///     .workers(3)
    ///     .thread_initializer(move || {
    ///         s.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build_thread_pool()?;
    /// assert_eq!(started.load(Ordering::SeqCst), 3);
    /// # drop(pool);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn thread_initializer<F>(mut self, f: F) -> Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.init_process = None;
        self.init_thread = Some(Arc::new(move || crate::panic::catch(&f)));
        self
    }

    /// The number of workers, once every size that must not be zero is checked.
    fn checked_workers(&self) -> Result<usize> {
        for (what, zero) in [
            ("number of workers", self.workers == Some(0)),
            ("max_tasks_per_child", self.max_tasks == Some(0)),
            ("chunksize", self.chunksize == Some(0)),
            ("prefetch", self.prefetch == Some(0)),
        ] {
            if zero {
                return Err(Error::new(ErrorKind::InvalidInput)
                    .with_message(format!("the {what} must be at least 1")));
            }
        }
        Ok(self.workers.unwrap_or_else(cpu_count))
    }

    /// Starts the thread backend's workers with these settings.
    fn start_threads(&self, workers: usize) -> Result<thread::ThreadPool> {
        thread::ThreadPool::start(thread::Config {
            workers,
            init: self.init_thread.clone(),
            max_tasks: self.max_tasks,
            timeout: self.timeout,
            spin: self.spin,
            recheck: Some(thread::RECHECK),
            name_prefix: self
                .name_prefix
                .as_deref()
                .unwrap_or(thread::NAME_PREFIX)
                .into(),
        })
    }
}
