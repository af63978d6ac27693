//! Pools of worker threads or processes: `map` a function over many inputs, or submit
//! tasks and collect their results, and survive any worker crash.
//!
//! One [`Pool`] type, two backends, switched by one line:
//!
//! ```
//! use multiproc::pool::Pool;
//!
//! fn collatz_steps(mut n: u64) -> u32 {
//!     let mut steps = 0;
//!     while n != 1 {
//!         n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
//!         steps += 1;
//!     }
//!     steps
//! }
//!
//! let threads = Pool::threads(2)?;
//! let processes = Pool::processes(2)?;
//! let a = threads.map(collatz_steps, 1..1000)?;
//! let b = processes.map(collatz_steps, 1..1000)?;
//! assert_eq!(a, b);
//! # Ok::<(), multiproc::Error>(())
//! ```
//!
//! `Pool`'s functions are `fn` items (or closures that capture nothing) and its data
//! is serde, whichever the backend, so that switching is one word. For threads that
//! run any `Send` closure over any `Send` data (an `Arc`, a lock, a channel end), use
//! [`ThreadPool`]: the same methods and handles without those bounds.
//!
//! ```
//! use multiproc::pool::ThreadPool;
//! use std::sync::Arc;
//!
//! let table: Arc<Vec<u64>> = Arc::new((0..100).map(|i| i * i).collect());
//! let pool = ThreadPool::new(2)?;
//! let t = Arc::clone(&table);
//! assert_eq!(pool.map(move |i: usize| t[i] + 1, [2, 3])?, [5, 10]);
//! # Ok::<(), multiproc::Error>(())
//! ```
//!
//! # Coming from Python
//!
//! | Python | multiproc |
//! |---|---|
//! | `Pool(4)` / `ThreadPool(4)` | [`Pool::processes(4)`](Pool::processes) / [`Pool::threads(4)`](Pool::threads) (`fn` items, serde data), [`ThreadPool::new(4)`](ThreadPool::new) (any `Send` closure and data) |
//! | `Pool(initializer=f, initargs=(a,), maxtasksperchild=n)` | [`Pool::builder()`](Pool::builder)`.initializer(f, a).max_tasks_per_child(n)` |
//! | `pool.map(f, xs, chunksize)` | [`pool.map(f, xs)`](Pool::map), [`map_chunked`](Pool::map_chunked) |
//! | `pool.map_async(f, xs, callback=cb)` / `starmap_async` | [`map_async`](Pool::map_async) / [`map_async_with(f, xs, cb)`](Pool::map_async_with) / [`starmap_async`](Pool::starmap_async) → [`MapHandle`] |
//! | `pool.imap(f, xs)` / `imap_unordered` | [`pool.imap(f, xs)`](Pool::imap) / [`imap_unordered`](Pool::imap_unordered) |
//! | `pool.starmap(f, [(a, b)])` | [`pool.starmap(f, [(a, b)])`](Pool::starmap) |
//! | `pool.apply(f, (x,))` / `apply_async(f, (x,), callback=cb)` | [`apply(f, x)`](Pool::apply) / [`apply_async_with(f, x, cb)`](Pool::apply_async_with) |
//! | `executor.submit(f, x)` → `Future` | [`submit(f, x)`](Pool::submit) → [`TaskHandle`] (also a Rust `Future`) |
//! | `concurrent.futures.wait(fs, timeout, return_when)` | [`wait(&hs, WaitFor::First / All / FirstError, timeout)`](wait) |
//! | `as_completed(fs, timeout)` | [`as_completed(hs)`](as_completed), [`next_timeout`](AsCompleted::next_timeout) |
//! | `imap(...).next(timeout)` | [`Imap::next_timeout`], [`ImapUnordered::next_timeout`] |
//! | `async_result.wait(timeout)`, `ready()` | [`TaskHandle::wait_timeout`], [`is_finished`](TaskHandle::is_finished) |
//! | `future.result(timeout)`, `done()`, `cancel()` | [`TaskHandle::join_timeout`], [`is_finished`](TaskHandle::is_finished), [`cancel`](TaskHandle::cancel) |
//! | `future.running()`, `cancelled()`, `exception() is not None` | [`is_running`](TaskHandle::is_running), [`is_cancelled`](TaskHandle::is_cancelled), [`is_failed`](TaskHandle::is_failed) |
//! | `future.add_done_callback(fn)` | [`add_done_callback`](TaskHandle::add_done_callback) |
//! | `close()`, `join()`, `terminate()` | the same |
//! | `os.cpu_count()` | [`cpu_count`] (respects affinity and cgroup quota, as `std::thread::available_parallelism`) |
//!
//! Sizes of zero (`Pool(0)`, `maxtasksperchild=0`, `chunksize=0`) are refused with
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), as Python raises
//! `ValueError`. Errors are values, not exceptions: a task submitted to a closed pool
//! gets [`ErrorKind::PoolClosed`](crate::ErrorKind::PoolClosed) through its handle.
//!
//! Differences that matter: a killed worker never hangs the pool (Python's `Pool`
//! waits forever, CPython gh-66587) and never breaks it (`ProcessPoolExecutor` raises
//! `BrokenProcessPool` for every pending task); only the task that was running fails,
//! with the signal or exit code. `map` defaults to more, smaller chunks than Python
//! for short inputs so that heavy tasks balance. `imap` pulls its input lazily.
//! [`Pool::join`] closes the pool itself (Python raises unless `close()` came first).
//! Dropping a pool closes it and lets submitted tasks finish in the background
//! (Python's `with Pool()` terminates; an executor's `with` waits). A result is taken
//! once: a second `join_timeout` after success is
//! [`ErrorKind::AlreadyJoined`](crate::ErrorKind::AlreadyJoined).
//!
//! # Tasks, chunks and results
//!
//! A task is one call (`submit`) or one chunk of a `map`. A process worker runs its
//! tasks one after another and answers each; the pool's manager thread keeps a small
//! window of tasks queued at each worker (sized from how long tasks take), so a
//! stream of tiny tasks costs a few microseconds each and a worker never idles
//! waiting for the next one. See the `process` backend's source for the protocol.

mod builder;
mod closure;
#[cfg(feature = "cluster")]
pub mod cluster;
mod cost;
mod cpu;
mod feed;
mod flavor;
mod handle;
mod imap;
mod inplace;
#[cfg(all(test, loom))]
mod loom_slot;
mod map_handle;
pub(crate) mod process;
mod progress;
mod slot;
mod task;
#[cfg(test)]
mod tests;
mod thread;
mod wait;

pub use builder::{Backend, Builder, DEFAULT_RESTART_TIMEOUT};
pub use closure::ThreadPool;
pub use cpu::cpu_count;
pub use handle::{Pool, StarFn};
pub use imap::{Imap, ImapUnordered};
pub use map_handle::MapHandle;
pub use task::TaskHandle;
pub use wait::{as_completed, wait, AsCompleted, WaitFor};
