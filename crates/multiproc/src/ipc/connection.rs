//! [`Connection`]: one end of a [`Pipe`](super::Pipe), sending and receiving messages
//! through rings in shared memory, with a socket beside them for peer liveness and
//! file descriptors.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::fail::{corrupted, read_only, too_large, too_large_in, write_only, Fail};
use super::frame::{self, Patience, Reassembly, RecvFail};
use super::ring::Ring;
use super::side::{self, Inbox};
use super::typecheck;
use super::wait::{self, Waitable};
use crate::backoff::LIVENESS_TICK;
use crate::codec;
use crate::error::{Error, ErrorKind, Result};
use crate::shm::SharedMemory;
use crate::sys;

/// One end of a [`Pipe`](super::Pipe): sends and receives messages (typed, or raw bytes).
///
/// Typed messages are encoded with the crate's [codec](crate::codec) (postcard),
/// and `recv::<T>` must name the type that was sent: the stream itself is untyped
/// ([`channel`](crate::ipc::channel) gives ends that carry one type only).
/// [`send_bytes`](Self::send_bytes) and [`recv_bytes`](Self::recv_bytes) see the
/// encoded bytes of a typed message.
///
/// In debug builds, receiving a value as another type than it was sent is an error
/// ([`RecvError::Invalid`], [`ErrorKind::Decode`], "type mismatch"): sending `-1i64`
/// and receiving `u64`, or a `String` as `Vec<u8>`. Types that serde encodes alike
/// still pass (`&str` and `String`, `&T`, `Box<T>` and `T`, a newtype and its field,
/// `HashMap` and `BTreeMap`). For this, a debug build appends 16 bytes to each typed
/// message (a hash of the value's serde shape and a marker), which
/// [`recv_bytes`](Self::recv_bytes) sees too (the codec ignores them when decoding);
/// both ends run the same executable, hence the same profile. Release builds neither
/// add nor check anything. Not checked: the element type of an empty collection,
/// and messages sent with `send_bytes`.
///
/// A `Connection` can be shared by threads (`&self` methods; sends are serialized
/// with each other, and receives with each other) and handed to a child process at
/// start by every start method. As in Python, two *processes* must not use the same
/// end at the same time: their messages would interleave (the receiver reports a
/// corrupted stream, it does not crash).
///
/// Another process is untrusted input: every word and byte of the rings it can
/// write is checked before use. A length over the maximum message size is refused
/// before anything is allocated (the receiver's buffer grows only with the bytes
/// that actually arrive), and control words that cannot be make every later
/// operation fail with [`ErrorKind::Corrupt`] (inside [`RecvError::Invalid`] or
/// [`SendError::Rejected`]), never a panic or a wait past a deadline.
///
/// End of stream: once every copy of the peer end is gone (dropped, or its process
/// exited or was killed) and everything it sent has been received, receives return
/// [`RecvError::Disconnected`]. Sends fail with [`SendError::Disconnected`] once every
/// copy of the peer end was dropped or closed (a sleeping sender or receiver is woken
/// at once); if the peer's process was killed instead, sleepers notice within about
/// 50 ms, and sends succeed while the buffer has room (as a socket buffers), then
/// fail. With [`StartMethod::Fork`](crate::StartMethod::Fork)
/// a child inherits a copy of every descriptor of its parent, including the parent's
/// own end of the pipe: that end is then gone only when both have dropped it (the
/// same holds in Python), so end a conversation with a message of its own when the
/// child was forked.
///
/// Values that own file descriptors (a `Connection`, [`SharedMemory`], a [`Lock`](crate::sync::Lock),
/// or your own type with a field under
/// [`#[serde(with = "multiproc::ipc::codec::fd")]`](crate::codec::fd)) can be
/// sent too, to a process that is already running: the receiver gets its own copies
/// of the descriptors (`SCM_RIGHTS`). At most 253 descriptors go in one message. (A
/// [`Queue`](crate::Queue) refuses them: its many senders and receivers share no
/// socket.)
pub struct Connection {
    mem: SharedMemory,
    /// `None` only while dropping (see `Drop`).
    sock: Option<OwnedFd>,
    side: u8,
    duplex: bool,
    max_message: usize,
    tx: Option<Mutex<TxState>>,
    rx: Option<Mutex<RxState>>,
    /// Set once the peer was seen gone (it cannot come back).
    peer_gone: AtomicBool,
}

struct TxState {
    ring: Ring<SharedMemory>,
}

thread_local! {
    /// The buffer a typed send encodes into, reused by the thread's next send.
    static SEND_SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

struct RxState {
    ring: Ring<SharedMemory>,
    scratch: Vec<u8>,
    /// Set when the stream was found corrupted; every later receive fails with it.
    broken: Option<String>,
    /// Descriptors that came with messages, by message (see `ipc::side`).
    inbox: Inbox,
    /// The sequence number of the last message received.
    last_seq: Option<u32>,
    /// The message a receive was in the middle of when its deadline passed.
    partial: Reassembly,
}

/// What travels when a `Connection` is handed to another process (and what
/// [`PipeBuilder::build`](super::PipeBuilder::build) makes each end from).
#[derive(Serialize, Deserialize)]
pub(super) struct Wire {
    pub(super) mem: SharedMemory,
    #[serde(with = "crate::codec::fd")]
    pub(super) sock: OwnedFd,
    /// 0 or 1: ring `k` carries the messages side `k` sends.
    pub(super) side: u8,
    pub(super) duplex: bool,
    pub(super) max_message: u64,
}

impl Connection {
    pub(super) fn from_wire(w: Wire) -> Result<Connection> {
        let corrupt = |e: super::ring::Corrupt| Error::new(ErrorKind::Decode).with_message(e.0);
        let len = w.mem.len();
        let rings = if w.duplex { 2 } else { 1 };
        if w.side > 1 || len % rings != 0 {
            return Err(Error::new(ErrorKind::Decode).with_message("invalid pipe end"));
        }
        let stride = len / rings;
        // Ring `k` carries messages sent by side `k`.
        let send_ring = if w.duplex || w.side == 0 {
            Some(
                Ring::open(w.mem.clone(), usize::from(w.side) * stride % len, len)
                    .map_err(corrupt)?,
            )
        } else {
            None
        };
        let recv_ring = if w.duplex || w.side == 1 {
            let k = if w.duplex { 1 - usize::from(w.side) } else { 0 };
            Some(Ring::open(w.mem.clone(), k * stride, len).map_err(corrupt)?)
        } else {
            None
        };
        Ok(Connection {
            mem: w.mem,
            sock: Some(w.sock),
            side: w.side,
            duplex: w.duplex,
            max_message: usize::try_from(w.max_message).unwrap_or(usize::MAX),
            tx: send_ring.map(|ring| Mutex::new(TxState { ring })),
            rx: recv_ring.map(|ring| {
                Mutex::new(RxState {
                    ring,
                    scratch: Vec::new(),
                    broken: None,
                    inbox: Inbox::default(),
                    last_seq: None,
                    partial: Reassembly::default(),
                })
            }),
            peer_gone: AtomicBool::new(false),
        })
    }

    /// Closes this end (Python's `Connection.close`): the same as dropping it. The
    /// peer sees end of stream once every copy of this end is closed and it has
    /// received everything sent before.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::Pipe::new()?;
    /// a.send(1u8)?;
    /// a.close();
    /// assert_eq!(b.recv::<u8>()?, 1);
    /// assert!(b.recv::<u8>().unwrap_err().is_disconnected());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn close(self) {}

    /// Returns `true` if this end can send.
    pub fn is_writable(&self) -> bool {
        self.tx.is_some()
    }

    /// Returns `true` if this end can receive.
    pub fn is_readable(&self) -> bool {
        self.rx.is_some()
    }

    /// The largest message this end sends or accepts.
    pub fn max_message_size(&self) -> usize {
        self.max_message
    }

    /// The ring this end receives from: its memory and base offset (test support).
    pub(crate) fn recv_ring_base(&self) -> Option<(SharedMemory, usize)> {
        self.rx.as_ref()?;
        let rings = if self.duplex { 2 } else { 1 };
        let k = if self.duplex {
            1 - usize::from(self.side)
        } else {
            0
        };
        Some((self.mem.clone(), k * (self.mem.len() / rings)))
    }

    /// The ring this end sends on: its memory and base offset (test support).
    pub(crate) fn send_ring_base(&self) -> Option<(SharedMemory, usize)> {
        self.tx.as_ref()?;
        let rings = if self.duplex { 2 } else { 1 };
        let k = if self.duplex {
            usize::from(self.side)
        } else {
            0
        };
        Some((self.mem.clone(), k * (self.mem.len() / rings)))
    }

    /// This end's socket (see `ipc::side`).
    fn sock(&self) -> BorrowedFd<'_> {
        self.sock.as_ref().expect("open until dropped").as_fd()
    }

    /// Whether the other end is gone (every copy of it closed).
    pub(crate) fn peer_gone(&self) -> bool {
        self.peer_is_gone()
    }

    fn peer_is_gone(&self) -> bool {
        if self.peer_gone.load(Ordering::Relaxed) {
            return true;
        }
        let gone = sys::socket::peer_gone(self.sock());
        if gone {
            self.peer_gone.store(true, Ordering::Relaxed);
        }
        gone
    }

    fn tx(&self) -> Option<MutexGuard<'_, TxState>> {
        self.tx
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn rx(&self) -> Option<MutexGuard<'_, RxState>> {
        self.rx
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    // ---- sending ----

    fn send_raw(&self, tx: &TxState, bytes: &[u8], patience: Patience) -> Result<(), Fail> {
        if bytes.len() > self.max_message {
            return Err(Fail::Rejected(too_large(bytes.len(), self.max_message)));
        }
        // A receiving end was dropped: if it was the last copy of the peer, fail now
        // (as a socket or a crossbeam channel does) rather than fill the buffer.
        if self.peer_gone.load(Ordering::Relaxed)
            || (tx.ring.take_receiver_left() && self.peer_is_gone())
        {
            return Err(Fail::Disconnected);
        }
        let notify = frame::send(&tx.ring, bytes, patience, &mut || !self.peer_is_gone())?;
        if notify {
            sys::socket::nudge(self.sock());
        }
        Ok(())
    }

    /// Sends a message that owns descriptors: its mark on the socket, then the
    /// message (see `ipc::side`).
    fn send_with_fds(
        &self,
        tx: &TxState,
        bytes: &[u8],
        fds: &[OwnedFd],
        patience: Patience,
    ) -> Result<(), Fail> {
        if bytes.len() > self.max_message {
            return Err(Fail::Rejected(too_large(bytes.len(), self.max_message)));
        }
        if fds.len() > sys::socket::MAX_FDS {
            return Err(Fail::Rejected(Error::new(ErrorKind::Encode).with_message(
                format!(
                    "a message can carry at most {} file descriptors, this one owns {}",
                    sys::socket::MAX_FDS,
                    fds.len()
                ),
            )));
        }
        // Room for the message's first record before the mark goes out, so that the
        // message is certain to follow its mark (this is the ring's only producer).
        let first = bytes.len().min(tx.ring.max_record());
        frame::wait_fit(&tx.ring, first, patience, &mut || !self.peer_is_gone())?;
        let mark = side::mark(tx.ring.put_count(), fds.len());
        let borrowed = sys::socket::borrow_all(fds);
        let mut sent = 0;
        while sent < mark.len() {
            let attach: &[BorrowedFd<'_>] = if sent == 0 { &borrowed } else { &[] };
            match sys::socket::try_send_with_fds(self.sock(), &mark[sent..], attach) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // The socket buffer is full of marks the receiver has not read.
                    if sent == 0 {
                        match patience {
                            Patience::Try => return Err(Fail::Busy),
                            Patience::Until(d) if Instant::now() >= d => return Err(Fail::Busy),
                            _ => {}
                        }
                    }
                    if self.peer_is_gone() {
                        return Err(Fail::Disconnected);
                    }
                    sys::socket::wait_writable(self.sock(), LIVENESS_TICK);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Err(Fail::Disconnected)
                }
                Err(e) => {
                    return Err(Fail::Rejected(
                        Error::new(ErrorKind::Os)
                            .with_message("cannot send file descriptors")
                            .with_source(e),
                    ))
                }
            }
        }
        self.send_raw(tx, bytes, Patience::Forever)
    }

    fn send_value<T: Serialize>(&self, value: T, patience: Patience) -> Result<(), (T, Fail)> {
        if self.tx.is_none() {
            return Err((value, Fail::Rejected(read_only())));
        }
        // Encode before taking the sending side, into this thread's buffer: a value
        // whose `Serialize` sends on this same connection (ipc-channel's
        // `test_reentrant`) must not deadlock; its message goes first (and finds
        // the buffer taken, so it uses a new one).
        let mut buf = SEND_SCRATCH.take();
        buf.clear();
        // Debug builds: the value's shape goes in a trailer for the receiver's type
        // check (see `typecheck`).
        let encoded = typecheck::encode_into(&value, &mut buf);
        let r = match (encoded, self.tx()) {
            (Ok(fds), Some(tx)) if fds.is_empty() => self.send_raw(&tx, &buf, patience),
            (Ok(fds), Some(tx)) => self.send_with_fds(&tx, &buf, &fds, patience),
            (Err(e), _) => Err(Fail::Rejected(e)),
            (Ok(_), None) => Err(Fail::Rejected(read_only())),
        };
        if buf.capacity() <= codec::KEEP_SCRATCH {
            SEND_SCRATCH.set(buf);
        }
        r.map_err(|f| (value, f))
    }

    fn send_bytes_with(&self, bytes: &[u8], patience: Patience) -> Result<(), Fail> {
        let Some(tx) = self.tx() else {
            return Err(Fail::Rejected(read_only()));
        };
        self.send_raw(&tx, bytes, patience)
    }

    /// Sends `value`, waiting while the buffer is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] if the peer is gone (every copy of it dropped:
    /// at once; its process killed: once the buffer is full);
    /// [`SendError::Rejected`] if the value fails to serialize, is over the
    /// maximum message size, owns more than 253 file descriptors, or this end is
    /// receive-only.
    /// The value comes back either way.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::Pipe::new()?;
    /// a.send(vec![1u32, 2, 3])?;
    /// assert_eq!(b.recv::<Vec<u32>>()?, [1, 2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send<T: Serialize>(&self, value: T) -> Result<(), SendError<T>> {
        self.send_value(value, Patience::Forever)
            .map_err(|(v, f)| f.into_send(v))
    }

    /// Sends `value` if the buffer has room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if it has not, otherwise as [`send`](Self::send). A
    /// message larger than the whole buffer is always `Full` here: send it with
    /// [`send`](Self::send).
    pub fn try_send<T: Serialize>(&self, value: T) -> Result<(), TrySendError<T>> {
        self.send_value(value, Patience::Try)
            .map_err(|(v, f)| f.into_try_send(v))
    }

    /// Sends `value`, waiting at most `timeout` for room in the buffer.
    ///
    /// The timeout bounds the whole send. A message larger than a quarter of the
    /// buffer goes in pieces as the receiver makes room; if the deadline passes
    /// after some went in, the message is abandoned (the receiver drops the part it
    /// got when the next message starts, it never delivers a partial message) and
    /// the value comes back with [`SendTimeoutError::Timeout`].
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if there was no room in time, otherwise as
    /// [`send`](Self::send).
    pub fn send_timeout<T: Serialize>(
        &self,
        value: T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<T>> {
        self.send_value(value, Patience::within(timeout))
            .map_err(|(v, f)| f.into_send_timeout(v))
    }

    /// Sends raw bytes as one message, waiting while the buffer is full.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the peer is gone; [`ErrorKind::InvalidInput`] if
    /// the message is over the maximum size or this end is receive-only.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::Pipe::new()?;
    /// a.send_bytes(b"raw")?;
    /// let mut buf = Vec::new();
    /// assert_eq!(b.recv_bytes_into(&mut buf)?, 3);
    /// assert_eq!(buf, b"raw");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_bytes_with(bytes, Patience::Forever)
            .map_err(Fail::into_error)
    }

    /// Sends raw bytes if the buffer has room now.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if it has not, otherwise as [`send_bytes`](Self::send_bytes).
    pub fn try_send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_bytes_with(bytes, Patience::Try)
            .map_err(Fail::into_error)
    }

    /// Sends raw bytes, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if there was no room in time, otherwise as
    /// [`send_bytes`](Self::send_bytes).
    pub fn send_bytes_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<()> {
        self.send_bytes_with(bytes, Patience::within(timeout))
            .map_err(Fail::into_error)
    }

    // ---- receiving ----

    fn recv_into_with(
        &self,
        out: &mut Vec<u8>,
        patience: Patience,
        max_len: usize,
    ) -> Result<(), Fail> {
        let Some(mut rx) = self.rx() else {
            return Err(Fail::Invalid(write_only()));
        };
        self.recv_locked(&mut rx, out, patience, max_len).map(drop)
    }

    fn recv_locked(
        &self,
        rx: &mut RxState,
        out: &mut Vec<u8>,
        patience: Patience,
        max_len: usize,
    ) -> Result<u32, Fail> {
        if let Some(m) = &rx.broken {
            return Err(Fail::Invalid(corrupted(m)));
        }
        loop {
            let RxState {
                ring,
                inbox,
                last_seq,
                partial,
                ..
            } = &mut *rx;
            let r = frame::recv(ring, out, max_len, patience, false, partial, &mut |_| {
                // Asleep with nothing to read (every 50 ms): read marks off the socket,
                // dropping those of messages received as raw bytes, so a sender of
                // descriptors is never stuck on a socket full of them.
                inbox.pump(self.sock());
                if let Some(seq) = *last_seq {
                    inbox.forget_through(seq);
                }
                !self.peer_is_gone()
            });
            return match r {
                Ok(seq) => {
                    rx.last_seq = Some(seq);
                    Ok(seq)
                }
                Err(RecvFail::Empty) => {
                    // Data sent before the peer went away is still delivered.
                    if self.peer_is_gone() && !rx.ring.has_data() {
                        Err(Fail::Disconnected)
                    } else {
                        Err(Fail::Busy)
                    }
                }
                Err(RecvFail::TimedOut) => Err(Fail::Busy),
                Err(RecvFail::Stopped) => {
                    if rx.ring.has_data() {
                        continue;
                    }
                    Err(Fail::Disconnected)
                }
                Err(RecvFail::TooLarge(n)) => Err(Fail::Invalid(too_large_in(n, max_len))),
                Err(RecvFail::Corrupt(c)) => {
                    let e = corrupted(&c.0);
                    rx.broken = Some(c.0);
                    Err(Fail::Invalid(e))
                }
            };
        }
    }

    fn recv_value<T: DeserializeOwned>(&self, patience: Patience) -> Result<T, Fail> {
        let Some(mut rx) = self.rx() else {
            return Err(Fail::Invalid(write_only()));
        };
        let rx = &mut *rx;
        let mut buf = std::mem::take(&mut rx.scratch);
        let r = self.recv_locked(rx, &mut buf, patience, self.max_message);
        // Debug builds: the sender's type trailer, checked against what `T` asks for.
        let (len, sent_shape) = typecheck::split(&buf);
        let shape = std::cell::Cell::new(0);
        let seed = typecheck::Traced::<T>::new(&shape);
        let r = r.and_then(
            |seq| match codec::decode_seed_unless_fds(&buf[..len], seed) {
                Ok(Some(v)) => Ok(v),
                Ok(None) => {
                    let fds = rx.inbox.take(self.sock(), seq).map_err(|m| {
                        Fail::Invalid(Error::new(ErrorKind::Decode).with_message(m))
                    })?;
                    codec::decode_seed(&buf[..len], fds, seed).map_err(Fail::Invalid)
                }
                Err(e) => Err(Fail::Invalid(e)),
            },
        );
        let r = r.and_then(|v| match typecheck::verify::<T>(shape.get(), sent_shape) {
            Ok(()) => Ok(v),
            Err(m) => Err(Fail::Invalid(Error::new(ErrorKind::Decode).with_message(m))),
        });
        if buf.capacity() <= codec::KEEP_SCRATCH {
            rx.scratch = buf;
        }
        r
    }

    /// Receives a message of type `T`, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] at end of stream; [`RecvError::Invalid`] if the
    /// message does not decode as `T`, is over the maximum size, or the stream is
    /// corrupted.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::Pipe::new()?;
    /// a.send((1u8, "x".to_string()))?;
    /// drop(a);
    /// assert_eq!(b.recv::<(u8, String)>()?, (1, "x".to_string()));
    /// assert!(b.recv::<u8>().unwrap_err().is_disconnected());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        self.recv_value(Patience::Forever).map_err(Fail::into_recv)
    }

    /// Receives a message if one is there now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none is, otherwise as [`recv`](Self::recv).
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<T, TryRecvError> {
        self.recv_value(Patience::Try).map_err(Fail::into_try_recv)
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// The timeout bounds the whole call, including the middle of a large message
    /// whose sender stalled (stopped, or slower than the deadline): the call then
    /// returns [`RecvTimeoutError::Timeout`] and this end keeps the part received,
    /// and the next receive on it (any of them) continues that message. A
    /// non-blocking receive does the same when a message is only partly there.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came in time, otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_timeout<T: DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError> {
        self.recv_value(Patience::within(timeout))
            .map_err(Fail::into_recv_timeout)
    }

    /// Receives one message as raw bytes.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        let mut v = Vec::new();
        self.recv_bytes_into(&mut v).map(|_| v)
    }

    /// Receives one message as raw bytes if it is at most `maxlength` bytes long
    /// (Python's `recv_bytes(maxlength)`).
    ///
    /// A longer message is dropped whole and reported as [`RecvError::Invalid`]
    /// ([`ErrorKind::Decode`]); unlike Python's, which raises `OSError` and leaves
    /// the connection unusable, this connection goes on with the next message. The
    /// pipe's own [maximum message size](super::PipeBuilder::max_message_size) still
    /// applies when it is smaller.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`RecvError::Invalid`] for a message over
    /// `maxlength`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::Pipe::new()?;
    /// a.send_bytes(b"too long")?;
    /// a.send_bytes(b"ok")?;
    /// assert!(b.recv_bytes_max(4).is_err());
    /// assert_eq!(b.recv_bytes_max(4)?, b"ok");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>, RecvError> {
        let mut v = Vec::new();
        self.recv_into_with(&mut v, Patience::Forever, maxlength.min(self.max_message))
            .map_err(Fail::into_recv)?;
        Ok(v)
    }

    /// Receives one message into `buf`, replacing its contents; returns its length.
    /// Reusing one buffer avoids an allocation per message.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_bytes_into(&self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        self.recv_into_with(buf, Patience::Forever, self.max_message)
            .map(|()| buf.len())
            .map_err(Fail::into_recv)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into) if a message is there now.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_bytes_into(&self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        self.recv_into_with(buf, Patience::Try, self.max_message)
            .map(|()| buf.len())
            .map_err(Fail::into_try_recv)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_bytes_into_timeout(
        &self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_into_with(buf, Patience::within(timeout), self.max_message)
            .map(|()| buf.len())
            .map_err(Fail::into_recv_timeout)
    }

    /// Returns `true` if a receive would not block: a message is there, or the peer
    /// is gone (then the receive reports end of stream). Waits up to `timeout` for
    /// that (`Duration::ZERO`: just look), like Python's `Connection.poll`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (a, b) = multiproc::Pipe::new()?;
    /// assert!(!b.poll(Duration::ZERO));
    /// a.send(5u8)?;
    /// assert!(b.poll(Duration::from_secs(1)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn poll(&self, timeout: Duration) -> bool {
        let Some(rx) = self.rx() else { return false };
        if rx.ring.has_data() || rx.broken.is_some() {
            return true;
        }
        if timeout.is_zero() {
            return self.peer_is_gone() || rx.ring.has_data();
        }
        let deadline = Instant::now().checked_add(timeout);
        !matches!(
            rx.ring.wait_data(deadline, &mut || !self.peer_is_gone()),
            super::ring::Waited::TimedOut
        )
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Close the socket first: if this was the last copy of this end, the peer
        // sees it gone from now on. Then tell the peer's sender to look (its next
        // send fails instead of filling the buffer) and wake the peer's sleepers, so
        // that they look now instead of at their next 50 ms tick. (In that order: a
        // peer that looked before the close would go on as if nothing happened.)
        drop(self.sock.take());
        for rx in self.rx.iter_mut() {
            let rx = rx.get_mut().unwrap_or_else(|e| e.into_inner());
            rx.ring.mark_receiver_left();
            rx.ring.wake_everyone();
        }
        for tx in self.tx.iter_mut() {
            tx.get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .ring
                .wake_everyone();
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("readable", &self.is_readable())
            .field("writable", &self.is_writable())
            .field("max_message_size", &self.max_message)
            .finish_non_exhaustive()
    }
}

/// Hands a duplicate of this end to another process (through multiproc's own
/// channels only, see [`codec::fd`](crate::codec::fd)).
impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct WireRef<'a> {
            mem: &'a SharedMemory,
            #[serde(with = "crate::codec::fd")]
            sock: BorrowedFd<'a>,
            side: u8,
            duplex: bool,
            max_message: u64,
        }
        WireRef {
            mem: &self.mem,
            sock: self.sock(),
            side: self.side,
            duplex: self.duplex,
            max_message: self.max_message as u64,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Connection::from_wire(Wire::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The connection's notification socket, for an event loop (tokio's `AsyncFd`, mio, epoll).
///
/// It becomes readable when a message may be available, but only after a waiter asked for a
/// wake-up: the sender writes a byte to it only while the receiver sleeps in
/// [`ipc::wait`](crate::ipc::wait), [`recv`](Self::recv) or `recv_async` (feature `tokio`); it is
/// also readable once the peer is gone. A loop of its own that polls this descriptor and then
/// calls [`try_recv`](Self::try_recv) can miss a message that came without a wake-up: with the
/// `tokio` feature use `recv_async`, which arms the wake-up first; otherwise use [`ipc::wait`](crate::ipc::wait)
/// or [`poll`](Self::poll).
///
/// # Examples
///
/// ```
/// use std::os::fd::AsFd;
/// let (tx, rx) = multiproc::Pipe::new()?;
/// let fd = rx.as_fd();
/// # drop((fd, tx));
/// # Ok::<(), multiproc::Error>(())
/// ```
impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock()
    }
}

impl Waitable for Connection {
    fn wait_arm(&self) -> bool {
        let Some(rx) = self.rx() else { return false };
        rx.broken.is_some() || rx.ring.arm_notify() || self.peer_gone.load(Ordering::Relaxed)
    }

    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.sock()
    }

    fn wait_done(&self, fired: bool) -> bool {
        let Some(mut rx) = self.rx() else {
            // A send-only end is ready once its peer is gone (as the write end of a
            // pipe polls readable with an error then), not ready before: its socket
            // fires for nothing else, and once the peer is gone it stays fired, so
            // reporting it keeps `wait` from spinning until its deadline.
            return fired && self.peer_is_gone();
        };
        rx.ring.disarm_notify();
        if fired {
            // Wake-ups, and marks that must not be lost with them.
            let rx = &mut *rx;
            rx.inbox.pump(self.sock());
            if let Some(seq) = rx.last_seq {
                rx.inbox.forget_through(seq);
            }
        }
        rx.ring.has_data() || rx.broken.is_some() || (fired && self.peer_is_gone())
    }
}

impl wait::sealed::Sealed for Connection {}
