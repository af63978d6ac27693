//! How a child finds the function to run: an offset from an anchor in the same binary.
//!
//! A closure cannot be sent to another process, but its *code* is already there when
//! the child runs the same executable. For a function type `F` (a `fn` item or a
//! closure that captures nothing, so a zero-sized type) multiproc instantiates a
//! type-erased [`Entry`] trampoline, `trampoline::<F, A, R>`, that decodes an `A`,
//! conjures the zero-sized `F`, calls it and encodes the outcome. The parent sends the
//! trampoline's address as an offset from [`anchor`]; the child adds its own address of
//! `anchor`. Both addresses move together under ASLR because they are in one image.
//!
//! What makes this safe:
//! - `F` is checked to be zero-sized at compile time (a post-monomorphization error
//!   names the fix), so nothing but the type is needed to call it;
//! - every launch carries a [`BinaryToken`]: the identity of `/proc/self/exe` and the
//!   offset of a second function. A child that runs a different build refuses the
//!   offset with [`ErrorKind::BinaryMismatch`](crate::ErrorKind::BinaryMismatch).
//!
//! The same [`EntryRef`] is what a pool sends to its persistent workers. A backend on
//! other machines cannot rely on addresses; it would resolve entries by name, and the
//! enum leaves room for that variant.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::RemotePanic;
use crate::ipc::codec;

/// A type-erased entry point: decodes the argument from `arg` (with its descriptors),
/// runs the function and returns the encoded [`Outcome`] and the exit code to use.
pub(crate) type Entry = fn(&[u8], Vec<OwnedFd>) -> Reply;

/// What an entry produced.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    /// 0 for a value, 1 for a panic or an encoding failure (Python's exit code for an exception).
    pub(crate) code: i32,
}

/// The outcome of running a function in another process, as sent back to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome<R> {
    /// The function returned this value.
    Value(R),
    /// The function panicked.
    Panicked(RemotePanic),
    /// The argument could not be decoded, or the result could not be encoded.
    Failed(FailKind, String),
}

/// Why an entry could not produce a value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum FailKind {
    /// The argument did not decode.
    Argument,
    /// The result did not encode.
    Result,
    /// The child was built from a different binary.
    Binary,
}

/// A reference to an entry point that another process can resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum EntryRef {
    /// Offset of the trampoline from [`anchor`] in the same executable.
    Offset(isize),
}

/// Identifies the executable image, so an [`EntryRef::Offset`] is only used where it is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BinaryToken {
    exe: (u64, u64, u64),
    probe: isize,
}

/// The base every offset is measured from. Never called.
#[inline(never)]
fn anchor() {
    std::hint::black_box(());
}

/// A second, unrelated function whose offset differs between different builds.
#[inline(never)]
fn probe() -> u64 {
    std::hint::black_box(0x6d75_6c74_6970_726f)
}

fn offset_of(addr: usize) -> isize {
    addr.wrapping_sub(anchor as fn() as usize) as isize
}

impl BinaryToken {
    /// The token of the running executable.
    pub(crate) fn current() -> BinaryToken {
        static TOKEN: std::sync::OnceLock<(u64, u64, u64)> = std::sync::OnceLock::new();
        let exe = *TOKEN.get_or_init(|| crate::sys::proc::exe_identity().unwrap_or((0, 0, 0)));
        BinaryToken {
            exe,
            probe: offset_of(probe as fn() -> u64 as usize),
        }
    }
}

#[cfg(test)]
impl BinaryToken {
    /// The token a launch for the executable at `path` carries (a copy of this one:
    /// same code, another file).
    pub(crate) fn of_copy(path: &std::path::Path) -> std::io::Result<BinaryToken> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(BinaryToken {
            exe: (m.dev(), m.ino(), m.size()),
            ..BinaryToken::current()
        })
    }
}

/// Returns the entry reference for function type `F`.
pub(crate) fn entry_ref<F, A, R>() -> EntryRef
where
    F: FnOnce(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    const { assert_zero_sized::<F>() };
    let entry: Entry = trampoline::<F, A, R>;
    EntryRef::Offset(offset_of(entry as usize))
}

const fn assert_zero_sized<F>() {
    assert!(
        std::mem::size_of::<F>() == 0,
        "multiproc: a function started with Spawn or ForkServer must be a `fn` item or a closure \
         that captures nothing; pass data as the argument (`start_with(f, arg)`) or use \
         `Builder::fork` for a capturing closure"
    );
}

/// Resolves an entry reference sent by a parent running the executable `token` names.
///
/// Returns `None` if this process runs a different executable.
pub(crate) fn resolve(entry: EntryRef, token: &BinaryToken) -> Option<Entry> {
    if *token != BinaryToken::current() {
        return None;
    }
    let EntryRef::Offset(off) = entry;
    let addr = (anchor as fn() as usize).wrapping_add(off as usize);
    // SAFETY: the token matched, so this process runs the same executable image as the
    // parent, and `off` was computed there (in `entry_ref`) from the address of a
    // function of type `Entry` relative to `anchor`. Adding it to this image's `anchor`
    // gives the same function in this image; a `fn` pointer and a `usize` have the
    // same size and the address is non-null code.
    Some(unsafe { std::mem::transmute::<usize, Entry>(addr) })
}

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
    const { assert_zero_sized::<F>() };
    let entry: ChunkEntry = chunk_trampoline::<F, A, R>;
    EntryRef::Offset(offset_of(entry as usize))
}

/// Resolves a reference made by [`chunk_entry_ref`] in a parent running the
/// executable `token` names; `None` if this process runs a different executable.
pub(crate) fn resolve_chunk(entry: EntryRef, token: &BinaryToken) -> Option<ChunkEntry> {
    if *token != BinaryToken::current() {
        return None;
    }
    let EntryRef::Offset(off) = entry;
    let addr = (anchor as fn() as usize).wrapping_add(off as usize);
    // SAFETY: as in `resolve`: same image (the token matched), and `off` was computed
    // in `chunk_entry_ref` from a function of type `ChunkEntry` relative to `anchor`.
    // The pool's protocol sends chunk references only to `resolve_chunk`.
    Some(unsafe { std::mem::transmute::<usize, ChunkEntry>(addr) })
}

/// Applies the zero-sized `F` to every item of a chunk, catching a panic per item.
pub(crate) fn apply_chunk<F, A, R>(items: Vec<A>) -> ChunkOut<R>
where
    F: Fn(A) -> R,
{
    const { assert_zero_sized::<F>() };
    // SAFETY: `F` is zero-sized (asserted at compile time above); see `trampoline`.
    let f: F = unsafe { std::mem::zeroed() };
    apply_each(items, f)
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

/// The monomorphized entry for `F(A) -> R`.
fn trampoline<F, A, R>(arg: &[u8], fds: Vec<OwnedFd>) -> Reply
where
    F: FnOnce(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    const { assert_zero_sized::<F>() };
    let arg: A = match crate::panic::catch(|| codec::decode(arg, fds)) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return failure(FailKind::Argument, e.to_string()),
        Err(p) => return finish::<R>(&Outcome::Panicked(p), 1),
    };
    // SAFETY: `F` is zero-sized (asserted at compile time above). The only zero-sized
    // types that implement `FnOnce` on stable Rust are `fn` items and closures whose
    // captures are all zero-sized; neither has a value to get wrong, so any bit
    // pattern (here: none) is a valid `F`. This is the same reasoning that lets
    // `std::mem::zeroed` produce a `()`.
    let f: F = unsafe { std::mem::zeroed() };
    match crate::panic::catch(move || f(arg)) {
        Ok(value) => finish(&Outcome::Value(value), 0),
        Err(p) => finish::<R>(&Outcome::Panicked(p), 1),
    }
}

/// Encodes an outcome; a result that fails to encode becomes a `Failed` outcome, and
/// one whose `Serialize` panics becomes that panic (exit code 1), as a panic in the
/// function itself does.
pub(crate) fn finish<R: Serialize>(outcome: &Outcome<R>, code: i32) -> Reply {
    match crate::panic::catch(|| codec::encode(outcome)) {
        Ok(Ok(e)) => Reply {
            bytes: e.bytes,
            fds: e.fds,
            code,
        },
        Ok(Err(e)) => failure(FailKind::Result, e.to_string()),
        // A `RemotePanic` serializes without user code, so this cannot recurse again.
        Err(p) => finish::<()>(&Outcome::Panicked(p), 1),
    }
}

/// A `Failed` outcome (exit code 1).
pub(crate) fn failure(kind: FailKind, message: String) -> Reply {
    let bytes = codec::encode(&Outcome::<()>::Failed(kind, message))
        .map(|e| e.bytes)
        .unwrap_or_default();
    Reply {
        bytes,
        fds: Vec::new(),
        code: 1,
    }
}

/// A plain `fn()` that another process running the same executable can call (a
/// barrier's action): an offset from [`anchor`] plus the [`BinaryToken`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FnRef {
    offset: isize,
    token: BinaryToken,
}

impl FnRef {
    /// The reference to `f` in this executable.
    pub(crate) fn new(f: fn()) -> FnRef {
        FnRef {
            offset: offset_of(f as usize),
            token: BinaryToken::current(),
        }
    }

    /// The function in this process; `None` if it runs a different executable.
    pub(crate) fn resolve(&self) -> Option<fn()> {
        if self.token != BinaryToken::current() {
            return None;
        }
        let addr = (anchor as fn() as usize).wrapping_add(self.offset as usize);
        // SAFETY: the token matched, so this process runs the same executable image as
        // the process that made `self` in `FnRef::new` from a valid `fn()` relative to
        // its `anchor`; the same offset from this image's `anchor` is that function
        // here. A `fn()` and a `usize` have the same size, and the address is non-null
        // code.
        Some(unsafe { std::mem::transmute::<usize, fn()>(addr) })
    }
}
