//! Rings in shared memory (`ipc/ring.rs`, `ipc/frame.rs`): the fuzzer is the other
//! process. It writes the control words (positions, sequence counts, futex and
//! waiter words, even the capacity), the record headers and payloads, and scribbles
//! on them between operations, while this process sends and receives through the
//! crate's own code with tiny deadlines. Properties: no panic, no allocation past
//! the cap (whatever length a record claims), every operation returns within its
//! deadline (plus a margin; `__fuzz::OVERRUN`), even when a half-sent message's
//! producer is alive but stopped.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use multiproc::__fuzz::{FuzzRing, RingOutcome};

/// The 8-byte-aligned control words (`ipc/ring.rs`'s layout): tail, put,
/// receiver_left, head, got, data_seq+data_waiters, space_seq+space_waiters, cap.
const WORDS: [usize; 8] = [0, 8, 16, 128, 136, 256, 264, 272];

#[derive(Debug, Arbitrary)]
enum Op {
    /// Send `len` bytes of `byte` (over one record: a fragmented message).
    Send { len: u16, byte: u8, wait: bool },
    /// Receive one message of at most `max_len` bytes.
    Recv {
        max_len: u32,
        wait: bool,
        track_got: bool,
        producer_alive: bool,
    },
    /// Overwrite bytes anywhere in the segment.
    Poke { off: u16, bytes: Vec<u8> },
    /// Set a control word.
    Word { which: u8, value: u64 },
    /// Move a control word by a small amount (keeps positions plausible).
    Shift { which: u8, by: i16 },
    /// Write a record header at a position's slot.
    Header { at_word: u8, len: u32, tag: u32 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// log2 of the capacity, from 7 (the minimum).
    cap_log: u8,
    /// Extra bytes after the ring.
    extra: u8,
    /// Open as a peer (the capacity word comes from `header`) instead of creating.
    open: bool,
    header: Vec<u8>,
    data: Vec<u8>,
    ops: Vec<Op>,
}

fn word(ring: &FuzzRing, which: u8) -> (usize, u64) {
    let off = WORDS[which as usize % WORDS.len()];
    let mut b = [0u8; 8];
    ring.mem().read(off, &mut b).unwrap();
    (off, u64::from_le_bytes(b))
}

fuzz_target!(|input: Input| {
    let cap = 1u64 << (7 + input.cap_log % 8);
    let ring = match FuzzRing::new(
        cap,
        usize::from(input.extra),
        &input.header,
        &input.data,
        !input.open,
    ) {
        Ok(r) => r,
        Err(_) => return,
    };
    let tiny = Some(Duration::from_micros(200));
    let mut out = Vec::new();
    for op in input.ops.into_iter().take(32) {
        match op {
            Op::Send { len, byte, wait } => {
                let len = usize::from(len);
                // A deadline bounds the whole send, every fragment included.
                let timeout = if wait { tiny } else { None };
                let msg = vec![byte; len];
                let _ = ring.send(&msg, timeout);
            }
            Op::Recv {
                max_len,
                wait,
                track_got,
                producer_alive,
            } => {
                let r = ring.recv(
                    &mut out,
                    max_len as usize,
                    if wait { tiny } else { None },
                    track_got,
                    producer_alive,
                );
                if let RingOutcome::Done(n) = r {
                    assert!(
                        n <= max_len as usize,
                        "a message over the maximum was accepted"
                    );
                }
            }
            Op::Poke { off, bytes } => {
                let off = usize::from(off) % ring.mem().len();
                let n = bytes.len().min(ring.mem().len() - off);
                ring.mem().write(off, &bytes[..n]).unwrap();
            }
            Op::Word { which, value } => {
                let (off, _) = word(&ring, which);
                ring.mem().write(off, &value.to_le_bytes()).unwrap();
            }
            Op::Shift { which, by } => {
                let (off, v) = word(&ring, which);
                ring.mem()
                    .write(off, &v.wrapping_add_signed(i64::from(by)).to_le_bytes())
                    .unwrap();
            }
            Op::Header { at_word, len, tag } => {
                let (_, pos) = word(&ring, at_word);
                let off = 384 + (pos & (cap - 1)) as usize & !7;
                let mut h = [0u8; 8];
                h[..4].copy_from_slice(&len.to_le_bytes());
                h[4..].copy_from_slice(&tag.to_le_bytes());
                ring.mem().write(off, &h).unwrap();
            }
        }
    }
});
