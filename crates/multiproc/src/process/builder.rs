//! `process::Builder`: start method, name, lifetime and stdio before start.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::bootstrap;
use super::current;
use super::entry;
use super::env::Env;
use super::fork::{self, ChildIo};
use super::forkserver;
use super::handle::Process;
use super::launch::{DeathWatch, Launch};
use super::spawn::{self, Started};
use super::start_method::StartMethod;
use crate::error::{Error, ErrorKind, Result};
use crate::identity::BinaryToken;
use crate::ipc::codec;
use crate::sys;

/// Configures a [`Process`] before it starts.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, StartMethod};
///
/// fn hello(who: String) -> String {
///     format!("hello, {who}")
/// }
///
/// let p = Process::builder()
///     .name("greeter")
///     .start_method(StartMethod::Spawn)
///     .start_with(hello, "world".to_string())?;
/// assert_eq!(p.join()?, "hello, world");
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Builder does nothing until a start method is called"]
pub struct Builder {
    name: Option<String>,
    method: Option<StartMethod>,
    die_with_parent: bool,
    kill_on_drop: bool,
    capture_output: bool,
    allow_threads: bool,
    max_result: u64,
    executable: Option<OsString>,
    env: Env,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the default start method, dying with the parent, not killed on drop,
    /// stdout and stderr inherited.
    pub fn new() -> Builder {
        Builder {
            name: None,
            method: None,
            die_with_parent: true,
            kill_on_drop: false,
            capture_output: false,
            allow_threads: false,
            max_result: crate::ipc::frame::DEFAULT_MAX_MESSAGE as u64,
            executable: None,
            env: Env::default(),
        }
    }

    /// Names the process: its `comm` in `ps` and `/proc` (first 15 bytes, by every
    /// start method), [`Process::name`] and, in the child,
    /// [`current_process().name()`](super::current_process). Default: `Process-N`,
    /// numbered from 1 in each process, as in Python.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Chooses how the child is created (default: [`StartMethod::default`]).
    pub fn start_method(mut self, method: StartMethod) -> Builder {
        self.method = Some(method);
        self
    }

    /// Whether the child is killed (`SIGKILL`) when this process dies. Default `true`.
    ///
    /// Unlike `PR_SET_PDEATHSIG`, this follows the parent *process*: a child started from
    /// a thread that then exits keeps running.
    pub fn die_with_parent(mut self, yes: bool) -> Builder {
        self.die_with_parent = yes;
        self
    }

    /// Whether dropping the unjoined handle kills the child. Default `false`: the child
    /// runs on (and is reaped in the background when it exits).
    pub fn kill_on_drop(mut self, yes: bool) -> Builder {
        self.kill_on_drop = yes;
        self
    }

    /// Captures the child's stdout and stderr instead of inheriting them; read them with
    /// [`Process::join_with_output`]. Default `false`.
    pub fn capture_output(mut self, yes: bool) -> Builder {
        self.capture_output = yes;
        self
    }

    /// The largest result the parent accepts from the child, in bytes of its encoding
    /// (default [`DEFAULT_MAX_MESSAGE`](crate::ipc::DEFAULT_MAX_MESSAGE), 1 GiB). A
    /// child that announces a larger one makes [`join`](Process::join) fail with
    /// [`ErrorKind::Decode`] without the parent allocating it; the parent's memory
    /// otherwise grows only with the bytes that actually arrive.
    pub fn max_result_size(mut self, bytes: usize) -> Builder {
        self.max_result = bytes as u64;
        self
    }

    /// Allows [`StartMethod::Fork`] while other threads run in this process. Default
    /// `false`: forking then fails with [`ErrorKind::ForkWithThreads`], because a lock held
    /// by another thread at the moment of the fork stays locked forever in the child.
    ///
    /// multiproc itself never waits in the child for such a lock: its own globals are
    /// per process, and std's stdout is flushed at the child's exit only if its lock
    /// can be had within 100 ms. `println!` output is line-buffered, so complete lines
    /// are out before that; what can be lost is the end of a line printed without a
    /// newline, and only in a child whose stdout lock another thread of the parent
    /// held at the fork. Your own code in the child has no such protection: a
    /// `println!` there blocks forever on that lock (use `writeln!` on a descriptor
    /// you own, or a `Spawn`/`ForkServer` child).
    pub fn allow_threads(mut self, yes: bool) -> Builder {
        self.allow_threads = yes;
        self
    }

    /// With [`StartMethod::Spawn`]: the program to execute instead of this one (Python's
    /// `set_executable`). It must be a build of the same program; a different one is
    /// refused with [`ErrorKind::BinaryMismatch`] or fails to start. A wrapper script
    /// (to run the child under a tool) must `exec` it: the child accepts its launch
    /// only from its parent.
    pub fn executable(mut self, path: impl Into<OsString>) -> Builder {
        self.executable = Some(path.into());
        self
    }

    /// Sets the environment variable `key` to `value` in the child (procspawn's and
    /// `std::process::Command`'s `env`). The child otherwise inherits this process's
    /// environment (with [`StartMethod::ForkServer`], the fork server's, taken when it
    /// started).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Process;
    ///
    /// fn read(name: String) -> Option<String> {
    ///     std::env::var(&name).ok()
    /// }
    ///
    /// let p = Process::builder()
    ///     .env("GREETING", "hello")
    ///     .env_remove("HOME")
    ///     .start_with(read, "GREETING".to_string())?;
    /// assert_eq!(p.join()?.as_deref(), Some("hello"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Builder {
        self.env.vars.push((key.into(), Some(value.into())));
        self
    }

    /// Removes the environment variable `key` in the child.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Builder {
        self.env.vars.push((key.into(), None));
        self
    }

    /// Starts the child with an empty environment, apart from variables set with
    /// [`env`](Self::env) after this call (earlier ones are dropped, as with
    /// `std::process::Command::env_clear`).
    pub fn env_clear(mut self) -> Builder {
        self.env = Env {
            clear: true,
            vars: Vec::new(),
        };
        self
    }

    /// Starts a child running `f()` and returns its handle.
    ///
    /// `f` must be a `fn` item or a closure that captures nothing (checked at compile
    /// time), so that every start method can find it in the child.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if the child cannot be created (with the OS error, for
    /// example `EMFILE` or `EAGAIN`), [`ErrorKind::ForkWithThreads`] for a refused fork.
    ///
    /// # Examples
    ///
    /// A closure that captures something cannot be found in a fresh child, so it does
    /// not compile; pass the data as the argument instead (or [`fork`](Self::fork)):
    ///
    /// ```compile_fail
    /// let n = 3;
    /// let p = multiproc::Process::builder().start(move || n + 1)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    ///
    /// ```
    /// let p = multiproc::Process::builder().start_with(|n: i32| n + 1, 3)?;
    /// assert_eq!(p.join()?, 4);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn start<F, R>(self, f: F) -> Result<Process<R>>
    where
        F: FnOnce() -> R + 'static,
        R: Serialize + DeserializeOwned,
    {
        self.start_with(move |()| f(), ())
    }

    /// Starts a child running `f(arg)` and returns its handle.
    ///
    /// The argument is serialized for `Spawn` and `ForkServer` (with any descriptors it
    /// owns, such as a pipe end), and moved into the child for `Fork`.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start), plus [`ErrorKind::Encode`] if `arg` fails to serialize.
    pub fn start_with<F, A, R>(mut self, f: F, arg: A) -> Result<Process<R>>
    where
        F: FnOnce(A) -> R + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let entry = entry::entry_ref::<F, A, R>();
        let method = self.method.unwrap_or_default();
        if method == StartMethod::Fork {
            return self.start_fork(move || f(arg));
        }
        let name = self.name.get_or_insert_with(current::default_name).clone();
        bootstrap::check_not_orphaned_bootstrap()?;
        let arg = codec::encode(&arg)?;
        let (out, err, child_ends) = self.capture_pipes()?;
        let death = self.death_watch(method)?;
        let launch = Launch {
            token: BinaryToken::current(),
            entry,
            arg: arg.bytes,
            name: self.name.clone(),
            death,
            stdout: out.is_some(),
            stderr: err.is_some(),
            server: false,
            env: self.env.clone(),
        };
        let started = if method == StartMethod::Spawn {
            let mut fds: Vec<BorrowedFd<'_>> = child_ends.iter().map(AsFd::as_fd).collect();
            fds.extend(arg.fds.iter().map(AsFd::as_fd));
            spawn::spawn_child(launch, &fds, self.executable.as_deref()).map_err(|e| {
                start_error(e).with_message(match &self.executable {
                    Some(p) => format!("cannot execute {}", p.to_string_lossy()),
                    None => "cannot re-execute this program (/proc/self/exe)".to_owned(),
                })
            })?
        } else {
            let (ours, theirs) = sys::socket::pair().map_err(start_error)?;
            let mut fds: Vec<BorrowedFd<'_>> = vec![theirs.as_fd()];
            fds.extend(child_ends.iter().map(AsFd::as_fd));
            fds.extend(arg.fds.iter().map(AsFd::as_fd));
            let pid = forkserver::request(&launch, &fds).map_err(start_error)?;
            drop(theirs);
            let pidfd = sys::pidfd::open(pid).map_err(start_error)?;
            Started {
                pid,
                pidfd,
                sock: ours,
            }
        };
        drop(child_ends);
        let p = Process::from_started(
            started,
            self.name,
            method,
            self.kill_on_drop,
            self.max_result,
            out,
            err,
        );
        current::register_child(p.pid(), &name);
        Ok(p)
    }

    /// Forks a child running the closure `f`, which may capture anything: the child
    /// gets a copy of this process's memory. Always uses [`StartMethod::Fork`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ForkWithThreads`] if other threads run and
    /// [`allow_threads`](Self::allow_threads) was not set; [`ErrorKind::Start`] if
    /// `fork` fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Process;
    ///
    /// let data = vec![1, 2, 3];
    /// // Doctests run on a thread of their own, hence `allow_threads`.
    /// let p = Process::builder().allow_threads(true).fork(move || data.iter().sum::<i32>())?;
    /// assert_eq!(p.join()?, 6);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fork<F, R>(self, f: F) -> Result<Process<R>>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        self.start_fork(f)
    }

    fn start_fork<F, R>(mut self, f: F) -> Result<Process<R>>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        fork::check_threads(self.allow_threads)?;
        let name = self.name.get_or_insert_with(current::default_name).clone();
        let (out, err, mut child_ends) = self.capture_pipes()?;
        let death = self.death_watch(StartMethod::Fork)?;
        let child_err = if err.is_some() {
            child_ends.pop()
        } else {
            None
        };
        let child_out = if out.is_some() {
            child_ends.pop()
        } else {
            None
        };
        let io = ChildIo {
            stdout: child_out,
            stderr: child_err,
            death,
            name: self.name.clone(),
            env: self.env.clone(),
        };
        let child_name = name.clone();
        let parent = Some(sys::proc::pid());
        let started = fork::start(
            move || {
                current::enter_child(&child_name, parent);
                f()
            },
            io,
        )?;
        let p = Process::from_started(
            started,
            self.name,
            StartMethod::Fork,
            self.kill_on_drop,
            self.max_result,
            out,
            err,
        );
        current::register_child(p.pid(), &name);
        Ok(p)
    }

    /// How the child will notice this process's death.
    ///
    /// `PR_SET_PDEATHSIG` fires when the parent *thread* exits, so it stands in for the
    /// process only when the main thread starts the child (or, for `ForkServer`, started
    /// the server, which the server checks). Elsewhere the death pipe does the job.
    fn death_watch(&self, method: StartMethod) -> Result<DeathWatch> {
        if !self.die_with_parent {
            return Ok(DeathWatch::Off);
        }
        let ppid = sys::proc::pid();
        let main = sys::deathsig::on_main_thread();
        let pipe = || sys::deathsig::read_end().map_err(start_error);
        Ok(match method {
            // The server decides between the two for each child it forks.
            StartMethod::ForkServer => DeathWatch::Pdeathsig {
                ppid,
                pipe: Some(pipe()?),
            },
            _ if main => DeathWatch::Pdeathsig { ppid, pipe: None },
            _ => DeathWatch::Pipe(pipe()?),
        })
    }

    /// Pipes for captured stdio: (parent stdout end, parent stderr end, child ends in order).
    fn capture_pipes(&self) -> Result<(Option<OwnedFd>, Option<OwnedFd>, Vec<OwnedFd>)> {
        if !self.capture_output {
            return Ok((None, None, Vec::new()));
        }
        let (or, ow) = sys::stdio::capture_pipe().map_err(start_error)?;
        let (er, ew) = sys::stdio::capture_pipe().map_err(start_error)?;
        Ok((Some(or), Some(er), vec![ow, ew]))
    }
}

fn start_error(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Start).with_source(e)
}
