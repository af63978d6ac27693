//! White-box tests: chunk sizing, result expansion, slot completion rules.

use std::sync::Arc;

use super::feed::gather;
use super::handle::auto_chunksize;
use super::slot::{Completion, Slot};
use super::task::{expand, single};
use crate::error::{Error, ErrorKind, RemotePanic};
use crate::ipc::codec;
use crate::pool::process::chunk::{apply_each, ChunkOut};

#[test]
fn chunk_sizes() {
    // Short inputs: one item per task, so heavy tasks balance.
    assert_eq!(auto_chunksize(40, 2), 1);
    assert_eq!(auto_chunksize(64, 2), 1);
    // Long inputs: about 64 chunks (more with many workers).
    assert_eq!(auto_chunksize(1_000_000, 2), 15_625);
    assert_eq!(auto_chunksize(1_000_000, 32), 3_907);
    assert_eq!(auto_chunksize(0, 4), 1);
}

#[test]
fn apply_each_catches_every_panic_and_keeps_going() {
    crate::panic::install_hook();
    let out = apply_each((0u32..10).collect(), |x| {
        assert!(x % 4 != 1, "bad {x}");
        x * 10
    });
    assert_eq!(out.values, vec![0, 20, 30, 40, 60, 70, 80]);
    let at: Vec<u32> = out.panics.iter().map(|(i, _)| *i).collect();
    assert_eq!(at, vec![1, 5, 9]);
    assert_eq!(out.panics[1].1.message(), "bad 5");
    let items = expand(Ok(out), 10);
    assert!(items[5].as_ref().unwrap_err().is_panic());
    assert_eq!(*items[6].as_ref().unwrap(), 60);
}

#[test]
fn a_chunk_failure_reaches_every_item() {
    let e = Error::new(ErrorKind::WorkerDied).with_message("worker pid 7");
    let items = expand::<u8>(Err(e), 3);
    assert_eq!(items.len(), 3);
    for r in items {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied);
        assert!(e.to_string().contains("worker pid 7"));
    }
}

#[test]
fn first_completion_wins() {
    let slot = Slot::<ChunkOut<u8>>::new(codec::decode::<ChunkOut<u8>>, None, None);
    slot.fail(Error::new(ErrorKind::Timeout));
    slot.deliver(Ok(ChunkOut {
        values: vec![1],
        panics: Vec::new(),
    }));
    assert!(slot.is_done());
    assert_eq!(slot.join().unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(slot.join().unwrap_err().kind(), ErrorKind::AlreadyJoined);
}

#[test]
fn raw_values_decode_on_join_and_callbacks_see_them_first() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s2 = Arc::clone(&seen);
    let slot = Slot::<ChunkOut<u64>>::new(
        codec::decode::<ChunkOut<u64>>,
        Some(Box::new(move |r| {
            *s2.lock().unwrap() = Some(r.as_ref().map(|c| c.values.clone()).ok());
            r
        })),
        None,
    );
    let bytes = codec::encode(&ChunkOut::<u64> {
        values: vec![5, 6],
        panics: vec![(2, RemotePanic::new("p".into(), None, None))],
    })
    .unwrap()
    .bytes;
    slot.deliver_raw(bytes, Vec::new());
    assert_eq!(*seen.lock().unwrap(), Some(Some(vec![5, 6])));
    let out = slot.join().unwrap();
    assert_eq!(out.panics[0].1.message(), "p");
}

/// A chunk's answer whose values and panics do not account for exactly its items
/// (a worker process's bytes, forged or buggy) is an error for every item: never a
/// shorter or longer list of results, never a value missing from `map`'s list
/// without an error, never a panic in `apply`.
#[test]
fn a_chunk_answer_with_the_wrong_count_is_an_error_for_each_item() {
    let p = || RemotePanic::new("p".into(), None, None);
    let out = |values: Vec<u8>, panics: Vec<(u32, RemotePanic)>| ChunkOut { values, panics };
    for (o, n) in [
        (out(vec![1, 2], Vec::new()), 3),
        (out(vec![1, 2, 3, 4], Vec::new()), 3),
        (out(Vec::new(), Vec::new()), 1),
        (out(vec![1], vec![(0, p())]), 3),
        (out(vec![1, 2], vec![(0, p())]), 2),
    ] {
        let what = format!(
            "{} values, {} panics, {n} items",
            o.values.len(),
            o.panics.len()
        );
        let items = expand(Ok(o), n);
        assert_eq!(items.len(), n, "{what}");
        for r in items {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Decode, "{what}");
        }
    }
    // `apply`'s answer without its value.
    assert_eq!(
        single(Ok(out(Vec::new(), Vec::new()))).unwrap_err().kind(),
        ErrorKind::Decode
    );
    // `map`: a chunk of 2 items that came back with 1 value, as a value or as the
    // bytes a worker process sent (decoded into the list, or not).
    let short = || out(vec![7], Vec::new());
    let value = Slot::<ChunkOut<u8>>::new(codec::decode::<ChunkOut<u8>>, None, None);
    value.deliver(Ok(short()));
    let r = gather(&[(value, 2)], None, |_| {});
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Decode, "as a value");
    for into in [
        None,
        Some(super::process::chunk::decode_values_into::<u8> as _),
    ] {
        let raw = Slot::<ChunkOut<u8>>::new(codec::decode::<ChunkOut<u8>>, None, None);
        raw.deliver_raw(codec::encode(&short()).unwrap().bytes, Vec::new());
        let r = gather(&[(raw, 2)], into, |_| {});
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Decode, "as bytes");
    }
}
