//! `Pool`: submit, apply, map, starmap, imap; close, join, terminate.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::builder::{Backend, Builder};
use super::cost::{self, Costs};
use super::feed;
use super::flavor::{dispatch, Flavor, Inner};
use super::imap::{Imap, ImapUnordered};
use super::map_handle::MapHandle;
use super::process::chunk::ChunkOut;
use super::progress::Progress;
use super::slot::{Callback, Completion, Slot};
use super::task::TaskHandle;
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::codec;

/// A pool of worker threads or processes that runs functions over many inputs
/// (Python's `multiprocessing.Pool` and `concurrent.futures` executors in one).
///
/// The function is a `fn` item or a closure that captures nothing (as for
/// [`Process`](crate::Process)), so the same call works with either backend;
/// arguments and results are serde types. With processes they are serialized; with
/// threads they are moved.
///
/// # Crashes
///
/// | the task… | its result | the pool |
/// |---|---|---|
/// | panics, or returns a value whose `Serialize` panics | [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) with the message (only that item of a chunk) | unaffected |
/// | kills its worker process (segfault, abort, `exit`, `SIGKILL`, out of memory) | [`ErrorKind::WorkerDied`](crate::ErrorKind::WorkerDied), naming the signal or exit code | the worker is replaced; tasks queued behind it run elsewhere |
/// | runs past [`task_timeout`](Builder::task_timeout) | [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) | the worker is killed and replaced (a thread is abandoned) |
///
/// Every task gets exactly one result, and nothing waits forever on a dead worker.
/// [`retries`](Builder::retries) reruns tasks whose worker died.
///
/// # Drop
///
/// Dropping a pool closes it: tasks already submitted still run and their handles
/// still get results, in the background; then the workers exit. Call
/// [`join`](Self::join) to wait for that, or [`terminate`](Self::terminate) to stop
/// at once.
///
/// # Examples
///
/// ```
/// use multiproc::pool::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::processes(2)?; // or Pool::threads(2)
/// assert_eq!(pool.map(square, 1..=4)?, vec![1, 4, 9, 16]);
/// let h = pool.submit(square, 12);
/// assert_eq!(h.join()?, 144);
/// pool.join();
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Pool {
    inner: Inner,
    workers: usize,
    chunksize: Option<usize>,
    prefetch: usize,
    retries: u32,
    progress: bool,
    /// The task timeout: an automatic chunk grows to at most a fraction of it.
    timeout: Option<Duration>,
    /// What one item of each function mapped here cost (the process backend's
    /// automatic chunk sizes follow it).
    costs: Costs,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("backend", &self.backend())
            .field("workers", &self.workers)
            .finish()
    }
}

/// The automatic chunk size for `len` items on `workers` workers: about
/// `max(64, 8 × workers)` chunks, so that heavy tasks balance (a short input gets one
/// item per task) and tiny ones amortize the per-task cost.
pub(crate) fn auto_chunksize(len: usize, workers: usize) -> usize {
    let chunks = len.min(64.max(8 * workers)).max(1);
    len.div_ceil(chunks).max(1)
}

impl Pool {
    pub(crate) fn new(
        inner: Inner,
        workers: usize,
        chunksize: Option<usize>,
        prefetch: usize,
        retries: u32,
        progress: bool,
        timeout: Option<Duration>,
    ) -> Pool {
        Pool {
            inner,
            workers,
            chunksize,
            prefetch,
            retries,
            progress,
            timeout,
            costs: Costs::default(),
        }
    }

    /// A pool of `n` worker threads.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`](crate::ErrorKind::Start) if a thread cannot be started,
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) if `n` is zero.
    pub fn threads(n: usize) -> Result<Pool> {
        Builder::new().backend(Backend::Threads).workers(n).build()
    }

    /// A pool of `n` worker processes started with the default start method.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`](crate::ErrorKind::Start) if a worker cannot be started,
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) if `n` is zero.
    pub fn processes(n: usize) -> Result<Pool> {
        Builder::new()
            .backend(Backend::Processes)
            .workers(n)
            .build()
    }

    /// A [`Builder`] for every other setting.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The backend the workers run on.
    pub fn backend(&self) -> Backend {
        dispatch!(&self.inner, b => Flavor::kind(b))
    }

    /// The number of workers (for a cluster: the slots of the live hosts, at least 1).
    pub fn workers(&self) -> usize {
        dispatch!(&self.inner, b => Flavor::workers(b, self.workers))
    }

    /// A cluster pool's counters and live hosts; `None` for the local backends.
    #[cfg(feature = "cluster")]
    pub fn cluster_stats(&self) -> Option<super::cluster::ClusterStats> {
        match &self.inner {
            Inner::Cluster(c) => Some(c.stats()),
            _ => None,
        }
    }

    /// The process ids of the current worker processes (empty for threads). A worker
    /// that dies is replaced, so the list changes.
    pub fn worker_pids(&self) -> Vec<i32> {
        dispatch!(&self.inner, b => Flavor::pids(b))
    }

    /// The thread backend's engine, if that is this pool's backend.
    pub(crate) fn thread_engine(&self) -> Option<&super::thread::ThreadPool> {
        match &self.inner {
            Inner::Threads(t) => Some(t),
            _ => None,
        }
    }

    /// What a waiter on one of this pool's slots can step to make progress itself.
    pub(crate) fn driver(&self) -> Option<Arc<dyn super::slot::Drive>> {
        dispatch!(&self.inner, b => Flavor::driver(b))
    }

    /// Makes the unit of work for `items` on backend `b`, and its slot (failed at
    /// once, with no unit, if the unit cannot be made).
    fn unit<B, F, A, R>(
        &self,
        b: &B,
        f: F,
        items: Vec<A>,
        callback: Option<Callback<ChunkOut<R>>>,
    ) -> (Arc<Slot<ChunkOut<R>>>, Option<B::Unit>)
    where
        B: Flavor,
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let slot = Slot::new(codec::decode::<ChunkOut<R>>, callback, b.driver());
        match b.unit(f, items, &slot, self.retries) {
            Ok(u) => (slot, Some(u)),
            Err(e) => {
                slot.fail(e);
                (slot, None)
            }
        }
    }

    /// Submits `f(arg)` as a unit of its own; returns its slot.
    fn submit_one<F, A, R>(
        &self,
        f: F,
        arg: A,
        callback: Option<Callback<ChunkOut<R>>>,
    ) -> Arc<Slot<ChunkOut<R>>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        dispatch!(&self.inner, b => {
            let (slot, unit) = self.unit(b, f, vec![arg], callback);
            if let Some(u) = unit {
                b.submit_all(vec![u]);
            }
            slot
        })
    }

    /// Submits chunks with one lock and one wake-up; returns their slots.
    pub(crate) fn submit_chunks<F, A, R>(
        &self,
        f: F,
        chunks: Vec<Vec<A>>,
    ) -> Vec<(Arc<Slot<ChunkOut<R>>>, usize)>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        dispatch!(&self.inner, b => self.submit_chunks_on(b, f, chunks))
    }

    fn submit_chunks_on<B, F, A, R>(
        &self,
        b: &B,
        f: F,
        chunks: Vec<Vec<A>>,
    ) -> Vec<(Arc<Slot<ChunkOut<R>>>, usize)>
    where
        B: Flavor,
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        submit_batched(
            b,
            chunks.into_iter().map(|c| {
                let n = c.len();
                let (slot, unit) = self.unit(b, f, c, None);
                (slot, n, unit)
            }),
        )
    }

    /// On the process backend, submits `items` in chunks of `chunksize`, each encoded
    /// straight from its range of `items`, and returns their slots; `None` on other
    /// backends. A process pool only encodes a chunk's items, so `map` need not copy
    /// them into a `Vec` per chunk first (at 10^7 `u64`s that was 80 MB copied and
    /// page-faulted per call).
    pub(crate) fn submit_ranges<F, A, R>(
        &self,
        _f: F,
        items: &[A],
        chunksize: usize,
    ) -> Option<Vec<feed::Chunk<R>>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let Inner::Processes(b) = &self.inner else {
            return None;
        };
        Some(submit_batched(
            b,
            items.chunks(chunksize.max(1)).map(|c| {
                let slot = Slot::new(codec::decode::<ChunkOut<R>>, None, Flavor::driver(b));
                match b.unit_of_slice::<F, A, R>(c, &slot, self.retries) {
                    Ok(u) => (slot, c.len(), Some(u)),
                    Err(e) => {
                        slot.fail(e);
                        (slot, c.len(), None)
                    }
                }
            }),
        ))
    }

    pub(crate) fn default_chunksize(&self) -> Option<usize> {
        self.chunksize
    }

    pub(crate) fn prefetch_chunks(&self) -> usize {
        self.prefetch
    }

    pub(crate) fn auto_chunksize(&self, len: usize) -> usize {
        self.chunksize
            .unwrap_or_else(|| auto_chunksize(len, self.workers()))
    }

    /// The chunk size for `len` items of the function `F` when the caller gave none:
    /// the pool's own, or on the process backend one that follows the function's
    /// measured cost ([`cost::chunksize`]).
    pub(crate) fn chunksize_for<F: 'static>(&self, len: usize) -> usize {
        match (self.chunksize, &self.inner) {
            (Some(c), _) => c,
            (None, Inner::Processes(_)) => cost::chunksize(
                len,
                self.workers(),
                self.costs.get(TypeId::of::<F>()),
                self.timeout,
            ),
            (None, _) => auto_chunksize(len, self.workers()),
        }
    }

    /// Records what a process pool's `map` of `len` items of `F` in chunks of
    /// `chunksize` cost: it took `elapsed`, and succeeded or not (`ok`).
    pub(crate) fn learn<F: 'static>(
        &self,
        len: usize,
        chunksize: usize,
        elapsed: Duration,
        ok: bool,
    ) {
        if !matches!(self.inner, Inner::Processes(_)) {
            return;
        }
        if let Some(c) = cost::per_item(len, chunksize, self.workers(), elapsed) {
            self.costs.record(TypeId::of::<F>(), c, ok);
        }
    }

    pub(crate) fn progress_bar(&self, len: Option<usize>) -> Progress {
        Progress::new(self.progress, len)
    }

    /// Submits `f(arg)` and returns a handle to its result (Python's
    /// `apply_async` and `Executor.submit`).
    ///
    /// Never blocks: the task is queued. Errors, including one for a closed pool,
    /// arrive through the handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    ///
    /// fn add((a, b): (i32, i32)) -> i32 {
    ///     a + b
    /// }
    ///
    /// let pool = Pool::processes(1)?;
    /// let handles: Vec<_> = (0..10).map(|i| pool.submit(add, (i, i))).collect();
    /// let sums: Vec<i32> = handles.into_iter().map(|h| h.join()).collect::<Result<_, _>>()?;
    /// assert_eq!(sums[9], 18);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        TaskHandle::new(self.submit_one(f, arg, None))
    }

    /// The same as [`submit`](Self::submit), by Python's name.
    pub fn apply_async<F, A, R>(&self, f: F, arg: A) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit(f, arg)
    }

    /// Submits `f(arg)` and calls `callback` with its result when it finishes, before
    /// the handle sees it (Python's `apply_async(callback=…, error_callback=…)`).
    ///
    /// The callback runs on a pool thread (the process backend's manager, or the
    /// worker thread): keep it short, and do not wait on the pool inside it. A
    /// panic in the callback is caught and ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    /// use std::sync::mpsc;
    ///
    /// fn cube(x: i64) -> i64 {
    ///     x * x * x
    /// }
    ///
    /// let pool = Pool::threads(2)?;
    /// let (tx, rx) = mpsc::channel();
    /// let h = pool.apply_async_with(cube, 3, move |r| tx.send(*r.as_ref().unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 27);
    /// assert_eq!(h.join()?, 27);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn apply_async_with<F, A, R, C>(&self, f: F, arg: A, callback: C) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: FnOnce(&Result<R>) + Send + 'static,
    {
        TaskHandle::new(self.submit_one(f, arg, Some(feed::item_callback(callback))))
    }

    /// Runs `f(arg)` in a worker and waits for its value (Python's `apply`).
    ///
    /// # Errors
    ///
    /// See [`TaskHandle::join`].
    pub fn apply<F, A, R>(&self, f: F, arg: A) -> Result<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit(f, arg).join()
    }

    /// Applies `f` to every item and returns the results in order (Python's `map`).
    ///
    /// The input is split into chunks, one task each: [`Builder::chunksize`] if set,
    /// otherwise about `max(64, 8 × workers)` chunks (one item per task for short
    /// inputs, so heavy tasks balance; large chunks for long inputs, so tiny tasks
    /// cost a few nanoseconds each). An input whose length is not known up front is
    /// collected first. Use [`map_results`](Self::map_results) to get every item's
    /// own result.
    ///
    /// # Errors
    ///
    /// The first failed item's error, in input order (see [`TaskHandle::join`]); a
    /// worker that died fails every item of the chunk it was running.
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        feed::map(self, &f, items, None)
    }

    /// [`map`](Self::map) with an explicit number of items per task.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map); [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// if `chunksize` is zero (Python raises `ValueError`).
    pub fn map_chunked<F, A, R, I>(&self, f: F, items: I, chunksize: usize) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        if chunksize == 0 {
            return Err(Error::new(ErrorKind::InvalidInput)
                .with_message("the chunksize must be at least 1"));
        }
        feed::map(self, &f, items, Some(chunksize))
    }

    /// Like [`map`](Self::map), but returns every item's own result instead of
    /// stopping at the first error.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    ///
    /// fn check(x: u32) -> u32 {
    ///     assert!(x != 2, "two is not allowed");
    ///     x
    /// }
    ///
    /// let pool = Pool::threads(2)?;
    /// let rs = pool.map_results(check, 0..4);
    /// assert!(rs[1].is_ok());
    /// assert_eq!(rs[2].as_ref().unwrap_err().panic().unwrap().message(), "two is not allowed");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map_results<F, A, R, I>(&self, f: F, items: I) -> Vec<Result<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        feed::map_results(self, &f, items)
    }

    /// Submits a [`map`](Self::map) and returns at once with a handle to the list of
    /// results (Python's `map_async`).
    ///
    /// The handle completes when every item has finished, also when one failed early
    /// (Python's `map_async` reports the first failure at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    ///
    /// fn sqr(x: i64) -> i64 {
    ///     x * x
    /// }
    ///
    /// let pool = Pool::threads(2)?;
    /// let h = pool.map_async(sqr, 0..10);
    /// assert_eq!(h.join()?, (0..10).map(sqr).collect::<Vec<_>>());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map_async<F, A, R, I>(&self, f: F, items: I) -> MapHandle<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        feed::map_async(self, &f, items, None)
    }

    /// [`map_async`](Self::map_async), and calls `callback` once with the list of
    /// values or the first error when every item has finished, before the handle
    /// sees it (Python's `map_async(callback=…, error_callback=…)`).
    ///
    /// The callback runs on a pool thread, as for
    /// [`apply_async_with`](Self::apply_async_with); a panic in it is caught and
    /// ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    /// use std::sync::mpsc;
    ///
    /// fn parse(s: String) -> i64 {
    ///     s.parse().expect("not a number")
    /// }
    ///
    /// let pool = Pool::processes(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let h = pool.map_async_with(parse, vec!["1".to_string()], move |r| {
    ///     tx.send(r.as_ref().ok().cloned()).unwrap();
    /// });
    /// assert_eq!(h.join()?, vec![1]);
    /// assert_eq!(rx.recv().unwrap(), Some(vec![1]));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map_async_with<F, A, R, I, C>(&self, f: F, items: I, callback: C) -> MapHandle<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        C: FnOnce(&Result<Vec<R>>) + Send + 'static,
    {
        feed::map_async(self, &f, items, Some(feed::list_callback(callback)))
    }

    /// [`starmap`](Self::starmap) without waiting: see [`map_async`](Self::map_async)
    /// (Python's `starmap_async`).
    pub fn starmap_async<F, Args, I>(&self, f: F, items: I) -> MapHandle<F::Output>
    where
        F: StarFn<Args> + Copy + Send + Sync + 'static,
        Args: Serialize + DeserializeOwned + Send + 'static,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.map_async(self.spread(f), items)
    }

    /// Calls `f` with each tuple of arguments spread out (Python's `starmap`).
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    ///
    /// fn pow(base: u64, exp: u32) -> u64 {
    ///     base.pow(exp)
    /// }
    ///
    /// let pool = Pool::processes(2)?;
    /// assert_eq!(pool.starmap(pow, vec![(2, 10), (3, 2)])?, vec![1024, 9]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn starmap<F, Args, I>(&self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: StarFn<Args> + Copy + Send + Sync + 'static,
        Args: Serialize + DeserializeOwned + Send + 'static,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.map(self.spread(f), items)
    }

    /// `f` over a tuple of its arguments, as `starmap` submits it: on a cluster, named
    /// as `f` (which [`task!`](crate::task) registered over the tuple).
    fn spread<F, Args>(&self, f: F) -> impl Fn(Args) -> F::Output + Copy + Send + Sync + 'static
    where
        F: StarFn<Args> + Copy + Send + Sync + 'static,
        Args: 'static,
        F::Output: 'static,
    {
        let star = move |args: Args| f.call(args);
        #[cfg(feature = "cluster")]
        if matches!(self.inner, Inner::Cluster(_)) {
            super::cluster::name_spread::<F, _>(&star);
        }
        star
    }

    /// Applies `f` to every item lazily and yields the results in order (Python's
    /// `imap`).
    ///
    /// Items are pulled from `items` only as results are consumed, with at most
    /// [`Builder::prefetch`] chunks in flight, so an endless iterator works and
    /// memory stays bounded. The chunk size is [`Builder::chunksize`], else
    /// automatic when the input's length is known, else one; adjust it per call
    /// with [`Imap::chunksize`].
    ///
    /// Unlike Python's `imap` and `Executor.map`, which submit every item at once,
    /// nothing runs until the first `next()`: an `Imap` dropped unused runs nothing.
    /// Use [`map_async`](Self::map_async) to submit everything now and collect later.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = Pool::threads(2)?;
    /// // An endless input: only what is consumed (plus the prefetch) is computed.
    /// let first: Vec<u64> = pool.imap(square, 0..).take(5).collect::<Result<_, _>>()?;
    /// assert_eq!(first, vec![0, 1, 4, 9, 16]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn imap<F, A, R, I>(&self, f: F, items: I) -> Imap<'_, F, I::IntoIter, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        Imap::new(
            self,
            Box::new(move |chunks| self.submit_chunks(f, chunks)),
            items.into_iter(),
        )
    }

    /// Like [`imap`](Self::imap), but yields results as they complete, in any order
    /// (Python's `imap_unordered`).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::Pool;
    ///
    /// fn neg(x: i32) -> i32 {
    ///     -x
    /// }
    ///
    /// let pool = Pool::processes(2)?;
    /// let mut got: Vec<i32> = pool.imap_unordered(neg, 0..100).collect::<Result<_, _>>()?;
    /// got.sort();
    /// assert_eq!(got, (-99..=0).collect::<Vec<_>>());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn imap_unordered<F, A, R, I>(&self, f: F, items: I) -> ImapUnordered<'_, F, I::IntoIter, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        ImapUnordered::new(
            self,
            Box::new(move |chunks| self.submit_chunks(f, chunks)),
            items.into_iter(),
        )
    }

    /// Stops accepting tasks (Python's `close`); queued tasks still run. Tasks
    /// submitted afterwards fail with [`ErrorKind::PoolClosed`](crate::ErrorKind::PoolClosed).
    pub fn close(&self) {
        dispatch!(&self.inner, b => Flavor::close(b))
    }

    /// Closes the pool, waits for every submitted task to finish and for the
    /// workers to exit (Python's `close(); join()`). Worker processes are reaped.
    ///
    /// A task that never returns makes this wait forever unless the pool has a
    /// [`task_timeout`](Builder::task_timeout); [`terminate`](Self::terminate) does
    /// not wait for running tasks.
    pub fn join(&self) {
        dispatch!(&self.inner, b => Flavor::join(b))
    }

    /// Stops the pool now (Python's `terminate`): worker processes are killed and
    /// reaped; every task not finished fails with
    /// [`ErrorKind::PoolClosed`](crate::ErrorKind::PoolClosed). Threads cannot be
    /// killed: the thread backend fails the queued tasks and lets running ones end.
    pub fn terminate(&self) {
        dispatch!(&self.inner, b => Flavor::terminate(b))
    }
}

/// Submits the units that `chunks` makes, in order, with few locks and wake-ups:
/// encoding takes time, so the workers start on what is ready (the first chunk at
/// once, then every 256 KiB) instead of idling until the end. Returns each chunk's
/// slot and number of items.
fn submit_batched<B, R>(
    b: &B,
    chunks: impl ExactSizeIterator<Item = (Arc<Slot<ChunkOut<R>>>, usize, Option<B::Unit>)>,
) -> Vec<feed::Chunk<R>>
where
    B: Flavor,
{
    let mut slots = Vec::with_capacity(chunks.len());
    let mut units = Vec::with_capacity(chunks.len());
    let mut bytes = 0;
    for (slot, n, unit) in chunks {
        slots.push((slot, n));
        bytes += unit.as_ref().map_or(0, B::unit_bytes);
        units.extend(unit);
        if slots.len() == 1 || bytes >= 256 << 10 {
            b.submit_all(std::mem::take(&mut units));
            bytes = 0;
        }
    }
    if !units.is_empty() {
        b.submit_all(units);
    }
    slots
}

/// A function that takes its arguments as a tuple's fields, for
/// [`Pool::starmap`]: implemented for every `Fn(A, B, …) -> R` of up to six
/// arguments.
pub trait StarFn<Args> {
    /// The function's return type.
    type Output;
    /// Calls the function with the tuple's fields as arguments.
    fn call(&self, args: Args) -> Self::Output;
}

macro_rules! star_fn {
    ($($a:ident),+) => {
        impl<Func, Ret, $($a),+> StarFn<($($a,)+)> for Func
        where
            Func: Fn($($a),+) -> Ret,
        {
            type Output = Ret;
            #[allow(non_snake_case)]
            fn call(&self, ($($a,)+): ($($a,)+)) -> Ret {
                self($($a),+)
            }
        }
    };
}

star_fn!(A1);
star_fn!(A1, A2);
star_fn!(A1, A2, A3);
star_fn!(A1, A2, A3, A4);
star_fn!(A1, A2, A3, A4, A5);
star_fn!(A1, A2, A3, A4, A5, A6);
