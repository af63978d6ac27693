//! Synchronization primitives shared by threads *and* processes.
//!
//! Every primitive here lives in shared memory, so the same object works between
//! threads of one process and between processes started by any start method: clone
//! it for a thread, pass it as the argument of
//! [`Process::start_with`](crate::Process::start_with) for a child.
//!
//! | type | Python | notes |
//! |---|---|---|
//! | [`Lock`] | `Lock` | guard-based; reports a dead holder as [`OwnerDied`] |
//! | [`RLock`] | `RLock` | re-entrant; release by a non-owner is an error |
//! | [`Semaphore`], [`BoundedSemaphore`] | same | over-release of a bounded one is an error |
//! | [`Event`] | `Event` | |
//! | [`Condition`] | `Condition` | std `Condvar` calling convention, paired with a [`Lock`] |
//! | [`Barrier`] | `Barrier` | parties, action, timeout, abort, reset, broken state |
//!
//! Blocking calls come in three forms: `x` (blocks), `try_x` (never blocks) and
//! `x_timeout` (blocks at most a `Duration`).
//!
//! The locks survive the death of their holder: where Python's `multiprocessing.Lock`
//! hangs forever, [`Lock::lock`] returns [`OwnerDied`] carrying the guard, and the
//! caller can repair the protected data and go on.
//!
//! ```
//! use multiproc::{Lock, Process};
//!
//! fn die_holding(lock: Lock) {
//!     let guard = lock.lock().unwrap();
//!     std::mem::forget(guard);
//!     std::process::abort();
//! }
//!
//! let lock = Lock::new()?;
//! let _ = Process::start_with(die_holding, lock.clone())?.join();
//! let guard = lock.lock().unwrap_or_else(|died| died.into_inner());
//! drop(guard);
//! # Ok::<(), multiproc::Error>(())
//! ```

mod barrier;
mod condition;
mod event;
mod layout;
mod lock;
mod owner_died;
pub(crate) mod primitive;
mod rlock;
mod robust;
mod semaphore;

pub use barrier::Barrier;
pub use condition::Condition;
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use owner_died::{LockResult, OwnerDied, TryLockError, TryLockResult};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

#[cfg(test)]
mod tests;
