//! `SharedMemory` between processes: every start method, attach by name, no leaks.

mod util;

use util::mapped_segments;

use std::sync::atomic::Ordering;
use std::time::Duration;

use multiproc::{ErrorKind, Process, SharedMemory, StartMethod};

fn write_hello(shm: SharedMemory) -> usize {
    shm.write(0, b"hello").unwrap();
    shm.atomic_u64(8).fetch_add(1, Ordering::SeqCst);
    shm.len()
}

#[test]
fn child_writes_by_every_start_method() {
    let _w = util::watchdog(Duration::from_secs(60));
    let shm = SharedMemory::create(4096).unwrap();
    for method in StartMethod::ALL {
        let p = multiproc::process::Builder::new()
            .start_method(method)
            .allow_threads(true)
            .start_with(write_hello, shm.clone())
            .unwrap();
        assert_eq!(p.join().unwrap(), 4096, "{method:?}");
    }
    let mut buf = [0u8; 5];
    shm.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(shm.atomic_u64(8).load(Ordering::SeqCst), 3);
}

fn attach_and_write(name: String) -> bool {
    let shm = SharedMemory::attach(&name).unwrap();
    shm.write(100, b"attached").unwrap();
    // Dropping an attached segment must not destroy it for anyone else.
    drop(shm);
    true
}

#[test]
fn unrelated_process_attaches_by_name() {
    let _w = util::watchdog(Duration::from_secs(60));
    let shm = SharedMemory::create(256).unwrap();
    let p = Process::start_with(attach_and_write, shm.name()).unwrap();
    assert!(p.join().unwrap());
    let mut buf = [0u8; 8];
    shm.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"attached");
}

#[test]
fn bounds_and_bad_names() {
    let shm = SharedMemory::create(16).unwrap();
    assert_eq!(
        shm.write(10, &[0; 7]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(shm.read(usize::MAX, &mut [0; 2]).is_err());
    assert_eq!(
        SharedMemory::create(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        SharedMemory::attach("/proc/self/exe").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        SharedMemory::attach("/proc/self/fd/99999")
            .unwrap_err()
            .kind(),
        ErrorKind::Os
    );
    // A name whose descriptor number now holds another segment is refused.
    let a = SharedMemory::create(16).unwrap();
    let name = a.name();
    drop(a);
    let b = SharedMemory::create(16).unwrap(); // likely reuses the number
    if b.name().split('#').next() == name.split('#').next() {
        assert_eq!(
            SharedMemory::attach(&name).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    assert!(SharedMemory::attach(&b.name()).is_ok());
    let path = b.name().split('#').next().unwrap().to_owned();
    assert!(SharedMemory::attach(&format!("{path}#x")).is_err());
    assert!(
        SharedMemory::attach(&path).is_ok(),
        "a bare path still works"
    );
}

#[test]
#[should_panic(expected = "aligned")]
fn misaligned_atomic_panics() {
    let shm = SharedMemory::create(16).unwrap();
    let _ = shm.atomic_u32(2);
}

fn hold_briefly(shm: SharedMemory) -> u8 {
    let mut b = [0u8];
    shm.read(0, &mut b).unwrap();
    b[0]
}

#[test]
fn nothing_leaks() {
    let _w = util::watchdog(Duration::from_secs(60));
    // Warm up the fork server and the codec so their descriptors are counted.
    Process::start_with(hold_briefly, SharedMemory::create(1).unwrap())
        .unwrap()
        .join()
        .unwrap();
    let (fds, maps) = (util::open_fds(), mapped_segments());
    for _ in 0..5 {
        let shm = SharedMemory::create(1 << 20).unwrap();
        shm.write(0, &[9]).unwrap();
        let again = SharedMemory::attach(&shm.name()).unwrap();
        assert_eq!(mapped_segments(), maps + 2);
        let p = Process::start_with(hold_briefly, again.clone()).unwrap();
        assert_eq!(p.join().unwrap(), 9);
    }
    assert_eq!(util::open_fds(), fds);
    assert_eq!(mapped_segments(), maps);
}

fn add_under_lock(v: multiproc::Value<i64>) {
    for _ in 0..10_000 {
        let _g = v.get_lock().unwrap().lock().unwrap();
        v.set(v.get() + 1);
    }
}

fn add_atomically(a: multiproc::Array<u64>) {
    for i in 0..a.len() {
        for _ in 0..1000 {
            a.fetch_add(i, 1);
        }
    }
}

#[test]
fn value_and_array_across_processes() {
    let _w = util::watchdog(Duration::from_secs(60));
    let v = multiproc::Value::with_lock(0i64).unwrap();
    let a = multiproc::Array::<u64>::from_slice(&[0, 10, 20]).unwrap();
    let kids: Vec<Process<()>> = (0..2)
        .map(|_| Process::start_with(add_under_lock, v.clone()).unwrap())
        .collect();
    let akids: Vec<Process<()>> = (0..2)
        .map(|_| Process::start_with(add_atomically, a.clone()).unwrap())
        .collect();
    add_under_lock(v.clone());
    for k in kids.into_iter().chain(akids) {
        k.join().unwrap();
    }
    assert_eq!(v.get(), 30_000);
    assert_eq!(a.to_vec(), [2000, 2010, 2020]);
    assert_eq!(a.get(3), None);
    assert_eq!(v.compare_exchange(30_000, -1), Ok(30_000));
    assert_eq!(v.load(), -1);
}

/// Found by the `codec` fuzz target: a `Value` or an `Array` received from another
/// process whose segment is too small for what it claims (a one-byte segment, a
/// length past the end) decoded, and its first `get` panicked.
#[test]
fn forged_value_and_array_segments_are_decode_errors() {
    use multiproc::ipc::codec;
    use multiproc::{Array, Lock, Value};
    #[derive(serde::Serialize)]
    struct ForgedValue<'a> {
        mem: &'a SharedMemory,
        lock: Option<Lock>,
    }
    #[derive(serde::Serialize)]
    struct ForgedArray<'a> {
        mem: &'a SharedMemory,
        len: usize,
        lock: Option<Lock>,
    }
    let one = SharedMemory::create(1).unwrap();
    let e = codec::encode(&ForgedValue {
        mem: &one,
        lock: None,
    })
    .unwrap();
    let err = codec::decode::<Value<u64>>(&e.bytes, e.fds).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let page = SharedMemory::create(4096).unwrap();
    for len in [1025, usize::MAX / 2] {
        let e = codec::encode(&ForgedArray {
            mem: &page,
            len,
            lock: None,
        })
        .unwrap();
        let err = codec::decode::<Array<u32>>(&e.bytes, e.fds).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "length {len}");
    }
    // What fits still decodes, and reads the same memory.
    let e = codec::encode(&ForgedArray {
        mem: &page,
        len: 1024,
        lock: None,
    })
    .unwrap();
    let a = codec::decode::<Array<u32>>(&e.bytes, e.fds).unwrap();
    page.write(4092, &7u32.to_ne_bytes()).unwrap();
    assert_eq!(a.get(1023), Some(7));
    let v = Value::with_lock(5u64).unwrap();
    let e = codec::encode(&v).unwrap();
    let back = codec::decode::<Value<u64>>(&e.bytes, e.fds).unwrap();
    assert_eq!(back.get(), 5);
    assert!(back.get_lock().is_some());
}

/// A segment received from another process must be sealed against shrinking: the
/// sender of an unsealed memfd could truncate it while we map it, and our next access
/// would die of SIGBUS. Our own segments are sealed, so they still pass.
#[test]
fn an_unsealed_segment_from_another_process_is_refused() {
    use multiproc::ipc::codec;
    use std::os::fd::BorrowedFd;
    #[derive(serde::Serialize)]
    struct ForgedShm<'a> {
        #[serde(with = "multiproc::ipc::codec::fd")]
        fd: BorrowedFd<'a>,
        len: u64,
    }
    let fd = rustix::fs::memfd_create("multiproc-shm", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    std::fs::File::from(fd.try_clone().unwrap())
        .set_len(4096)
        .unwrap();
    let e = codec::encode(&ForgedShm {
        fd: std::os::fd::AsFd::as_fd(&fd),
        len: 4096,
    })
    .unwrap();
    let err = codec::decode::<SharedMemory>(&e.bytes, e.fds).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    // One of ours (sealed) still decodes.
    let ours = SharedMemory::create(4096).unwrap();
    let e = codec::encode(&ours).unwrap();
    assert_eq!(
        codec::decode::<SharedMemory>(&e.bytes, e.fds)
            .unwrap()
            .len(),
        4096
    );
}
