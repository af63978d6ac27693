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
