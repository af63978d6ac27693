//! `loan_channel`: payloads written and read in place in a shared pool, between
//! threads and processes; dead processes' slots taken back; forged descriptors and
//! scribbled control words refused with typed errors; no segment left behind.

mod util;

use std::time::Duration;

use multiproc::ipc::{loan_channel, Connection, LoanReceiver, LoanSender, RecvTimeoutError};
use multiproc::{ErrorKind, Process, Queue, SharedMemory};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(30);

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 7 + j * 13) as u8).collect()
}

#[test]
fn payloads_arrive_whole_and_slots_come_back() {
    let _w = util::watchdog(Duration::from_secs(60));
    let (tx, rx) = loan_channel(3, 100_000).unwrap();
    assert_eq!((tx.slots(), tx.slot_size()), (3, 102_400));
    let t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        (0..50)
            .map(|_| {
                let s = rx.recv_timeout(WAIT).unwrap();
                s.read_into(&mut buf);
                let mut head = [0u8; 2];
                if s.len() >= 2 {
                    s.read(0, &mut head).unwrap();
                    assert_eq!(head, buf[..2]);
                }
                assert!(s.read(s.len(), &mut [0u8; 1]).is_err(), "read past the end");
                buf.clone()
            })
            .collect::<Vec<_>>()
    });
    for i in 0..50 {
        let len = [0, 1, 4096, 100_000, 102_400][i % 5];
        if i % 2 == 0 {
            tx.send_bytes(&payload(i, len)).unwrap();
        } else {
            let mut loan = tx.loan_timeout(len, WAIT).unwrap();
            assert_eq!(loan.len(), len);
            loan.write(0, &payload(i, len)).unwrap();
            loan.send().unwrap();
        }
    }
    let got = t.join().unwrap();
    for (i, g) in got.iter().enumerate() {
        assert!(
            *g == payload(i, [0, 1, 4096, 100_000, 102_400][i % 5]),
            "payload {i}"
        );
    }
}

#[test]
fn misuse_is_a_typed_error() {
    let (tx, rx) = loan_channel(1, 4096).unwrap();
    assert_eq!(tx.loan(4097).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        loan_channel(0, 1).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        loan_channel(1, 0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let mut loan = tx.loan(10).unwrap();
    assert_eq!(
        loan.write(5, &[0u8; 6]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // The only slot is loaned: no other.
    assert_eq!(tx.try_loan(1).unwrap_err().kind(), ErrorKind::Timeout);
    drop(loan);
    // Dropped unsent, it came back.
    tx.try_loan(1).unwrap().send().unwrap();
    assert!(rx.try_recv().is_ok());
    // The receiver gone: sending fails.
    drop(rx);
    assert_eq!(
        tx.send_bytes(b"x").unwrap_err().kind(),
        ErrorKind::Disconnected
    );
}

/// Receives every payload and returns how many bytes came, checking each.
fn count_bytes(rx: LoanReceiver) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while let Ok(s) = rx.recv() {
        assert!(s.to_vec() == payload(i, s.len()), "payload {i}");
        n += s.len() as u64;
        i += 1;
    }
    n
}

/// Sends `n` payloads of 1 MiB.
fn send_mib((tx, n): (LoanSender, usize)) {
    for i in 0..n {
        tx.send_bytes(&payload(i, 1 << 20)).unwrap();
    }
}

#[test]
fn between_processes_both_ways() {
    let _w = util::watchdog(Duration::from_secs(120));
    let _s = util::serial();
    let (tx, rx) = loan_channel(2, 1 << 20).unwrap();
    let child = Process::start_with(count_bytes, rx).unwrap();
    for i in 0..20 {
        tx.send_bytes(&payload(i, (i * 50_000) % (1 << 20)))
            .unwrap();
    }
    drop(tx);
    let want: u64 = (0..20).map(|i| ((i * 50_000) % (1 << 20)) as u64).sum();
    assert_eq!(child.join().unwrap(), want);

    let (tx, rx) = loan_channel(2, 1 << 20).unwrap();
    let child = Process::start_with(send_mib, (tx, 10)).unwrap();
    for i in 0..10 {
        let s = rx.recv_timeout(WAIT).unwrap();
        assert!(s.to_vec() == payload(i, 1 << 20), "payload {i}");
    }
    child.join().unwrap();
    assert!(matches!(
        rx.recv_timeout(WAIT),
        Err(RecvTimeoutError::Disconnected)
    ));
}

/// Loans every slot, says so, and waits to be killed.
fn loan_all_and_hang((tx, said): (LoanSender, Queue<u8>)) {
    let loans: Vec<_> = (0..tx.slots()).map(|_| tx.loan(1).unwrap()).collect();
    said.put(1).unwrap();
    std::thread::sleep(Duration::from_secs(600));
    drop(loans);
}

/// Takes one payload, says so, and waits to be killed.
fn hold_one_and_hang((rx, said): (LoanReceiver, Queue<u8>)) {
    let s = rx.recv().unwrap();
    said.put(1).unwrap();
    std::thread::sleep(Duration::from_secs(600));
    drop(s);
}

/// A sender killed while it holds loans, and a receiver killed while it holds a
/// sample: their slots are taken back by the next loan that finds none free.
#[test]
fn a_dead_processs_slots_are_taken_back() {
    let _w = util::watchdog(Duration::from_secs(120));
    let _s = util::serial();
    let segments = util::mapped_segments();
    {
        let (tx, _rx) = loan_channel(2, 4096).unwrap();
        let said = Queue::new().unwrap();
        let child = Process::start_with(loan_all_and_hang, (copy_of(&tx), said.clone())).unwrap();
        assert_eq!(said.get_timeout(WAIT).unwrap(), 1);
        assert_eq!(tx.try_loan(1).unwrap_err().kind(), ErrorKind::Timeout);
        child.kill().unwrap();
        let _ = child.join();
        let a = tx.loan_timeout(1, WAIT).expect("a dead sender's slot");
        let b = tx.loan_timeout(1, WAIT).expect("the other one");
        drop((a, b));
    }
    {
        let (tx, rx) = loan_channel(1, 4096).unwrap();
        let said = Queue::new().unwrap();
        let child = Process::start_with(hold_one_and_hang, (copy_of(&rx), said.clone())).unwrap();
        tx.send_bytes(b"held").unwrap();
        assert_eq!(said.get_timeout(WAIT).unwrap(), 1);
        assert_eq!(tx.try_loan(1).unwrap_err().kind(), ErrorKind::Timeout);
        child.kill().unwrap();
        let _ = child.join();
        // (This process's copy of the receiving end keeps the channel open.)
        tx.loan_timeout(1, WAIT)
            .expect("a dead receiver's slot")
            .send()
            .unwrap();
        assert_eq!(rx.recv_timeout(WAIT).unwrap().len(), 1);
    }
    assert_eq!(
        util::mapped_segments(),
        segments,
        "a segment was left mapped"
    );
}

/// A loan channel's end as it travels (its wire layout), to forge descriptors and
/// scribble control words as another process could.
#[derive(Serialize, Deserialize)]
struct Wire {
    mem: SharedMemory,
    conn: Connection,
    slots: u64,
    slot_size: u64,
}

/// Another handle on the same end, as a process it is sent to gets.
fn copy_of<T: Serialize + serde::de::DeserializeOwned>(end: &T) -> T {
    let e = multiproc::ipc::codec::encode(end).unwrap();
    multiproc::ipc::codec::decode(&e.bytes, e.fds).unwrap()
}

fn wire_of<T: Serialize>(end: &T) -> Wire {
    let e = multiproc::ipc::codec::encode(end).unwrap();
    multiproc::ipc::codec::decode(&e.bytes, e.fds).unwrap()
}

fn descriptor(slot: u32, generation: u32, len: u64) -> Vec<u8> {
    [
        &slot.to_le_bytes()[..],
        &generation.to_le_bytes(),
        &len.to_le_bytes(),
    ]
    .concat()
}

#[test]
fn forged_descriptors_are_refused_and_the_next_payload_arrives() {
    let _w = util::watchdog(Duration::from_secs(60));
    let (tx, rx) = loan_channel(2, 4096).unwrap();
    let w = wire_of(&tx);
    tx.send_bytes(b"first").unwrap();
    let gen1 = {
        let s = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(s.to_vec(), b"first");
        // Slot 0, generation 1, now held: the word packs (state, generation, pid).
        let word = w
            .mem
            .atomic_u64(64)
            .load(std::sync::atomic::Ordering::Acquire);
        assert_eq!(word & 0xff, 3, "held");
        ((word >> 8) & 0xff_ffff) as u32
    };
    for forged in [
        vec![1, 2, 3],                 // not a descriptor
        descriptor(2, 1, 0),           // no such slot
        descriptor(u32::MAX, 1, 0),    // no such slot
        descriptor(0, gen1, 4097),     // longer than a slot
        descriptor(0, gen1, u64::MAX), // longer than a slot
        descriptor(0, gen1, 5),        // a slot received and given back (replay)
        descriptor(1, 0, 5),           // a slot never sent
        descriptor(0, gen1 + 7, 5),    // another generation
        descriptor(0, 1 << 24, 5),     // a generation that cannot be
    ] {
        w.conn.send_bytes(&forged).unwrap();
        match rx.recv_timeout(WAIT) {
            Err(RecvTimeoutError::Invalid(e)) => {
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{forged:?}: {e}")
            }
            other => panic!("{forged:?} accepted: {:?}", other.map(|s| s.len())),
        }
    }
    tx.send_bytes(b"second").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().to_vec(), b"second");
    // Scribbled control words: loans find no free slot (a typed error, no panic),
    // and a descriptor for a scribbled slot is refused.
    for i in 0..2 {
        w.mem
            .atomic_u64(64 + 8 * i)
            .store(u64::MAX, std::sync::atomic::Ordering::Release);
    }
    assert_eq!(tx.try_loan(1).unwrap_err().kind(), ErrorKind::Timeout);
    w.conn.send_bytes(&descriptor(1, 0xff_ffff, 1)).unwrap();
    assert!(matches!(
        rx.recv_timeout(WAIT),
        Err(RecvTimeoutError::Invalid(_))
    ));
}

/// An end whose pool does not fit its segment is refused when it arrives.
#[test]
fn a_forged_pool_size_is_a_decode_error() {
    let (tx, _rx) = loan_channel(1, 4096).unwrap();
    let w = wire_of(&tx);
    for (slots, slot_size) in [
        (2, 4096),
        (1, 8192),
        (0, 4096),
        (1, 0),
        (1, 100),
        (u64::MAX, u64::MAX),
    ] {
        let forged = Wire {
            slots,
            slot_size,
            ..wire_of(&tx)
        };
        let e = multiproc::ipc::codec::encode(&forged).unwrap();
        let err = multiproc::ipc::codec::decode::<LoanSender>(&e.bytes, e.fds).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{slots} x {slot_size}");
    }
    // The receiving end is refused as a sending end, and the other way round.
    let e = multiproc::ipc::codec::encode(&w).unwrap();
    assert!(multiproc::ipc::codec::decode::<LoanReceiver>(&e.bytes, e.fds).is_err());
}

/// The slot loaned by this process at `generation`'s word, found in the pool.
fn loaned_slot(mem: &SharedMemory, slots: u64) -> (u32, u32) {
    (0..slots as usize)
        .find_map(|i| {
            let w = mem
                .atomic_u64(64 + 8 * i)
                .load(std::sync::atomic::Ordering::Acquire);
            (w & 0xff == 1 && (w >> 32) as u32 == std::process::id())
                .then_some((i as u32, ((w >> 8) & 0xff_ffff) as u32))
        })
        .expect("a slot loaned by this process")
}

/// Sends a descriptor for a slot it loaned and filled, and ends without marking
/// the slot sent (as a sender killed between the two would).
fn send_descriptor_and_exit((tx, w): (LoanSender, Wire)) {
    let mut loan = tx.loan(3).unwrap();
    loan.write(0, b"abc").unwrap();
    let (slot, generation) = loaned_slot(&w.mem, w.slots);
    w.conn.send_bytes(&descriptor(slot, generation, 3)).unwrap();
    // Neither marked sent nor given back: the process ends with it loaned.
    std::mem::forget(loan);
}

/// A descriptor whose slot is not marked sent yet: a receive with a deadline
/// times out and keeps it, the next one takes the slot once it is marked; a
/// sender that died between its descriptor and the mark leaves a slot the
/// receiver takes over.
#[test]
fn a_descriptor_ahead_of_its_mark_waits_for_it() {
    let _w = util::watchdog(Duration::from_secs(60));
    let _s = util::serial();
    let (tx, rx) = loan_channel(2, 4096).unwrap();
    let w = wire_of(&tx);
    let mut loan = tx.loan(5).unwrap();
    let (slot, generation) = loaned_slot(&w.mem, w.slots);
    w.conn.send_bytes(&descriptor(slot, generation, 5)).unwrap();
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    ));
    assert!(matches!(
        rx.try_recv(),
        Err(multiproc::ipc::TryRecvError::Empty)
    ));
    loan.write(0, b"hello").unwrap();
    loan.send().unwrap();
    // The early descriptor takes the slot; the sender's own is then refused.
    assert_eq!(rx.recv_timeout(WAIT).unwrap().to_vec(), b"hello");
    match rx.recv_timeout(WAIT) {
        Err(RecvTimeoutError::Invalid(e)) => assert_eq!(e.kind(), ErrorKind::Corrupt),
        other => panic!("accepted twice: {:?}", other.map(|s| s.len())),
    }

    let child =
        Process::start_with(send_descriptor_and_exit, (copy_of(&tx), wire_of(&tx))).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().to_vec(), b"abc");
    let _ = child.join();
}

/// A [`Connection`]'s wire layout (`Connection`'s own `Serialize`), to forge a
/// sending end with another maximum message size, as another process can.
#[derive(Serialize, Deserialize)]
struct ConnectionWire {
    mem: SharedMemory,
    #[serde(with = "multiproc::codec::fd")]
    sock: std::os::fd::OwnedFd,
    side: u8,
    duplex: bool,
    max_message: u64,
}

/// A loan channel's sending end, its connection laid out.
#[derive(Serialize, Deserialize)]
struct RawSender {
    mem: SharedMemory,
    conn: ConnectionWire,
    slots: u64,
    slot_size: u64,
}

/// Sends a "descriptor" of `n` bytes through `tx`'s pipe with no size limit of its
/// own, then one payload through `tx`.
fn send_long_descriptor((tx, n): (LoanSender, usize)) {
    let e = multiproc::ipc::codec::encode(&tx).unwrap();
    let mut raw: RawSender = multiproc::ipc::codec::decode(&e.bytes, e.fds).unwrap();
    raw.conn.max_message = 1 << 30;
    let e = multiproc::ipc::codec::encode(&raw.conn).unwrap();
    let conn: Connection = multiproc::ipc::codec::decode(&e.bytes, e.fds).unwrap();
    conn.send_bytes(&vec![7u8; n]).unwrap();
    tx.send_bytes(b"after").unwrap();
}

/// A sender that sends a long message where a 16-byte descriptor goes costs the
/// receiver no memory: the message is dropped as it arrives, and the next payload
/// is received.
#[test]
fn a_long_descriptor_costs_the_receiver_no_memory() {
    let _w = util::watchdog(Duration::from_secs(120));
    let _s = util::serial();
    let (tx, rx) = loan_channel(1, 4096).unwrap();
    let probe = util::MemProbe::start();
    let child = Process::start_with(send_long_descriptor, (tx, 256 << 20)).unwrap();
    match rx.recv_timeout(WAIT) {
        Err(RecvTimeoutError::Invalid(e)) => assert_eq!(e.kind(), ErrorKind::Decode, "{e}"),
        other => panic!("a 256 MiB descriptor: {:?}", other.map(|s| s.len())),
    }
    assert_eq!(rx.recv_timeout(WAIT).unwrap().to_vec(), b"after");
    child.join().unwrap();
    probe.check("a 256 MiB descriptor");
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A receive waiting for a slot to be marked sent (its sender stopped, or slow,
/// between its descriptor and the mark) sleeps rather than spins: it uses a small
/// part of a CPU while it waits. (A waiter that spins used 31 % of a CPU at a load
/// of 15 on 2 CPUs, and all of one on a quiet machine; one that sleeps, 0.9 % in a
/// debug build at that load.)
#[test]
fn a_wait_for_the_mark_does_not_spin() {
    let _w = util::watchdog(Duration::from_secs(60));
    let (tx, rx) = loan_channel(1, 4096).unwrap();
    let w = wire_of(&tx);
    let loan = tx.loan(5).unwrap();
    let (slot, generation) = loaned_slot(&w.mem, w.slots);
    w.conn.send_bytes(&descriptor(slot, generation, 5)).unwrap();
    let (cpu, wall) = (thread_cpu(), std::time::Instant::now());
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(2)),
        Err(RecvTimeoutError::Timeout)
    ));
    let (cpu, wall) = (thread_cpu() - cpu, wall.elapsed());
    eprintln!("waiting {wall:?} for the mark took {cpu:?} of CPU");
    assert!(
        cpu < wall / 20,
        "waiting {wall:?} for the mark took {cpu:?} of CPU"
    );
    loan.send().unwrap();
    assert!(rx.recv_timeout(WAIT).is_ok());
}
