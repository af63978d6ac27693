//! Python-framed socket connections (`ipc/socket_connection.rs`, `ipc/listener.rs`):
//! what a `Listener`'s accepted connection or a `Client` reads from its peer, the
//! authentication handshake (both roles) first if asked, then messages (4-byte
//! big-endian length, or -1 and an 8-byte length), as bytes and as typed values.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use multiproc_fuzz::{chunks, Piece};

#[derive(Debug, Arbitrary)]
enum Part {
    Raw(Piece),
    /// A message with a length that may lie (`long`: the -1 + u64 form).
    Message {
        len: Option<u64>,
        long: bool,
        body: Piece,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// The largest message accepted (at most 16 MiB here).
    max_message: u32,
    /// Authenticate first: the key, and whether this side delivers the challenge.
    auth: Option<(Vec<u8>, bool)>,
    parts: Vec<Part>,
}

fuzz_target!(|input: Input| {
    let max = (input.max_message & 0xff_ffff) as usize;
    multiproc_fuzz::set_alloc_cap(max + multiproc_fuzz::DEFAULT_CAP);
    let mut pieces = Vec::new();
    for part in input.parts {
        match part {
            Part::Raw(p) => pieces.push(p),
            Part::Message { len, long, body } => {
                let n = len.unwrap_or(body.bytes.len() as u64);
                let mut h = Vec::new();
                if long {
                    h.extend_from_slice(&(-1i32).to_be_bytes());
                    h.extend_from_slice(&n.to_be_bytes());
                } else {
                    h.extend_from_slice(&(n as i32).to_be_bytes());
                }
                pieces.push(Piece {
                    bytes: h,
                    split: body.split >> 4,
                    fd: false,
                });
                pieces.push(Piece { fd: false, ..body });
            }
        }
    }
    let auth = input.auth.as_ref().map(|(k, d)| (&k[..], *d));
    let (_, got) = multiproc::__fuzz::socket_connection(&chunks(&pieces), max, auth);
    for r in got.into_iter().flatten() {
        assert!(r <= max, "a message over the maximum was accepted");
    }
    multiproc_fuzz::set_alloc_cap(multiproc_fuzz::DEFAULT_CAP);
});
