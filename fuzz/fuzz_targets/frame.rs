//! Length-prefixed socket frames (`sys/linux/socket.rs`): a child's result as its
//! parent reads it (non-blocking, with a maximum), a launch as a child or the fork
//! server reads it (blocking, `recv_frame`), with headers and payloads split across
//! reads and descriptors on arbitrary bytes. Each frame's payload is then decoded as
//! a result (`Outcome`), as `join` does.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use multiproc_fuzz::{chunks, set_alloc_cap, Piece, DEFAULT_CAP};

#[derive(Debug, Arbitrary)]
enum Part {
    /// Raw bytes.
    Raw(Piece),
    /// A well-formed header (length and descriptor count, each possibly lying)
    /// followed by a payload.
    Frame {
        len: Option<u64>,
        nfds: Option<u32>,
        payload: Piece,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// The reader's maximum payload (at most 16 MiB here), or none.
    max_len: Option<u32>,
    blocking: bool,
    /// Bytes read between looks at the clock (as `join_timeout` does), from 1.
    budget: u16,
    parts: Vec<Part>,
}

fuzz_target!(|input: Input| {
    let max_len = input.max_len.map(|m| u64::from(m & 0xff_ffff));
    // A reader may allocate up to its maximum before the payload arrives, no more.
    set_alloc_cap(max_len.map_or(DEFAULT_CAP, |m| m as usize + DEFAULT_CAP));
    let mut pieces = Vec::new();
    for part in input.parts {
        match part {
            Part::Raw(p) => pieces.push(p),
            Part::Frame { len, nfds, payload } => {
                let mut header = Vec::with_capacity(12);
                header.extend_from_slice(&len.unwrap_or(payload.bytes.len() as u64).to_le_bytes());
                header.extend_from_slice(&nfds.unwrap_or(u32::from(payload.fd)).to_le_bytes());
                pieces.push(Piece {
                    bytes: header,
                    split: payload.split >> 4,
                    fd: payload.fd,
                });
                pieces.push(Piece {
                    fd: false,
                    ..payload
                });
            }
        }
    }
    let budget = usize::from(input.budget).max(1);
    let out = multiproc::__fuzz::socket_frames(&chunks(&pieces), max_len, input.blocking, budget);
    for (payload, _) in &out.frames {
        // (`recv_frame`, the blocking reader of a launch, has no maximum.)
        if let Some(m) = max_len.filter(|_| !input.blocking) {
            assert!(
                payload.len() as u64 <= m,
                "a frame over the maximum was accepted"
            );
        }
        multiproc::__fuzz::outcome::<Vec<u8>>(payload, Vec::new());
        multiproc::__fuzz::outcome::<(String, u64)>(payload, Vec::new());
    }
    set_alloc_cap(DEFAULT_CAP);
});
