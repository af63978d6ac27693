//! Unix stream socket pairs that carry length-prefixed frames plus file descriptors.
//!
//! A frame is a 12-byte header — payload length (`u64`, little-endian) and number of
//! descriptors (`u32`) — followed by the payload. The descriptors ride as
//! `SCM_RIGHTS` ancillary data on the header's bytes.
//!
//! # Safety
//!
//! [`inherited_peer`] looks at a descriptor known only by its number: it checks that
//! the number is open before borrowing it, and only reads socket options through the
//! borrow, which ends before it returns.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man7/unix.7.html> (`SO_PEERCRED`)
//! - <https://man7.org/linux/man-pages/man2/recvmsg.2.html>
#![allow(unsafe_code)]

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use rustix::net::{
    recvmsg, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// The most descriptors one frame may carry (the kernel's `SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// Bytes in a frame header.
pub(crate) const HEADER: usize = 12;

/// Creates a connected pair of `AF_UNIX` stream sockets, close-on-exec.
pub(crate) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Who made the other end of a Unix stream socket (`SO_PEERCRED`): for a socket pair,
/// the process that called `socketpair`, as it was at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Process id (of the whole process, not the thread).
    pub(crate) pid: i32,
    /// Effective user id.
    pub(crate) uid: u32,
}

/// The pid of the process that made the other end of `sock` (`SO_PEERCRED`); `None`
/// if the kernel cannot say.
pub(crate) fn peer_pid(sock: BorrowedFd<'_>) -> Option<i32> {
    let cred = rustix::net::sockopt::socket_peercred(sock).ok()?;
    Some(cred.pid.as_raw_nonzero().get())
}

/// The peer of descriptor `fd`, which this process received by number (an inherited
/// descriptor named in an environment variable) and does not own.
///
/// # Errors
///
/// `EBADF` if `fd` is not open, `ENOTSOCK` if it is not a socket, `InvalidInput` if
/// it is not a Unix stream socket.
pub(crate) fn inherited_peer(fd: RawFd) -> io::Result<Peer> {
    if !super::fork::is_open(fd) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `fd` is open (checked just above). The caller runs before `main`, in a
    // single thread, so nothing closes it while this function reads its options; the
    // borrow does not outlive the call.
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    let domain = rustix::net::sockopt::socket_domain(sock)?;
    let kind = rustix::net::sockopt::socket_type(sock)?;
    if domain != AddressFamily::UNIX || kind != SocketType::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a Unix stream socket",
        ));
    }
    // Not rustix's `socket_peercred`: its `UCred` holds a non-zero `Pid`, and the kernel
    // answers pid 0 for a socket that was never connected.
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` is `cred`'s size, so the
    // kernel writes at most that many bytes; `fd` is open (checked above).
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut cred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Peer {
        pid: cred.pid,
        uid: cred.uid,
    })
}

/// Sends one frame: header, `payload`, and `fds` attached to the header.
///
/// Blocks until all of it is queued.
///
/// # Errors
///
/// The socket's error (`EPIPE` when the peer has closed), or `InvalidInput` if
/// there are more than [`MAX_FDS`] descriptors.
pub(crate) fn send_frame(
    sock: BorrowedFd<'_>,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many file descriptors in one message",
        ));
    }
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[8..].copy_from_slice(&(fds.len() as u32).to_le_bytes());
    // No allocation when there is nothing to attach (the common case, and the only one
    // in a forked child's reply path, which avoids the heap; see `process/fork.rs`).
    let mut space = Vec::new();
    if !fds.is_empty() {
        space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    }
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("ancillary buffer too small"));
    }
    let mut sent = 0usize;
    let total = HEADER + payload.len();
    // First call carries the descriptors; later calls, if the socket buffer was full,
    // send the rest of the bytes only.
    while sent < total {
        let (a, b): (&[u8], &[u8]) = if sent < HEADER {
            (&header[sent..], payload)
        } else {
            (&payload[sent - HEADER..], &[])
        };
        let iov = [IoSlice::new(a), IoSlice::new(b)];
        let n = if sent == 0 {
            sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL)
        } else {
            sendmsg(
                sock,
                &iov,
                &mut SendAncillaryBuffer::default(),
                SendFlags::NOSIGNAL,
            )
        };
        match n {
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One received frame.
#[derive(Debug, Default)]
pub(crate) struct Frame {
    pub(crate) payload: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Decodes a frame header written by another process: the payload length and the
/// number of descriptors it announces. Never panics, whatever the bytes.
///
/// # Errors
///
/// `InvalidData` if `header` is not [`HEADER`] bytes long, or the length is over
/// `max_len` (or over what this process can address).
pub(crate) fn decode_header(header: &[u8], max_len: Option<u64>) -> io::Result<(usize, usize)> {
    let (Some(len), Some(nfds)) = (header.get(..8), header.get(8..HEADER)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short frame header",
        ));
    };
    if header.len() != HEADER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "long frame header",
        ));
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(len);
    let mut n = [0u8; 4];
    n.copy_from_slice(nfds);
    let len = u64::from_le_bytes(l);
    let limit = max_len.unwrap_or(u64::MAX).min(isize::MAX as u64);
    let (Ok(len), true) = (usize::try_from(len), len <= limit) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            match max_len {
                Some(m) => {
                    format!("frame of {len} bytes exceeds the maximum message size of {m} bytes")
                }
                None => format!("frame of {len} bytes exceeds the addressable size"),
            },
        ));
    };
    Ok((len, u32::from_le_bytes(n) as usize))
}

/// Incremental frame decoder over a socket: feed it with [`poll_read`](Self::poll_read)
/// whenever the socket is readable.
///
/// The payload buffer grows with the bytes that actually arrive (doubling, from
/// [`GROW_MIN`]), never to the length the header announces: a peer that announces a
/// huge frame and sends little costs little memory.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    header: [u8; HEADER],
    have_header: usize,
    /// The announced payload length (valid once the header is in).
    want: usize,
    payload: Vec<u8>,
    have_payload: usize,
    fds: Vec<OwnedFd>,
    /// The largest payload accepted, to turn a corrupt length into an error.
    pub(crate) max_len: Option<u64>,
}

/// The first payload buffer of a frame, grown by doubling as bytes arrive.
pub(crate) const GROW_MIN: usize = 64 * 1024;

/// What one [`FrameReader::poll_read`] call saw.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    /// A whole frame arrived.
    Frame(Frame),
    /// No more bytes right now (non-blocking mode) or a partial frame.
    Pending,
    /// The byte budget of a [`poll_read_budget`](FrameReader::poll_read_budget) call
    /// ran out: more may be waiting (call again).
    Paused,
    /// The peer closed; `true` if it closed in the middle of a frame.
    Eof { truncated: bool },
}

impl FrameReader {
    /// A reader with no size limit.
    pub(crate) fn new() -> Self {
        FrameReader::default()
    }

    /// A reader that refuses payloads over `max_len` bytes.
    pub(crate) fn with_max_len(max_len: u64) -> Self {
        FrameReader {
            max_len: Some(max_len),
            ..FrameReader::default()
        }
    }

    /// Returns `true` if some bytes of a frame have arrived but not all of it.
    pub(crate) fn in_frame(&self) -> bool {
        self.have_header > 0
    }

    /// Reads what is available; with `nonblocking`, returns `Pending` rather than waiting.
    pub(crate) fn poll_read(
        &mut self,
        sock: BorrowedFd<'_>,
        nonblocking: bool,
    ) -> io::Result<ReadOutcome> {
        self.read(sock, nonblocking, usize::MAX)
    }

    /// Reads what is available without blocking, at most about `budget` bytes
    /// ([`ReadOutcome::Paused`] when that ran out), so a caller with a deadline can
    /// look at the clock between calls while a peer streams a large frame.
    pub(crate) fn poll_read_budget(
        &mut self,
        sock: BorrowedFd<'_>,
        budget: usize,
    ) -> io::Result<ReadOutcome> {
        self.read(sock, true, budget)
    }

    fn read(
        &mut self,
        sock: BorrowedFd<'_>,
        nonblocking: bool,
        budget: usize,
    ) -> io::Result<ReadOutcome> {
        let flags = if nonblocking {
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC
        } else {
            RecvFlags::CMSG_CLOEXEC
        };
        let mut read = 0usize;
        loop {
            if self.have_header == HEADER && self.have_payload == self.want {
                return self.complete();
            }
            if read >= budget {
                return Ok(ReadOutcome::Paused);
            }
            let r = if self.have_header < HEADER {
                let mut space =
                    [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let mut iov = [IoSliceMut::new(&mut self.header[self.have_header..])];
                let r = recvmsg(sock, &mut iov, &mut control, flags).map(|r| r.bytes);
                for msg in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = msg {
                        self.fds.extend(fds);
                    }
                }
                r
            } else {
                let buf = self.payload_room()?;
                rustix::net::recv(sock, buf, flags & RecvFlags::DONTWAIT).map(|(n, _)| n)
            };
            let n = match r {
                Ok(0) => {
                    return Ok(ReadOutcome::Eof {
                        truncated: self.in_frame(),
                    })
                }
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Ok(ReadOutcome::Pending),
                Err(e) => return Err(e.into()),
            };
            read = read.saturating_add(n);
            if self.have_header < HEADER {
                self.have_header += n;
                if self.have_header == HEADER {
                    self.start_payload()?;
                }
            } else {
                self.have_payload += n;
            }
        }
    }

    fn start_payload(&mut self) -> io::Result<()> {
        let (len, _) = decode_header(&self.header, self.max_len).inspect_err(|_| {
            // A refused frame leaves the reader at a frame boundary it cannot know:
            // the stream is unusable, but the reader stays consistent.
            self.have_header = 0;
        })?;
        self.want = len;
        self.payload = Vec::new();
        self.have_payload = 0;
        Ok(())
    }

    /// The buffer to receive the next payload bytes into: grows the payload (doubling,
    /// never past the announced length) when it is full.
    fn payload_room(&mut self) -> io::Result<&mut [u8]> {
        if self.have_payload == self.payload.len() {
            let grow = self.have_payload.max(GROW_MIN);
            let len = self.want.min(self.have_payload.saturating_add(grow));
            self.payload
                .try_reserve_exact(len - self.payload.len())
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate a frame buffer")
                })?;
            self.payload.resize(len, 0);
        }
        Ok(&mut self.payload[self.have_payload..])
    }

    fn complete(&mut self) -> io::Result<ReadOutcome> {
        let nfds = u32::from_le_bytes(self.header[8..].try_into().expect("4 bytes")) as usize;
        self.have_header = 0;
        self.have_payload = 0;
        self.want = 0;
        let fds = std::mem::take(&mut self.fds);
        if nfds != fds.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame announced {nfds} descriptors but carried {}",
                    fds.len()
                ),
            ));
        }
        Ok(ReadOutcome::Frame(Frame {
            payload: std::mem::take(&mut self.payload),
            fds,
        }))
    }
}

/// Blocks until one whole frame has arrived, or the peer closed (`Ok(None)`).
///
/// # Errors
///
/// The socket's error, `UnexpectedEof` if the peer closed in the middle of a frame,
/// or `InvalidData` for a malformed frame.
pub(crate) fn recv_frame(sock: BorrowedFd<'_>) -> io::Result<Option<Frame>> {
    let mut reader = FrameReader::new();
    loop {
        match reader.poll_read(sock, false) {
            Ok(ReadOutcome::Frame(f)) => return Ok(Some(f)),
            Ok(ReadOutcome::Eof { truncated: false }) => return Ok(None),
            Ok(ReadOutcome::Eof { truncated: true }) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed in the middle of a message",
                ))
            }
            Ok(ReadOutcome::Pending | ReadOutcome::Paused) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Returns `true` if the peer of a connected socket is gone: every copy of its end
/// is closed (`POLLHUP`/`POLLRDHUP`), or the socket is in error.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn peer_gone(sock: BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let mut fds = [PollFd::new(&sock, PollFlags::RDHUP)];
    match super::poll::until(&mut fds, Some(std::time::Instant::now())) {
        Ok(0) | Err(_) => false,
        Ok(_) => fds[0]
            .revents()
            .intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR),
    }
}

/// Sends one byte without blocking, as a wake-up for a peer polling the socket; a
/// full buffer already means a wake-up is pending, and a closed peer needs none.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn nudge(sock: BorrowedFd<'_>) {
    let _ = rustix::net::send(sock, &[1], SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
}

/// Sends `bytes` with `fds` attached, in one `sendmsg` that does not block; returns
/// how many bytes went (the descriptors go with the first byte).
///
/// # Errors
///
/// [`WouldBlock`](io::ErrorKind::WouldBlock) if the socket buffer is full,
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe) or
/// [`ConnectionReset`](io::ErrorKind::ConnectionReset) if the peer is gone, or
/// `EINVAL` if there are more than [`MAX_FDS`] descriptors.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn try_send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    send_vectored_with_fds(sock, &[IoSlice::new(bytes)], fds, true)
}

/// Sends the buffers of `iov` in order with `fds` attached, in one `sendmsg` (retried
/// when a signal interrupts it); returns how many bytes went (the descriptors go with
/// the first byte). With `nonblocking`, a full socket buffer is
/// [`WouldBlock`](io::ErrorKind::WouldBlock) rather than a wait. Never `SIGPIPE`.
///
/// # Errors
///
/// [`WouldBlock`](io::ErrorKind::WouldBlock) (non-blocking, buffer full),
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe) or
/// [`ConnectionReset`](io::ErrorKind::ConnectionReset) if the peer is gone, `EINVAL`
/// if there are more than [`MAX_FDS`] descriptors, or the socket's error.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn send_vectored_with_fds(
    sock: BorrowedFd<'_>,
    iov: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> io::Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(rustix::io::Errno::INVAL.into());
    }
    let mut flags = SendFlags::NOSIGNAL;
    if nonblocking {
        flags |= SendFlags::DONTWAIT;
    }
    // No allocation when there is nothing to attach (the common case).
    let mut space = Vec::new();
    if !fds.is_empty() {
        space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    }
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(rustix::io::Errno::NOBUFS.into());
    }
    loop {
        match sendmsg(sock, iov, &mut control, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Sends bytes from `bytes`, blocking while the socket buffer is full (never
/// `SIGPIPE`: a gone peer is an error); returns how many went. Signals do not
/// interrupt it.
///
/// # Errors
///
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe),
/// [`ConnectionReset`](io::ErrorKind::ConnectionReset) or
/// [`NotConnected`](io::ErrorKind::NotConnected) if the peer is gone; the socket's
/// other errors.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn send(sock: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(sock, bytes, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Reads what is there into `buf` (0: the peer closed), waiting for something unless
/// `nonblocking`. Signals do not interrupt it.
///
/// # Errors
///
/// [`WouldBlock`](io::ErrorKind::WouldBlock) if `nonblocking` and nothing is there;
/// [`ConnectionReset`](io::ErrorKind::ConnectionReset) if the peer left unread data;
/// the socket's other errors.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn recv(sock: BorrowedFd<'_>, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
    let flags = if nonblocking {
        RecvFlags::DONTWAIT
    } else {
        RecvFlags::empty()
    };
    loop {
        match rustix::net::recv(sock, &mut *buf, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?.0),
        }
    }
}

/// Reads the bytes available now into `buf`, without blocking, and appends the
/// descriptors attached to them to `fds` (close-on-exec). Returns the byte count
/// (0: the peer closed) and whether the kernel dropped descriptors that did not fit
/// (`MSG_CTRUNC`, for example at the `RLIMIT_NOFILE` limit).
///
/// # Errors
///
/// [`WouldBlock`](io::ErrorKind::WouldBlock) if nothing is there, or the socket's
/// error.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn try_recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<(usize, bool)> {
    recv_with_fds(sock, buf, fds, MAX_FDS, true)
}

/// Reads into `buf` (with `nonblocking`, only what is available now) and appends the
/// descriptors attached to the bytes to `fds` (close-on-exec), accepting at most
/// `max_fds` of them (at most [`MAX_FDS`]). Returns the byte count (0: the peer closed)
/// and whether the kernel dropped descriptors (`MSG_CTRUNC`: more than `max_fds`
/// arrived, or this process is at its `RLIMIT_NOFILE` limit). Signals do not
/// interrupt it.
///
/// # Errors
///
/// [`WouldBlock`](io::ErrorKind::WouldBlock) if `nonblocking` and nothing is there, or
/// the socket's error.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    max_fds: usize,
    nonblocking: bool,
) -> io::Result<(usize, bool)> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let room = rustix::cmsg_space!(ScmRights(max_fds.min(MAX_FDS)));
    let mut control = RecvAncillaryBuffer::new(&mut space[..room]);
    let mut iov = [IoSliceMut::new(buf)];
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if nonblocking {
        flags |= RecvFlags::DONTWAIT;
    }
    let r = loop {
        match recvmsg(sock, &mut iov, &mut control, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = msg {
            fds.extend(got);
        }
    }
    Ok((r.bytes, r.flags.contains(rustix::net::ReturnFlags::CTRUNC)))
}

/// Asks for `bytes` of send and receive buffer on `sock` (the kernel doubles it and
/// caps it at `wmem_max`/`rmem_max`); best effort, as a larger buffer only saves
/// wake-ups.
pub(crate) fn set_buffer_sizes(sock: BorrowedFd<'_>, bytes: usize) {
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(sock, bytes);
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(sock, bytes);
}

/// Waits up to `timeout` for room in the socket's send buffer (or an error on it).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn wait_writable(sock: BorrowedFd<'_>, timeout: std::time::Duration) {
    use rustix::event::{PollFd, PollFlags};
    let mut fds = [PollFd::new(&sock, PollFlags::OUT)];
    let _ = super::poll::until(&mut fds, std::time::Instant::now().checked_add(timeout));
}

/// Borrows every descriptor of a slice (helper for `send_frame`).
pub(crate) fn borrow_all(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(AsFd::as_fd).collect()
}

/// Makes a TCP connection notice a peer that vanished without closing it (its machine
/// crashed or the network dropped it): keepalive probes after `idle` of silence, one
/// every `interval`, `count` of them unanswered fail the socket, and so does data left
/// unacknowledged as long (`TCP_USER_TIMEOUT`). The next read or poll then reports
/// the error (`ETIMEDOUT`) instead of waiting for ever.
///
/// # References
/// - <https://man7.org/linux/man-pages/man7/tcp.7.html> (`TCP_KEEPIDLE`, `TCP_USER_TIMEOUT`)
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn tcp_keepalive(
    sock: BorrowedFd<'_>,
    idle: std::time::Duration,
    interval: std::time::Duration,
    count: u32,
) -> io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(sock, true)?;
    sockopt::set_tcp_keepidle(sock, idle)?;
    sockopt::set_tcp_keepintvl(sock, interval)?;
    sockopt::set_tcp_keepcnt(sock, count)?;
    let total = idle.saturating_add(interval.saturating_mul(count));
    let ms = u32::try_from(total.as_millis()).unwrap_or(u32::MAX);
    sockopt::set_tcp_user_timeout(sock, ms)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_with_fds() {
        let (a, b) = pair().unwrap();
        let (x, _y) = pair().unwrap();
        send_frame(a.as_fd(), b"hello", &[x.as_fd()]).unwrap();
        let f = recv_frame(b.as_fd()).unwrap().unwrap();
        assert_eq!(f.payload, b"hello");
        assert_eq!(f.fds.len(), 1);
        drop(a);
        assert!(recv_frame(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn big_frame_across_threads() {
        let (a, b) = pair().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let d2 = data.clone();
        let t = std::thread::spawn(move || send_frame(a.as_fd(), &d2, &[]).unwrap());
        let f = recv_frame(b.as_fd()).unwrap().unwrap();
        t.join().unwrap();
        assert_eq!(f.payload, data);
    }

    #[test]
    fn oversized_length_is_an_error() {
        let (a, b) = pair().unwrap();
        send_frame(a.as_fd(), &[0u8; 100], &[]).unwrap();
        let mut r = FrameReader::new();
        r.max_len = Some(10);
        let e = r.poll_read(b.as_fd(), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
