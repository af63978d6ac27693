//! The [`Launch`] message: everything a non-fork child needs to know, sent as the first
//! frame on its socket (or to the fork server, for each child it forks), and
//! [`decode_launch`], which reads it as untrusted bytes.

use std::os::fd::RawFd;

use serde::{Deserialize, Serialize};

use crate::identity::{BinaryToken, EntryRef};
use crate::ipc::codec;

/// Everything a non-fork child needs to know, sent as the first frame on its socket.
///
/// The frame's descriptors are: captured stdout (if `stdout`), captured stderr (if
/// `stderr`), then the argument's own descriptors.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Launch {
    pub(crate) token: BinaryToken,
    pub(crate) entry: EntryRef,
    pub(crate) arg: Vec<u8>,
    pub(crate) name: Option<String>,
    /// How the child notices its parent's death.
    pub(crate) death: DeathWatch,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    /// Become the fork server instead of running `entry`.
    pub(crate) server: bool,
    /// Environment changes to apply before running `entry`.
    pub(crate) env: super::env::Env,
}

/// How a child notices that its parent process died (see `sys::deathsig`), as the
/// parent chose it (`Builder::die_with_parent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DeathWatch {
    /// It does not: the child may outlive its parent.
    Off,
    /// The parent's death pipe, whose read end the child holds at this descriptor
    /// number (inherited, not owned by anything yet).
    Pipe(RawFd),
    /// `PR_SET_PDEATHSIG` against the parent `ppid`: the parent thread that started
    /// the child (for a fork server's child: the server) is the parent's main thread,
    /// so the signal follows the parent process. `pipe`: the death pipe's read end the
    /// child inherited as well, if any; a child closes it once the signal is armed, a
    /// fork server keeps it for the children it forks.
    Pdeathsig { ppid: i32, pipe: Option<RawFd> },
}

impl DeathWatch {
    /// The watch made of a death pipe's read end and a parent pid for
    /// `PR_SET_PDEATHSIG`, either optional; the signal wins when there is a pid.
    pub(crate) fn from_parts(pipe: Option<RawFd>, ppid: Option<i32>) -> DeathWatch {
        match (pipe, ppid) {
            (None, None) => DeathWatch::Off,
            (Some(fd), None) => DeathWatch::Pipe(fd),
            (pipe, Some(ppid)) => DeathWatch::Pdeathsig { ppid, pipe },
        }
    }

    /// The death pipe's read end, if the child inherits one.
    pub(crate) fn pipe(self) -> Option<RawFd> {
        match self {
            DeathWatch::Off => None,
            DeathWatch::Pipe(fd) => Some(fd),
            DeathWatch::Pdeathsig { pipe, .. } => pipe,
        }
    }

    /// The parent pid to arm `PR_SET_PDEATHSIG` against, if the signal is used.
    pub(crate) fn ppid(self) -> Option<i32> {
        match self {
            DeathWatch::Pdeathsig { ppid, .. } => Some(ppid),
            DeathWatch::Off | DeathWatch::Pipe(_) => None,
        }
    }

    /// The same watch with the pipe's read end at another number (where the child gets
    /// it), or without the pipe.
    pub(crate) fn with_pipe(self, pipe: Option<RawFd>) -> DeathWatch {
        DeathWatch::from_parts(pipe.filter(|_| self.pipe().is_some()), self.ppid())
    }

    /// Whether a decoded watch names possible values: descriptors are not negative,
    /// pids are positive.
    fn is_possible(self) -> bool {
        self.pipe().is_none_or(|fd| fd >= 0) && self.ppid().is_none_or(|p| p > 0)
    }
}

/// Decodes a launch message: the payload of the first frame on a child's socket, or
/// of a request to the fork server.
///
/// A pure function of the bytes, which come from another process: it never panics,
/// allocates in proportion to `bytes` (postcard checks a string's length against the
/// bytes left; serde caps what a sequence's length prefix preallocates) and rejects
/// impossible field values. Fuzz targets call it by this name.
///
/// # Errors
///
/// [`ErrorKind::Decode`](crate::ErrorKind::Decode) if the bytes are not a launch.
pub(crate) fn decode_launch(bytes: &[u8]) -> crate::Result<Launch> {
    let launch: Launch = codec::decode(bytes, Vec::new())?;
    if !launch.death.is_possible() {
        return Err(
            crate::Error::new(crate::ErrorKind::Decode).with_message(format!(
                "launch message with an impossible death watch ({:?})",
                launch.death
            )),
        );
    }
    Ok(launch)
}

#[cfg(test)]
mod tests {
    use super::DeathWatch;

    #[test]
    fn death_watch_parts_round_trip() {
        for pipe in [None, Some(4)] {
            for ppid in [None, Some(77)] {
                let w = DeathWatch::from_parts(pipe, ppid);
                assert_eq!((w.pipe(), w.ppid()), (pipe, ppid), "{w:?}");
                assert_eq!(w.with_pipe(Some(9)).pipe(), pipe.map(|_| 9), "{w:?}");
                assert_eq!(w.with_pipe(None), DeathWatch::from_parts(None, ppid));
            }
        }
    }

    #[test]
    fn impossible_watches_are_refused() {
        assert!(!DeathWatch::Pipe(-1).is_possible());
        assert!(!DeathWatch::Pdeathsig {
            ppid: 0,
            pipe: None
        }
        .is_possible());
        assert!(!DeathWatch::Pdeathsig {
            ppid: 5,
            pipe: Some(-3)
        }
        .is_possible());
        assert!(DeathWatch::Pdeathsig {
            ppid: 5,
            pipe: Some(4)
        }
        .is_possible());
        assert!(DeathWatch::Off.is_possible());
    }
}
