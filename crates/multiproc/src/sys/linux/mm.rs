//! `mmap(2)` / `munmap(2)` of shared segments, and `madvise(MADV_HUGEPAGE)` for large
//! buffers.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/mmap.2.html>
//! - <https://man7.org/linux/man-pages/man2/madvise.2.html>
//!
//! # Safety
//!
//! [`map_shared`] creates a fresh mapping at an address the kernel chooses, so it
//! aliases no Rust object; [`unmap`] is `unsafe` and its caller promises that no
//! reference into the mapping outlives it. [`advise_huge_pages`] gives advice that
//! changes how the kernel backs pages of memory the caller holds exclusively, never
//! what they contain. [`keep_freed_heap`] sets two of the C allocator's parameters.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::{self, NonNull};

use rustix::mm::{MapFlags, ProtFlags};

/// Maps the first `len` bytes of `fd` read-write and `MAP_SHARED`: stores are seen
/// by every process that maps the same file.
pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a null hint lets the kernel pick an address that overlaps no existing
    // mapping, so the new mapping aliases no Rust object.
    let ptr = unsafe {
        rustix::mm::mmap(
            ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }?;
    NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// Unmaps a mapping created by [`map_shared`].
///
/// # Safety
///
/// `ptr` and `len` must be exactly a pointer and length returned by and passed to
/// [`map_shared`], unmapped only once, and no reference into the mapping may be
/// used afterwards.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: guaranteed by the caller.
    let res = unsafe { rustix::mm::munmap(ptr.as_ptr().cast(), len) };
    debug_assert!(res.is_ok(), "munmap failed: {res:?}");
}

/// The size of a transparent huge page on x86_64.
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB pages inside `buf` with transparent huge
/// pages (`MADV_HUGEPAGE`; this machine kind's THP mode is `madvise`), so that filling
/// a large fresh buffer takes one page fault per 2 MiB instead of one per 4 KiB. Only
/// worth it for a buffer that is about to be filled whole: a huge page is committed
/// at its first touch. Best effort: errors (THP disabled, say) are ignored.
pub(crate) fn advise_huge_pages<T>(buf: &mut [std::mem::MaybeUninit<T>]) {
    let start = buf.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(buf);
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end / HUGE_PAGE * HUGE_PAGE;
    if last <= first {
        return;
    }
    // SAFETY: `[first, last)` lies inside `buf`, memory this function borrows
    // exclusively, so it is mapped and part of one allocation. `MADV_HUGEPAGE` changes
    // only how the kernel backs these pages (it may split the mapping's VMA; a later
    // `munmap` or `free` of the whole allocation is unaffected), never their contents,
    // which are uninitialized here anyway.
    let _ = unsafe {
        rustix::mm::madvise(
            first as *mut _,
            last - first,
            rustix::mm::Advice::LinuxHugepage,
        )
    };
}

/// Freed memory this process's `malloc` keeps at the top of its heap, after
/// [`keep_freed_heap`].
const KEEP_FREED: i32 = 64 << 20;
/// Blocks this large and over come from `mmap` (and go back at `free`), after
/// [`keep_freed_heap`]: glibc's maximum for the setting.
const MMAP_FROM: i32 = 32 << 20;

/// Makes this process's `malloc` keep up to 64 MiB of freed memory at the top of its
/// heap, and serve blocks under 32 MiB from the heap, instead of giving memory back
/// to the kernel at each `free` (glibc's thresholds start at 128 KiB) and taking it
/// back with fresh page faults at the next allocation. For a process whose job is to
/// allocate and free the same sizes again and again, a pool worker: decoding
/// chunks of 125 KB cost its two workers about 2,500 page faults per `map` of 10^6
/// items (issue 11). Memory stays bounded: what is kept is reused by the next
/// allocations. Best effort (a no-op on a C library without `mallopt`).
pub(crate) fn keep_freed_heap() {
    #[cfg(target_env = "gnu")]
    for (param, value) in [
        (libc::M_TRIM_THRESHOLD, KEEP_FREED),
        (libc::M_MMAP_THRESHOLD, MMAP_FROM),
    ] {
        // SAFETY: `mallopt` only changes the allocator's tuning parameters, under
        // the allocator's own lock; both values are within glibc's documented ranges.
        unsafe { libc::mallopt(param, value) };
    }
}

#[cfg(test)]
mod tests {
    /// This thread's minor page faults so far (`/proc/thread-self/stat`, field 10).
    fn minor_faults() -> u64 {
        let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &s[s.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(7).unwrap().parse().unwrap()
    }

    /// Two 120 KB buffers allocated, written and freed over and over (a pool worker's
    /// life): with glibc's default thresholds each round gives the 240 KB back to the
    /// kernel and faults it in again (about 60 faults a round); after
    /// `keep_freed_heap`, the first round's pages are reused.
    #[test]
    fn keep_freed_heap_stops_the_refaults_of_reused_sizes() {
        super::keep_freed_heap();
        let round = || {
            let a = vec![1u8; 120_000];
            let b = vec![2u8; 120_000];
            std::hint::black_box((&a, &b));
        };
        round();
        let before = minor_faults();
        for _ in 0..200 {
            round();
        }
        let faults = minor_faults() - before;
        assert!(faults < 1_000, "{faults} page faults in 200 rounds");
    }
}
