//! The crate-wide error type for starting, joining and talking to threads and processes.

use std::fmt;
use std::io;

use crate::exit::{ExitStatus, Signal};

/// A specialized [`Result`](std::result::Result) for multiproc operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error type for starting, joining and communicating with threads and processes.
///
/// It is an opaque struct: match on [`kind`](Error::kind) and ask the accessors
/// ([`panic`](Error::panic), [`exit_status`](Error::exit_status), the
/// [`source`](std::error::Error::source) `io::Error`) for details.
///
/// Its `Display` is one line that does not repeat its source's text (print the chain,
/// as `anyhow`'s `{:#}` does, for both), except for a bare OS error
/// ([`ErrorKind::Os`] with no context), which displays as the OS error itself.
///
/// It is `Serialize` and `Deserialize`, so a child process or a pool task can return
/// one (for example as `Result<T, multiproc::Error>`): kind, message, panic and exit
/// status cross intact, and the OS error keeps its code (and so its text).
///
/// # Examples
///
/// ```
/// use multiproc::{ErrorKind, Process};
///
/// fn boom() -> u32 {
///     panic!("no luck")
/// }
///
/// let err = Process::start(boom)?.join().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Panicked);
/// assert_eq!(err.panic().unwrap().message(), "no luck");
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Option<String>,
    source: Option<io::Error>,
    panic: Option<RemotePanic>,
    status: Option<ExitStatus>,
}

/// A list specifying general categories of [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The function panicked; [`Error::panic`] has the message and location.
    Panicked,
    /// The child process exited with a code before it sent its result
    /// ([`Error::exit_status`] has the code). Code 0 too: a program that is not a
    /// multiproc child (run with [`Builder::executable`](crate::process::Builder::executable))
    /// exits without ever reading its launch, and the error says "exited without
    /// sending a result".
    Exited,
    /// The child process was killed by a signal ([`Error::exit_status`] has which,
    /// and whether it dumped core).
    Signaled,
    /// The operation did not complete before its deadline.
    Timeout,
    /// The thread or process could not be started; [`source`](std::error::Error::source)
    /// has the OS error, even when `exec` failed after `fork`.
    Start,
    /// Forking was refused because other threads are running in this process.
    ///
    /// A forked child gets a copy of every lock those threads held, and can
    /// deadlock on the first `malloc`. Use [`StartMethod::ForkServer`](crate::StartMethod::ForkServer)
    /// or [`StartMethod::Spawn`](crate::StartMethod::Spawn), or opt in with
    /// [`Builder::allow_threads`](crate::process::Builder::allow_threads).
    ForkWithThreads,
    /// A value could not be serialized to be sent to another process.
    Encode,
    /// Bytes received from another process could not be decoded.
    Decode,
    /// The peer closed its end or died before answering.
    Disconnected,
    /// The result was already taken by an earlier `join`.
    AlreadyJoined,
    /// The child runs a different build of the program than the parent, so a
    /// function cannot be found in it by address.
    BinaryMismatch,
    /// An argument was out of range or inconsistent.
    InvalidInput,
    /// The operating system refused the operation; see
    /// [`source`](std::error::Error::source).
    Os,
    /// A pool worker process died while it ran the task ([`Error::exit_status`] says
    /// how: the signal, such as `SIGSEGV` or `SIGKILL`, or the exit code).
    WorkerDied,
    /// The pool was terminated, or its workers could not be (re)started, before the
    /// task ran.
    PoolClosed,
    /// The task was cancelled through its handle.
    Cancelled,
    /// A lock was released by a thread that does not hold it.
    NotOwner,
    /// A bounded semaphore was released more times than it was acquired (or a
    /// semaphore's count would overflow).
    TooManyReleases,
    /// A barrier was broken: aborted, reset while others waited, a party timed out
    /// or panicked in the action, or a party's process died while it waited (the
    /// message names its pid).
    BrokenBarrier,
    /// Another process wrote something no correct peer writes: scribbled control
    /// words in a [`Pipe`](crate::Pipe)'s or [`Queue`](crate::Queue)'s shared memory,
    /// a length or offset that cannot be, a pool worker's malformed record. The
    /// channel (or the worker) cannot be trusted any more; the memory this process
    /// spent on it stays bounded.
    Corrupt,
    /// The message broker of a cluster pool (Redis) could not be reached, refused the
    /// pool's commands, or stayed away longer than the pool's `broker_timeout`;
    /// [`source`](std::error::Error::source) has the client's error.
    BrokerUnavailable,
    /// The function is not registered for a cluster pool (`#[multiproc::remote]` or
    /// `multiproc::task!`), or no live worker host has it; or a
    /// [`Manager`](crate::Manager)'s server has no [`Managed`](crate::manager::Managed)
    /// type registered under the name asked for.
    NotRegistered,
    /// The peer of a [`Listener`](crate::ipc::Listener) or
    /// [`Client`](crate::ipc::Client) failed the authentication challenge (a
    /// different key, no key, or not a multiproc or Python peer); nothing it sent
    /// was delivered.
    AuthenticationFailed,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Panicked => "panicked",
            ErrorKind::Exited => "exited without a result",
            ErrorKind::Signaled => "killed by a signal",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Start => "failed to start",
            ErrorKind::ForkWithThreads => "refusing to fork a process that runs other threads",
            ErrorKind::Encode => "could not serialize a value",
            ErrorKind::Decode => "could not decode a value",
            ErrorKind::Disconnected => "the peer disconnected",
            ErrorKind::AlreadyJoined => "already joined",
            ErrorKind::BinaryMismatch => "the child runs a different build of the program",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Os => "operating system error",
            ErrorKind::WorkerDied => "the pool worker running the task died",
            ErrorKind::PoolClosed => "the pool is closed",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::NotOwner => "the lock is not held by this thread",
            ErrorKind::TooManyReleases => "semaphore released too many times",
            ErrorKind::BrokenBarrier => "the barrier is broken",
            ErrorKind::Corrupt => "another process corrupted the shared data",
            ErrorKind::BrokerUnavailable => "the message broker is unavailable",
            ErrorKind::NotRegistered => "not registered",
            ErrorKind::AuthenticationFailed => "authentication failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                message: None,
                source: None,
                panic: None,
                status: None,
            }),
        }
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Error {
        self.inner.message = Some(message.into());
        self
    }

    pub(crate) fn with_source(mut self, source: io::Error) -> Error {
        self.inner.source = Some(source);
        self
    }

    pub(crate) fn with_status(mut self, status: ExitStatus) -> Error {
        self.inner.status = Some(status);
        self
    }

    pub(crate) fn os(source: io::Error) -> Error {
        Error::new(ErrorKind::Os).with_source(source)
    }

    pub(crate) fn from_panic(panic: RemotePanic) -> Error {
        let mut e = Error::new(ErrorKind::Panicked);
        e.inner.panic = Some(panic);
        e
    }

    /// An error for a child that ended with `status` before sending a result.
    pub(crate) fn from_status(status: ExitStatus) -> Error {
        let kind = match status {
            ExitStatus::Exited(_) => ErrorKind::Exited,
            ExitStatus::Signaled { .. } => ErrorKind::Signaled,
        };
        Error::new(kind).with_status(status)
    }

    /// Returns the category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Returns `true` if the operation timed out.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// Returns `true` if the function panicked.
    pub fn is_panic(&self) -> bool {
        self.inner.kind == ErrorKind::Panicked
    }

    /// The panic that ended the thread or child process, if that is what happened.
    pub fn panic(&self) -> Option<&RemotePanic> {
        self.inner.panic.as_ref()
    }

    /// How the child process ended, when it ended without a result.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.inner.status
    }

    /// The signal that killed the child process, if one did.
    pub fn signal(&self) -> Option<Signal> {
        self.inner.status.and_then(|s| s.signal())
    }

    /// A copy of this error for another recipient (one item of a chunk that failed as
    /// a whole): same kind, message, panic and status; the OS error is recreated from
    /// its code or its text.
    pub(crate) fn duplicate(&self) -> Error {
        let i = &self.inner;
        Error {
            inner: Box::new(Inner {
                kind: i.kind,
                message: i.message.clone(),
                source: i.source.as_ref().map(|s| match s.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(s.kind(), s.to_string()),
                }),
                panic: i.panic.clone(),
                status: i.status,
            }),
        }
    }

    /// The message this error carries, if any (without the kind's text).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn message(&self) -> Option<&str> {
        self.inner.message.as_deref()
    }

    /// The OS error code behind this error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.inner.source.as_ref().and_then(io::Error::raw_os_error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(m) = &self.inner.message {
            d.field("message", m);
        }
        if let Some(p) = &self.inner.panic {
            d.field("panic", p);
        }
        if let Some(s) = &self.inner.status {
            d.field("status", s);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.inner.panic, &self.inner.status) {
            (Some(p), _) => write!(f, "panicked at {p}")?,
            (None, Some(s)) if self.inner.kind == ErrorKind::WorkerDied => {
                write!(f, "the pool worker running the task died: {s}")?
            }
            (None, Some(s)) => write!(f, "child {s}")?,
            (None, None) => f.write_str(self.inner.kind.as_str())?,
        }
        if let Some(s) = self.transparent() {
            return fmt::Display::fmt(s, f);
        }
        if let Some(m) = &self.inner.message {
            write!(f, ": {m}")?;
        }
        // The source's text is not repeated here: `source()` returns it.
        Ok(())
    }
}

impl Error {
    /// The OS error this error only wraps (kind `Os`, no context): it displays as that
    /// error, and its source is that error's source.
    fn transparent(&self) -> Option<&io::Error> {
        let i = &self.inner;
        match (&i.source, &i.message, i.kind) {
            (Some(s), None, ErrorKind::Os) => Some(s),
            _ => None,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.transparent() {
            Some(s) => s.source(),
            None => self.inner.source.as_ref().map(|e| e as _),
        }
    }
}

/// How an [`Error`] crosses to another process.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    kind: ErrorKind,
    message: Option<String>,
    /// The OS error: its code, or (an error without one) its text.
    os: Option<Result<i32, String>>,
    panic: Option<RemotePanic>,
    status: Option<ExitStatus>,
}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let i = &self.inner;
        Wire {
            kind: i.kind,
            message: i.message.clone(),
            os: i
                .source
                .as_ref()
                .map(|e| e.raw_os_error().ok_or_else(|| e.to_string())),
            panic: i.panic.clone(),
            status: i.status,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Error {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Error, D::Error> {
        let w = Wire::deserialize(d)?;
        Ok(Error {
            inner: Box::new(Inner {
                kind: w.kind,
                message: w.message,
                source: w.os.map(|os| match os {
                    Ok(code) => io::Error::from_raw_os_error(code),
                    Err(text) => io::Error::other(text),
                }),
                panic: w.panic,
                status: w.status,
            }),
        })
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::os(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.kind() {
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::Disconnected => io::ErrorKind::BrokenPipe,
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::Decode | ErrorKind::Encode => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// A panic that happened in another thread or process, carried back to the joiner.
///
/// The message is the panic payload when it was a `&str` or `String` (what
/// `panic!` produces); the location is where the panic was raised, when multiproc's
/// panic hook saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemotePanic {
    message: String,
    location: Option<Location>,
    thread: Option<String>,
}

/// A source location: file, line and column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// The source file.
    pub file: String,
    /// The 1-based line.
    pub line: u32,
    /// The 1-based column.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl RemotePanic {
    pub(crate) fn new(message: String, location: Option<Location>, thread: Option<String>) -> Self {
        RemotePanic {
            message,
            location,
            thread,
        }
    }

    /// The panic message (`"Box<dyn Any>"` when the payload was not a string).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the panic was raised, if known.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The name of the thread that panicked, if it had one.
    pub fn thread_name(&self) -> Option<&str> {
        self.thread.as_deref()
    }
}

impl fmt::Display for RemotePanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}", self.message),
            None => write!(f, "<unknown location>: {}", self.message),
        }
    }
}

impl std::error::Error for RemotePanic {}
