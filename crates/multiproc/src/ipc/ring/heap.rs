//! A [`Mem`] made of plain atomics, for unit tests and loom models: bytes are packed
//! into 64-bit words (copied with relaxed atomic loads and stores, so loom sees
//! every access), and 32-bit words live in a separate array.

use std::time::Duration;

use super::{AtomicU32, AtomicU64, Mem};
use std::sync::atomic::Ordering::Relaxed;
#[cfg(loom)]
use std::sync::atomic::Ordering::SeqCst;

/// Test memory of a fixed size.
#[derive(Debug)]
pub(crate) struct HeapMem {
    words: Vec<AtomicU64>,
    words32: Vec<AtomicU32>,
    #[cfg(loom)]
    futex: (loom::sync::Mutex<()>, loom::sync::Condvar),
}

impl HeapMem {
    pub(crate) fn new(len: usize) -> HeapMem {
        HeapMem {
            words: (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect(),
            words32: (0..len.div_ceil(4)).map(|_| AtomicU32::new(0)).collect(),
            #[cfg(loom)]
            futex: (loom::sync::Mutex::new(()), loom::sync::Condvar::new()),
        }
    }

    /// Overwrites one byte (to corrupt frames in tests).
    pub(crate) fn poke(&self, off: usize, byte: u8) {
        self.write(off, &[byte]);
    }
}

impl Mem for HeapMem {
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0);
        &self.words[off / 8]
    }

    fn words(&self, off: usize, n: usize) -> &[AtomicU64] {
        assert!(off % 8 == 0);
        &self.words[off / 8..off / 8 + n]
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0);
        &self.words32[off / 4]
    }

    fn write(&self, off: usize, src: &[u8]) {
        let mut i = 0;
        while i < src.len() {
            let at = off + i;
            let word = &self.words[at / 8];
            let shift = at % 8;
            let n = (8 - shift).min(src.len() - i);
            let mut bytes = word.load(Relaxed).to_le_bytes();
            bytes[shift..shift + n].copy_from_slice(&src[i..i + n]);
            word.store(u64::from_le_bytes(bytes), Relaxed);
            i += n;
        }
    }

    fn read(&self, off: usize, dst: &mut [u8]) {
        let mut i = 0;
        while i < dst.len() {
            let at = off + i;
            let shift = at % 8;
            let n = (8 - shift).min(dst.len() - i);
            let bytes = self.words[at / 8].load(Relaxed).to_le_bytes();
            dst[i..i + n].copy_from_slice(&bytes[shift..shift + n]);
            i += n;
        }
    }

    #[cfg(not(loom))]
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let _ = crate::sys::futex::wait_private(word, expected, timeout);
    }

    #[cfg(not(loom))]
    fn wake_all(&self, word: &AtomicU32) {
        let _ = crate::sys::futex::wake_private(word, u32::MAX);
    }

    /// A faithful futex: the check and the sleep are atomic with respect to `wake_all`.
    /// The timeout is ignored, so that a lost wake-up shows up as a loom deadlock.
    #[cfg(loom)]
    fn wait(&self, word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let guard = self.futex.0.lock().unwrap();
        if word.load(SeqCst) == expected {
            drop(self.futex.1.wait(guard).unwrap());
        }
    }

    #[cfg(loom)]
    fn wake_all(&self, _word: &AtomicU32) {
        let _guard = self.futex.0.lock().unwrap();
        self.futex.1.notify_all();
    }
}

impl Mem for std::sync::Arc<HeapMem> {
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        (**self).u64_at(off)
    }
    fn words(&self, off: usize, n: usize) -> &[AtomicU64] {
        (**self).words(off, n)
    }
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        (**self).u32_at(off)
    }
    fn write(&self, off: usize, src: &[u8]) {
        (**self).write(off, src);
    }
    fn read(&self, off: usize, dst: &mut [u8]) {
        (**self).read(off, dst);
    }
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        (**self).wait(word, expected, timeout);
    }
    fn wake_all(&self, word: &AtomicU32) {
        (**self).wake_all(word);
    }
}
