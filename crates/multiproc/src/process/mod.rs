//! Child processes with the same shape as [`Thread`](crate::Thread).
//!
//! A [`Process`] runs a function in a separate process with its own memory. A crash in
//! it — a panic, a segfault, an abort, `exit(3)`, a `SIGKILL` from outside — ends only
//! that process, and [`Process::join`] tells you precisely which one happened:
//!
//! | how the child ended | `join()` returns | `exitcode()` |
//! |---|---|---|
//! | returned `v` | `Ok(v)` | `Some(0)` |
//! | panicked | [`ErrorKind::Panicked`](crate::ErrorKind::Panicked), message and location | `Some(1)` |
//! | called `exit(n)` | [`ErrorKind::Exited`](crate::ErrorKind::Exited) | `Some(n)` |
//! | killed by a signal | [`ErrorKind::Signaled`](crate::ErrorKind::Signaled), signal name, core dump flag | `Some(-signo)` |
//! | result failed to decode | [`ErrorKind::Decode`](crate::ErrorKind::Decode) | `Some(0)` |
//! | could not start | [`ErrorKind::Start`](crate::ErrorKind::Start) with the errno | — |
//!
//! # Start methods
//!
//! | | [`Fork`](StartMethod::Fork) | [`ForkServer`](StartMethod::ForkServer) (default) | [`Spawn`](StartMethod::Spawn) |
//! |---|---|---|---|
//! | how | `fork()` this process | a clean server process forks it | re-execute this program |
//! | function | any closure ([`Builder::fork`]) or `fn` | `fn` item or non-capturing closure + serde argument | same |
//! | parent runs threads | refused unless [`Builder::allow_threads`] | safe | safe |
//! | child starts with | a copy of the parent's memory | the server's clean state | a fresh program |
//!
//! A function for `ForkServer` and `Spawn` must be a `fn` item or a closure that
//! captures nothing: the child finds its code by address in the same executable (see
//! the `identity` module's docs), so there is no registration and no `init()` line to
//! add, in binaries, tests, doctests and examples alike. A capturing closure is a
//! compile-time error that names the fix: pass the data as the argument with
//! [`Process::start_with`], or fork.
//!
//! # Lifetime
//!
//! A child dies with its parent process by default ([`Builder::die_with_parent`]),
//! whichever thread started it. Dropping a `Process` without joining it leaves the
//! child running (as with `std::process::Child`, and Python) unless
//! [`Builder::kill_on_drop`] is set; either way it is reaped when it exits, so no
//! zombie is left behind.
//!
//! # Examples
//!
//! ```
//! use multiproc::{Process, StartMethod};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! for method in StartMethod::ALL {
//!     let p = Process::builder().start_method(method).start_with(square, 12)?;
//!     assert_eq!(p.join()?, 144);
//! }
//! # Ok::<(), multiproc::Error>(())
//! ```

pub(crate) mod bootstrap;
mod builder;
mod child;
mod current;
pub(crate) mod entry;
mod env;
mod exit_code;
mod fork;
mod forkserver;
mod handle;
pub(crate) mod launch;
pub(crate) mod outcome;
pub(crate) mod reaper;
mod spawn;
mod start_method;
#[cfg(test)]
mod tests;

pub use crate::exit::{ExitStatus, Signal};
pub use builder::Builder;
pub(crate) use child::result_socket;
pub use current::{
    active_children, current_process, parent_process, ChildInfo, CurrentProcess, ParentProcess,
    MAIN_PROCESS_NAME,
};
pub use forkserver::preload_forkserver;
pub use handle::{Output, Process};
pub use start_method::StartMethod;
