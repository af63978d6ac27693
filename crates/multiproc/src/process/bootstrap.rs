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
#![allow(unsafe_code)]

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use super::function::{self, BinaryToken, EntryRef, FailKind, Reply};
use crate::ipc::codec;
use crate::sys;

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

/// Runs before `main` in every program that links multiproc.
#[used]
#[link_section = ".init_array"]
pub(crate) static BOOTSTRAP: extern "C" fn() = bootstrap_hook;

extern "C" fn bootstrap_hook() {
    let Some(value) = std::env::var_os(ENV) else {
        return;
    };
    // Not inherited by anything this child starts itself.
    std::env::remove_var(ENV);
    let fd: RawFd = match value.to_str().and_then(|s| s.parse().ok()) {
        Some(fd) if fd >= 0 => fd,
        _ => {
            let _ = writeln!(std::io::stderr(), "multiproc: malformed {ENV}={value:?}");
            sys::fork::exit_now(101);
        }
    };
    // SAFETY: the parent passed this descriptor to us for exactly this purpose
    // (`spawn::spawn_child` dups it to the same number and names it in `ENV`), and
    // nothing else in this fresh process has claimed it yet: we run before `main`.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    child_entry(sock)
}

/// The body of a re-executed child: read the launch, then serve or run.
fn child_entry(sock: OwnedFd) -> ! {
    sys::signal::ignore_sigpipe();
    let frame = match sys::socket::recv_frame(sock.as_fd()) {
        Ok(Some(f)) => f,
        // The parent went away before telling us what to do.
        Ok(None) | Err(_) => sys::fork::exit_now(102),
    };
    let launch: Launch = match codec::decode(&frame.payload, Vec::new()) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "multiproc: bad launch message: {e}");
            sys::fork::exit_now(103);
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
    if !watch_parent(launch.pdeathsig_ppid, launch.death_fd) {
        sys::fork::exit_now(104);
    }
    if let Some(name) = &launch.name {
        sys::fork::set_process_name(name);
    }
    launch.env.apply();
    let mut rest = fds.drain(..).collect::<std::collections::VecDeque<_>>();
    if launch.stdout {
        if let Some(fd) = rest.pop_front() {
            let _ = rustix::stdio::dup2_stdout(&fd);
        }
    }
    if launch.stderr {
        if let Some(fd) = rest.pop_front() {
            let _ = rustix::stdio::dup2_stderr(&fd);
        }
    }
    let reply = match function::resolve(launch.entry, &launch.token) {
        Some(entry) => entry(&launch.arg, rest.into()),
        None => function::failure(
            FailKind::Binary,
            "the child runs a different build of the program than its parent".into(),
        ),
    };
    finish(sock, reply)
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

/// Sends the reply, flushes stdio and exits with the reply's code.
pub(crate) fn finish(sock: OwnedFd, reply: Reply) -> ! {
    let fds = sys::socket::borrow_all(&reply.fds);
    finish_with(sock.as_fd(), &reply.bytes, &fds, reply.code)
}

/// Sends an encoded reply with its descriptors, flushes stdio and exits with `code`.
pub(crate) fn finish_with(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    code: i32,
) -> ! {
    // If the parent is gone the reply has nowhere to go; exiting is all that is left.
    let _ = sys::socket::send_frame(sock, bytes, fds);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    sys::fork::exit_now(code)
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
