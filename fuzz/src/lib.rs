//! Shared pieces of the fuzz targets: the allocation cap that turns "unbounded
//! memory" into a crash, and the builders that turn structured fuzz input into the
//! byte chunks another process would write on a socket.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use multiproc::__fuzz::Chunk;

/// The largest single allocation a target allows by default: no decoder may trust a
/// length it read before the bytes behind it arrived (inputs are a few KiB).
pub const DEFAULT_CAP: usize = 64 << 20;

static CAP: AtomicUsize = AtomicUsize::new(DEFAULT_CAP);

/// Sets the largest allocation allowed until the next call (for a decoder given a
/// configured maximum larger than the default).
pub fn set_alloc_cap(bytes: usize) {
    CAP.store(bytes, Relaxed);
}

/// The system allocator, refusing (with a panic, which libFuzzer reports as a crash
/// with the input) any single allocation over the cap. This works without a
/// sanitizer, where libFuzzer's own `-malloc_limit_mb` sees nothing.
pub struct Capped;

fn check(size: usize) {
    let cap = CAP.load(Relaxed);
    if size > cap {
        // The panic hook allocates its message: lift the cap first.
        CAP.store(usize::MAX, Relaxed);
        panic!("allocation of {size} bytes exceeds the fuzz cap of {cap} bytes");
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged;
// `check` only reads an atomic (or panics, and libfuzzer-sys's panic hook aborts, so
// nothing unwinds out of the allocator).
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: forwarded (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

/// A piece of a byte stream, split in two `write`s at `split` (so readers see
/// headers and payloads cut at every position), with an optional descriptor on its
/// first byte.
#[derive(Debug, Arbitrary)]
pub struct Piece {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Where to split them (modulo their length).
    pub split: u16,
    /// Attach a descriptor.
    pub fd: bool,
}

/// The chunks of `pieces`, in order.
pub fn chunks(pieces: &[Piece]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    for p in pieces {
        let at = if p.bytes.is_empty() {
            0
        } else {
            p.split as usize % (p.bytes.len() + 1)
        };
        out.push(Chunk {
            bytes: &p.bytes[..at],
            fd: p.fd,
        });
        out.push(Chunk {
            bytes: &p.bytes[at..],
            fd: p.fd && at == 0,
        });
    }
    out
}
