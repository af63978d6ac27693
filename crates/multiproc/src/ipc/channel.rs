//! Typed channels: [`channel`] returns a [`Sender<T>`] and a [`Receiver<T>`], in
//! std's and crossbeam's `(tx, rx)` order, over a one-way [`Pipe`]; [`Select`] waits
//! on many receivers.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::connection::Connection;
use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::pipe::{Pipe, PipeBuilder};
use super::wait::{self, Waitable};
use crate::error::{Error, ErrorKind, Result};

/// Creates a typed channel between threads or processes: values of type `T` sent
/// on the [`Sender`] arrive, in order, at the [`Receiver`].
///
/// The channel is a one-way [`Pipe`] whose ends only carry `T` (a ring buffer of
/// 1 MiB in shared memory, messages up to 1 GiB; see [`channel_with`] for other
/// sizes), so it has the pipe's costs and guarantees: a send is complete when it
/// returns, a receiver gets end of stream ([`RecvError::Disconnected`]) once every
/// sender is gone (dropped, or its process exited or was killed) and everything
/// sent was received, and a sender gets [`SendError::Disconnected`], with its value
/// back, once the receiver is gone.
///
/// Both ends are `Serialize`/`Deserialize`: pass them to a child as the argument of
/// [`Process::start_with`](crate::Process::start_with) (by every start method), or
/// send them through a [`Connection`] to a process that is already running. A
/// [`Sender`] can be cloned to send from several threads of one process, as can the
/// shared `&Receiver`; as with a pipe, two *processes* must not send on (or receive
/// from) the same channel at the same time: their messages would interleave (the
/// receiver reports a corrupted stream, it does not crash). Use a
/// [`Queue`](crate::Queue) for many producers or consumers in different processes.
///
/// # Errors
///
/// As [`Pipe::new`]: [`ErrorKind::Os`] if the shared memory or the socket pair
/// cannot be created.
///
/// # Examples
///
/// ```
/// use multiproc::ipc::{self, Sender};
/// use multiproc::Process;
///
/// fn squares(tx: Sender<u64>) {
///     for n in 1..=3u64 {
///         tx.send(n * n).unwrap();
///     }
/// } // `tx` dropped: the receiver's iteration ends
///
/// let (tx, rx) = ipc::channel::<u64>()?;
/// let p = Process::start_with(squares, tx)?;
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 4, 9]);
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn channel<T>() -> Result<(Sender<T>, Receiver<T>)> {
    channel_with(Pipe::builder())
}

/// Creates a typed channel with the ring capacity and maximum message size of
/// `pipe` (its [`duplex`](PipeBuilder::duplex) setting is ignored: a channel is
/// one-way).
///
/// # Errors
///
/// As [`PipeBuilder::build`].
///
/// # Examples
///
/// ```
/// use multiproc::ipc::{self, Pipe};
///
/// let (tx, rx) = ipc::channel_with::<String>(Pipe::builder().capacity(4096).max_message_size(64))?;
/// tx.send("short".to_string())?;
/// assert!(tx.send("x".repeat(100)).unwrap_err().is_rejected());
/// assert_eq!(rx.recv()?, "short");
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn channel_with<T>(pipe: PipeBuilder) -> Result<(Sender<T>, Receiver<T>)> {
    let (rx, tx) = pipe.duplex(false).build()?;
    Ok((
        Sender {
            conn: Arc::new(tx),
            _t: PhantomData,
        },
        Receiver {
            conn: rx,
            _t: PhantomData,
        },
    ))
}

/// The sending half of a typed [`channel`].
///
/// Cloning it gives another handle to the same end, for another thread of this
/// process; the receiver sees end of stream when every clone (in every process) is
/// gone.
pub struct Sender<T> {
    conn: Arc<Connection>,
    // `fn(T)`: a `Sender<T>` holds no `T`, so it is `Send` and `Sync` for every `T`.
    _t: PhantomData<fn(T)>,
}

/// The receiving half of a typed [`channel`].
///
/// It can be shared by the threads of one process (`&self` methods; receives are
/// serialized with each other), and waited on with [`Select`] or
/// [`ipc::wait`](crate::ipc::wait).
pub struct Receiver<T> {
    conn: Connection,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize> Sender<T> {
    /// Sends `value`, waiting while the channel's buffer is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] if the receiver is gone; [`SendError::Rejected`]
    /// if the value fails to serialize or is over the maximum message size. The value
    /// comes back either way.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = multiproc::ipc::channel::<Vec<u8>>()?;
    /// tx.send(vec![1, 2])?;
    /// drop(rx);
    /// assert_eq!(tx.send(vec![3]).unwrap_err().into_inner(), [3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send(&self, value: T) -> std::result::Result<(), SendError<T>> {
        self.conn.send(value)
    }

    /// Sends `value` if the buffer has room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if it has not, otherwise as [`send`](Self::send).
    pub fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
        self.conn.try_send(value)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if there was no room in time, otherwise as
    /// [`send`](Self::send).
    pub fn send_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> std::result::Result<(), SendTimeoutError<T>> {
        self.conn.send_timeout(value, timeout)
    }
}

impl<T: DeserializeOwned> Receiver<T> {
    /// Receives the next value, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once every sender is gone and everything was
    /// received; [`RecvError::Invalid`] if a message is unusable (it does not decode,
    /// or the stream is corrupted).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = multiproc::ipc::channel::<(u8, String)>()?;
    /// tx.send((1, "one".into()))?;
    /// drop(tx);
    /// assert_eq!(rx.recv()?, (1, "one".into()));
    /// assert!(rx.recv().unwrap_err().is_disconnected());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv(&self) -> std::result::Result<T, RecvError> {
        self.conn.recv()
    }

    /// Receives a value if one is there now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none is, otherwise as [`recv`](Self::recv).
    pub fn try_recv(&self) -> std::result::Result<T, TryRecvError> {
        self.conn.try_recv()
    }

    /// Receives a value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came in time, otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> std::result::Result<T, RecvTimeoutError> {
        self.conn.recv_timeout(timeout)
    }

    /// A blocking iterator over received values; it ends at end of stream (or at the
    /// first unusable message).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values there now; it never blocks.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }
}

/// Blocking iterator of a [`Receiver`] (see [`Receiver::iter`]).
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T: DeserializeOwned> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator of a [`Receiver`] (see [`Receiver::try_iter`]).
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T: DeserializeOwned> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator of a [`Receiver`].
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T: DeserializeOwned> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T: DeserializeOwned> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: DeserializeOwned> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            conn: Arc::clone(&self.conn),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// Hands a duplicate of this end to another process (as a [`Connection`] does).
impl<T> Serialize for Sender<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.conn.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Sender<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let conn = Connection::deserialize(d)?;
        if !conn.is_writable() {
            return Err(serde::de::Error::custom("not the sending end of a channel"));
        }
        Ok(Sender {
            conn: Arc::new(conn),
            _t: PhantomData,
        })
    }
}

/// Hands a duplicate of this end to another process (as a [`Connection`] does).
impl<T> Serialize for Receiver<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.conn.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Receiver<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let conn = Connection::deserialize(d)?;
        if !conn.is_readable() {
            return Err(serde::de::Error::custom(
                "not the receiving end of a channel",
            ));
        }
        Ok(Receiver {
            conn,
            _t: PhantomData,
        })
    }
}

impl<T> wait::sealed::Sealed for Receiver<T> {}

/// Ready when a receive would not block (a value is there, or end of stream).
impl<T> Waitable for Receiver<T> {
    fn wait_arm(&self) -> bool {
        self.conn.wait_arm()
    }
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.conn.wait_fd()
    }
    fn wait_done(&self, fired: bool) -> bool {
        self.conn.wait_done(fired)
    }
}

/// Waits until one of several receivers (or anything [`ipc::wait`](crate::ipc::wait)
/// accepts) is ready, like crossbeam's `Select::ready`.
///
/// Add operations with [`recv`](Self::recv) (or [`add`](Self::add)), each of which
/// returns its index, then call [`ready`](Self::ready) for the index of one that is
/// ready, and receive from it. Receivers of different types mix freely. When
/// several are ready, successive calls take them in turn, so a busy receiver does not
/// starve the others. "Ready" means a receive would not block *now*: if another
/// thread receives from the same receiver in between, use
/// [`try_recv`](Receiver::try_recv).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::ipc::{self, Select};
///
/// let (tx1, rx1) = ipc::channel::<u32>()?;
/// let (tx2, rx2) = ipc::channel::<String>()?;
/// tx2.send("hi".to_string())?;
///
/// let mut sel = Select::new();
/// let i1 = sel.recv(&rx1);
/// let i2 = sel.recv(&rx2);
/// let i = sel.ready_timeout(Duration::from_secs(5))?.expect("one is ready");
/// assert_eq!(i, i2);
/// assert_eq!(rx2.recv()?, "hi");
/// assert_eq!(sel.try_ready()?, None);
/// # drop((tx1, i1));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Default)]
pub struct Select<'a> {
    items: Vec<&'a dyn Waitable>,
    /// Where the search for a ready one starts (fairness).
    next: usize,
}

impl<'a> Select<'a> {
    /// An empty selection.
    pub fn new() -> Select<'a> {
        Select::default()
    }

    /// Adds a receive from `rx`; returns its index.
    pub fn recv<T>(&mut self, rx: &'a Receiver<T>) -> usize {
        self.add(rx)
    }

    /// Adds anything [`ipc::wait`](crate::ipc::wait) accepts (a
    /// [`Connection`], a [`Process`](crate::Process), a receiver); returns its index.
    pub fn add(&mut self, w: &'a dyn Waitable) -> usize {
        self.items.push(w);
        self.items.len() - 1
    }

    /// Blocks until one operation is ready; returns its index.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the selection is empty (it would block for
    /// ever); [`ErrorKind::Os`] if `poll` fails.
    pub fn ready(&mut self) -> Result<usize> {
        if self.items.is_empty() {
            return Err(Error::new(ErrorKind::InvalidInput)
                .with_message("select over no operations would block for ever"));
        }
        loop {
            if let Some(i) = self.pick(None)? {
                return Ok(i);
            }
        }
    }

    /// Returns the index of an operation ready now, if any.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if `poll` fails.
    pub fn try_ready(&mut self) -> Result<Option<usize>> {
        self.pick(Some(Duration::ZERO))
    }

    /// Waits at most `timeout` for an operation to be ready; returns its index, or
    /// `None` on timeout.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if `poll` fails.
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<Option<usize>> {
        self.pick(Some(timeout))
    }

    fn pick(&mut self, timeout: Option<Duration>) -> Result<Option<usize>> {
        let ready = wait::wait(&self.items, timeout)?;
        let i = ready
            .iter()
            .copied()
            .find(|&i| i >= self.next)
            .or_else(|| ready.first().copied());
        if let Some(i) = i {
            self.next = i + 1;
        }
        Ok(i)
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("operations", &self.items.len())
            .finish_non_exhaustive()
    }
}
