//! How a non-fork child finds the function to run: a type-erased trampoline, named by
//! an [`EntryRef`] (see [`crate::identity`] for how a reference crosses processes).
//!
//! For a function type `F` (a `fn` item or a closure that captures nothing, so a
//! zero-sized type) multiproc instantiates a type-erased [`Entry`] trampoline,
//! `trampoline::<F, A, R>`, that decodes an `A`, conjures the zero-sized `F`, calls it
//! and encodes the [`Outcome`](super::outcome::Outcome). The parent sends the
//! trampoline's [`EntryRef`] with its [`BinaryToken`]; the child resolves it with
//! [`resolve`]. A child that runs a different build refuses the reference with
//! [`ErrorKind::BinaryMismatch`](crate::ErrorKind::BinaryMismatch).
//!
//! The same kind of [`EntryRef`] is what a pool sends to its persistent workers (made by
//! `pool::process::chunk::chunk_entry_ref`, which resolves to a chunk entry).
//!
//! # Safety
//!
//! One `unsafe` block: [`resolve`] turns the address that [`identity::address`] found
//! (after checking that this process runs the same executable) back into an [`Entry`].
//! It is sound because only [`entry_ref`] makes the references a launch carries, from
//! a function of exactly that type.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::exit_code::ChildExit;
use super::outcome::{failure, finish, FailKind, Outcome, Reply};
use crate::identity::{self, BinaryToken, EntryRef};
use crate::ipc::codec;

/// A type-erased entry point: decodes the argument from `arg` (with its descriptors),
/// runs the function and returns the encoded [`Outcome`] and the exit code to use.
pub(crate) type Entry = fn(&[u8], Vec<OwnedFd>) -> Reply;

/// Returns the entry reference for function type `F`.
pub(crate) fn entry_ref<F, A, R>() -> EntryRef
where
    F: FnOnce(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    const { identity::assert_zero_sized::<F>() };
    let entry: Entry = trampoline::<F, A, R>;
    EntryRef::Offset(identity::offset_of(entry as usize))
}

/// Resolves an entry reference sent by a parent running the executable `token` names.
///
/// Returns `None` if this process runs a different executable.
pub(crate) fn resolve(entry: EntryRef, token: &BinaryToken) -> Option<Entry> {
    let addr = identity::address(entry, token)?;
    // SAFETY: `address` checked the token, so this process runs the same executable
    // image as the parent, where `entry` was made (in `entry_ref`) from the address of
    // a function of type `Entry` relative to the anchor. The same offset from this
    // image's anchor is the same function here; a `fn` pointer and a `usize` have the
    // same size and the address is non-null code.
    Some(unsafe { std::mem::transmute::<usize, Entry>(addr) })
}

/// The monomorphized entry for `F(A) -> R`.
fn trampoline<F, A, R>(arg: &[u8], fds: Vec<OwnedFd>) -> Reply
where
    F: FnOnce(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let arg: A = match crate::panic::catch(|| codec::decode(arg, fds)) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return failure(FailKind::Argument, e.to_string()),
        Err(p) => return finish::<R>(&Outcome::Panicked(p), ChildExit::Failed),
    };
    let f: F = identity::conjure::<F, A, R>();
    match crate::panic::catch(move || f(arg)) {
        Ok(value) => finish(&Outcome::Value(value), ChildExit::Value),
        Err(p) => finish::<R>(&Outcome::Panicked(p), ChildExit::Failed),
    }
}
