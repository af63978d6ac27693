//! [`SocketConnection`]: a connection over a Unix or TCP stream socket, as
//! [`Listener::accept`](crate::ipc::Listener::accept) and
//! [`Client::connect`](crate::ipc::Client::connect) return it (Python's
//! `multiprocessing.connection.Connection` over a socket).
//!
//! Framing is Python's: each message is a 4-byte big-endian length, then the bytes;
//! a message over 2 GiB − 1 has the length `-1` and then an 8-byte big-endian
//! length. Byte messages therefore interoperate with Python (3.12 or later for the
//! authentication challenge, see [`Listener`](crate::ipc::Listener)); typed ones use
//! multiproc's codec, not pickle.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{RecvError, RecvTimeoutError, SendError, TryRecvError};
use super::fail::{auth_failed, closed_mid_message, corrupted, too_large, too_large_in, Fail};
use super::frame::Patience;
use super::frame::DEFAULT_MAX_MESSAGE;
use super::typecheck;
use super::wait::{self, Waitable};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// Bytes read per system call while a message body arrives (the buffer grows with
/// the bytes that came, never by the length a peer claims).
const CHUNK: usize = 1 << 20;

/// One end of a socket connection: sends and receives messages (typed, or raw
/// bytes), like a [`Connection`](crate::ipc::Connection) but over a stream socket,
/// so it reaches unrelated processes and other machines.
///
/// Unlike a [`Connection`](crate::ipc::Connection), whose messages travel through a
/// ring buffer in shared memory beside a socket pair, a `SocketConnection` is the
/// socket alone: every message is one or two system calls each way, and values that
/// own file descriptors cannot be sent (send them through a [`Pipe`](crate::Pipe)).
/// It is a separate type because a `Connection`'s internals are bound to its
/// rings.
///
/// It can be shared by threads (`&self` methods; sends are serialized with each
/// other, and receives with each other). Typed messages carry the same debug-build
/// type check as a `Connection`'s, when both ends are debug builds of multiproc.
/// When the peer closes or dies, receives return end of stream
/// ([`RecvError::Disconnected`]) once everything it sent was received, and sends
/// fail with [`SendError::Disconnected`].
///
/// # Examples
///
/// ```
/// use multiproc::ipc::{Address, Client, Listener};
///
/// let listener = Listener::bind(&Address::Tcp("127.0.0.1:0".parse()?), Some(b"secret"))?;
/// let address = listener.address().clone();
/// let t = std::thread::spawn(move || -> multiproc::Result<String> {
///     let conn = listener.accept()?;
///     let name: String = conn.recv()?;
///     conn.send(format!("hello, {name}"))?;
///     Ok(name)
/// });
/// let conn = Client::connect(&address, Some(b"secret"))?;
/// conn.send("world")?;
/// assert_eq!(conn.recv::<String>()?, "hello, world");
/// assert_eq!(t.join().unwrap()?, "world");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SocketConnection {
    fd: OwnedFd,
    send: Mutex<()>,
    recv: Mutex<RecvState>,
    max_message: usize,
}

struct RecvState {
    scratch: Vec<u8>,
    /// Set when the stream was found broken (closed or malformed mid-message).
    broken: Option<String>,
}

impl SocketConnection {
    pub(crate) fn new(fd: OwnedFd) -> SocketConnection {
        SocketConnection {
            fd,
            send: Mutex::new(()),
            recv: Mutex::new(RecvState {
                scratch: Vec::new(),
                broken: None,
            }),
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }

    /// Sets the largest message this end accepts (default 1 GiB, as a
    /// [`Pipe`](crate::Pipe)'s). A longer one is skipped (its bytes read and dropped)
    /// and reported as [`RecvError::Invalid`]; the connection stays usable.
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> SocketConnection {
        self.max_message = bytes;
        self
    }

    /// Closes this end (Python's `Connection.close`): the same as dropping it.
    pub fn close(self) {}

    fn lock_send(&self) -> MutexGuard<'_, ()> {
        self.send.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_recv(&self) -> MutexGuard<'_, RecvState> {
        self.recv.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- sending ----

    fn send_frame(&self, msg: &[u8]) -> std::result::Result<(), Fail> {
        if msg.len() > self.max_message {
            return Err(Fail::Rejected(too_large(msg.len(), self.max_message)));
        }
        let header = frame_header(msg.len());
        let _g = self.lock_send();
        if msg.len() <= 64 << 10 {
            let mut one = Vec::with_capacity(header.len() + msg.len());
            one.extend_from_slice(&header);
            one.extend_from_slice(msg);
            self.write_all(&one)
        } else {
            self.write_all(&header)?;
            self.write_all(msg)
        }
    }

    fn write_all(&self, mut buf: &[u8]) -> std::result::Result<(), Fail> {
        while !buf.is_empty() {
            match sys::socket::send(self.fd.as_fd(), buf) {
                Ok(n) => buf = &buf[n..],
                Err(e) if peer_left(&e) => return Err(Fail::Disconnected),
                Err(e) => return Err(Fail::Rejected(Error::os(e))),
            }
        }
        Ok(())
    }

    fn send_value<T: Serialize>(&self, value: T) -> std::result::Result<(), (T, Fail)> {
        let mut buf = Vec::new();
        match typecheck::encode_into(&value, &mut buf) {
            Ok(fds) if fds.is_empty() => {}
            Ok(_) => {
                return Err((
                    value,
                    Fail::Rejected(Error::new(ErrorKind::Encode).with_message(
                        "values that own file descriptors cannot be sent through a socket \
                         connection; send them through a pipe",
                    )),
                ))
            }
            Err(e) => return Err((value, Fail::Rejected(e))),
        }
        self.send_frame(&buf).map_err(|f| (value, f))
    }

    /// Sends `value` (blocking while the socket buffer is full).
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] if the peer is gone; [`SendError::Rejected`] if the
    /// value fails to serialize, owns file descriptors, is over the maximum message
    /// size, or the socket fails otherwise. The value comes back either way.
    pub fn send<T: Serialize>(&self, value: T) -> std::result::Result<(), SendError<T>> {
        self.send_value(value).map_err(|(v, f)| f.into_send(v))
    }

    /// Sends raw bytes as one message.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the peer is gone; [`ErrorKind::InvalidInput`]
    /// if the message is over the maximum size; [`ErrorKind::Os`] if the socket fails.
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_frame(bytes).map_err(Fail::into_error)
    }

    // ---- receiving ----

    /// Waits for the start of a message (or end of stream); `false` if none came.
    fn wait_readable(&self, patience: Patience) -> std::result::Result<bool, Fail> {
        let deadline = match patience {
            Patience::Forever => return Ok(true),
            Patience::Try => Instant::now(),
            Patience::Until(d) => d,
        };
        Ok(readable(self.fd.as_fd(), Some(deadline)))
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` on end of stream before the first.
    fn read_exact(&self, buf: &mut [u8]) -> std::result::Result<bool, Fail> {
        let mut got = 0;
        while got < buf.len() {
            match sys::socket::recv(self.fd.as_fd(), &mut buf[got..], false) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(Fail::Invalid(closed_mid_message())),
                Ok(n) => got += n,
                Err(e) if got == 0 && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(false)
                }
                Err(e) => return Err(Fail::Invalid(Error::os(e))),
            }
        }
        Ok(true)
    }

    /// Reads one message into `out` (cleared first), at most `max` bytes.
    fn recv_frame(
        &self,
        st: &mut RecvState,
        out: &mut Vec<u8>,
        patience: Patience,
        max: usize,
    ) -> std::result::Result<(), Fail> {
        if let Some(m) = &st.broken {
            return Err(Fail::Invalid(corrupted(m)));
        }
        if !self.wait_readable(patience)? {
            return Err(Fail::Busy);
        }
        let r = self.recv_frame_body(out, max);
        if let Err(Fail::Invalid(e)) = &r {
            st.broken = Some(e.to_string());
        }
        r
    }

    fn recv_frame_body(&self, out: &mut Vec<u8>, max: usize) -> std::result::Result<(), Fail> {
        out.clear();
        let mut h = [0u8; 4];
        if !self.read_exact(&mut h)? {
            return Err(Fail::Disconnected);
        }
        let len = match i32::from_be_bytes(h) {
            -1 => {
                let mut h8 = [0u8; 8];
                if !self.read_exact(&mut h8)? {
                    return Err(Fail::Invalid(closed_mid_message()));
                }
                u64::from_be_bytes(h8)
            }
            n if n >= 0 => n as u64,
            n => {
                return Err(Fail::Invalid(
                    Error::new(ErrorKind::Corrupt)
                        .with_message(format!("invalid message length {n} on a socket")),
                ))
            }
        };
        if len > max as u64 {
            // Skip it, a chunk at a time: the stream stays in step.
            let mut left = len;
            let mut sink = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(CHUNK).min(sink.len());
                if !self.read_exact(&mut sink[..n])? {
                    return Err(Fail::Invalid(closed_mid_message()));
                }
                left -= n as u64;
            }
            return Err(Fail::TooLarge(too_large_in(len, max)));
        }
        let len = len as usize; // <= max
        while out.len() < len {
            let start = out.len();
            let n = (len - start).min(CHUNK);
            out.resize(start + n, 0);
            if !self.read_exact(&mut out[start..])? {
                return Err(Fail::Invalid(closed_mid_message()));
            }
        }
        Ok(())
    }

    fn recv_value<T: DeserializeOwned>(&self, patience: Patience) -> std::result::Result<T, Fail> {
        let mut st = self.lock_recv();
        let mut buf = std::mem::take(&mut st.scratch);
        let r = self.recv_frame(&mut st, &mut buf, patience, self.max_message);
        let r = r.and_then(|()| typecheck::decode(&buf).map_err(Fail::Invalid));
        if buf.capacity() <= CHUNK {
            st.scratch = buf;
        }
        r
    }

    /// Receives a message of type `T`, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] at end of stream; [`RecvError::Invalid`] if the
    /// message does not decode as `T`, is over the maximum size, or the stream is
    /// broken.
    pub fn recv<T: DeserializeOwned>(&self) -> std::result::Result<T, RecvError> {
        self.recv_value(Patience::Forever).map_err(Fail::into_recv)
    }

    /// Receives a message if one has started to arrive.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none has, otherwise as [`recv`](Self::recv).
    pub fn try_recv<T: DeserializeOwned>(&self) -> std::result::Result<T, TryRecvError> {
        self.recv_value(Patience::Try).map_err(Fail::into_try_recv)
    }

    /// Receives a message, waiting at most `timeout` for it to start (once it has,
    /// the rest is read to its end).
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came in time, otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_timeout<T: DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> std::result::Result<T, RecvTimeoutError> {
        self.recv_value(Patience::within(timeout))
            .map_err(Fail::into_recv_timeout)
    }

    /// Receives one message as raw bytes.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_bytes(&self) -> std::result::Result<Vec<u8>, RecvError> {
        self.recv_bytes_max(self.max_message)
    }

    /// Receives one message as raw bytes, refusing (and skipping) one longer than
    /// `maxlength` (Python's `recv_bytes(maxlength)`).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_bytes_max(&self, maxlength: usize) -> std::result::Result<Vec<u8>, RecvError> {
        let mut out = Vec::new();
        let mut st = self.lock_recv();
        self.recv_frame(
            &mut st,
            &mut out,
            Patience::Forever,
            maxlength.min(self.max_message),
        )
        .map_err(Fail::into_recv)?;
        Ok(out)
    }

    /// Returns `true` if a message (or end of stream) is waiting, within `timeout`
    /// (Python's `poll`).
    pub fn poll(&self, timeout: Duration) -> bool {
        readable(self.fd.as_fd(), Instant::now().checked_add(timeout))
    }

    /// The raw exchange of the authentication handshake: one message of at most
    /// `max` bytes, read only once it has started to arrive before `deadline`.
    pub(crate) fn recv_handshake(&self, max: usize, deadline: Instant) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut st = self.lock_recv();
        match self.recv_frame_limited(&mut st, &mut out, deadline, max) {
            Ok(()) => Ok(out),
            Err(f) => Err(f.into_error()),
        }
    }

    fn recv_frame_limited(
        &self,
        st: &mut RecvState,
        out: &mut Vec<u8>,
        deadline: Instant,
        max: usize,
    ) -> std::result::Result<(), Fail> {
        // Before authentication a longer message is not skipped but refused: nothing
        // more is read from an unauthenticated peer.
        if !self.wait_readable(Patience::Until(deadline))? {
            return Err(Fail::Busy);
        }
        let mut h = [0u8; 4];
        if !self.read_exact(&mut h)? {
            return Err(Fail::Disconnected);
        }
        let len = i32::from_be_bytes(h);
        if len < 0 || len as usize > max {
            st.broken = Some("refused an over-long handshake message".into());
            return Err(Fail::Invalid(auth_failed(
                "the peer's handshake message is too long",
            )));
        }
        out.resize(len as usize, 0);
        // A peer that stalls mid-handshake is bounded by the deadline too.
        match self.read_exact_until(out, deadline) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Fail::Disconnected),
            Err(f) => Err(f),
        }
    }

    /// Reads exactly `buf.len()` bytes before `deadline`, which signals do not
    /// stretch (a receive timeout on the socket would start over after each `EINTR`);
    /// `Ok(false)` on end of stream before the first byte.
    fn read_exact_until(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> std::result::Result<bool, Fail> {
        let mut got = 0;
        while got < buf.len() {
            if !readable(self.fd.as_fd(), Some(deadline)) {
                return Err(Fail::Busy);
            }
            match sys::socket::recv(self.fd.as_fd(), &mut buf[got..], true) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(Fail::Invalid(closed_mid_message())),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if got == 0 && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(false)
                }
                Err(e) => return Err(Fail::Invalid(Error::os(e))),
            }
        }
        Ok(true)
    }
}

/// Whether `fd` is readable (or in error: the read reports it) before `deadline`
/// (`None`: no limit), which signals do not stretch (`sys::poll`).
fn readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> bool {
    sys::poll::readable_one(fd, deadline).unwrap_or(true)
}

/// Whether a send error means the peer is gone.
fn peer_left(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, NotConnected};
    matches!(e.kind(), BrokenPipe | ConnectionReset | NotConnected)
}

/// Python's frame header for a message of `len` bytes.
fn frame_header(len: usize) -> Vec<u8> {
    match i32::try_from(len) {
        Ok(n) => n.to_be_bytes().to_vec(),
        Err(_) => {
            let mut h = (-1i32).to_be_bytes().to_vec();
            h.extend_from_slice(&(len as u64).to_be_bytes());
            h
        }
    }
}

impl fmt::Debug for SocketConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketConnection")
            .field("fd", &self.fd)
            .field("max_message_size", &self.max_message)
            .finish_non_exhaustive()
    }
}

impl AsFd for SocketConnection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl wait::sealed::Sealed for SocketConnection {}

/// Ready when a receive would not block (a message has started to arrive, or end of
/// stream).
impl Waitable for SocketConnection {
    fn wait_arm(&self) -> bool {
        false
    }
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    fn wait_done(&self, fired: bool) -> bool {
        fired
    }
}
