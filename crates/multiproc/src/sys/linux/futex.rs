//! Process-shared futex wait and wake on a 32-bit word in shared memory.
//!
//! [`wait`] and [`wake`] are the *shared* futex operations (no `FUTEX_PRIVATE_FLAG`):
//! the kernel keys the wait queue by the physical page behind the word, so a waiter
//! in one process is woken by a waker in another process that maps the same memory.
//! `wait_private` and `wake_private` (test builds) are for words in this process's own memory
//! only (cheaper: the kernel keys them by address).
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/futex.2.html>
//! - <https://man7.org/linux/man-pages/man7/futex.7.html>
//! - Ulrich Drepper, "Futexes Are Tricky" (2011)

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

/// Why [`wait`] returned. Either way the caller re-reads the word: futex wake-ups
/// can be spurious.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken by [`wake`], or the word no longer held `expected` (`EAGAIN`), or a
    /// signal interrupted the sleep (`EINTR`).
    Woken,
    /// The timeout passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, for at most `timeout` (`None`: no limit).
///
/// A signal ends the sleep early ([`Wake::Woken`]): callers re-read the word and
/// sleep again for what is left of their deadline, never the whole timeout again.
///
/// The comparison and the sleep are atomic with respect to [`wake`] on the same word
/// in any process: a wake that follows a store changing the word cannot be missed.
#[inline]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    wait_flags(word, futex::Flags::empty(), expected, timeout)
}

/// As [`wait`], for a word that only this process maps (`FUTEX_PRIVATE_FLAG`): a
/// waker in another process would not find the sleeper. (Only the rings' test
/// memory uses it.)
#[cfg(test)]
pub(crate) fn wait_private(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    wait_flags(word, futex::Flags::PRIVATE, expected, timeout)
}

#[inline]
fn wait_flags(
    word: &AtomicU32,
    flags: futex::Flags,
    expected: u32,
    timeout: Option<Duration>,
) -> Wake {
    let ts = timeout.map(super::poll::timespec);
    match futex::wait(word, flags, expected, ts.as_ref()) {
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => Wake::Woken,
        Err(Errno::TIMEDOUT) => Wake::TimedOut,
        // EFAULT/EINVAL would mean a bad address or flags: a bug in this crate.
        // Returning lets the caller re-check the word rather than hang.
        Err(e) => {
            debug_assert!(false, "futex wait failed: {e}");
            Wake::Woken
        }
    }
}

/// Wakes up to `n` waiters sleeping on `word` (in any process); returns how many woke.
///
/// `n` above `i32::MAX` means "everyone": the kernel reads the count as a signed
/// `int`, and `u32::MAX` would be `-1`, which wakes only one.
#[inline]
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    wake_flags(word, futex::Flags::empty(), n)
}

/// As [`wake`], for the sleepers of `wait_private` in this process.
#[cfg(test)]
pub(crate) fn wake_private(word: &AtomicU32, n: u32) -> usize {
    wake_flags(word, futex::Flags::PRIVATE, n)
}

#[inline]
fn wake_flags(word: &AtomicU32, flags: futex::Flags, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    match futex::wake(word, flags, n) {
        Ok(woken) => woken,
        Err(e) => {
            debug_assert!(false, "futex wake failed: {e}");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn mismatch_returns_at_once() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), Wake::Woken);
    }

    #[test]
    fn timeout_expires() {
        let w = AtomicU32::new(0);
        assert_eq!(wait(&w, 0, Some(Duration::from_millis(5))), Wake::TimedOut);
    }

    #[test]
    fn wake_wakes_a_sleeper() {
        let w = Arc::new(AtomicU32::new(0));
        let t = std::thread::spawn({
            let w = Arc::clone(&w);
            move || {
                while w.load(Ordering::Acquire) == 0 {
                    wait(&w, 0, Some(Duration::from_secs(10)));
                }
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::Release);
        wake(&w, 1);
        t.join().unwrap();
    }

    #[test]
    fn wake_all_wakes_everyone() {
        // Regression: `u32::MAX` reached the kernel as -1 and woke a single waiter.
        let w = Arc::new(AtomicU32::new(0));
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    while w.load(Ordering::Acquire) == 0 {
                        wait(&w, 0, Some(Duration::from_secs(10)));
                    }
                })
            })
            .collect();
        while std::fs::read_dir("/proc/self/task").unwrap().count() < 4 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        w.store(1, Ordering::Release);
        let t = std::time::Instant::now();
        wake(&w, u32::MAX);
        for s in sleepers {
            s.join().unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a sleeper was not woken"
        );
    }
}
