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

use std::fmt;
use std::os::fd::OwnedFd;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::flat;
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

/// Decodes a [`ChunkOut<R>`] that a worker sent for a chunk of `n` items, appending
/// its values to `out` instead of a `Vec` of their own (a `map` collects them there
/// anyway: this saves a copy of every value and a fresh buffer per chunk); returns
/// the chunk's panics. The bytes are another process's: a chunk that claims more
/// than `n` values is a `Decode` error once `n` are read, and a `Deserialize` that
/// panics is an error too. On an error `out` may hold some of the chunk's values.
pub(crate) fn decode_values_into<R: DeserializeOwned>(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    n: usize,
    out: &mut Vec<R>,
) -> crate::Result<Vec<(u32, RemotePanic)>> {
    // Plain numbers first (`flat`), then the panics with the codec; anything else
    // with the codec alone.
    let start = out.len();
    match crate::panic::catch(|| flat::decode(bytes, n, out)) {
        Ok(Some(at)) => {
            let rest = &bytes[at..];
            return crate::panic::catch(move || codec::decode(rest, fds))
                .unwrap_or_else(|p| Err(crate::Error::from_panic(p)));
        }
        Ok(None) => {}
        // A `Deserialize` that panicked: the codec reports it.
        Err(_) => out.truncate(start),
    }
    let seed = ChunkInto { out, max: n };
    crate::panic::catch(move || codec::decode_seed(bytes, fds, seed))
        .unwrap_or_else(|p| Err(crate::Error::from_panic(p)))
}

/// Deserializes a [`ChunkOut`] (a struct: its values, then its panics), appending the
/// values to `out`; its value is the panics.
struct ChunkInto<'a, R> {
    out: &'a mut Vec<R>,
    max: usize,
}

impl<'de, R: Deserialize<'de>> DeserializeSeed<'de> for ChunkInto<'_, R> {
    type Value = Vec<(u32, RemotePanic)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_struct("ChunkOut", &["values", "panics"], self)
    }
}

impl<'de, R: Deserialize<'de>> Visitor<'de> for ChunkInto<'_, R> {
    type Value = Vec<(u32, RemotePanic)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chunk's values and panics")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let values = ValuesInto {
            out: self.out,
            max: self.max,
        };
        seq.next_element_seed(values)?
            .ok_or_else(|| de::Error::invalid_length(0, &"a chunk's values and panics"))?;
        seq.next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &"a chunk's values and panics"))
    }
}

/// Deserializes a sequence of at most `max` values, appending them to `out`.
struct ValuesInto<'a, R> {
    out: &'a mut Vec<R>,
    max: usize,
}

impl<'de, R: Deserialize<'de>> DeserializeSeed<'de> for ValuesInto<'_, R> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, R: Deserialize<'de>> Visitor<'de> for ValuesInto<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {} values", self.max)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        // At most `max` values are read: with zero-sized values (which read no
        // bytes) a forged length would otherwise loop as long as it says.
        let mut left = self.max;
        while let Some(v) = seq.next_element()? {
            if left == 0 {
                return Err(de::Error::invalid_length(self.max + 1, &self));
            }
            left -= 1;
            self.out.push(v);
        }
        Ok(())
    }
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
    let mut flat_items = Vec::new();
    if fds.is_empty() {
        match crate::panic::catch(|| flat::decode(arg, usize::MAX, &mut flat_items)) {
            Ok(Some(_)) => {
                let result = apply_chunk::<F, A, R>(flat_items);
                return encode_chunk(result, out);
            }
            Ok(None) => {}
            // A `Deserialize` that panicked: the codec reports it.
            Err(_) => flat_items = Vec::new(),
        }
    }
    drop(flat_items);
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
    // Plain numbers (`flat`: a `ChunkOut` is its values, then its panics).
    if crate::panic::catch(|| flat::encode(&result.values, out)).unwrap_or(false) {
        if let Ok(Ok(fds)) = crate::panic::catch(|| codec::encode_into(&result.panics, out)) {
            discard(result);
            return Ok(fds);
        }
    }
    out.truncate(at);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded<T: Serialize>(v: &T) -> Vec<u8> {
        codec::encode(v).unwrap().bytes
    }

    #[test]
    fn decode_values_into_appends_the_values_and_returns_the_panics() {
        let p = RemotePanic::new("boom".into(), None, None);
        let out = ChunkOut {
            values: vec![5u64, 6, 7],
            panics: vec![(1, p.clone())],
        };
        let mut list = vec![1u64, 2];
        let panics = decode_values_into(&encoded(&out), Vec::new(), 4, &mut list).unwrap();
        assert_eq!(list, [1, 2, 5, 6, 7]);
        assert_eq!(panics, [(1, p)]);
    }

    /// A worker's answer that claims more values than its chunk had items is an
    /// error after at most that many are read: with zero-sized values (a `map` of a
    /// function returning `()`) a forged count of 2^62 would otherwise loop without
    /// reading (serde's `Vec` decoding, the path `map` took before, does).
    #[test]
    fn a_chunk_with_more_values_than_items_is_a_decode_error() {
        let mut bytes = Vec::new();
        postcard_varint(&mut bytes, 1 << 62);
        postcard_varint(&mut bytes, 0);
        let mut list: Vec<()> = Vec::new();
        let e = decode_values_into(&bytes, Vec::new(), 10, &mut list).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Decode, "{e}");
        assert!(list.len() <= 10);
        let out = ChunkOut::<u32> {
            values: vec![1, 2, 3],
            panics: Vec::new(),
        };
        let mut list: Vec<u32> = Vec::new();
        let e = decode_values_into(&encoded(&out), Vec::new(), 2, &mut list).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Decode, "{e}");
    }

    #[test]
    fn truncated_or_garbage_chunks_are_errors_not_panics() {
        let out = ChunkOut::<String> {
            values: vec!["a".into(), "bc".into()],
            panics: vec![(2, RemotePanic::new("x".into(), None, None))],
        };
        let bytes = encoded(&out);
        for cut in 0..bytes.len() {
            let mut list = Vec::new();
            let r = decode_values_into::<String>(&bytes[..cut], Vec::new(), 3, &mut list);
            assert_eq!(
                r.unwrap_err().kind(),
                crate::ErrorKind::Decode,
                "cut at {cut}"
            );
        }
    }

    /// postcard's varint of `v`.
    fn postcard_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
}
