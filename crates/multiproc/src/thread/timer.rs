//! [`Timer`]: run a function in a thread after a delay, unless cancelled first
//! (Python's `threading.Timer`).

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::handle::Thread;
use crate::error::Result;

/// A thread that waits `interval`, then runs `f`, unless [`cancel`](Self::cancel)
/// is called first (Python's `threading.Timer(interval, f).start()`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::thread::Timer;
///
/// let t = Timer::start(Duration::from_millis(10), || 42)?;
/// assert_eq!(t.join()?, Some(42));
///
/// let t = Timer::start(Duration::from_secs(3600), || 42)?;
/// assert!(t.cancel()); // it had not run: it never will
/// assert_eq!(t.join()?, None); // returns at once
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Timer<T> {
    thread: Thread<Option<T>>,
    /// `true` once cancelled; the thread waits on the condition variable.
    state: Arc<(Mutex<State>, Condvar)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Cancelled,
    Running,
}

impl<T: Send + 'static> Timer<T> {
    /// Starts a thread that runs `f` once `interval` has passed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`](crate::ErrorKind::Start) if the OS refuses to create a
    /// thread.
    pub fn start<F>(interval: Duration, f: F) -> Result<Timer<T>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let state = Arc::new((Mutex::new(State::Waiting), Condvar::new()));
        let s = Arc::clone(&state);
        let thread = Thread::builder().name("timer").start(move || {
            let deadline = Instant::now().checked_add(interval);
            let (m, cv) = &*s;
            let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
            while *st == State::Waiting {
                let left = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3600),
                };
                if left.is_zero() {
                    *st = State::Running;
                    break;
                }
                st = cv
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let run = *st == State::Running;
            drop(st);
            run.then(f)
        })?;
        Ok(Timer { thread, state })
    }
}

impl<T> Timer<T> {
    /// Stops the timer if `f` has not started yet; returns `true` if it had not
    /// (then it never runs). Python's `cancel()`.
    pub fn cancel(&self) -> bool {
        let (m, cv) = &*self.state;
        let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
        if *st == State::Running {
            return false;
        }
        *st = State::Cancelled;
        cv.notify_all();
        true
    }

    /// Returns `true` until the timer thread has finished (ran `f`, or was
    /// cancelled).
    pub fn is_alive(&self) -> bool {
        self.thread.is_alive()
    }

    /// Waits for the timer: `Some(value)` of `f`, or `None` if it was cancelled.
    ///
    /// # Errors
    ///
    /// As [`Thread::join`]: [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) if
    /// `f` panicked.
    pub fn join(self) -> Result<Option<T>> {
        self.thread.join()
    }

    /// Waits at most `timeout` for the timer.
    ///
    /// # Errors
    ///
    /// As [`Thread::join_timeout`].
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<T>> {
        self.thread.join_timeout(timeout)
    }
}

impl<T> fmt::Debug for Timer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = *self.state.0.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Timer")
            .field("state", &st)
            .field("alive", &self.is_alive())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_after_the_interval() {
        let start = Instant::now();
        let t = Timer::start(Duration::from_millis(50), Instant::now).unwrap();
        let ran_at = t.join().unwrap().unwrap();
        assert!(ran_at.duration_since(start) >= Duration::from_millis(50));
    }

    #[test]
    fn cancel_before_it_runs_and_after() {
        let t = Timer::start(Duration::from_secs(3600), || 1).unwrap();
        assert!(t.is_alive());
        assert!(t.cancel());
        assert!(t.cancel());
        assert_eq!(t.join().unwrap(), None);
        let mut t = Timer::start(Duration::ZERO, || 2).unwrap();
        assert_eq!(t.join_timeout(Duration::from_secs(30)).unwrap(), Some(2));
        // Too late: it has run.
        let t = Timer::start(Duration::ZERO, || 3).unwrap();
        while t.is_alive() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!t.cancel());
        assert_eq!(t.join().unwrap(), Some(3));
    }

    #[test]
    fn a_panic_is_the_join_error() {
        let t = Timer::start(Duration::ZERO, || -> u8 { panic!("boom") }).unwrap();
        let e = t.join().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Panicked);
    }
}
