//! Threads with the same shape as [`Process`](crate::Process), and [`Timer`].
//!
//! A [`Thread`] runs a closure on a new OS thread of this process. It shares the
//! process's memory, so it is cheap to start and can capture anything `Send`; but a
//! fatal fault in it (a segfault, an abort) ends the whole process. A panic, in
//! contrast, is caught and handed back by [`Thread::join`] as an
//! [`Error`](crate::Error) of kind [`Panicked`](crate::ErrorKind::Panicked) with its
//! message and location.
//!
//! ```
//! use multiproc::Thread;
//!
//! let t = Thread::start(|| (1..=10).sum::<u32>())?;
//! assert_eq!(t.join()?, 55);
//! # Ok::<(), multiproc::Error>(())
//! ```
//!
//! Switching to a process is a one-word change when the function is a `fn` item
//! (see [`Process::start`](crate::Process::start)).

mod builder;
mod handle;
#[cfg(test)]
mod tests;
mod timer;

pub use builder::Builder;
pub use handle::Thread;
pub use timer::Timer;
