//! A byte ring in shared memory that carries framed records, with spin-then-futex
//! wake-ups. Pipes and queues are built on it.
//!
//! The design is the classic single-producer/single-consumer "Lamport" ring with
//! monotonically increasing 64-bit positions (as in the Linux `io_uring` and
//! `perf` rings): the producer owns `tail`, the consumer owns `head`, and the byte
//! at position `p` lives at `data[p % cap]`. Several producers (or consumers) take
//! turns through a lock held by the caller ([`Queue`](crate::ipc::Queue)); a
//! [`Connection`](crate::ipc::Connection) has exactly one of each per direction.
//! Each side keeps a process-local copy of the other side's position, which is
//! always a *lower bound* of the real one, so it only reads the other side's cache
//! line when its copy says "full" / "empty" (the trick that lets an SPSC ring move
//! hundreds of millions of small messages a second).
//!
//! # Layout (offsets from the ring's base, which is 128-byte aligned)
//!
//! | offset | word | written by |
//! |---|---|---|
//! | 0 | `tail: u64`, bytes ever published | producer |
//! | 8 | `put: u64`, messages ever started | producer |
//! | 16 | `receiver_left: u32`, `1`: a receiving end closed, the producer should check that its peer is still there | a dropped receiving [`Connection`](crate::ipc::Connection) sets it, the producer clears it |
//! | 20 | `producer_cpu: u32`, the CPU a waiting producer last spun on, plus one (a hint, see [`spin`]) | producer |
//! | 128 | `head: u64`, bytes ever consumed | consumer |
//! | 136 | `got: u64`, sequence number after the last message taken | consumer |
//! | 144 | `consumer_cpu: u32`, the same for a waiting consumer | consumer |
//! | 256 | `data_seq: u32` futex word consumers sleep on | producer |
//! | 260 | `data_waiters: u32`: bit 0 = a consumer may sleep, bit 31 = "write a byte to the notification descriptor" | consumers set, producer clears |
//! | 264 | `space_seq: u32` futex word producers sleep on | consumer |
//! | 268 | `space_waiters: u32`: bit 0 = a producer may sleep | producers set, consumer clears |
//! | 272 | `cap: u64`, size of the data area (a power of two) | creator |
//! | 384 | data, `cap` bytes | |
//!
//! # Records
//!
//! A record is an 8-byte header — `len: u32` and `tag: u32`, little-endian — and
//! `len` payload bytes, padded to a multiple of 8. A record never wraps: when it
//! does not fit before the end of the data area, the producer writes a `WRAP` header
//! and starts again at the beginning. `tag` is a kind in its low 4 bits and the low 28
//! bits of the message's sequence number above them. A message that fits in one
//! record is `SINGLE`; a larger one is `FIRST` (whose payload starts with the total
//! length `u64` and the producer's pid `u32`, 16 bytes in all), `MORE`…, `LAST`. A
//! record is at most a quarter of the ring (and 128 KiB), so a sender and a receiver
//! copy different fragments of a large message at the same time.
//!
//! # Wake-ups and memory ordering
//!
//! The producer writes a record, then *releases* `tail`; the consumer *acquires*
//! `tail` before it reads the record, then *releases* `head` after it has copied it
//! out; the producer *acquires* `head` before it reuses the bytes. Sleeping is the
//! "eventcount" pattern: a consumer reads `data_seq`, sets the `SLEEPING` bit of
//! `data_waiters`, issues a `SeqCst` fence and re-checks `tail`; only then does it
//! `futex_wait` on `data_seq`. The producer stores `tail`, issues a `SeqCst` fence
//! and reads `data_waiters`; only if it is non-zero does it clear it, bump
//! `data_seq` and `futex_wake` every sleeper (so one wake-up serves a whole sleep,
//! however many records follow; a sleeper that wakes for another reason leaves the
//! bit set and costs at most one spurious wake).
//! The two fences order each side's store before its load, so either the consumer
//! sees the new `tail` or the producer sees the waiter (and then the bumped
//! `data_seq` makes the `futex_wait` return at once). The same holds for space with
//! `space_seq`/`space_waiters`. Every sleep also has a timeout ([`LIVENESS_TICK`](crate::backoff::LIVENESS_TICK)), after which the
//! caller checks that its peer is still alive.

#![cfg_attr(loom, allow(dead_code))]

use std::time::{Duration, Instant};

use self::spin::{Pace, Spun};
use crate::backoff;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};

/// Offset of `tail`.
const TAIL: usize = 0;
/// Offset of `put`.
const PUT: usize = 8;
/// Offset of `receiver_left` (on the producer's line: the producer reads it at
/// every send of a [`Connection`](crate::ipc::Connection), the receiver writes it
/// once, when it is dropped).
const RECEIVER_LEFT: usize = 16;
/// Offset of `head`.
const HEAD: usize = 128;
/// Offset of `got`.
const GOT: usize = 136;
/// Offset of `producer_cpu` (on the producer's line: only a waiting producer writes it).
const PRODUCER_CPU: usize = 20;
/// Offset of `consumer_cpu` (on the consumer's line).
const CONSUMER_CPU: usize = 144;
/// Offset of `data_seq`.
const DATA_SEQ: usize = 256;
/// Offset of `data_waiters`.
const DATA_WAITERS: usize = 260;
/// Offset of `space_seq`.
const SPACE_SEQ: usize = 264;
/// Offset of `space_waiters`.
const SPACE_WAITERS: usize = 268;
/// Offset of `cap`.
const CAP: usize = 272;
/// Offset of the data area.
const DATA: usize = 384;

/// `data_waiters` bit: a receiver waits on the notification descriptor.
const NOTIFY_FD: u32 = 1 << 31;
/// `data_waiters`/`space_waiters` bit: a waiter may be asleep on the futex word.
const SLEEPING: u32 = 1;

/// Bytes in a record header.
pub(crate) const HEADER: usize = 8;
/// Bytes at the start of a `FIRST` record's payload: total length and producer pid.
pub(crate) const FIRST_PREFIX: usize = 16;
/// Smallest data area (loom models use it): records of up to 24 bytes, so a `FIRST`
/// record has room for its prefix and some data.
pub(crate) const MIN_CAP: u64 = 128;
/// Largest record: a quarter of the ring, but no more than 128 KiB, so that a large
/// message streams through in pieces that stay in cache between the sender's copy
/// in and the receiver's copy out, and neither side waits long for the other.
const MAX_FRAGMENT: u64 = 128 << 10;
/// Largest data area (positions stay far from overflow, lengths fit `u32`).
pub(crate) const MAX_CAP: u64 = 1 << 31;
/// Smallest data area a [`Pipe`](crate::Pipe) or [`Queue`](crate::Queue) is built with
/// (the lower bound their `capacity` documents; each ring's own limit is
/// [`MIN_CAP`]).
pub(crate) const MIN_USER_CAP: u64 = 4096;
/// Largest data area a [`Pipe`](crate::Pipe) or [`Queue`](crate::Queue) is built with
/// (the upper bound their `capacity` documents; each ring's own limit is
/// [`MAX_CAP`]).
pub(crate) const MAX_USER_CAP: u64 = 1 << 30;
const _: () = assert!(MIN_CAP <= MIN_USER_CAP && MAX_USER_CAP <= MAX_CAP);
const _: () = assert!(MIN_USER_CAP.is_power_of_two() && MAX_USER_CAP.is_power_of_two());

/// The data area for a requested capacity of `bytes`: rounded up to a power of two,
/// within [`MIN_USER_CAP`]`..=`[`MAX_USER_CAP`] (so [`Ring::init`] accepts it).
pub(crate) fn user_capacity(bytes: usize) -> u64 {
    u64::try_from(bytes)
        .unwrap_or(u64::MAX)
        .clamp(MIN_USER_CAP, MAX_USER_CAP)
        .next_power_of_two()
}

/// Record kind: padding up to the end of the data area.
pub(crate) const WRAP: u32 = 1;
/// Record kind: a whole message.
pub(crate) const SINGLE: u32 = 2;
/// Record kind: the first fragment of a message (payload starts with [`FIRST_PREFIX`]).
pub(crate) const FIRST: u32 = 3;
/// Record kind: a middle fragment.
pub(crate) const MORE: u32 = 4;
/// Record kind: the last fragment.
pub(crate) const LAST: u32 = 5;
/// Bits of `tag` that hold the kind.
const KIND_MASK: u32 = 0xf;
/// Bits of a sequence number stored in `tag`.
pub(crate) const SEQ_BITS: u32 = 28;

/// Memory a ring lives in: a shared segment in production, plain atomics in tests
/// and loom models.
pub(crate) trait Mem {
    /// The 64-bit word at `off` (8-aligned).
    fn u64_at(&self, off: usize) -> &AtomicU64;
    /// The `n` 64-bit words from `off` (8-aligned): one bounds check for the words
    /// an operation uses.
    fn words(&self, off: usize, n: usize) -> &[AtomicU64];
    /// The 32-bit word at `off` (4-aligned).
    fn u32_at(&self, off: usize) -> &AtomicU32;
    /// Copies `src` to `off`.
    fn write(&self, off: usize, src: &[u8]);
    /// Copies `dst.len()` bytes from `off`.
    fn read(&self, off: usize, dst: &mut [u8]);
    /// Appends the `len` bytes at `off` to `dst`.
    fn read_append(&self, off: usize, len: usize, dst: &mut Vec<u8>) {
        let at = dst.len();
        dst.resize(at + len, 0);
        self.read(off, &mut dst[at..]);
    }
    /// Sleeps while `*word == expected`, at most `timeout`.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>);
    /// Wakes every sleeper on `word`.
    fn wake_all(&self, word: &AtomicU32);
}

/// Bytes a ring with a `cap`-byte data area occupies.
pub(crate) const fn footprint(cap: u64) -> usize {
    DATA + cap as usize
}

/// Rounds `n` up to a multiple of 8.
const fn pad8(n: u64) -> u64 {
    (n + 7) & !7
}

/// A record found by [`Ring::peek`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// The kind (`SINGLE`, `FIRST`, `MORE`, `LAST`).
    pub(crate) kind: u32,
    /// The low [`SEQ_BITS`] of the message's sequence number.
    pub(crate) seq: u32,
    /// Payload length.
    pub(crate) len: usize,
    /// Memory offset of the payload.
    data_off: usize,
    /// `head` after this record.
    pub(crate) next_head: u64,
}

/// Room for one record, reserved by [`Ring::reserve`].
#[derive(Debug)]
pub(crate) struct Slot {
    /// The tail when it was reserved (wrap padding goes there if `start` differs).
    tail: u64,
    /// The record's position.
    start: u64,
    /// Its payload length.
    len: usize,
}

impl Slot {
    /// The record's payload length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Records written past the tail and not yet published (see [`Ring::begin_run`]).
#[derive(Debug)]
pub(crate) struct Run {
    /// The tail published before the run.
    start: u64,
    /// Where the next record goes.
    end: u64,
    /// The next message's sequence number.
    seq: u64,
    /// Records written since the last publish.
    count: usize,
}

impl Run {
    /// Records written and not yet published.
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

/// The ring is corrupted: a header makes no sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) String);

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The condition holds.
    Ready,
    /// The deadline passed.
    TimedOut,
    /// The `tick` callback asked to stop (the peer is gone).
    Stopped,
}

/// A ring over memory `M` at offset `base`.
#[derive(Debug)]
pub(crate) struct Ring<M> {
    mem: M,
    base: usize,
    cap: u64,
    /// Lower bound of `head`, refreshed when the ring looks full.
    head_cache: std::sync::atomic::AtomicU64,
    /// Lower bound of `tail`, refreshed when the ring looks empty.
    tail_cache: std::sync::atomic::AtomicU64,
    /// The largest record payload (see [`max_record`](Self::max_record)).
    max_record: usize,
    /// How a receiver waits for data (learned from its past waits).
    data_pace: Pace,
    /// How a sender waits for room.
    space_pace: Pace,
}

impl<M: Mem> Ring<M> {
    /// Initializes a fresh (zeroed) ring with a `cap`-byte data area.
    ///
    /// # Panics
    ///
    /// Panics if `cap` is not a power of two in `MIN_CAP..=MAX_CAP`.
    pub(crate) fn init(mem: M, base: usize, cap: u64) -> Ring<M> {
        assert!(
            cap.is_power_of_two() && (MIN_CAP..=MAX_CAP).contains(&cap),
            "ring capacity must be a power of two"
        );
        mem.u64_at(base + CAP).store(cap, Release);
        Ring::from_parts(mem, base, cap)
    }

    /// Opens a ring that [`init`](Self::init) prepared; `len` is the memory's size.
    pub(crate) fn open(mem: M, base: usize, len: usize) -> Result<Ring<M>, Corrupt> {
        // `base` and `len` follow from a segment another process described (a pipe
        // end or a queue it sent): the control words must lie inside it, aligned,
        // before any is read (the word accessors panic otherwise).
        if base % 128 != 0 || base.checked_add(DATA).is_none_or(|end| end > len) {
            return Err(Corrupt(format!(
                "no room for a ring at offset {base} of a {len}-byte segment"
            )));
        }
        let cap = mem.u64_at(base + CAP).load(Acquire);
        let fits = base
            .checked_add(DATA)
            .and_then(|d| d.checked_add(usize::try_from(cap).ok()?))
            .is_some_and(|end| end <= len);
        if !cap.is_power_of_two() || !(MIN_CAP..=MAX_CAP).contains(&cap) || !fits {
            return Err(Corrupt(format!("invalid ring capacity {cap}")));
        }
        Ok(Ring::from_parts(mem, base, cap))
    }

    fn from_parts(mem: M, base: usize, cap: u64) -> Ring<M> {
        let head = mem.u64_at(base + HEAD).load(Acquire);
        let tail = mem.u64_at(base + TAIL).load(Acquire);
        Ring {
            mem,
            base,
            cap,
            head_cache: std::sync::atomic::AtomicU64::new(head),
            tail_cache: std::sync::atomic::AtomicU64::new(tail),
            max_record: (cap / 4).min(MAX_FRAGMENT) as usize - HEADER,
            data_pace: Pace::default(),
            space_pace: Pace::default(),
        }
    }

    /// The memory the ring lives in.
    #[cfg(test)]
    pub(crate) fn mem(&self) -> &M {
        &self.mem
    }

    /// The data area's size.
    pub(crate) fn capacity(&self) -> u64 {
        self.cap
    }

    /// The largest payload of one record: a record is at most a quarter of the ring
    /// (and at most `MAX_FRAGMENT`).
    pub(crate) fn max_record(&self) -> usize {
        self.max_record
    }

    #[inline]
    fn w64(&self, off: usize) -> &AtomicU64 {
        &self.ctl()[off / 8]
    }

    /// The 64-bit control words (`tail` is `ctl()[TAIL / 8]`, and so on): a call
    /// that uses several takes them once (one bounds check, not one per word).
    #[inline]
    fn ctl(&self) -> &[AtomicU64] {
        self.mem.words(self.base, DATA / 8)
    }

    /// The data area, a word per 8 bytes: the word at position `pos` (a multiple
    /// of 8) is `data()[self.word(pos)]`.
    #[inline]
    fn data(&self) -> &[AtomicU64] {
        self.mem.words(self.base + DATA, (self.cap / 8) as usize)
    }

    /// The index in [`data`](Self::data) of the word at position `pos`.
    #[inline]
    fn word(&self, pos: u64) -> usize {
        ((pos & (self.cap - 1)) / 8) as usize
    }

    #[inline]
    fn w32(&self, off: usize) -> &AtomicU32 {
        self.mem.u32_at(self.base + off)
    }

    #[inline]
    fn data_off(&self, pos: u64) -> usize {
        self.base + DATA + (pos & (self.cap - 1)) as usize
    }

    // ---- producer side (the caller is the only producer while it runs these) ----

    /// Messages ever started (`put`).
    pub(crate) fn put_count(&self) -> u64 {
        self.w64(PUT).load(Acquire)
    }

    /// Sequence number after the last message taken (`got`).
    pub(crate) fn got_count(&self) -> u64 {
        self.w64(GOT).load(Acquire)
    }

    /// Takes the next message sequence number (`put += 1`), returning the old value.
    /// (A counter: a scribbled value wraps, it cannot overflow.)
    #[inline]
    fn next_seq(&self) -> u64 {
        let put = self.w64(PUT).load(Relaxed);
        self.w64(PUT).store(put.wrapping_add(1), Relaxed);
        put
    }

    /// The producer's `tail`, checked: a position is a multiple of 8.
    #[inline(always)]
    fn tail(&self) -> Result<u64, Corrupt> {
        let tail = self.w64(TAIL).load(Relaxed);
        if tail % 8 != 0 {
            return Err(not_a_boundary(tail));
        }
        Ok(tail)
    }

    /// Bytes of ring a record with `len` payload bytes needs at the current tail,
    /// counting a wrap.
    #[inline]
    fn need(&self, tail: u64, len: usize) -> (u64, u64) {
        let size = HEADER as u64 + pad8(len as u64);
        let idx = tail & (self.cap - 1);
        if idx + size > self.cap {
            (self.cap - idx, self.cap - idx + size)
        } else {
            (0, size)
        }
    }

    /// Returns `true` if `bytes` more bytes fit now.
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if `head` and `tail` cannot be (checked with the fresh `head`, so
    /// only a producer that holds the producers' side sees a verdict it can trust; a
    /// readiness check outside it treats an error as "go and look").
    #[inline]
    pub(crate) fn has_room(&self, bytes: u64) -> Result<bool, Corrupt> {
        let tail = self.tail()?;
        let cached = self.head_cache.load(Relaxed);
        if tail
            .checked_sub(cached)
            .is_some_and(|used| used <= self.cap && bytes <= self.cap - used)
        {
            return Ok(true);
        }
        let head = self.w64(HEAD).load(Acquire);
        self.head_cache.store(head, Relaxed);
        let used = check_positions(head, tail, self.cap)?;
        Ok(bytes <= self.cap - used)
    }

    /// Returns `true` if a record of `len` payload bytes fits now.
    ///
    /// # Errors
    ///
    /// As [`has_room`](Self::has_room).
    pub(crate) fn fits(&self, len: usize) -> Result<bool, Corrupt> {
        self.fits_with_slack(len, 0)
    }

    /// Returns `true` if a record of `len` payload bytes and `slack` more bytes fit now.
    ///
    /// # Errors
    ///
    /// As [`has_room`](Self::has_room).
    #[inline]
    pub(crate) fn fits_with_slack(&self, len: usize, slack: u64) -> Result<bool, Corrupt> {
        let tail = self.tail()?;
        self.has_room(self.need(tail, len).1.saturating_add(slack))
    }

    /// Writes one record made of `parts` if it fits; returns `None` if it does not,
    /// else whether a receiver asked for a byte on the notification descriptor, and
    /// the message's sequence number (`seq`, or a new one for a message's first record).
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if the positions in shared memory cannot be (nothing is written).
    ///
    /// # Panics
    ///
    /// Panics if the payload is over [`max_record`](Self::max_record).
    #[inline]
    pub(crate) fn try_write(
        &self,
        kind: u32,
        seq: Option<u64>,
        parts: &[&[u8]],
    ) -> Result<Option<(bool, u64)>, Corrupt> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let Some(slot) = self.reserve(len)? else {
            return Ok(None);
        };
        let mut at = 0;
        for p in parts {
            self.write_slot(&slot, at, p);
            at += p.len();
        }
        Ok(Some(self.publish(&slot, kind, seq)))
    }

    /// Reserves room for a record of `len` payload bytes at the tail, if it fits
    /// now: the caller fills its payload with [`write_slot`](Self::write_slot) (bytes
    /// past the tail, which no receiver reads) and makes it visible with
    /// [`publish`](Self::publish). A slot that is never published leaves no trace:
    /// the ring's words are written only by `publish`.
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if the positions in shared memory cannot be.
    ///
    /// # Panics
    ///
    /// Panics if the payload is over [`max_record`](Self::max_record).
    #[inline]
    pub(crate) fn reserve(&self, len: usize) -> Result<Option<Slot>, Corrupt> {
        assert!(len <= self.max_record(), "record too large for the ring");
        let tail = self.tail()?;
        let (skip, need) = self.need(tail, len);
        if !self.has_room(need)? {
            return Ok(None);
        }
        // Positions near u64::MAX only come from scribbled words (a real ring takes
        // years at 100 GB/s to get there).
        let start = tail
            .checked_add(need)
            .map(|_| tail + skip)
            .ok_or_else(|| tail_out_of_range(tail))?;
        Ok(Some(Slot { tail, start, len }))
    }

    /// Copies `bytes` into `slot`'s payload at payload offset `at`.
    ///
    /// # Panics
    ///
    /// Panics if the range is outside the payload.
    #[inline]
    pub(crate) fn write_slot(&self, slot: &Slot, at: usize, bytes: &[u8]) {
        assert!(
            at.checked_add(bytes.len())
                .is_some_and(|end| end <= slot.len),
            "write outside the record"
        );
        let off = self.data_off(slot.start) + HEADER + at;
        self.mem.write(off, bytes);
    }

    /// Publishes a filled `slot` as a record of `kind` (this producer's only slot,
    /// reserved since the last publish); returns whether a receiver asked for a byte
    /// on the notification descriptor, and the message's sequence number (`seq`, or
    /// a new one for a message's first record).
    #[inline]
    pub(crate) fn publish(&self, slot: &Slot, kind: u32, seq: Option<u64>) -> (bool, u64) {
        if slot.start != slot.tail {
            self.write_header(slot.tail, 0, WRAP);
        }
        // A message's number is taken only once its first record is certain to go in,
        // so `put` never counts a message that does not exist.
        let seq = seq.unwrap_or_else(|| self.next_seq());
        let tag = kind | ((seq as u32) << 4);
        self.write_header(slot.start, slot.len as u32, tag);
        self.w64(TAIL)
            .store(slot.start + HEADER as u64 + pad8(slot.len as u64), Release);
        (self.notify(DATA_SEQ, DATA_WAITERS), seq)
    }

    /// Starts a run of records written back to back past the tail and published
    /// together by [`publish_run`](Self::publish_run) (a producer's batch: one
    /// `tail` store and one wake-up check for the whole run, issue 11). Like a
    /// [`reserve`](Self::reserve)d slot, an unpublished run leaves no trace.
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if `tail` cannot be.
    #[inline]
    pub(crate) fn begin_run(&self) -> Result<Run, Corrupt> {
        let tail = self.tail()?;
        Ok(Run {
            start: tail,
            end: tail,
            seq: self.w64(PUT).load(Relaxed),
            count: 0,
        })
    }

    /// Writes a `SINGLE` record of the first `len` bytes of `payload` at the end of
    /// `run` if it fits now; returns `false` if it does not (nothing is written
    /// then). The payload goes in a word at a time, padding included (`payload`
    /// holds at least `len` rounded up to 8 bytes): no `memcpy` call for a small
    /// item (a quarter of a batch's CPU went to `memmove` for 8-byte items).
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if `head` cannot be (checked against the run's published tail).
    ///
    /// # Panics
    ///
    /// Panics if the payload is over [`max_record`](Self::max_record).
    #[inline]
    pub(crate) fn push_run(
        &self,
        run: &mut Run,
        payload: &[u8],
        len: usize,
    ) -> Result<bool, Corrupt> {
        let Some(end) = self.write_single(run.start, run.end, run.seq, payload, len)? else {
            return Ok(false);
        };
        run.end = end;
        run.seq = run.seq.wrapping_add(1);
        run.count += 1;
        Ok(true)
    }

    /// Writes, unpublished, a `SINGLE` record of message `seq` holding the first
    /// `len` bytes of `payload` (padded to 8) at `end`, past the published tail
    /// `start`, if it fits now; returns the position after it. The body of
    /// [`push_run`](Self::push_run) and [`try_write_small`](Self::try_write_small),
    /// inlined into each: their words stay in registers (a `Run` handed between
    /// functions through memory cost a store-forwarding stall per item, issue 11).
    #[inline(always)]
    fn write_single(
        &self,
        start: u64,
        end: u64,
        seq: u64,
        payload: &[u8],
        len: usize,
    ) -> Result<Option<u64>, Corrupt> {
        assert!(len <= self.max_record(), "record too large for the ring");
        let padded = &payload[..pad8(len as u64) as usize];
        let (skip, need) = self.need(end, len);
        let next = end
            .checked_add(need)
            .ok_or_else(|| tail_out_of_range(end))?;
        // `head_cache` is a lower bound of `head`: room it shows is there.
        if next.saturating_sub(self.head_cache.load(Relaxed)) > self.cap {
            let head = self.w64(HEAD).load(Acquire);
            self.head_cache.store(head, Relaxed);
            // `head` is the consumers' word: checked against the published tail
            // (`head <= start <= end`, so no subtraction wraps).
            check_positions(head, start, self.cap)?;
            if next - head > self.cap {
                return Ok(None);
            }
        }
        let pos = end + skip;
        let data = self.data();
        if skip != 0 {
            data[self.word(end)].store(header(0, WRAP), Relaxed);
        }
        // Positions are multiples of 8: the header is a word, the payload follows
        // (a record never wraps, so its words are consecutive).
        let at = self.word(pos);
        let words = &data[at + 1..at + 1 + padded.len() / 8];
        for (w, b) in words.iter().zip(padded.chunks_exact(8)) {
            w.store(u64::from_le_bytes(b.try_into().expect("8 bytes")), Relaxed);
        }
        data[at].store(header(len as u32, SINGLE | ((seq as u32) << 4)), Relaxed);
        Ok(Some(next))
    }

    /// Writes one `SINGLE` record of the first `len` bytes of `payload` (which
    /// holds them padded to 8, as for [`push_run`](Self::push_run)) and publishes
    /// it, if it fits now: a run of one, written a word at a time. Returns `None`
    /// if it does not fit (nothing is written then), else whether a receiver asked
    /// for a byte on the notification descriptor.
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if the positions in shared memory cannot be (nothing is written).
    ///
    /// # Panics
    ///
    /// Panics if the payload is over [`max_record`](Self::max_record).
    #[inline]
    pub(crate) fn try_write_small(
        &self,
        payload: &[u8],
        len: usize,
    ) -> Result<Option<bool>, Corrupt> {
        let tail = self.tail()?;
        let ctl = self.ctl();
        let seq = ctl[PUT / 8].load(Relaxed);
        let Some(end) = self.write_single(tail, tail, seq, payload, len)? else {
            return Ok(None);
        };
        // As `publish`: the message's number, then the tail.
        ctl[PUT / 8].store(seq.wrapping_add(1), Relaxed);
        ctl[TAIL / 8].store(end, Release);
        Ok(Some(self.notify(DATA_SEQ, DATA_WAITERS)))
    }

    /// Publishes the records of `run` (message numbers, then `tail`) and wakes
    /// sleeping receivers; returns whether a receiver asked for a byte on the
    /// notification descriptor. The run is empty afterwards, ready for more.
    #[inline]
    pub(crate) fn publish_run(&self, run: &mut Run) -> bool {
        if run.count == 0 {
            return false;
        }
        let ctl = self.ctl();
        ctl[PUT / 8].store(run.seq, Relaxed);
        ctl[TAIL / 8].store(run.end, Release);
        run.start = run.end;
        run.count = 0;
        self.notify(DATA_SEQ, DATA_WAITERS)
    }

    /// Writes a record header: one word (positions are multiples of 8, so is the
    /// data area's offset), not a byte copy, which costs a `memcpy` call.
    #[inline]
    fn write_header(&self, pos: u64, len: u32, tag: u32) {
        self.data()[self.word(pos)].store(header(len, tag), Relaxed);
    }

    /// After publishing: wakes sleepers on `seq` if `waiters` says there are any;
    /// returns whether the notification-descriptor bit was set (and clears it).
    #[inline]
    fn notify(&self, seq: usize, waiters: usize) -> bool {
        fence(SeqCst);
        if self.w32(waiters).load(Relaxed) == 0 {
            return false;
        }
        self.wake(seq, waiters)
    }

    /// [`notify`](Self::notify) when `waiters` is set (out of line: rare on a
    /// busy ring).
    #[cold]
    #[inline(never)]
    fn wake(&self, seq: usize, waiters: usize) -> bool {
        // Clear the flags: one wake-up per sleep, however many records follow
        // before the sleepers are back on a CPU.
        let w = self.w32(waiters).swap(0, AcqRel);
        if w & SLEEPING != 0 {
            self.w32(seq).fetch_add(1, Release);
            self.mem.wake_all(self.w32(seq));
        }
        w & NOTIFY_FD != 0
    }

    // ---- consumer side (the caller is the only consumer while it runs these) ----

    /// Returns `true` if there is a record to read.
    #[inline]
    pub(crate) fn has_data(&self) -> bool {
        let ctl = self.ctl();
        let head = ctl[HEAD / 8].load(Relaxed);
        if self.tail_cache.load(Relaxed) > head {
            return true;
        }
        let tail = ctl[TAIL / 8].load(Acquire);
        self.tail_cache.store(tail, Relaxed);
        tail > head
    }

    /// Finds the next record, skipping wrap padding; `Ok(None)` if the ring is empty.
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if a header is malformed.
    #[inline]
    pub(crate) fn peek(&self) -> Result<Option<Record>, Corrupt> {
        self.peek_at(self.w64(HEAD).load(Relaxed))
    }

    /// [`peek`](Self::peek) from `head`, the `next_head` of a record this consumer
    /// peeked (and has not consumed yet), or `head` itself.
    ///
    /// # Errors
    ///
    /// As [`peek`](Self::peek).
    #[inline]
    pub(crate) fn peek_at(&self, head: u64) -> Result<Option<Record>, Corrupt> {
        let (ctl, data) = (self.ctl(), self.data());
        let mut pos = head;
        let mut tail = self.tail_cache.load(Relaxed);
        loop {
            if tail <= pos {
                tail = ctl[TAIL / 8].load(Acquire);
                self.tail_cache.store(tail, Relaxed);
                if tail < head {
                    // The producer's tail never falls behind the consumer's head: only
                    // scribbled control words do that. Saying "empty" here would make
                    // a receiver that sees `has_data` loop forever.
                    return Err(head_past_tail(head, tail));
                }
                if tail <= pos {
                    return Ok(None);
                }
            }
            // The header is read only at a position that can hold one: a scribbled
            // head (or a record length that moved it) off the 8-byte grid would read
            // past the end of the data area (found by the `ring` fuzz target).
            check_positions(pos, tail, self.cap)?;
            // One word, as `write_header` wrote it (`pos` is on the 8-byte grid).
            let h = data[self.word(pos)].load(Relaxed).to_le_bytes();
            match decode_record(h, pos, tail, self.cap, self.max_record())? {
                Decoded::Wrap { next } => {
                    pos = next;
                    // The producer publishes a WRAP together with the record after
                    // it (`try_write`), so a WRAP with nothing published after it is
                    // scribble; reporting "empty" would make a receiver that sees
                    // data spin forever.
                    tail = ctl[TAIL / 8].load(Acquire);
                    self.tail_cache.store(tail, Relaxed);
                    if tail <= pos {
                        return Err(Corrupt(format!(
                            "wrap marker before {pos} with nothing after it (tail {tail})"
                        )));
                    }
                }
                Decoded::Record {
                    kind,
                    seq,
                    len,
                    next,
                } => {
                    return Ok(Some(Record {
                        kind,
                        seq,
                        len,
                        data_off: self.data_off(pos) + HEADER,
                        next_head: next,
                    }))
                }
            }
        }
    }

    /// Copies `dst.len()` payload bytes of `rec` starting at payload offset `from`.
    ///
    /// # Panics
    ///
    /// Panics if the range is outside the payload.
    #[inline]
    pub(crate) fn copy_out(&self, rec: &Record, from: usize, dst: &mut [u8]) {
        assert!(from + dst.len() <= rec.len, "copy outside the record");
        self.mem.read(rec.data_off + from, dst);
    }

    /// Copies the payload of `rec`, padding included, into `dst` a word at a time
    /// (no `memcpy` call for a small item); returns the payload's length.
    ///
    /// # Panics
    ///
    /// Panics if `dst` is shorter than the padded payload.
    #[inline]
    pub(crate) fn copy_out_words(&self, rec: &Record, dst: &mut [u8]) -> usize {
        let padded = &mut dst[..pad8(rec.len as u64) as usize];
        // `data_off` is a record's position plus the header: a multiple of 8.
        let at = (rec.data_off - self.base - DATA) / 8;
        let words = &self.data()[at..at + padded.len() / 8];
        for (w, b) in words.iter().zip(padded.chunks_exact_mut(8)) {
            b.copy_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        rec.len
    }

    /// Appends `len` payload bytes of `rec` starting at payload offset `from` to `dst`.
    ///
    /// # Panics
    ///
    /// Panics if the range is outside the payload.
    #[inline]
    pub(crate) fn append_out(&self, rec: &Record, from: usize, len: usize, dst: &mut Vec<u8>) {
        assert!(from + len <= rec.len, "copy outside the record");
        self.mem.read_append(rec.data_off + from, len, dst);
    }

    /// Consumes `rec` (which [`peek`](Self::peek) returned), wakes producers waiting
    /// for room; if `got` is given, records it as the sequence number after the last
    /// message taken.
    #[inline]
    pub(crate) fn consume(&self, rec: &Record, got: Option<u64>) {
        self.consume_to(rec.next_head, got);
    }

    #[inline]
    fn consume_to(&self, next_head: u64, got: Option<u64>) {
        self.data_pace.took_one();
        let ctl = self.ctl();
        ctl[HEAD / 8].store(next_head, Release);
        if let Some(g) = got {
            ctl[GOT / 8].store(g, Release);
        }
        self.notify(SPACE_SEQ, SPACE_WAITERS);
    }

    /// Takes the next record if it is a whole message (`SINGLE`) of at most
    /// `limit` payload bytes whose padded payload fits `dst`: copies it there a
    /// word at a time, consumes it (recording its message as the last taken) and
    /// returns its length (wrap padding before it is skipped). Anything else
    /// (nothing there, a fragment, a larger record, or words that cannot be) stays
    /// where it is and gives
    /// `None`, for the general receive to take or report: the checks are those of
    /// [`peek_at`](Self::peek_at), without building an error on this path (issue 11).
    #[inline]
    pub(crate) fn take_small(&self, dst: &mut [u8], limit: usize) -> Option<usize> {
        let (ctl, data) = (self.ctl(), self.data());
        let head = ctl[HEAD / 8].load(Relaxed);
        let mut tail = self.tail_cache.load(Relaxed);
        if tail <= head {
            tail = ctl[TAIL / 8].load(Acquire);
            self.tail_cache.store(tail, Relaxed);
        }
        check_positions(head, tail, self.cap).ok()?;
        let mut pos = head;
        let (at, seq, len, next) = loop {
            let at = self.word(pos);
            let h = data[at].load(Relaxed).to_le_bytes();
            match decode_record(h, pos, tail, self.cap, self.max_record) {
                Ok(Decoded::Record {
                    kind: SINGLE,
                    seq,
                    len,
                    next,
                }) => break (at, seq, len, next),
                // Wrap padding at the end of the data area: the record after it
                // (published with it) is at the start, once (as `peek_at`).
                Ok(Decoded::Wrap { next }) if pos == head => {
                    pos = next;
                    tail = ctl[TAIL / 8].load(Acquire);
                    self.tail_cache.store(tail, Relaxed);
                }
                _ => return None,
            }
        };
        let padded = pad8(len as u64) as usize;
        if len > limit || padded > dst.len() {
            return None;
        }
        // The record does not wrap (`decode_record` checked): consecutive words.
        let words = &data[at + 1..at + 1 + padded / 8];
        for (w, b) in words.iter().zip(dst.chunks_exact_mut(8)) {
            b.copy_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        let got = self.full_seq(seq).saturating_add(1);
        self.consume_to(next, Some(got));
        Some(len)
    }

    /// Consumes every record up to `next_head` (records that
    /// [`peek_at`](Self::peek_at) found one after another from `head`, `count` of
    /// them), records `got` and wakes producers waiting for room: one `head` store
    /// and one wake-up check for a consumer's batch (issue 11).
    #[inline]
    pub(crate) fn consume_run(&self, next_head: u64, got: u64, count: usize) {
        for _ in 0..count.min(4) {
            self.data_pace.took_one();
        }
        let ctl = self.ctl();
        ctl[HEAD / 8].store(next_head, Release);
        ctl[GOT / 8].store(got, Release);
        self.notify(SPACE_SEQ, SPACE_WAITERS);
    }

    /// Extends the 28 low bits `seq` of a sequence number to the full number nearest
    /// to `got` (the consumer's count).
    /// (`got` is in shared memory: saturating arithmetic, a scribbled value gives a
    /// wrong count, never an overflow.)
    #[inline]
    pub(crate) fn full_seq(&self, seq: u32) -> u64 {
        let got = self.w64(GOT).load(Relaxed);
        let m = 1u64 << SEQ_BITS;
        let cand = (got & !(m - 1)) | u64::from(seq & (m as u32 - 1));
        if cand.saturating_add(m / 2) < got {
            cand.saturating_add(m)
        } else if cand > got.saturating_add(m / 2) && cand >= m {
            cand - m
        } else {
            cand
        }
    }

    /// The consumer's `head` (where the next record starts).
    #[inline]
    pub(crate) fn head(&self) -> u64 {
        self.w64(HEAD).load(Relaxed)
    }

    // ---- sleeping ----

    /// Asks the producer to write a byte to the notification descriptor on its next
    /// publish; returns `true` if data is already there (then no byte may come).
    pub(crate) fn arm_notify(&self) -> bool {
        self.w32(DATA_WAITERS).fetch_or(NOTIFY_FD, Relaxed);
        fence(SeqCst);
        self.has_data()
    }

    /// Withdraws an [`arm_notify`](Self::arm_notify) request.
    pub(crate) fn disarm_notify(&self) {
        self.w32(DATA_WAITERS).fetch_and(!NOTIFY_FD, Relaxed);
    }

    /// Waits until there is data, the deadline passes or `tick` (called after each
    /// sleep) returns `false`. A receiver of a one-way stream looks first after a
    /// short delay, so it reads records in batches (see [`spin`]).
    pub(crate) fn wait_data(
        &self,
        deadline: Option<Instant>,
        tick: &mut dyn FnMut() -> bool,
    ) -> Waited {
        let delay = self.data_pace.plan_data();
        self.wait_until(
            &self.data_pace,
            delay,
            (DATA_SEQ, DATA_WAITERS),
            (CONSUMER_CPU, PRODUCER_CPU),
            deadline,
            tick,
            &mut || self.has_data(),
        )
    }

    /// Waits until `ready()` holds (re-checked after every wake of the producers'
    /// futex word), the deadline passes or `tick` returns `false`.
    pub(crate) fn wait_space(
        &self,
        deadline: Option<Instant>,
        tick: &mut dyn FnMut() -> bool,
        ready: &mut dyn FnMut() -> bool,
    ) -> Waited {
        self.wait_until(
            &self.space_pace,
            Duration::ZERO,
            (SPACE_SEQ, SPACE_WAITERS),
            (PRODUCER_CPU, CONSUMER_CPU),
            deadline,
            tick,
            ready,
        )
    }

    /// Spins as `pace` says (first look after `delay`), then sleeps on the futex
    /// word `seq` with the `waiters` flag set until `ready()`, the deadline or a
    /// `false` from `tick`. A spin that lasts publishes this waiter's CPU in the word
    /// at `my_cpu` and stops if the peer's last one (at `peer_cpu`) is the same: a
    /// peer waiting for this CPU cannot answer while we spin on it.
    #[allow(clippy::too_many_arguments)]
    fn wait_until(
        &self,
        pace: &Pace,
        delay: Duration,
        (seq, waiters): (usize, usize),
        (my_cpu, peer_cpu): (usize, usize),
        deadline: Option<Instant>,
        tick: &mut dyn FnMut() -> bool,
        ready: &mut dyn FnMut() -> bool,
    ) -> Waited {
        let start = Instant::now();
        let mut peer_here = || {
            // Plus one, so that 0 (a fresh ring) never matches.
            let cpu = current_cpu().wrapping_add(1);
            self.w32(my_cpu).store(cpu, Relaxed);
            self.w32(peer_cpu).load(Relaxed) == cpu
        };
        let spun = pace.spin(delay, deadline, ready, &mut peer_here);
        if let Spun::Ready(took) = spun {
            pace.learn(spun, took);
            return Waited::Ready;
        }
        let r = self.sleep_until(seq, waiters, deadline, tick, ready);
        pace.learn(spun, start.elapsed());
        r
    }

    fn sleep_until(
        &self,
        seq: usize,
        waiters: usize,
        deadline: Option<Instant>,
        tick: &mut dyn FnMut() -> bool,
        ready: &mut dyn FnMut() -> bool,
    ) -> Waited {
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Waited::TimedOut;
            }
            let s = self.w32(seq).load(Acquire);
            self.w32(waiters).fetch_or(SLEEPING, Relaxed);
            fence(SeqCst);
            let now_ready = ready();
            if !now_ready {
                let timeout = backoff::nap(deadline).unwrap_or(Duration::ZERO);
                self.mem.wait(self.w32(seq), s, Some(timeout));
            }
            // The flag stays set (another waiter may still sleep); the next publish
            // clears it with one spurious wake at most.
            if now_ready || ready() {
                return Waited::Ready;
            }
            if !tick() {
                return Waited::Stopped;
            }
        }
    }

    /// Tells the producer that a receiving end was closed (call after closing it).
    pub(crate) fn mark_receiver_left(&self) {
        self.w32(RECEIVER_LEFT).store(1, Release);
    }

    /// Whether a receiving end was closed since the last call (clears the mark).
    #[inline]
    pub(crate) fn take_receiver_left(&self) -> bool {
        let w = self.w32(RECEIVER_LEFT);
        w.load(Relaxed) != 0 && w.swap(0, Acquire) != 0
    }

    /// Wakes every sleeper on both words (used by `close` and by a dropped
    /// [`Connection`](crate::ipc::Connection)).
    pub(crate) fn wake_everyone(&self) {
        for (seq, _) in [(DATA_SEQ, DATA_WAITERS), (SPACE_SEQ, SPACE_WAITERS)] {
            self.w32(seq).fetch_add(1, Release);
            self.mem.wake_all(self.w32(seq));
        }
    }
}

/// A record header as one word: `len` and `tag`, little-endian (positions are
/// multiples of 8, so is the data area's offset: a header is an aligned word).
#[inline]
fn header(len: u32, tag: u32) -> u64 {
    u64::from(len) | u64::from(tag) << 32
}

#[cold]
fn not_a_boundary(tail: u64) -> Corrupt {
    Corrupt(format!("ring tail {tail} is not a record boundary"))
}

#[cold]
fn tail_out_of_range(tail: u64) -> Corrupt {
    Corrupt(format!("ring tail {tail} is out of range"))
}

#[cold]
fn head_past_tail(head: u64, tail: u64) -> Corrupt {
    Corrupt(format!("ring head {head} is past its tail {tail}"))
}

/// Checks a pair of positions read from shared memory: `head <= tail`, at most
/// `cap` apart, both on record boundaries. Returns the bytes in use. Never panics.
///
/// # Errors
///
/// [`Corrupt`] when they cannot be.
#[inline]
pub(crate) fn check_positions(head: u64, tail: u64, cap: u64) -> Result<u64, Corrupt> {
    match tail.checked_sub(head) {
        Some(used) if used <= cap && head % 8 == 0 && tail % 8 == 0 => Ok(used),
        _ => Err(bad_positions(head, tail, cap)),
    }
}

#[cold]
fn bad_positions(head: u64, tail: u64, cap: u64) -> Corrupt {
    Corrupt(format!(
        "ring positions cannot be (head {head}, tail {tail}, capacity {cap})"
    ))
}

/// What [`decode_record`] found at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Wrap padding; the next record starts at `next`.
    Wrap {
        /// The position of the next record.
        next: u64,
    },
    /// A record whose payload follows its header; `next` is the position after it.
    Record {
        /// The kind (`SINGLE`, `FIRST`, `MORE`, `LAST`).
        kind: u32,
        /// The low [`SEQ_BITS`] of its message's sequence number.
        seq: u32,
        /// Payload length.
        len: usize,
        /// The position after the record.
        next: u64,
    },
}

/// Decodes the record header `h` found at position `pos` of a ring of `cap` bytes
/// (a power of two) whose producer published up to `tail` (`pos < tail`), with
/// records of at most `max_record` payload bytes. Pure and total: never panics,
/// whatever the bytes and words.
///
/// # Errors
///
/// [`Corrupt`] for a header or positions no producer writes.
#[inline]
pub(crate) fn decode_record(
    h: [u8; HEADER],
    pos: u64,
    tail: u64,
    cap: u64,
    max_record: usize,
) -> Result<Decoded, Corrupt> {
    if !cap.is_power_of_two() || pos % 8 != 0 || tail <= pos || tail - pos > cap {
        return Err(out_of_order(pos, tail));
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let tag = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let kind = tag & KIND_MASK;
    let idx = pos & (cap - 1);
    if kind == WRAP {
        // Positions near u64::MAX only come from scribbled control words; an
        // unchecked add would wrap around and loop for ever.
        return pos
            .checked_add(cap - idx)
            .map(|next| Decoded::Wrap { next })
            .ok_or_else(|| out_of_range(pos, tail));
    }
    let size = HEADER as u64 + pad8(u64::from(len));
    let len = len as usize;
    let next = pos.checked_add(size);
    if !(SINGLE..=LAST).contains(&kind)
        || len > max_record
        || idx + size > cap
        || next.is_none_or(|n| n > tail)
        || (kind == FIRST && len < FIRST_PREFIX)
    {
        return Err(bad_header(len, tag));
    }
    Ok(Decoded::Record {
        kind,
        seq: tag >> 4,
        len,
        next: next.unwrap_or(tail),
    })
}

#[cold]
fn out_of_order(pos: u64, tail: u64) -> Corrupt {
    Corrupt(format!("ring positions out of order ({pos}, {tail})"))
}

#[cold]
fn out_of_range(pos: u64, tail: u64) -> Corrupt {
    Corrupt(format!("ring positions out of range ({pos}, {tail})"))
}

#[cold]
fn bad_header(len: usize, tag: u32) -> Corrupt {
    Corrupt(format!(
        "corrupted frame header (length {len}, tag {tag:#x})"
    ))
}

/// The CPU this thread runs on (the vDSO's `getcpu`).
#[cfg(not(loom))]
fn current_cpu() -> u32 {
    crate::sys::thread::current_cpu().unwrap_or(u32::MAX - 1)
}

#[cfg(loom)]
fn current_cpu() -> u32 {
    0
}

#[cfg(test)]
pub(crate) mod heap;
mod spin;
#[cfg(test)]
mod tests;
