//! The child's side of a launch: the pre-`main` hook of a re-executed child, and the
//! code every non-fork child runs.
//!
//! A child started by [`Spawn`](crate::StartMethod::Spawn) (and the fork server) is
//! this very program, executed again with [`ENV`] naming an inherited socket. A
//! constructor in `.init_array`, [`BOOTSTRAP`], runs before `main` — before the test
//! harness in `cargo test`, before a doctest's body, before an example's `main` — sees
//! the variable, reads its [`Launch`] from the socket and never returns to `main`.
//! This is why users write no `init()` line: there is nothing to forget.
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
//! The launch itself is decoded as untrusted bytes ([`decode_launch`]), and its
//! function is resolved only in the executable it was made for
//! ([`BinaryToken`]).
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
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::entry;
use super::exit_code::ChildExit;
use super::outcome::{self, FailKind, Reply};
use crate::identity::{BinaryToken, EntryRef};
use crate::ipc::codec;
use crate::sys;
use crate::sys::socket::Peer;

/// The environment variable that makes a re-executed program a multiproc child.
pub(crate) const ENV: &str = "MULTIPROC_BOOTSTRAP_FD";

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
    /// The inherited read end of the parent's death pipe, or `-1`.
    pub(crate) death_fd: RawFd,
    /// If non-zero: the parent's pid, and its thread that started this child (or the
    /// fork server) is its main thread, so `PR_SET_PDEATHSIG` follows the process and
    /// replaces the death pipe.
    pub(crate) pdeathsig_ppid: i32,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    /// Become the fork server instead of running `entry`.
    pub(crate) server: bool,
    /// Environment changes to apply before running `entry`.
    pub(crate) env: super::env::Env,
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
    if launch.death_fd < -1 || launch.pdeathsig_ppid < 0 {
        return Err(
            crate::Error::new(crate::ErrorKind::Decode).with_message(format!(
                "launch message with impossible values (death_fd {}, pdeathsig_ppid {})",
                launch.death_fd, launch.pdeathsig_ppid
            )),
        );
    }
    Ok(launch)
}

/// Runs before `main` in every program that links multiproc.
#[used]
#[link_section = ".init_array"]
pub(crate) static BOOTSTRAP: extern "C" fn() = bootstrap_hook;

extern "C" fn bootstrap_hook() {
    let Some(value) = std::env::var_os(ENV) else {
        // A cluster worker host started by `MULTIPROC_WORKER` serves here and exits;
        // its own local workers are started with `ENV` and take the path below.
        #[cfg(feature = "cluster")]
        crate::pool::cluster::premain();
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
            child_entry(sock)
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

/// The body of a re-executed child: read the launch, then serve or run.
fn child_entry(sock: OwnedFd) -> ! {
    sys::signal::ignore_sigpipe();
    let frame = match sys::socket::recv_frame(sock.as_fd()) {
        Ok(Some(f)) => f,
        // The parent went away before telling us what to do.
        Ok(None) | Err(_) => sys::fork::exit_now(ChildExit::ParentGone.code()),
    };
    let launch = match decode_launch(&frame.payload) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "multiproc: bad launch message: {e}");
            sys::fork::exit_now(ChildExit::BadLaunch.code());
        }
    };
    if launch.server {
        super::forkserver::serve(sock, launch)
    } else {
        run_launch(sock, launch, frame.fds)
    }
}

/// Common child setup: die with the parent, name, stdio; then run the entry and exit.
pub(crate) fn run_launch(sock: OwnedFd, launch: Launch, mut fds: Vec<OwnedFd>) -> ! {
    crate::test_support::set_result_socket(std::os::fd::AsRawFd::as_raw_fd(&sock));
    if !watch_parent(launch.pdeathsig_ppid, launch.death_fd) {
        sys::fork::exit_now(ChildExit::Orphaned.code());
    }
    if let Some(name) = &launch.name {
        sys::fork::set_process_name(name);
        // The process that made our result socket (the pair's creator) started us.
        super::current::enter_child(name, sys::socket::peer_pid(sock.as_fd()));
    }
    launch.env.apply();
    let mut rest = fds.drain(..).collect::<std::collections::VecDeque<_>>();
    if launch.stdout {
        if let Some(fd) = rest.pop_front() {
            let _ = sys::stdio::redirect_stdout(&fd);
        }
    }
    if launch.stderr {
        if let Some(fd) = rest.pop_front() {
            let _ = sys::stdio::redirect_stderr(&fd);
        }
    }
    let reply = match entry::resolve(launch.entry, &launch.token) {
        Some(entry) => entry(&launch.arg, rest.into()),
        None => outcome::failure(
            FailKind::Binary,
            "the child runs a different build of the program than its parent".into(),
        ),
    };
    finish(sock, reply, false)
}

/// Arms parent-death detection: `PR_SET_PDEATHSIG` when `pdeathsig_ppid` is set, else
/// the death pipe `death_fd` (if `>= 0`); closes the inherited pipe descriptor either
/// way. Returns `false` if the parent is already gone.
pub(crate) fn watch_parent(pdeathsig_ppid: i32, death_fd: RawFd) -> bool {
    if pdeathsig_ppid != 0 {
        if death_fd >= 0 {
            sys::deathsig::close_inherited(death_fd);
        }
        return sys::deathsig::arm_pdeathsig(pdeathsig_ppid);
    }
    death_fd < 0 || arm_death(death_fd)
}

/// Arms parent-death detection on `fd` and closes the inherited descriptor.
/// Returns `false` if the parent is already gone.
pub(crate) fn arm_death(fd: RawFd) -> bool {
    let alive = sys::deathsig::arm(fd).unwrap_or(true);
    sys::deathsig::close_inherited(fd);
    alive
}

/// Sends the reply, flushes stdout and exits with the reply's code (see
/// [`finish_with`] for `inherited_threads`).
pub(crate) fn finish(sock: OwnedFd, reply: Reply, inherited_threads: bool) -> ! {
    let fds = sys::socket::borrow_all(&reply.fds);
    finish_with(
        sock.as_fd(),
        &reply.bytes,
        &fds,
        reply.code,
        inherited_threads,
    )
}

/// Sends an encoded reply with its descriptors, flushes stdout and exits with
/// `code`. `inherited_threads`: this process was forked from one whose other threads
/// may have held std's stdout lock at the fork (see [`flush_stdout`]).
pub(crate) fn finish_with(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    code: ChildExit,
    inherited_threads: bool,
) -> ! {
    // If the parent is gone the reply has nowhere to go; exiting is all that is left.
    let _ = sys::socket::send_frame(sock, bytes, fds);
    flush_stdout(inherited_threads);
    sys::fork::exit_now(code.code())
}

/// How long a child at exit waits for std's stdout lock before it gives up on the
/// buffer (see [`flush_stdout`]).
const STDOUT_LOCK_WAIT: Duration = Duration::from_millis(100);

/// Writes out what std's stdout buffer holds (the end of a line printed without a
/// newline: `println!` writes complete lines at once), as a process's exit does,
/// without waiting forever for a lock that no thread will release.
///
/// A child exits with `_exit` (no `atexit` handlers or destructors of the parent's
/// state run twice), so this is its only flush. std's stdout is behind a lock; in a
/// child forked from a process with other threads, one of them may have held it at
/// the fork, and it stays locked forever in the child (issue 9, item 9: 12 of 200
/// such children hung here). std's own exit path only *tries* that lock; std offers
/// no `try_lock`, so:
/// - in a process that inherited no other threads (a `Spawn` or `ForkServer` child,
///   or a `Fork` child of a process with no other threads), a holder of the lock is
///   a live thread of this process, which releases it: flush, as a print would;
/// - otherwise a helper thread takes the lock and flushes, and this thread waits
///   [`STDOUT_LOCK_WAIT`] for it to get the lock (then for the write to finish). If
///   it does not get the lock, the buffer is left unwritten: its contents belong to
///   the thread that held the lock, a copy of the parent's.
///
/// stderr is unbuffered in std: nothing to flush, and its lock is not taken.
fn flush_stdout(inherited_threads: bool) {
    if !inherited_threads {
        let _ = std::io::stdout().flush();
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let helper = std::thread::Builder::new()
        .name("multiproc-flush".into())
        .spawn(move || {
            let mut out = std::io::stdout().lock();
            let _ = tx.send(());
            let _ = out.flush();
            drop(out);
            let _ = tx.send(());
        });
    if helper.is_ok() && rx.recv_timeout(STDOUT_LOCK_WAIT).is_ok() {
        let _ = rx.recv();
    }
}

/// Makes sure the linker keeps [`BOOTSTRAP`]: called on every path that re-executes.
pub(crate) fn keep_hook_linked() {
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
