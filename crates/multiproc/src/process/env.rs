//! Environment changes a child applies to itself before it runs its function
//! ([`Builder::env`](super::Builder::env) and friends).
//!
//! Every start method applies them the same way, in the child: a forked or
//! re-executed child is single-threaded at that point, and the changes go straight
//! to `environ`, so that a `Fork` child never waits for std's environment lock,
//! which another thread of the parent may have held at the fork.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::sys;

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
    ///
    /// Through `environ` directly, not `std::env::set_var`: std's environment lock
    /// may have been held by another thread of a `Fork` child's parent at the fork,
    /// and would then stay locked forever in the child (issue 9, item 9). The child
    /// is single-threaded here, so nothing else reads the environment meanwhile.
    pub(crate) fn apply(&self) {
        if self.is_empty() {
            return;
        }
        let mut entries = if self.clear {
            Vec::new()
        } else {
            sys::fork::environ_in_child()
        };
        for (k, v) in &self.vars {
            let k = k.as_bytes();
            entries.retain(|e| e.split(|&b| b == b'=').next() != Some(k));
            if let Some(v) = v {
                entries.push([k, b"=", v.as_bytes()].concat());
            }
        }
        let entries = entries
            .into_iter()
            .filter_map(|e| CString::new(e).ok())
            .collect();
        sys::fork::replace_environ_in_child(entries);
    }
}
