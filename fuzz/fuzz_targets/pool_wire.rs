//! The process pool's wire records (`pool/wire.rs`): 29-byte headers (tag, id, aux,
//! descriptor count, length, each possibly lying), payloads and garbage, split
//! across reads, with descriptors on arbitrary bytes, read in bulk as the parent
//! reads a worker; each record's payload is decoded as the parent decodes its tag.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use multiproc_fuzz::{chunks, Piece};

#[derive(Debug, Arbitrary)]
enum Part {
    Raw(Piece),
    Record {
        tag: u8,
        id: u64,
        aux: i64,
        nfds: Option<u32>,
        len: Option<u64>,
        payload: Piece,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// The reader's maximum payload (the pool's `max_result_size`; at most 16 MiB
    /// here), or the worker's unlimited reader.
    max_len: Option<u32>,
    parts: Vec<Part>,
}

fuzz_target!(|input: Input| {
    let max_len = input.max_len.map_or(u64::MAX, |m| u64::from(m & 0xff_ffff));
    let parts = input.parts;
    let mut pieces = Vec::new();
    for part in parts {
        match part {
            Part::Raw(p) => pieces.push(p),
            Part::Record {
                tag,
                id,
                aux,
                nfds,
                len,
                payload,
            } => {
                let mut h = vec![tag % 8];
                h.extend_from_slice(&id.to_le_bytes());
                h.extend_from_slice(&aux.to_le_bytes());
                h.extend_from_slice(&nfds.unwrap_or(u32::from(payload.fd)).to_le_bytes());
                h.extend_from_slice(&len.unwrap_or(payload.bytes.len() as u64).to_le_bytes());
                pieces.push(Piece {
                    bytes: h,
                    split: payload.split >> 5,
                    fd: payload.fd,
                });
                pieces.push(Piece {
                    fd: false,
                    ..payload
                });
            }
        }
    }
    let (records, _) = multiproc::__fuzz::pool_records(&chunks(&pieces), max_len);
    for r in records {
        assert!(
            r.3 as u64 <= max_len,
            "a record over the maximum was accepted"
        );
    }
});
