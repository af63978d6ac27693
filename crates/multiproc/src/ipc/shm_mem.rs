//! Rings live in a [`SharedMemory`] segment: its bounds-checked atomics and copies,
//! and the process-shared futex.

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use super::ring::Mem;
use crate::shm::SharedMemory;
use crate::sys;

impl Mem for SharedMemory {
    #[inline]
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.atomic_u64(off)
    }

    #[inline]
    fn words(&self, off: usize, n: usize) -> &[AtomicU64] {
        self.atomic_u64s(off, n)
    }

    #[inline]
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.atomic_u32(off)
    }

    #[inline]
    fn write(&self, off: usize, src: &[u8]) {
        SharedMemory::write(self, off, src).expect("ring offsets are validated");
    }

    #[inline]
    fn read(&self, off: usize, dst: &mut [u8]) {
        SharedMemory::read(self, off, dst).expect("ring offsets are validated");
    }

    #[inline]
    fn read_append(&self, off: usize, len: usize, dst: &mut Vec<u8>) {
        SharedMemory::read_append(self, off, len, dst).expect("ring offsets are validated");
    }

    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        sys::futex::wait(word, expected, timeout);
    }

    fn wake_all(&self, word: &AtomicU32) {
        sys::futex::wake(word, u32::MAX);
    }
}
