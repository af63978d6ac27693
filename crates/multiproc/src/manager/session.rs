//! The client side: a [`Session`] (connections to one server, per process) and a
//! [`Handle`] (one object's reference, shared by a proxy's clones).

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::wire::{Bytes, Kind, ObjectId, Op, Owner, Reply, Request};
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::{
    codec, Address, Client, RecvError, RecvTimeoutError, SendError, SocketConnection,
    HANDSHAKE_TIMEOUT,
};
use crate::sys::fork::PerProcess;

/// Idle connections a session keeps per process (more are closed after their call).
const IDLE_MAX: usize = 4;
/// TCP keepalive: silence before the first probe, the time between probes, and the
/// unanswered probes that fail the connection, so a server whose machine vanished
/// is reported within about 25 s (a killed server process is reported at once).
pub(crate) const KEEPALIVE: (Duration, Duration, u32) =
    (Duration::from_secs(10), Duration::from_secs(5), 3);

/// How much longer than its own timeout a `_timeout` call waits for the server's reply.
pub(crate) const REPLY_GRACE: Duration = Duration::from_secs(5);

/// Turns on [`KEEPALIVE`] for a TCP connection (nothing to do for a Unix socket).
pub(crate) fn keepalive(address: &Address, conn: &SocketConnection) -> Result<()> {
    if let Address::Tcp(_) = address {
        let (idle, interval, count) = KEEPALIVE;
        crate::sys::socket::tcp_keepalive(conn.as_fd(), idle, interval, count)
            .map_err(|e| Error::os(e).with_message("cannot set TCP keepalive"))?;
    }
    Ok(())
}

/// Encodes a value for the server.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    let e = codec::encode(value)?;
    if !e.fds.is_empty() {
        return Err(Error::new(ErrorKind::Encode)
            .with_message("values that own file descriptors cannot be stored in a manager"));
    }
    Ok(e.bytes)
}

/// Decodes a value the server returned.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    codec::decode(bytes, Vec::new())
}

/// The error for a reply of the wrong shape (a server that breaks the protocol).
pub(crate) fn unexpected(reply: &Reply) -> Error {
    match reply {
        Reply::Err(e) => clone_error(e),
        r => Error::new(ErrorKind::Corrupt)
            .with_message(format!("the manager server sent an unexpected reply {r:?}")),
    }
}

fn clone_error(e: &Error) -> Error {
    // Errors are not `Clone`; a round trip through their serialized form is.
    encode(e)
        .and_then(|b| decode(&b))
        .unwrap_or_else(|_| Error::new(e.kind()))
}

fn this_pid() -> u32 {
    std::process::id()
}

/// A random number per process (a forked child gets its own): names the process to
/// servers, which release the locks it holds when its last connection closes.
pub(crate) fn process_nonce() -> u64 {
    static NONCE: PerProcess<u64> = PerProcess::new(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(this_pid());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    });
    *NONCE.lock()
}

/// The lock owner for the calling thread.
pub(crate) fn owner() -> Owner {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static THREAD: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    Owner {
        process: process_nonce(),
        thread: THREAD.with(|t| *t),
    }
}

/// The connections of this process to one server.
pub(crate) struct Session {
    /// The process this session belongs to.
    pid: u32,
    address: Address,
    authkey: Option<Vec<u8>>,
    idle: Mutex<Idle>,
}

struct Idle {
    /// The process the connections belong to: a forked child must not use its
    /// parent's (their streams would interleave), so it starts afresh.
    pid: u32,
    conns: Vec<SocketConnection>,
}

/// Every live session of this process, so a proxy received from another process
/// shares the connections of those already here.
/// Per process: a forked child starts with none (another thread of the parent may
/// have held the lock at the fork), so it never waits on its parent's state.
static SESSIONS: PerProcess<Vec<Weak<Session>>> = PerProcess::new(Vec::new);

impl Session {
    /// The session for `address` with `authkey`, shared with this process's proxies.
    pub(crate) fn get(address: &Address, authkey: Option<&[u8]>) -> Arc<Session> {
        let mut all = SESSIONS.lock();
        all.retain(|w| w.strong_count() > 0);
        for s in all.iter().filter_map(Weak::upgrade) {
            if s.address == *address && s.authkey.as_deref() == authkey {
                return s;
            }
        }
        let s = Arc::new(Session {
            pid: this_pid(),
            address: address.clone(),
            authkey: authkey.map(<[u8]>::to_vec),
            idle: Mutex::new(Idle {
                pid: this_pid(),
                conns: Vec::new(),
            }),
        });
        all.push(Arc::downgrade(&s));
        s
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    pub(crate) fn authkey(&self) -> Option<&[u8]> {
        self.authkey.as_deref()
    }

    /// The error every call returns once the server is gone.
    pub(crate) fn gone(&self) -> Error {
        Error::new(ErrorKind::Disconnected)
            .with_message(format!("the manager server at {} is gone", self.address))
    }

    /// [`gone`](Self::gone), with the socket's error as the cause.
    fn gone_because(&self, e: Error) -> Error {
        let source = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(|io| std::io::Error::from(io.kind()));
        match source {
            Some(io) => self.gone().with_source(io),
            None => self.gone(),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.pid != this_pid() {
            // Inherited through fork: close our copies, never use them.
            idle.conns.clear();
            idle.pid = this_pid();
        }
        idle
    }

    /// An idle connection whose server has not hung up, or a new one. A request is
    /// sent only on a connection that looked alive, so a server restarted at the
    /// same address is reached on the first call, and none is sent twice. A new one
    /// is made by `deadline` (see [`connect_until`](Self::connect_until)).
    fn take(&self, deadline: Option<Instant>) -> Result<SocketConnection> {
        loop {
            let conn = self.idle().conns.pop();
            match conn {
                Some(c) if crate::sys::socket::peer_gone(c.as_fd()) => {}
                Some(c) => return Ok(c),
                None => return self.connect_until(deadline),
            }
        }
    }

    /// A new authenticated connection, introduced to the server; fails with
    /// [`ErrorKind::Timeout`] if the handshake and the server's answer to the hello are not done by `deadline`
    /// (a server that is stopped still accepts connections); without a deadline the
    /// handshake has [`HANDSHAKE_TIMEOUT`] and the hello waits as a call does.
    pub(crate) fn connect_until(&self, deadline: Option<Instant>) -> Result<SocketConnection> {
        let handshake = deadline.unwrap_or_else(|| Instant::now() + HANDSHAKE_TIMEOUT);
        let key = self.authkey.as_deref();
        let conn = Client::connect_until(&self.address, key, handshake).map_err(|e| {
            let refused = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| {
                    use std::io::ErrorKind as K;
                    matches!(
                        io.kind(),
                        K::ConnectionRefused | K::NotFound | K::ConnectionReset | K::BrokenPipe
                    )
                });
            if refused || e.kind() == ErrorKind::Disconnected {
                self.gone()
            } else {
                e
            }
        })?;
        keepalive(&self.address, &conn)?;
        let patience = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match self.exchange_within(&conn, Request::Hello(process_nonce()), patience) {
            Ok(Reply::Unit) => Ok(conn),
            Ok(r) => Err(unexpected(&r)),
            // Without a key, a keyed server's challenge is what comes back.
            Err(e) if self.authkey.is_none() && e.kind() == ErrorKind::Decode => Err(Error::new(
                ErrorKind::AuthenticationFailed,
            )
            .with_message(format!(
                "the manager server at {} did not answer (does it require a key?)",
                self.address
            ))),
            Err(e) => Err(e),
        }
    }

    /// Sends `request` and waits for the reply, at most `patience` if given.
    fn exchange_within(
        &self,
        conn: &SocketConnection,
        request: Request,
        patience: Option<Duration>,
    ) -> Result<Reply> {
        // A socket error (a reset, a keepalive timeout) means the server is gone too.
        match conn.send(request) {
            Ok(()) => {}
            Err(SendError::Disconnected(_)) => return Err(self.gone()),
            Err(SendError::Rejected(_, e)) if e.kind() == ErrorKind::Os => {
                return Err(self.gone_because(e))
            }
            Err(SendError::Rejected(_, e)) => return Err(e),
        }
        let got = match patience {
            None => conn.recv::<Reply>(),
            Some(d) => match conn.recv_timeout::<Reply>(d) {
                Ok(r) => Ok(r),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::new(ErrorKind::Timeout).with_message(format!(
                        "the manager server at {} did not answer within {d:?}",
                        self.address
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => Err(RecvError::Disconnected),
                Err(RecvTimeoutError::Invalid(e)) => Err(RecvError::Invalid(e)),
            },
        };
        match got {
            Ok(r) => Ok(r),
            Err(RecvError::Disconnected) => Err(self.gone()),
            Err(RecvError::Invalid(e)) if e.kind() == ErrorKind::Os => Err(self.gone_because(e)),
            Err(RecvError::Invalid(e)) => Err(e),
        }
    }

    /// Sends `request` and returns the reply (a [`Reply::Err`] as `Err`).
    pub(crate) fn call(&self, request: Request) -> Result<Reply> {
        self.call_within(request, None)
    }

    /// As [`call`](Self::call), giving up with [`ErrorKind::Timeout`] if no reply
    /// came within `patience`, a new connection's handshake included (the
    /// connection is then closed: a late reply must not answer the next call, and
    /// the server undoes what it did for a client that hung up).
    pub(crate) fn call_within(
        &self,
        request: Request,
        patience: Option<Duration>,
    ) -> Result<Reply> {
        let deadline = patience.and_then(|p| Instant::now().checked_add(p));
        let conn = self.take(deadline)?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let reply = self.exchange_within(&conn, request, left)?;
        {
            let mut idle = self.idle();
            if idle.conns.len() < IDLE_MAX {
                idle.conns.push(conn);
            }
        }
        match reply {
            Reply::Err(e) => Err(e),
            r => Ok(r),
        }
    }

    /// Sends a request that has no reply, without waiting; errors are ignored (the
    /// server being gone frees everything anyway).
    fn notify(&self, request: Request) {
        let Ok(conn) = self.take(None) else {
            return;
        };
        if conn.send(request).is_ok() {
            let mut idle = self.idle();
            if idle.conns.len() < IDLE_MAX {
                idle.conns.push(conn);
            }
        }
    }

    /// Creates an object of `kind`; the handle owns its one reference.
    pub(crate) fn create(self: &Arc<Self>, kind: Kind) -> Result<Handle> {
        match self.call(Request::Create(kind))? {
            Reply::Id(id) => Ok(Handle::owning(Arc::clone(self), id)),
            r => Err(unexpected(&r)),
        }
    }
}

/// One reference to an object in a server, shared by a proxy and its clones.
///
/// It owns a reference count in the server while `owner` is this process's pid: a
/// forked child's copy owns nothing until its first call takes a reference of its
/// own ([`adopt`](Inner::adopt)), and does not drop one it does not own.
#[derive(Clone)]
pub(crate) struct Handle(Arc<Inner>);

struct Inner {
    session: Arc<Session>,
    id: ObjectId,
    /// The pid whose reference this is, or 0 for none.
    owner: AtomicU32,
}

impl Inner {
    /// This process's session with the server: a forked child's handle uses a session
    /// of its own, never its parent's (whose locks another thread of the parent may
    /// have held at the fork).
    fn session(&self) -> Arc<Session> {
        if self.session.pid == this_pid() {
            return Arc::clone(&self.session);
        }
        // Kept for the rest of this process: the handle cannot hold it, and a session
        // dropped after each call would close its connections, which releases the
        // locks this process holds.
        static INHERITED: PerProcess<Vec<Arc<Session>>> = PerProcess::new(Vec::new);
        let s = Session::get(&self.session.address, self.session.authkey.as_deref());
        let mut kept = INHERITED.lock();
        if !kept.iter().any(|k| Arc::ptr_eq(k, &s)) {
            kept.push(Arc::clone(&s));
        }
        s
    }

    /// Takes a reference for this process if the handle came here by fork.
    fn adopt(&self) -> Result<()> {
        let pid = this_pid();
        let held = self.owner.load(Ordering::Acquire);
        if held == pid {
            return Ok(());
        }
        match self.session().call(Request::IncRef(self.id))? {
            Reply::Unit => {}
            r => return Err(unexpected(&r)),
        }
        if self
            .owner
            .compare_exchange(held, pid, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another thread adopted it first: give ours back.
            self.session().notify(Request::DecRef(self.id));
        }
        Ok(())
    }
}

impl Handle {
    fn owning(session: Arc<Session>, id: ObjectId) -> Handle {
        Handle(Arc::new(Inner {
            session,
            id,
            owner: AtomicU32::new(this_pid()),
        }))
    }

    /// Runs an operation on the object. One that waits at most a duration in the
    /// server is given that long plus [`REPLY_GRACE`] for its reply here, so a
    /// `_timeout` call returns even from a server that stopped answering.
    pub(crate) fn call(&self, op: Op) -> Result<Reply> {
        self.0.adopt()?;
        let patience = op.wait_limit().map(|d| d.saturating_add(REPLY_GRACE));
        self.0
            .session()
            .call_within(Request::Call(self.0.id, op), patience)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.owner.load(Ordering::Acquire) == this_pid() {
            self.session().notify(Request::DecRef(self.id));
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("server", &self.0.session.address)
            .field("id", &self.0.id)
            .finish()
    }
}

/// What a proxy is on the wire: where its server is, the key, and the object.
#[derive(Serialize, Deserialize)]
struct WireHandle {
    address: Address,
    authkey: Option<Vec<u8>>,
    id: ObjectId,
}

/// Sending a proxy takes a reference for the receiver first, so the object outlives
/// the trip even if the sender drops its proxy at once.
impl Serialize for Handle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let inner = &self.0;
        // Once per send, however many passes the sender's encoding makes.
        if crate::codec::first_serialization() {
            match inner.session().call(Request::IncRef(inner.id)) {
                Ok(Reply::Unit) => {}
                Ok(r) => return Err(S::Error::custom(unexpected(&r))),
                Err(e) => return Err(S::Error::custom(e)),
            }
        }
        WireHandle {
            address: inner.session.address.clone(),
            authkey: inner.session.authkey.clone(),
            id: inner.id,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = WireHandle::deserialize(d)?;
        Ok(Handle::owning(
            Session::get(&w.address, w.authkey.as_deref()),
            w.id,
        ))
    }
}
