//! Messages over a [`Ring`]: one `SINGLE` record, or `FIRST`/`MORE`…/`LAST`
//! fragments for a message larger than a record, and their reassembly.
//!
//! A receiver rebuilds a fragmented message in the caller's buffer. It drops a
//! partial message when a new message starts (its producer died half-way and the
//! next producer took over) and skips continuation fragments it has no start for
//! (their start was consumed by a receiver that died, or was refused as too large).
//! A message is therefore either received whole or not at all, and losing one never
//! loses another.

use std::time::Instant;

use super::ring::{Corrupt, Mem, Record, Ring, Waited, FIRST, FIRST_PREFIX, LAST, MORE, SINGLE};

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
    fn deadline(self) -> Option<Instant> {
        match self {
            Patience::Until(d) => Some(d),
            _ => None,
        }
    }
}

/// Why a send did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFail {
    /// No room (with [`Patience::Try`]).
    Full,
    /// No room before the deadline.
    TimedOut,
    /// The peer check asked to stop (the receiver is gone).
    Stopped,
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
/// With a deadline, only the wait for the *first* record is bounded: once part of a
/// message is in the ring, the rest follows (bounded by the receiver's progress and
/// `tick`), so a message is never left half-sent by a timeout.
pub(crate) fn send<M: Mem>(
    ring: &Ring<M>,
    msg: &[u8],
    patience: Patience,
    tick: &mut dyn FnMut() -> bool,
) -> Result<bool, SendFail> {
    let max = ring.max_record();
    if msg.len() <= max {
        loop {
            if let Some((notify, _)) = ring.try_write(SINGLE, None, &[msg]) {
                return Ok(notify);
            }
            wait_fit(ring, msg.len(), patience, tick)?;
        }
    }
    if patience == Patience::Try {
        // Every fragment must fit now (a bound that counts one wrap per record).
        let records = (msg.len() + FIRST_PREFIX).div_ceil(max) as u64;
        let need = msg.len() as u64 + FIRST_PREFIX as u64 + records * 8 + ring.capacity() / 4;
        if !ring.has_room(need) {
            return Err(SendFail::Full);
        }
    }
    let first = max - FIRST_PREFIX;
    let mut prefix = [0u8; FIRST_PREFIX];
    prefix[..8].copy_from_slice(&(msg.len() as u64).to_le_bytes());
    prefix[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    let (mut notify, seq) = loop {
        if let Some(r) = ring.try_write(FIRST, None, &[&prefix, &msg[..first]]) {
            break r;
        }
        wait_fit(ring, max, patience, tick)?;
    };
    let mut rest = &msg[first..];
    while !rest.is_empty() {
        let n = rest.len().min(max);
        let kind = if n == rest.len() { LAST } else { MORE };
        loop {
            if let Some((nt, _)) = ring.try_write(kind, Some(seq), &[&rest[..n]]) {
                notify |= nt;
                break;
            }
            wait_fit(ring, n, Patience::Forever, tick)?;
        }
        rest = &rest[n..];
    }
    Ok(notify)
}

/// How many checks of a waiting sender ask for slack (about the first 20 µs).
const SLACK_POLLS: u32 = 16;

/// Waits until a record of `len` bytes fits in `ring`, as `patience` allows.
pub(crate) fn wait_fit<M: Mem>(
    ring: &Ring<M>,
    len: usize,
    patience: Patience,
    tick: &mut dyn FnMut() -> bool,
) -> Result<(), SendFail> {
    if ring.fits(len) {
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
    let mut polls = 0u32;
    let mut ready = || {
        polls += 1;
        ring.fits_with_slack(len, if polls <= SLACK_POLLS { slack } else { 0 })
    };
    match ring.wait_space(patience.deadline(), tick, &mut ready) {
        Waited::Ready => Ok(()),
        Waited::TimedOut => Err(SendFail::TimedOut),
        Waited::Stopped => Err(SendFail::Stopped),
    }
}

/// A message being reassembled.
#[derive(Debug, Default)]
struct Partial {
    total: usize,
    filled: usize,
    pid: u32,
    /// The low [`SEQ_BITS`](super::ring::SEQ_BITS) of the message's sequence number.
    seq: u32,
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

/// Receives one message into `out` (replacing its contents); returns the low
/// [`SEQ_BITS`](super::ring::SEQ_BITS) of its sequence number, and records it as
/// taken when `track_got`.
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
    tick: &mut dyn FnMut(Option<u32>) -> bool,
) -> Result<u32, RecvFail> {
    let mut partial: Option<Partial> = None;
    loop {
        let rec = match ring.peek().map_err(RecvFail::Corrupt)? {
            Some(rec) => rec,
            None => {
                wait_record(ring, &mut partial, patience, tick)?;
                continue;
            }
        };
        let got = |rec: &Record| track_got.then(|| ring.full_seq(rec.seq) + 1);
        match rec.kind {
            SINGLE => {
                if rec.len > max_len {
                    ring.consume(&rec, got(&rec));
                    return Err(RecvFail::TooLarge(rec.len as u64));
                }
                set_len(out, rec.len);
                ring.copy_out(&rec, 0, out);
                ring.consume(&rec, got(&rec));
                return Ok(rec.seq);
            }
            FIRST => {
                let mut prefix = [0u8; FIRST_PREFIX];
                ring.copy_out(&rec, 0, &mut prefix);
                let total = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
                let pid = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes"));
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
                set_len(out, total);
                ring.copy_out(&rec, FIRST_PREFIX, &mut out[..here]);
                ring.consume(&rec, got(&rec));
                partial = Some(Partial {
                    total,
                    filled: here,
                    pid,
                    seq: rec.seq,
                });
            }
            _ => {
                // MORE or LAST.
                let Some(p) = partial.as_mut() else {
                    // A continuation without its start: skip it.
                    ring.consume(&rec, None);
                    continue;
                };
                if p.filled + rec.len > p.total
                    || (rec.kind == LAST) != (p.filled + rec.len == p.total)
                {
                    return Err(RecvFail::Corrupt(Corrupt(format!(
                        "fragment of {} bytes does not fit a {}-byte message at {}",
                        rec.len, p.total, p.filled
                    ))));
                }
                ring.copy_out(&rec, 0, &mut out[p.filled..p.filled + rec.len]);
                p.filled += rec.len;
                ring.consume(&rec, None);
                if rec.kind == LAST {
                    return Ok(p.seq);
                }
                debug_assert_eq!(rec.kind, MORE);
            }
        }
    }
}

/// Waits for the next record. In the middle of a message it waits regardless of
/// `patience` (the rest is coming) but drops the partial message if `tick` says its
/// producer is gone.
fn wait_record<M: Mem>(
    ring: &Ring<M>,
    partial: &mut Option<Partial>,
    patience: Patience,
    tick: &mut dyn FnMut(Option<u32>) -> bool,
) -> Result<(), RecvFail> {
    if let Some(p) = partial {
        let pid = p.pid;
        match ring.wait_data(None, &mut || tick(Some(pid))) {
            Waited::Ready => return Ok(()),
            _ => {
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
