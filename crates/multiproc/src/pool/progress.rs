//! The optional progress bar of `map` and `imap` (the `progress` feature, indicatif).

/// A progress bar that is drawn only when enabled and the length is known.
pub(crate) struct Progress {
    #[cfg(feature = "progress")]
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// A bar for `len` items, if `enabled` (always off without the `progress` feature).
    #[cfg_attr(not(feature = "progress"), allow(unused_variables))]
    pub(crate) fn new(enabled: bool, len: Option<usize>) -> Progress {
        #[cfg(feature = "progress")]
        {
            let bar = match (enabled, len) {
                (true, Some(n)) => Some(indicatif::ProgressBar::new(n as u64)),
                _ => None,
            };
            Progress { bar }
        }
        #[cfg(not(feature = "progress"))]
        Progress {}
    }

    #[cfg_attr(not(feature = "progress"), allow(unused_variables))]
    pub(crate) fn inc(&self, n: usize) {
        #[cfg(feature = "progress")]
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
    }

    /// Draws the bar one last time where it is and leaves it on the screen.
    ///
    /// `abandon`, not indicatif's `finish`: `finish` first moves the bar to its
    /// length, so a bar that missed items would end full all the same.
    pub(crate) fn finish(&self) {
        #[cfg(feature = "progress")]
        if let Some(b) = &self.bar {
            b.abandon();
        }
    }
}
