//! The pre-`main` hook of a re-executed child: who may launch one, and what the hook
//! does with the variable that names its socket.
//!
//! A child started by [`Spawn`](crate::StartMethod::Spawn) (and the fork server) is
//! this very program, executed again with [`ENV`] naming an inherited socket. A hook
//! registered with `sys::premain` ([`BOOTSTRAP`]) runs before `main` — before the test
//! harness in `cargo test`, before a doctest's body, before an example's `main` — sees
//! the variable, reads its [`Launch`](super::launch::Launch) from the socket and never
//! returns to `main` (the child's runtime, `process::child`, takes over). This is why
//! users write no `init()` line: there is nothing to forget.
//!
//! Programs that do not set the variable pay one `getenv` at startup.
//!
//! # Who may launch a child
//!
//! The hook runs in every program that links multiproc, whoever starts it, so the
//! variable and the socket are input from outside; and a launch names the function to
//! run, so whoever sends one chooses code this process runs. The hook acts on a launch
//! only when all of these hold:
//!
//! - the variable names an open, connected Unix stream socket (3 and above);
//! - the socket's other end was made by this process's parent (`SO_PEERCRED`'s pid is
//!   `getppid()`), running as this process's effective user. multiproc's parent makes
//!   the socket pair itself just before it spawns the child; the fork server is such a
//!   child. The children the fork server forks (with `CLONE_PARENT`, so their parent is
//!   the requesting process, not the server) never come through here: they get their
//!   launch in memory from the server, which got it over the socket of its own,
//!   authenticated launch;
//! - the process is not in secure-execution mode (`AT_SECURE`: executed set-user-ID,
//!   set-group-ID or with file capabilities).
//!
//! The threat model: then the only process that can make this program run a function
//! of its choice is its parent, as the same user, without a change of privilege at
//! `exec` — a process that can run any code in it already (it chooses the child's
//! environment, and the dynamic loader honours `LD_PRELOAD` exactly when `AT_SECURE` is
//! 0). What the checks stop: a user who executes a set-user-ID copy of a program with a
//! forged launch (this wrote a root-owned file before the check); any process other
//! than the parent — a sibling, the holder of a passed-on descriptor, a stale variable
//! naming an unrelated socket — feeding a launch to a process someone else started.
//! The launch itself is decoded as untrusted bytes
//! ([`decode_launch`](super::launch::decode_launch)), and its function is resolved only
//! in the executable it was made for ([`BinaryToken`](crate::identity::BinaryToken)).
//!
//! | [`ENV`] | the hook |
//! |---|---|
//! | absent | nothing |
//! | not a number from 3 up, or not an open, connected Unix stream socket | one warning line on stderr; `main` runs |
//! | a socket from the parent, same user, not secure | reads the launch and runs it; `main` never runs |
//! | a socket from the parent, in secure mode or from another user | one error line; exits with [`ChildExit::Refused`] |
//! | a socket from a live process that is not the parent | one error line; exits with [`ChildExit::Refused`] |
//! | a socket whose maker has exited (the parent died before the child started) | exits with [`ChildExit::ParentGone`] |
//!
//! A socket from someone else ends the process rather than running `main`: a real
//! child whose launcher is not its parent (a wrapper given to
//! [`Builder::executable`](super::Builder::executable) that forks instead of `exec`ing)
//! would otherwise run the parent's `main`, which may start children in turn without
//! end.
//!
//! # Safety
//!
//! Two `unsafe` blocks take ownership of inherited descriptors by number
//! (`OwnedFd::from_raw_fd`): the socket [`ENV`] names, once [`judge`] found it open and
//! made by this process's parent; and the read end of the parent's death pipe, once
//! found open at the number where `spawn::spawn_child` puts it
//! (`FIRST_KEPT_FD + 1`), which the launch names. The parent placed both for this
//! process alone. The hook runs before `main`, removes the variable first and never
//! returns to `main` once it takes them, so nothing else in the process wraps them.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::child;
use super::exit_code::ChildExit;
use super::launch::decode_launch;
use crate::sys;
use crate::sys::socket::Peer;

/// The environment variable that makes a re-executed program a multiproc child.
pub(crate) const ENV: &str = "MULTIPROC_BOOTSTRAP_FD";

// Runs before `main` in every program that links multiproc, first of the hooks (a
// cluster worker host's hook comes after it: the host's own local workers are started
// with `ENV`, and take this one).
sys::premain::premain_hook!(BOOTSTRAP, 0, bootstrap_hook);

fn bootstrap_hook() {
    let Some(value) = std::env::var_os(ENV) else {
        return;
    };
    // Not inherited by anything this process starts itself, nor seen by its `main`.
    std::env::remove_var(ENV);
    let here = Here {
        ppid: sys::proc::ppid().unwrap_or(0),
        euid: sys::proc::euid(),
        secure: sys::proc::secure_execution(),
    };
    let verdict = judge(&value, &here, |fd| {
        let peer = sys::socket::inherited_peer(fd)?;
        let alive = u32::try_from(peer.pid).is_ok_and(|p| !sys::thread::is_dead(p, 0));
        Ok((peer, alive))
    });
    let mut err = std::io::stderr();
    match verdict {
        Verdict::Launch(fd) => {
            // SAFETY: `judge` found `fd` open, a socket whose other end our parent made:
            // `spawn::spawn_child` put it at this number and named it in `ENV` for this
            // process to own. Nothing here owns it yet: we run before `main`, and the
            // variable is removed, so no one else takes it from there.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            launched(sock)
        }
        Verdict::Ignore(why) => {
            let _ = writeln!(err, "multiproc: ignoring {ENV}={}: {why}", shown(&value));
        }
        Verdict::Refuse(why) => {
            let _ = writeln!(
                err,
                "multiproc: refusing the launch on {ENV}={}: {why}",
                shown(&value)
            );
            sys::fork::exit_now(ChildExit::Refused.code());
        }
        Verdict::ParentGone => sys::fork::exit_now(ChildExit::ParentGone.code()),
    }
}

/// The body of a re-executed child once its socket is known: read the launch, take the
/// death pipe it inherited, then serve or run.
fn launched(sock: OwnedFd) -> ! {
    sys::signal::ignore_sigpipe();
    let frame = match sys::socket::recv_frame(sock.as_fd()) {
        Ok(Some(f)) => f,
        // The parent went away before telling us what to do.
        Ok(None) | Err(_) => sys::fork::exit_now(ChildExit::ParentGone.code()),
    };
    let bad_launch = |why: &dyn std::fmt::Display| -> ! {
        let _ = writeln!(std::io::stderr(), "multiproc: bad launch message: {why}");
        sys::fork::exit_now(ChildExit::BadLaunch.code())
    };
    let launch = decode_launch(&frame.payload).unwrap_or_else(|e| bad_launch(&e));
    let pipe = launch.death.pipe().map(|fd| {
        adopt_death_pipe(fd, sock.as_raw_fd())
            .unwrap_or_else(|| bad_launch(&format!("no death pipe at descriptor {fd}")))
    });
    if launch.server {
        super::forkserver::serve(sock, launch, pipe)
    } else {
        child::run_launch(sock, launch, frame.fds, pipe)
    }
}

/// Takes ownership of the read end of the parent's death pipe, which
/// `spawn::spawn_child` places at `FIRST_KEPT_FD + 1` (next to the socket, `sock`):
/// `None` if the launch names another number, or nothing is open there.
fn adopt_death_pipe(fd: RawFd, sock: RawFd) -> Option<OwnedFd> {
    if fd != sys::fork::FIRST_KEPT_FD + 1 || fd == sock || !sys::fork::is_open(fd) {
        return None;
    }
    // SAFETY: `fd` is open (checked above) at the number where our parent put the death
    // pipe for this process alone, and it is not the socket this process already owns.
    // Nothing else here wraps it: we run before `main`, which never runs in this process.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// At most 40 characters of the variable, for a one-line message.
fn shown(value: &OsStr) -> String {
    let s = format!("{value:?}");
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// What the hook does with the value of [`ENV`] (see the module docs).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Read the launch from this socket and run it.
    Launch(RawFd),
    /// Not ours: warn with the reason, and let `main` run.
    Ignore(String),
    /// A launch this process must not run: print the reason and exit.
    Refuse(String),
    /// The parent that made the socket has exited: exit quietly.
    ParentGone,
}

/// The facts about this process a [`Verdict`] depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Here {
    /// `getppid()`.
    pub(crate) ppid: i32,
    /// `geteuid()`.
    pub(crate) euid: u32,
    /// Secure-execution mode (`AT_SECURE`).
    pub(crate) secure: bool,
}

/// Decides what to do with the value of [`ENV`]. `inspect` tells, for a descriptor
/// number, who made the other end of the socket and whether that process is alive (or
/// why it cannot: not open, not a Unix stream socket).
pub(crate) fn judge(
    value: &OsStr,
    here: &Here,
    inspect: impl FnOnce(RawFd) -> io::Result<(Peer, bool)>,
) -> Verdict {
    let fd = match value.to_str() {
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<RawFd>().ok()
        }
        _ => None,
    };
    let Some(fd) = fd.filter(|&fd| fd >= 3) else {
        return Verdict::Ignore("not a descriptor number (3 or more)".into());
    };
    let (peer, alive) = match inspect(fd) {
        Ok(p) => p,
        Err(e) => return Verdict::Ignore(format!("descriptor {fd}: {e}")),
    };
    if peer.pid <= 0 {
        return Verdict::Ignore(format!("descriptor {fd} is not a connected socket"));
    }
    if peer.pid != here.ppid {
        if !alive {
            return Verdict::ParentGone;
        }
        return Verdict::Refuse(format!(
            "its socket was made by process {}, not by this process's parent {}",
            peer.pid, here.ppid
        ));
    }
    if peer.uid != here.euid {
        return Verdict::Refuse(format!(
            "its socket was made by user {}, this process runs as user {}",
            peer.uid, here.euid
        ));
    }
    if here.secure {
        return Verdict::Refuse(
            "this process runs in secure-execution mode (set-user-ID, set-group-ID or file \
             capabilities)"
                .into(),
        );
    }
    Verdict::Launch(fd)
}

/// Makes sure the linker keeps the pre-`main` constructor and [`BOOTSTRAP`]: called on
/// every path that re-executes.
pub(crate) fn keep_hook_linked() {
    sys::premain::keep_linked();
    std::hint::black_box(&BOOTSTRAP);
}

/// Fails loudly if this process was meant to be a multiproc child but the hook did not
/// run (for example, a platform without `.init_array`): without this check the child
/// would run the parent's `main` again.
pub(crate) fn check_not_orphaned_bootstrap() -> crate::Result<()> {
    if std::env::var_os(ENV).is_some() {
        return Err(
            crate::Error::new(crate::ErrorKind::Start).with_message(format!(
                "{ENV} is set but multiproc's startup hook did not run in this process; \
             the program's main was entered by mistake"
            )),
        );
    }
    Ok(())
}
