//! Descriptors sent through a [`Connection`](super::Connection).
//!
//! A message travels through the ring in shared memory, which cannot carry
//! descriptors. When a value owns some (a pipe end, a [`SharedMemory`](crate::shm::SharedMemory),
//! a file), the sender first puts a *mark* on the connection's Unix socket, the one
//! that otherwise carries only one-byte wake-ups: the byte [`MARK`], the message's
//! sequence number in the ring and the descriptor count, with the descriptors
//! attached (`SCM_RIGHTS`). Then it writes the message into the ring, where it
//! already made sure the first record fits, so a mark is never left without its
//! message by a full ring. A sender in the middle of a message only dies with its
//! process, and then the connection is over anyway.
//!
//! The receiver reads the socket only when a decoded message asks for a descriptor,
//! when [`wait`](super::wait) drains wake-ups, and every 50 ms while it sleeps in a
//! receive with nothing to read (so marks of messages taken as raw bytes never fill
//! the socket and stall the sender): marks read on the way are kept in an [`Inbox`]
//! by sequence number. Since the mark was queued on the socket before the
//! message was published, it is always there to read once the message is. A mark
//! whose message was received as raw bytes is dropped (its descriptors closed) when
//! a later message is received.

use std::collections::VecDeque;
use std::os::fd::{BorrowedFd, OwnedFd};

use super::ring::SEQ_BITS;
use crate::sys::socket;

/// The byte of a wake-up (what [`socket::nudge`] sends).
#[cfg(test)]
const NUDGE: u8 = 1;
/// The first byte of a mark.
pub(crate) const MARK: u8 = 2;
/// A mark: [`MARK`], sequence number (`u64`, little-endian), descriptor count (`u32`).
pub(crate) const MARK_LEN: usize = 13;

const SEQ_MASK: u32 = (1 << SEQ_BITS) - 1;

/// The most marks an [`Inbox`] keeps ahead of their messages. A correct sender has
/// at most one per message in the ring, each with at least one descriptor (so the
/// open-file limit bounds them first); a peer flooding the socket with marks loses
/// its oldest ones instead of growing this process's memory without bound.
pub(crate) const MAX_MARKS: usize = 1 << 16;

/// Builds the mark for message `seq` carrying `n` descriptors.
pub(crate) fn mark(seq: u64, n: usize) -> [u8; MARK_LEN] {
    let mut m = [0u8; MARK_LEN];
    m[0] = MARK;
    m[1..9].copy_from_slice(&seq.to_le_bytes());
    m[9..].copy_from_slice(&(n as u32).to_le_bytes());
    m
}

/// `true` if sequence number `a` (low [`SEQ_BITS`]) comes before `b`.
fn before(a: u32, b: u32) -> bool {
    let d = b.wrapping_sub(a) & SEQ_MASK;
    d != 0 && d < 1 << (SEQ_BITS - 1)
}

/// Marks read from the socket and not yet claimed by their message.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// The bytes of a mark read so far.
    partial: Vec<u8>,
    /// Descriptors that arrived ahead of the end of their mark.
    loose: VecDeque<OwnedFd>,
    /// (sequence number, its descriptors or why they are missing), in order.
    marks: VecDeque<(u32, Result<Vec<OwnedFd>, String>)>,
    /// The kernel dropped descriptors that could not be installed here
    /// (`MSG_CTRUNC`): the next mark to complete is short.
    truncated: bool,
}

impl Inbox {
    /// Reads everything the socket holds now: wake-ups are dropped, marks kept.
    pub(crate) fn pump(&mut self, sock: BorrowedFd<'_>) {
        let mut buf = [0u8; 256];
        let mut fds = Vec::new();
        loop {
            match socket::try_recv_with_fds(sock, &mut buf, &mut fds) {
                Ok((0, _)) | Err(_) => return,
                Ok((n, dropped)) => {
                    self.loose.extend(fds.drain(..));
                    self.truncated |= dropped;
                    self.feed(&buf[..n]);
                }
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.partial.is_empty() {
                // Anything but the start of a mark is a wake-up. A byte that is neither
                // comes from a peer writing garbage: it is skipped like a wake-up (the
                // peer's process is not ours to trust, so this is no place to assert).
                if b == MARK {
                    self.partial.push(b);
                }
                continue;
            }
            self.partial.push(b);
            if self.partial.len() < MARK_LEN {
                continue;
            }
            let seq = u64::from_le_bytes(self.partial[1..9].try_into().expect("8 bytes"));
            let n = u32::from_le_bytes(self.partial[9..].try_into().expect("4 bytes")) as usize;
            self.partial.clear();
            if n == 0 {
                // A correct sender marks only messages that carry descriptors.
                continue;
            }
            let have = self.loose.len().min(n);
            let fds: Vec<OwnedFd> = self.loose.drain(..have).collect();
            let got = if have == n && !std::mem::take(&mut self.truncated) {
                Ok(fds)
            } else {
                Err(format!(
                    "{n} file descriptors were sent with this message but the kernel \
                     could not hand them all over (is this process at its open-file limit?)"
                ))
            };
            self.marks.push_back((seq as u32 & SEQ_MASK, got));
            if self.marks.len() > MAX_MARKS {
                self.marks.pop_front();
            }
        }
    }

    /// Takes the descriptors of message `seq`, reading the socket if its mark has not
    /// been read yet; drops the marks of earlier messages.
    pub(crate) fn take(&mut self, sock: BorrowedFd<'_>, seq: u32) -> Result<Vec<OwnedFd>, String> {
        for pumped in [false, true] {
            while self.marks.front().is_some_and(|(s, _)| before(*s, seq)) {
                self.marks.pop_front();
            }
            match self.marks.front() {
                Some((s, _)) if *s == seq => {
                    return self.marks.pop_front().expect("just seen").1;
                }
                Some(_) => break,
                None if !pumped => self.pump(sock),
                None => {}
            }
        }
        Err("the file descriptors sent with this message did not arrive".into())
    }

    /// Drops the marks of messages up to and including `seq`, which were received
    /// already (as raw bytes: a decoded message takes its mark itself).
    pub(crate) fn forget_through(&mut self, seq: u32) {
        while self
            .marks
            .front()
            .is_some_and(|(s, _)| *s == seq || before(*s, seq))
        {
            self.marks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};

    use super::*;

    fn fds(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| std::fs::File::open("/dev/null").unwrap().into())
            .collect()
    }

    /// Marks split anywhere between reads, wake-up bytes between them, descriptors
    /// arriving with a mark's first byte: every mark is rebuilt whole, in order.
    #[test]
    fn marks_survive_any_split() {
        let (sock, _peer) = socket::pair().unwrap();
        for split in 1..=MARK_LEN + 2 {
            let mut inbox = Inbox::default();
            let mut stream = vec![NUDGE];
            let first = stream.len();
            stream.extend_from_slice(&mark(5, 1));
            stream.push(NUDGE);
            let second = stream.len();
            stream.extend_from_slice(&mark(7, 2));
            for (i, chunk) in stream.chunks(split).enumerate() {
                let start = i * split;
                // The kernel hands a mark's descriptors over with its first byte.
                if (start..start + chunk.len()).contains(&first) {
                    inbox.loose.extend(fds(1));
                }
                if (start..start + chunk.len()).contains(&second) {
                    inbox.loose.extend(fds(2));
                }
                inbox.feed(chunk);
            }
            assert_eq!(
                inbox.take(sock.as_fd(), 5).unwrap().len(),
                1,
                "split {split}"
            );
            assert_eq!(
                inbox.take(sock.as_fd(), 7).unwrap().len(),
                2,
                "split {split}"
            );
            assert!(inbox.loose.is_empty() && inbox.partial.is_empty());
        }
    }

    #[test]
    fn earlier_marks_are_dropped_and_missing_ones_reported() {
        let (sock, _peer) = socket::pair().unwrap();
        let mut inbox = Inbox::default();
        inbox.loose.extend(fds(1));
        inbox.feed(&mark(3, 1));
        inbox.loose.extend(fds(1));
        inbox.feed(&mark(4, 1));
        // Message 3 was received as raw bytes: taking 4 drops 3's mark on the way.
        assert_eq!(inbox.take(sock.as_fd(), 4).unwrap().len(), 1);
        assert!(inbox.marks.is_empty());
        // Nothing on the socket for 9: an error, not a wait.
        assert!(inbox.take(sock.as_fd(), 9).is_err());
        // A mark whose descriptors the kernel dropped says so.
        inbox.truncated = true;
        inbox.feed(&mark(10, 2));
        assert!(inbox
            .take(sock.as_fd(), 10)
            .unwrap_err()
            .contains("open-file limit"));
    }

    /// Found by the `side_marks` fuzz target: a byte that is neither a wake-up nor a
    /// mark (a peer writing garbage on the socket) hit a `debug_assert`.
    #[test]
    fn unknown_bytes_are_skipped() {
        let (sock, _peer) = socket::pair().unwrap();
        let mut inbox = Inbox::default();
        inbox.feed(&[0, 7, 255, NUDGE]);
        inbox.loose.extend(fds(1));
        inbox.feed(&mark(6, 1));
        inbox.feed(&[3]);
        assert_eq!(inbox.take(sock.as_fd(), 6).unwrap().len(), 1);
        assert!(inbox.partial.is_empty());
    }

    /// A peer flooding the socket with marks: empty ones are ignored, and at most
    /// `MAX_MARKS` are kept.
    #[test]
    fn a_flood_of_marks_stays_bounded() {
        let mut inbox = Inbox::default();
        for seq in 0..(MAX_MARKS as u64 + 100) {
            inbox.feed(&mark(seq, 0));
        }
        assert!(inbox.marks.is_empty());
        for seq in 0..(MAX_MARKS as u64 + 100) {
            inbox.feed(&mark(seq, 1));
        }
        assert_eq!(inbox.marks.len(), MAX_MARKS);
    }

    #[test]
    fn sequence_order_wraps() {
        assert!(before(1, 2));
        assert!(!before(2, 1));
        assert!(!before(2, 2));
        assert!(before(SEQ_MASK, 0));
        assert!(!before(0, SEQ_MASK));
    }

    #[test]
    fn marks_travel_through_a_real_socket() {
        let (a, b) = socket::pair().unwrap();
        let sent = fds(3);
        let borrowed = socket::borrow_all(&sent);
        socket::nudge(a.as_fd());
        assert_eq!(
            socket::try_send_with_fds(a.as_fd(), &mark(42, 3), &borrowed).unwrap(),
            MARK_LEN
        );
        socket::nudge(a.as_fd());
        let mut inbox = Inbox::default();
        assert_eq!(inbox.take(b.as_fd(), 42).unwrap().len(), 3);
    }
}
