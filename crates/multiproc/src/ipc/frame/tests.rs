//! Framing properties: round trips through rings of many sizes, partial reads,
//! size limits, and corrupted or truncated frames giving errors, never panics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::ipc::ring::heap::HeapMem;
use crate::ipc::ring::{footprint, Ring};

fn ring(cap: u64) -> Ring<Arc<HeapMem>> {
    Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap)
}

fn msg(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

fn never(_: Option<u32>) -> bool {
    true
}

#[test]
fn single_and_fragmented_round_trip() {
    let r = ring(1024);
    let mut out = Vec::new();
    for len in [0, 1, 7, 8, 9, 100, 247, 248, 249, 400, 600] {
        let m = msg(len, len);
        send(&r, &m, Patience::Try, &mut || true).unwrap();
        recv(
            &r,
            &mut out,
            usize::MAX,
            Patience::Try,
            true,
            &mut Reassembly::default(),
            &mut never,
        )
        .unwrap();
        assert_eq!(out, m, "len {len}");
    }
    assert_eq!(
        recv(
            &r,
            &mut out,
            usize::MAX,
            Patience::Try,
            true,
            &mut Reassembly::default(),
            &mut never
        ),
        Err(RecvFail::Empty)
    );
    assert_eq!(r.put_count(), r.got_count());
}

#[test]
fn full_then_room_again() {
    let r = ring(256);
    let m = [7u8; 40];
    let mut sent = 0;
    while send(&r, &m, Patience::Try, &mut || true).is_ok() {
        sent += 1;
    }
    assert!(sent >= 4);
    let mut out = Vec::new();
    recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        false,
        &mut Reassembly::default(),
        &mut never,
    )
    .unwrap();
    send(&r, &m, Patience::Try, &mut || true).unwrap();
    let t = Instant::now() + Duration::from_millis(20);
    assert_eq!(
        send(&r, &m, Patience::Until(t), &mut || true),
        Err(SendFail::TimedOut)
    );
}

#[test]
fn over_max_len_is_dropped_and_the_next_one_arrives() {
    let r = ring(1024);
    let mut out = Vec::new();
    send(&r, &msg(1, 100), Patience::Try, &mut || true).unwrap();
    send(&r, &msg(2, 500), Patience::Try, &mut || true).unwrap();
    send(&r, &msg(3, 10), Patience::Try, &mut || true).unwrap();
    assert_eq!(
        recv(
            &r,
            &mut out,
            50,
            Patience::Try,
            false,
            &mut Reassembly::default(),
            &mut never
        ),
        Err(RecvFail::TooLarge(100))
    );
    assert_eq!(
        recv(
            &r,
            &mut out,
            50,
            Patience::Try,
            false,
            &mut Reassembly::default(),
            &mut never
        ),
        Err(RecvFail::TooLarge(500))
    );
    recv(
        &r,
        &mut out,
        50,
        Patience::Try,
        false,
        &mut Reassembly::default(),
        &mut never,
    )
    .unwrap();
    assert_eq!(out, msg(3, 10));
}

#[test]
fn partial_message_is_dropped_when_a_new_one_starts() {
    // A producer that died after its FIRST fragment: the next message wins.
    let r = ring(1024);
    let mut prefix = [0u8; 16];
    prefix[..8].copy_from_slice(&1000u64.to_le_bytes());
    let _ = r
        .try_write(FIRST, None, &[&prefix, &[1u8; 100]])
        .unwrap()
        .unwrap();
    send(&r, b"next", Patience::Try, &mut || true).unwrap();
    let mut out = Vec::new();
    recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut Reassembly::default(),
        &mut never,
    )
    .unwrap();
    assert_eq!(out, b"next");
    // Orphan continuations (their start was taken by a consumer that died) are skipped.
    let seq = 99;
    r.try_write(MORE, Some(seq), &[&[1u8; 8]]).unwrap().unwrap();
    r.try_write(LAST, Some(seq), &[&[1u8; 8]]).unwrap().unwrap();
    send(&r, b"after", Patience::Try, &mut || true).unwrap();
    recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut Reassembly::default(),
        &mut never,
    )
    .unwrap();
    assert_eq!(out, b"after");
}

#[test]
fn dead_producer_mid_message_unblocks_the_receiver() {
    let r = ring(1024);
    let mut prefix = [0u8; 16];
    prefix[..8].copy_from_slice(&1000u64.to_le_bytes());
    prefix[8..12].copy_from_slice(&77u32.to_le_bytes());
    let _ = r
        .try_write(FIRST, None, &[&prefix, &[1u8; 100]])
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    let mut asked = None;
    let mut state = Reassembly::default();
    // Longer than a tick: the producer is asked about, said gone, and the part dropped.
    let deadline = Instant::now() + Duration::from_millis(300);
    let res = recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Until(deadline),
        true,
        &mut state,
        &mut |pid| {
            if pid.is_some() {
                asked = pid;
            }
            pid.is_none()
        },
    );
    assert_eq!(res, Err(RecvFail::TimedOut));
    assert_eq!(asked, Some(77));
    assert!(!state.in_message());
}

/// A first fragment that announces `total` bytes from producer `pid`, with `data`.
fn first(r: &Ring<Arc<HeapMem>>, total: u64, data: &[u8]) -> u64 {
    let mut prefix = [0u8; 16];
    prefix[..8].copy_from_slice(&total.to_le_bytes());
    prefix[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    r.try_write(FIRST, None, &[&prefix, data])
        .unwrap()
        .unwrap()
        .1
}

#[test]
fn deadline_in_the_middle_of_a_message_keeps_the_part_and_resumes() {
    let r = ring(1024);
    let mut state = Reassembly::default();
    let mut out = vec![9u8; 5];
    let seq = first(&r, 300, &[1u8; 100]);
    for patience in [
        Patience::Until(Instant::now() + Duration::from_millis(30)),
        Patience::Try,
    ] {
        let t = Instant::now();
        let res = recv(
            &r,
            &mut out,
            usize::MAX,
            patience,
            true,
            &mut state,
            &mut never,
        );
        assert!(
            matches!(res, Err(RecvFail::TimedOut | RecvFail::Empty)),
            "{res:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(state.in_message());
        assert!(out.is_empty());
    }
    r.try_write(MORE, Some(seq), &[&[2u8; 100]])
        .unwrap()
        .unwrap();
    let res = recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut state,
        &mut never,
    );
    assert_eq!(res, Err(RecvFail::Empty));
    r.try_write(LAST, Some(seq), &[&[3u8; 100]])
        .unwrap()
        .unwrap();
    recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut state,
        &mut never,
    )
    .unwrap();
    let want: Vec<u8> = [[1u8; 100], [2; 100], [3; 100]].concat();
    assert_eq!(out, want);
    assert!(!state.in_message());
}

#[test]
fn another_consumer_in_between_drops_the_part() {
    let r = ring(1024);
    let mut mine = Reassembly::default();
    let mut out = Vec::new();
    let seq = first(&r, 300, &[1u8; 100]);
    let res = recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut mine,
        &mut never,
    );
    assert_eq!(res, Err(RecvFail::Empty));
    r.try_write(MORE, Some(seq), &[&[2u8; 100]])
        .unwrap()
        .unwrap();
    r.try_write(LAST, Some(seq), &[&[3u8; 100]])
        .unwrap()
        .unwrap();
    send(&r, b"next", Patience::Try, &mut || true).unwrap();
    // Another consumer (its own state) skips the continuation and takes the next.
    let mut theirs = Reassembly::default();
    recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut theirs,
        &mut never,
    )
    .unwrap();
    assert_eq!(out, b"next");
    // This one's part is stale: dropped, never spliced with other bytes.
    send(&r, b"after", Patience::Try, &mut || true).unwrap();
    recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut mine,
        &mut never,
    )
    .unwrap();
    assert_eq!(out, b"after");
    assert!(!mine.in_message());
}

#[test]
fn a_forged_length_costs_only_what_arrives() {
    let r = ring(1024);
    let mut state = Reassembly::default();
    let mut out = Vec::new();
    first(&r, 1 << 30, &[1u8; 100]);
    let res = recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut state,
        &mut never,
    );
    assert_eq!(res, Err(RecvFail::Empty));
    assert!(state.buf.capacity() < 1 << 20, "{}", state.buf.capacity());
    // A resumed message over this call's limit is dropped, not grown into.
    let res = recv(
        &r,
        &mut out,
        1000,
        Patience::Try,
        true,
        &mut state,
        &mut never,
    );
    assert_eq!(res, Err(RecvFail::TooLarge(1 << 30)));
    assert!(!state.in_message());
}

#[test]
fn a_fragment_of_another_message_mid_message_is_corrupt() {
    let r = ring(1024);
    let mut state = Reassembly::default();
    let mut out = Vec::new();
    let seq = first(&r, 300, &[1u8; 100]);
    r.try_write(MORE, Some(seq + 1), &[&[2u8; 100]])
        .unwrap()
        .unwrap();
    let res = recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut state,
        &mut never,
    );
    assert!(matches!(res, Err(RecvFail::Corrupt(_))), "{res:?}");
}

#[test]
fn send_deadline_covers_the_whole_message() {
    // 1024-byte ring, 248-byte records: a 2000-byte message needs the receiver.
    let r = ring(1024);
    let t = Instant::now();
    let res = send(
        &r,
        &[5u8; 2000],
        Patience::Until(t + Duration::from_millis(50)),
        &mut || true,
    );
    assert_eq!(res, Err(SendFail::TimedOut));
    assert!(t.elapsed() < Duration::from_secs(2));
    // The receiver drops the abandoned part when the next message starts.
    let mut state = Reassembly::default();
    let mut out = Vec::new();
    let res = recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut state,
        &mut never,
    );
    assert_eq!(res, Err(RecvFail::Empty));
    send(&r, b"whole", Patience::Try, &mut || true).unwrap();
    recv(
        &r,
        &mut out,
        usize::MAX,
        Patience::Try,
        true,
        &mut state,
        &mut never,
    )
    .unwrap();
    assert_eq!(out, b"whole");
}

/// Every control word a peer can scribble, at values around the edges: never a
/// panic, never a wait past the deadline; a `Corrupt` where the positions cannot be.
#[test]
fn scribbled_control_words_never_panic_or_hang() {
    use std::sync::atomic::Ordering::Relaxed;
    let values = [
        0,
        1,
        7,
        8,
        1023,
        1024,
        4096,
        u64::MAX,
        u64::MAX - 7,
        u64::MAX - 1024,
        1 << 63,
        (1 << 32) + 8,
    ];
    for word in [0usize, 8, 128, 136] {
        for &v in &values {
            for preload in [0usize, 40, 600] {
                let mem = Arc::new(HeapMem::new(footprint(1024)));
                let r = Ring::init(Arc::clone(&mem), 0, 1024);
                let _ = send(&r, &msg(1, preload), Patience::Try, &mut || true);
                crate::ipc::ring::Mem::u64_at(&mem, word).store(v, Relaxed);
                let r = Ring::open(Arc::clone(&mem), 0, footprint(1024)).unwrap();
                let t = Instant::now();
                let d = Patience::Until(t + Duration::from_millis(20));
                let mut out = Vec::new();
                let mut state = Reassembly::default();
                for _ in 0..3 {
                    let _ = recv(&r, &mut out, 4096, d, true, &mut state, &mut never);
                    let _ = send(&r, &msg(2, 100), d, &mut || true);
                    let _ = send(&r, &msg(3, 900), d, &mut || true);
                    let _ = send(&r, &msg(4, 10), Patience::Try, &mut || true);
                }
                assert!(
                    t.elapsed() < Duration::from_secs(3),
                    "word {word} = {v}: took {:?}",
                    t.elapsed()
                );
            }
        }
    }
    // A tail no producer writes (not a record boundary, or past the head by more
    // than the ring) is reported, not written past.
    let mem = Arc::new(HeapMem::new(footprint(1024)));
    let r = Ring::init(Arc::clone(&mem), 0, 1024);
    for tail in [u64::MAX, 5, 4096] {
        crate::ipc::ring::Mem::u64_at(&mem, 0).store(tail, Relaxed);
        let res = send(&r, b"x", Patience::Try, &mut || true);
        assert!(
            matches!(res, Err(SendFail::Corrupt(_))),
            "tail {tail}: {res:?}"
        );
    }
}

#[test]
fn threads_blocking_large_messages() {
    let r = Arc::new(ring(4096));
    let lens: Vec<usize> = (0..200).map(|i| (i * 977) % 20_000).collect();
    let t = {
        let r = Arc::clone(&r);
        let lens = lens.clone();
        std::thread::spawn(move || {
            for (i, &len) in lens.iter().enumerate() {
                send(&r, &msg(i, len), Patience::Forever, &mut || true).unwrap();
            }
        })
    };
    let mut out = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        recv(
            &r,
            &mut out,
            usize::MAX,
            Patience::Forever,
            true,
            &mut Reassembly::default(),
            &mut never,
        )
        .unwrap();
        assert_eq!(out, msg(i, len));
    }
    t.join().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of messages comes out whole and in order, whatever the ring
    /// size, the interleaving of sends and receives, and the reuse of the buffer.
    #[test]
    fn round_trips(cap_log in 8u32..13, lens in prop::collection::vec(0usize..3000, 1..40),
                   burst in 1usize..6) {
        let cap = 1u64 << cap_log;
        let r = ring(cap);
        let mut out = Vec::new();
        let mut next_out = 0;
        // Messages through `r` (some go through a second ring, below).
        let mut through_r = 0;
        let mut i = 0;
        while next_out < lens.len() {
            // Send up to `burst` messages that fit, then receive what is there.
            for _ in 0..burst {
                if i < lens.len() && send(&r, &msg(i, lens[i]), Patience::Try, &mut || true).is_ok() {
                    i += 1;
                }
            }
            loop {
                match recv(&r, &mut out, usize::MAX, Patience::Try, true, &mut Reassembly::default(), &mut never) {
                    Ok(seq) => {
                        // Each message takes the ring's next number.
                        prop_assert_eq!(seq as usize, through_r);
                        through_r += 1;
                        prop_assert_eq!(&out, &msg(next_out, lens[next_out]));
                        next_out += 1;
                    }
                    Err(RecvFail::Empty) => break,
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            if i < lens.len() && !r.has_data() {
                if send(&r, &msg(i, lens[i]), Patience::Try, &mut || true).is_ok() {
                    i += 1;
                    continue;
                }
                // Larger than a Try send can ever take in this ring: send it from a thread.
                let r2 = Arc::new(ring(cap));
                let m = msg(i, lens[i]);
                let t = { let r2 = Arc::clone(&r2); let m = m.clone();
                    std::thread::spawn(move || send(&r2, &m, Patience::Forever, &mut || true).unwrap()) };
                recv(&r2, &mut out, usize::MAX, Patience::Forever, true, &mut Reassembly::default(), &mut never).unwrap();
                t.join().unwrap();
                prop_assert_eq!(&out, &m);
                i += 1;
                next_out += 1;
            }
        }
        prop_assert_eq!(r.put_count(), r.got_count());
    }

    /// Scribbling over the ring never panics the receiver: it yields messages,
    /// "empty", "too large" or "corrupt", and a message it yields is never longer
    /// than the limit.
    #[test]
    fn corruption_never_panics(lens in prop::collection::vec(0usize..600, 1..8),
                               pokes in prop::collection::vec((0usize..1024, any::<u8>()), 1..6)) {
        let cap = 1024u64;
        let mem = Arc::new(HeapMem::new(footprint(cap)));
        let r = Ring::init(Arc::clone(&mem), 0, cap);
        for (i, &len) in lens.iter().enumerate() {
            let _ = send(&r, &msg(i, len), Patience::Try, &mut || true);
        }
        for &(off, byte) in &pokes {
            mem.poke(384 + off, byte);
        }
        let mut out = Vec::new();
        // A scribbled first fragment may announce more fragments that never come: the
        // tick must say "the producer is gone" there, or the receiver rightly waits for
        // a live producer forever (it did, in 1 of ~20,000 cases).
        let mut producer_gone = |_: Option<u32>| false;
        for _ in 0..20 {
            match recv(&r, &mut out, 700, Patience::Try, true, &mut Reassembly::default(), &mut producer_gone) {
                Ok(_) => prop_assert!(out.len() <= 700),
                Err(RecvFail::Empty | RecvFail::Corrupt(_)) => break,
                Err(_) => {}
            }
        }
    }

    /// The pure decoders of what another process writes are total: any bytes and
    /// words give an answer, never a panic (the fuzz targets call them too).
    #[test]
    fn pure_decoders_are_total(h in any::<[u8; 8]>(), pos in any::<u64>(), tail in any::<u64>(),
                               cap_log in 0u32..64, odd_cap in any::<u64>(), max_record in any::<usize>(),
                               head in any::<u64>(), bytes in prop::collection::vec(any::<u8>(), 0..40),
                               max_len in any::<u64>()) {
        for cap in [1u64 << cap_log, odd_cap] {
            let _ = crate::ipc::ring::decode_record(h, pos, tail, cap, max_record);
            let _ = crate::ipc::ring::check_positions(head, tail, cap);
        }
        let mut prefix = [0u8; FIRST_PREFIX];
        let n = bytes.len().min(FIRST_PREFIX);
        prefix[..n].copy_from_slice(&bytes[..n]);
        let _ = decode_first_prefix(prefix);
        let _ = crate::sys::socket::decode_header(&bytes, Some(max_len));
        let _ = crate::sys::socket::decode_header(&bytes, None);
    }

    /// Truncation: a tail that claims more than was written is reported as corrupt.
    #[test]
    fn bogus_tail_is_corrupt(len in 0usize..200, extra in 1u64..100) {
        let cap = 1024u64;
        let mem = Arc::new(HeapMem::new(footprint(cap)));
        let r = Ring::init(Arc::clone(&mem), 0, cap);
        send(&r, &msg(0, len), Patience::Try, &mut || true).unwrap();
        let tail = crate::ipc::ring::Mem::u64_at(&mem, 0);
        let t = tail.load(std::sync::atomic::Ordering::Relaxed);
        tail.store(t + extra * 8, std::sync::atomic::Ordering::Relaxed);
        let r = Ring::open(Arc::clone(&mem), 0, footprint(cap)).unwrap();
        let mut out = Vec::new();
        let first = recv(&r, &mut out, usize::MAX, Patience::Try, true, &mut Reassembly::default(), &mut never);
        prop_assert!(first.is_ok());
        prop_assert_eq!(&out, &msg(0, len));
        let second = recv(&r, &mut out, usize::MAX, Patience::Try, true, &mut Reassembly::default(), &mut never);
        prop_assert!(matches!(second, Err(RecvFail::Corrupt(_))), "{:?}", second);
    }
}

/// Sends `m` marked at `mark` (from a thread: it may be larger than the ring) and
/// receives it with [`recv_split`], then with [`recv`] (sent again): returns the
/// split receive's head, bulk and cut, and the plain receive's message.
fn split_round_trip(
    cap: u64,
    m: &[u8],
    mark: Option<usize>,
) -> (Vec<u8>, Vec<u8>, Option<Cut>, Vec<u8>) {
    let r = Arc::new(ring(cap));
    let t = {
        let (r, m) = (Arc::clone(&r), m.to_vec());
        std::thread::spawn(move || {
            for _ in 0..2 {
                let mut out = Outgoing::begin_split(&*r, m.len(), Patience::Forever, mark).unwrap();
                out.write(&m, &mut || true).unwrap();
                out.finish(&mut || true).unwrap();
            }
        })
    };
    let (mut out, mut bulk, mut plain) = (vec![5u8; 3], Vec::new(), Vec::new());
    let mut state = Reassembly::default();
    let (_, cut) = recv_split(
        &*r,
        &mut out,
        &mut bulk,
        usize::MAX,
        Patience::Forever,
        true,
        &mut state,
        &mut never,
    )
    .unwrap();
    recv(
        &*r,
        &mut plain,
        usize::MAX,
        Patience::Forever,
        true,
        &mut state,
        &mut never,
    )
    .unwrap();
    t.join().unwrap();
    (out, bulk, cut, plain)
}

/// A split message put back together.
fn rebuild(out: &[u8], bulk: &[u8], cut: Option<Cut>) -> Vec<u8> {
    match cut {
        Some(c) => [&out[..c.bulk_at], bulk, &out[c.bulk_at..]].concat(),
        None => out.to_vec(),
    }
}

/// postcard's varint of `n`.
fn varint(mut n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            v.push(b);
            return v;
        }
        v.push(b | 0x80);
    }
}

/// Issue 14: a byte string marked by its sender arrives in a buffer of its own
/// (which a queue hands to the item), the rest of the message in the head buffer,
/// whether the message fits one record or not.
#[test]
fn a_marked_byte_string_arrives_in_its_own_buffer() {
    for cap in [256u64, 1024, 4096] {
        for len in [0usize, 1, 100, 127, 128, 300, 2000, 20_000] {
            let bytes = msg(len, len);
            let head = [&[1u8, 2, 3][..], &varint(len)].concat();
            let m = [&head[..], &bytes, &[9u8; 5]].concat();
            let (out, bulk, cut, plain) = split_round_trip(cap, &m, Some(3));
            assert_eq!(
                cut,
                Some(Cut {
                    at: 3,
                    bulk_at: head.len()
                }),
                "cap {cap}, len {len}"
            );
            assert_eq!(bulk, bytes, "cap {cap}, len {len}");
            assert_eq!(out, [&head[..], &[9u8; 5]].concat());
            assert_eq!(plain, m, "a plain receive gets the whole message");
        }
    }
}

/// A deadline in the middle of a split message keeps both parts, and the next
/// receive continues it.
#[test]
fn a_split_message_resumes_after_a_deadline() {
    let r = ring(1024);
    let mut state = Reassembly::default();
    let (mut out, mut bulk) = (Vec::new(), Vec::new());
    let m = [&[7u8][..], &varint(250), &msg(1, 250), &[8u8; 40]].concat();
    let mut prefix = [0u8; 16];
    prefix[..8].copy_from_slice(&(m.len() as u64).to_le_bytes());
    prefix[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    prefix[12..16].copy_from_slice(&2u32.to_le_bytes());
    let seq = r
        .try_write(FIRST, None, &[&prefix, &m[..100]])
        .unwrap()
        .unwrap()
        .1;
    let mut take = |out: &mut Vec<u8>, bulk: &mut Vec<u8>| {
        recv_split(
            &r,
            out,
            bulk,
            usize::MAX,
            Patience::Try,
            true,
            &mut state,
            &mut never,
        )
    };
    assert_eq!(take(&mut out, &mut bulk), Err(RecvFail::Empty));
    assert!(
        out.is_empty() && bulk.is_empty(),
        "the part waits in the state"
    );
    r.try_write(MORE, Some(seq), &[&m[100..200]])
        .unwrap()
        .unwrap();
    assert_eq!(take(&mut out, &mut bulk), Err(RecvFail::Empty));
    r.try_write(LAST, Some(seq), &[&m[200..]]).unwrap().unwrap();
    let (_, cut) = take(&mut out, &mut bulk).unwrap();
    let cut = cut.expect("split");
    assert_eq!((cut.at, cut.bulk_at), (1, 3));
    assert_eq!(bulk, msg(1, 250));
    assert_eq!(rebuild(&out, &bulk, Some(cut)), m);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever mark a sender writes (a hostile one included: not at a length, a
    /// length past the message's end, an overlong varint), the receiver's head and
    /// bulk put back together are the message sent, and a cut it reports has the
    /// bulk's exact length (postcard's varint) right before the bulk.
    #[test]
    fn any_mark_rebuilds_the_message(len in 0usize..3000, mark in 0usize..3100,
                                     lengths in prop::collection::vec((0usize..3000, 0usize..2600), 0..3),
                                     cap_log in 8u32..12, at_planted in any::<bool>()) {
        let mut m = msg(len, len);
        let mut mark = mark;
        // Plant some plausible lengths (and mark the last one, sometimes).
        for (at, n) in lengths {
            let v = varint(n);
            if at + v.len() <= m.len() {
                m[at..at + v.len()].copy_from_slice(&v);
                if at_planted {
                    mark = at;
                }
            }
        }
        let (out, bulk, cut, plain) = split_round_trip(1 << cap_log, &m, Some(mark));
        prop_assert_eq!(&rebuild(&out, &bulk, cut), &m);
        prop_assert_eq!(&plain, &m);
        if let Some(c) = cut {
            prop_assert_eq!(c.at, mark);
            prop_assert_eq!(&out[c.at..c.bulk_at], &varint(bulk.len())[..]);
        }
    }
}
