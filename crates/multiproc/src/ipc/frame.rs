//! Messages over a [`Ring`]: one `SINGLE` record, or `FIRST`/`MORE`…/`LAST`
//! fragments for a message larger than a record, and their reassembly.
//!
//! A receiver rebuilds a fragmented message in the caller's buffer, which grows
//! with the fragments that actually arrive (a forged length costs nothing until it
//! is sent). A deadline bounds a whole call, the middle of a message included; the
//! part received then waits in a [`Reassembly`] for the next call. It drops a
//! partial message when a new message starts (its producer died half-way and the
//! next producer took over) and skips continuation fragments it has no start for
//! (their start was consumed by a receiver that died, or was refused as too large).
//! A message is therefore either received whole or not at all, and losing one never
//! loses another.

use std::time::{Duration, Instant};

use super::ring::{
    Corrupt, Mem, Record, Ring, Slot, Waited, FIRST, FIRST_PREFIX, LAST, MORE, SINGLE,
};

/// Default largest message a pipe or queue accepts, and result a child or a pool
/// worker may send back (1 GiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

/// How long an operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patience {
    /// Not at all.
    Try,
    /// Until this instant.
    Until(Instant),
    /// For ever.
    Forever,
}

impl Patience {
    /// Until `timeout` from now ([`Forever`](Patience::Forever) if that instant is
    /// beyond what `Instant` can hold).
    pub(crate) fn within(timeout: std::time::Duration) -> Patience {
        Instant::now()
            .checked_add(timeout)
            .map_or(Patience::Forever, Patience::Until)
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Patience::Until(d) => Some(d),
            _ => None,
        }
    }
}

/// Why a send did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendFail {
    /// No room (with [`Patience::Try`]).
    Full,
    /// No room before the deadline.
    TimedOut,
    /// The peer check asked to stop (the receiver is gone).
    Stopped,
    /// The ring's positions in shared memory cannot be.
    Corrupt(Corrupt),
}

/// Why a receive did not produce a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecvFail {
    /// Nothing there (with [`Patience::Try`]).
    Empty,
    /// Nothing before the deadline.
    TimedOut,
    /// The peer check asked to stop (the sender is gone).
    Stopped,
    /// The ring holds garbage.
    Corrupt(Corrupt),
    /// A message over the maximum size arrived (and was dropped); its length.
    TooLarge(u64),
}

/// Sends `msg` as one message. `tick` is called after every sleep and returns
/// `false` to give up (the receiver is gone). Returns whether a receiver asked for a
/// byte on the notification descriptor.
///
/// The deadline bounds the whole send. A message larger than a record whose deadline
/// passes after part of it went into the ring is abandoned there: its receiver drops
/// the part it got when the next message starts (see [`recv`]), so nothing half-sent
/// is ever delivered.
pub(crate) fn send<M: Mem>(
    ring: &Ring<M>,
    msg: &[u8],
    patience: Patience,
    tick: &mut dyn FnMut() -> bool,
) -> Result<bool, SendFail> {
    let max = ring.max_record();
    if msg.len() <= max {
        loop {
            if let Some((notify, _)) = ring
                .try_write(SINGLE, None, &[msg])
                .map_err(SendFail::Corrupt)?
            {
                return Ok(notify);
            }
            wait_fit(ring, msg.len(), patience, tick)?;
        }
    }
    let mut out = Outgoing::begin(ring, msg.len(), patience)?;
    out.write(msg, tick)?;
    out.finish(tick)
}

/// A message going into a ring piece by piece, as its bytes are produced (a value
/// serialized straight into the ring: see `Queue`'s large items). It is cut into
/// records as [`send`] cuts a whole message; each record is published once it is
/// full, so a receiver copies one fragment out while the next one is being written.
///
/// A message that is not [`finish`](Self::finish)ed is abandoned where it stands:
/// an unpublished record leaves no trace, and published fragments are dropped by
/// the receiver when the next message starts (as after a deadline, see [`send`]).
pub(crate) struct Outgoing<'a, M: Mem> {
    ring: &'a Ring<M>,
    patience: Patience,
    /// The message's length.
    total: usize,
    /// Message bytes written so far.
    done: usize,
    /// The record being filled: its slot, kind and payload bytes written.
    cur: Option<(Slot, u32, usize)>,
    /// The message's sequence number, once its first record is published.
    seq: Option<u64>,
    /// Whether a receiver asked for a byte on the notification descriptor.
    notify: bool,
    /// The mark in the `FIRST` prefix (`0`: none): one more than the message
    /// offset of its large byte string's length (see [`begin_split`](Self::begin_split)).
    split: u32,
}

impl<'a, M: Mem> Outgoing<'a, M> {
    /// Starts a message of `total` bytes.
    ///
    /// # Errors
    ///
    /// With [`Patience::Try`], [`SendFail::Full`] unless every fragment fits now.
    pub(crate) fn begin(
        ring: &'a Ring<M>,
        total: usize,
        patience: Patience,
    ) -> Result<Outgoing<'a, M>, SendFail> {
        Outgoing::begin_split(ring, total, patience, None)
    }

    /// Starts a message of `total` bytes that holds a large byte string whose
    /// length (postcard's varint) starts at message offset `at`: the mark goes into
    /// the `FIRST` prefix (the message is fragmented even if it would fit one
    /// record), so that [`recv_split`] can put the string's bytes in a buffer of
    /// their own. The mark is a hint: a receiver checks it against the bytes.
    ///
    /// # Errors
    ///
    /// As [`begin`](Self::begin).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn begin_split(
        ring: &'a Ring<M>,
        total: usize,
        patience: Patience,
        at: Option<usize>,
    ) -> Result<Outgoing<'a, M>, SendFail> {
        let max = ring.max_record();
        let split = at
            .filter(|&at| at < total)
            .and_then(|at| u32::try_from(at + 1).ok())
            .unwrap_or(0);
        if patience == Patience::Try && (total > max || split != 0) {
            // Every fragment must fit now (a bound that counts one wrap per record).
            let records = (total + FIRST_PREFIX).div_ceil(max) as u64;
            let need = total as u64 + FIRST_PREFIX as u64 + records * 8 + ring.capacity() / 4;
            if !ring.has_room(need).map_err(SendFail::Corrupt)? {
                return Err(SendFail::Full);
            }
        }
        Ok(Outgoing {
            ring,
            patience,
            total,
            done: 0,
            cur: None,
            seq: None,
            notify: false,
            split,
        })
    }

    /// Bytes still to write.
    pub(crate) fn left(&self) -> usize {
        self.total - self.done
    }

    /// Writes the message's next bytes, waiting for room as the patience allows;
    /// `tick` is called after every sleep and returns `false` to give up.
    ///
    /// # Panics
    ///
    /// Panics if `bytes` is longer than what is [`left`](Self::left).
    pub(crate) fn write(
        &mut self,
        mut bytes: &[u8],
        tick: &mut dyn FnMut() -> bool,
    ) -> Result<(), SendFail> {
        assert!(
            bytes.len() <= self.left(),
            "more bytes than the message has"
        );
        while !bytes.is_empty() {
            if self.cur.is_none() {
                self.open(tick)?;
            }
            let (slot, _, filled) = self.cur.as_mut().expect("opened above");
            let n = (slot.len() - *filled).min(bytes.len());
            self.ring.write_slot(slot, *filled, &bytes[..n]);
            *filled += n;
            self.done += n;
            bytes = &bytes[n..];
            if *filled == slot.len() {
                let (slot, kind, _) = self.cur.take().expect("filled above");
                let (notify, seq) = self.ring.publish(&slot, kind, self.seq);
                self.notify |= notify;
                self.seq = Some(seq);
            }
        }
        Ok(())
    }

    /// Reserves the next record (its kind and length follow from what is left).
    fn open(&mut self, tick: &mut dyn FnMut() -> bool) -> Result<(), SendFail> {
        let max = self.ring.max_record();
        let (kind, len, prefix) = if self.total <= max && self.split == 0 {
            (SINGLE, self.total, false)
        } else if self.done == 0 {
            // With a split mark, a message that would fit one record goes in two:
            // its first fragment is shorter than the message (`total >= 1` here).
            (FIRST, max.min(self.total + FIRST_PREFIX - 1), true)
        } else if self.left() <= max {
            (LAST, self.left(), false)
        } else {
            (MORE, max, false)
        };
        let slot = loop {
            if let Some(slot) = self.ring.reserve(len).map_err(SendFail::Corrupt)? {
                break slot;
            }
            wait_fit(self.ring, len, self.patience, tick)?;
        };
        let mut filled = 0;
        if prefix {
            let mut p = [0u8; FIRST_PREFIX];
            p[..8].copy_from_slice(&(self.total as u64).to_le_bytes());
            p[8..12].copy_from_slice(&std::process::id().to_le_bytes());
            p[12..16].copy_from_slice(&self.split.to_le_bytes());
            self.ring.write_slot(&slot, 0, &p);
            filled = FIRST_PREFIX;
        }
        self.cur = Some((slot, kind, filled));
        Ok(())
    }

    /// Ends the message (an empty one is published here); returns whether a
    /// receiver asked for a byte on the notification descriptor.
    ///
    /// # Panics
    ///
    /// Panics if bytes are [`left`](Self::left).
    pub(crate) fn finish(mut self, tick: &mut dyn FnMut() -> bool) -> Result<bool, SendFail> {
        assert_eq!(self.left(), 0, "message finished early");
        if self.total == 0 {
            self.open(tick)?;
            let (slot, kind, _) = self.cur.take().expect("opened above");
            self.notify |= self.ring.publish(&slot, kind, None).0;
        }
        Ok(self.notify)
    }
}

/// How long a waiting sender asks for slack.
const SLACK_FOR: Duration = Duration::from_micros(20);

/// Waits until a record of `len` bytes fits in `ring`, as `patience` allows. (A
/// ring whose positions cannot be ends the wait: the write that follows reports it.)
pub(crate) fn wait_fit<M: Mem>(
    ring: &Ring<M>,
    len: usize,
    patience: Patience,
    tick: &mut dyn FnMut() -> bool,
) -> Result<(), SendFail> {
    if ring.fits(len).unwrap_or(true) {
        return Ok(());
    }
    if patience == Patience::Try {
        return Err(SendFail::Full);
    }
    // While spinning, wait for some slack beyond this record (an eighth of the
    // ring): the receiver then frees a batch of records before this sender reads
    // its position again, instead of the two trading one cache line per record.
    // Once asleep, any room will do (each wake-up costs a system call).
    let slack = ring.capacity() / 8;
    let slack_until = Instant::now() + SLACK_FOR;
    let mut early = true;
    let mut looks = 0u32;
    let mut ready = || {
        looks += 1;
        early = early && still_early(looks, slack_until);
        ring.fits_with_slack(len, if early { slack } else { 0 })
            .unwrap_or(true)
    };
    match ring.wait_space(patience.deadline(), tick, &mut ready) {
        Waited::Ready => Ok(()),
        Waited::TimedOut => Err(SendFail::TimedOut),
        Waited::Stopped => Err(SendFail::Stopped),
    }
}

/// Whether a waiting sender still asks for slack: until `until`; under loom, whose
/// models must not depend on the clock, for its first 16 looks.
fn still_early(looks: u32, until: Instant) -> bool {
    #[cfg(loom)]
    {
        let _ = until;
        looks <= 16
    }
    #[cfg(not(loom))]
    {
        let _ = looks;
        Instant::now() < until
    }
}

/// A message being reassembled.
#[derive(Debug, Clone, Copy)]
struct Partial {
    total: usize,
    filled: usize,
    pid: u32,
    /// The low [`SEQ_BITS`](super::ring::SEQ_BITS) of the message's sequence number.
    seq: u32,
    /// The ring's `head` after the last fragment taken: if it moved by the time the
    /// receive resumes, another consumer took records in between.
    head: u64,
    /// Where the bytes go, for a message received apart from its large byte string.
    split: Option<Split>,
}

/// A message received in two buffers (see [`recv_split`]): its large byte string
/// in one, the rest in the other (the head buffer).
#[derive(Debug, Clone, Copy)]
struct Split {
    /// Message offset of the string's length (a postcard varint), as marked.
    at: usize,
    /// Bytes in the head buffer so far.
    head: usize,
    step: Step,
}

/// How far a [`Split`] message went.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Before the length.
    Before,
    /// In the length: its value so far and the bytes of it read.
    Length { value: u64, bytes: u32 },
    /// In the string, which starts at `start` (a message offset, and the head
    /// buffer's offset where it is left out) and ends at `end`.
    Bulk { start: usize, end: usize },
    /// Past the string: the rest goes to the head buffer.
    After { start: usize },
    /// The mark did not hold (no valid length there, or a string past the
    /// message's end): the whole message goes to the head buffer.
    Whole,
}

/// Where a large byte string was left out of a message received by [`recv_split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct Cut {
    /// Offset, in the head buffer, of the string's length.
    pub(crate) at: usize,
    /// Offset, in the head buffer, where the string's bytes were: the bytes after
    /// them follow from here.
    pub(crate) bulk_at: usize,
}

impl Split {
    /// The cut, once the whole message is in.
    fn cut(&self) -> Option<Cut> {
        match self.step {
            Step::After { start } => Some(Cut {
                at: self.at,
                bulk_at: start,
            }),
            _ => None,
        }
    }
}

/// Copies the `len` payload bytes of `rec` from payload offset `from`, which are
/// the message's bytes from offset `at`, to the head buffer `out` or to `bulk`, as
/// `split` says (a message of `total` bytes).
#[allow(clippy::too_many_arguments)]
fn deliver<M: Mem>(
    ring: &Ring<M>,
    rec: &Record,
    mut from: usize,
    mut len: usize,
    mut at: usize,
    total: usize,
    out: &mut Vec<u8>,
    bulk: &mut Vec<u8>,
    split: &mut Split,
) {
    while len > 0 {
        let (n, to_bulk) = match split.step {
            Step::Before if at < split.at => (len.min(split.at - at), false),
            Step::Before => {
                split.step = Step::Length { value: 0, bytes: 0 };
                continue;
            }
            // One byte of the length at a time (postcard's `try_take_varint_u64`).
            Step::Length { .. } => (1, false),
            Step::Bulk { end, .. } if at < end => (len.min(end - at), true),
            Step::Bulk { start, .. } => {
                split.step = Step::After { start };
                continue;
            }
            Step::After { .. } | Step::Whole => (len, false),
        };
        if to_bulk {
            ring.append_out(rec, from, n, bulk);
        } else {
            grow(out, split.head + n, total);
            ring.copy_out(rec, from, &mut out[split.head..split.head + n]);
            split.head += n;
        }
        if let Step::Length { value, bytes } = split.step {
            let b = out[split.head - 1];
            let value = value | (u64::from(b & 0x7f) << (7 * bytes));
            split.step = if b & 0x80 != 0 {
                if bytes + 1 < 10 {
                    Step::Length {
                        value,
                        bytes: bytes + 1,
                    }
                } else {
                    Step::Whole
                }
            } else if bytes == 9 && b > 1 {
                Step::Whole
            } else {
                let start = at + 1;
                match usize::try_from(value)
                    .ok()
                    .and_then(|l| start.checked_add(l))
                    .filter(|&end| end <= total)
                {
                    Some(end) => {
                        bulk.clear();
                        // The string's length is checked against the message's, which
                        // the receiver accepts; address space is reserved for it at
                        // once, memory is committed as its bytes arrive (if the
                        // reservation is refused, the buffer grows as they do).
                        let _ = bulk.try_reserve_exact(end - start);
                        Step::Bulk { start, end }
                    }
                    None => Step::Whole,
                }
            };
        }
        from += n;
        len -= n;
        at += n;
    }
    if let Step::Bulk { start, end } = split.step {
        if at == end {
            split.step = Step::After { start };
        }
    }
}

/// The split mark in a `FIRST` prefix: the message offset of its large byte
/// string's length, if the sender marked one.
fn first_split(prefix: &[u8; FIRST_PREFIX]) -> Option<usize> {
    let mut mark = [0u8; 4];
    mark.copy_from_slice(&prefix[12..16]);
    (u32::from_le_bytes(mark) as usize).checked_sub(1)
}

/// A receiver's state between calls: the message it was reassembling when a
/// deadline passed in its middle, and the bytes of it received so far.
///
/// The next [`recv`] with the same state continues that message if nobody else took
/// records from the ring meanwhile; otherwise the part is dropped (and the rest of
/// the message, a continuation without its start, is skipped by whoever reads it).
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    partial: Option<Partial>,
    buf: Vec<u8>,
    /// The large byte string's part, for a message received by [`recv_split`].
    bulk: Vec<u8>,
}

impl Reassembly {
    /// Whether a message is half-received.
    pub(crate) fn in_message(&self) -> bool {
        self.partial.is_some()
    }
}

/// Makes `out` exactly `len` bytes long, zero-filling only what it never held, so a
/// reused buffer costs no `memset`.
fn set_len(out: &mut Vec<u8>, len: usize) {
    if out.len() < len {
        out.resize(len, 0);
    } else {
        out.truncate(len);
    }
}

/// Makes `out` at least `len` bytes long for a message of `total` bytes: the
/// allocation doubles as fragments arrive (never past `total`), so what a sender
/// announces costs nothing until it sends it.
fn grow(out: &mut Vec<u8>, len: usize, total: usize) {
    if out.len() >= len {
        return;
    }
    if out.capacity() < len {
        let want = len.max(out.capacity().saturating_mul(2)).min(total);
        out.reserve_exact(want - out.len());
    }
    out.resize(len, 0);
}

/// Receives one message into `out` (replacing its contents); returns the low
/// [`SEQ_BITS`](super::ring::SEQ_BITS) of its sequence number, and records it as
/// taken when `track_got`.
///
/// `patience` bounds the whole call, the middle of a fragmented message included:
/// when it runs out there ([`RecvFail::TimedOut`], or [`RecvFail::Empty`] with
/// [`Patience::Try`]), `state` keeps the part received (and `out` is left empty),
/// and the next call with the same `state` continues the message.
///
/// `tick(Some(pid))` is called after each sleep in the middle of a fragmented
/// message from producer `pid`: `false` drops the partial message. `tick(None)` is
/// called after other sleeps: `false` stops with [`RecvFail::Stopped`].
pub(crate) fn recv<M: Mem>(
    ring: &Ring<M>,
    out: &mut Vec<u8>,
    max_len: usize,
    patience: Patience,
    track_got: bool,
    state: &mut Reassembly,
    tick: &mut dyn FnMut(Option<u32>) -> bool,
) -> Result<u32, RecvFail> {
    let mut none = Vec::new();
    let ends = Ends {
        out,
        bulk: &mut none,
        split: false,
    };
    recv_ends(ring, ends, max_len, patience, track_got, state, tick).map(|(seq, _)| seq)
}

/// [`recv`] for a message whose sender marked a large byte string in it (see
/// [`Outgoing::begin_split`]): the string's bytes go to `bulk` (which becomes
/// exactly them) and the rest of the message to `out`, and the [`Cut`] says
/// where the string was. Without a mark, or if the mark does not hold, the whole
/// message goes to `out` (and the cut is `None`; `bulk` is then to be ignored).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn recv_split<M: Mem>(
    ring: &Ring<M>,
    out: &mut Vec<u8>,
    bulk: &mut Vec<u8>,
    max_len: usize,
    patience: Patience,
    track_got: bool,
    state: &mut Reassembly,
    tick: &mut dyn FnMut(Option<u32>) -> bool,
) -> Result<(u32, Option<Cut>), RecvFail> {
    let ends = Ends {
        out,
        bulk,
        split: true,
    };
    recv_ends(ring, ends, max_len, patience, track_got, state, tick)
}

/// The buffers a message is received into.
struct Ends<'a> {
    out: &'a mut Vec<u8>,
    bulk: &'a mut Vec<u8>,
    /// Whether a split mark is followed.
    split: bool,
}

impl Ends<'_> {
    /// Keeps the part received in `state` (a deadline passed in its middle).
    fn park(&mut self, state: &mut Reassembly) {
        std::mem::swap(self.out, &mut state.buf);
        self.out.clear();
        std::mem::swap(self.bulk, &mut state.bulk);
        self.bulk.clear();
    }
}

fn recv_ends<M: Mem>(
    ring: &Ring<M>,
    mut ends: Ends<'_>,
    max_len: usize,
    patience: Patience,
    track_got: bool,
    state: &mut Reassembly,
    tick: &mut dyn FnMut(Option<u32>) -> bool,
) -> Result<(u32, Option<Cut>), RecvFail> {
    if state.partial.is_none() {
        // The common case, nothing half-received (and then `state.buf` is empty).
        let mut partial = None;
        let r = recv_inner(
            ring,
            &mut ends,
            max_len,
            patience,
            track_got,
            &mut partial,
            tick,
        );
        if let (Err(RecvFail::TimedOut | RecvFail::Empty), Some(p)) = (&r, partial) {
            state.partial = Some(p);
            ends.park(state);
        }
        return r;
    }
    let mut partial = state.partial.take();
    if let Some(p) = partial {
        if ring.head() != p.head || (p.split.is_some() && !ends.split) {
            // Another consumer took records since: the rest is no longer ours. (Or
            // this call does not take a split message: drop it.)
            partial = None;
            state.buf = Vec::new();
            state.bulk = Vec::new();
        } else if p.total > max_len {
            // This call accepts less than the message: drop it (its rest is skipped
            // as a continuation without its start).
            state.buf = Vec::new();
            state.bulk = Vec::new();
            return Err(RecvFail::TooLarge(p.total as u64));
        } else {
            std::mem::swap(ends.out, &mut state.buf);
            std::mem::swap(ends.bulk, &mut state.bulk);
        }
    }
    let r = recv_inner(
        ring,
        &mut ends,
        max_len,
        patience,
        track_got,
        &mut partial,
        tick,
    );
    match (&r, partial) {
        (Err(RecvFail::TimedOut | RecvFail::Empty), Some(p)) => {
            state.partial = Some(p);
            ends.park(state);
        }
        _ => {
            state.buf = Vec::new();
            state.bulk = Vec::new();
        }
    }
    r
}

fn recv_inner<M: Mem>(
    ring: &Ring<M>,
    ends: &mut Ends<'_>,
    max_len: usize,
    patience: Patience,
    track_got: bool,
    partial: &mut Option<Partial>,
    tick: &mut dyn FnMut(Option<u32>) -> bool,
) -> Result<(u32, Option<Cut>), RecvFail> {
    let out = &mut *ends.out;
    // A hostile producer can keep a receiver busy with records that are no message
    // (continuations without a start, starts that are dropped): past the deadline,
    // give up between records too. (Checked off the one-record fast path only.)
    let over = || match patience {
        Patience::Until(d) => Instant::now() >= d,
        _ => false,
    };
    let timed_out = || match patience {
        Patience::Try => RecvFail::Empty,
        _ => RecvFail::TimedOut,
    };
    loop {
        let rec = match ring.peek().map_err(RecvFail::Corrupt)? {
            Some(rec) => rec,
            None => {
                wait_record(ring, partial, patience, tick)?;
                continue;
            }
        };
        let got = |rec: &Record| track_got.then(|| ring.full_seq(rec.seq).saturating_add(1));
        match rec.kind {
            SINGLE => {
                *partial = None;
                if rec.len > max_len {
                    ring.consume(&rec, got(&rec));
                    return Err(RecvFail::TooLarge(rec.len as u64));
                }
                set_len(out, rec.len);
                ring.copy_out(&rec, 0, out);
                ring.consume(&rec, got(&rec));
                return Ok((rec.seq, None));
            }
            FIRST => {
                *partial = None;
                let mut prefix = [0u8; FIRST_PREFIX];
                ring.copy_out(&rec, 0, &mut prefix);
                let (total, pid) = decode_first_prefix(prefix);
                let here = rec.len - FIRST_PREFIX;
                if total > max_len as u64 {
                    ring.consume(&rec, got(&rec));
                    return Err(RecvFail::TooLarge(total));
                }
                if (total as usize) <= here {
                    return Err(RecvFail::Corrupt(Corrupt(format!(
                        "fragmented message of {total} bytes has a first fragment of {here}"
                    ))));
                }
                let total = total as usize;
                let mut split = first_split(&prefix)
                    .filter(|&at| ends.split && at < total)
                    .map(|at| Split {
                        at,
                        head: 0,
                        step: Step::Before,
                    });
                match split.as_mut() {
                    Some(s) => deliver(ring, &rec, FIRST_PREFIX, here, 0, total, out, ends.bulk, s),
                    None => {
                        grow(out, here, total);
                        ring.copy_out(&rec, FIRST_PREFIX, &mut out[..here]);
                    }
                }
                ring.consume(&rec, got(&rec));
                *partial = Some(Partial {
                    total,
                    filled: here,
                    pid,
                    seq: rec.seq,
                    head: rec.next_head,
                    split,
                });
            }
            _ => {
                // MORE or LAST.
                let Some(p) = partial.as_mut() else {
                    // A continuation without its start: skip it.
                    ring.consume(&rec, None);
                    if over() {
                        return Err(timed_out());
                    }
                    continue;
                };
                let end = p.filled.checked_add(rec.len).filter(|&e| e <= p.total);
                let Some(end) = end.filter(|&e| (rec.kind == LAST) == (e == p.total)) else {
                    return Err(RecvFail::Corrupt(Corrupt(format!(
                        "fragment of {} bytes does not fit a {}-byte message at {}",
                        rec.len, p.total, p.filled
                    ))));
                };
                if rec.seq != p.seq {
                    return Err(RecvFail::Corrupt(Corrupt(format!(
                        "fragment of message {} in the middle of message {}",
                        rec.seq, p.seq
                    ))));
                }
                match p.split.as_mut() {
                    Some(s) => {
                        deliver(ring, &rec, 0, rec.len, p.filled, p.total, out, ends.bulk, s);
                    }
                    None => {
                        grow(out, end, p.total);
                        ring.copy_out(&rec, 0, &mut out[p.filled..end]);
                    }
                }
                p.filled = end;
                p.head = rec.next_head;
                ring.consume(&rec, None);
                if rec.kind == LAST {
                    let seq = p.seq;
                    let (len, cut) = match p.split {
                        Some(s) => (s.head, s.cut()),
                        None => (end, None),
                    };
                    *partial = None;
                    set_len(out, len);
                    return Ok((seq, cut));
                }
                debug_assert_eq!(rec.kind, MORE);
            }
        }
        // In the middle of a message (or past a dropped one).
        if over() {
            return Err(timed_out());
        }
    }
}

/// Decodes the prefix of a `FIRST` record's payload: the message's total length
/// and its producer's pid. Pure and total (never panics).
pub(crate) fn decode_first_prefix(prefix: [u8; FIRST_PREFIX]) -> (u64, u32) {
    let mut total = [0u8; 8];
    total.copy_from_slice(&prefix[..8]);
    let mut pid = [0u8; 4];
    pid.copy_from_slice(&prefix[8..12]);
    (u64::from_le_bytes(total), u32::from_le_bytes(pid))
}

/// Waits for the next record, as `patience` allows, in the middle of a message too
/// (the caller keeps the part received). In the middle of a message it drops the
/// partial message if `tick` says its producer is gone.
fn wait_record<M: Mem>(
    ring: &Ring<M>,
    partial: &mut Option<Partial>,
    patience: Patience,
    tick: &mut dyn FnMut(Option<u32>) -> bool,
) -> Result<(), RecvFail> {
    if let Some(p) = partial {
        let pid = p.pid;
        // `Try` in the middle of a message: only the brief spin before a sleep.
        let deadline = match patience {
            Patience::Try => Some(Instant::now()),
            other => other.deadline(),
        };
        match ring.wait_data(deadline, &mut || tick(Some(pid))) {
            Waited::Ready => return Ok(()),
            Waited::TimedOut if patience == Patience::Try => return Err(RecvFail::Empty),
            Waited::TimedOut => return Err(RecvFail::TimedOut),
            Waited::Stopped => {
                *partial = None;
                // Fall through: wait as for a fresh message.
            }
        }
    }
    if patience == Patience::Try {
        return Err(RecvFail::Empty);
    }
    match ring.wait_data(patience.deadline(), &mut || tick(None)) {
        Waited::Ready => Ok(()),
        Waited::TimedOut => Err(RecvFail::TimedOut),
        Waited::Stopped => Err(RecvFail::Stopped),
    }
}

#[cfg(test)]
mod tests;
