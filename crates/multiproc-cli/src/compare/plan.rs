//! How much time each measurement may take, by mode.

use std::time::Duration;

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// `--quick`.
    pub(crate) quick: bool,
    /// Workers in the parallel sections.
    pub(crate) workers: usize,
    /// CPUs this process may run on: no parallel run can be faster than this many times.
    pub(crate) cpus: usize,
}

impl Plan {
    /// `"quick"` or `"full"`.
    pub(crate) fn mode(&self) -> &'static str {
        if self.quick {
            "quick"
        } else {
            "full"
        }
    }

    /// A time budget: `full_ms` in a full run, a sixth of it in a quick one.
    pub(crate) fn budget(&self, full_ms: u64) -> Duration {
        Duration::from_millis(if self.quick { full_ms / 6 } else { full_ms })
    }

    /// `full` in a full run, `quick` in a quick one.
    pub(crate) fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}
