//! Environment changes a child applies to itself before it runs its function
//! ([`Builder::env`](super::Builder::env) and friends).
//!
//! Every start method applies them the same way, in the child: a forked or
//! re-executed child is single-threaded at that point. (A `Fork` child of a process
//! that runs other threads inherits the usual risk that one of them held the
//! environment's lock at the moment of the fork; see
//! [`Builder::allow_threads`](super::Builder::allow_threads).)

use std::ffi::OsString;

use serde::{Deserialize, Serialize};

/// The changes, in order: first clear (if asked), then set or remove each variable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Env {
    pub(crate) clear: bool,
    /// `(name, Some(value))` sets, `(name, None)` removes.
    pub(crate) vars: Vec<(OsString, Option<OsString>)>,
}

impl Env {
    /// Whether there is nothing to do (the common case: no work in the child).
    pub(crate) fn is_empty(&self) -> bool {
        !self.clear && self.vars.is_empty()
    }

    /// Applies the changes to this (child) process's environment.
    pub(crate) fn apply(&self) {
        if self.is_empty() {
            return;
        }
        if self.clear {
            for (k, _) in std::env::vars_os() {
                std::env::remove_var(k);
            }
        }
        for (k, v) in &self.vars {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}
