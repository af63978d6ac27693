//! `mmap(2)` / `munmap(2)` of shared segments.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/mmap.2.html>
//!
//! # Safety
//!
//! [`map_shared`] creates a fresh mapping at an address the kernel chooses, so it
//! aliases no Rust object; [`unmap`] is `unsafe` and its caller promises that no
//! reference into the mapping outlives it.
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
