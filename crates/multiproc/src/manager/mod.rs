//! A server process that holds shared objects, and proxies to them usable from any
//! process, on this machine or another (Python's `multiprocessing.Manager()` /
//! `SyncManager`, and `BaseManager` for your own types).
//!
//! [`Manager::new`] starts the server as a child process and returns the handle
//! that creates objects in it: [`dict`](Manager::dict), [`list`](Manager::list),
//! [`namespace`](Manager::namespace), [`value`](Manager::value), [`queue`](Manager::queue),
//! [`lock`](Manager::lock), [`rlock`](Manager::rlock),
//! [`semaphore`](Manager::semaphore), [`event`](Manager::event),
//! [`condition`](Manager::condition), [`barrier`](Manager::barrier), and any type
//! you [register](Builder::register) ([`create`](Manager::create)). Each call returns
//! a typed *proxy* ([`Dict<K, V>`](Dict), [`Queue<T>`](Queue), [`Lock`], …) whose
//! methods are round trips to the server.
//!
//! Reach for a manager when processes are unrelated or on other machines, or the
//! data is a map or list that grows; between related processes on one machine,
//! [`ipc::Queue`](crate::ipc::Queue), [`shm`](crate::shm) and [`sync`](crate::sync)
//! are much faster (no round trip, no copy through a socket).
//!
//! # Examples
//!
//! A dict, a queue and a lock shared by worker processes:
//!
//! ```
//! use multiproc::manager::{Dict, Lock, Queue};
//! use multiproc::{Manager, Process};
//!
//! fn worker((jobs, done, lock): (Queue<u32>, Dict<u32, u32>, Lock)) {
//!     while let Some(n) = jobs.try_get().unwrap() {
//!         let _held = lock.lock().unwrap();
//!         done.insert(n, n * 10).unwrap();
//!     }
//! }
//!
//! let manager = Manager::new()?;
//! let jobs = manager.queue::<u32>()?;
//! let done = manager.dict::<u32, u32>()?;
//! let lock = manager.lock()?;
//! for n in 0..6 {
//!     jobs.put(n)?;
//! }
//! let workers: Vec<_> = (0..2)
//!     .map(|_| Process::start_with(worker, (jobs.clone(), done.clone(), lock.clone())))
//!     .collect::<Result<_, _>>()?;
//! for w in workers {
//!     w.join()?;
//! }
//! assert_eq!(done.len()?, 6);
//! assert_eq!(done.get(5)?, Some(50));
//! # Ok::<(), multiproc::Error>(())
//! ```
//!
//! # The model
//!
//! - **The server** is a child process (any [`StartMethod`](crate::StartMethod))
//!   that listens on a [`Listener`](crate::ipc::Listener): by default a Unix socket
//!   in a new private directory, or any [`Address`](crate::ipc::Address), TCP
//!   included. Every connection passes the HMAC challenge on the manager's key (32
//!   random bytes unless you choose one) before a byte of it is read. The server
//!   dies with the process that started it (`die_with_parent`), and
//!   [`Manager::shutdown`] or dropping the `Manager` stops it, reaps it and removes
//!   its socket file and directory, even when it was killed.
//! - **Proxies** are `Clone`, `Send`, `Sync`, `Serialize` and `Deserialize`: send one
//!   to another process through a [`Pipe`](crate::Pipe), a [`Queue`](crate::Queue) or
//!   as a [`Process`](crate::Process) argument, and it connects to the server from
//!   there (its serialized form carries the address and the key, so send proxies only
//!   through channels you would trust with the key). Each process keeps a few
//!   connections per server and uses one per call in flight, so threads do not queue
//!   behind each other's blocking calls; a forked child never uses its parent's.
//! - **Lifetimes**: an object lives while a proxy to it exists anywhere. The server
//!   counts references: creating an object gives its proxy one, sending a proxy
//!   takes one for the receiver before the bytes leave (so the object survives the
//!   trip), and dropping the last clone of a proxy in a process gives its one back.
//!   A forked child's inherited copy takes its own reference at its first call:
//!   keep the parent's proxy alive until then (pass a clone). References held by a
//!   process that is killed are not given back: those objects live until the
//!   server stops.
//! - **Failure**: when the server dies (even by `SIGKILL`), every call, including
//!   one blocked in [`Queue::get`] or [`Lock::acquire`], returns an error of kind
//!   [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) as soon as its
//!   connection reports the hang-up, never a hang. Over TCP, connections have
//!   keepalive on (probes after 10 s of silence, 3 of them 5 s apart), so a server
//!   whose whole machine vanished, closing nothing, is reported within about 25 s.
//!   A server that is alive but stopped (`SIGSTOP`) is not dead: calls without a
//!   timeout wait, as in Python; a `_timeout` call gives up with
//!   [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) after its timeout plus 5 s
//!   (plus up to [`HANDSHAKE_TIMEOUT`](crate::ipc::HANDSHAKE_TIMEOUT) if it had to
//!   open a connection), and the server undoes what it did for a call whose caller
//!   gave up. When a *client* dies, the server
//!   releases the locks its process held (once its last connection closes), puts
//!   back a queue value it took but could not deliver, and frees the thread that
//!   served it. The server trusts nothing a client sends: messages are bounded
//!   ([`Builder::max_message_size`]), decoded with checks, and objects are found by
//!   id; values are stored as opaque bytes that only the proxies decode.
//!
//! # Your own types
//!
//! Python registers a class and proxies its methods by name. Here a type implements
//! [`Managed`]: its methods become the variants of a serde `Request` enum answered by
//! a `Response`, and `handle(&mut self, Request) -> Response` runs in the server,
//! one call at a time per object. A type is registered on the [`Builder`] by its
//! type, under its `TYPE_ID` name ([`register::<T>()`](Builder::register)), so the
//! set of types is part of the server's *type* and a spawned server, which shares
//! no memory with its parent, knows them without any function pointer being sent.
//! Requests and responses are checked like every message; a panic in `handle` is an
//! [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) error for the caller, not a
//! dead server.
//!
//! # Differences from Python
//!
//! - Proxies are typed: `manager.dict::<String, u32>()`; a value of another type
//!   fails to decode ([`ErrorKind::Decode`](crate::ErrorKind::Decode)) instead of
//!   coming back as whatever it is. A [`Namespace`] holds values of any type, typed
//!   at each [`get`](Namespace::get).
//! - A proxy can travel through a manager [`Queue`] (each value is taken once), but
//!   storing one in a [`Dict`], [`List`] or [`Namespace`] is not supported: its
//!   reference count assumes that a proxy serialized once is received once, and
//!   every read of a stored proxy would be another receipt.
//! - Keys compare by their serialized bytes (listings keep insertion order, as a
//!   Python `dict` does).
//! - Locks held by a process that dies are released (Python's stay held for ever).

mod builder;
mod handle;
mod managed;
mod ordered;
mod proxy;
mod server;
mod session;
mod sync;
mod wire;

pub use builder::{Builder, DEFAULT_MAX_MESSAGE_SIZE};
pub use handle::Manager;
pub use managed::{Managed, Proxy, Registry};
pub use proxy::{Dict, List, Namespace, Queue, Value};
pub use sync::{
    Barrier, Condition, ConditionGuard, Event, Lock, LockGuard, RLock, RLockGuard, Semaphore,
    SemaphoreGuard,
};
