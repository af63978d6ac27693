//! What every measuring section gets from the run.

use indicatif::ProgressBar;

use super::plan::Plan;

/// What every section gets: the sizes of the run and the progress display.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The sizes of this run.
    pub(crate) plan: Plan,
    /// Shows what is being measured; hidden when there is no terminal.
    pub(crate) progress: &'a ProgressBar,
}

impl Ctx<'_> {
    /// Shows `what` as the current step.
    pub(crate) fn step(&self, what: &str) {
        self.progress.set_message(what.to_owned());
        self.progress.tick();
    }
}
