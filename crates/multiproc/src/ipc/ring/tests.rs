//! White-box ring tests and the loom model of the publish/wake protocol.

#[cfg(not(loom))]
mod std_tests {
    use std::sync::Arc;

    use crate::ipc::ring::heap::HeapMem;
    use crate::ipc::ring::*;

    #[test]
    fn wrap_record_is_skipped() {
        let cap = 256;
        let r = Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap);
        // 3 records of 8+48 bytes: the 4th does not fit before the end and wraps.
        for round in 0..10u8 {
            for i in 0..3u8 {
                r.try_write(SINGLE, None, &[&[round ^ i; 48]])
                    .unwrap()
                    .unwrap();
            }
            for i in 0..3u8 {
                let rec = r.peek().unwrap().unwrap();
                let mut buf = [0u8; 48];
                r.copy_out(&rec, 0, &mut buf);
                assert_eq!(buf, [round ^ i; 48]);
                r.consume(&rec, None);
            }
            assert!(r.peek().unwrap().is_none());
        }
    }

    #[test]
    fn user_capacity_rounds_up_within_the_documented_bounds() {
        assert_eq!(user_capacity(0), MIN_USER_CAP);
        assert_eq!(user_capacity(4097), 8192);
        assert_eq!(user_capacity(1 << 20), 1 << 20);
        assert_eq!(user_capacity(usize::MAX), MAX_USER_CAP);
        assert!((MIN_CAP..=MAX_CAP).contains(&user_capacity(usize::MAX)));
    }

    #[test]
    fn open_validates_capacity() {
        let mem = Arc::new(HeapMem::new(footprint(256)));
        assert!(Ring::open(Arc::clone(&mem), 0, footprint(256)).is_err());
        let _ = Ring::init(Arc::clone(&mem), 0, 256);
        assert!(Ring::open(Arc::clone(&mem), 0, footprint(256)).is_ok());
        assert!(Ring::open(Arc::clone(&mem), 0, footprint(128)).is_err());
    }

    /// Found by the `codec` fuzz target: a pipe end or queue decoded from another
    /// process with a segment too small for its ring (or a misaligned ring) panicked
    /// in the word accessors, before the capacity check.
    #[test]
    fn open_checks_bounds_before_reading() {
        let small = Arc::new(HeapMem::new(64));
        assert!(Ring::open(Arc::clone(&small), 0, 64).is_err());
        let mem = Arc::new(HeapMem::new(2 * footprint(128)));
        let _ = Ring::init(Arc::clone(&mem), footprint(128), 128);
        assert!(Ring::open(Arc::clone(&mem), footprint(128) + 4, 2 * footprint(128)).is_err());
        assert!(Ring::open(Arc::clone(&mem), footprint(128), footprint(128) + 8).is_err());
        assert!(Ring::open(Arc::clone(&mem), usize::MAX - 127, 2 * footprint(128)).is_err());
        assert!(Ring::open(mem, footprint(128), 2 * footprint(128)).is_ok());
    }

    /// Found by the `ring` fuzz target (after the checked-positions fix): a head
    /// scribbled off the 8-byte grid made `peek` read a header across the end of the
    /// data area before `decode_record` could refuse the position.
    #[test]
    fn misaligned_head_is_corrupt_not_a_read_past_the_end() {
        let r = Ring::init(Arc::new(HeapMem::new(footprint(128))), 0, 128);
        for (head, tail) in [(127u64, 135u64), (1, 9), (255, 256)] {
            r.mem()
                .u64_at(128)
                .store(head, std::sync::atomic::Ordering::Relaxed);
            r.mem()
                .u64_at(0)
                .store(tail, std::sync::atomic::Ordering::Relaxed);
            assert!(r.peek().is_err(), "head {head}, tail {tail}");
        }
    }

    #[test]
    fn full_seq_extends_across_wraparound() {
        let r = Ring::init(Arc::new(HeapMem::new(footprint(128))), 0, 128);
        let m = 1u64 << SEQ_BITS;
        r.mem()
            .u64_at(136)
            .store(m - 2, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(r.full_seq((m - 2) as u32), m - 2);
        assert_eq!(r.full_seq(1), m + 1);
        r.mem()
            .u64_at(136)
            .store(m + 1, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(r.full_seq((m - 1) as u32), m - 1);
    }

    /// Issue 14: a ping-pong receiver slipped into "streaming" mode, whose first look
    /// came 256 pauses (6 µs) late, and stayed there. Every wait of a strict
    /// ping-pong takes one record, so batching probes must fail and thin out.
    #[test]
    fn ping_pong_receiver_does_not_batch() {
        use crate::ipc::frame::{recv, send, Patience};
        const N: u32 = 2000;
        let cap = 4096;
        let ring = || Arc::new(Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap));
        let (to, back) = (ring(), ring());
        let until =
            || Patience::Until(std::time::Instant::now() + std::time::Duration::from_secs(60));
        let echo = {
            let (to, back) = (Arc::clone(&to), Arc::clone(&back));
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                for _ in 0..N {
                    let mut state = Default::default();
                    recv(&to, &mut buf, 64, until(), false, &mut state, &mut |_| true).unwrap();
                    send(&back, &buf, until(), &mut || true).unwrap();
                }
            })
        };
        let mut buf = Vec::new();
        for i in 0..N {
            send(&to, &i.to_le_bytes(), until(), &mut || true).unwrap();
            let mut state = Default::default();
            recv(&back, &mut buf, 64, until(), false, &mut state, &mut |_| {
                true
            })
            .unwrap();
            assert_eq!(buf, i.to_le_bytes());
        }
        echo.join().unwrap();
        // A receiver that the other side's scheduling let take two records in a row
        // may batch a little longer; one that streams batches at nearly every wait.
        for r in [&to, &back] {
            let batched = r.data_pace.batched();
            assert!(batched < N / 10, "{batched} of {N} waits batched");
        }
    }

    /// Issue 11's word-at-a-time paths for small items: records of every length up
    /// to 64 bytes go in with `try_write_small` and come out with `take_small`
    /// (and the general `peek`, and the other way round) across many wraps of a
    /// small ring, with their message numbers counted on both sides; a full ring
    /// takes nothing.
    #[test]
    fn small_records_round_trip_across_wraps() {
        // Records of up to 72 bytes (a quarter of the ring is 128).
        let cap = 512;
        let r = Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap);
        let mut n = 0u64;
        for round in 0..200usize {
            let lens: Vec<usize> = (0..3).map(|i| (round * 7 + i * 13) % 65).collect();
            for (i, &len) in lens.iter().enumerate() {
                let mut payload = [0u8; 64];
                payload[..len].fill((round + i) as u8);
                if i == 1 {
                    r.try_write(SINGLE, None, &[&payload[..len]])
                        .unwrap()
                        .unwrap();
                } else {
                    assert_eq!(r.try_write_small(&payload, len), Ok(Some(false)));
                }
            }
            for (i, &len) in lens.iter().enumerate() {
                let mut out = [0u8; 64];
                if i == 2 {
                    let rec = r.peek().unwrap().unwrap();
                    assert_eq!((rec.kind, rec.len), (SINGLE, len));
                    r.copy_out(&rec, 0, &mut out[..len]);
                    let got = r.full_seq(rec.seq) + 1;
                    r.consume(&rec, Some(got));
                } else {
                    assert_eq!(r.take_small(&mut out, 64), Some(len));
                }
                assert!(out[..len].iter().all(|&b| b == (round + i) as u8));
            }
            n += 3;
            assert_eq!((r.put_count(), r.got_count()), (n, n));
            assert_eq!(r.take_small(&mut [0u8; 64], 64), None);
        }
        // Full: the record that does not fit leaves no trace.
        let mut k = 0;
        while r.try_write_small(&[9; 64], 64).unwrap().is_some() {
            k += 1;
        }
        let before = (r.put_count(), r.tail().unwrap());
        assert_eq!(r.try_write_small(&[9; 64], 64), Ok(None));
        assert_eq!((r.put_count(), r.tail().unwrap()), before);
        for _ in 0..k {
            assert_eq!(r.take_small(&mut [0u8; 64], 64), Some(64));
        }
        assert_eq!(r.got_count(), n + k);
    }

    /// `take_small` takes only a whole small record, and leaves anything else
    /// where it is for the general receive: a fragment, a record over its limit
    /// or its buffer, nothing at all, and positions no producer writes (which
    /// `peek` then reports), without a panic.
    #[test]
    fn take_small_leaves_what_it_does_not_take() {
        use std::sync::atomic::Ordering::Relaxed;
        let cap = 256;
        let r = Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap);
        let mut out = [0u8; 64];
        assert_eq!(r.take_small(&mut out, 64), None);
        // A first fragment (16-byte prefix and data).
        r.try_write(FIRST, None, &[&[0u8; 24]]).unwrap().unwrap();
        assert_eq!(r.take_small(&mut out, 64), None);
        assert_eq!(r.peek().unwrap().unwrap().kind, FIRST);
        let rec = r.peek().unwrap().unwrap();
        r.consume(&rec, None);
        // Over the limit, then over the buffer.
        r.try_write(SINGLE, None, &[&[1u8; 40]]).unwrap().unwrap();
        assert_eq!(r.take_small(&mut out, 39), None);
        assert_eq!(r.take_small(&mut out[..32], 64), None);
        assert_eq!(r.head(), rec.next_head);
        assert_eq!(r.take_small(&mut out, 40), Some(40));
        // Scribbled positions: off the grid, head past tail, too far apart.
        let tail = r.tail().unwrap();
        for (head, t) in [
            (tail + 1, tail + 17),
            (tail + 8, tail),
            (tail, tail + 2 * cap),
        ] {
            r.mem().u64_at(HEAD).store(head, Relaxed);
            r.mem().u64_at(TAIL).store(t, Relaxed);
            assert_eq!(r.take_small(&mut out, 64), None, "head {head}, tail {t}");
            assert!(r.peek().is_err(), "head {head}, tail {t}");
        }
    }

    /// `try_write_small` checks the words it reads: a tail off the grid, and a
    /// head that a full ring makes it read, beyond the tail; nothing is written.
    #[test]
    fn try_write_small_refuses_scribbled_positions() {
        use std::sync::atomic::Ordering::Relaxed;
        let cap = 128;
        let r = Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap);
        r.mem().u64_at(TAIL).store(3, Relaxed);
        assert!(r.try_write_small(&[0; 8], 8).is_err());
        r.mem().u64_at(TAIL).store(0, Relaxed);
        while r.try_write_small(&[1; 8], 8).unwrap().is_some() {}
        let put = r.put_count();
        r.mem().u64_at(HEAD).store(r.tail().unwrap() + 64, Relaxed);
        assert!(r.try_write_small(&[2; 8], 8).is_err());
        assert_eq!(r.put_count(), put);
    }

    #[test]
    fn sleeping_consumer_is_woken() {
        let cap = 256;
        let r = Arc::new(Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap));
        let t = {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                assert_eq!(r.wait_data(None, &mut || true), Waited::Ready);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        r.try_write(SINGLE, None, &[b"x"]).unwrap().unwrap();
        t.join().unwrap();
    }
}

/// The publish/wake protocol under loom: a consumer that sleeps is always woken,
/// and a record is always read after it was written (never stale bytes).
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p multiproc --lib --release ipc::ring`
#[cfg(loom)]
mod loom_tests {
    use std::sync::Arc;

    use crate::ipc::frame::{recv, send, Patience};
    use crate::ipc::ring::heap::HeapMem;
    use crate::ipc::ring::*;

    #[test]
    fn spsc_messages_and_wakeups() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let cap = MIN_CAP; // records of at most 24 bytes
            let r = Arc::new(Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap));
            let p = {
                let r = Arc::clone(&r);
                loom::thread::spawn(move || {
                    for i in 0..3u8 {
                        send(&r, &[i; 5], Patience::Forever, &mut || true).unwrap();
                    }
                })
            };
            let mut out = Vec::new();
            for i in 0..3u8 {
                recv(
                    &r,
                    &mut out,
                    64,
                    Patience::Forever,
                    true,
                    &mut Default::default(),
                    &mut |_| true,
                )
                .unwrap();
                assert_eq!(out, [i; 5]);
            }
            p.join().unwrap();
        });
    }

    #[test]
    fn producer_waits_for_space() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            // 24-byte records in a 128-byte ring: the producer must wait for room.
            let cap = MIN_CAP;
            let r = Arc::new(Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap));
            let p = {
                let r = Arc::clone(&r);
                loom::thread::spawn(move || {
                    for i in 0..7u8 {
                        send(&r, &[i; 16], Patience::Forever, &mut || true).unwrap();
                    }
                })
            };
            let mut out = Vec::new();
            for i in 0..7u8 {
                recv(
                    &r,
                    &mut out,
                    64,
                    Patience::Forever,
                    true,
                    &mut Default::default(),
                    &mut |_| true,
                )
                .unwrap();
                assert_eq!(out, [i; 16]);
            }
            p.join().unwrap();
        });
    }

    /// Issue 11's small-item paths (`try_write_small`, `take_small`) with the
    /// waits a `Queue` puts around them: 24-byte records in a 128-byte ring, so
    /// the producer waits for room and the records wrap.
    #[test]
    fn small_records_and_wakeups() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let cap = MIN_CAP;
            let r = Arc::new(Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap));
            let p = {
                let r = Arc::clone(&r);
                loom::thread::spawn(move || {
                    for i in 0..7u8 {
                        while r.try_write_small(&[i; 16], 16).unwrap().is_none() {
                            let fits = &mut || r.fits(16).unwrap();
                            assert_eq!(r.wait_space(None, &mut || true, fits), Waited::Ready);
                        }
                    }
                })
            };
            let mut out = [0u8; 16];
            for i in 0..7u8 {
                loop {
                    if let Some(n) = r.take_small(&mut out, 16) {
                        assert_eq!((n, out), (16, [i; 16]));
                        break;
                    }
                    assert_eq!(r.wait_data(None, &mut || true), Waited::Ready);
                }
            }
            p.join().unwrap();
        });
    }

    #[test]
    fn fragmented_message() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            // Records of at most 24 bytes: FIRST carries 8 data bytes, then 24 + 8.
            let cap = 2 * MIN_CAP;
            let r = Arc::new(Ring::init(Arc::new(HeapMem::new(footprint(cap))), 0, cap));
            let p = {
                let r = Arc::clone(&r);
                loom::thread::spawn(move || {
                    let m: Vec<u8> = (0..40).collect();
                    send(&r, &m, Patience::Forever, &mut || true).unwrap();
                })
            };
            let mut out = Vec::new();
            recv(
                &r,
                &mut out,
                64,
                Patience::Forever,
                true,
                &mut Default::default(),
                &mut |_| true,
            )
            .unwrap();
            assert_eq!(out, (0..40).collect::<Vec<u8>>());
            p.join().unwrap();
        });
    }
}
