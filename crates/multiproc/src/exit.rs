//! How a child process ended, and Python's `exitcode` view of it.
//!
//! Below `process` (which re-exports [`ExitStatus`] and [`Signal`] as
//! `multiproc::process::{ExitStatus, Signal}`), so that the crate's [`Error`](crate::Error)
//! can carry them without importing a higher layer.

use std::fmt;

use crate::sys;

/// A signal number, with its conventional name.
///
/// # Examples
///
/// ```
/// use multiproc::process::Signal;
///
/// assert_eq!(Signal::from_raw(11).name(), Some("SIGSEGV"));
/// assert_eq!(Signal::SIGKILL.to_string(), "SIGKILL");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Signal(i32);

impl Signal {
    /// `SIGTERM`, sent by [`Process::terminate`](crate::Process::terminate).
    pub const SIGTERM: Signal = Signal(sys::signal::SIGTERM);
    /// `SIGKILL`, sent by [`Process::kill`](crate::Process::kill).
    pub const SIGKILL: Signal = Signal(sys::signal::SIGKILL);
    /// `SIGSEGV`, an invalid memory access.
    pub const SIGSEGV: Signal = Signal(sys::signal::SIGSEGV);
    /// `SIGABRT`, from `abort()`.
    pub const SIGABRT: Signal = Signal(sys::signal::SIGABRT);
    /// `SIGINT`, from Ctrl-C.
    pub const SIGINT: Signal = Signal(sys::signal::SIGINT);

    /// Wraps a raw signal number.
    pub const fn from_raw(signo: i32) -> Signal {
        Signal(signo)
    }

    /// The raw signal number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// The conventional name ("SIGSEGV"), if the number is a known signal.
    pub fn name(self) -> Option<&'static str> {
        sys::signal::name(self.0)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} ({})", self.0)
    }
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    /// It called `exit` (or returned) with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled {
        /// The signal.
        signal: Signal,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl ExitStatus {
    pub(crate) fn from_raw(raw: sys::pidfd::RawExit) -> ExitStatus {
        match raw {
            Ok(code) => ExitStatus::Exited(code),
            Err((sig, core)) => ExitStatus::Signaled {
                signal: Signal(sig),
                core_dumped: core,
            },
        }
    }

    /// Python's `exitcode`: the exit code, or minus the signal number.
    pub fn exitcode(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled { signal, .. } => -signal.0,
        }
    }

    /// Returns `true` for an exit with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(c) => Some(c),
            ExitStatus::Signaled { .. } => None,
        }
    }

    /// The signal that killed it, if one did.
    pub fn signal(self) -> Option<Signal> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled { signal, .. } => Some(signal),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(c) => write!(f, "exited with code {c}"),
            ExitStatus::Signaled {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by {signal}")?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}
