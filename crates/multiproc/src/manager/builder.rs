//! [`Builder`]: where a manager's server listens, its key, its start method and its
//! registered types.

use std::io::Read;
use std::marker::PhantomData;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::handle::Manager;
use super::managed::{Managed, Registry};
use super::server::{self, ServerArgs};
use super::session::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::{Address, Pipe, RecvTimeoutError, DEFAULT_MAX_MESSAGE};
use crate::process::{Process, StartMethod};

/// How long [`Builder::start`] waits for the server to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Length of a generated authentication key (Python's `os.urandom(32)`).
const KEY_LEN: usize = 32;
/// The largest message a server accepts by default.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Configures and starts a [`Manager`]'s server (Python's `BaseManager(address,
/// authkey)` with its `register` calls, then `start()`).
///
/// `R` is the set of registered [`Managed`] types, built by [`register`](Self::register).
///
/// # Examples
///
/// A manager reachable over TCP with a chosen key, and a client that connects to it:
///
/// ```
/// use multiproc::ipc::Address;
/// use multiproc::Manager;
///
/// let manager = Manager::builder()
///     .address(Address::Tcp("127.0.0.1:0".parse()?))
///     .authkey(b"secret".to_vec())
///     .start()?;
/// let client = Manager::connect(manager.address(), Some(b"secret"))?;
/// let q = client.queue::<String>()?;
/// q.put("over tcp".to_string())?;
/// assert_eq!(q.get()?, "over tcp");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a Builder does nothing until `start` is called"]
pub struct Builder<R = ()> {
    address: Option<Address>,
    authkey: Option<Option<Vec<u8>>>,
    method: Option<StartMethod>,
    allow_threads: bool,
    max_message: usize,
    _registry: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("address", &self.address)
            .field("authkey", &self.authkey.as_ref().map(|k| k.is_some()))
            .field("start_method", &self.method)
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}

impl Builder<()> {
    pub(crate) fn new() -> Builder<()> {
        Builder {
            address: None,
            authkey: None,
            method: None,
            allow_threads: false,
            max_message: DEFAULT_MAX_MESSAGE_SIZE,
            _registry: PhantomData,
        }
    }
}

impl<R: Registry> Builder<R> {
    /// Where the server listens. Default: a Unix socket in a new private directory
    /// (mode 0700) under the temporary directory, removed with the manager.
    /// [`Address::Tcp`] with port 0 picks a free port ([`Manager::address`] tells
    /// which).
    pub fn address(mut self, address: Address) -> Self {
        self.address = Some(address);
        self
    }

    /// The key clients must prove they hold (HMAC challenge, see
    /// [`Listener`](crate::ipc::Listener)). Default: 32 random bytes, which
    /// [`Manager::authkey`] returns to hand to [`Manager::connect`] callers (and which
    /// proxies carry to the processes they are sent to).
    pub fn authkey(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.authkey = Some(Some(key.into()));
        self
    }

    /// No authentication: anyone who can reach the address is served. Only for a
    /// Unix socket in a private directory.
    pub fn no_authkey(mut self) -> Self {
        self.authkey = Some(None);
        self
    }

    /// How the server process is started (default: [`StartMethod::default`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// With [`StartMethod::Fork`], fork even while other threads run (see
    /// [`process::Builder::allow_threads`](crate::process::Builder::allow_threads)).
    pub fn allow_threads(mut self, yes: bool) -> Self {
        self.allow_threads = yes;
        self
    }

    /// The largest request the server accepts, in bytes of its encoding (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 64 MiB); a larger one is refused with
    /// [`ErrorKind::InvalidInput`] and its connection closed. A reply over it (the
    /// items of a dict that grew past it, say) is that call's `InvalidInput` error;
    /// the connection stays.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Registers the [`Managed`] type `M`, so [`Manager::create`] can create it in
    /// this manager's server (Python's `register(typeid, callable)`).
    pub fn register<M: Managed>(self) -> Builder<(M, R)> {
        Builder {
            address: self.address,
            authkey: self.authkey,
            method: self.method,
            allow_threads: self.allow_threads,
            max_message: self.max_message,
            _registry: PhantomData,
        }
    }

    /// Starts the server process and returns once it listens.
    ///
    /// The server is a child of this process that dies with it, and is stopped by
    /// [`Manager::shutdown`] or when the `Manager` is dropped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if the process cannot start or exits before it listens;
    /// [`ErrorKind::Os`] if it cannot listen at the address (in use, no permission);
    /// [`ErrorKind::Timeout`] if it does not listen within 60 s;
    /// [`ErrorKind::ForkWithThreads`] as for a [`Process`] started with `Fork`.
    pub fn start(self) -> Result<Manager> {
        let (address, private_dir) = match self.address {
            Some(a) => (a, None),
            None => {
                let dir = private_dir()?;
                (Address::Unix(dir.join("manager.sock")), Some(dir))
            }
        };
        let cleanup = |dir: &Option<PathBuf>| {
            if let Some(d) = dir {
                let _ = std::fs::remove_dir_all(d);
            }
        };
        let authkey = match self.authkey {
            Some(k) => k,
            None => Some(random_key()?),
        };
        let (ours, theirs) = Pipe::new()?;
        let args = ServerArgs {
            address,
            authkey: authkey.clone(),
            max_message: self.max_message,
            ready: theirs,
        };
        let mut builder = Process::builder()
            .name("multiproc-manager")
            .kill_on_drop(true)
            .die_with_parent(true)
            .allow_threads(self.allow_threads);
        if let Some(m) = self.method {
            builder = builder.start_method(m);
        }
        let mut process = match builder.start_with(server::serve::<R>, args) {
            Ok(p) => p,
            Err(e) => {
                cleanup(&private_dir);
                return Err(e);
            }
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let listening = loop {
            match ours.recv_timeout::<Result<Address>>(Duration::from_millis(100)) {
                Ok(r) => break r,
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if !process.is_alive() {
                        break Err(Error::new(ErrorKind::Start)
                            .with_message("the manager server exited before it listened"));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    break Err(Error::new(ErrorKind::Timeout).with_message(format!(
                        "the manager server did not listen within {READY_TIMEOUT:?}"
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    break Err(Error::new(ErrorKind::Start)
                        .with_message("the manager server exited before it listened"))
                }
                Err(RecvTimeoutError::Invalid(e)) => break Err(e),
            }
        };
        match listening {
            Ok(address) => {
                let session = Session::get(&address, authkey.as_deref());
                Ok(Manager::owning(session, process, private_dir))
            }
            Err(e) => {
                let _ = process.kill();
                let _ = process.join_timeout(Duration::from_secs(10));
                cleanup(&private_dir);
                Err(e)
            }
        }
    }
}

/// The prefix of [`private_dir`]'s names, followed by the owner's pid and a `-`.
const DIR_PREFIX: &str = "multiproc-manager-";

/// Removes the private directories in `base` left by managers whose owner was killed
/// (their server dies with it by `SIGKILL`, which no cleanup survives): the owner's
/// pid (in the name) runs no process and nothing listens at the socket. A directory
/// without a socket, or one another user owns, is left alone.
fn sweep_stale_dirs(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let socket = dir.join("manager.sock");
        // Nobody listens: the socket refuses, or is gone (a server that saw its owner
        // die may remove its socket on the way out, leaving the directory).
        let unserved = std::os::unix::net::UnixStream::connect(&socket).is_err_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            )
        });
        if unserved && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// A new directory only this user can enter, for the default socket (after sweeping
/// away those of killed owners).
fn private_dir() -> Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    sweep_stale_dirs(&base);
    for _ in 0..16 {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let salt = &random_key()?[..4];
        let name = format!(
            "{DIR_PREFIX}{}-{n}-{:02x}{:02x}{:02x}{:02x}",
            std::process::id(),
            salt[0],
            salt[1],
            salt[2],
            salt[3]
        );
        let dir = base.join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::os(e).with_message(format!(
                    "cannot create a directory for the manager's socket in {}",
                    base.display()
                )))
            }
        }
    }
    Err(Error::new(ErrorKind::Os).with_message("cannot find a free name for the manager's socket"))
}

fn random_key() -> Result<Vec<u8>> {
    let mut key = vec![0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| Error::os(e).with_message("cannot read /dev/urandom"))?;
    Ok(key)
}

// `DEFAULT_MAX_MESSAGE` is the connection's own ceiling; the manager's default is
// lower, and cannot exceed it.
const _: () = assert!(DEFAULT_MAX_MESSAGE_SIZE <= DEFAULT_MAX_MESSAGE);
