//! [`Listener`] and [`Client`]: connections between unrelated processes over Unix
//! sockets (a path or an abstract name) or TCP, with Python's HMAC challenge
//! (`multiprocessing.connection.Listener`/`Client`).
//!
//! # The authentication challenge
//!
//! With a key, both sides prove they hold it, as Python 3.12+ does (and
//! byte-compatibly with it): the side that challenges sends `#CHALLENGE#{sha256}`
//! and 40 random bytes; the other answers `{sha256}` and the HMAC-SHA256, under the
//! key, of everything after `#CHALLENGE#`; the challenger compares in constant time
//! and answers `#WELCOME#` or `#FAILURE#`. The listener challenges first, then the
//! client. Every handshake message is at most 256 bytes: a peer that sends a longer
//! one fails, and nothing else it sent is read before it passes.

use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::fail::auth_failed;
use super::socket_connection::SocketConnection;
use super::wait::{self, Waitable};
use crate::error::{Error, Result};

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const DIGEST: &[u8] = b"{sha256}";
/// Random bytes in a challenge (Python's `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// Largest handshake message (Python reads them with `recv_bytes(256)`).
const HANDSHAKE_MAX: usize = 256;
/// How long a handshake may take: a peer that connects and says nothing does not
/// hold `accept` for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a [`Listener`] listens and a [`Client`] connects.
///
/// It is `Serialize`, so an address can be sent to another process (a manager's
/// proxies carry theirs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Address {
    /// A Unix socket at a path (Python's `'/tmp/x.sock'`). The listener creates the
    /// socket file (an existing one is an error, as in Python) and removes it when
    /// dropped.
    Unix(PathBuf),
    /// A Linux abstract Unix socket name (Python's `'\0name'`): no file, gone with
    /// the listener.
    Abstract(Vec<u8>),
    /// A TCP address (Python's `('host', port)`); port 0 picks a free one, which
    /// [`Listener::address`] then reports.
    Tcp(SocketAddr),
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
            Address::Tcp(a) => write!(f, "{a}"),
        }
    }
}

enum Inner {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// Accepts [`SocketConnection`]s from other processes, on this machine or another
/// (Python's `multiprocessing.connection.Listener`).
///
/// With an authentication key, [`accept`](Self::accept) returns a connection only to
/// a peer that proves it holds the same key, and the [`Client`] only accepts a
/// listener that proves it too. The challenge is Python 3.12's (and byte-compatible
/// with it, so a Python `Client` with the same key connects, for byte messages):
/// the side that challenges sends `#CHALLENGE#{sha256}` and 40 random bytes; the
/// other answers `{sha256}` and the HMAC-SHA256, under the key, of everything after
/// `#CHALLENGE#`; the challenger compares in constant time and answers `#WELCOME#`
/// or `#FAILURE#`. The listener challenges first, then the client. Every handshake
/// message is at most 256 bytes: a peer that announces a longer one fails at once,
/// and nothing else it sent is read before it passes. Without a key, anyone who can
/// reach the address is accepted: use a key for anything but a Unix socket in a
/// private directory.
///
/// A listener can be waited on with [`ipc::wait`](crate::ipc::wait): it is ready when
/// a peer is waiting to be accepted.
///
/// # Examples
///
/// ```
/// use multiproc::ipc::{Address, Client, Listener};
/// use multiproc::ErrorKind;
///
/// let name = format!("multiproc-doc-{}", std::process::id());
/// let address = Address::Abstract(name.into_bytes());
/// let listener = Listener::bind(&address, Some(b"key"))?;
/// let a = address.clone();
/// let t = std::thread::spawn(move || {
///     let wrong = Client::connect(&a, Some(b"not the key")).unwrap_err();
///     assert_eq!(wrong.kind(), ErrorKind::AuthenticationFailed);
///     let c = Client::connect(&a, Some(b"key")).unwrap();
///     c.send_bytes(b"hi").unwrap();
/// });
/// assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::AuthenticationFailed);
/// let conn = listener.accept()?;
/// assert_eq!(conn.recv_bytes()?, b"hi");
/// t.join().unwrap();
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Listener {
    inner: Inner,
    address: Address,
    authkey: Option<Vec<u8>>,
    /// The socket file to remove on drop (an `Address::Unix` we created).
    unlink: Option<PathBuf>,
}

impl Listener {
    /// Listens at `address`; `authkey`: the key peers must prove they hold (`None`:
    /// no authentication).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) if the socket cannot be bound (the address is in use, a
    /// socket file already exists at the path, permission denied).
    pub fn bind(address: &Address, authkey: Option<&[u8]>) -> Result<Listener> {
        let context =
            |e: std::io::Error| Error::os(e).with_message(format!("cannot listen at {address}"));
        let (inner, address, unlink) = match address {
            Address::Unix(p) => {
                let l = std::os::unix::net::UnixListener::bind(p).map_err(context)?;
                (Inner::Unix(l), address.clone(), Some(p.clone()))
            }
            Address::Abstract(n) => {
                let a = std::os::unix::net::SocketAddr::from_abstract_name(n).map_err(context)?;
                let l = std::os::unix::net::UnixListener::bind_addr(&a).map_err(context)?;
                (Inner::Unix(l), address.clone(), None)
            }
            Address::Tcp(a) => {
                let l = std::net::TcpListener::bind(a).map_err(context)?;
                let real = l.local_addr().map_err(context)?;
                (Inner::Tcp(l), Address::Tcp(real), None)
            }
        };
        Ok(Listener {
            inner,
            address,
            authkey: authkey.map(<[u8]>::to_vec),
            unlink,
        })
    }

    /// The address peers connect to (for TCP port 0, the port that was picked).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Waits for a peer, runs the authentication challenge if this listener has a
    /// key, and returns the connection.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AuthenticationFailed`](crate::ErrorKind::AuthenticationFailed) if the peer fails the challenge (its
    /// connection is closed, nothing it sent is delivered; accept again for the next
    /// peer); [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) if it does not complete the handshake within
    /// [`HANDSHAKE_TIMEOUT`]; [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if it hangs up during the
    /// handshake; [`ErrorKind::Os`](crate::ErrorKind::Os) if `accept` fails.
    pub fn accept(&self) -> Result<SocketConnection> {
        let conn = self.accept_unauthenticated()?;
        self.authenticate(&conn)?;
        Ok(conn)
    }

    /// Accepts a peer without running the challenge yet: a server that serves each
    /// peer on a thread of its own runs [`authenticate`](Self::authenticate) there,
    /// so a peer that stalls in the handshake does not hold up the next one. Nothing
    /// may be read from the connection before `authenticate` passes.
    pub(crate) fn accept_unauthenticated(&self) -> Result<SocketConnection> {
        let fd: OwnedFd = match &self.inner {
            Inner::Unix(l) => l.accept().map_err(Error::os)?.0.into(),
            Inner::Tcp(l) => {
                let (s, _) = l.accept().map_err(Error::os)?;
                let _ = s.set_nodelay(true);
                s.into()
            }
        };
        Ok(SocketConnection::new(fd))
    }

    /// Runs the authentication challenge (if this listener has a key) on a
    /// connection from [`accept_unauthenticated`](Self::accept_unauthenticated).
    pub(crate) fn authenticate(&self, conn: &SocketConnection) -> Result<()> {
        if let Some(key) = &self.authkey {
            let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
            deliver_challenge(conn, key, deadline)?;
            answer_challenge(conn, key, deadline)?;
        }
        Ok(())
    }
}

/// Connects to a [`Listener`] (Python's `multiprocessing.connection.Client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client;

impl Client {
    /// Connects to `address`; `authkey`: the listener's key, if it has one.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AuthenticationFailed`](crate::ErrorKind::AuthenticationFailed) if the listener refuses this key, or
    /// does not prove it holds it; [`ErrorKind::Os`](crate::ErrorKind::Os) if the connection fails
    /// (nobody listens there); [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) if the handshake takes longer
    /// than [`HANDSHAKE_TIMEOUT`].
    ///
    /// # Examples
    ///
    /// See [`Listener`].
    pub fn connect(address: &Address, authkey: Option<&[u8]>) -> Result<SocketConnection> {
        Client::connect_until(address, authkey, Instant::now() + HANDSHAKE_TIMEOUT)
    }

    /// [`connect`](Self::connect), with the handshake bounded by `deadline` instead of
    /// [`HANDSHAKE_TIMEOUT`] from now (a call with a timeout of its own).
    pub(crate) fn connect_until(
        address: &Address,
        authkey: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<SocketConnection> {
        let context =
            |e: std::io::Error| Error::os(e).with_message(format!("cannot connect to {address}"));
        let fd: OwnedFd = match address {
            Address::Unix(p) => std::os::unix::net::UnixStream::connect(p)
                .map_err(context)?
                .into(),
            Address::Abstract(n) => {
                let a = std::os::unix::net::SocketAddr::from_abstract_name(n).map_err(context)?;
                std::os::unix::net::UnixStream::connect_addr(&a)
                    .map_err(context)?
                    .into()
            }
            Address::Tcp(a) => {
                let s = std::net::TcpStream::connect(a).map_err(context)?;
                let _ = s.set_nodelay(true);
                s.into()
            }
        };
        let conn = SocketConnection::new(fd);
        if let Some(key) = authkey {
            answer_challenge(&conn, key, deadline)?;
            deliver_challenge(&conn, key, deadline)?;
        }
        Ok(conn)
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac
}

/// Python's `deliver_challenge`: the peer must answer with the HMAC of a random
/// message under `key`.
pub(crate) fn deliver_challenge(
    conn: &SocketConnection,
    key: &[u8],
    deadline: Instant,
) -> Result<()> {
    let mut message = DIGEST.to_vec();
    let mut random = [0u8; MESSAGE_LENGTH];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| Error::os(e).with_message("cannot read /dev/urandom"))?;
    message.extend_from_slice(&random);
    conn.send_bytes(&[CHALLENGE, &message].concat())?;
    let response = conn.recv_handshake(HANDSHAKE_MAX, deadline)?;
    let ok = response
        .strip_prefix(DIGEST)
        .is_some_and(|mac| hmac(key, &message).verify_slice(mac).is_ok());
    if ok {
        conn.send_bytes(WELCOME)?;
        Ok(())
    } else {
        let _ = conn.send_bytes(FAILURE);
        Err(auth_failed("the peer did not prove it holds the key"))
    }
}

/// Python's `answer_challenge`: prove we hold `key`.
pub(crate) fn answer_challenge(
    conn: &SocketConnection,
    key: &[u8],
    deadline: Instant,
) -> Result<()> {
    let m = conn.recv_handshake(HANDSHAKE_MAX, deadline)?;
    let Some(message) = m.strip_prefix(CHALLENGE) else {
        return Err(auth_failed(
            "the peer did not send an authentication challenge",
        ));
    };
    if !message.starts_with(DIGEST) {
        return Err(auth_failed(
            "the peer asks for a digest other than sha256 (a Python before 3.12?)",
        ));
    }
    let mac = hmac(key, message).finalize().into_bytes();
    conn.send_bytes(&[DIGEST, &mac[..]].concat())?;
    let verdict = conn.recv_handshake(HANDSHAKE_MAX, deadline)?;
    if verdict == WELCOME {
        Ok(())
    } else {
        Err(auth_failed("the peer refused our key"))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = &self.unlink {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("authenticated", &self.authkey.is_some())
            .finish_non_exhaustive()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::Unix(l) => l.as_fd(),
            Inner::Tcp(l) => l.as_fd(),
        }
    }
}

impl wait::sealed::Sealed for Listener {}

/// Ready when a peer is waiting to be accepted.
impl Waitable for Listener {
    fn wait_arm(&self) -> bool {
        false
    }
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
    fn wait_done(&self, fired: bool) -> bool {
        fired
    }
}
