//! The fork server: a clean, single-threaded process that forks children on request.
//!
//! It is started once per parent process, on first use, by re-executing this program
//! (so it holds no locks, threads or state of the parent). Each request carries a
//! [`Launch`] and the new child's descriptors (its result socket first). The server
//! forks with `clone(CLONE_PARENT)`, so the new process is the server's *sibling*: a
//! direct child of the requesting process, which can reap it, see its exit status and
//! signal it like any child. The server answers with the pid (or an errno).
//!
//! The server holds stdio, its request socket and the parent's death pipe, nothing
//! else: it is started like a `Spawn` child, which closes the rest. A child it forks
//! drops the request socket and the server's death watch, so it holds stdio and the
//! descriptors its request carried, as a `Spawn` child does.
//!
//! The server dies with its parent (death pipe), ignores `SIGINT` (a Ctrl-C meant for
//! the parent must not kill it first), and exits when its request socket closes. If it
//! dies anyway, the next request starts a new one.
//!
//! # Safety
//!
//! One `unsafe` block: a child forked from a process with a server connection closes
//! the connection's descriptors by number ([`forget_after_fork`]). They belong to the
//! parent's copy of [`CONN`], which the child leaks (a `PerProcess` value is never
//! locked or dropped in a forked child); [`CONN_FD`] and [`CONN_PIDFD`] hold their
//! numbers exactly while that copy owns them (set once it is made, reset before it is
//! dropped).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, PoisonError};

use super::child;
use super::launch::{decode_launch, DeathWatch, Launch};
use super::spawn;
use crate::ipc::codec;
use crate::sys;
use crate::sys::fork::{Forked, PerProcess};

/// The parent's connection to its fork server.
struct Conn {
    pidfd: OwnedFd,
    /// Shared with the thread that reads the answers (outside the lock); replaced or
    /// dropped only while no thread reads (see [`Client::reading`]).
    sock: Arc<OwnedFd>,
}

/// This process's side of the fork-server protocol. Requests are pipelined: a thread
/// sends its request under the lock and takes a ticket; the server answers in request
/// order; one waiting thread at a time reads answers (without the lock) and files them
/// by ticket, so several threads' requests are in flight at once and the server forks
/// them back to back instead of one round trip at a time.
struct Client {
    conn: Option<Conn>,
    /// Bumped each time a connection is dropped: a ticket of an older generation will
    /// get no answer.
    generation: u64,
    /// Tickets handed out / answers read on the current connection.
    sent: u64,
    read: u64,
    /// Answers read and not yet taken, by ticket.
    answers: HashMap<u64, Result<i32, i32>>,
    /// A thread is reading from `conn`'s socket (the connection stays in place).
    reading: bool,
    /// Set when a send failed while another thread read: the server was killed, and
    /// the reader drops the connection when its read fails.
    doomed: bool,
    /// Signalled when an answer is filed, the reader steps down or the connection
    /// goes.
    filed: Arc<Condvar>,
}

/// This process's connection. Per process: a forked child that starts a `ForkServer`
/// child must neither use its parent's server (requests and answers would
/// interleave) nor wait for the parent's lock, which another thread of the parent
/// may have held at the fork (issue 9, item 9). The child starts its own server.
static CONN: PerProcess<Client> = PerProcess::new(|| Client {
    conn: None,
    generation: 0,
    sent: 0,
    read: 0,
    answers: HashMap::new(),
    reading: false,
    doomed: false,
    filed: Arc::new(Condvar::new()),
});
/// The connection's socket as a raw number while [`CONN`] owns it (else `-1`), so a
/// forked child can close it without locking.
static CONN_FD: AtomicI32 = AtomicI32::new(-1);
/// The same for the connection's pidfd.
static CONN_PIDFD: AtomicI32 = AtomicI32::new(-1);

impl Client {
    /// Kills and reaps the server and drops the connection (no thread may be reading);
    /// the tickets handed out on it get no answer.
    fn drop_conn(&mut self) {
        if let Some(old) = self.conn.take() {
            CONN_FD.store(-1, Ordering::Relaxed);
            CONN_PIDFD.store(-1, Ordering::Relaxed);
            let _ = sys::pidfd::send_signal(old.pidfd.as_fd(), sys::signal::SIGKILL);
            let _ = sys::pidfd::reap_blocking(old.pidfd.as_fd());
        }
        self.generation += 1;
        self.sent = 0;
        self.read = 0;
        self.answers.clear();
        self.doomed = false;
        self.filed.notify_all();
    }
}

/// Asks the fork server (starting it if needed) to fork a child for `launch`, with
/// `fds` as the child's descriptors (its result socket first). Returns the pid.
///
/// A server found dead (killed, or out of memory) when the request is sent is replaced
/// by a new one, once; a server that dies after taking the request makes it fail
/// (`BrokenPipe`): it may have forked the child, which must not start twice.
pub(crate) fn request(launch: &Launch, fds: &[BorrowedFd<'_>]) -> io::Result<i32> {
    let payload = codec::encode(launch).map_err(io::Error::from)?.bytes;
    let mut guard = CONN.lock();
    for attempt in 0..2 {
        // A connection is replaced only while nobody reads from it.
        while guard.doomed {
            let filed = Arc::clone(&guard.filed);
            guard = filed.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
        if guard.conn.is_none() {
            let conn = start_server()?;
            guard.conn = Some(conn);
        }
        let sent = {
            let sock = &guard.conn.as_ref().expect("set above").sock;
            sys::socket::send_frame(sock.as_fd(), &payload, fds)
        };
        if sent.is_err() {
            // The server is gone (or the stream is broken): start over with a new one.
            if guard.reading {
                // The reader owns the connection until its read fails, which killing
                // the server makes happen at once.
                let c = guard.conn.as_ref().expect("kept while reading");
                let _ = sys::pidfd::send_signal(c.pidfd.as_fd(), sys::signal::SIGKILL);
                guard.doomed = true;
            } else {
                guard.drop_conn();
            }
            if attempt == 0 {
                continue;
            }
            return Err(gone());
        }
        let ticket = guard.sent;
        guard.sent += 1;
        let generation = guard.generation;
        loop {
            if guard.generation != generation {
                // The server died after taking the request: it may have forked the
                // child already, so sending it again could start it twice.
                return Err(gone());
            }
            if let Some(answer) = guard.answers.remove(&ticket) {
                return answer.map_err(io::Error::from_raw_os_error);
            }
            if guard.reading {
                let filed = Arc::clone(&guard.filed);
                guard = filed.wait(guard).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Read the next answer, without the lock so others can send meanwhile. The
            // clone is dropped before the lock is taken again, so the connection's
            // socket closes when `drop_conn` drops it.
            let Some(conn) = &guard.conn else {
                return Err(gone());
            };
            let sock = Arc::clone(&conn.sock);
            guard.reading = true;
            drop(guard);
            let frame = sys::socket::recv_frame(sock.as_fd());
            drop(sock);
            guard = CONN.lock();
            guard.reading = false;
            let answer = match frame {
                Ok(Some(frame)) => codec::decode::<Result<i32, i32>>(&frame.payload, Vec::new())
                    .ok()
                    .filter(|a| a.as_ref().map_or(true, |&pid| pid > 0)),
                Ok(None) | Err(_) => None,
            };
            match answer {
                Some(answer) => {
                    let read = guard.read;
                    guard.answers.insert(read, answer);
                    guard.read += 1;
                    guard.filed.notify_all();
                }
                // The server died, or answered something that is not an answer.
                None => guard.drop_conn(),
            }
        }
    }
    Err(gone())
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the fork server exited")
}

/// Starts the fork server ahead of time, so that the first child does not pay for it.
///
/// Optional: the first [`ForkServer`](crate::StartMethod::ForkServer) start does it
/// otherwise. The server inherits the environment and working directory of this
/// moment, and passes them on to every child it forks.
///
/// # Errors
///
/// [`ErrorKind::Start`](crate::ErrorKind::Start) if the server cannot be started.
///
/// # Examples
///
/// ```
/// multiproc::process::preload_forkserver()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn preload_forkserver() -> crate::Result<()> {
    let mut guard = CONN.lock();
    if guard.conn.is_some() {
        return Ok(());
    }
    guard.conn = Some(
        start_server().map_err(|e| crate::Error::new(crate::ErrorKind::Start).with_source(e))?,
    );
    Ok(())
}

fn start_server() -> io::Result<Conn> {
    let pipe = sys::deathsig::read_end()?;
    let ppid = sys::deathsig::on_main_thread().then(sys::proc::pid);
    let launch = Launch {
        token: crate::identity::BinaryToken::current(),
        entry: crate::identity::EntryRef::Offset(0),
        arg: Vec::new(),
        name: Some("multiproc-fsrv".into()),
        death: DeathWatch::from_parts(Some(pipe), ppid),
        stdout: false,
        stderr: false,
        server: true,
        env: super::env::Env::default(),
    };
    let child = spawn::spawn_child(launch, &[], None)?;
    CONN_FD.store(child.sock.as_raw_fd(), Ordering::Relaxed);
    CONN_PIDFD.store(child.pidfd.as_raw_fd(), Ordering::Relaxed);
    Ok(Conn {
        pidfd: child.pidfd,
        sock: Arc::new(child.sock),
    })
}

/// In a freshly forked child: closes the parent's connection to its fork server, which
/// the child must never use (requests and answers would interleave).
pub(crate) fn forget_after_fork() {
    for fd in [
        CONN_FD.swap(-1, Ordering::Relaxed),
        CONN_PIDFD.swap(-1, Ordering::Relaxed),
    ] {
        if fd >= 0 {
            // SAFETY: `fd` is open and owned by the parent's copy of `CONN`, which this
            // child leaks: `CONN_FD`/`CONN_PIDFD` name a descriptor only while that copy
            // owns it (set after `start_server` made it, reset before a `Conn` is
            // dropped), and the swap above hands each number to one caller.
            unsafe { sys::fork::close_leaked(fd) };
        }
    }
}

/// The server's main loop (runs in the re-executed server process; never returns).
/// `pipe`: the read end of the parent's death pipe the server inherited and owns; it
/// stays open for the server's life, and each child takes its copy.
pub(crate) fn serve(sock: OwnedFd, launch: Launch, pipe: Option<OwnedFd>) -> ! {
    // The server's own parent-death watch: `PR_SET_PDEATHSIG` if it was started from the
    // parent's main thread (then its children's `CLONE_PARENT` parent thread is that main
    // thread too, and the signal follows the parent process for them as well), else the
    // pipe.
    let pdeathsig = launch.death.ppid().is_some();
    let alive = match (launch.death.ppid(), &pipe) {
        (Some(ppid), _) => sys::deathsig::arm_pdeathsig(ppid),
        (None, Some(fd)) => sys::deathsig::arm(fd.as_fd()).unwrap_or(true),
        (None, None) => true,
    };
    if !alive {
        sys::fork::exit_now(0);
    }
    sys::fork::set_process_name("multiproc-fsrv");
    // SAFETY-free: plain disposition change through the sys layer.
    sys::signal::ignore_sigint();
    loop {
        let frame = match sys::socket::recv_frame(sock.as_fd()) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => sys::fork::exit_now(0),
        };
        let answer: Result<i32, i32> = match decode_launch(&frame.payload) {
            Err(_) => Err(sys::fork::EINVAL),
            Ok(child_launch) => {
                let server_pipe = pipe.as_ref().map(AsRawFd::as_raw_fd);
                match fork_one(child_launch, frame.fds, pdeathsig, server_pipe) {
                    Ok(Side::Server(pid)) => Ok(pid),
                    Err(e) => Err(e),
                    Ok(Side::Child(launch, mut fds)) => {
                        // The child's descriptors are the server's: stdio, the death pipe
                        // (which `run_launch` closes once armed), and those of this request.
                        drop(sock);
                        let result_sock = fds.remove(0);
                        child::run_launch(result_sock, launch, fds, pipe)
                    }
                }
            }
        };
        let bytes = codec::encode(&answer).map(|e| e.bytes).unwrap_or_default();
        if sys::socket::send_frame(sock.as_fd(), &bytes, &[]).is_err() {
            sys::fork::exit_now(0);
        }
    }
}

/// Which side of [`fork_one`] the caller is on.
enum Side {
    /// In the server; the new child's pid.
    Server(i32),
    /// In the new child: what it runs, with its descriptors (result socket first).
    Child(Launch, Vec<OwnedFd>),
}

/// Forks the child for one request (an errno on failure). `pdeathsig`: the server
/// itself uses `PR_SET_PDEATHSIG` (see [`serve`]); `server_pipe`: the number of the
/// server's death pipe read end, which the child inherits.
fn fork_one(
    mut launch: Launch,
    fds: Vec<OwnedFd>,
    pdeathsig: bool,
    server_pipe: Option<RawFd>,
) -> Result<Side, i32> {
    if fds.is_empty() {
        return Err(sys::fork::EINVAL);
    }
    // Where the server's parent thread is not the main thread, only the pipe follows
    // the parent process. And the requester's pipe number means nothing here: the child
    // inherits the server's own copy.
    let ppid = launch.death.ppid().filter(|_| pdeathsig);
    let pipe = launch.death.pipe().and(server_pipe);
    launch.death = DeathWatch::from_parts(pipe, ppid);
    match sys::fork::clone_parent() {
        Ok(Forked::Parent(pid)) => Ok(Side::Server(pid)),
        Err(e) => Err(e.raw_os_error().unwrap_or(sys::fork::EAGAIN)),
        Ok(Forked::Child) => {
            // The server starts no children of its own: it has no death pipe to forget.
            drop(sys::deathsig::forget_parent_pipe_after_fork());
            sys::signal::default_sigint();
            Ok(Side::Child(launch, fds))
        }
    }
}
