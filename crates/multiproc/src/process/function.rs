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
//! The same [`EntryRef`] is what a pool sends to its persistent workers (made by
//! `pool::process::chunk::chunk_entry_ref`, which resolves to a chunk entry). A backend on
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

/// The offset of the code at `addr` from [`anchor`].
pub(crate) fn offset_of(addr: usize) -> isize {
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

/// Fails the build (after monomorphization) unless `F` is zero-sized.
pub(crate) const fn assert_zero_sized<F>() {
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
    let addr = address(entry, token)?;
    // SAFETY: the token matched, so this process runs the same executable image as the
    // parent, and `off` was computed there (in `entry_ref`) from the address of a
    // function of type `Entry` relative to `anchor`. Adding it to this image's `anchor`
    // gives the same function in this image; a `fn` pointer and a `usize` have the
    // same size and the address is non-null code.
    Some(unsafe { std::mem::transmute::<usize, Entry>(addr) })
}

/// The address in this process of the code `entry` names, if this process runs the
/// executable `token` names (`None` otherwise).
///
/// The address is that of whatever function `entry` was made from in the parent; the
/// caller knows its type from the protocol that carried `entry`.
pub(crate) fn address(entry: EntryRef, token: &BinaryToken) -> Option<usize> {
    if *token != BinaryToken::current() {
        return None;
    }
    let EntryRef::Offset(off) = entry;
    Some((anchor as fn() as usize).wrapping_add(off as usize))
}

/// Returns the value of the zero-sized function type `F`.
pub(crate) fn conjure<F, A, R>() -> F
where
    F: FnOnce(A) -> R,
{
    const { assert_zero_sized::<F>() };
    // SAFETY: `F` is zero-sized (asserted at compile time above). The only zero-sized
    // types that implement `FnOnce` on stable Rust are `fn` items and closures whose
    // captures are all zero-sized; neither has a value to get wrong, so any bit
    // pattern (here: none) is a valid `F`. This is the same reasoning that lets
    // `std::mem::zeroed` produce a `()`.
    unsafe { std::mem::zeroed() }
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
    let f: F = conjure::<F, A, R>();
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
