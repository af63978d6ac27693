//! Descriptor marks on a connection's socket (`ipc/side.rs`): wake-up bytes, marks
//! (sequence number, descriptor count) with or without their descriptors, garbage,
//! all split across reads; then the receiver claims descriptors by sequence number.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use multiproc_fuzz::{chunks, Piece};

#[derive(Debug, Arbitrary)]
enum Part {
    Raw(Piece),
    Nudge,
    Mark {
        seq: u64,
        n: u32,
        fd: bool,
        split: u16,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    parts: Vec<Part>,
    takes: Vec<(u32, bool)>,
}

fuzz_target!(|input: Input| {
    let pieces: Vec<Piece> = input
        .parts
        .into_iter()
        .map(|p| match p {
            Part::Raw(p) => p,
            Part::Nudge => Piece {
                bytes: vec![1],
                split: 0,
                fd: false,
            },
            Part::Mark { seq, n, fd, split } => {
                let mut bytes = vec![2];
                bytes.extend_from_slice(&seq.to_le_bytes());
                bytes.extend_from_slice(&n.to_le_bytes());
                Piece { bytes, split, fd }
            }
        })
        .collect();
    let mut takes = input.takes;
    takes.truncate(64);
    multiproc::__fuzz::side_marks(&chunks(&pieces), &takes);
});
