//! White-box tests: chunk sizing, result expansion, slot completion rules.

use std::sync::Arc;

use super::handle::auto_chunksize;
use super::slot::{Completion, Slot};
use super::task::expand;
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
