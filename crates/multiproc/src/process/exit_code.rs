//! The exit codes a multiproc child chooses itself, besides its function's own
//! `exit(n)`: one name for each, used by the child that exits with it and by every
//! test that expects it.

/// Why a non-fork child (or a process that refused a launch) ended, as its exit code.
///
/// 0 and 1 follow Python (success, an exception); the others are above the codes
/// programs commonly use and Rust's 101 for a panic out of `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum ChildExit {
    /// The function returned, and its value was sent.
    Value = 0,
    /// The function panicked, or its argument or result failed to (de)serialize
    /// (Python's exit code for an exception).
    Failed = 1,
    /// The parent went away before it could tell the child what to run.
    ParentGone = 102,
    /// The launch message did not decode.
    BadLaunch = 103,
    /// The parent was already gone when the child armed its death watch.
    Orphaned = 104,
    /// The process refused a launch (see `process::bootstrap`'s "who may launch").
    Refused = 105,
}

impl ChildExit {
    /// The exit code.
    pub(crate) const fn code(self) -> i32 {
        self as i32
    }
}
