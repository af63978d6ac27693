//! The child's runtime: what every non-fork child runs once it has its [`Launch`]
//! (watch the parent, take its name and stdio, run the entry), and how every child,
//! forked or not, sends its reply and exits.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use super::entry;
use super::exit_code::ChildExit;
use super::launch::{DeathWatch, Launch};
use super::outcome::{self, FailKind, Reply};
use crate::sys;

/// The socket this child sends its result on, or `-1` (read by the hostile-peer tests
/// through `test_support::result_socket`).
static RESULT_SOCKET: AtomicI32 = AtomicI32::new(-1);

/// Records the socket this child sends its result on (async-signal-safe: one store).
pub(crate) fn set_result_socket(fd: RawFd) {
    RESULT_SOCKET.store(fd, Ordering::Relaxed);
}

/// In a child process started by multiproc: the socket its result goes back on.
pub(crate) fn result_socket() -> Option<RawFd> {
    Some(RESULT_SOCKET.load(Ordering::Relaxed)).filter(|&fd| fd >= 0)
}

/// Common child setup: die with the parent, name, stdio; then run the entry and exit.
/// `pipe`: the read end of the parent's death pipe this child inherited and owns, if any.
pub(crate) fn run_launch(
    sock: OwnedFd,
    launch: Launch,
    mut fds: Vec<OwnedFd>,
    pipe: Option<OwnedFd>,
) -> ! {
    set_result_socket(sock.as_raw_fd());
    if !watch_parent(launch.death, pipe) {
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

/// Arms parent-death detection as `death` says, on `pipe` (the inherited read end of
/// the parent's death pipe, which this process owns) when it uses the pipe, and closes
/// `pipe` either way. Returns `false` if the parent is already gone.
pub(crate) fn watch_parent(death: DeathWatch, pipe: Option<OwnedFd>) -> bool {
    if let Some(ppid) = death.ppid() {
        drop(pipe);
        return sys::deathsig::arm_pdeathsig(ppid);
    }
    match pipe.filter(|_| death.pipe().is_some()) {
        Some(fd) => sys::deathsig::arm(fd.as_fd()).unwrap_or(true),
        None => true,
    }
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
