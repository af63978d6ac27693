//! The `Spawn` start method: re-execute this program and hand the child its [`Launch`].
//!
//! `posix_spawn` (glibc uses `clone(CLONE_VM | CLONE_VFORK)`, so the cost does not grow
//! with the parent's memory) starts `/proc/self/exe` — the very file this process runs,
//! even if it was replaced on disk since — with two inherited descriptors: one end of a
//! socket pair (descriptor 3, named in [`ENV`]), and the
//! parent's death pipe (4). Nothing else leaks into the child: every other descriptor
//! above stderr is closed before `exec`, including those the program opened without
//! close-on-exec, as Python's `spawn` does. The launch frame follows on the socket, with
//! the descriptors the child is handed; the child's startup hook reads it before `main`.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::bootstrap::{self, ENV};
use super::launch::Launch;
use crate::ipc::codec;
use crate::sys;

/// A freshly started child, before a [`Process`](crate::Process) wraps it.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    /// The parent's end of the child's socket.
    pub(crate) sock: OwnedFd,
}

/// Starts `exe` (default: this program) as a multiproc child running `launch`.
///
/// The death pipe `launch.death` names, if any, must be a descriptor of this process;
/// the child gets it at another number, which the launch it receives names. `fds` go with the launch
/// frame.
pub(crate) fn spawn_child(
    mut launch: Launch,
    fds: &[BorrowedFd<'_>],
    exe: Option<&OsStr>,
) -> io::Result<Started> {
    bootstrap::keep_hook_linked();
    let (ours, theirs) = sys::socket::pair()?;
    // The child's descriptors, in the order `sys::fork::spawn` numbers them.
    let mut keep = vec![theirs.as_raw_fd()];
    if let Some(fd) = launch.death.pipe() {
        keep.push(fd);
        launch.death = launch.death.with_pipe(Some(sys::fork::FIRST_KEPT_FD + 1));
    }
    let payload = codec::encode(&launch).map_err(io::Error::from)?.bytes;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != ENV)
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("{ENV}={}", sys::fork::FIRST_KEPT_FD)).expect("no NUL"));
    let exe_c = match exe {
        Some(p) => {
            CString::new(p.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?
        }
        None => CString::new("/proc/self/exe").expect("no NUL"),
    };
    let argv0 = argv0();
    let pid = sys::fork::spawn(&exe_c, &argv0, &env, &keep)?;
    drop(theirs);
    let pidfd = sys::pidfd::open(pid)?;
    // A child that died at once (a different program, say) closes its end: the send
    // then fails with EPIPE, and `join` reports how the child ended.
    let _ = sys::socket::send_frame(ours.as_fd(), &payload, fds);
    Ok(Started {
        pid,
        pidfd,
        sock: ours,
    })
}

/// The parent's `argv[0]`, so `ps` shows the child as the same program.
fn argv0() -> CString {
    std::env::args_os()
        .next()
        .and_then(|a| CString::new(a.as_bytes()).ok())
        .unwrap_or_else(|| c"multiproc-child".to_owned())
}
