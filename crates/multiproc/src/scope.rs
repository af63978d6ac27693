//! Scoped threads and Fork children that borrow the caller's data.
//!
//! [`scope`] is [`std::thread::scope`] with two additions: a thread's panic comes back
//! from [`ScopedThread::join`] as an [`Error`] (like [`Thread`](crate::Thread)'s), and
//! [`Scope::fork`] starts a child process with [`StartMethod::Fork`] whose closure
//! borrows from the caller's stack like a scoped thread's does. Everything started in
//! the scope has ended when `scope` returns.
//!
//! ```
//! let words = vec!["hello", "scoped", "world"];
//! let mut lengths = Vec::new();
//! let letters = multiproc::scope(|s| {
//!     // A thread borrows `words` and mutates `lengths`: no `Arc`, no `'static`.
//!     let t = s.spawn(|| lengths.extend(words.iter().map(|w| w.len())))?;
//!     // A Fork child borrows `words` too; its result comes back serialized.
//!     let p = s.fork(|| words.concat().len())?;
//!     t.join()?;
//!     p.join()
//! })??;
//! assert_eq!(lengths, [5, 6, 5]);
//! assert_eq!(letters, 16);
//! # Ok::<(), multiproc::Error>(())
//! ```
//!
//! # What a Fork child may borrow, and what it sees
//!
//! A Fork child is a copy of this process taken at the moment of the fork, with only
//! the thread that called [`fork`](Scope::fork). Its closure runs on that copy and may
//! use anything the closure can name (no `Send`, no `'static`: it runs on the same
//! thread, in the copy, and never returns to the parent's stack); its result must
//! own its data, because it crosses back serialized
//! (`Serialize + DeserializeOwned + 'static`).
//!
//! **Allowed**, and what happens:
//!
//! * reading borrowed data, any type, `Rc` and `RefCell` included: the child reads its
//!   snapshot;
//! * writing through `&mut` or a `Cell`/`RefCell`/`Mutex`: the child writes its own
//!   copy (copy-on-write pages); **the parent never sees it**, as in Python's fork.
//!   Return what the parent needs, or write to a shared object:
//!   [`Value`](crate::Value), [`Array`](crate::Array),
//!   [`SharedMemory`](crate::SharedMemory) and [`Queue`](crate::Queue) are shared
//!   with the child, whatever it borrows;
//! * descriptors: the child inherits every open descriptor (as with every Fork child).
//!
//! **Not allowed**, by the compiler: a result that borrows (`&str`, a slice…) or is not
//! serde. **Not safe to rely on**, and the reason multiproc otherwise refuses Fork
//! while other threads run ([`Builder::allow_threads`](crate::process::Builder::allow_threads),
//! which `fork` sets): a lock that another thread (a scoped thread, a pool worker,
//! the stdout lock during a `println!`) held at the moment of the fork stays locked in
//! the child forever, so the child hangs if it takes it; data another thread was
//! changing at that moment is in the child as it was mid-change. Borrowing is not the
//! danger here: the child's snapshot cannot change under it. Memory that a library
//! mapped with `MADV_DONTFORK` or `MADV_WIPEONFORK` is absent or zeroed in the child.
//!
//! A child that panics, exits or is killed comes back from
//! [`ScopedProcess::join`] as an [`Error`] ([`ErrorKind::Panicked`],
//! [`ErrorKind::Exited`], [`ErrorKind::Signaled`]), as from [`Process::join`].
//!
//! # Threads
//!
//! [`Scope::spawn`] is [`std::thread::Scope::spawn`]: the closure may borrow anything
//! that outlives the scope and must be `Send`; its result too. A panic is caught on
//! the thread and [`join`](ScopedThread::join) returns it as
//! [`ErrorKind::Panicked`] with the message and location.
//!
//! # At the end of the scope
//!
//! `scope` waits for every thread and every child, joined or not, then returns the
//! closure's value, or the first failure (in start order) of a thread or child whose
//! handle was dropped without `join` (std's `scope` panics in that case): a failure is
//! never lost. A panic of the closure itself propagates once the threads and children
//! have ended, as in std.
//!
//! `Scope` is `Copy`: a thread that starts more threads or children takes it with a
//! `move` closure (`let s2 = s; s.spawn(move || s2.spawn(...))`, or borrow what it
//! needs first).

use std::fmt;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ScopedJoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::process::{Builder, Process, StartMethod};

/// Runs `f` with a [`Scope`] in which threads and Fork children may borrow from the
/// caller; returns when all of them have ended. See the [module docs](self).
///
/// # Errors
///
/// The first failure (in start order) of a thread or child whose handle was dropped
/// without being joined; `f`'s value otherwise. A failure of a joined one is its
/// `join`'s to report.
///
/// # Panics
///
/// If `f` panics, once every thread and child has ended (the panic is `f`'s own).
///
/// # Examples
///
/// ```
/// let mut counts = [0u32; 4];
/// multiproc::scope(|s| {
///     for (i, c) in counts.iter_mut().enumerate() {
///         // Each thread borrows one element mutably.
///         let _ = s.spawn(move || *c = i as u32 * 10);
///     }
/// })?;
/// assert_eq!(counts, [0, 10, 20, 30]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn scope<'env, F, T>(f: F) -> Result<T>
where
    F: for<'scope> FnOnce(Scope<'scope, 'env>) -> T,
{
    let state = State::default();
    // A panic of `f` waits for the children too, so that nothing outlives the scope.
    let value = std::panic::catch_unwind(AssertUnwindSafe(|| {
        std::thread::scope(|threads| {
            f(Scope {
                threads,
                state: &state,
                scope: PhantomData,
                env: PhantomData,
            })
        })
    }));
    // Every thread has ended; wait for the children whose handles were dropped.
    let children = std::mem::take(&mut *lock(&state.children));
    let mut first = None;
    for (order, child) in children {
        if let Err(e) = child.finish() {
            first = first.or(Some((order, e)));
        }
    }
    let threads = std::mem::take(&mut *lock(&state.threads));
    for (order, failure) in threads {
        if let Some(e) = lock(&failure).take() {
            if first.as_ref().is_none_or(|(o, _)| order < *o) {
                first = Some((order, e));
            }
        }
    }
    let value = value.unwrap_or_else(|p| std::panic::resume_unwind(p));
    match first {
        Some((_, e)) => Err(e),
        None => Ok(value),
    }
}

/// What the scope keeps for the end: work whose handle was dropped unjoined, each
/// with its start order.
#[derive(Default)]
struct State {
    started: Mutex<u64>,
    /// Children to wait for.
    children: Mutex<Vec<(u64, Box<dyn Unjoined>)>>,
    /// Where threads leave their panic.
    threads: Mutex<Vec<(u64, Failure)>>,
}

impl State {
    fn next(&self) -> u64 {
        let mut n = lock(&self.started);
        *n += 1;
        *n
    }
}

/// A thread's panic, left for the scope if nobody joins the thread.
type Failure = Arc<Mutex<Option<Error>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover rather than propagate.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child whose handle was dropped: the scope waits for it and keeps its failure.
trait Unjoined: Send {
    fn finish(self: Box<Self>) -> Result<()>;
}

impl<T: DeserializeOwned + 'static> Unjoined for Process<T> {
    fn finish(self: Box<Self>) -> Result<()> {
        (*self).join().map(drop)
    }
}

/// Starts scoped threads for [`Scope`] through a `dyn` reference, which hides the
/// `'env` of [`std::thread::Scope`]: a scope's `'env` is its caller's, std's is the
/// scope's own state's (see [`scope`]).
trait Spawner<'scope> {
    fn spawn_boxed(
        &'scope self,
        f: Box<dyn FnOnce() + Send + 'scope>,
    ) -> std::io::Result<ScopedJoinHandle<'scope, ()>>;
}

impl<'scope, 'env> Spawner<'scope> for std::thread::Scope<'scope, 'env> {
    fn spawn_boxed(
        &'scope self,
        f: Box<dyn FnOnce() + Send + 'scope>,
    ) -> std::io::Result<ScopedJoinHandle<'scope, ()>> {
        std::thread::Builder::new().spawn_scoped(self, f)
    }
}

/// The scope [`scope`] lends its closure: starts threads and Fork children that may
/// borrow anything that outlives it. `Copy`, so that a thread can take it along.
#[derive(Clone, Copy)]
pub struct Scope<'scope, 'env: 'scope> {
    threads: &'scope (dyn Spawner<'scope> + Sync),
    state: &'scope State,
    /// Invariant in both lifetimes, as [`std::thread::Scope`] (a shorter `'scope`
    /// would let a thread borrow what dies before it).
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Starts a thread running `f`, which may borrow anything that outlives the
    /// scope ([`std::thread::Scope::spawn`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if the thread cannot be started (std's `spawn` panics).
    ///
    /// # Examples
    ///
    /// ```
    /// let data = [1, 2, 3, 4];
    /// let (left, right) = data.split_at(2);
    /// let sum = multiproc::scope(|s| -> multiproc::Result<i32> {
    ///     let a = s.spawn(|| left.iter().sum::<i32>())?;
    ///     let b = s.spawn(|| right.iter().sum::<i32>())?;
    ///     Ok(a.join()? + b.join()?)
    /// })??;
    /// assert_eq!(sum, 10);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> Result<ScopedThread<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let value: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let failure: Failure = Arc::new(Mutex::new(None));
        let (v, e) = (Arc::clone(&value), Arc::clone(&failure));
        let run = Box::new(move || match crate::panic::catch(f) {
            Ok(x) => *lock(&v) = Some(x),
            Err(p) => *lock(&e) = Some(Error::from_panic(p)),
        });
        let handle = self
            .threads
            .spawn_boxed(run)
            .map_err(|e| Error::new(ErrorKind::Start).with_source(e))?;
        Ok(ScopedThread {
            handle: Some(handle),
            value,
            failure,
            order: self.state.next(),
            state: self.state,
            pid: std::process::id(),
        })
    }

    /// Forks a child running `f`, which may borrow anything in reach (see the
    /// [module docs](self) for what the child sees); its value comes back through
    /// [`ScopedProcess::join`]. The same as [`fork_with`](Self::fork_with) with
    /// [`Builder::allow_threads`] set: the scope's own threads may be running.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if `fork` fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// let index: HashMap<&str, usize> = [("a", 1), ("b", 2)].into();
    /// let found = multiproc::scope(|s| {
    ///     // The child reads the parent's map in place: nothing is copied up front.
    ///     s.fork(|| index.get("b").copied())?.join()
    /// })??;
    /// assert_eq!(found, Some(2));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fork<F, T>(&self, f: F) -> Result<ScopedProcess<'scope, T>>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned + 'static,
    {
        self.fork_with(Process::builder().allow_threads(true), f)
    }

    /// [`fork`](Self::fork) with a process [`Builder`]'s settings (name, captured
    /// output, environment, `allow_threads`…). The child is always forked: the
    /// builder's start method is ignored.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ForkWithThreads`] if other threads run and the builder does not
    /// [`allow_threads`](Builder::allow_threads); [`ErrorKind::Start`] if `fork` fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Process;
    ///
    /// let greeting = String::from("hi");
    /// let (value, out) = multiproc::scope(|s| {
    ///     let b = Process::builder().allow_threads(true).capture_output(true);
    ///     let p = s.fork_with(b, || println!("{greeting}"))?;
    ///     Ok::<_, multiproc::Error>(p.join_with_output())
    /// })??;
    /// value?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fork_with<F, T>(&self, builder: Builder, f: F) -> Result<ScopedProcess<'scope, T>>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned + 'static,
    {
        let process = builder.start_method(StartMethod::Fork).fork(f)?;
        Ok(ScopedProcess {
            process: Some(process),
            joined: false,
            order: self.state.next(),
            state: self.state,
        })
    }
}

/// A thread started by [`Scope::spawn`]: join it for its value or its panic. Dropped
/// unjoined, the scope still waits for it and reports its panic.
#[must_use = "a dropped handle's thread runs on to the end of the scope, and its value is lost"]
pub struct ScopedThread<'scope, T> {
    handle: Option<ScopedJoinHandle<'scope, ()>>,
    value: Arc<Mutex<Option<T>>>,
    failure: Failure,
    order: u64,
    state: &'scope State,
    /// The process the thread runs in: a Fork child that took this handle along has
    /// no such thread.
    pid: u32,
}

impl<T> fmt::Debug for ScopedThread<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedThread")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> ScopedThread<'_, T> {
    /// Waits for the thread and returns its value.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Panicked`] with the panic's message and location;
    /// [`ErrorKind::InvalidInput`] in a Fork child that took the handle along: the
    /// thread runs in the parent only (std's join of it would panic in the child).
    pub fn join(mut self) -> Result<T> {
        if self.pid != std::process::id() {
            // Neither joined nor detached: the thread's handle belongs to the parent.
            std::mem::forget(self.handle.take());
            return Err(Error::new(ErrorKind::InvalidInput).with_message(
                "a scoped thread is joined in the process that started it, not in a Fork child",
            ));
        }
        if let Some(h) = self.handle.take() {
            // The closure's panic was caught on the thread; what is left cannot panic.
            let _ = h.join();
        }
        if let Some(e) = lock(&self.failure).take() {
            return Err(e);
        }
        lock(&self.value).take().ok_or_else(|| {
            Error::new(ErrorKind::Panicked).with_message("the scoped thread left no value")
        })
    }

    /// Returns `true` once the thread has finished.
    pub fn is_finished(&self) -> bool {
        self.handle
            .as_ref()
            .is_none_or(ScopedJoinHandle::is_finished)
    }
}

impl<T> Drop for ScopedThread<'_, T> {
    fn drop(&mut self) {
        if self.handle.is_some() {
            lock(&self.state.threads).push((self.order, Arc::clone(&self.failure)));
        }
    }
}

/// A Fork child started by [`Scope::fork`]: join it for its value or its failure.
/// Dropped unjoined, the scope waits for the child at its end and reports its failure.
#[must_use = "a dropped handle's child runs on to the end of the scope, and its value is lost"]
pub struct ScopedProcess<'scope, T: DeserializeOwned + 'static> {
    process: Option<Process<T>>,
    /// `join_timeout` returned how the child ended: nothing for the scope to do.
    joined: bool,
    order: u64,
    state: &'scope State,
}

impl<T: DeserializeOwned + 'static> fmt::Debug for ScopedProcess<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedProcess")
            .field("process", &self.process)
            .finish()
    }
}

impl<T: DeserializeOwned + 'static> ScopedProcess<'_, T> {
    fn process(&self) -> &Process<T> {
        self.process.as_ref().expect("present until join or drop")
    }

    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.process().pid()
    }

    /// Returns `true` while the child runs.
    pub fn is_alive(&self) -> bool {
        self.process().is_alive()
    }

    /// Sends the child `SIGTERM`.
    ///
    /// # Errors
    ///
    /// As [`Process::terminate`].
    pub fn terminate(&self) -> Result<()> {
        self.process().terminate()
    }

    /// Sends the child `SIGKILL`.
    ///
    /// # Errors
    ///
    /// As [`Process::kill`].
    pub fn kill(&self) -> Result<()> {
        self.process().kill()
    }

    /// Waits for the child and returns its value.
    ///
    /// # Errors
    ///
    /// As [`Process::join`]: how the child ended if it did not return a value
    /// ([`ErrorKind::Panicked`], [`ErrorKind::Exited`], [`ErrorKind::Signaled`]).
    pub fn join(mut self) -> Result<T> {
        self.process.take().expect("present until join").join()
    }

    /// Waits at most `timeout` for the child; on [`ErrorKind::Timeout`] it runs on and
    /// the handle stays usable.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join), plus [`ErrorKind::Timeout`].
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T> {
        let r = self
            .process
            .as_mut()
            .expect("present until join")
            .join_timeout(timeout);
        // Ended and reported here: the scope has nothing left to wait for or report.
        self.joined |= !r.as_ref().is_err_and(Error::is_timeout);
        r
    }

    /// Like [`join`](Self::join), and also returns what the child wrote when it was
    /// started with [`Builder::capture_output`] (see [`Scope::fork_with`]).
    pub fn join_with_output(mut self) -> (Result<T>, crate::process::Output) {
        self.process
            .take()
            .expect("present until join")
            .join_with_output()
    }
}

impl<T: DeserializeOwned + 'static> Drop for ScopedProcess<'_, T> {
    fn drop(&mut self) {
        match self.process.take() {
            Some(p) if !self.joined => lock(&self.state.children).push((self.order, Box::new(p))),
            _ => {}
        }
    }
}
