//! The codec (`ipc/codec.rs`): arbitrary bytes decoded as the values processes send
//! each other, plain ones and those that own descriptors (shared memory, values,
//! locks, pipe ends, queues, a barrier), with a few real descriptors beside the
//! bytes: a memfd whose size and contents the fuzzer picks (its forged ring and
//! control words), a socket, a pipe. A decoded pipe end or queue is then used once
//! without waiting, so the forged memory behind it is read too.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use multiproc::ipc::codec;
use multiproc::ipc::{Connection, JoinableQueue};
use multiproc::{
    Array, Barrier, Event, Lock, Queue, RLock, RemotePanic, Semaphore, SharedMemory, StartMethod,
    Value,
};
use serde::de::DeserializeOwned;

#[derive(Debug, Arbitrary)]
struct Input {
    kind: u8,
    bytes: Vec<u8>,
    /// Descriptors beside the bytes (a memfd, a socket, a pipe, another memfd).
    fds: u8,
    /// The memfd's size (plus one) and contents.
    mem_len: u16,
    mem: Vec<u8>,
    /// Write a valid ring capacity (2^(7+n)) at these offsets of the memfd, so
    /// forged rings get past `Ring::open` and into their records.
    caps: Vec<(u16, u8)>,
}

fn memfd(len: usize, bytes: &[u8], caps: &[(u16, u8)]) -> OwnedFd {
    let m = SharedMemory::create(len).unwrap();
    let n = bytes.len().min(len);
    m.write(0, &bytes[..n]).unwrap();
    for &(off, log) in caps {
        let off = usize::from(off) & !7;
        let cap = 1u64 << (7 + log % 8);
        let _ = m.write(off, &cap.to_le_bytes());
    }
    m.as_fd().try_clone_to_owned().unwrap()
}

fn fds(input: &Input) -> Vec<OwnedFd> {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(b);
    let (r, w) = std::io::pipe().unwrap();
    drop(w);
    let all = [
        memfd(usize::from(input.mem_len) + 1, &input.mem, &input.caps),
        a.into(),
        r.into(),
        memfd(4096, &[], &[]),
    ];
    all.into_iter().take(usize::from(input.fds % 5)).collect()
}

fn dec<T: DeserializeOwned>(input: &Input) -> Option<T> {
    codec::decode::<T>(&input.bytes, fds(input)).ok()
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
enum Mixed {
    A(u8, i64, f64),
    B { s: String, v: Vec<Option<char>> },
    C(Box<Mixed>),
    D(HashMap<String, Vec<u32>>, BTreeMap<u64, (bool, u16)>),
    E,
}

fuzz_target!(|input: Input| {
    match input.kind % 20 {
        0 => drop(dec::<Vec<u8>>(&input)),
        1 => drop(dec::<String>(&input)),
        2 => drop(dec::<(u64, String, Option<i32>)>(&input)),
        3 => drop(dec::<Vec<Mixed>>(&input)),
        4 => drop(dec::<RemotePanic>(&input)),
        5 => drop(dec::<StartMethod>(&input)),
        6 => drop(dec::<SharedMemory>(&input)),
        7 => {
            if let Some(v) = dec::<Value<u64>>(&input) {
                v.set(v.get().wrapping_add(1));
            }
        }
        8 => {
            if let Some(a) = dec::<Array<u32>>(&input) {
                let _ = a.get(0);
                let _ = a.get(a.len().saturating_sub(1));
            }
        }
        9 => {
            if let Some(c) = dec::<Connection>(&input) {
                let _ = c.try_recv::<Vec<u8>>();
                let _ = c.try_send_bytes(b"fuzz");
            }
        }
        10 => {
            if let Some(q) = dec::<Queue<Vec<u8>>>(&input) {
                let _ = q.try_get();
                let _ = q.try_put(vec![1, 2, 3]);
            }
        }
        11 => {
            if let Some(q) = dec::<JoinableQueue<u8>>(&input) {
                let _ = q.try_get();
            }
        }
        12 => {
            if let Some(l) = dec::<Lock>(&input) {
                drop(l.try_lock());
            }
        }
        13 => drop(dec::<RLock>(&input)),
        14 => drop(dec::<Semaphore>(&input)),
        15 => drop(dec::<Event>(&input).map(|e| e.is_set())),
        16 => drop(dec::<Barrier>(&input)),
        17 => {
            multiproc::__fuzz::outcome::<Vec<String>>(&input.bytes, fds(&input));
        }
        18 => drop(dec::<Vec<SharedMemory>>(&input)),
        _ => drop(dec::<(Connection, Queue<u8>)>(&input)),
    }
});
