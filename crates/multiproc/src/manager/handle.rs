//! [`Manager`]: the owner's (or a connected client's) handle on a server.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::builder::Builder;
use super::managed::{Managed, Proxy};
use super::proxy::{Dict, List, Namespace, Queue, Value};
use super::session::{encode, unexpected, Session};
use super::sync::{Barrier, Condition, Event, Lock, RLock, Semaphore};
use super::wire::{Kind, Reply, Request};
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::Address;
use crate::process::Process;

/// How long [`Manager::shutdown`] waits for the server to exit before killing it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A server process holding shared objects, and the factory of proxies to them
/// (Python's `multiprocessing.Manager()`, a `SyncManager`).
///
/// See the [module docs](super) for the model. [`Manager::new`] starts a server
/// for this process; [`Manager::connect`] reaches one another process started.
///
/// # Examples
///
/// ```
/// use multiproc::{Manager, Process};
/// use multiproc::manager::Dict;
///
/// fn worker((d, n): (Dict<u32, u32>, u32)) {
///     d.insert(n, n * n).unwrap();
/// }
///
/// let manager = Manager::new()?;
/// let squares = manager.dict::<u32, u32>()?;
/// let workers: Vec<_> = (1..=3)
///     .map(|n| Process::start_with(worker, (squares.clone(), n)))
///     .collect::<Result<_, _>>()?;
/// for w in workers {
///     w.join()?;
/// }
/// let mut got = squares.items()?;
/// got.sort();
/// assert_eq!(got, [(1, 1), (2, 4), (3, 9)]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Manager {
    session: Arc<Session>,
    /// The process that started the server: only it may stop it (a forked child's
    /// copy of this handle must not).
    owner_pid: u32,
    /// The server process and its private socket directory, if this handle started it.
    server: Option<Mutex<Option<Owned>>>,
}

struct Owned {
    process: Process<()>,
    private_dir: Option<PathBuf>,
}

impl Manager {
    /// Starts a manager with the default settings (see [`Builder`]).
    ///
    /// # Errors
    ///
    /// As [`Builder::start`].
    pub fn new() -> Result<Manager> {
        Manager::builder().start()
    }

    /// A builder to choose the address, key, start method and registered types.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn owning(
        session: Arc<Session>,
        process: Process<()>,
        private_dir: Option<PathBuf>,
    ) -> Manager {
        Manager {
            session,
            owner_pid: std::process::id(),
            server: Some(Mutex::new(Some(Owned {
                process,
                private_dir,
            }))),
        }
    }

    /// Connects to a manager another process started (Python's
    /// `BaseManager(address, authkey).connect()`), checking that it answers.
    ///
    /// The returned `Manager` creates proxies like the owner's; it does not own the
    /// server ([`shutdown`](Self::shutdown) refuses, dropping it stops nothing).
    /// Creating a [registered type](Managed) needs the type registered in the
    /// server, not here.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AuthenticationFailed`] if the key is wrong;
    /// [`ErrorKind::Disconnected`] if nothing serves that address;
    /// [`ErrorKind::Os`] if the connection fails otherwise.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn connect(address: &Address, authkey: Option<&[u8]>) -> Result<Manager> {
        let session = Session::get(address, authkey);
        match session.call(Request::Info)? {
            Reply::Info { .. } => Ok(Manager {
                session,
                owner_pid: std::process::id(),
                server: None,
            }),
            r => Err(unexpected(&r)),
        }
    }

    /// Where the server listens (give it, with the [key](Self::authkey), to
    /// [`connect`](Self::connect)).
    pub fn address(&self) -> &Address {
        self.session.address()
    }

    /// The key clients must hold, if any.
    pub fn authkey(&self) -> Option<&[u8]> {
        self.session.authkey()
    }

    /// The server's process id, if this handle started it.
    pub fn pid(&self) -> Option<i32> {
        let owned = self.server.as_ref()?;
        let owned = owned.lock().unwrap_or_else(|e| e.into_inner());
        owned.as_ref().map(|o| o.process.pid())
    }

    /// The number of objects the server holds (objects are freed with their last
    /// proxy).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone.
    pub fn object_count(&self) -> Result<usize> {
        match self.session.call(Request::Info)? {
            Reply::Info { objects, .. } => Ok(usize::try_from(objects).unwrap_or(usize::MAX)),
            r => Err(unexpected(&r)),
        }
    }

    /// A new shared map (Python's `manager.dict()`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone (every constructor).
    pub fn dict<K, V>(&self) -> Result<Dict<K, V>> {
        self.session.create(Kind::Dict).map(Dict::from_handle)
    }

    /// A new shared list (Python's `manager.list()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn list<T>(&self) -> Result<List<T>> {
        self.session.create(Kind::List).map(List::from_handle)
    }

    /// A new shared value, starting at `init` (Python's `manager.Value(typecode,
    /// value)`; for `manager.Array(typecode, seq)`, use a [`list`](Self::list)).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict), and [`ErrorKind::Encode`] if `init` does not serialize.
    pub fn value<T: serde::Serialize>(&self, init: &T) -> Result<Value<T>> {
        let init = encode(init)?;
        let handle = self.session.create(Kind::List)?;
        match handle.call(super::wire::Op::ListPush(init))? {
            Reply::Unit => Ok(Value::from_handle(handle)),
            r => Err(unexpected(&r)),
        }
    }

    /// A new namespace (Python's `manager.Namespace()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn namespace(&self) -> Result<Namespace> {
        self.session.create(Kind::Dict).map(Namespace::from_handle)
    }

    /// A new unbounded queue (Python's `manager.Queue()` / `JoinableQueue()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn queue<T>(&self) -> Result<Queue<T>> {
        self.queue_bounded(0)
    }

    /// A new queue that holds at most `maxsize` values (0: unbounded), Python's
    /// `manager.Queue(maxsize)`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn queue_bounded<T>(&self, maxsize: usize) -> Result<Queue<T>> {
        let maxsize = u64::try_from(maxsize).unwrap_or(u64::MAX);
        self.session
            .create(Kind::Queue { maxsize })
            .map(Queue::from_handle)
    }

    /// A new lock (Python's `manager.Lock()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn lock(&self) -> Result<Lock> {
        self.session.create(Kind::Lock).map(Lock::from_handle)
    }

    /// A new reentrant lock (Python's `manager.RLock()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn rlock(&self) -> Result<RLock> {
        self.session.create(Kind::RLock).map(RLock::from_handle)
    }

    /// A new semaphore with `value` permits (Python's `manager.Semaphore(value)`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn semaphore(&self, value: usize) -> Result<Semaphore> {
        self.semaphore_kind(value, false)
    }

    /// A new semaphore that refuses to be released past `value` (Python's
    /// `manager.BoundedSemaphore(value)`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn bounded_semaphore(&self, value: usize) -> Result<Semaphore> {
        self.semaphore_kind(value, true)
    }

    fn semaphore_kind(&self, value: usize, bounded: bool) -> Result<Semaphore> {
        let value = u64::try_from(value).unwrap_or(u64::MAX);
        self.session
            .create(Kind::Semaphore { value, bounded })
            .map(Semaphore::from_handle)
    }

    /// A new event (Python's `manager.Event()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn event(&self) -> Result<Event> {
        self.session.create(Kind::Event).map(Event::from_handle)
    }

    /// A new condition variable with its own reentrant lock (Python's
    /// `manager.Condition()`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn condition(&self) -> Result<Condition> {
        self.session
            .create(Kind::Condition)
            .map(Condition::from_handle)
    }

    /// A new barrier for `parties` parties (Python's `manager.Barrier(parties)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `parties` is 0; otherwise as [`dict`](Self::dict).
    pub fn barrier(&self, parties: usize) -> Result<Barrier> {
        let parties = u64::try_from(parties).unwrap_or(u64::MAX);
        self.session
            .create(Kind::Barrier { parties })
            .map(Barrier::from_handle)
    }

    /// A new object of the registered type `M`, made by `M::new(init)` in the
    /// server (Python's `manager.TypeId(args)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotRegistered`] if the server has no type registered as
    /// `M::TYPE_ID`; [`ErrorKind::Decode`] if its `Init` differs from `M::Init`;
    /// [`ErrorKind::Panicked`] if `new` panicked; otherwise as [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// See [`Managed`].
    pub fn create<M: Managed>(&self, init: &M::Init) -> Result<Proxy<M>> {
        let kind = Kind::Custom {
            type_id: M::TYPE_ID.to_owned(),
            init: encode(init)?,
        };
        self.session.create(kind).map(Proxy::from_handle)
    }

    /// Stops the server this handle started (Python's `shutdown`), waiting for it to
    /// exit (killing it if it has not within 5 s) and removing its socket. Every
    /// proxy's next call then fails with [`ErrorKind::Disconnected`]. Calling it
    /// again does nothing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] on a handle from [`connect`](Self::connect),
    /// which does not own the server, and in a forked child (its copy of the handle
    /// is not the owner's).
    pub fn shutdown(&self) -> Result<()> {
        let Some(server) = &self.server else {
            return Err(Error::new(ErrorKind::InvalidInput).with_message(
                "this manager was connected to, not started: it cannot stop the server",
            ));
        };
        if std::process::id() != self.owner_pid {
            return Err(Error::new(ErrorKind::InvalidInput).with_message(
                "a forked child's copy of a manager cannot stop its parent's server",
            ));
        }
        let owned = server.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut owned) = owned else {
            return Ok(());
        };
        if owned.process.is_alive() {
            // Ask politely on a fresh connection, waiting a bounded time for it (a
            // stopped server accepts, but never answers the hello) and the answer.
            let by = std::time::Instant::now().checked_add(SHUTDOWN_GRACE);
            if let Ok(conn) = self.session.connect_until(by) {
                if conn.send(Request::Shutdown).is_ok() {
                    let _ = conn.recv_timeout::<Reply>(SHUTDOWN_GRACE);
                }
            }
        }
        if owned.process.join_timeout(SHUTDOWN_GRACE).is_err() && owned.process.is_alive() {
            let _ = owned.process.kill();
            let _ = owned.process.join_timeout(SHUTDOWN_GRACE);
        }
        // A server killed before it could clean up leaves its socket file.
        if let Address::Unix(path) = self.session.address() {
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = &owned.private_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let Some(server) = &self.server else {
            return;
        };
        if std::process::id() == self.owner_pid {
            let _ = self.shutdown();
        } else {
            // A forked child's copy: the process handle would kill the parent's
            // server on drop (a pidfd works from any process). Leave it alone.
            let owned = server.lock().unwrap_or_else(|e| e.into_inner()).take();
            std::mem::forget(owned);
        }
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", self.session.address())
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}
