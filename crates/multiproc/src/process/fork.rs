//! The `Fork` start method: the child is a copy of this process and runs the closure.
//!
//! # Rules for the child
//!
//! Between `fork` and the user's closure the child only touches state that cannot be
//! held by another thread: atomics, descriptors it owns, and the orphan list, which
//! the parent holds locked across the `fork` ([`reaper::lock_for_fork`]). Once the
//! closure runs, the usual rule of forked children applies: if the parent had other
//! threads, any lock they held stays locked forever in the child. That is why
//! [`start`] refuses to fork while other threads run, unless the caller opted in.
//!
//! The library itself never waits in the child for a lock the fork may have left
//! held: its globals are per process (`sys::fork::PerProcess`: the fork-server
//! connection, the `/proc` handle, the death pipe), so a child that starts children
//! of its own gets fresh ones; and at exit, std's stdout is flushed only if its lock
//! can be had (`child::flush_stdout`).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use serde::Serialize;

use super::child;
use super::exit_code::ChildExit;
use super::launch::DeathWatch;
use super::outcome::{self, Outcome};
use super::reaper;
use super::spawn::Started;
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::codec;
use crate::sys;
use crate::sys::fork::Forked;

/// What the child does with stdio and parent death.
pub(crate) struct ChildIo {
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    pub(crate) death: DeathWatch,
    pub(crate) name: Option<String>,
    pub(crate) env: super::env::Env,
}

/// Refuses to fork while threads other than multiproc's own run, unless `allow`.
pub(crate) fn check_threads(allow: bool) -> Result<()> {
    if allow {
        return Ok(());
    }
    let threads = sys::proc::thread_count().map_err(Error::os)?;
    let ours = reaper::INTERNAL_THREADS.load(std::sync::atomic::Ordering::Acquire);
    let others = threads.saturating_sub(ours);
    if others > 1 {
        return Err(Error::new(ErrorKind::ForkWithThreads).with_message(format!(
            "this process runs {others} threads; a forked child inherits their locks held and can \
             deadlock. Use StartMethod::ForkServer or StartMethod::Spawn, or call \
             Builder::allow_threads(true) if you know the other threads hold no locks"
        )));
    }
    Ok(())
}

/// Forks a child that runs `f` and reports its outcome on its socket.
pub(crate) fn start<F, R>(f: F, io: ChildIo) -> Result<Started>
where
    F: FnOnce() -> R,
    R: Serialize,
{
    let (ours_sock, theirs) = sys::socket::pair().map_err(start_error)?;
    // Installing the panic hook takes std's hook lock for writing; do it here, so the
    // child never has to (another thread may hold that lock at the moment of the fork).
    crate::panic::install_hook();
    // Whatever sits in this process's stdout buffer would otherwise be printed twice.
    let _ = std::io::stdout().flush();
    // The executable's identity is computed once per program, under a `OnceLock`:
    // have it done before the fork, so that a child that starts children of its own
    // never waits for an initialization another thread was in the middle of.
    let _ = crate::identity::BinaryToken::current();
    // Whether another thread could hold a lock at the fork (std's stdout lock, for
    // the child's exit: `child::flush_stdout`). multiproc's own threads never
    // print; an unknown count counts as crowded.
    let ours = reaper::INTERNAL_THREADS.load(std::sync::atomic::Ordering::Acquire);
    let crowded = sys::proc::thread_count().map_or(true, |n| n.saturating_sub(ours) > 1);
    let orphans = reaper::lock_for_fork();
    match sys::fork::fork().map_err(start_error)? {
        Forked::Child => {
            reaper::forget_after_fork(orphans);
            drop(ours_sock);
            child(f, theirs, io, crowded)
        }
        Forked::Parent(pid) => {
            drop(orphans);
            drop(theirs);
            let pidfd = sys::pidfd::open(pid).map_err(start_error)?;
            Ok(Started {
                pid,
                pidfd,
                sock: ours_sock,
            })
        }
    }
}

fn start_error(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Start).with_source(e)
}

/// The child's side; never returns. `crowded`: the parent had other threads.
fn child<F, R>(f: F, sock: OwnedFd, io: ChildIo, crowded: bool) -> !
where
    F: FnOnce() -> R,
    R: Serialize,
{
    let inherited = sys::deathsig::forget_parent_pipe_after_fork();
    super::forkserver::forget_after_fork();
    child::set_result_socket(sock.as_raw_fd());
    if !child::watch_parent(io.death, inherited) {
        sys::fork::exit_now(ChildExit::Orphaned.code());
    }
    if let Some(out) = &io.stdout {
        let _ = sys::stdio::redirect_stdout(out);
    }
    if let Some(err) = &io.stderr {
        let _ = sys::stdio::redirect_stderr(err);
    }
    drop(io.stdout);
    drop(io.stderr);
    if let Some(name) = &io.name {
        sys::fork::set_process_name(name);
    }
    io.env.apply();
    let (outcome, code) = match crate::panic::catch(f) {
        Ok(v) => (Outcome::Value(v), ChildExit::Value),
        Err(p) => (Outcome::Panicked(p), ChildExit::Failed),
    };
    debug_assert!(sock.as_fd().as_raw_fd() >= 0);
    let mut small = [0u8; SMALL_REPLY];
    // A result whose `Serialize` panics is reported as that panic (`outcome::finish`
    // does the same on the general path).
    // One send, though the outcome may be serialized twice (a proxy's reference).
    // The closure never returns (each arm exits the process), so neither does this.
    #[allow(unused_variables)]
    let never = codec::one_send(|| -> std::convert::Infallible {
        match crate::panic::catch(|| encode_small(&outcome, &mut small)) {
            Ok(Some(bytes)) => child::finish_with(sock.as_fd(), bytes, &[], code, crowded),
            Ok(None) => child::finish(sock, outcome::finish(&outcome, code), crowded),
            Err(p) => child::finish(
                sock,
                outcome::finish::<R>(&Outcome::Panicked(p), ChildExit::Failed),
                crowded,
            ),
        }
    });
    match never {}
}

/// Largest encoded outcome that [`encode_small`] handles.
const SMALL_REPLY: usize = 1024;

/// Encodes `outcome` into `buf` without allocating; `None` if it does not fit or owns a
/// descriptor (the `codec::fd` serializer refuses outside `codec::encode`), and then
/// the caller takes the general path, which serializes it again.
///
/// Why: a forked child shares its heap with the parent copy-on-write, and its first
/// allocation writes malloc's state and fresh heap pages, each a page fault and a page
/// copy. For the usual small result this path saves about 20 µs of a ~120 µs Fork
/// start+join (measured on the 2-core VM: the Fork profile in BENCHMARKS.md as of `e6cc1ff`).
fn encode_small<'b, R: Serialize>(outcome: &Outcome<R>, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let len = codec::encode_to_slice(outcome, buf)?;
    Some(&buf[..len])
}
