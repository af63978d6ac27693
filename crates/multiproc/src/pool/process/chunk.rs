//! The chunk protocol of a pool's workers: a chunk of arguments in, the chunk's
//! results (values and per-item panics) out.
//!
//! A pool's persistent workers run many chunks of many functions. The parent sends,
//! with each chunk, an [`EntryRef`] made by [`chunk_entry_ref`]; the worker resolves it
//! with [`resolve_chunk`] to a [`ChunkEntry`], the type-erased `chunk_trampoline` for
//! that function, which decodes a `Vec<A>`, applies the function to each item
//! (catching a panic per item) and encodes a [`ChunkOut<R>`]. The thread backend runs
//! the same [`apply_each`] on its own threads, and the cluster backend sends the same
//! entries by name.
//!
//! # Safety
//!
//! One `unsafe` block: [`resolve_chunk`] turns the address of a function that
//! [`identity::address`] found (after checking that this process runs the same
//! executable) back into a [`ChunkEntry`]. It is sound because only
//! [`chunk_entry_ref`] makes the references this protocol carries, from a function of
//! exactly that type.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::RemotePanic;
use crate::identity::{self, BinaryToken, EntryRef};
use crate::ipc::codec;
use crate::process::outcome::FailKind;

/// A type-erased pool entry: decodes a chunk of arguments (`Vec<A>`) from `arg`,
/// applies the function to each item, catching a panic per item, and appends the
/// encoded [`ChunkOut<R>`] to `out`, returning the descriptors the results own.
///
/// A pool's persistent workers run many chunks of many functions; this is what a
/// [`EntryRef`] made by [`chunk_entry_ref`] resolves to.
pub(crate) type ChunkEntry =
    fn(&[u8], Vec<OwnedFd>, &mut Vec<u8>) -> Result<Vec<OwnedFd>, (FailKind, String)>;

/// The results of one chunk: the values of the items that returned, in order, and the
/// panics of the others with their index in the chunk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkOut<R> {
    pub(crate) values: Vec<R>,
    pub(crate) panics: Vec<(u32, RemotePanic)>,
}

/// Returns the chunk entry reference for function type `F` (see [`ChunkEntry`]).
pub(crate) fn chunk_entry_ref<F, A, R>() -> EntryRef
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    const { identity::assert_zero_sized::<F>() };
    let entry: ChunkEntry = chunk_trampoline::<F, A, R>;
    EntryRef::Offset(identity::offset_of(entry as usize))
}

/// Resolves a reference made by [`chunk_entry_ref`] in a parent running the
/// executable `token` names; `None` if this process runs a different executable.
pub(crate) fn resolve_chunk(entry: EntryRef, token: &BinaryToken) -> Option<ChunkEntry> {
    let addr = identity::address(entry, token)?;
    // SAFETY: as in `process::entry::resolve`: `address` checked the token, so this process
    // runs the same image as the parent, where `entry` was made by `chunk_entry_ref`
    // from a function of type `ChunkEntry`; the same offset here is that function. The
    // pool's protocol sends chunk references only to `resolve_chunk`. A `fn` pointer and
    // a `usize` have the same size and the address is non-null code.
    Some(unsafe { std::mem::transmute::<usize, ChunkEntry>(addr) })
}

/// Applies the zero-sized `F` to every item of a chunk, catching a panic per item.
pub(crate) fn apply_chunk<F, A, R>(items: Vec<A>) -> ChunkOut<R>
where
    F: Fn(A) -> R,
{
    apply_each(items, identity::conjure::<F, A, R>())
}

/// Applies `f` to every item, catching a panic per item.
///
/// The items run in one tight `extend` (which the compiler can vectorize), under one
/// `catch_unwind`; after a panic the loop resumes at the next item. The index of the
/// item that panicked is the number of items consumed before it, values and panics.
pub(crate) fn apply_each<F, A, R>(items: Vec<A>, f: F) -> ChunkOut<R>
where
    F: Fn(A) -> R,
{
    let mut values = Vec::with_capacity(items.len());
    let mut panics = Vec::new();
    let mut it = items.into_iter();
    loop {
        match crate::panic::catch(|| values.extend(it.by_ref().map(&f))) {
            Ok(()) => break,
            Err(p) => {
                let at = values.len() + panics.len();
                panics.push((at as u32, p));
            }
        }
    }
    ChunkOut { values, panics }
}

/// The monomorphized chunk entry for `F(A) -> R`.
fn chunk_trampoline<F, A, R>(
    arg: &[u8],
    fds: Vec<OwnedFd>,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, (FailKind, String)>
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let items: Vec<A> = match crate::panic::catch(|| codec::decode(arg, fds)) {
        Ok(r) => r.map_err(|e| (FailKind::Argument, e.to_string()))?,
        Err(p) => {
            let message = format!("the argument's Deserialize panicked at {p}");
            return Err((FailKind::Argument, message));
        }
    };
    let result = apply_chunk::<F, A, R>(items);
    encode_chunk(result, out)
}

/// Appends the encoded `result` to `out`. A result whose `Serialize` panics is that
/// item's panic, as if the function had panicked (the chunk's other items keep their
/// values), rather than an unwinding that would end the worker. Returns the
/// descriptors the results own.
fn encode_chunk<R: Serialize>(
    result: ChunkOut<R>,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, (FailKind, String)> {
    let at = out.len();
    let first = crate::panic::catch(|| codec::encode_into(&result, out));
    let (result, encoded) = match first {
        Ok(r) => (result, r),
        Err(_) => {
            out.truncate(at);
            let result = isolate_panics(result);
            match crate::panic::catch(|| codec::encode_into(&result, out)) {
                Ok(r) => (result, r),
                Err(p) => {
                    // A `Serialize` that panics only some of the time: every item of
                    // the chunk gets the panic.
                    out.truncate(at);
                    let n = result.values.len() + result.panics.len();
                    discard(result);
                    let all = ChunkOut::<R> {
                        values: Vec::new(),
                        panics: (0..n as u32).map(|i| (i, p.clone())).collect(),
                    };
                    let r = codec::encode_into(&all, out);
                    (all, r)
                }
            }
        }
    };
    discard(result);
    encoded.map_err(|e| (FailKind::Result, e.to_string()))
}

/// Moves every value whose `Serialize` panics to the chunk's panics, at its index.
fn isolate_panics<R: Serialize>(result: ChunkOut<R>) -> ChunkOut<R> {
    let ChunkOut { values, panics } = result;
    let n = values.len() + panics.len();
    let mut old = panics.into_iter().peekable();
    let mut rest = values.into_iter();
    let mut out = ChunkOut {
        values: Vec::with_capacity(n),
        panics: Vec::new(),
    };
    for i in 0..n as u32 {
        if old.peek().is_some_and(|(at, _)| *at == i) {
            out.panics.extend(old.next());
            continue;
        }
        let Some(v) = rest.next() else { break };
        match crate::panic::catch(|| codec::encode(&v)) {
            Ok(_) => out.values.push(v),
            Err(p) => {
                discard(v);
                out.panics.push((i, p));
            }
        }
    }
    out
}

/// Drops `v`, containing a panic in its `Drop` (a worker serves on after it).
fn discard<T>(v: T) {
    let _ = crate::panic::catch(move || drop(v));
}
