//! Function identity across processes: which function (a zero-sized function type, or
//! the offset of its code from an anchor), in which executable ([`BinaryToken`]).
//!
//! A closure cannot be sent to another process, but its *code* is already there when
//! the other process runs the same executable. The sender sends the address of a
//! function as an offset from [`anchor`]; the receiver adds its own address of
//! `anchor`. Both addresses move together under ASLR because they are in one image.
//! Every reference travels with a [`BinaryToken`] (the identity of `/proc/self/exe`
//! and the offset of a second function), and is resolved only where the token is
//! this process's own: a process that runs another build gets `None`.
//!
//! The users, each with the function type it resolves to:
//! - `process::entry`: a child's [`EntryRef`] to the trampoline of its function;
//! - `pool::process::chunk`: a pool worker's [`EntryRef`] to a chunk trampoline;
//! - `sync::barrier`: a barrier's action, a plain `fn()` ([`FnRef`]).
//!
//! A function *type* `F` that is zero-sized (a `fn` item, or a closure that captures
//! nothing) needs no value at all: [`conjure`] makes it, after a compile-time check
//! ([`assert_zero_sized`]) that names the fix when it is not.
//!
//! # Safety
//!
//! Two `unsafe` operations. [`FnRef::resolve`] turns an address back into a `fn()`:
//! sound because the token matched (same image) and only [`FnRef::new`] makes the
//! offset, from a `fn()`. [`conjure`] makes a value of a zero-sized function type with
//! `mem::zeroed`: sound because such a type has no bytes and is a `fn` item or a
//! closure with zero-sized captures, so there is no value to get wrong.
#![allow(unsafe_code)]

use serde::{Deserialize, Serialize};

/// A reference to an entry point that another process can resolve.
///
/// A backend on other machines cannot rely on addresses; it would resolve entries by
/// name, and the enum leaves room for that variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum EntryRef {
    /// Offset of the entry's code from [`anchor`] in the same executable.
    Offset(isize),
}

/// Identifies the executable image, so an [`EntryRef::Offset`] is only used where it is
/// valid.
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

/// The address in this process of the code `entry` names, if this process runs the
/// executable `token` names (`None` otherwise).
///
/// The address is that of whatever function `entry` was made from in the sender; the
/// caller knows its type from the protocol that carried `entry`.
pub(crate) fn address(entry: EntryRef, token: &BinaryToken) -> Option<usize> {
    if *token != BinaryToken::current() {
        return None;
    }
    let EntryRef::Offset(off) = entry;
    Some((anchor as fn() as usize).wrapping_add(off as usize))
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
        let addr = address(EntryRef::Offset(self.offset), &self.token)?;
        // SAFETY: `address` checked the token, so this process runs the same executable
        // image as the process that made `self` in `FnRef::new` from a valid `fn()`
        // relative to its `anchor`; the same offset from this image's `anchor` is that
        // function here. A `fn()` and a `usize` have the same size, and the address is
        // non-null code.
        Some(unsafe { std::mem::transmute::<usize, fn()>(addr) })
    }
}
