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
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::sys::socket::MAX_FDS;

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

/// One parsed record.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) tag: u8,
    pub(crate) id: u64,
    pub(crate) aux: i64,
    pub(crate) payload: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Appends a record header for a payload of `len` bytes.
pub(crate) fn put_header(out: &mut Vec<u8>, tag: u8, id: u64, aux: i64, nfds: usize, len: usize) {
    out.push(tag);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&aux.to_le_bytes());
    out.extend_from_slice(&(nfds as u32).to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
}

/// Patches the length of the record whose header starts at `at` (for payloads
/// encoded in place after a provisional header).
pub(crate) fn patch_len(out: &mut [u8], at: usize) {
    let len = (out.len() - at - HEADER) as u64;
    out[at + 21..at + 29].copy_from_slice(&len.to_le_bytes());
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
    let mut flags = SendFlags::NOSIGNAL;
    if nonblocking {
        flags |= SendFlags::DONTWAIT;
    }
    let n = if fds.is_empty() {
        sendmsg(sock, iov, &mut SendAncillaryBuffer::default(), flags)
    } else {
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        let mut space =
            vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(borrowed.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
            return Err(io::Error::other("ancillary buffer too small"));
        }
        sendmsg(sock, iov, &mut control, flags)
    };
    Ok(n?)
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
    n.copy_from_slice(&h[17..21]);
    let nfds = u32::from_le_bytes(n) as usize;
    let len = u64::from_le_bytes(word(21));
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
        tag: h[0],
        id: u64::from_le_bytes(word(1)),
        aux: i64::from_le_bytes(word(9)),
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
    pub(crate) fn fill(&mut self, sock: BorrowedFd<'_>, nonblocking: bool) -> io::Result<Fill> {
        if self.big.is_none() {
            self.make_room();
        }
        let mut flags = RecvFlags::CMSG_CLOEXEC;
        if nonblocking {
            flags |= RecvFlags::DONTWAIT;
        }
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let target = match &mut self.big {
                Some(b) => b.room()?,
                None => &mut self.buf[self.end..],
            };
            let mut iov = [IoSliceMut::new(target)];
            let r = recvmsg(sock, &mut iov, &mut control, flags);
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = msg {
                    self.fds.extend(fds);
                }
            }
            return match r {
                Ok(r) if r.bytes == 0 => Ok(Fill::Eof),
                Ok(r) => {
                    match &mut self.big {
                        Some(b) => b.filled += r.bytes,
                        None => self.end += r.bytes,
                    }
                    Ok(Fill::Data)
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => Ok(Fill::Empty),
                Err(e) => Err(e.into()),
            };
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
        patch_len(buf, at);
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
}
