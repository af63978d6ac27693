//! `ThreadPool`: a pool of threads for any `Send` closure and any `Send` data
//! (Python's `multiprocessing.pool.ThreadPool` and `ThreadPoolExecutor`). Why it is a
//! type of its own, and how switching works, is in [`ThreadPool`]'s docs.
//!
//! # How it runs
//!
//! The workers are the thread backend's own (the job queue, spinning and sleeping
//! workers, the task timeout, `max_tasks_per_child`, the thread names, in
//! `pool/thread.rs`), and so are the slots, handles and `map`/`imap` machinery
//! (`pool/task.rs`, `pool/feed.rs`, `pool/imap.rs`, and `pool/inplace.rs`, where
//! `map` and `map_async` read their input and write their result in place): this
//! file only turns a closure and its items into a job, with the bounds threads need. A `map`'s closure is shared
//! by its chunks through one [`Arc`]; a `submit`'s closure is `FnOnce` and runs once.
//! Nothing is serialized: arguments and results move between threads. A slot here
//! only ever receives values, never bytes from a worker process.

use std::fmt;
use std::sync::Arc;

use super::builder::{Backend, Builder};
use super::feed::{self, Chunk, Feeds, SubmitChunks};
use super::handle::{auto_chunksize, StarFn};
use super::imap::{Imap, ImapUnordered, Submit};
use super::inplace;
use super::map_handle::{values_only, MapHandle};
use super::process::chunk::{apply_each, ChunkOut};
use super::progress::Progress;
use super::slot::{Callback, Completion, Drive, Slot};
use super::task::TaskHandle;
use super::thread::{self, Job};
use crate::error::{Error, ErrorKind, Result};

/// A pool of worker threads that runs any `Send` closure over any `Send` data
/// (Python's `multiprocessing.pool.ThreadPool`).
///
/// A closure may capture an [`Arc`], a lock, a channel end; arguments and results
/// need no serde form. Otherwise it is [`Pool`](super::Pool): the same methods,
/// handles, timeouts, callbacks, progress bar and errors.
///
/// # Why a second pool type
///
/// `Pool` is one type over threads, processes and a cluster, so its methods ask what
/// the most demanding backend needs: a function that is a `fn` item or a closure that
/// captures nothing (a worker process finds it by its address, a cluster host by its
/// name) and serde arguments and results (they cross a process boundary). A thread
/// needs neither, and those bounds shut out what threads are for: a closure that
/// captures shared state, or data that has no serde form. The bounds of a method
/// cannot depend on a backend chosen at run time, so the thread pool that takes
/// anything `Send` is a type of its own, and `Pool`'s process backend keeps its
/// bounds.
///
/// A closure that captures an `Arc` does not compile with `Pool`, even on threads:
///
/// ```compile_fail
/// use multiproc::pool::Pool;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let calls = Arc::new(AtomicUsize::new(0));
/// let c = Arc::clone(&calls);
/// // error: the closure is not `Copy` (it owns an `Arc`), which `Pool` asks of `f`.
/// Pool::threads(2)?.map(move |x: u32| { c.fetch_add(1, Ordering::Relaxed); x }, 0..4)?;
/// # Ok::<(), multiproc::Error>(())
/// ```
///
/// With `ThreadPool` it does:
///
/// ```
/// use multiproc::pool::ThreadPool;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let calls = Arc::new(AtomicUsize::new(0));
/// let c = Arc::clone(&calls);
/// ThreadPool::new(2)?.map(move |x: u32| { c.fetch_add(1, Ordering::Relaxed); x }, 0..4)?;
/// assert_eq!(calls.load(Ordering::Relaxed), 4);
/// # Ok::<(), multiproc::Error>(())
/// ```
///
/// # Switching
///
/// `ThreadPool` has `Pool`'s methods with the same names, arguments and handles
/// ([`TaskHandle`], [`MapHandle`], [`Imap`], [`ImapUnordered`]); only its bounds are
/// looser. So code written for a `Pool` compiles against a `ThreadPool` unchanged,
/// and the other way round wherever its functions are `fn` items and its data is
/// serde: switching is the one word of the constructor.
///
/// ```
/// use multiproc::pool::{Pool, ThreadPool};
///
/// fn len(s: String) -> usize {
///     s.len()
/// }
///
/// let words = || vec!["a".to_string(), "bb".to_string()];
/// // `fn` items and serde data: either pool, the same call.
/// assert_eq!(ThreadPool::new(2)?.map(len, words())?, [1, 2]);
/// assert_eq!(Pool::processes(2)?.map(len, words())?, [1, 2]);
/// # Ok::<(), multiproc::Error>(())
/// ```
///
/// A closure and its data must be `'static`, because a task can outlive the call
/// that submitted it (`submit`, an `imap` dropped early, a task abandoned at its
/// timeout); to lend borrowed data to threads, use [`scope`](crate::scope()).
///
/// # Crashes
///
/// | the task… | its result | the pool |
/// |---|---|---|
/// | panics | [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) with the message (only that item of a chunk) | unaffected |
/// | runs past [`task_timeout`](Builder::task_timeout) | [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) | its thread is abandoned (it runs on, its result is dropped) and replaced |
///
/// A crash (a segfault, an abort) takes the whole process down, as with any thread:
/// use [`Pool::processes`](super::Pool::processes) for work that may crash.
///
/// # Drop
///
/// Dropping the pool closes it: submitted tasks still run, in the background.
///
/// # Examples
///
/// ```
/// use multiproc::pool::ThreadPool;
/// use std::collections::HashMap;
/// use std::sync::Arc;
///
/// // Shared, read-only data that has no reason to be copied or serialized.
/// let prices: Arc<HashMap<&str, u32>> = Arc::new([("apple", 3), ("pear", 5)].into());
/// let pool = ThreadPool::new(2)?;
/// let total = {
///     let prices = Arc::clone(&prices);
///     pool.map(move |(item, n): (&str, u32)| prices[item] * n, [("apple", 2), ("pear", 1)])?
/// };
/// assert_eq!(total, [6, 5]);
///
/// // One-off tasks take an `FnOnce` closure, as `std::thread::spawn` does.
/// let log = Arc::new(std::sync::Mutex::new(Vec::new()));
/// let l = Arc::clone(&log);
/// let h = pool.submit(move |line: String| l.lock().unwrap().push(line), "hello".into());
/// h.join()?;
/// assert_eq!(*log.lock().unwrap(), ["hello"]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ThreadPool {
    engine: thread::ThreadPool,
    workers: usize,
    chunksize: Option<usize>,
    prefetch: usize,
    progress: bool,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// A slot for values that never arrive as bytes (no worker process here).
fn slot<R: Send + 'static>(callback: Option<Callback<ChunkOut<R>>>) -> Arc<Slot<ChunkOut<R>>> {
    Slot::new(values_only::<ChunkOut<R>>, callback, None)
}

/// The job that completes `slot` with what `run` returns.
fn job<R: Send + 'static>(
    slot: &Arc<Slot<ChunkOut<R>>>,
    run: impl FnOnce() -> ChunkOut<R> + Send + 'static,
) -> Job {
    let s = Arc::clone(slot);
    Job {
        run: Box::new(move || s.deliver(Ok(run()))),
        sink: Arc::clone(slot) as Arc<dyn Completion>,
    }
}

/// Calls `f(arg)` once, catching a panic as the item's result.
fn call_once<F, A, R>(f: F, arg: A) -> ChunkOut<R>
where
    F: FnOnce(A) -> R,
{
    match crate::panic::catch(|| f(arg)) {
        Ok(v) => ChunkOut {
            values: vec![v],
            panics: Vec::new(),
        },
        Err(p) => ChunkOut {
            values: Vec::new(),
            panics: vec![(0, p)],
        },
    }
}

impl ThreadPool {
    pub(crate) fn from_parts(
        engine: thread::ThreadPool,
        workers: usize,
        chunksize: Option<usize>,
        prefetch: usize,
        progress: bool,
    ) -> ThreadPool {
        ThreadPool {
            engine,
            workers,
            chunksize,
            prefetch,
            progress,
        }
    }

    /// A pool of `n` worker threads (Python's `ThreadPool(n)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if a thread cannot be started, [`ErrorKind::InvalidInput`]
    /// if `n` is zero.
    pub fn new(n: usize) -> Result<ThreadPool> {
        Builder::new().workers(n).build_thread_pool()
    }

    /// A [`Builder`] for every other setting; finish it with
    /// [`build_thread_pool`](Builder::build_thread_pool).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::builder()
    ///     .workers(2)
    ///     .thread_name_prefix("io")
    ///     .task_timeout(Duration::from_secs(30))
    ///     .build_thread_pool()?;
    /// let name = pool.apply(|()| std::thread::current().name().unwrap().to_owned(), ())?;
    /// assert!(name.starts_with("io_"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::new().backend(Backend::Threads)
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Submits `f(arg)` and returns a handle to its result (Python's `apply_async`
    /// and `Executor.submit`). `f` runs once, so it may move what it captures out.
    ///
    /// Never blocks. Errors, including one for a closed pool, arrive through the
    /// handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::ThreadPool;
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let h = pool.submit(move |n: u32| tx.send(n * 2).unwrap(), 21);
    /// h.join()?;
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> TaskHandle<R>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        TaskHandle::new(self.submit_one(f, arg, None))
    }

    /// The same as [`submit`](Self::submit), by Python's name.
    pub fn apply_async<F, A, R>(&self, f: F, arg: A) -> TaskHandle<R>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.submit(f, arg)
    }

    /// Submits `f(arg)` and calls `callback` with its result on the worker thread
    /// when it finishes, before the handle sees it (Python's
    /// `apply_async(callback=…, error_callback=…)`). A panic in the callback is
    /// caught and ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::ThreadPool;
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let h = pool.apply_async_with(|x: i64| x * x, 7, move |r| tx.send(r.is_ok()).unwrap());
    /// assert!(rx.recv().unwrap());
    /// assert_eq!(h.join()?, 49);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn apply_async_with<F, A, R, C>(&self, f: F, arg: A, callback: C) -> TaskHandle<R>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
        C: FnOnce(&Result<R>) + Send + 'static,
    {
        TaskHandle::new(self.submit_one(f, arg, Some(feed::item_callback(callback))))
    }

    /// Runs `f(arg)` on a worker and waits for its value (Python's `apply`).
    ///
    /// # Errors
    ///
    /// See [`TaskHandle::join`].
    pub fn apply<F, A, R>(&self, f: F, arg: A) -> Result<R>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.submit(f, arg).join()
    }

    fn submit_one<F, A, R>(
        &self,
        f: F,
        arg: A,
        callback: Option<Callback<ChunkOut<R>>>,
    ) -> Arc<Slot<ChunkOut<R>>>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let slot = slot(callback);
        self.engine
            .submit_all(vec![job(&slot, move || call_once(f, arg))]);
        slot
    }

    /// Applies `f` to every item and returns the results in order (Python's `map`);
    /// chunked as [`Pool::map`](super::Pool::map).
    ///
    /// # Errors
    ///
    /// The first failed item's error, in input order (see [`TaskHandle::join`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::ThreadPool;
    /// use std::sync::Arc;
    ///
    /// let text: Arc<str> = "the quick brown fox".into();
    /// let pool = ThreadPool::new(2)?;
    /// let starts = pool.map(move |w: usize| text.split(' ').nth(w).unwrap().len(), 0..4)?;
    /// assert_eq!(starts, [3, 5, 5, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        feed::map(self, &Arc::new(f), items, None)
    }

    /// [`map`](Self::map) with an explicit number of items per task.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map); [`ErrorKind::InvalidInput`] if `chunksize` is zero.
    pub fn map_chunked<F, A, R, I>(&self, f: F, items: I, chunksize: usize) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        if chunksize == 0 {
            return Err(Error::new(ErrorKind::InvalidInput)
                .with_message("the chunksize must be at least 1"));
        }
        feed::map(self, &Arc::new(f), items, Some(chunksize))
    }

    /// Like [`map`](Self::map), but returns every item's own result instead of
    /// stopping at the first error.
    pub fn map_results<F, A, R, I>(&self, f: F, items: I) -> Vec<Result<R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        feed::map_results(self, &Arc::new(f), items)
    }

    /// Submits a [`map`](Self::map) and returns at once with a handle to the list of
    /// results (Python's `map_async`).
    pub fn map_async<F, A, R, I>(&self, f: F, items: I) -> MapHandle<R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        feed::map_async(self, &Arc::new(f), items, None)
    }

    /// [`map_async`](Self::map_async), and calls `callback` once with the list of
    /// values or the first error, on a worker thread, before the handle sees it.
    pub fn map_async_with<F, A, R, I, C>(&self, f: F, items: I, callback: C) -> MapHandle<R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
        C: FnOnce(&Result<Vec<R>>) + Send + 'static,
    {
        let cb = Some(feed::list_callback(callback));
        feed::map_async(self, &Arc::new(f), items, cb)
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
    /// use multiproc::pool::ThreadPool;
    ///
    /// let offset = 100;
    /// let pool = ThreadPool::new(2)?;
    /// let sums = pool.starmap(move |a: i32, b: i32| a + b + offset, vec![(1, 2), (3, 4)])?;
    /// assert_eq!(sums, [103, 107]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn starmap<F, Args, I>(&self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: StarFn<Args> + Send + Sync + 'static,
        Args: Send + 'static,
        F::Output: Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.map(move |args: Args| f.call(args), items)
    }

    /// [`starmap`](Self::starmap) without waiting (Python's `starmap_async`).
    pub fn starmap_async<F, Args, I>(&self, f: F, items: I) -> MapHandle<F::Output>
    where
        F: StarFn<Args> + Send + Sync + 'static,
        Args: Send + 'static,
        F::Output: Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.map_async(move |args: Args| f.call(args), items)
    }

    /// Applies `f` to every item lazily and yields the results in order (Python's
    /// `imap`), with at most [`Builder::prefetch`] chunks in flight: see
    /// [`Pool::imap`](super::Pool::imap).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::pool::ThreadPool;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let c = Arc::clone(&calls);
    /// let pool = ThreadPool::new(2)?;
    /// // An endless input: only what is consumed (plus the prefetch) runs.
    /// let it = pool.imap(move |x: u64| { c.fetch_add(1, Ordering::Relaxed); x * x }, 0..);
    /// let first: Vec<u64> = it.prefetch(2).take(3).collect::<Result<_, _>>()?;
    /// assert_eq!(first, [0, 1, 4]);
    /// assert!(calls.load(Ordering::Relaxed) < 100);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn imap<F, A, R, I>(&self, f: F, items: I) -> Imap<'_, F, I::IntoIter, R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        Imap::new(self, self.submitter(f), items.into_iter())
    }

    /// Like [`imap`](Self::imap), but yields results as they complete, in any order
    /// (Python's `imap_unordered`).
    pub fn imap_unordered<F, A, R, I>(&self, f: F, items: I) -> ImapUnordered<'_, F, I::IntoIter, R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        ImapUnordered::new(self, self.submitter(f), items.into_iter())
    }

    /// What `imap` feeds its chunks to: `f`, shared by the chunks, on this pool.
    fn submitter<F, A, R>(&self, f: F) -> Submit<'_, A, R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let f = Arc::new(f);
        Box::new(move |chunks| self.submit_chunks(&f, chunks))
    }

    /// Stops accepting tasks (Python's `close`); queued tasks still run. Tasks
    /// submitted afterwards fail with [`ErrorKind::PoolClosed`].
    pub fn close(&self) {
        self.engine.close();
    }

    /// Closes the pool, waits for every submitted task to finish and for the threads
    /// to exit (Python's `close(); join()`). A thread abandoned at its task timeout
    /// is not waited for.
    pub fn join(&self) {
        self.engine.join();
    }

    /// Stops the pool now (Python's `terminate`): queued tasks fail with
    /// [`ErrorKind::PoolClosed`]; running ones end in the background (a thread cannot
    /// be killed).
    pub fn terminate(&self) {
        self.engine.terminate();
    }
}

impl Feeds for ThreadPool {
    fn default_chunksize(&self) -> Option<usize> {
        self.chunksize
    }

    fn prefetch_chunks(&self) -> usize {
        self.prefetch
    }

    fn auto_chunksize(&self, len: usize) -> usize {
        self.chunksize
            .unwrap_or_else(|| auto_chunksize(len, self.workers))
    }

    fn progress_bar(&self, len: Option<usize>) -> Progress {
        Progress::new(self.progress, len)
    }

    fn driver(&self) -> Option<Arc<dyn Drive>> {
        None
    }
}

impl<F, A, R> SubmitChunks<Arc<F>, A, R> for ThreadPool
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    fn submit_chunks(&self, f: &Arc<F>, chunks: Vec<Vec<A>>) -> Vec<Chunk<R>> {
        let mut slots = Vec::with_capacity(chunks.len());
        let mut jobs = Vec::with_capacity(chunks.len());
        for items in chunks {
            let n = items.len();
            let slot = slot(None);
            let f = Arc::clone(f);
            jobs.push(job(&slot, move || apply_each(items, &*f)));
            slots.push((slot, n));
        }
        self.engine.submit_all(jobs);
        slots
    }

    fn map_all(
        &self,
        f: &Arc<F>,
        items: Vec<A>,
        chunksize: usize,
        bar: &Progress,
    ) -> Result<Vec<R>> {
        let f = Arc::clone(f);
        inplace::map(&self.engine, items, chunksize, move |a| f(a), bar)
    }

    fn map_all_async(
        &self,
        f: &Arc<F>,
        items: Vec<A>,
        chunksize: usize,
        list: Arc<Slot<Vec<R>>>,
    ) -> MapHandle<R> {
        let f = Arc::clone(f);
        inplace::map_async(&self.engine, items, chunksize, move |a| f(a), list)
    }
}
