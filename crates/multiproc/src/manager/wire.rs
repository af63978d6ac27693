//! The manager's wire protocol: one [`Request`] from a proxy, one [`Reply`] from the
//! server, over a [`SocketConnection`](crate::ipc::SocketConnection).
//!
//! Values travel as opaque encoded bytes ([`Bytes`]): the server stores and compares
//! them without decoding them, so it needs no knowledge of the proxies' types, and a
//! malformed value can only fail in the proxy that decodes it. Every request is
//! answered by exactly one reply, except [`Request::DecRef`], which is answered by
//! none (a proxy's `Drop` must not wait on the server).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A value encoded with [`codec`](crate::ipc::codec), opaque to the server.
pub(crate) type Bytes = Vec<u8>;

/// The identity of an object in a server.
pub(crate) type ObjectId = u64;

/// How long a blocking operation may wait in the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Wait {
    /// Do not wait: fail at once if the operation cannot proceed.
    No,
    /// Wait at most this long.
    For(Duration),
    /// Wait until the operation can proceed.
    Forever,
}

/// Who holds a reentrant lock: a process (a random nonce, so two machines' pids do not
/// collide) and a thread in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub(crate) process: u64,
    pub(crate) thread: u64,
}

/// The kinds of object a server creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// A map from encoded keys to encoded values (a dict or a namespace).
    Dict,
    /// A sequence of encoded values.
    List,
    /// A FIFO of encoded values; `maxsize` 0 means unbounded.
    Queue { maxsize: u64 },
    /// A non-reentrant lock.
    Lock,
    /// A reentrant lock.
    RLock,
    /// A counting semaphore, bounded (releases past `value` refused) or not.
    Semaphore { value: u64, bounded: bool },
    /// A flag that threads wait on.
    Event,
    /// A condition variable with its own reentrant lock.
    Condition,
    /// A barrier for `parties` parties.
    Barrier { parties: u64 },
    /// A registered [`Managed`](super::Managed) type, by its `TYPE_ID`, with its
    /// encoded `Init`.
    Custom { type_id: String, init: Bytes },
}

/// What a proxy asks the server.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// The first request on every connection: the client's process nonce (the
    /// locks a process takes are released when its last connection closes);
    /// replies [`Reply::Unit`].
    Hello(u64),
    /// Creates an object; replies [`Reply::Id`]. The new object has one reference,
    /// owned by the proxy that asked.
    Create(Kind),
    /// Adds a reference to an object (a proxy is being sent to another process);
    /// replies [`Reply::Unit`].
    IncRef(ObjectId),
    /// Drops a reference; no reply. The object is freed with its last reference.
    DecRef(ObjectId),
    /// Runs an operation on an object.
    Call(ObjectId, Op),
    /// The server's pid and the number of live objects; replies [`Reply::Info`].
    Info,
    /// Stops the server (only its owner asks); replies [`Reply::Unit`] first.
    Shutdown,
}

/// An operation on one object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    // ---- dict / namespace ----
    /// The value at a key: [`Reply::Value`].
    DictGet(Bytes),
    /// Inserts; the previous value: [`Reply::Value`].
    DictInsert(Bytes, Bytes),
    /// Inserts if absent; the value now there: [`Reply::Value`].
    DictSetDefault(Bytes, Bytes),
    /// Removes; the value that was there: [`Reply::Value`].
    DictRemove(Bytes),
    /// [`Reply::Bool`].
    DictContains(Bytes),
    /// The keys: [`Reply::Values`].
    DictKeys,
    /// The values: [`Reply::Values`].
    DictValues,
    /// The entries: [`Reply::Items`].
    DictItems,
    /// Inserts every entry: [`Reply::Unit`].
    DictUpdate(Vec<(Bytes, Bytes)>),
    // ---- list ----
    /// The element at an index: [`Reply::Value`].
    ListGet(u64),
    /// Replaces the element at an index: [`Reply::Value`] (the old one).
    ListSet(u64, Bytes),
    /// Appends: [`Reply::Unit`].
    ListPush(Bytes),
    /// Appends every value: [`Reply::Unit`].
    ListExtend(Vec<Bytes>),
    /// Removes the last element: [`Reply::Value`].
    ListPop,
    /// Inserts before an index (clamped to the length): [`Reply::Unit`].
    ListInsert(u64, Bytes),
    /// Removes the element at an index: [`Reply::Value`].
    ListRemove(u64),
    /// Every element: [`Reply::Values`].
    ListToVec,
    // ---- shared by dict, list and queue ----
    /// The number of elements: [`Reply::Len`].
    Len,
    /// Removes every element: [`Reply::Unit`].
    Clear,
    // ---- queue ----
    /// Puts a value, waiting for room: [`Reply::Unit`].
    QueuePut(Bytes, Wait),
    /// Takes a value, waiting for one: [`Reply::Value`] (`None` only if
    /// [`Wait::No`] found none).
    QueueGet(Wait),
    /// Marks a task done (a joinable queue's `task_done`): [`Reply::Unit`].
    QueueTaskDone,
    /// Waits until every value put was marked done: [`Reply::Bool`].
    QueueJoin(Wait),
    // ---- locks, semaphores, conditions ----
    /// Acquires: [`Reply::Bool`] (false: not within the wait). The owner is used by
    /// reentrant locks and conditions.
    Acquire(Owner, Wait),
    /// Releases: [`Reply::Unit`].
    Release(Owner),
    // ---- event ----
    /// Sets the flag: [`Reply::Unit`].
    EventSet,
    /// Clears the flag: [`Reply::Unit`].
    EventClear,
    /// The flag: [`Reply::Bool`].
    EventIsSet,
    /// Waits for the flag: [`Reply::Bool`] (the flag at the end).
    EventWait(Wait),
    // ---- condition ----
    /// Releases the lock (which the owner must hold), waits for a notification and
    /// reacquires it: [`Reply::Bool`] (false: timed out).
    CondWait(Owner, Wait),
    /// Wakes up to this many waiters (the owner must hold the lock): [`Reply::Unit`].
    CondNotify(Owner, u64),
    // ---- barrier ----
    /// Waits for the other parties: [`Reply::Len`] (this party's index, as Python's
    /// `wait` returns it).
    BarrierWait(Wait),
    /// Breaks the barrier: [`Reply::Unit`].
    BarrierAbort,
    // ---- registered types ----
    /// A [`Managed`](super::Managed) request, encoded: [`Reply::Value`] with the
    /// encoded response.
    Custom(Bytes),
}

impl Op {
    /// How long the operation may wait in the server, if it waits a bounded time.
    pub(crate) fn wait_limit(&self) -> Option<Duration> {
        let wait = match self {
            Op::QueuePut(_, w)
            | Op::QueueGet(w)
            | Op::QueueJoin(w)
            | Op::Acquire(_, w)
            | Op::EventWait(w)
            | Op::CondWait(_, w)
            | Op::BarrierWait(w) => *w,
            _ => return None,
        };
        match wait {
            Wait::For(d) => Some(d),
            Wait::No => Some(Duration::ZERO),
            Wait::Forever => None,
        }
    }
}

/// The server's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Unit,
    Bool(bool),
    Len(u64),
    Id(ObjectId),
    Value(Option<Bytes>),
    Values(Vec<Bytes>),
    Items(Vec<(Bytes, Bytes)>),
    Info { pid: u32, objects: u64 },
    Err(Error),
}
