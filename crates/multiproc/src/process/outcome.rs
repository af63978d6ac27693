//! What a non-fork child sends back: the [`Outcome`] of its function, encoded as a
//! [`Reply`] with the exit code to leave with.

use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use super::exit_code::ChildExit;
use crate::error::{ErrorKind, RemotePanic};
use crate::ipc::codec;

/// What an entry produced.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    /// [`ChildExit::Value`], or [`ChildExit::Failed`] for a panic or an encoding
    /// failure.
    pub(crate) code: ChildExit,
}

/// The outcome of running a function in another process, as sent back to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome<R> {
    /// The function returned this value.
    Value(R),
    /// The function panicked.
    Panicked(RemotePanic),
    /// The argument could not be decoded, or the result could not be encoded.
    Failed(FailKind, String),
}

/// Why an entry could not produce a value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum FailKind {
    /// The argument did not decode.
    Argument,
    /// The result did not encode.
    Result,
    /// The child was built from a different binary.
    Binary,
}

impl FailKind {
    /// The kind of the [`Error`](crate::Error) the parent reports for it (a process's
    /// `join`, a pool task).
    pub(crate) fn error_kind(self) -> ErrorKind {
        match self {
            FailKind::Argument => ErrorKind::Decode,
            FailKind::Result => ErrorKind::Encode,
            FailKind::Binary => ErrorKind::BinaryMismatch,
        }
    }
}

/// Encodes an outcome; a result that fails to encode becomes a `Failed` outcome, and
/// one whose `Serialize` panics becomes that panic ([`ChildExit::Failed`]), as a panic
/// in the function itself does.
pub(crate) fn finish<R: Serialize>(outcome: &Outcome<R>, code: ChildExit) -> Reply {
    match crate::panic::catch(|| codec::encode(outcome)) {
        Ok(Ok(e)) => Reply {
            bytes: e.bytes,
            fds: e.fds,
            code,
        },
        Ok(Err(e)) => failure(FailKind::Result, e.to_string()),
        // A `RemotePanic` serializes without user code, so this cannot recurse again.
        Err(p) => finish::<()>(&Outcome::Panicked(p), ChildExit::Failed),
    }
}

/// A `Failed` outcome ([`ChildExit::Failed`]).
pub(crate) fn failure(kind: FailKind, message: String) -> Reply {
    let bytes = codec::encode(&Outcome::<()>::Failed(kind, message))
        .map(|e| e.bytes)
        .unwrap_or_default();
    Reply {
        bytes,
        fds: Vec::new(),
        code: ChildExit::Failed,
    }
}
