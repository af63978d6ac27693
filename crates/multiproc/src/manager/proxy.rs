//! The data proxies: [`Dict`], [`List`], [`Namespace`] and [`Queue`].

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::session::{decode, encode, unexpected, Handle};
use super::wire::{Op, Reply, Wait};
use crate::error::{Error, ErrorKind, Result};

/// Implements `Clone`, `Debug`, `Serialize` and `Deserialize` for a proxy type that
/// wraps a [`Handle`] (plus `PhantomData`).
macro_rules! proxy_impls {
    ($name:ident $(<$($p:ident),*>)?) => {
        impl$(<$($p),*>)? Clone for $name$(<$($p),*>)? {
            fn clone(&self) -> Self {
                Self::from_handle(self.handle.clone())
            }
        }

        impl$(<$($p),*>)? fmt::Debug for $name$(<$($p),*>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.handle).finish()
            }
        }

        impl$(<$($p),*>)? Serialize for $name$(<$($p),*>)? {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.handle.serialize(s)
            }
        }

        impl<'de $($(, $p)*)?> Deserialize<'de> for $name$(<$($p),*>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Handle::deserialize(d).map(Self::from_handle)
            }
        }
    };
}
pub(crate) use proxy_impls;

fn value<T: DeserializeOwned>(r: Reply) -> Result<Option<T>> {
    match r {
        Reply::Value(v) => v.map(|b| decode(&b)).transpose(),
        r => Err(unexpected(&r)),
    }
}

fn values<T: DeserializeOwned>(r: Reply) -> Result<Vec<T>> {
    match r {
        Reply::Values(v) => v.iter().map(|b| decode(b)).collect(),
        r => Err(unexpected(&r)),
    }
}

pub(crate) fn unit(r: Reply) -> Result<()> {
    match r {
        Reply::Unit => Ok(()),
        r => Err(unexpected(&r)),
    }
}

pub(crate) fn boolean(r: Reply) -> Result<bool> {
    match r {
        Reply::Bool(b) => Ok(b),
        r => Err(unexpected(&r)),
    }
}

pub(crate) fn length(r: Reply) -> Result<u64> {
    match r {
        Reply::Len(n) => Ok(n),
        r => Err(unexpected(&r)),
    }
}

fn len(r: Reply) -> Result<usize> {
    length(r).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn timed_out(what: &str, d: Duration) -> Error {
    Error::new(ErrorKind::Timeout).with_message(format!("{what} did not complete within {d:?}"))
}

/// A map from `K` to `V` held by a manager's server (Python's `manager.dict()`).
///
/// Keys are compared by their encoding: two keys are the same key when they
/// serialize to the same bytes (true of the usual key types: integers, strings,
/// tuples and derived structs of them; not of a `HashMap` inside a key). The
/// listings ([`keys`](Self::keys), [`items`](Self::items)) are in insertion order,
/// as with a Python `dict`: replacing a value keeps its key's place. Each method is one round trip to the server and is atomic there; a
/// read-modify-write of several calls is not (hold a manager [`Lock`](super::Lock)
/// around it).
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let scores = manager.dict::<String, u32>()?;
/// scores.insert("alice".to_string(), 3)?;
/// assert_eq!(scores.get("alice".to_string())?, Some(3));
/// assert_eq!(scores.len()?, 1);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Dict<K, V> {
    handle: Handle,
    _types: PhantomData<fn() -> (K, V)>,
}

proxy_impls!(Dict<K, V>);

impl<K, V> Dict<K, V> {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Dict {
            handle,
            _types: PhantomData,
        }
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> Dict<K, V> {
    /// The value at `key` (Python's `d.get(key)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone (every method of every
    /// proxy); [`ErrorKind::Decode`] if the value stored does not decode as `V`.
    pub fn get(&self, key: impl Borrow<K>) -> Result<Option<V>> {
        value(self.handle.call(Op::DictGet(encode(key.borrow())?))?)
    }

    /// Inserts `value` at `key`; returns the value that was there (`d[key] = value`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), and [`ErrorKind::Encode`] if a value does not serialize.
    pub fn insert(&self, key: impl Borrow<K>, value: impl Borrow<V>) -> Result<Option<V>> {
        let op = Op::DictInsert(encode(key.borrow())?, encode(value.borrow())?);
        self::value(self.handle.call(op)?)
    }

    /// Inserts `value` at `key` if the key is absent; returns the value now at `key`
    /// (Python's `setdefault`), atomically.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub fn get_or_insert(&self, key: impl Borrow<K>, value: impl Borrow<V>) -> Result<V> {
        let op = Op::DictSetDefault(encode(key.borrow())?, encode(value.borrow())?);
        self::value(self.handle.call(op)?)?.ok_or_else(|| unexpected(&Reply::Value(None)))
    }

    /// Removes `key`; returns its value (Python's `d.pop(key, None)`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn remove(&self, key: impl Borrow<K>) -> Result<Option<V>> {
        value(self.handle.call(Op::DictRemove(encode(key.borrow())?))?)
    }

    /// Whether `key` is present (`key in d`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn contains_key(&self, key: impl Borrow<K>) -> Result<bool> {
        boolean(self.handle.call(Op::DictContains(encode(key.borrow())?))?)
    }

    /// The number of entries.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn len(&self) -> Result<usize> {
        len(self.handle.call(Op::Len)?)
    }

    /// Whether there are no entries.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Every key.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn keys(&self) -> Result<Vec<K>> {
        values(self.handle.call(Op::DictKeys)?)
    }

    /// Every value.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn values(&self) -> Result<Vec<V>> {
        values(self.handle.call(Op::DictValues)?)
    }

    /// Every entry (Python's `d.items()`; `dict(d)` is `items()` collected).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.handle.call(Op::DictItems)? {
            Reply::Items(items) => items
                .iter()
                .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
                .collect(),
            r => Err(unexpected(&r)),
        }
    }

    /// Inserts every entry, in one round trip (Python's `update`).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub fn update<I: IntoIterator<Item = (K, V)>>(&self, entries: I) -> Result<()> {
        let entries = entries
            .into_iter()
            .map(|(k, v)| Ok((encode(&k)?, encode(&v)?)))
            .collect::<Result<Vec<_>>>()?;
        unit(self.handle.call(Op::DictUpdate(entries))?)
    }

    /// Removes every entry.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn clear(&self) -> Result<()> {
        unit(self.handle.call(Op::Clear)?)
    }
}

/// A sequence of `T` held by a manager's server (Python's `manager.list()`).
///
/// Indexes are `usize` from the front (no negative indexes); each method is one
/// atomic round trip.
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let log = manager.list::<String>()?;
/// log.push("started".to_string())?;
/// log.extend(["a".to_string(), "b".to_string()])?;
/// assert_eq!(log.to_vec()?, ["started", "a", "b"]);
/// assert_eq!(log.pop()?.as_deref(), Some("b"));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct List<T> {
    handle: Handle,
    _type: PhantomData<fn() -> T>,
}

proxy_impls!(List<T>);

impl<T> List<T> {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        List {
            handle,
            _type: PhantomData,
        }
    }
}

fn out_of_range_index(index: usize) -> u64 {
    u64::try_from(index).unwrap_or(u64::MAX)
}

impl<T: Serialize + DeserializeOwned> List<T> {
    /// The element at `index`, or `None` past the end.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone; [`ErrorKind::Decode`] if
    /// the element does not decode as `T`.
    pub fn get(&self, index: usize) -> Result<Option<T>> {
        value(self.handle.call(Op::ListGet(out_of_range_index(index)))?)
    }

    /// Replaces the element at `index`; returns the old one (`l[i] = v`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `index` is past the end; otherwise as
    /// [`get`](Self::get).
    pub fn set(&self, index: usize, value: impl Borrow<T>) -> Result<T> {
        let op = Op::ListSet(out_of_range_index(index), encode(value.borrow())?);
        self::value(self.handle.call(op)?)?.ok_or_else(|| unexpected(&Reply::Value(None)))
    }

    /// Appends `value` (Python's `append`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), and [`ErrorKind::Encode`] if it does not serialize.
    pub fn push(&self, value: impl Borrow<T>) -> Result<()> {
        unit(self.handle.call(Op::ListPush(encode(value.borrow())?))?)
    }

    /// Appends every value, in one round trip.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn extend<I: IntoIterator<Item = T>>(&self, values: I) -> Result<()> {
        let values = values
            .into_iter()
            .map(|v| encode(&v))
            .collect::<Result<Vec<_>>>()?;
        unit(self.handle.call(Op::ListExtend(values))?)
    }

    /// Removes and returns the last element.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn pop(&self) -> Result<Option<T>> {
        value(self.handle.call(Op::ListPop)?)
    }

    /// Inserts `value` before `index` (at the end if `index` is past it).
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn insert(&self, index: usize, value: impl Borrow<T>) -> Result<()> {
        let op = Op::ListInsert(out_of_range_index(index), encode(value.borrow())?);
        unit(self.handle.call(op)?)
    }

    /// Removes and returns the element at `index` (Python's `pop(i)`).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn remove(&self, index: usize) -> Result<T> {
        value(
            self.handle
                .call(Op::ListRemove(out_of_range_index(index)))?,
        )?
        .ok_or_else(|| unexpected(&Reply::Value(None)))
    }

    /// Every element, in order (Python's `list(l)`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        values(self.handle.call(Op::ListToVec)?)
    }

    /// The number of elements.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn len(&self) -> Result<usize> {
        len(self.handle.call(Op::Len)?)
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Removes every element.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn clear(&self) -> Result<()> {
        unit(self.handle.call(Op::Clear)?)
    }
}

/// Named attributes of any serializable type, held by a manager's server (Python's
/// `manager.Namespace()`, whose `ns.x = 1` becomes `ns.set("x", &1)`).
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let ns = manager.namespace()?;
/// ns.set("epoch", &3u32)?;
/// ns.set("name", &"run-7")?;
/// assert_eq!(ns.get::<u32>("epoch")?, Some(3));
/// assert_eq!(ns.get::<String>("name")?.as_deref(), Some("run-7"));
/// assert_eq!(ns.get::<u32>("missing")?, None);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Namespace {
    handle: Handle,
}

proxy_impls!(Namespace);

impl Namespace {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Namespace { handle }
    }

    /// The attribute `name` as a `T`, or `None` if it is not set.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`] if it was set to a value of another type;
    /// [`ErrorKind::Disconnected`] if the server is gone.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        value(self.handle.call(Op::DictGet(encode(name)?))?)
    }

    /// Sets the attribute `name`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Encode`] if the value does not serialize;
    /// [`ErrorKind::Disconnected`] if the server is gone.
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        let op = Op::DictInsert(encode(name)?, encode(value)?);
        match self.handle.call(op)? {
            Reply::Value(_) => Ok(()),
            r => Err(unexpected(&r)),
        }
    }

    /// Removes the attribute `name` (`del ns.name`); whether it was set.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone.
    pub fn remove(&self, name: &str) -> Result<bool> {
        match self.handle.call(Op::DictRemove(encode(name)?))? {
            Reply::Value(v) => Ok(v.is_some()),
            r => Err(unexpected(&r)),
        }
    }

    /// The names of the attributes that are set.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone.
    pub fn names(&self) -> Result<Vec<String>> {
        values(self.handle.call(Op::DictKeys)?)
    }
}

/// A FIFO queue of `T` held by a manager's server (Python's `manager.Queue()` and
/// `manager.JoinableQueue()`: [`task_done`](Self::task_done) and
/// [`join`](Self::join) work on every manager queue).
///
/// Unlike [`ipc::Queue`](crate::ipc::Queue), which moves values through shared
/// memory between related processes, a manager queue reaches any process that can
/// connect to the server, over the network too, at the cost of a round trip per
/// call. A blocked [`get`](Self::get) or [`put`](Self::put) returns
/// [`ErrorKind::Disconnected`] as soon as the server dies; a value the server took
/// for a client that died before receiving it goes back to the front of the queue.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::{ErrorKind, Manager};
///
/// let manager = Manager::new()?;
/// let q = manager.queue::<u32>()?;
/// q.put(1)?;
/// q.put(2)?;
/// assert_eq!(q.get()?, 1);
/// assert_eq!(q.try_get()?, Some(2));
/// let e = q.get_timeout(Duration::from_millis(10)).unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::Timeout);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Queue<T> {
    handle: Handle,
    _type: PhantomData<fn() -> T>,
}

proxy_impls!(Queue<T>);

impl<T> Queue<T> {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Queue {
            handle,
            _type: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    fn put_wait(&self, value: &T, wait: Wait) -> Result<bool> {
        boolean(self.handle.call(Op::QueuePut(encode(value)?, wait))?)
    }

    fn get_wait(&self, wait: Wait) -> Result<Option<T>> {
        value(self.handle.call(Op::QueueGet(wait))?)
    }

    /// Puts `value` at the back, waiting while a bounded queue is full.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone (also while waiting);
    /// [`ErrorKind::Encode`] if the value does not serialize.
    pub fn put(&self, value: impl Borrow<T>) -> Result<()> {
        self.put_wait(value.borrow(), Wait::Forever).map(drop)
    }

    /// Puts `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if the queue stayed full; otherwise as [`put`](Self::put).
    pub fn put_timeout(&self, value: impl Borrow<T>, timeout: Duration) -> Result<()> {
        if self.put_wait(value.borrow(), Wait::For(timeout))? {
            Ok(())
        } else {
            Err(timed_out("put on a full manager queue", timeout))
        }
    }

    /// Puts `value` if there is room; `false` if the queue is full.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    pub fn try_put(&self, value: impl Borrow<T>) -> Result<bool> {
        self.put_wait(value.borrow(), Wait::No)
    }

    /// Takes the value at the front, waiting for one.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone (also while waiting);
    /// [`ErrorKind::Decode`] if the value does not decode as `T`.
    pub fn get(&self) -> Result<T> {
        self.get_wait(Wait::Forever)?
            .ok_or_else(|| unexpected(&Reply::Value(None)))
    }

    /// Takes the value at the front, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if none came; otherwise as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_wait(Wait::For(timeout))?
            .ok_or_else(|| timed_out("get on an empty manager queue", timeout))
    }

    /// Takes the value at the front if there is one.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn try_get(&self) -> Result<Option<T>> {
        self.get_wait(Wait::No)
    }

    /// The number of values in the queue (Python's `qsize`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone.
    pub fn len(&self) -> Result<usize> {
        len(self.handle.call(Op::Len)?)
    }

    /// Whether the queue is empty.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone.
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Marks one value taken from the queue as processed (`JoinableQueue.task_done`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooManyReleases`] if called more times than values were put.
    pub fn task_done(&self) -> Result<()> {
        unit(self.handle.call(Op::QueueTaskDone)?)
    }

    /// Waits until every value put has been marked done (`JoinableQueue.join`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone.
    pub fn join(&self) -> Result<()> {
        boolean(self.handle.call(Op::QueueJoin(Wait::Forever))?).map(drop)
    }

    /// As [`join`](Self::join), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if values are still unfinished; otherwise as
    /// [`join`](Self::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        if boolean(self.handle.call(Op::QueueJoin(Wait::For(timeout)))?)? {
            Ok(())
        } else {
            Err(timed_out("join on a manager queue", timeout))
        }
    }
}

/// One value of type `T` held by a manager's server (Python's `manager.Value(typecode,
/// value)`, whose `v.value` becomes [`get`](Self::get) and [`set`](Self::set)).
///
/// For a number that several processes update, [`update`](Self::update) is not
/// atomic: hold a manager [`Lock`](super::Lock) around a read-modify-write (as in
/// Python), or use [`shm::Value`](crate::shm::Value) between related processes.
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new()?;
/// let v = manager.value(&1.5f64)?;
/// v.set(&2.5)?;
/// assert_eq!(v.get()?, 2.5);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Value<T> {
    handle: Handle,
    _type: PhantomData<fn() -> T>,
}

proxy_impls!(Value<T>);

impl<T> Value<T> {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        Value {
            handle,
            _type: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Value<T> {
    /// The value (`v.value`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the server is gone; [`ErrorKind::Decode`] if it
    /// does not decode as `T`.
    pub fn get(&self) -> Result<T> {
        value(self.handle.call(Op::ListGet(0))?)?.ok_or_else(|| unexpected(&Reply::Value(None)))
    }

    /// Replaces the value (`v.value = x`); returns the old one.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), and [`ErrorKind::Encode`] if it does not serialize.
    pub fn set(&self, new: impl Borrow<T>) -> Result<T> {
        let op = Op::ListSet(0, encode(new.borrow())?);
        value(self.handle.call(op)?)?.ok_or_else(|| unexpected(&Reply::Value(None)))
    }

    /// Reads, applies `f` and writes back: two round trips, not atomic.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<()> {
        self.set(f(self.get()?)).map(drop)
    }
}
