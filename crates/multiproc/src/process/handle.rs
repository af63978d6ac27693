//! `Process`: join, join_timeout, is_alive, pid, exitcode, terminate, kill.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::builder::Builder;
use super::outcome::Outcome;
use super::reaper;
use super::spawn::Started;
use super::start_method::StartMethod;
use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::exit::ExitStatus;
use crate::ipc::codec;
use crate::sys;
use crate::sys::socket::{Frame, FrameReader, ReadOutcome};

/// How many bytes of the result one look at its socket reads before the clock is
/// checked again (a child streaming a large result must not hold `join_timeout`
/// past its deadline).
const READ_BUDGET: usize = 1 << 20;

/// A child process running a function, with the same shape as [`Thread`](crate::Thread).
///
/// `T` is the function's return type; it comes back through [`join`](Self::join).
///
/// Dropping the handle without joining lets the child run on (it is reaped in the
/// background when it ends), but its result is lost, and with the default
/// [`die_with_parent`](crate::process::Builder::die_with_parent) the child is killed
/// when this process exits: when `main` returns, a child whose handle was dropped
/// dies with it, however far it got. Join it to wait for its work.
///
/// # Examples
///
/// ```
/// use multiproc::Process;
///
/// fn work() -> String {
///     format!("hello from pid {}", std::process::id())
/// }
///
/// let p = Process::start(work)?;
/// let pid = p.pid();
/// assert_eq!(p.join()?, format!("hello from pid {pid}"));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "a dropped Process loses its result, and its child is killed when this process \
              exits (when `main` returns); `join` it to wait for its work"]
pub struct Process<T> {
    pid: i32,
    pidfd: Option<OwnedFd>,
    name: Option<String>,
    method: StartMethod,
    kill_on_drop: bool,
    state: Mutex<State>,
    _result: PhantomData<fn() -> T>,
}

/// Captured stdout and stderr of a child started with
/// [`Builder::capture_output`](super::Builder::capture_output).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Everything the child wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the child wrote to stderr.
    pub stderr: Vec<u8>,
}

struct State {
    status: Option<ExitStatus>,
    sock: Option<OwnedFd>,
    reader: FrameReader,
    frame: Option<Frame>,
    truncated: bool,
    read_error: Option<std::io::Error>,
    taken: bool,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    output: Output,
}

impl<T> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("name", &self.name)
            .field("start_method", &self.method)
            .field("exitcode", &self.exitcode())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Process<T> {
    /// Starts a child running `f()` with the default [`Builder`].
    ///
    /// # Errors
    ///
    /// See [`Builder::start`].
    pub fn start<F>(f: F) -> Result<Process<T>>
    where
        F: FnOnce() -> T + 'static,
    {
        Builder::new().start(f)
    }

    /// Starts a child running `f(arg)` with the default [`Builder`].
    ///
    /// # Errors
    ///
    /// See [`Builder::start_with`].
    pub fn start_with<F, A>(f: F, arg: A) -> Result<Process<T>>
    where
        F: FnOnce(A) -> T + 'static,
        A: Serialize + DeserializeOwned,
    {
        Builder::new().start_with(f, arg)
    }
}

impl Process<()> {
    /// Returns a [`Builder`] to choose the start method, name, lifetime and stdio.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<T> Process<T> {
    pub(super) fn from_started(
        started: Started,
        name: Option<String>,
        method: StartMethod,
        kill_on_drop: bool,
        max_result: u64,
        out: Option<OwnedFd>,
        err: Option<OwnedFd>,
    ) -> Self {
        Process {
            pid: started.pid,
            pidfd: Some(started.pidfd),
            name,
            method,
            kill_on_drop,
            state: Mutex::new(State {
                status: None,
                sock: Some(started.sock),
                reader: FrameReader::with_max_len(max_result),
                frame: None,
                truncated: false,
                read_error: None,
                taken: false,
                out,
                err,
                output: Output::default(),
            }),
            _result: PhantomData,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The child's name: the one given with [`Builder::name`], or `Process-N`.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The start method that created the child.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_ref().expect("present until drop").as_fd()
    }

    /// How the child ended, or `None` while it runs (reaps it if it has exited).
    ///
    /// Never blocks, even while another thread is inside [`join`](Self::join).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        match self.state.try_lock() {
            Ok(mut st) => {
                self.poll_exit(&mut st);
                st.status
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                let mut st = p.into_inner();
                self.poll_exit(&mut st);
                st.status
            }
            // A joiner holds the state: look without reaping, the joiner will reap.
            Err(std::sync::TryLockError::WouldBlock) => sys::pidfd::peek(self.pidfd())
                .ok()
                .flatten()
                .map(ExitStatus::from_raw),
        }
    }

    /// Python's `exitcode`: `None` while running, `Some(code)` after an exit,
    /// `Some(-signo)` after a fatal signal.
    pub fn exitcode(&self) -> Option<i32> {
        self.exit_status().map(ExitStatus::exitcode)
    }

    /// Returns `true` while the child runs.
    pub fn is_alive(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Sends `SIGTERM` (a no-op once the child has been reaped).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the signal cannot be sent.
    pub fn terminate(&self) -> Result<()> {
        self.signal(sys::signal::SIGTERM)
    }

    /// Sends `SIGKILL` (a no-op once the child has been reaped).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the signal cannot be sent.
    pub fn kill(&self) -> Result<()> {
        self.signal(sys::signal::SIGKILL)
    }

    /// Sends signal `signo` to the child (a no-op once it has been reaped).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the signal cannot be sent; [`ErrorKind::InvalidInput`] for
    /// an unknown signal number.
    pub fn send_signal(&self, signo: i32) -> Result<()> {
        if !sys::signal::exists(signo) {
            return Err(
                Error::new(ErrorKind::InvalidInput).with_message(format!("unknown signal {signo}"))
            );
        }
        self.signal(signo)
    }

    fn signal(&self, signo: i32) -> Result<()> {
        // No lock: a pidfd names this child only, even after it has been reaped (then the
        // call fails with ESRCH), so this is safe while another thread is in `join`.
        sys::pidfd::signal_unless_reaped(self.pidfd(), signo).map_err(Error::os)
    }

    fn poll_exit(&self, st: &mut State) {
        if st.status.is_none() {
            if let Ok(Some(raw)) = sys::pidfd::try_reap(self.pidfd()) {
                st.status = Some(ExitStatus::from_raw(raw));
            }
        }
    }

    /// Waits until the child has exited and its result and output are read, or the
    /// deadline passes (`false`).
    fn drive(&self, st: &mut State, deadline: Option<Instant>) -> Result<bool> {
        loop {
            self.poll_exit(st);
            if st.status.is_some() {
                // Everything the child sent is in the buffers now (unless a grandchild
                // holds the descriptors open; then it is not waited for).
                if !st.read_sock(deadline) {
                    return Ok(false);
                }
                st.read_pipes();
                st.sock = None;
                st.out = None;
                st.err = None;
                return Ok(true);
            }
            if st.frame.is_some() {
                // The result is in; the child is exiting. Poll briefly rather than sleep
                // and pay a cross-CPU wake-up for a process that is about to be a zombie.
                // Yield, not spin: the wake-up that brought us here often moves this
                // thread onto the child's CPU, and a busy spin there keeps the child from
                // finishing its exit until the spin ends (measured: a 50 µs spin added
                // 50 µs to every Fork join: BENCHMARKS.md as of `e6cc1ff`).
                let backoff = Backoff::new();
                while backoff.spinning() {
                    self.poll_exit(st);
                    if st.status.is_some() {
                        break;
                    }
                    std::thread::yield_now();
                }
                if st.status.is_some() {
                    continue;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let mut fds: Vec<BorrowedFd<'_>> = vec![self.pidfd()];
            let sock_at = st.sock.as_ref().map(|s| {
                fds.push(s.as_fd());
                fds.len() - 1
            });
            let out_at = st.out.as_ref().map(|s| {
                fds.push(s.as_fd());
                fds.len() - 1
            });
            let err_at = st.err.as_ref().map(|s| {
                fds.push(s.as_fd());
                fds.len() - 1
            });
            let ready = sys::pidfd::poll_readable(&fds, deadline).map_err(Error::os)?;
            drop(fds);
            if sock_at.is_some_and(|i| ready[i]) {
                // A deadline that passes here is seen at the top of the loop.
                st.read_sock(deadline);
            }
            if out_at.is_some_and(|i| ready[i]) || err_at.is_some_and(|i| ready[i]) {
                st.read_pipes();
            }
        }
    }

    /// Waits for the child to exit and returns the function's value.
    ///
    /// # Errors
    ///
    /// One per way a child can end badly: [`ErrorKind::Panicked`] (the function, or
    /// its result's `Serialize`, panicked: message and location), [`ErrorKind::Exited`] (exited with a code before sending a result),
    /// [`ErrorKind::Signaled`] (signal name, core dump), [`ErrorKind::Decode`] (a
    /// child that exited 0 sent bytes that do not decode as its result; how a child
    /// ended outranks a failed read of its result), [`ErrorKind::BinaryMismatch`],
    /// [`ErrorKind::AlreadyJoined`] if `join_timeout` already took the result.
    pub fn join(mut self) -> Result<T>
    where
        T: DeserializeOwned,
    {
        self.join_until(None)
    }

    /// Waits at most `timeout` for the child to exit and returns the function's value.
    ///
    /// On [`ErrorKind::Timeout`] the child keeps running and the handle stays usable:
    /// join again, or [`kill`](Self::kill) it.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join), plus [`ErrorKind::Timeout`].
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T>
    where
        T: DeserializeOwned,
    {
        self.join_until(Instant::now().checked_add(timeout))
    }

    /// Like [`join`](Self::join), and also returns what the child wrote to stdout and
    /// stderr when it was started with [`Builder::capture_output`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Process;
    ///
    /// fn chatty() -> u8 {
    ///     println!("hi there");
    ///     7
    /// }
    ///
    /// let (value, out) = Process::builder().capture_output(true).start(chatty)?.join_with_output();
    /// assert_eq!(value?, 7);
    /// assert_eq!(out.stdout, b"hi there\n");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn join_with_output(mut self) -> (Result<T>, Output)
    where
        T: DeserializeOwned,
    {
        let r = self.join_until(None);
        let out = std::mem::take(&mut self.state().output);
        (r, out)
    }

    fn join_until(&mut self, deadline: Option<Instant>) -> Result<T>
    where
        T: DeserializeOwned,
    {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        if st.taken {
            return Err(Error::new(ErrorKind::AlreadyJoined));
        }
        if !self.drive(st, deadline)? {
            return Err(Error::new(ErrorKind::Timeout).with_message(format!(
                "process {} is still running or sending its result",
                self.pid
            )));
        }
        st.taken = true;
        let status = st.status.expect("drive returned after reaping");
        match st.frame.take() {
            Some(frame) => match codec::decode::<Outcome<T>>(&frame.payload, frame.fds) {
                Ok(Outcome::Value(v)) => Ok(v),
                Ok(Outcome::Panicked(p)) => Err(Error::from_panic(p).with_status(status)),
                Ok(Outcome::Failed(kind, message)) => Err(Error::new(kind.error_kind())
                    .with_message(message)
                    .with_status(status)),
                Err(e) => Err(e.with_status(status)),
            },
            None => {
                // How the child ended outranks what reading its socket ran into: a child
                // killed or exiting before it read its launch leaves unread bytes in its
                // socket, which the kernel reports to us as a reset connection. Only a
                // child that exited 0 and sent bytes that are not a frame is `Decode`.
                let mut e = Error::from_status(status);
                let garbage = st
                    .read_error
                    .take()
                    .filter(|re| re.kind() != std::io::ErrorKind::ConnectionReset);
                if let Some(re) = garbage.filter(|_| status.success()) {
                    e = Error::new(ErrorKind::Decode).with_status(status);
                    // The frame reader's own refusals are messages ("exceeds the
                    // maximum…"); an OS error stays the source.
                    e = match re.raw_os_error() {
                        Some(_) => e.with_message("reading its result failed").with_source(re),
                        None => e.with_message(re.to_string()),
                    };
                } else if st.truncated {
                    e = e.with_message("it ended in the middle of sending its result");
                } else if status.code().is_some() {
                    e = e.with_message("it exited without sending a result");
                }
                Err(e)
            }
        }
    }
}

impl State {
    /// Reads whatever the result socket has, without blocking; returns `false` if
    /// the deadline passed while more was still arriving (call again).
    fn read_sock(&mut self, deadline: Option<Instant>) -> bool {
        let Some(sock) = &self.sock else { return true };
        loop {
            match self.reader.poll_read_budget(sock.as_fd(), READ_BUDGET) {
                Ok(ReadOutcome::Frame(f)) => {
                    self.frame = Some(f);
                    self.sock = None;
                    return true;
                }
                Ok(ReadOutcome::Pending) => return true,
                Ok(ReadOutcome::Paused) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return false;
                    }
                }
                Ok(ReadOutcome::Eof { truncated }) => {
                    self.truncated = truncated;
                    self.sock = None;
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.read_error = Some(e);
                    self.sock = None;
                    return true;
                }
            }
        }
    }

    /// Appends what the captured pipes have (they are non-blocking); closes a pipe at EOF.
    fn read_pipes(&mut self) {
        if self.out.is_none() && self.err.is_none() {
            return;
        }
        // On the heap: a 16 KiB stack array makes every call touch four stack pages
        // (stack probes), which right after a fork are copy-on-write faults.
        let mut chunk = vec![0u8; 16384];
        for (slot, buf) in [
            (&mut self.out, &mut self.output.stdout),
            (&mut self.err, &mut self.output.stderr),
        ] {
            let Some(fd) = slot.as_ref() else { continue };
            loop {
                match sys::stdio::read(fd, &mut chunk) {
                    Ok(0) => {
                        *slot = None;
                        break;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => break,
                }
            }
        }
    }
}

impl<T> AsFd for Process<T> {
    /// The child's pidfd: readable once the child has exited (Python's `sentinel`).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd()
    }
}

impl<T> Drop for Process<T> {
    fn drop(&mut self) {
        let mut st = self.state();
        self.poll_exit(&mut st);
        if st.status.is_some() {
            return;
        }
        if self.kill_on_drop {
            let _ = sys::pidfd::send_signal(self.pidfd(), sys::signal::SIGKILL);
            let _ = sys::pidfd::reap_blocking(self.pidfd());
            return;
        }
        drop(st);
        if let Some(fd) = self.pidfd.take() {
            reaper::adopt(fd);
        }
    }
}
