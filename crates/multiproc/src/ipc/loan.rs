//! Large payloads without copies through a ring: [`loan_channel`]'s sender loans a
//! slot of a pool in shared memory, writes the payload there, and sends a 16-byte
//! descriptor; the receiver reads the payload where it is and gives the slot back
//! by dropping the [`Sample`].
//!
//! # The pool
//!
//! One [`SharedMemory`] segment holds a header, one control word per slot, and the
//! slots (each `slot_size` bytes, page-aligned). A slot's control word packs its
//! state (free, loaned, sent, held), a 24-bit generation (bumped at every loan) and
//! the pid of the process that holds it. Every transition is a compare-and-swap of
//! that whole word, so a descriptor from an earlier use of the slot (a stale
//! generation), one for a slot that was not sent, or one sent twice, is refused.
//!
//! # Trust
//!
//! The other process is untrusted: a descriptor is checked before use (its length,
//! its slot index against the pool's size, its length against the slot size, and
//! the slot's state and generation in one compare-and-swap); a scribbled control
//! word makes a loan or a receive fail or wait, never read outside the pool. The
//! pool's size comes from this process's own handle, checked against the segment
//! when the handle arrives. The payload's bytes are the other process's to write
//! while it holds the slot: a process that writes a slot it does not hold can
//! change bytes under a reader, so they are copied out with
//! [`read`](Sample::read) (or read through [`as_ptr`](Sample::as_ptr) by code
//! that accepts that).
//!
//! # Dead processes
//!
//! A slot loaned or held by a process that died is taken back by a loan that
//! finds no free slot and waits a moment without one being freed (the holder's
//! pid is checked for life, as the crate's locks do). Slots sent and not yet
//! received stay with the channel: the next receive takes them. The sender writes
//! a descriptor before it marks the slot sent; a receive that gets the descriptor
//! first waits for the mark (within its deadline, keeping the descriptor for the
//! next receive if that passes), and takes the slot over if the sender died in
//! between. The memory is the pool's, fixed at creation, and the
//! segment (an anonymous memfd) is gone when the last process holding the channel
//! closes it, whatever way the others ended.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::connection::Connection;
use super::error::{RecvError, RecvTimeoutError, TryRecvError};
use super::pipe::Pipe;
use super::ring::Mem;
use crate::backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::shm::SharedMemory;

/// Offset of `freed: u32`, bumped (and woken) whenever a slot becomes free.
const FREED: usize = 0;
/// Offset of the first slot's control word (one `u64` each).
const CONTROL: usize = 64;
/// Slots are page-aligned.
const PAGE: usize = 4096;
/// Most slots a pool holds.
pub const MAX_SLOTS: usize = 1 << 16;
/// Largest slot (1 GiB).
pub const MAX_SLOT_SIZE: usize = 1 << 30;

/// Slot states (the control word's low byte).
const FREE: u64 = 0;
const LOANED: u64 = 1;
const SENT: u64 = 2;
const HELD: u64 = 3;

/// How often a receive waiting for a slot to be marked sent looks whether its
/// sender died (a `/proc` read).
const LOOK_EVERY: Duration = Duration::from_millis(1);

/// The first and the longest nap of a receive waiting for a slot to be marked
/// sent, once the spin window is over.
const MARK_NAP_MIN: Duration = Duration::from_micros(100);
const MARK_NAP_MAX: Duration = Duration::from_millis(10);

/// What became of a slot a descriptor names.
enum Got {
    Taken,
    /// Not sent at that generation: the descriptor is refused.
    Refused,
    /// Still loaned at that generation (its sender is about to mark it sent) when
    /// the deadline came.
    NotYet,
}

/// A descriptor received and checked, whose slot is not taken yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    slot: usize,
    generation: u32,
    len: usize,
}

/// A receiver's state between calls.
#[derive(Debug, Default)]
struct RxState {
    /// The descriptor being received.
    buf: Vec<u8>,
    /// A descriptor whose slot was not marked sent yet when a deadline came: the
    /// next receive takes it first.
    pending: Option<Pending>,
}

/// Bytes in a descriptor: slot index (`u32`), generation (`u32`), length (`u64`).
const DESCRIPTOR: usize = 16;

/// A control word: state, 24-bit generation, holder's pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word {
    state: u64,
    generation: u32,
    pid: u32,
}

impl Word {
    fn pack(self) -> u64 {
        self.state | (u64::from(self.generation & 0xff_ffff) << 8) | (u64::from(self.pid) << 32)
    }

    fn unpack(w: u64) -> Word {
        Word {
            state: w & 0xff,
            generation: ((w >> 8) & 0xff_ffff) as u32,
            pid: (w >> 32) as u32,
        }
    }
}

/// The data area's offset for `slots` slots.
fn data_offset(slots: usize) -> usize {
    (CONTROL + slots * 8).next_multiple_of(PAGE)
}

/// The segment's size for `slots` slots of `slot_size` bytes, if it can be.
fn segment_len(slots: usize, slot_size: usize) -> Option<usize> {
    slots
        .checked_mul(slot_size)
        .and_then(|n| n.checked_add(data_offset(slots)))
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput).with_message(msg.into())
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt).with_message(msg.into())
}

/// The pool both ends share.
struct Pool {
    mem: SharedMemory,
    slots: usize,
    slot_size: usize,
}

impl Pool {
    fn control(&self, i: usize) -> &AtomicU64 {
        self.mem.atomic_u64(CONTROL + i * 8)
    }

    fn freed(&self) -> &AtomicU32 {
        self.mem.atomic_u32(FREED)
    }

    fn slot_offset(&self, i: usize) -> usize {
        data_offset(self.slots) + i * self.slot_size
    }

    /// Moves slot `i` from `from` to `to` (one compare-and-swap of its word).
    fn swap(&self, i: usize, from: Word, to: Word) -> bool {
        self.control(i)
            .compare_exchange(from.pack(), to.pack(), AcqRel, Acquire)
            .is_ok()
    }

    /// Frees slot `i` if it is in `from`, and wakes a waiting loan.
    fn free(&self, i: usize, from: Word) {
        let to = Word {
            state: FREE,
            generation: from.generation,
            pid: 0,
        };
        if self.swap(i, from, to) {
            self.freed().fetch_add(1, Release);
            self.mem.wake_all(self.freed());
        }
    }

    /// Takes slot `i`, which a descriptor says was `sent`, as `held`. Its sender
    /// marks it sent just after writing the descriptor: until then it is loaned at
    /// the same generation, and this waits for that (until `deadline`), or takes
    /// it over if its sender died in between.
    fn receive(&self, i: usize, sent: Word, held: Word, deadline: Option<Instant>) -> Got {
        let mut looked = Instant::now();
        // The mark normally follows within microseconds; a sender that is late
        // (preempted, stopped) is waited for asleep, in naps that grow to
        // `MARK_NAP_MAX`, not by spinning a CPU.
        let spin = backoff::Backoff::new();
        let mut nap = MARK_NAP_MIN;
        loop {
            if self.swap(i, sent, held) {
                return Got::Taken;
            }
            let w = Word::unpack(self.control(i).load(Acquire));
            if w.state == sent.state && w.generation == sent.generation && w.pid == sent.pid {
                // Marked sent between the exchange above and this load: take it.
                continue;
            }
            if w.state != LOANED || w.generation != sent.generation {
                return Got::Refused;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Got::NotYet;
            }
            if now.duration_since(looked) >= LOOK_EVERY {
                looked = now;
                if crate::sync::primitive::owner_is_dead(w.pid, 0) && self.swap(i, w, held) {
                    return Got::Taken;
                }
            }
            if spin.spinning() {
                std::thread::yield_now();
            } else {
                let left = deadline.map_or(nap, |d| d.saturating_duration_since(now));
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(MARK_NAP_MAX);
            }
        }
    }

    /// Takes a free slot for this process; with `reclaim`, takes back first the
    /// slots loaned or held by processes that died (a `/proc` read per slot).
    fn take_free(&self, reclaim: bool) -> Option<(usize, Word)> {
        let me = std::process::id();
        for reclaim in [false, reclaim] {
            for i in 0..self.slots {
                let w = Word::unpack(self.control(i).load(Acquire));
                if reclaim
                    && matches!(w.state, LOANED | HELD)
                    && w.pid != me
                    && crate::sync::primitive::owner_is_dead(w.pid, 0)
                {
                    self.free(i, w);
                }
                let w = Word::unpack(self.control(i).load(Acquire));
                if w.state == FREE {
                    let to = Word {
                        state: LOANED,
                        generation: w.generation.wrapping_add(1) & 0xff_ffff,
                        pid: me,
                    };
                    if self.swap(i, w, to) {
                        return Some((i, to));
                    }
                }
            }
        }
        None
    }
}

/// Creates a one-way channel for payloads of up to `slot_size` bytes, with a pool
/// of `slots` slots in shared memory: at most `slots` payloads are loaned, in
/// flight or being read at once.
///
/// Use it where the payloads are large (hundreds of KiB and more): a payload is
/// written once into the pool, by the sender, and read where it is, by the
/// receiver, instead of streaming through a ring in pieces. For small messages a
/// [`Pipe`] is faster (no pool to manage).
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] if `slots` is 0 or over [`MAX_SLOTS`], or
/// `slot_size` is 0 or over [`MAX_SLOT_SIZE`]; [`ErrorKind::Os`] if the shared
/// memory or the pipe cannot be created.
///
/// # Examples
///
/// ```
/// use multiproc::ipc::{loan_channel, LoanReceiver};
/// use multiproc::Process;
///
/// /// Sums the bytes of every payload it receives, until the sender is gone.
/// fn summer(rx: LoanReceiver) -> u64 {
///     let mut sum = 0;
///     let mut buf = Vec::new();
///     while let Ok(sample) = rx.recv() {
///         sample.read_into(&mut buf); // copy out (or read it where it is)
///         sum += buf.iter().map(|&b| u64::from(b)).sum::<u64>();
///     } // each sample goes back to the pool as it is dropped
///     sum
/// }
///
/// let (tx, rx) = loan_channel(4, 1 << 20)?;
/// let child = Process::start_with(summer, rx)?;
/// for i in 0..8u8 {
///     let mut loan = tx.loan(1 << 20)?; // waits for a free slot
///     loan.write(0, &vec![i; 1 << 20])?; // or fill it where it is: `as_mut_ptr`
///     loan.send()?;
/// }
/// drop(tx);
/// assert_eq!(child.join()?, (0..8u64).sum::<u64>() << 20);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn loan_channel(slots: usize, slot_size: usize) -> Result<(LoanSender, LoanReceiver)> {
    if slots == 0 || slots > MAX_SLOTS {
        return Err(invalid(format!(
            "a loan channel has 1 to {MAX_SLOTS} slots, not {slots}"
        )));
    }
    if slot_size == 0 || slot_size > MAX_SLOT_SIZE {
        return Err(invalid(format!(
            "a loan channel's slots hold 1 byte to 1 GiB, not {slot_size}"
        )));
    }
    let slot_size = slot_size.next_multiple_of(PAGE);
    let len = segment_len(slots, slot_size).ok_or_else(|| invalid("the pool is too large"))?;
    let mem = SharedMemory::create(len)?;
    // Descriptors only: a longer message is dropped as it arrives, never buffered.
    let (rx, tx) = Pipe::builder()
        .capacity(64 << 10)
        .max_message_size(DESCRIPTOR)
        .duplex(false)
        .build()?;
    let pool = || Pool {
        mem: mem.clone(),
        slots,
        slot_size,
    };
    Ok((
        LoanSender { pool: pool(), tx },
        LoanReceiver {
            pool: pool(),
            rx,
            state: std::sync::Mutex::default(),
        },
    ))
}

/// The sending end of a [`loan_channel`]: [`loan`](Self::loan)s slots, and sends
/// them with [`Loan::send`]. It can be passed to another process (as an argument
/// of [`Process::start_with`](crate::Process::start_with), or through a pipe); as
/// with a [`Pipe`]'s ends, one process at a time sends through it.
pub struct LoanSender {
    pool: Pool,
    tx: Connection,
}

/// A slot loaned by a [`LoanSender`], which this process alone fills before it
/// [`send`](Self::send)s it. Dropped without being sent, it goes back to the pool.
#[must_use = "a Loan dropped without `send` goes back to the pool unsent"]
pub struct Loan<'a> {
    sender: &'a LoanSender,
    slot: usize,
    word: Word,
    len: usize,
    sent: bool,
}

impl LoanSender {
    /// Loans a slot for a payload of `len` bytes, waiting for one to be free.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `len` is over the slot size;
    /// [`ErrorKind::Disconnected`] if the receiver is gone (so no slot will come
    /// back).
    pub fn loan(&self, len: usize) -> Result<Loan<'_>> {
        self.loan_until(len, None)
    }

    /// Loans a slot if one is free now.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if none is, otherwise as [`loan`](Self::loan).
    pub fn try_loan(&self, len: usize) -> Result<Loan<'_>> {
        self.loan_until(len, Some(Instant::now()))
    }

    /// Loans a slot, waiting at most `timeout` for one to be free.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if none was in time, otherwise as [`loan`](Self::loan).
    pub fn loan_timeout(&self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.loan_until(len, Instant::now().checked_add(timeout))
    }

    fn loan_until(&self, len: usize, deadline: Option<Instant>) -> Result<Loan<'_>> {
        if len > self.pool.slot_size {
            return Err(invalid(format!(
                "a payload of {len} bytes does not fit a {}-byte slot",
                self.pool.slot_size
            )));
        }
        // Slots of dead processes are looked for once a wait went by without a
        // slot freed (each look reads `/proc` for every slot held).
        let mut reclaim = false;
        loop {
            let seen = self.pool.freed().load(Acquire);
            if let Some((slot, word)) = self.pool.take_free(reclaim) {
                return Ok(Loan {
                    sender: self,
                    slot,
                    word,
                    len,
                    sent: false,
                });
            }
            if self.tx.peer_gone() {
                return Err(Error::new(ErrorKind::Disconnected)
                    .with_message("the loan channel's receiver is gone"));
            }
            let Some(nap) = backoff::nap(deadline) else {
                return Err(Error::new(ErrorKind::Timeout)
                    .with_message("no free slot in the loan channel's pool"));
            };
            self.pool.mem.wait(self.pool.freed(), seen, Some(nap));
            reclaim = self.pool.freed().load(Acquire) == seen;
        }
    }

    /// Loans a slot, copies `bytes` into it and sends it.
    ///
    /// # Errors
    ///
    /// As [`loan`](Self::loan) and [`Loan::send`].
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        let mut loan = self.loan(bytes.len())?;
        loan.write(0, bytes)?;
        loan.send()
    }

    /// The largest payload a slot holds (the size asked for, rounded up to a page).
    pub fn slot_size(&self) -> usize {
        self.pool.slot_size
    }

    /// The number of slots in the pool.
    pub fn slots(&self) -> usize {
        self.pool.slots
    }
}

impl Loan<'_> {
    /// The payload's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` for a payload of 0 bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `data` into the payload at `offset`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if it goes past the payload's length.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        match offset.checked_add(data.len()) {
            Some(end) if end <= self.len => {
                let pool = &self.sender.pool;
                pool.mem.write(pool.slot_offset(self.slot) + offset, data)
            }
            _ => Err(invalid(format!(
                "{} bytes at {offset} go past a {}-byte payload",
                data.len(),
                self.len
            ))),
        }
    }

    /// The payload's first byte, to fill it where it is (`len()` bytes from there
    /// are this loan's until it is sent or dropped). Writing through it is `unsafe`
    /// on the caller's side; a process that writes the pool against the protocol
    /// can write these bytes too.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        let pool = &self.sender.pool;
        pool.mem.as_ptr().wrapping_add(pool.slot_offset(self.slot))
    }

    /// Sends the payload to the receiver.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the receiver is gone (the slot goes back to
    /// the pool); [`ErrorKind::Corrupt`] if another process changed the slot's
    /// control word while it was loaned.
    pub fn send(mut self) -> Result<()> {
        let mut d = [0u8; DESCRIPTOR];
        d[..4].copy_from_slice(&(self.slot as u32).to_le_bytes());
        d[4..8].copy_from_slice(&self.word.generation.to_le_bytes());
        d[8..].copy_from_slice(&(self.len as u64).to_le_bytes());
        // The descriptor first, then the slot marked sent: a sender that dies in
        // between leaves a slot loaned by a dead process, which the receiver (or a
        // loan) takes over; it never leaves a sent slot without its descriptor.
        self.sender.tx.send_bytes(&d)?;
        self.sent = true;
        let sent = Word {
            state: SENT,
            generation: self.word.generation,
            pid: 0,
        };
        if self.sender.pool.swap(self.slot, self.word, sent) {
            Ok(())
        } else {
            Err(corrupt("a loaned slot's control word was changed"))
        }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if !self.sent {
            self.sender.pool.free(self.slot, self.word);
        }
    }
}

/// The receiving end of a [`loan_channel`]. It can be passed to another process.
pub struct LoanReceiver {
    pool: Pool,
    rx: Connection,
    state: std::sync::Mutex<RxState>,
}

/// A payload received from a [`loan_channel`], in its slot of the pool: the slot
/// goes back to the pool when this is dropped.
pub struct Sample<'a> {
    pool: &'a Pool,
    slot: usize,
    word: Word,
    len: usize,
}

impl LoanReceiver {
    /// Receives the next payload, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the sender is gone and every payload it sent
    /// was received; [`RecvError::Invalid`] (with [`ErrorKind::Corrupt`]) for a
    /// descriptor that names no sent slot of the pool, or with
    /// [`ErrorKind::Decode`] for a message longer than a descriptor (either is
    /// dropped: the next receive goes on with the next one).
    pub fn recv(&self) -> Result<Sample<'_>, RecvError> {
        self.take(
            None,
            |rx, buf, _| rx.recv_bytes_into(buf),
            RecvError::Invalid,
            // Without a deadline, the wait for the mark ends with it.
            || RecvError::Disconnected,
        )
    }

    /// Receives a payload if one is there now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none is, otherwise as [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Sample<'_>, TryRecvError> {
        self.take(
            Some(Instant::now()),
            |rx, buf, _| rx.try_recv_bytes_into(buf),
            TryRecvError::Invalid,
            || TryRecvError::Empty,
        )
    }

    /// Receives a payload, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came in time, otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Sample<'_>, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        self.take(
            deadline,
            |rx, buf, left| match left {
                Some(left) => rx.recv_bytes_into_timeout(buf, left),
                None => rx.recv_bytes_into(buf).map_err(RecvTimeoutError::from),
            },
            RecvTimeoutError::Invalid,
            || RecvTimeoutError::Timeout,
        )
    }

    /// Receives a descriptor with `recv` (given the time left before `deadline`)
    /// and takes the slot it names; a descriptor refused is the error `invalid`
    /// makes, a slot not marked sent by the deadline the error `timed_out` makes
    /// (the descriptor is kept for the next call).
    fn take<E>(
        &self,
        deadline: Option<Instant>,
        recv: impl FnOnce(&Connection, &mut Vec<u8>, Option<Duration>) -> Result<usize, E>,
        invalid: impl Fn(Error) -> E,
        timed_out: impl FnOnce() -> E,
    ) -> Result<Sample<'_>, E> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let p = match st.pending {
            Some(p) => p,
            None => {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                recv(&self.rx, &mut st.buf, left)?;
                let p = self.check(&st.buf).map_err(|why| invalid(corrupt(why)))?;
                st.pending = Some(p);
                p
            }
        };
        let sent = Word {
            state: SENT,
            generation: p.generation,
            pid: 0,
        };
        let held = Word {
            state: HELD,
            generation: p.generation,
            pid: std::process::id(),
        };
        match self.pool.receive(p.slot, sent, held, deadline) {
            Got::Taken => {
                st.pending = None;
                Ok(Sample {
                    pool: &self.pool,
                    slot: p.slot,
                    word: held,
                    len: p.len,
                })
            }
            Got::Refused => {
                st.pending = None;
                Err(invalid(corrupt(format!(
                    "slot {} was not sent at generation {}",
                    p.slot, p.generation
                ))))
            }
            Got::NotYet => Err(timed_out()),
        }
    }

    /// Checks a descriptor's words against the pool (not its slot's state yet).
    fn check(&self, buf: &[u8]) -> std::result::Result<Pending, String> {
        let Ok(d) = <[u8; DESCRIPTOR]>::try_from(buf) else {
            return Err(format!(
                "a loan descriptor of {} bytes (not {DESCRIPTOR})",
                buf.len()
            ));
        };
        let field = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b[..r.len()].copy_from_slice(&d[r]);
            u64::from_le_bytes(b)
        };
        let (slot, generation, len) = (field(0..4), field(4..8), field(8..16));
        let pool = &self.pool;
        let slot = usize::try_from(slot)
            .ok()
            .filter(|&s| s < pool.slots)
            .ok_or_else(|| format!("a loan descriptor names slot {slot} of {}", pool.slots))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= pool.slot_size)
            .ok_or_else(|| {
                format!(
                    "a loan descriptor of {len} bytes for {}-byte slots",
                    pool.slot_size
                )
            })?;
        let generation = u32::try_from(generation)
            .ok()
            .filter(|&g| g <= 0xff_ffff)
            .ok_or_else(|| format!("a loan descriptor of generation {generation}"))?;
        Ok(Pending {
            slot,
            generation,
            len,
        })
    }
}

impl Sample<'_> {
    /// The payload's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` for a payload of 0 bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `buf.len()` payload bytes from `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if that goes past the payload's length.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        match offset.checked_add(buf.len()) {
            Some(end) if end <= self.len => self
                .pool
                .mem
                .read(self.pool.slot_offset(self.slot) + offset, buf),
            _ => Err(invalid(format!(
                "{} bytes at {offset} go past a {}-byte payload",
                buf.len(),
                self.len
            ))),
        }
    }

    /// Copies the whole payload into `out` (replacing its contents; reusing one
    /// buffer avoids an allocation per payload).
    pub fn read_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.len);
        let off = self.pool.slot_offset(self.slot);
        self.pool
            .mem
            .read_append(off, self.len, out)
            .expect("the slot lies in the pool (checked when the pool was opened)");
    }

    /// The payload as a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.read_into(&mut v);
        v
    }

    /// The payload's first byte, to read it where it is (`len()` bytes from there).
    /// Reading through it is `unsafe` on the caller's side: a process that writes
    /// the pool against the protocol can change these bytes while they are read.
    pub fn as_ptr(&self) -> *const u8 {
        self.pool
            .mem
            .as_ptr()
            .wrapping_add(self.pool.slot_offset(self.slot))
            .cast_const()
    }
}

impl Drop for Sample<'_> {
    fn drop(&mut self) {
        self.pool.free(self.slot, self.word);
    }
}

impl fmt::Debug for LoanSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoanSender")
            .field("slots", &self.pool.slots)
            .field("slot_size", &self.pool.slot_size)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LoanReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoanReceiver")
            .field("slots", &self.pool.slots)
            .field("slot_size", &self.pool.slot_size)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loan")
            .field("slot", &self.slot)
            .field("len", &self.len)
            .finish()
    }
}

impl fmt::Debug for Sample<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("slot", &self.slot)
            .field("len", &self.len)
            .finish()
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    mem: &'a SharedMemory,
    conn: &'a Connection,
    slots: u64,
    slot_size: u64,
}

#[derive(Deserialize)]
struct Wire {
    mem: SharedMemory,
    conn: Connection,
    slots: u64,
    slot_size: u64,
}

impl Pool {
    fn wire<'a>(&'a self, conn: &'a Connection) -> WireRef<'a> {
        WireRef {
            mem: &self.mem,
            conn,
            slots: self.slots as u64,
            slot_size: self.slot_size as u64,
        }
    }

    /// The pool another process sent, checked against its segment.
    fn from_wire(mem: SharedMemory, slots: u64, slot_size: u64) -> Result<Pool> {
        let slots = usize::try_from(slots).unwrap_or(usize::MAX);
        let slot_size = usize::try_from(slot_size).unwrap_or(usize::MAX);
        let fits = (1..=MAX_SLOTS).contains(&slots)
            && (1..=MAX_SLOT_SIZE).contains(&slot_size)
            && slot_size % PAGE == 0
            && segment_len(slots, slot_size).is_some_and(|n| n <= mem.len());
        if !fits {
            return Err(Error::new(ErrorKind::Decode).with_message(format!(
                "a loan channel of {slots} slots of {slot_size} bytes does not fit its {}-byte segment",
                mem.len()
            )));
        }
        Ok(Pool {
            mem,
            slots,
            slot_size,
        })
    }
}

/// Shares the sending end with another process (through multiproc's own
/// channels only, see [`codec::fd`](crate::codec::fd)).
impl Serialize for LoanSender {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.pool.wire(&self.tx).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LoanSender {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        if !w.conn.is_writable() {
            return Err(serde::de::Error::custom("not a loan channel's sending end"));
        }
        let pool =
            Pool::from_wire(w.mem, w.slots, w.slot_size).map_err(serde::de::Error::custom)?;
        Ok(LoanSender { pool, tx: w.conn })
    }
}

/// Shares the receiving end with another process.
impl Serialize for LoanReceiver {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.pool.wire(&self.rx).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LoanReceiver {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        if !w.conn.is_readable() {
            return Err(serde::de::Error::custom(
                "not a loan channel's receiving end",
            ));
        }
        let pool =
            Pool::from_wire(w.mem, w.slots, w.slot_size).map_err(serde::de::Error::custom)?;
        Ok(LoanReceiver {
            pool,
            rx: w.conn,
            state: std::sync::Mutex::default(),
        })
    }
}
