//! Async waits for tokio (feature `tokio`): [`Process::join_async`],
//! [`Connection::recv_async`](crate::ipc::Connection::recv_async),
//! [`Receiver::recv_async`](crate::ipc::Receiver::recv_async) and
//! [`Queue::get_async`](crate::ipc::Queue::get_async). None of them blocks a tokio worker thread
//! while it waits.
//!
//! # How they wait
//!
//! * A process and a connection have a descriptor that becomes readable when they may be ready
//!   (the pidfd; the connection's notification socket, the one [`ipc::wait`](crate::ipc::wait)
//!   polls). The future registers a duplicate of it with tokio's reactor
//!   ([`tokio::io::unix::AsyncFd`]), after the same arming [`ipc::wait`](crate::ipc::wait) does,
//!   and then calls the non-blocking `try_*` operation. The duplicate is a registration of its
//!   own, so any number of futures may wait on one object at once, and a new registration sees
//!   the descriptor's current state (nothing is lost between two waits).
//! * A [`Queue`](crate::ipc::Queue) has no descriptor: its consumers sleep on a futex in shared
//!   memory. `get_async` runs a short wait for an item (at most 100 ms, then it looks again) on
//!   tokio's blocking pool, and takes the item with `try_get` on the task's own thread. The
//!   blocking thread only waits, it never takes an item, so dropping the future (a `select!`
//!   or a timeout) loses nothing. `try_get` itself waits at most 100 ms, and only when another
//!   consumer is in the middle of taking an item that is there; giving the queue a descriptor
//!   (as connections have) would change its shared layout, and is left for later.
//!
//! Dropping any of these futures is safe: nothing is received before the future returns it.
//! They need a runtime with I/O enabled (`enable_io`, or `enable_all`).
//!
//! # Safety
//!
//! One `unsafe` call: tokio's `AsyncFd::register_with_interest` (its safe constructors are
//! deprecated as unsound for an arbitrary `AsRawFd`) requires that the descriptor stay open and
//! the same for the `AsyncFd`'s whole life. It is given an [`OwnedFd`](std::os::fd::OwnedFd)
//! duplicated for it alone and moved into it, which nothing else can close.
#![allow(unsafe_code)]

use std::io;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::{Error, Result};
use crate::ipc::{Connection, Queue, Receiver, RecvError, TryRecvError, Waitable};
use crate::Process;

/// How long one blocking-pool wait of [`Queue::get_async`] lasts before it looks again (so a
/// dropped future's wait ends soon after).
const QUEUE_WAIT_BOUND: Duration = Duration::from_millis(100);

/// Withdraws a wake-up request when the waiting future is dropped before it fired.
struct Armed<'a, W: Waitable + ?Sized> {
    object: &'a W,
    done: bool,
}

impl<W: Waitable + ?Sized> Drop for Armed<'_, W> {
    fn drop(&mut self) {
        if !self.done {
            self.object.wait_done(false);
        }
    }
}

/// Waits, without blocking the thread, until `object` may be ready (as one round of
/// [`ipc::wait`](crate::ipc::wait) does for it).
async fn ready<W: Waitable + ?Sized>(object: &W) -> io::Result<()> {
    if object.wait_arm() {
        object.wait_done(false);
        return Ok(());
    }
    let mut armed = Armed {
        object,
        done: false,
    };
    let fd = object.wait_fd().try_clone_to_owned()?;
    // SAFETY: `fd` is an `OwnedFd` duplicated above for this registration alone and moved
    // into it: it stays open, and is the same descriptor, until the `AsyncFd` drops it.
    let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(io::Error::from)?;
    let guard = registered.readable().await?;
    drop(guard);
    armed.done = true;
    object.wait_done(true);
    Ok(())
}

/// A receive that failed to wait (the reactor refused the descriptor).
fn wait_failed(e: io::Error) -> RecvError {
    RecvError::Invalid(Error::os(e))
}

/// Loops `try_recv` and [`ready`] until a message, the end of the stream or an error.
async fn recv_with<W, T>(
    object: &W,
    mut try_recv: impl FnMut() -> std::result::Result<T, TryRecvError>,
) -> std::result::Result<T, RecvError>
where
    W: Waitable + ?Sized,
{
    loop {
        match try_recv() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Empty) => ready(object).await.map_err(wait_failed)?,
            Err(TryRecvError::Disconnected) => return Err(RecvError::Disconnected),
            Err(TryRecvError::Invalid(e)) => return Err(RecvError::Invalid(e)),
        }
    }
}

impl<T> Process<T> {
    /// Waits for the child to exit without blocking the thread, and returns the function's
    /// value: [`join`](Self::join) for async code (feature `tokio`).
    ///
    /// The wait is on the child's pidfd, registered with tokio's reactor. Dropping the future
    /// drops the handle, as dropping the handle does (see [`Process`]).
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join); [`ErrorKind::Os`](crate::ErrorKind::Os) if the reactor refuses
    /// the pidfd.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// let child = multiproc::Process::start(|| 6 * 7)?;
    /// assert_eq!(rt.block_on(child.join_async())?, 42);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub async fn join_async(self) -> Result<T>
    where
        T: DeserializeOwned,
    {
        while self.is_alive() {
            ready(&self).await.map_err(Error::os)?;
        }
        self.join()
    }
}

impl Connection {
    /// Receives a message without blocking the thread while none is there:
    /// [`recv`](Self::recv) for async code (feature `tokio`).
    ///
    /// Dropping the future receives nothing.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv); [`RecvError::Invalid`] with
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) if the reactor refuses the descriptor.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// let (tx, rx) = multiproc::Pipe::new()?;
    /// rt.block_on(async {
    ///     let sender = std::thread::spawn(move || tx.send(7u32));
    ///     assert_eq!(rx.recv_async::<u32>().await?, 7);
    ///     sender.join().unwrap()?;
    ///     Ok::<(), multiproc::Error>(())
    /// })?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub async fn recv_async<T: DeserializeOwned>(&self) -> std::result::Result<T, RecvError> {
        recv_with(self, || self.try_recv()).await
    }

    /// Receives a byte message without blocking the thread while none is there:
    /// [`recv_bytes`](Self::recv_bytes) for async code (feature `tokio`).
    ///
    /// # Errors
    ///
    /// As [`recv_async`](Self::recv_async).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub async fn recv_bytes_async(&self) -> std::result::Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        recv_with(self, || self.try_recv_bytes_into(&mut buf).map(|_| ())).await?;
        Ok(buf)
    }
}

impl<T: DeserializeOwned> Receiver<T> {
    /// Receives a value without blocking the thread while none is there:
    /// [`recv`](Self::recv) for async code (feature `tokio`).
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_async`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub async fn recv_async(&self) -> std::result::Result<T, RecvError> {
        recv_with(self, || self.try_recv()).await
    }
}

impl<T: serde::Serialize + DeserializeOwned> Queue<T> {
    /// Takes the item at the front without blocking the thread while there is none:
    /// [`get`](Self::get) for async code (feature `tokio`).
    ///
    /// A queue has no descriptor to register with the reactor: the wait for an item runs on
    /// tokio's blocking pool (one short wait at a time, which never takes an item), and the item
    /// is taken here with [`try_get`](Self::try_get). Dropping the future takes nothing. See the
    /// crate's `tokio_io` notes in the feature's docs.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// let q = multiproc::Queue::<String>::new()?;
    /// let producer = q.clone();
    /// rt.block_on(async {
    ///     let p = std::thread::spawn(move || producer.put("hi".to_owned()));
    ///     assert_eq!(q.get_async().await.unwrap(), "hi");
    ///     p.join().unwrap().unwrap();
    /// });
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub async fn get_async(&self) -> std::result::Result<T, RecvError> {
        loop {
            match self.try_get() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Empty) => {
                    let wait = self.item_waiter(QUEUE_WAIT_BOUND);
                    if let Err(e) = tokio::task::spawn_blocking(wait).await {
                        return Err(RecvError::Invalid(Error::os(io::Error::other(e))));
                    }
                }
                Err(TryRecvError::Disconnected) => return Err(RecvError::Disconnected),
                Err(TryRecvError::Invalid(e)) => return Err(RecvError::Invalid(e)),
            }
        }
    }
}
