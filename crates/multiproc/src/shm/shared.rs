//! [`Shared<T>`]: the crate-internal typed handle to a `T` in shared memory, in which
//! every synchronization primitive keeps its futex words; small values are carved
//! from per-thread arenas.
//!
//! # Safety
//!
//! A `Shared<T>` holds the [`SharedMemory`] its `T` lives in, so the mapping outlives
//! every `&T` it hands out; the pointer is formed only after `from_memory` checked
//! that `size_of::<T>()` bytes at the offset are in bounds and aligned for `T`. The
//! memory may be written by other processes at any time, so `T` is a [`ShmLayout`]
//! type: atomics only, every bit pattern valid, all-zero its default.
#![allow(unsafe_code)]

use std::fmt;
#[cfg(not(loom))]
use std::os::fd::AsFd;
#[cfg(not(loom))]
use std::ptr::NonNull;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::layout::ShmLayout;
#[cfg(not(loom))]
use super::segment::{Mapping, SharedMemory};
use crate::error::Result;
#[cfg(not(loom))]
use crate::sys;

/// A `T` in shared memory; derefs to `&T`.
///
/// Crate-internal: the synchronization primitives keep their futex words in one.
/// Small values are carved from per-thread *arenas* of one page, so a thousand
/// locks cost ten descriptors, not a thousand (see [`arena_alloc`]). Under
/// `cfg(loom)` it is a plain `Arc<T>`, so that loom can model the protocols.
pub(crate) struct Shared<T> {
    #[cfg(not(loom))]
    mem: SharedMemory,
    #[cfg(not(loom))]
    offset: usize,
    #[cfg(not(loom))]
    ptr: NonNull<T>,
    #[cfg(loom)]
    arc: loom::sync::Arc<T>,
}

/// The size of an arena segment.
#[cfg(not(loom))]
const ARENA_SIZE: usize = 4096;

#[cfg(not(loom))]
thread_local! {
    /// This thread's current arena: `(pid, mapping, next free offset)`. Weak, so an
    /// arena is freed as soon as its last object is; keyed by pid, so a forked child
    /// (which inherits a copy of this) never carves from its parent's arena.
    static ARENA: std::cell::RefCell<Option<(u32, std::sync::Weak<Mapping>, usize)>> =
        const { std::cell::RefCell::new(None) };
}

/// Finds `size` zeroed bytes aligned to `align` in shared memory: a fresh slot of
/// this thread's arena (slots are never reused, so a slot is still zero), a new
/// arena, or, for large values, a segment of their own.
#[cfg(not(loom))]
fn arena_alloc(size: usize, align: usize) -> Result<(SharedMemory, usize)> {
    if size > ARENA_SIZE / 4 || align > ARENA_SIZE {
        return Ok((SharedMemory::create(size.max(1))?, 0));
    }
    let pid = std::process::id();
    ARENA.with(|a| {
        let mut a = a.borrow_mut();
        if let Some((owner, weak, next)) = a.as_mut() {
            if let Some(mem) = SharedMemory::upgrade(weak).filter(|_| *owner == pid) {
                let offset = next.next_multiple_of(align);
                if offset + size <= mem.len() {
                    *next = offset + size;
                    return Ok((mem, offset));
                }
            }
        }
        let mem = SharedMemory::create(ARENA_SIZE)?;
        *a = Some((pid, mem.downgrade(), size));
        Ok((mem, 0))
    })
}

#[cfg(not(loom))]
thread_local! {
    /// Arenas this thread received from other processes, by file identity, so that
    /// many objects of one arena received here share one mapping and descriptor.
    /// Keyed by pid like `ARENA`.
    #[allow(clippy::type_complexity)]
    static RECEIVED: std::cell::RefCell<(u32, Vec<((u64, u64), std::sync::Weak<Mapping>)>)> =
        const { std::cell::RefCell::new((0, Vec::new())) };
}

/// Returns the mapping of `mem`'s file that this thread already has, if any (dropping
/// `mem`'s duplicate descriptor and mapping), else remembers `mem`'s.
#[cfg(not(loom))]
fn dedupe_received(mem: SharedMemory) -> SharedMemory {
    let Ok(key) = sys::memfd::identity(mem.as_fd()) else {
        return mem;
    };
    let pid = std::process::id();
    RECEIVED.with(|r| {
        let mut r = r.borrow_mut();
        if r.0 != pid {
            *r = (pid, Vec::new());
        }
        r.1.retain(|(_, w)| w.strong_count() > 0);
        if let Some(known) =
            r.1.iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, w)| SharedMemory::upgrade(w))
        {
            return known;
        }
        r.1.push((key, mem.downgrade()));
        mem
    })
}

#[cfg(not(loom))]
impl<T: ShmLayout> Shared<T> {
    /// Places a zeroed (= default) `T` in shared memory.
    pub(crate) fn new() -> Result<Shared<T>> {
        const { assert!(std::mem::align_of::<T>() <= 4096) };
        let (mem, offset) = arena_alloc(std::mem::size_of::<T>(), std::mem::align_of::<T>())?;
        Ok(Self::from_memory(mem, offset).expect("the arena returned a fitting slot"))
    }

    /// Like [`new`](Self::new), but the value gets a cache line (64 bytes) of its
    /// own, shared with no other arena object: for values that different processes
    /// write at a high rate, such as a queue's producer-side and consumer-side locks
    /// (adjacent, they made a Queue between two threads run at 2.7 M msgs/s instead
    /// of 20, every acquire and release bouncing the line between the CPUs).
    pub(crate) fn new_isolated() -> Result<Shared<T>> {
        const LINE: usize = 64;
        const { assert!(std::mem::align_of::<T>() <= 4096) };
        let size = std::mem::size_of::<T>().next_multiple_of(LINE);
        let (mem, offset) = arena_alloc(size, std::mem::align_of::<T>().max(LINE))?;
        Ok(Self::from_memory(mem, offset).expect("the arena returned a fitting slot"))
    }

    fn from_memory(mem: SharedMemory, offset: usize) -> Option<Shared<T>> {
        let end = offset.checked_add(std::mem::size_of::<T>())?;
        if end > mem.len() || offset % std::mem::align_of::<T>() != 0 {
            return None;
        }
        let ptr = NonNull::new(mem.as_ptr().wrapping_add(offset).cast::<T>())?;
        Some(Shared { mem, offset, ptr })
    }
}

#[cfg(loom)]
impl<T: ShmLayout> Shared<T> {
    pub(crate) fn new() -> Result<Shared<T>> {
        Ok(Shared {
            arc: loom::sync::Arc::new(T::default()),
        })
    }

    pub(crate) fn new_isolated() -> Result<Shared<T>> {
        Self::new()
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            #[cfg(not(loom))]
            mem: self.mem.clone(),
            #[cfg(not(loom))]
            offset: self.offset,
            #[cfg(not(loom))]
            ptr: self.ptr,
            #[cfg(loom)]
            arc: self.arc.clone(),
        }
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;

    #[cfg(not(loom))]
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `ptr` is `offset` bytes into `mem`'s page-aligned mapping, aligned for
        // `T` with `size_of::<T>()` bytes in bounds (checked in `from_memory`), and the
        // mapping lives as long as `self` holds `mem`. `T: ShmLayout` makes any bytes another process may have written
        // (atomics only, zero = default) a valid `T` that is only mutated atomically.
        unsafe { self.ptr.as_ref() }
    }

    #[cfg(loom)]
    fn deref(&self) -> &T {
        &self.arc
    }
}

// SAFETY: `Shared<T>` gives out only `&T`, and `T: Sync` (from `ShmLayout`); the
// mapping itself is `Send + Sync` (see `Mapping`).
#[cfg(not(loom))]
unsafe impl<T: ShmLayout> Send for Shared<T> {}
// SAFETY: as for `Send`.
#[cfg(not(loom))]
unsafe impl<T: ShmLayout> Sync for Shared<T> {}

impl<T> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(not(loom))]
        return self.mem.fmt(f);
        #[cfg(loom)]
        return f.write_str("Shared");
    }
}

#[cfg(not(loom))]
impl<T: ShmLayout> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.mem, self.offset as u64).serialize(s)
    }
}

#[cfg(not(loom))]
impl<'de, T: ShmLayout> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (mem, offset) = <(SharedMemory, u64)>::deserialize(d)?;
        let mem = dedupe_received(mem);
        usize::try_from(offset)
            .ok()
            .and_then(|offset| Self::from_memory(mem, offset))
            .ok_or_else(|| serde::de::Error::custom("shared object outside its segment"))
    }
}

#[cfg(loom)]
impl<T> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not transferable under loom"))
    }
}

#[cfg(loom)]
impl<'de, T> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
        Err(serde::de::Error::custom("not transferable under loom"))
    }
}
