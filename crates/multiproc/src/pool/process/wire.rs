//! The process pool's wire format: self-delimiting records on a socket pair, many per
//! `sendmsg`, read back in bulk.
//!
//! A record is a fixed 29-byte header — `tag: u8`, `id: u64`, `aux: i64`, `nfds: u32`,
//! `len: u64`, little-endian — followed by `len` payload bytes. Descriptors ride as
//! `SCM_RIGHTS` on the `sendmsg` that carries the first byte of the record that owns
//! them; a reader keeps received descriptors in arrival order and hands each record
//! its `nfds` from the front. (Linux never delivers a message's descriptors after
//! bytes that follow them, so arrival order is record order.)
//!
//! Batching is the point: the parent appends every task it dispatches to a worker to
//! one buffer and sends it with one call; a reader pulls up to 256 KiB per call and
//! parses every whole record in it.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::identity::EntryRef;
use crate::sys::socket::{self, MAX_FDS};

/// Parent → worker: run a chunk (`aux` = the chunk entry's offset).
pub(crate) const TASK: u8 = 1;
/// Parent → worker: exit once the tasks before this record are done.
pub(crate) const EXIT: u8 = 2;
/// Worker → parent: the chunk's encoded `ChunkOut`.
pub(crate) const DONE: u8 = 3;
/// Worker → parent: the chunk failed as a whole; payload is `(FailKind, String)`.
pub(crate) const FAILED: u8 = 4;
/// Worker → parent: the initializer ran; ready for tasks.
pub(crate) const READY: u8 = 5;
/// Worker → parent: the initializer panicked; payload is the encoded `RemotePanic`.
pub(crate) const INIT_FAILED: u8 = 6;

/// Bytes in a record header.
pub(crate) const HEADER: usize = 29;

// Where each header field starts; only this module reads or writes them.
const TAG_AT: usize = 0;
const ID_AT: usize = 1;
const AUX_AT: usize = 9;
const NFDS_AT: usize = 17;
const LEN_AT: usize = 21;
const _: () = assert!(LEN_AT + 8 == HEADER);

/// One parsed record.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) tag: u8,
    pub(crate) id: u64,
    pub(crate) aux: i64,
    pub(crate) payload: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Record {
    /// The chunk entry a [`TASK`] record names (its `aux`).
    pub(crate) fn entry(&self) -> EntryRef {
        EntryRef::Offset(self.aux as isize)
    }
}

/// Appends a record header for a payload of `len` bytes.
pub(crate) fn put_header(out: &mut Vec<u8>, tag: u8, id: u64, aux: i64, nfds: usize, len: usize) {
    let at = out.len();
    out.resize(at + HEADER, 0);
    let h = &mut out[at..];
    h[TAG_AT] = tag;
    h[ID_AT..AUX_AT].copy_from_slice(&id.to_le_bytes());
    h[AUX_AT..NFDS_AT].copy_from_slice(&aux.to_le_bytes());
    h[NFDS_AT..LEN_AT].copy_from_slice(&(nfds as u32).to_le_bytes());
    h[LEN_AT..HEADER].copy_from_slice(&(len as u64).to_le_bytes());
}

/// Appends the header of a [`TASK`] record: run the chunk entry `entry` over a payload
/// of `len` bytes that owns `nfds` descriptors.
pub(crate) fn put_task(out: &mut Vec<u8>, id: u64, entry: EntryRef, nfds: usize, len: usize) {
    let EntryRef::Offset(off) = entry;
    put_header(out, TASK, id, off as i64, nfds, len);
}

/// Completes the record whose header starts at `at` (written with a provisional
/// length, its payload encoded in place after it): its length becomes what follows
/// the header, and its descriptor count `nfds`.
pub(crate) fn finish_record(out: &mut [u8], at: usize, nfds: usize) {
    let len = (out.len() - at - HEADER) as u64;
    let h = &mut out[at..at + HEADER];
    h[NFDS_AT..LEN_AT].copy_from_slice(&(nfds as u32).to_le_bytes());
    h[LEN_AT..HEADER].copy_from_slice(&len.to_le_bytes());
}

/// The kernel dropped descriptors attached to the bytes just read (`MSG_CTRUNC`: this
/// process is at its open-file limit, or a record carried more than a read accepts).
/// The records' descriptors can no longer be matched to them: the stream is unusable.
#[derive(Debug)]
pub(crate) struct FdsDropped;

impl fmt::Display for FdsDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the kernel dropped file descriptors sent with a record (is this process at its \
             open-file limit?)",
        )
    }
}

impl std::error::Error for FdsDropped {}

/// Whether `e` is a [`FdsDropped`] from [`RecordReader::fill`].
pub(crate) fn is_fds_dropped(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<FdsDropped>())
}

/// Sends `bytes` with `fds` attached, blocking until all of it is queued.
pub(crate) fn send_all(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[OwnedFd]) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        let iov = [IoSlice::new(&bytes[sent..])];
        match send_some(sock, &iov, if sent == 0 { fds } else { &[] }, false) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One `sendmsg`; with `nonblocking`, `WouldBlock` when the socket buffer is full.
fn send_some(
    sock: BorrowedFd<'_>,
    iov: &[IoSlice<'_>],
    fds: &[OwnedFd],
    nonblocking: bool,
) -> io::Result<usize> {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    socket::send_vectored_with_fds(sock, iov, &borrowed, nonblocking)
}

/// A queue of outgoing bytes for a non-blocking socket.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    segs: VecDeque<Seg>,
    /// Bytes queued and not yet sent.
    pub(crate) pending: usize,
}

#[derive(Debug, Default)]
struct Seg {
    bytes: Vec<u8>,
    /// A large payload shared with its task (kept for a retry), sent without a copy.
    shared: Option<Arc<Vec<u8>>>,
    off: usize,
    fds: Vec<OwnedFd>,
}

impl Seg {
    fn data(&self) -> &[u8] {
        match &self.shared {
            Some(b) => b,
            None => &self.bytes,
        }
    }
}

/// Segments are capped so that one huge batch does not hold up descriptor-carrying ones.
const SEG_MAX: usize = 1 << 20;
/// The most segments gathered into one `sendmsg`.
const GATHER: usize = 64;

impl OutQueue {
    /// The buffer to append the next record to, after opening a new segment for a
    /// record with descriptors (they must ride on its first byte).
    pub(crate) fn buffer(&mut self, fds: Vec<OwnedFd>) -> &mut Vec<u8> {
        let fresh = !fds.is_empty()
            || self
                .segs
                .back()
                .is_none_or(|s| s.off > 0 || s.shared.is_some() || s.bytes.len() >= SEG_MAX);
        if fresh {
            self.segs.push_back(Seg {
                fds,
                ..Seg::default()
            });
        }
        &mut self.segs.back_mut().expect("pushed above").bytes
    }

    /// Appends a large payload without copying it (after its header, written with
    /// [`buffer`](Self::buffer)).
    pub(crate) fn push_shared(&mut self, payload: Arc<Vec<u8>>) {
        self.segs.push_back(Seg {
            shared: Some(payload),
            ..Seg::default()
        });
    }

    /// Recomputes `pending` after appending.
    pub(crate) fn recount(&mut self) {
        self.pending = self.segs.iter().map(|s| s.data().len() - s.off).sum();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Sends as much as the socket takes without blocking, gathering segments into
    /// one `sendmsg`. `Ok(true)` when all is sent.
    pub(crate) fn flush(&mut self, sock: BorrowedFd<'_>) -> io::Result<bool> {
        loop {
            while self.segs.front().is_some_and(|s| s.off == s.data().len()) {
                self.segs.pop_front();
            }
            let Some(first) = self.segs.front_mut() else {
                return Ok(true);
            };
            let fds = if first.off == 0 {
                std::mem::take(&mut first.fds)
            } else {
                Vec::new()
            };
            // Descriptors ride on the first byte of their segment: stop gathering at
            // the next segment that has some.
            let take = 1 + self
                .segs
                .iter()
                .skip(1)
                .take(GATHER - 1)
                .take_while(|s| s.fds.is_empty())
                .count();
            let iov: Vec<IoSlice<'_>> = self
                .segs
                .iter()
                .take(take)
                .map(|s| IoSlice::new(&s.data()[s.off..]))
                .collect();
            let r = send_some(sock, &iov, &fds, true);
            drop(iov);
            match r {
                Ok(mut n) => {
                    self.pending -= n;
                    for s in self.segs.iter_mut() {
                        let left = s.data().len() - s.off;
                        let k = left.min(n);
                        s.off += k;
                        n -= k;
                        if n == 0 {
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.segs.front_mut().expect("present").fds = fds;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.segs.front_mut().expect("present").fds = fds;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What one [`RecordReader::fill`] call saw.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Some bytes arrived.
    Data,
    /// Nothing to read right now (non-blocking).
    Empty,
    /// The peer closed its end.
    Eof,
}

/// A record header as [`decode_header`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) tag: u8,
    pub(crate) id: u64,
    pub(crate) aux: i64,
    pub(crate) nfds: usize,
    pub(crate) len: usize,
}

/// Decodes the record header at the start of `bytes`, written by another process:
/// `Ok(None)` if fewer than [`HEADER`] bytes are there. Never panics, whatever the
/// bytes.
///
/// # Errors
///
/// `InvalidData` if the payload length is over `max_len` (or over what this process
/// can address), or the descriptor count over [`MAX_FDS`].
pub(crate) fn decode_header(bytes: &[u8], max_len: u64) -> io::Result<Option<Header>> {
    let Some(h) = bytes.get(..HEADER) else {
        return Ok(None);
    };
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&h[at..at + 8]);
        w
    };
    let mut n = [0u8; 4];
    n.copy_from_slice(&h[NFDS_AT..LEN_AT]);
    let nfds = u32::from_le_bytes(n) as usize;
    let len = u64::from_le_bytes(word(LEN_AT));
    let limit = max_len.min(isize::MAX as u64);
    let (Ok(len), true) = (usize::try_from(len), len <= limit) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("record of {len} bytes exceeds the maximum of {limit} bytes"),
        ));
    };
    if nfds > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("record announces {nfds} descriptors, more than {MAX_FDS}"),
        ));
    }
    Ok(Some(Header {
        tag: h[TAG_AT],
        id: u64::from_le_bytes(word(ID_AT)),
        aux: i64::from_le_bytes(word(AUX_AT)),
        nfds,
        len,
    }))
}

/// Reads records in bulk from a socket.
///
/// Memory grows with the bytes that actually arrive: a large record's buffer
/// doubles as its payload comes in, never straight to the length its header
/// announces, and a header over [`max_len`](Self::max_len) is an error.
#[derive(Debug)]
pub(crate) struct RecordReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    fds: VecDeque<OwnedFd>,
    /// A large record being read straight into its own buffer.
    big: Option<Big>,
    /// The largest payload accepted (a longer one is an `InvalidData` error).
    pub(crate) max_len: u64,
    /// The most descriptors one read accepts (more are dropped by the kernel:
    /// [`FdsDropped`]); [`MAX_FDS`], what one record may carry, but for tests.
    max_fds: usize,
}

/// A record of at least [`BIG`] bytes, read without a copy through the ring.
#[derive(Debug)]
struct Big {
    header: Header,
    /// The payload so far; `data.len()` is the room allocated, at most `header.len`.
    data: Vec<u8>,
    filled: usize,
}

impl Big {
    /// The buffer for the next bytes: grows (doubling, at most to the announced
    /// length) when full.
    fn room(&mut self) -> io::Result<&mut [u8]> {
        if self.filled == self.data.len() {
            let len = self
                .header
                .len
                .min(self.filled.saturating_add(self.filled.max(READ_CHUNK)));
            self.data
                .try_reserve_exact(len - self.data.len())
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate a record")
                })?;
            self.data.resize(len, 0);
        }
        Ok(&mut self.data[self.filled..])
    }
}

/// Payloads this large are read directly into their own buffer.
const BIG: usize = 64 * 1024;

const READ_CHUNK: usize = 256 * 1024;

impl Default for RecordReader {
    fn default() -> Self {
        RecordReader {
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            fds: VecDeque::new(),
            big: None,
            max_len: u64::MAX,
            max_fds: MAX_FDS,
        }
    }
}

impl RecordReader {
    /// A reader that refuses payloads over `max_len` bytes.
    pub(crate) fn with_max_len(max_len: u64) -> Self {
        RecordReader {
            max_len,
            ..RecordReader::default()
        }
    }

    /// Reads what is available (at most one `recvmsg`).
    ///
    /// # Errors
    ///
    /// The socket's error; [`FdsDropped`] (see [`is_fds_dropped`]) if the kernel dropped
    /// descriptors sent with the bytes, after which the stream is unusable;
    /// `OutOfMemory` if a large record's buffer cannot grow.
    pub(crate) fn fill(&mut self, sock: BorrowedFd<'_>, nonblocking: bool) -> io::Result<Fill> {
        if self.big.is_none() {
            self.make_room();
        }
        let target = match &mut self.big {
            Some(b) => b.room()?,
            None => &mut self.buf[self.end..],
        };
        let mut fds = Vec::new();
        let r = socket::recv_with_fds(sock, target, &mut fds, self.max_fds, nonblocking);
        self.fds.extend(fds);
        match r {
            Ok((_, true)) => Err(io::Error::new(io::ErrorKind::InvalidData, FdsDropped)),
            Ok((0, false)) => Ok(Fill::Eof),
            Ok((n, false)) => {
                match &mut self.big {
                    Some(b) => b.filled += n,
                    None => self.end += n,
                }
                Ok(Fill::Data)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Fill::Empty),
            Err(e) => Err(e),
        }
    }

    /// Makes sure there is room to read into: compacts, and grows for a record that
    /// is not [`BIG`] (a big one is read into its own buffer).
    fn make_room(&mut self) {
        let want = match decode_header(&self.buf[self.start..self.end], self.max_len) {
            Ok(Some(h)) if h.len < BIG => (HEADER + h.len).max(READ_CHUNK),
            _ => READ_CHUNK,
        };
        if self.start > 0 && (self.start == self.end || self.buf.len() - self.end < want / 2) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.start < want || self.buf.len() == self.end {
            let new_len = (self.start + want).max(self.end + READ_CHUNK);
            self.buf.resize(new_len, 0);
        }
    }

    /// Parses the next whole record, if one is buffered.
    ///
    /// # Errors
    ///
    /// `InvalidData` for a malformed record (the stream is unusable after it),
    /// `OutOfMemory` if its buffer cannot be allocated.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Record>> {
        if let Some(b) = &self.big {
            if b.filled < b.header.len {
                return Ok(None);
            }
            let b = self.big.take().expect("checked above");
            return self.finish(b.header, b.data).map(Some);
        }
        let Some(h) = decode_header(&self.buf[self.start..self.end], self.max_len)? else {
            return Ok(None);
        };
        let body = self.start + HEADER;
        let have = self.end - body;
        if have < h.len {
            if h.len >= BIG {
                // Read the rest straight into the payload's own buffer, which grows
                // as the bytes arrive.
                let mut data = Vec::new();
                data.try_reserve_exact(have.max(READ_CHUNK).min(h.len))
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate a record")
                    })?;
                data.extend_from_slice(&self.buf[body..self.end]);
                self.start = 0;
                self.end = 0;
                self.big = Some(Big {
                    header: h,
                    data,
                    filled: have,
                });
            }
            return Ok(None);
        }
        let payload = self.buf[body..body + h.len].to_vec();
        self.start = body + h.len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        self.finish(h, payload).map(Some)
    }

    fn finish(&mut self, h: Header, payload: Vec<u8>) -> io::Result<Record> {
        if h.nfds > self.fds.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "record announced {} descriptors but {} arrived",
                    h.nfds,
                    self.fds.len()
                ),
            ));
        }
        let fds = self.fds.drain(..h.nfds).collect();
        Ok(Record {
            tag: h.tag,
            id: h.id,
            aux: h.aux,
            payload,
            fds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The header decoder of what a worker process writes is total: any bytes
        /// and limit give an answer, never a panic (the fuzz targets call it too).
        #[test]
        fn decode_header_is_total(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            max_len in proptest::prelude::any::<u64>(),
        ) {
            let _ = decode_header(&bytes, max_len);
        }
    }

    #[test]
    fn records_round_trip_in_bulk_with_fds() {
        let (a, b) = crate::sys::socket::pair().unwrap();
        let (x, _y) = crate::sys::socket::pair().unwrap();
        let mut q = OutQueue::default();
        for i in 0..100u64 {
            let buf = q.buffer(Vec::new());
            put_header(buf, TASK, i, -7, 0, 3);
            buf.extend_from_slice(b"abc");
        }
        let buf = q.buffer(vec![x]);
        put_header(buf, DONE, 100, 0, 1, 0);
        let big = vec![7u8; 1_000_000];
        let buf = q.buffer(Vec::new());
        let at = buf.len();
        put_header(buf, DONE, 101, 0, 0, 0);
        buf.extend_from_slice(&big);
        finish_record(buf, at, 0);
        let shared = Arc::new(vec![9u8; 300_000]);
        put_header(q.buffer(Vec::new()), TASK, 102, 0, 0, shared.len());
        q.push_shared(Arc::clone(&shared));
        put_header(q.buffer(Vec::new()), TASK, 103, 0, 0, 1);
        q.buffer(Vec::new()).push(5);
        q.recount();
        let t = std::thread::spawn(move || {
            while !q.flush(a.as_fd()).unwrap() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            a
        });
        let mut r = RecordReader::default();
        let mut got = Vec::new();
        while got.len() < 104 {
            assert_ne!(r.fill(b.as_fd(), false).unwrap(), Fill::Eof);
            while let Some(rec) = r.next_record().unwrap() {
                got.push(rec);
            }
        }
        drop(t.join().unwrap());
        assert_eq!(got[5].id, 5);
        assert_eq!(got[5].aux, -7);
        assert_eq!(got[5].payload, b"abc");
        assert_eq!(got[100].fds.len(), 1);
        assert_eq!(got[101].payload.len(), big.len());
        assert_eq!(got[102].payload, *shared);
        assert_eq!(got[103].payload, [5]);
        assert_eq!(r.fill(b.as_fd(), false).unwrap(), Fill::Eof);
    }

    /// A record whose descriptors the kernel could not all hand over (`MSG_CTRUNC`)
    /// is a typed error, not a record with its descriptors silently missing (or
    /// another record's).
    #[test]
    fn dropped_descriptors_are_a_typed_error() {
        let (a, b) = crate::sys::socket::pair().unwrap();
        let (x, _y) = crate::sys::socket::pair().unwrap();
        let fds: Vec<OwnedFd> = (0..16).map(|_| x.try_clone().unwrap()).collect();
        let mut out = Vec::new();
        put_header(&mut out, DONE, 1, 0, fds.len(), 0);
        send_all(a.as_fd(), &out, &fds).unwrap();
        // The room for one descriptor holds a few (alignment padding), never 16.
        let mut r = RecordReader {
            max_fds: 1,
            ..RecordReader::default()
        };
        let e = r.fill(b.as_fd(), false).unwrap_err();
        assert!(is_fds_dropped(&e), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn task_header_names_its_entry_and_finish_record_patches_in_place() {
        let entry = EntryRef::Offset(-12345);
        let mut out = vec![0xee];
        put_task(&mut out, 7, entry, 3, 5);
        let h = decode_header(&out[1..], u64::MAX).unwrap().unwrap();
        assert_eq!((h.tag, h.id, h.nfds, h.len), (TASK, 7, 3, 5));
        let at = out.len();
        put_header(&mut out, DONE, 8, 0, 0, 0);
        out.extend_from_slice(b"payload");
        finish_record(&mut out, at, 2);
        let h = decode_header(&out[at..], u64::MAX).unwrap().unwrap();
        assert_eq!((h.tag, h.id, h.nfds, h.len), (DONE, 8, 2, 7));
        let rec = Record {
            tag: TASK,
            id: 7,
            aux: decode_header(&out[1..], u64::MAX).unwrap().unwrap().aux,
            payload: Vec::new(),
            fds: Vec::new(),
        };
        assert_eq!(rec.entry(), entry);
    }
}
