//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, never a
//! public API): thin wrappers that feed bytes and words, as another process would
//! write them, to the decoders that read them. Each wrapper builds the reader's
//! side exactly as the crate does (a socket pair, a ring in a [`SharedMemory`]) and
//! calls the production code; the properties (no panic, bounded memory, deadlines
//! kept) are checked by the targets and by the callbacks here.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::ipc::frame::{self, Patience, RecvFail};
use crate::ipc::ring::{footprint, Ring};
use crate::ipc::side::Inbox;
use crate::shm::SharedMemory;
use crate::sys::socket::{self, FrameReader, ReadOutcome};

/// A connected socket pair: `.0` plays the other process, `.1` the reader.
fn pair() -> (OwnedFd, OwnedFd) {
    socket::pair().expect("socketpair")
}

/// Writes `bytes` (with `fds` on the first byte) from `w` without blocking, calling
/// `drain` whenever the socket buffer is full; drops the rest of the bytes if the
/// reader has stopped reading.
fn push(
    w: BorrowedFd<'_>,
    r: BorrowedFd<'_>,
    mut bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    drain: &mut dyn FnMut(),
) {
    let mut fds = fds;
    while !bytes.is_empty() || !fds.is_empty() {
        match socket::try_send_with_fds(w, bytes, fds) {
            Ok(n) => {
                bytes = &bytes[n..];
                fds = &[];
                if bytes.is_empty() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let before = rustix::io::ioctl_fionread(r).unwrap_or(0);
                drain();
                if rustix::io::ioctl_fionread(r).unwrap_or(0) >= before {
                    return;
                }
            }
            Err(e) => panic!("send to the fuzzed reader failed: {e}"),
        }
    }
}

/// One chunk another process writes on a socket: its bytes, and whether a
/// descriptor rides on its first byte.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Attach a descriptor (ignored for an empty chunk, which sends nothing).
    pub fd: bool,
}

/// What a frame reader produced: each frame's payload and descriptor count, then
/// the error that ended the stream, if any.
#[derive(Debug, Default)]
pub struct Frames {
    /// `(payload, descriptors)` per frame.
    pub frames: Vec<(Vec<u8>, usize)>,
    /// The error that stopped the reader.
    pub error: Option<io::ErrorKind>,
}

/// Feeds `chunks` to the socket frame reader (`FrameReader`, as a
/// [`Process`](crate::Process) reads its result; `max_len` as configured, at most
/// `budget` bytes between looks at the clock, as `join_timeout` does), reading
/// between chunks so that headers and payloads arrive split at the chunks' bounds;
/// then closes the writer and reads to the end. With `blocking`, reads with
/// `socket::recv_frame` after all chunks are written instead (as a launched child
/// and the fork server do; `max_len` and `budget` do not apply).
pub fn socket_frames(
    chunks: &[Chunk<'_>],
    max_len: Option<u64>,
    blocking: bool,
    budget: usize,
) -> Frames {
    let (w, r) = pair();
    let mut out = Frames::default();
    let mut reader = FrameReader::new();
    reader.max_len = max_len;
    let read_now = |out: &mut Frames, reader: &mut FrameReader| {
        while out.error.is_none() {
            match reader.poll_read_budget(r.as_fd(), budget) {
                Ok(ReadOutcome::Frame(f)) => out.frames.push((f.payload, f.fds.len())),
                Ok(ReadOutcome::Paused) => {}
                Ok(ReadOutcome::Pending) | Ok(ReadOutcome::Eof { .. }) => return,
                Err(e) => out.error = Some(e.kind()),
            }
        }
    };
    for c in chunks {
        let fds = if c.fd { vec![r.as_fd()] } else { Vec::new() };
        if blocking {
            // The reader reads at the end: what does not fit the socket is dropped.
            push(w.as_fd(), r.as_fd(), c.bytes, &fds, &mut || {});
        } else {
            push(w.as_fd(), r.as_fd(), c.bytes, &fds, &mut || {
                read_now(&mut out, &mut reader)
            });
            read_now(&mut out, &mut reader);
        }
    }
    drop(w);
    if blocking {
        loop {
            match socket::recv_frame(r.as_fd()) {
                Ok(Some(f)) => out.frames.push((f.payload, f.fds.len())),
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e.kind());
                    break;
                }
            }
        }
    } else {
        while out.error.is_none() {
            match reader.poll_read_budget(r.as_fd(), budget) {
                Ok(ReadOutcome::Frame(f)) => out.frames.push((f.payload, f.fds.len())),
                Ok(ReadOutcome::Paused) => {}
                Ok(ReadOutcome::Eof { truncated }) => {
                    if truncated {
                        out.error = Some(io::ErrorKind::UnexpectedEof);
                    }
                    break;
                }
                Ok(ReadOutcome::Pending) => unreachable!("the writer is closed"),
                Err(e) => out.error = Some(e.kind()),
            }
        }
    }
    out
}

/// Feeds `chunks` to a connection's socket as its peer would (wake-up bytes and
/// descriptor marks), then asks the connection's `Inbox` for the descriptors of
/// each sequence number in `takes` (`true`: forget the marks through it first, as
/// a receive of raw bytes does). Returns the descriptor count or error per take.
pub fn side_marks(chunks: &[Chunk<'_>], takes: &[(u32, bool)]) -> Vec<Result<usize, String>> {
    let (w, r) = pair();
    let mut inbox = Inbox::default();
    for c in chunks {
        let fds = if c.fd { vec![r.as_fd()] } else { Vec::new() };
        push(w.as_fd(), r.as_fd(), c.bytes, &fds, &mut || {
            inbox.pump(r.as_fd())
        });
    }
    takes
        .iter()
        .map(|&(seq, forget)| {
            if forget {
                inbox.forget_through(seq);
            }
            inbox.take(r.as_fd(), seq).map(|fds| fds.len())
        })
        .collect()
}

/// A ring in a [`SharedMemory`] segment whose every byte the fuzzer controls: the
/// control words, the record headers and the payloads. The wrapper plays one side
/// (the sender or the receiver, in turn) through the crate's own code, while the
/// fuzzer plays the other process by writing the segment.
#[derive(Debug)]
pub struct FuzzRing {
    mem: SharedMemory,
    ring: Ring<SharedMemory>,
    /// The receiver's half-received message, kept between receives as a pipe end
    /// or a queue keeps it.
    state: std::cell::RefCell<frame::Reassembly>,
}

/// How long a ring operation may overrun its deadline before the wrapper calls it a
/// hang (generous: the machine may be loaded).
pub const OVERRUN: Duration = Duration::from_secs(2);

/// How a ring operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingOutcome {
    /// A message was sent or received (its length).
    Done(usize),
    /// Nothing to do now (empty / full) or the deadline passed.
    NotNow,
    /// The peer check asked to stop.
    Stopped,
    /// A message over the limit was refused (its claimed length).
    TooLarge(u64),
    /// The ring was reported corrupt.
    Corrupt(String),
}

impl FuzzRing {
    /// A ring over a segment of `footprint(cap) + extra` bytes whose first bytes are
    /// `header` (control words: see the layout in `ipc/ring.rs`) and whose data
    /// area starts as `data` (repeated). With `init`, the capacity word is set to
    /// `cap` as the creator does; else the ring is opened as a peer opens it and
    /// the capacity comes from `header` too (`Err` if `open` refuses it).
    ///
    /// # Panics
    ///
    /// If `cap` is not a valid ring capacity (with `init`).
    pub fn new(
        cap: u64,
        extra: usize,
        header: &[u8],
        data: &[u8],
        init: bool,
    ) -> Result<FuzzRing, String> {
        let len = footprint(cap) + extra;
        let mem = SharedMemory::create(len).expect("create the ring's segment");
        let head = header.len().min(footprint(0));
        mem.write(0, &header[..head]).expect("in bounds");
        if !data.is_empty() {
            let mut off = footprint(0);
            while off < len {
                let n = data.len().min(len - off);
                mem.write(off, &data[..n]).expect("in bounds");
                off += n;
            }
        }
        let ring = if init {
            Ring::init(mem.clone(), 0, cap)
        } else {
            Ring::open(mem.clone(), 0, len).map_err(|c| c.0)?
        };
        Ok(FuzzRing {
            mem,
            ring,
            state: Default::default(),
        })
    }

    /// The segment, for the fuzzer to scribble on between operations.
    pub fn mem(&self) -> &SharedMemory {
        &self.mem
    }

    /// The largest payload of one record.
    pub fn max_record(&self) -> usize {
        self.ring.max_record()
    }

    /// Sends `msg` as a pipe or queue does: `None` tries once, `Some(t)` waits at
    /// most `t`. The receiver counts as alive throughout.
    ///
    /// # Panics
    ///
    /// If the send overruns its deadline by [`OVERRUN`].
    pub fn send(&self, msg: &[u8], timeout: Option<Duration>) -> RingOutcome {
        let (patience, limit) = patience(timeout);
        let mut tick = || {
            assert!(
                Instant::now() < limit,
                "send overran its deadline ({timeout:?})"
            );
            true
        };
        match frame::send(&self.ring, msg, patience, &mut tick) {
            Ok(_) => RingOutcome::Done(msg.len()),
            Err(frame::SendFail::Full | frame::SendFail::TimedOut) => RingOutcome::NotNow,
            Err(frame::SendFail::Stopped) => RingOutcome::Stopped,
            Err(frame::SendFail::Corrupt(c)) => RingOutcome::Corrupt(c.0),
        }
    }

    /// Receives one message of at most `max_len` bytes as a pipe (`track_got`
    /// false) or a queue (true) does: `None` tries once, `Some(t)` waits at most
    /// `t`. `producer_alive`: what the check on the producer of a half-received
    /// message says (a stopped producer is alive).
    ///
    /// # Panics
    ///
    /// If the receive overruns its deadline by [`OVERRUN`].
    pub fn recv(
        &self,
        out: &mut Vec<u8>,
        max_len: usize,
        timeout: Option<Duration>,
        track_got: bool,
        producer_alive: bool,
    ) -> RingOutcome {
        let (patience, limit) = patience(timeout);
        let mut tick = |producer: Option<u32>| {
            assert!(
                Instant::now() < limit,
                "receive overran its deadline ({timeout:?})"
            );
            producer.is_none() || producer_alive
        };
        let mut state = self.state.borrow_mut();
        match frame::recv(
            &self.ring, out, max_len, patience, track_got, &mut state, &mut tick,
        ) {
            Ok(_) => RingOutcome::Done(out.len()),
            Err(RecvFail::Empty | RecvFail::TimedOut) => RingOutcome::NotNow,
            Err(RecvFail::Stopped) => RingOutcome::Stopped,
            Err(RecvFail::TooLarge(n)) => RingOutcome::TooLarge(n),
            Err(RecvFail::Corrupt(c)) => RingOutcome::Corrupt(c.0),
        }
    }
}

/// The patience for `timeout` and the instant past which a wait is a hang.
fn patience(timeout: Option<Duration>) -> (Patience, Instant) {
    let now = Instant::now();
    match timeout {
        None => (Patience::Try, now + OVERRUN),
        Some(t) => (Patience::Until(now + t), now + t + OVERRUN),
    }
}

/// Decodes `bytes` as the `Launch` a child or
/// the fork server reads (`decode_launch`), and does what the child does with it
/// short of acting on it: resolves its entry against this executable (without
/// calling it). Returns whether it decoded and whether the entry resolved.
pub fn launch(bytes: &[u8]) -> (bool, bool) {
    use crate::process::{entry, launch};
    match launch::decode_launch(bytes) {
        Ok(l) => (true, entry::resolve(l.entry, &l.token).is_some()),
        Err(_) => (false, false),
    }
}

/// What the startup hook decided about its environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run the launch read from this descriptor.
    Launch(i32),
    /// Not ours: warn and run `main`.
    Ignore,
    /// Refused: exit.
    Refuse,
    /// The parent is gone: exit.
    ParentGone,
}

/// The startup hook's decision (`bootstrap::judge`) on `value` (the variable's
/// bytes) in a process whose parent is `ppid`, effective user `euid`, in
/// secure-execution mode or not, when the named descriptor's socket was made by
/// `peer = Some((pid, uid, alive))` (`None`: not an open socket).
pub fn bootstrap_env(
    value: &[u8],
    ppid: i32,
    euid: u32,
    secure: bool,
    peer: Option<(i32, u32, bool)>,
) -> Verdict {
    use crate::process::bootstrap::{self, Here};
    use std::os::unix::ffi::OsStrExt;
    let here = Here { ppid, euid, secure };
    let v = bootstrap::judge(std::ffi::OsStr::from_bytes(value), &here, |_| match peer {
        Some((pid, uid, alive)) => Ok((socket::Peer { pid, uid }, alive)),
        None => Err(io::Error::from(io::ErrorKind::NotFound)),
    });
    match v {
        bootstrap::Verdict::Launch(fd) => Verdict::Launch(fd),
        bootstrap::Verdict::Ignore(_) => Verdict::Ignore,
        bootstrap::Verdict::Refuse(_) => Verdict::Refuse,
        bootstrap::Verdict::ParentGone => Verdict::ParentGone,
    }
}

/// Decodes `bytes` as the fork server's answer to a request (the parent's side).
pub fn forkserver_answer(bytes: &[u8]) -> bool {
    crate::ipc::codec::decode::<Result<i32, i32>>(bytes, Vec::new()).is_ok()
}

/// Decodes `bytes` as a child's result frame (`Outcome`)
/// of a function returning `T`, with `fds` beside it, as [`Process::join`](crate::Process::join) does.
pub fn outcome<T: serde::de::DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> bool {
    crate::ipc::codec::decode::<crate::process::outcome::Outcome<T>>(bytes, fds).is_ok()
}

/// One record a pool reader parsed: tag, id, aux, payload length, descriptors.
pub type PoolRecord = (u8, u64, i64, usize, usize);

/// Feeds `chunks` to a process pool's `RecordReader`
/// as a worker (or the parent) would write them, parsing records between chunks as
/// the reader's owner does (refusing payloads over `max_len`, the pool's
/// `max_result_size`); then closes the writer and reads to the end. Each
/// record's payload is decoded as the parent decodes it for its tag.
pub fn pool_records(
    chunks: &[Chunk<'_>],
    max_len: u64,
) -> (Vec<PoolRecord>, Option<io::ErrorKind>) {
    use crate::pool::process::chunk::ChunkOut;
    use crate::pool::process::wire::{self, Fill, RecordReader};
    use crate::process::outcome::FailKind;
    let (w, r) = pair();
    let mut reader = RecordReader::with_max_len(max_len);
    let mut records = Vec::new();
    let mut error = None;
    let mut parse = |reader: &mut RecordReader, error: &mut Option<io::ErrorKind>| {
        while error.is_none() {
            match reader.next_record() {
                Ok(Some(rec)) => {
                    let _ = match rec.tag {
                        wire::DONE => {
                            crate::ipc::codec::decode::<ChunkOut<Vec<u8>>>(&rec.payload, Vec::new())
                                .is_ok()
                        }
                        wire::FAILED => crate::ipc::codec::decode::<(FailKind, String)>(
                            &rec.payload,
                            Vec::new(),
                        )
                        .is_ok(),
                        wire::INIT_FAILED => crate::ipc::codec::decode::<crate::RemotePanic>(
                            &rec.payload,
                            Vec::new(),
                        )
                        .is_ok(),
                        _ => true,
                    };
                    records.push((rec.tag, rec.id, rec.aux, rec.payload.len(), rec.fds.len()));
                }
                Ok(None) => return,
                Err(e) => *error = Some(e.kind()),
            }
        }
    };
    let mut read_all = |reader: &mut RecordReader, error: &mut Option<io::ErrorKind>| loop {
        if error.is_some() {
            return;
        }
        match reader.fill(r.as_fd(), true) {
            Ok(Fill::Data) => parse(reader, error),
            Ok(Fill::Empty | Fill::Eof) => return,
            Err(e) => *error = Some(e.kind()),
        }
    };
    for c in chunks {
        let fds = if c.fd { vec![r.as_fd()] } else { Vec::new() };
        push(w.as_fd(), r.as_fd(), c.bytes, &fds, &mut || {
            read_all(&mut reader, &mut error)
        });
        read_all(&mut reader, &mut error);
    }
    drop(w);
    read_all(&mut reader, &mut error);
    (records, error)
}

/// Feeds `chunks` to a [`SocketConnection`](crate::ipc::SocketConnection) (Python's
/// framing, as a [`Client`](crate::ipc::Client) or an accepted connection reads it)
/// accepting messages of at most `max_message` bytes, then shuts the writer's
/// sending side. With `auth = Some((key, deliver))` the connection first runs the
/// authentication handshake (`deliver`: as the listener, else as the client) under
/// `key`, as `Listener::accept` and `Client::connect` do; then (or if there is no
/// `auth`) it receives messages until the stream ends or breaks, alternately as
/// bytes and as a `(u32, String)`. Returns the handshake's error kind, if any, and
/// each receive's length or error kind.
pub fn socket_connection(
    chunks: &[Chunk<'_>],
    max_message: usize,
    auth: Option<(&[u8], bool)>,
) -> (Option<crate::ErrorKind>, Vec<Result<usize, String>>) {
    use crate::ipc::{listener, socket_connection::SocketConnection};
    let (w, r) = pair();
    for c in chunks {
        push(w.as_fd(), r.as_fd(), c.bytes, &[], &mut || {});
    }
    // The reader sees the end of the stream; what it sends still arrives here.
    let _ = rustix::net::shutdown(&w, rustix::net::Shutdown::Write);
    let conn = SocketConnection::new(r).with_max_message_size(max_message);
    let mut handshake = None;
    if let Some((key, deliver)) = auth {
        let deadline = Instant::now() + Duration::from_millis(100);
        let r = if deliver {
            listener::deliver_challenge(&conn, key, deadline)
        } else {
            listener::answer_challenge(&conn, key, deadline)
        };
        handshake = r.err().map(|e| e.kind());
    }
    let mut got = Vec::new();
    if handshake.is_none() {
        for i in 0..64 {
            let r = if i % 2 == 0 {
                conn.recv_bytes()
                    .map(|b| b.len())
                    .map_err(|e| format!("{e:?}"))
            } else {
                conn.try_recv::<(u32, String)>()
                    .map(|v| v.1.len())
                    .map_err(|e| format!("{e:?}"))
            };
            // Two failures in a row: the stream has ended or broken.
            let stop = r.is_err() && got.last().is_some_and(Result::is_err);
            got.push(r);
            if stop {
                break;
            }
        }
    }
    (handshake, got)
}
