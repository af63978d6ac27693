//! What CPython's `_test_multiprocessing.py` checks of `Value`, `Array` and
//! `shared_memory.SharedMemory`, asked of multiproc's types across processes.

mod util;

use util::builder;

use std::time::Duration;

use multiproc::{Array, ErrorKind, Lock, Process, SharedMemory, StartMethod, Value};

const LIMIT: Duration = Duration::from_secs(60);

// ---- Value ----

type Values = (Value<i32>, Value<f64>, Value<i16>, Value<u8>);

fn set_values(v: Values) {
    v.0.set(24234);
    v.1.set(-4.25);
    v.2.set(234);
    v.3.set(b'y');
}

#[test]
fn values_written_by_a_child_are_seen_by_the_parent() {
    let _w = util::watchdog(LIMIT);
    // _TestValue.test_value / test_rawvalue: codes i, d, h, c.
    for method in StartMethod::ALL {
        for locked in [false, true] {
            let v: Values = if locked {
                (
                    Value::with_lock(4343).unwrap(),
                    Value::with_lock(3.625).unwrap(),
                    Value::with_lock(-232).unwrap(),
                    Value::with_lock(b'x').unwrap(),
                )
            } else {
                (
                    Value::new(4343).unwrap(),
                    Value::new(3.625).unwrap(),
                    Value::new(-232).unwrap(),
                    Value::new(b'x').unwrap(),
                )
            };
            assert_eq!(
                (v.0.get(), v.1.get(), v.2.get(), v.3.get()),
                (4343, 3.625, -232, b'x')
            );
            builder(method)
                .start_with(set_values, v.clone())
                .unwrap()
                .join()
                .unwrap();
            assert_eq!(
                (v.0.get(), v.1.get(), v.2.get(), v.3.get()),
                (24234, -4.25, 234, b'y'),
                "{method:?}"
            );
        }
    }
}

#[test]
fn value_locks_own_none_or_given() {
    // _TestValue.test_getobj_getlock.
    assert!(Value::with_lock(5i32).unwrap().get_lock().is_some());
    assert!(Value::new(5i32).unwrap().get_lock().is_none());
    let lock = Lock::new().unwrap();
    let v = Value::new(5i32).unwrap().locked_by(lock.clone());
    let g = lock.lock().unwrap();
    // The value's lock *is* the given one.
    assert!(v.get_lock().unwrap().is_locked());
    assert!(v.clone().get_lock().unwrap().try_lock().is_err());
    drop(g);
    assert!(!v.get_lock().unwrap().is_locked());
}

fn add_under_lock((v, n): (Value<i64>, i64)) {
    for _ in 0..n {
        let _g = v.get_lock().unwrap().lock().unwrap();
        v.set(v.get() + 1);
    }
}

#[test]
fn a_given_lock_travels_to_children_with_the_value() {
    let _w = util::watchdog(LIMIT);
    let lock = Lock::new().unwrap();
    let v = Value::new(0i64).unwrap().locked_by(lock.clone());
    let kids: Vec<_> = (0..2)
        .map(|_| Process::start_with(add_under_lock, (v.clone(), 500)).unwrap())
        .collect();
    add_under_lock((v.clone(), 500));
    for k in kids {
        k.join().unwrap();
    }
    assert_eq!(v.get(), 1500);
    assert!(!lock.is_locked());
}

// ---- Array ----

const SEQ: [i32; 10] = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831];

fn running_sum(a: Array<i32>) {
    for i in 1..a.len() {
        a.set(i, a.get(i).unwrap() + a.get(i - 1).unwrap());
    }
}

#[test]
fn array_indexing_slicing_and_a_child_s_writes() {
    let _w = util::watchdog(LIMIT);
    // _TestArray.test_array / test_rawarray.
    for locked in [false, true] {
        let mut seq = SEQ.to_vec();
        let arr = Array::from_slice(&seq).unwrap();
        let arr = if locked {
            arr.locked_by(Lock::new().unwrap())
        } else {
            arr
        };
        assert_eq!(arr.get_lock().is_some(), locked);
        assert_eq!(arr.len(), seq.len());
        assert_eq!(arr.get(3), Some(seq[3]));
        assert_eq!(arr.get(10), None);
        assert_eq!(arr.get_range(2..7).unwrap(), &seq[2..7]);
        // arr[4:8] = seq[4:8] = [1, 2, 3, 4]
        arr.set_range(4, &[1, 2, 3, 4]);
        seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(arr.get_range(..).unwrap(), seq);
        assert_eq!(arr.to_vec(), seq);
        for i in 1..seq.len() {
            seq[i] += seq[i - 1];
        }
        Process::start_with(running_sum, arr.clone())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(arr.to_vec(), seq);
    }
}

#[test]
fn array_ranges_out_of_bounds() {
    let arr = Array::<u16>::from_slice(&[1, 2, 3]).unwrap();
    assert_eq!(arr.get_range(0..0), Some(vec![]));
    assert_eq!(arr.get_range(3..), Some(vec![]));
    assert_eq!(arr.get_range(1..=2), Some(vec![2, 3]));
    assert_eq!(arr.get_range(..4), None);
    let (from, to) = (2, 1);
    assert_eq!(arr.get_range(from..to), None);
    arr.set_range(3, &[]);
    assert!(std::panic::catch_unwind(|| arr.set_range(2, &[9, 9])).is_err());
    assert!(std::panic::catch_unwind(|| arr.set(3, 0)).is_err());
    assert_eq!(arr.to_vec(), [1, 2, 3]);
}

#[test]
fn array_from_size_is_zeroed() {
    // _TestArray.test_array_from_size (issue #11675), three times over.
    for _ in 0..3 {
        let arr = Array::<i32>::new(10).unwrap();
        assert_eq!(arr.len(), 10);
        assert_eq!(arr.to_vec(), [0; 10]);
        let r: Vec<i32> = (0..10).collect();
        arr.copy_from_slice(&r);
        assert_eq!(arr.to_vec(), r);
    }
    let empty = Array::<i32>::new(0).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.to_vec(), Vec::<i32>::new());
    assert!(Array::<u8>::with_lock(3).unwrap().get_lock().is_some());
    assert!(Array::<u8>::new(3).unwrap().get_lock().is_none());
}

// ---- SharedMemory ----

fn write_at(args: (SharedMemory, usize, Vec<u8>)) {
    let (shm, at, bytes) = args;
    shm.write(at, &bytes).unwrap();
}

fn attach_and_read(args: (String, usize)) -> Vec<u8> {
    let (name, len) = args;
    let shm = SharedMemory::attach(&name).unwrap();
    let mut buf = vec![0; len];
    shm.read(0, &mut buf).unwrap();
    // Writes through an attached copy are seen by the creator too.
    shm.write(len, b"!").unwrap();
    buf
}

#[test]
fn shared_memory_basics() {
    let _w = util::watchdog(LIMIT);
    // _TestSharedMemory.test_shared_memory_basics, with the name chosen by the
    // library (segments are anonymous memfds: there is nothing to unlink).
    let shm = SharedMemory::create(512).unwrap();
    assert!(shm.len() >= 512);
    assert!(!shm.name().is_empty());
    assert_eq!(shm.clone().name(), shm.name());
    shm.write(0, b"howdy").unwrap();
    let mut buf = [0; 5];
    shm.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"howdy");

    // Attach by name, here and from a child.
    let same = SharedMemory::attach(&shm.name()).unwrap();
    assert_eq!(same.len(), shm.len());
    same.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"howdy");
    let got = Process::start_with(attach_and_read, (shm.name(), 5))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(got, b"howdy");
    let mut bang = [0; 1];
    shm.read(5, &mut bang).unwrap();
    assert_eq!(&bang, b"!");

    // A child's writes through a passed segment.
    for method in StartMethod::ALL {
        builder(method)
            .start_with(write_at, (shm.clone(), 100, b"child".to_vec()))
            .unwrap()
            .join()
            .unwrap();
        let mut c = [0; 5];
        shm.read(100, &mut c).unwrap();
        assert_eq!(&c, b"child", "{method:?}");
    }

    // Size 0 is refused (Python: ValueError); a bad name fails to attach (Python:
    // FileNotFoundError).
    assert_eq!(
        SharedMemory::create(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(SharedMemory::attach("/proc/self/fd/999999#1").is_err());
    assert!(SharedMemory::attach("no-such-segment").is_err());
    assert!(SharedMemory::attach("/etc/hostname").is_err());
    // Out-of-range accesses are errors, not crashes.
    assert_eq!(
        shm.write(510, b"xyz").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(shm.read(usize::MAX, &mut buf).is_err());
}

#[test]
fn memory_lives_while_any_user_has_it() {
    let _w = util::watchdog(LIMIT);
    // Python needs unlink(); here the last handle frees it. A handle dropped in
    // one place leaves the others working.
    let shm = SharedMemory::create(64).unwrap();
    let other = SharedMemory::attach(&shm.name()).unwrap();
    drop(shm);
    other.write(0, b"still here").unwrap();
    let mut buf = [0; 10];
    other.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"still here");
}
