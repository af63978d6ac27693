//! [`Queue`] and [`JoinableQueue`]: Python's `multiprocessing.Queue` over a
//! shared-memory ring with a robust lock per side.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::fail::{corrupted, fd_refused, too_large, too_large_in, Fail};
use super::frame::{self, Cut, Outgoing, Patience, Reassembly, RecvFail};
use super::ring::{footprint, user_capacity, Mem, Ring, Waited};
use crate::backoff;
use crate::codec;
use crate::error::{Error, ErrorKind, Result};
use crate::shm::SharedMemory;
use crate::sync::{Lock, LockGuard, TryLockError};

mod batch;

/// How long a non-blocking `try_put`/`try_get` waits at most for another thread's
/// or process's `put`/`get` in progress on the same side, while the queue has room
/// (or an item) for it too: long enough for a holder that was preempted, short
/// enough for a holder that waits for a stalled peer.
const TRY_PATIENCE: Duration = Duration::from_millis(100);
/// How often that wait checks that there is still room (or an item).
const TRY_STEP: Duration = Duration::from_millis(1);

/// Default size of a queue's ring buffer (1 MiB).
pub const DEFAULT_QUEUE_CAPACITY: usize = 1 << 20;

/// Offset of `closed: u32` in the queue header (`1` once [`Queue::close`] ran).
const CLOSED: usize = 0;
/// Offset of `join_seq: u32`, the futex word [`JoinableQueue::join`] sleeps on.
const JOIN_SEQ: usize = 4;
/// Offset of `unfinished: u64`, items put and not yet marked done.
const UNFINISHED: usize = 8;
/// Offset of `maxsize: u64` (`0`: no limit on the number of items).
const MAXSIZE: usize = 16;
/// Offset of `max_message: u64`.
const MAX_MESSAGE: usize = 24;
/// Offset of the ring.
const RING: usize = 128;

/// A first-in first-out queue shared by any number of producer and consumer threads
/// and processes (Python's `multiprocessing.Queue`).
///
/// Items are serialized into a ring buffer in shared memory, each side of which is
/// guarded by a [`Lock`] that survives its holder's death. So:
///
/// * a `put` is complete when it returns (there is no feeder thread): a value that
///   fails to serialize fails `put` at once, and a producer may exit at any time,
///   with items unread, without anyone deadlocking;
/// * a consumer killed in the middle of a `get` loses at most the item it was taking;
///   the next consumer is told by the lock and goes on with the next item; a
///   producer killed in the middle of a `put` loses at most that item;
/// * items of any size up to the maximum message size (default 1 GiB) pass, in
///   fragments when they are larger than a quarter of the ring;
/// * a waiting `get` spins briefly and then sleeps in the kernel; a `put` wakes it
///   only when it sleeps;
/// * the other processes are untrusted: a forged length costs no more memory than
///   the bytes that arrive (and over the maximum message size, none), and
///   scribbled control words give [`ErrorKind::Corrupt`] errors, never a panic or
///   a wait past a deadline (see [`get_timeout`](Self::get_timeout)).
///
/// Capacity: [`Queue::bounded`] limits the number of items, like Python's
/// `maxsize`; every queue is also limited by its ring's bytes (default 1 MiB), and a
/// `put` waits when either is full.
///
/// # Differences from Python
///
/// [`close`](Self::close) closes the queue for every process: later puts fail with
/// `Disconnected` (handing the item back) and gets fail with `Disconnected` once the
/// queue is drained. Python's `close` only stops the calling process's feeder
/// thread, which this queue does not have. Values that own file descriptors cannot
/// be put (send them through a [`Pipe`](crate::Pipe), or pass them to the child at
/// start).
///
/// # Examples
///
/// ```
/// use multiproc::{Process, Queue};
///
/// fn worker(q: Queue<u64>) {
///     for i in 0..3 {
///         q.put(i * 10).unwrap();
///     }
/// }
///
/// let q = Queue::new()?;
/// let p = Process::start_with(worker, q.clone())?;
/// let got: Vec<u64> = (0..3).map(|_| q.get().unwrap()).collect();
/// assert_eq!(got, [0, 10, 20]);
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Queue<T> {
    inner: Arc<Inner>,
    _items: PhantomData<fn(T) -> T>,
}

struct Inner {
    mem: SharedMemory,
    ring: Ring<SharedMemory>,
    put_lock: Lock,
    get_lock: Lock,
    joinable: bool,
    max_message: usize,
    /// The item this process was taking when a deadline passed in its middle.
    partial: std::sync::Mutex<Reassembly>,
    /// Whether `partial` holds a half-taken item. Read and written only by the
    /// holder of `get_lock` (whose acquire and release order it), so a `get` with
    /// nothing half-taken, the common case, skips the mutex: two atomic
    /// read-modify-writes an item less (issue 11).
    has_partial: AtomicBool,
}

/// Configures a [`Queue`] before it is created.
///
/// # Examples
///
/// ```
/// let q = multiproc::Queue::<String>::builder()
///     .maxsize(100)
///     .capacity(4 << 20)
///     .max_message_size(1 << 20)
///     .build()?;
/// assert_eq!(q.maxsize(), Some(100));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a QueueBuilder does nothing until `build` is called"]
pub struct QueueBuilder<T> {
    maxsize: usize,
    capacity: usize,
    max_message: usize,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> QueueBuilder<T> {
    /// The most items the queue holds (`0`, the default: no limit but the ring's bytes).
    pub fn maxsize(mut self, items: usize) -> Self {
        self.maxsize = items;
        self
    }

    /// The ring buffer's size in bytes, rounded up to a power of two (default 1 MiB,
    /// at least 4 KiB, at most 1 GiB).
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// The largest serialized item accepted (default 1 GiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Creates the queue.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the shared memory cannot be created.
    pub fn build(self) -> Result<Queue<T>> {
        Ok(Queue {
            inner: Arc::new(Inner::create(
                self.maxsize,
                self.capacity,
                self.max_message,
                false,
            )?),
            _items: PhantomData,
        })
    }
}

impl Inner {
    fn create(
        maxsize: usize,
        capacity: usize,
        max_message: usize,
        joinable: bool,
    ) -> Result<Inner> {
        let cap = user_capacity(capacity);
        let mem = SharedMemory::create(RING + footprint(cap))?;
        mem.u64_at(MAXSIZE).store(maxsize as u64, Relaxed);
        mem.u64_at(MAX_MESSAGE).store(max_message as u64, Relaxed);
        let ring = Ring::init(mem.clone(), RING, cap);
        Ok(Inner {
            mem,
            ring,
            // Each on a cache line of its own: producers and consumers take them
            // at every item, from different CPUs.
            put_lock: Lock::new_isolated()?,
            get_lock: Lock::new_isolated()?,
            joinable,
            max_message,
            partial: std::sync::Mutex::default(),
            has_partial: AtomicBool::new(false),
        })
    }

    fn from_wire(w: Wire) -> Result<Inner> {
        let len = w.mem.len();
        if len < RING {
            return Err(Error::new(ErrorKind::Decode).with_message("invalid queue segment"));
        }
        let ring = Ring::open(w.mem.clone(), RING, len)
            .map_err(|e| Error::new(ErrorKind::Decode).with_message(e.0))?;
        let max_message =
            usize::try_from(w.mem.u64_at(MAX_MESSAGE).load(Relaxed)).unwrap_or(usize::MAX);
        Ok(Inner {
            mem: w.mem,
            ring,
            put_lock: w.put_lock,
            get_lock: w.get_lock,
            joinable: w.joinable,
            max_message,
            partial: std::sync::Mutex::default(),
            has_partial: AtomicBool::new(false),
        })
    }

    #[inline]
    fn closed(&self) -> bool {
        self.mem.u32_at(CLOSED).load(Acquire) != 0
    }

    #[inline]
    fn maxsize(&self) -> u64 {
        self.mem.u64_at(MAXSIZE).load(Relaxed)
    }

    fn unfinished(&self) -> &std::sync::atomic::AtomicU64 {
        self.mem.u64_at(UNFINISHED)
    }

    fn join_seq(&self) -> &std::sync::atomic::AtomicU32 {
        self.mem.u32_at(JOIN_SEQ)
    }

    /// Takes a side lock within `patience`. A holder that died is simply replaced:
    /// the ring's state is consistent at every instant (positions move by whole
    /// records), and the reassembly rules drop half-sent or half-taken items.
    /// Takes a side's lock as `patience` allows. A non-blocking attempt that finds
    /// it held waits for it (at most [`TRY_PATIENCE`]) if `ready()` says the
    /// operation could complete now: the holder is then about to finish, and giving
    /// up would report the queue empty (or full) when it is not.
    fn lock<'a>(
        &self,
        lock: &'a Lock,
        patience: Patience,
        ready: impl Fn() -> bool,
    ) -> Option<LockGuard<'a>> {
        let r = match patience {
            Patience::Forever => return Some(lock.lock().unwrap_or_else(|died| died.into_inner())),
            Patience::Try => {
                let start = Instant::now();
                loop {
                    match lock.try_lock() {
                        Err(TryLockError::WouldBlock)
                            if ready() && start.elapsed() < TRY_PATIENCE =>
                        {
                            match lock.lock_timeout(TRY_STEP) {
                                Err(TryLockError::WouldBlock) => continue,
                                r => break r,
                            }
                        }
                        r => break r,
                    }
                }
            }
            Patience::Until(d) => lock.lock_timeout(d.saturating_duration_since(Instant::now())),
        };
        match r {
            Ok(g) => Some(g),
            Err(TryLockError::OwnerDied(died)) => Some(died.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn put_bytes(&self, bytes: &[u8], patience: Patience) -> Result<(), Fail> {
        self.put_message(bytes.len(), patience, |ring, tick| {
            frame::send(ring, bytes, patience, tick).map_err(Fail::from)
        })
    }

    /// Puts a small item, the first `len` bytes of `small`: written into the ring a
    /// word at a time and published as one record (a batch's run of one, issue
    /// 11), or, when the ring is full, as any item once there is room.
    #[inline]
    fn put_small(&self, small: &[u8; SMALL], len: usize, patience: Patience) -> Result<(), Fail> {
        self.put_message(len, patience, |ring, tick| {
            match ring.try_write_small(small, len) {
                Ok(Some(notify)) => Ok(notify),
                Ok(None) => frame::send(ring, &small[..len], patience, tick).map_err(Fail::from),
                Err(c) => Err(Fail::Rejected(corrupted(&c.0))),
            }
        })
    }

    /// Puts `value` serialized straight into the ring (no copy of its encoding in
    /// between: for values holding large byte strings, see [`DIRECT`]).
    fn put_value<T: Serialize>(&self, value: &T, patience: Patience) -> Result<(), Fail> {
        let (len, mark, fds) = codec::encoded_len_marked(value, DIRECT).map_err(Fail::Rejected)?;
        if !fds.is_empty() {
            return Err(Fail::Rejected(fd_refused()));
        }
        self.put_message(len, patience, |ring, tick| {
            // The mark lets `get` take the large byte string's bytes straight into
            // the item's own buffer (see `frame::recv_split`).
            let mut out = Outgoing::begin_split(ring, len, patience, mark)?;
            let mut failed = None;
            let r = codec::encode_to(value, &mut |bytes| {
                // A `Serialize` that writes more than it did when measured: stop
                // (the part already published is dropped by the receivers).
                if bytes.len() > out.left() {
                    failed = Some(Fail::Rejected(changed_encoding()));
                    return false;
                }
                match out.write(bytes, tick) {
                    Ok(()) => true,
                    Err(f) => {
                        failed = Some(f.into());
                        false
                    }
                }
            });
            if let Some(f) = failed {
                return Err(f);
            }
            r.map_err(Fail::Rejected)?;
            if out.left() > 0 {
                return Err(Fail::Rejected(changed_encoding()));
            }
            out.finish(tick).map_err(Fail::from)
        })
    }

    /// Puts one message of `len` bytes, which `send` writes into the ring (with the
    /// peer check it is given) once this producer holds the producers' side and the
    /// queue has room for an item.
    #[inline]
    fn put_message(
        &self,
        len: usize,
        patience: Patience,
        send: impl FnOnce(&Ring<SharedMemory>, &mut dyn FnMut() -> bool) -> Result<bool, Fail>,
    ) -> Result<(), Fail> {
        if self.closed() {
            return Err(Fail::Disconnected);
        }
        if len > self.max_message {
            return Err(Fail::Rejected(too_large(len, self.max_message)));
        }
        let maxsize = self.maxsize();
        let ready = || {
            (maxsize == 0 || self.ring.put_count().saturating_sub(self.ring.got_count()) < maxsize)
                && self.ring.has_room(64).unwrap_or(true)
        };
        let Some(_guard) = self.lock(&self.put_lock, patience, ready) else {
            return Err(Fail::Busy);
        };
        if maxsize > 0 {
            let room = || self.ring.put_count().saturating_sub(self.ring.got_count()) < maxsize;
            if !room() {
                if patience == Patience::Try {
                    return Err(Fail::Busy);
                }
                let deadline = match patience {
                    Patience::Until(d) => Some(d),
                    _ => None,
                };
                match self
                    .ring
                    .wait_space(deadline, &mut || !self.closed(), &mut || {
                        room() || self.closed()
                    }) {
                    Waited::Ready if !self.closed() => {}
                    Waited::TimedOut => return Err(Fail::Busy),
                    _ => return Err(Fail::Disconnected),
                }
            }
        }
        if self.joinable {
            self.unfinished().fetch_add(1, AcqRel);
        }
        let r = send(&self.ring, &mut || !self.closed());
        if r.is_err() && self.joinable {
            self.task_done_inner().ok();
        }
        r.map(drop)
    }

    /// Takes the consumers' side; then, if nothing is half-taken here and the next
    /// record is a whole item of at most [`SMALL`] bytes, takes it into `small`
    /// (its length comes back) and releases the side. Otherwise it keeps holding
    /// the side for [`get_bytes`](Self::get_bytes), which takes any item. (Issue
    /// 11: a small item skips the general receive's buffers and reassembly state.)
    fn get_small(&self, small: &mut [u8; SMALL], patience: Patience) -> Result<Taken<'_>, Fail> {
        let Some(guard) = self.lock(&self.get_lock, patience, || self.ring.has_data()) else {
            return Err(Fail::Busy);
        };
        if !self.has_partial.load(Relaxed) {
            // A ring that cannot be read, an item that is not whole, too large or
            // nothing at all: `get_bytes` takes it, reports it or waits.
            if let Some(n) = self.ring.take_small(small, self.max_message) {
                return Ok(Taken::Small(n));
            }
        }
        Ok(Taken::Other(guard))
    }

    /// Takes one item's bytes into `out`, or, for an item whose producer marked a
    /// large byte string in it, that string's bytes into `bulk` and the rest into
    /// `out` (the cut says where it was). `_side` is the consumers' side, held.
    fn get_bytes(
        &self,
        _side: LockGuard<'_>,
        out: &mut Vec<u8>,
        bulk: &mut Vec<u8>,
        patience: Patience,
    ) -> Result<Option<Cut>, Fail> {
        let mut recv = |partial: &mut Reassembly| {
            frame::recv_split(
                &self.ring,
                &mut *out,
                &mut *bulk,
                self.max_message,
                patience,
                true,
                partial,
                // In the middle of an item: its producer stops half-way when the queue
                // is closed (or it died), and the rest will never come.
                &mut |pid| match pid {
                    Some(pid) => !self.closed() && !crate::sync::primitive::owner_is_dead(pid, 0),
                    None => !self.closed(),
                },
            )
        };
        let r = if self.has_partial.load(Relaxed) {
            let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
            let r = recv(&mut partial);
            self.has_partial.store(partial.in_message(), Relaxed);
            r
        } else {
            let mut fresh = Reassembly::default();
            let r = recv(&mut fresh);
            if fresh.in_message() {
                *self.partial.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                self.has_partial.store(true, Relaxed);
            }
            r
        };
        match r {
            Ok((_, cut)) => Ok(cut),
            Err(RecvFail::Empty | RecvFail::TimedOut) => {
                if self.closed() && !self.ring.has_data() {
                    Err(Fail::Disconnected)
                } else {
                    Err(Fail::Busy)
                }
            }
            Err(RecvFail::Stopped) => Err(Fail::Disconnected),
            Err(RecvFail::TooLarge(n)) => Err(Fail::Invalid(too_large_in(n, self.max_message))),
            Err(RecvFail::Corrupt(c)) => Err(Fail::Invalid(corrupted(&c.0))),
        }
    }

    /// Takes and drops every item (after `close`); each counts as done. A message
    /// whose producer stopped half-way (the queue closed under it) is dropped too.
    fn discard_all(&self) -> usize {
        let Some(_guard) = self.lock(&self.get_lock, Patience::Forever, || true) else {
            return 0;
        };
        let mut buf = Vec::new();
        let mut n = 0;
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match frame::recv(
                &self.ring,
                &mut buf,
                self.max_message,
                Patience::Try,
                true,
                &mut partial,
                &mut |_| false,
            ) {
                Ok(_) | Err(RecvFail::TooLarge(_)) => {
                    n += 1;
                    if self.joinable {
                        self.task_done_inner().ok();
                    }
                }
                Err(_) => {
                    self.has_partial.store(partial.in_message(), Relaxed);
                    return n;
                }
            }
        }
    }

    fn task_done_inner(&self) -> Result<()> {
        let u = self.unfinished();
        let mut cur = u.load(Acquire);
        loop {
            if cur == 0 {
                return Err(Error::new(ErrorKind::InvalidInput)
                    .with_message("task_done() called more times than there were items"));
            }
            match u.compare_exchange_weak(cur, cur - 1, AcqRel, Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur == 1 {
            self.join_seq().fetch_add(1, Release);
            self.mem.wake_all(self.join_seq());
        }
        Ok(())
    }

    fn join(&self, deadline: Option<Instant>) -> bool {
        loop {
            let seq = self.join_seq().load(Acquire);
            if self.unfinished().load(Acquire) == 0 {
                return true;
            }
            let Some(left) = backoff::nap(deadline) else {
                return false;
            };
            self.mem.wait(self.join_seq(), seq, Some(left));
        }
    }
}

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// An item holding a byte string of this many bytes or more is serialized straight
/// into the ring: its bytes are copied once on the way in, instead of into an
/// encoding buffer first (issue 14: a 1 MiB item was copied five times).
const DIRECT: usize = 32 << 10;

/// An item whose encoding fits in this many bytes is encoded on the stack, and
/// taken from the ring onto the stack.
const SMALL: usize = 64;

/// What [`Inner::get_small`] did.
enum Taken<'a> {
    /// Took a small item of this many bytes.
    Small(usize),
    /// Took nothing; the consumers' side is held.
    Other(LockGuard<'a>),
}

/// A value serialized to other bytes the second time than the first.
fn changed_encoding() -> Error {
    Error::new(ErrorKind::Encode)
        .with_message("the value serialized to a different length the second time")
}

thread_local! {
    /// Encoding buffer reused by `put` (taken while in use, so reentrancy is safe).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Receiving buffer reused by `get`, apart from `put`'s: it keeps its length, so
    /// the next item of that size is copied over it without zero-filling it first.
    static GET_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Creates a queue with no item limit (only the ring's 1 MiB of bytes).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put("a".to_string())?;
    /// assert_eq!(q.get()?, "a");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Queue<T>> {
        Queue::builder().build()
    }

    /// Creates a queue holding at most `maxsize` items (Python's `Queue(maxsize)`).
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::bounded(1)?;
    /// q.put(1u8)?;
    /// assert!(q.try_put(2u8).unwrap_err().is_full());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bounded(maxsize: usize) -> Result<Queue<T>> {
        Queue::builder().maxsize(maxsize).build()
    }

    /// A [`QueueBuilder`] to set the item limit, ring size and maximum message size.
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder {
            maxsize: 0,
            capacity: DEFAULT_QUEUE_CAPACITY,
            max_message: super::frame::DEFAULT_MAX_MESSAGE,
            _items: PhantomData,
        }
    }

    fn put_with(&self, value: T, patience: Patience) -> Result<(), (T, Fail)> {
        // The item may be serialized more than once below: one send for a proxy's
        // reference count.
        codec::one_send(|| self.put_once(value, patience))
    }

    fn put_once(&self, value: T, patience: Patience) -> Result<(), (T, Fail)> {
        // A small item is encoded on the stack: no thread-local buffer to take and
        // put back, no descriptor list (a value that owns a descriptor fails here
        // and is refused below).
        let mut small = [0u8; SMALL];
        if let Some(n) = codec::encode_small(&value, &mut small) {
            return self
                .inner
                .put_small(&small, n, patience)
                .map_err(|f| (value, f));
        }
        let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        buf.clear();
        let r = match codec::encode_unless_large(&value, &mut buf, DIRECT) {
            Ok(Some(fds)) if fds.is_empty() => self.inner.put_bytes(&buf, patience),
            Ok(Some(_)) => Err(Fail::Rejected(fd_refused())),
            Ok(None) => self.inner.put_value(&value, patience),
            Err(e) => Err(Fail::Rejected(e)),
        };
        if buf.capacity() <= codec::KEEP_SCRATCH {
            SCRATCH.with(|s| *s.borrow_mut() = buf);
        }
        r.map_err(|f| (value, f))
    }

    fn get_with(&self, patience: Patience) -> Result<T, Fail> {
        let mut small = [0u8; SMALL];
        let side = match self.inner.get_small(&mut small, patience)? {
            Taken::Small(n) => {
                return codec::decode(&small[..n], Vec::new()).map_err(Fail::Invalid)
            }
            Taken::Other(side) => side,
        };
        self.get_other(side, patience)
    }

    /// Takes any item (large, half-taken or not whole yet) through the general
    /// receive; `side` is the consumers' side, held.
    fn get_other(&self, side: LockGuard<'_>, patience: Patience) -> Result<T, Fail> {
        let mut buf = GET_SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let mut bulk = Vec::new();
        let r = self.inner.get_bytes(side, &mut buf, &mut bulk, patience);
        let r = r.and_then(|cut| {
            match cut {
                // The large byte string is handed to the item, not copied again.
                Some(c) => codec::decode_cut(&buf, bulk, c.at, c.bulk_at),
                None => codec::decode(&buf, Vec::new()),
            }
            .map_err(Fail::Invalid)
        });
        if buf.capacity() <= codec::KEEP_SCRATCH {
            GET_SCRATCH.with(|s| *s.borrow_mut() = buf);
        }
        r
    }

    /// Puts `value` at the back, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] if the queue is closed; [`SendError::Rejected`] if
    /// the value fails to serialize, owns a file descriptor or is over the maximum
    /// message size. The value comes back either way.
    pub fn put(&self, value: T) -> Result<(), SendError<T>> {
        self.put_with(value, Patience::Forever)
            .map_err(|(v, f)| f.into_send(v))
    }

    /// Puts `value` if there is room now (Python's `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if there is not, otherwise as [`put`](Self::put). An
    /// item larger than the whole ring is always `Full` here; use
    /// [`put`](Self::put). When another producer is in the middle of a `put` and
    /// there is room, this waits for it (at most 100 ms) instead of reporting `Full`.
    pub fn try_put(&self, value: T) -> Result<(), TrySendError<T>> {
        self.put_with(value, Patience::Try)
            .map_err(|(v, f)| f.into_try_send(v))
    }

    /// Puts `value`, waiting at most `timeout` for room. The timeout bounds the whole
    /// call: a large item (more than a quarter of the ring) whose deadline passes
    /// after part of it went in is abandoned (consumers drop that part when the next
    /// item starts) and the value comes back with [`SendTimeoutError::Timeout`].
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if there was no room in time, otherwise as
    /// [`put`](Self::put).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.put_with(value, Patience::within(timeout))
            .map_err(|(v, f)| f.into_send_timeout(v))
    }

    /// Takes the item at the front, waiting for one.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the queue is closed and drained;
    /// [`RecvError::Invalid`] if the item does not decode as `T` (it is dropped).
    pub fn get(&self) -> Result<T, RecvError> {
        self.get_with(Patience::Forever).map_err(Fail::into_recv)
    }

    /// Takes the item at the front if there is one now (Python's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if there is none, otherwise as [`get`](Self::get).
    /// When another consumer is in the middle of a `get` and there are items, this
    /// waits for it (at most 100 ms) instead of reporting `Empty` (Python's
    /// `get_nowait` raises `Empty` then).
    pub fn try_get(&self) -> Result<T, TryRecvError> {
        self.get_with(Patience::Try).map_err(Fail::into_try_recv)
    }

    /// Takes the item at the front, waiting at most `timeout`.
    ///
    /// The timeout bounds the whole call, including the middle of a large item whose
    /// producer stalled (stopped, or slower than the deadline). The call then
    /// returns [`RecvTimeoutError::Timeout`] and releases the consumers' side, and
    /// this `Queue` value (and its clones in this process) keeps the part received:
    /// the next `get` through it continues the item. If another consumer takes
    /// from the queue first, it skips the rest of that item, which is then lost, as
    /// when a consumer dies in the middle of a `get`; a part is never spliced with
    /// other bytes. [`try_get`](Self::try_get) does the same when an item is only
    /// partly there.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came in time, otherwise as
    /// [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.get_with(Patience::within(timeout))
            .map_err(Fail::into_recv_timeout)
    }
}

impl<T> Queue<T> {
    /// A function that waits (at most `bound`) until the queue has an item or is closed,
    /// without taking anything, for a thread other than the caller's (the async `get`).
    #[cfg(feature = "tokio")]
    pub(crate) fn item_waiter(&self, bound: Duration) -> impl FnOnce() + Send + 'static {
        let inner = Arc::clone(&self.inner);
        move || {
            let deadline = Instant::now() + bound;
            let _ = inner
                .ring
                .wait_data(Some(deadline), &mut || !inner.closed());
        }
    }

    /// The approximate number of items in the queue (exact when nobody is putting or
    /// getting).
    pub fn qsize(&self) -> usize {
        let r = &self.inner.ring;
        r.put_count().saturating_sub(r.got_count()) as usize
    }

    /// Returns `true` if the queue looks empty (approximate, as in Python).
    pub fn is_empty(&self) -> bool {
        !self.inner.ring.has_data()
    }

    /// Returns `true` if the queue holds `maxsize` items (approximate, as in Python).
    pub fn is_full(&self) -> bool {
        self.maxsize().is_some_and(|m| self.qsize() >= m)
    }

    /// The item limit, if any.
    pub fn maxsize(&self) -> Option<usize> {
        match self.inner.maxsize() {
            0 => None,
            n => Some(n as usize),
        }
    }

    /// Closes the queue for every process: later puts fail with `Disconnected`, and
    /// gets fail with `Disconnected` once the items already in it are taken.
    /// Waiting producers and consumers are woken.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put(1u8)?;
    /// q.close();
    /// assert!(q.put(2u8).unwrap_err().is_disconnected());
    /// assert_eq!(q.get()?, 1);
    /// assert!(q.get().unwrap_err().is_disconnected());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn close(&self) {
        self.inner.mem.u32_at(CLOSED).store(1, Release);
        self.inner.ring.wake_everyone();
    }

    /// Python's `Queue.shutdown(immediate)`: [`close`](Self::close), and with
    /// `immediate` also discard the items still in the queue, so gets fail with
    /// `Disconnected` at once; for a [`JoinableQueue`] each discarded item counts as
    /// done (a `join` returns once the items already taken are done). Returns how
    /// many items were discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::new()?;
    /// q.put(1u8)?;
    /// q.put(2u8)?;
    /// assert_eq!(q.shutdown(true), 2);
    /// assert_eq!(q.qsize(), 0);
    /// assert!(q.get().unwrap_err().is_disconnected());
    /// q.join();
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) -> usize {
        self.close();
        if immediate {
            self.inner.discard_all()
        } else {
            0
        }
    }

    /// The queue's memory and its ring's base offset (test support).
    pub(crate) fn ring_base(&self) -> (SharedMemory, usize) {
        (self.inner.mem.clone(), RING)
    }

    /// Returns `true` once [`close`](Self::close) was called (by any process).
    pub fn is_closed(&self) -> bool {
        self.inner.closed()
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: Arc::clone(&self.inner),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.maxsize())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Wire {
    mem: SharedMemory,
    put_lock: Lock,
    get_lock: Lock,
    joinable: bool,
}

#[derive(Serialize)]
struct WireRef<'a> {
    mem: &'a SharedMemory,
    put_lock: &'a Lock,
    get_lock: &'a Lock,
    joinable: bool,
}

impl Inner {
    fn wire(&self) -> WireRef<'_> {
        WireRef {
            mem: &self.mem,
            put_lock: &self.put_lock,
            get_lock: &self.get_lock,
            joinable: self.joinable,
        }
    }
}

/// Shares the queue with another process (through multiproc's own channels only,
/// see [`codec::fd`](crate::codec::fd)).
impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.inner.wire().serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let inner = Inner::from_wire(Wire::deserialize(d)?).map_err(serde::de::Error::custom)?;
        Ok(Queue {
            inner: Arc::new(inner),
            _items: PhantomData,
        })
    }
}

/// A [`Queue`] that counts unfinished items: consumers call
/// [`task_done`](Self::task_done) for each item they got, and
/// [`join`](Self::join) waits until every item put has been marked done (Python's
/// `multiprocessing.JoinableQueue`). It derefs to [`Queue`] for `put`/`get`.
///
/// As in Python, an item whose consumer dies before calling `task_done` stays
/// unfinished, so `join` would wait for ever: use [`join_timeout`](Self::join_timeout)
/// where consumers may crash.
///
/// # Examples
///
/// ```
/// use multiproc::{JoinableQueue, Process};
///
/// fn worker(q: JoinableQueue<u32>) {
///     while let Ok(_item) = q.get() {
///         q.task_done().unwrap();
///     }
/// }
///
/// let q = JoinableQueue::new()?;
/// let p = Process::start_with(worker, q.clone())?;
/// for i in 0..10 {
///     q.put(i)?;
/// }
/// q.join(); // every item was processed
/// q.close(); // the worker's `get` now fails and it returns
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Creates a joinable queue with no item limit.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new() -> Result<JoinableQueue<T>> {
        JoinableQueue::bounded(0)
    }

    /// Creates a joinable queue holding at most `maxsize` items (`0`: no limit).
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn bounded(maxsize: usize) -> Result<JoinableQueue<T>> {
        let inner = Inner::create(
            maxsize,
            DEFAULT_QUEUE_CAPACITY,
            super::frame::DEFAULT_MAX_MESSAGE,
            true,
        )?;
        Ok(JoinableQueue {
            queue: Queue {
                inner: Arc::new(inner),
                _items: PhantomData,
            },
        })
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one item taken with `get` as processed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if called more times than items were put
    /// (Python's `ValueError`).
    pub fn task_done(&self) -> Result<()> {
        self.queue.inner.task_done_inner()
    }

    /// Waits until every item put has been marked done with
    /// [`task_done`](Self::task_done).
    pub fn join(&self) {
        self.queue.inner.join(None);
    }

    /// Like [`join`](Self::join), waiting at most `timeout`; returns `true` if every
    /// item was done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.queue.inner.join(Instant::now().checked_add(timeout))
    }

    /// Items put and not yet marked done.
    pub fn unfinished(&self) -> usize {
        self.queue.inner.unfinished().load(Acquire) as usize
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.queue.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let queue = Queue::deserialize(d)?;
        if !queue.inner.joinable {
            return Err(serde::de::Error::custom("not a JoinableQueue"));
        }
        Ok(JoinableQueue { queue })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds every wait, so a defect fails the test instead of hanging it.
    const WAIT: Duration = Duration::from_secs(60);

    fn scratch_capacity() -> usize {
        SCRATCH.with(|s| s.borrow().capacity())
    }

    fn get_scratch() -> (usize, usize) {
        GET_SCRATCH.with(|s| (s.borrow().len(), s.borrow().capacity()))
    }

    /// Issue 14: a 1 MiB item encodes to a little more than 1 MiB, which the old
    /// 1 MiB limit threw away after every put and get (two fresh, page-faulted
    /// buffers an item). An item of large elements that are not byte strings goes
    /// through get's buffer, which is kept.
    #[test]
    fn one_mib_items_reuse_the_scratch_buffer() {
        // Room for the whole item, so one thread can put it and get it back.
        let q = Queue::<Vec<u64>>::builder()
            .capacity(4 << 20)
            .build()
            .unwrap();
        let item = vec![u64::MAX; 1 << 17];
        q.put_timeout(item.clone(), WAIT).unwrap();
        assert_eq!(q.get_timeout(WAIT).unwrap(), item);
        assert!(get_scratch().1 > 1 << 20, "get dropped its buffer");
        // A put in between leaves it as it was (a cleared buffer is zero-filled
        // again by the next get of that size).
        q.put_timeout(vec![1], WAIT).unwrap();
        assert!(get_scratch().0 > 1 << 20, "put cleared get's buffer");
        // A large byte string skips it: its bytes go to the item.
        let q = Queue::<serde_bytes::ByteBuf>::builder()
            .capacity(4 << 20)
            .build()
            .unwrap();
        GET_SCRATCH.with(|s| *s.borrow_mut() = Vec::new());
        let item = serde_bytes::ByteBuf::from(vec![7u8; 1 << 20]);
        q.put_timeout(item.clone(), WAIT).unwrap();
        assert_eq!(q.get_timeout(WAIT).unwrap(), item);
        assert!(
            get_scratch().1 < DIRECT,
            "the bytes went through get's buffer"
        );
    }

    /// Issue 14: an item holding a large byte string is serialized straight into
    /// the ring, not into the encoding buffer first (one copy of its bytes on the
    /// way in instead of two).
    #[test]
    fn large_items_skip_the_encoding_buffer() {
        let q = Queue::<serde_bytes::ByteBuf>::builder()
            .capacity(4 << 20)
            .build()
            .unwrap();
        SCRATCH.with(|s| *s.borrow_mut() = Vec::new());
        let item = serde_bytes::ByteBuf::from(vec![7u8; 1 << 20]);
        q.put_timeout(item.clone(), WAIT).unwrap();
        assert!(
            scratch_capacity() < DIRECT,
            "put encoded the item into its buffer ({} bytes)",
            scratch_capacity()
        );
        assert_eq!(q.get_timeout(WAIT).unwrap(), item);
    }

    /// A byte string that remembers whether its deserializer handed it a buffer of
    /// its own (`visit_byte_buf`) or bytes to copy.
    #[derive(Debug, PartialEq)]
    struct Handed(Vec<u8>, bool);

    impl Serialize for Handed {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Handed {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Handed, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Handed;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Handed, E> {
                    Ok(Handed(v.to_vec(), false))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Handed, E> {
                    Ok(Handed(v, true))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    /// Issue 14: a large byte string goes from the ring straight into the item's
    /// own buffer (serde_bytes' `ByteBuf` visitor copied the bytes `get` had
    /// copied out of the ring: 15 % of a 1 MiB item's CPU), in pieces (1 MiB
    /// through the default ring) and when the item would fit one record (64 KiB
    /// through a 4 MiB ring), nested in a tuple, with other items between.
    #[test]
    fn a_large_byte_string_is_handed_to_the_item() {
        for (capacity, n) in [(DEFAULT_QUEUE_CAPACITY, 1 << 20), (4 << 20, 64 << 10)] {
            let q = Queue::<(u8, Handed, String)>::builder()
                .capacity(capacity)
                .build()
                .unwrap();
            let t = {
                let q = q.clone();
                std::thread::spawn(move || {
                    (0..3)
                        .map(|_| q.get_timeout(WAIT).unwrap())
                        .collect::<Vec<_>>()
                })
            };
            let big = |i: u8| (i, Handed(vec![i; n], true), format!("item {i}"));
            q.put_timeout(big(1), WAIT).unwrap();
            q.put_timeout((2, Handed(vec![2; 10], false), "small".into()), WAIT)
                .unwrap();
            q.put_timeout(big(3), WAIT).unwrap();
            let got = t.join().unwrap();
            // (Compared in short: a failure prints no MiB of bytes.)
            let short = |v: &(u8, Handed, String)| (v.0, v.1 .0.len(), v.1 .1, v.2.clone());
            assert_eq!(short(&got[0]), short(&big(1)), "capacity {capacity}");
            assert_eq!(got[1].1 .0, vec![2; 10]);
            assert_eq!(short(&got[2]), short(&big(3)), "capacity {capacity}");
            assert!(got[0] == big(1) && got[2] == big(3), "the bytes differ");
        }
    }

    /// Items serialized into the ring arrive whole at every size around the record
    /// and fragment boundaries, beside other fields and small items, through a small
    /// ring (records of 1,016 bytes) and the default one.
    #[test]
    fn large_items_round_trip_at_every_boundary() {
        type Item = (u32, serde_bytes::ByteBuf, String);
        for capacity in [4096, 1 << 20] {
            let q = Queue::<Item>::builder().capacity(capacity).build().unwrap();
            let max = q.inner.ring.max_record();
            let mut sizes = vec![DIRECT, DIRECT + 1, 3 * DIRECT + 5];
            for k in [1, 2, 3, 9] {
                for d in [0, 1, 2, 3, 7, 8, 9, 16, 17] {
                    sizes.extend([k * max - d, k * max + d]);
                }
            }
            sizes.retain(|&n| n >= DIRECT);
            let t = {
                let q = q.clone();
                let n = sizes.len();
                std::thread::spawn(move || {
                    (0..2 * n)
                        .map(|_| q.get_timeout(WAIT).unwrap())
                        .collect::<Vec<_>>()
                })
            };
            let items: Vec<Item> = sizes
                .iter()
                .enumerate()
                .flat_map(|(i, &n)| {
                    let bytes = (0..n).map(|j| (i * 31 + j) as u8).collect::<Vec<u8>>();
                    [
                        (i as u32, serde_bytes::ByteBuf::from(bytes), "big".repeat(i)),
                        (
                            i as u32,
                            serde_bytes::ByteBuf::from(vec![1, 2]),
                            "small".into(),
                        ),
                    ]
                })
                .collect();
            for it in &items {
                q.put_timeout(it.clone(), WAIT).unwrap();
            }
            assert!(t.join().unwrap() == items, "capacity {capacity}");
        }
    }

    /// An item half-taken when a `get`'s deadline passed is kept by this process
    /// and finished by its next `get` (the mutex-free path for items with nothing
    /// half-taken hands the part over), also after a `shutdown` that found it.
    #[test]
    fn a_half_taken_item_is_finished_by_the_next_get() {
        let q = Queue::<serde_bytes::ByteBuf>::builder()
            .capacity(4096)
            .build()
            .unwrap();
        let item = serde_bytes::ByteBuf::from((0..3000).map(|i| i as u8).collect::<Vec<u8>>());
        let bytes = codec::encode(&item).unwrap().bytes;
        for shutdown in [false, true] {
            let guard = q.inner.put_lock.lock().unwrap();
            let mut out = Outgoing::begin(&q.inner.ring, bytes.len(), Patience::Forever).unwrap();
            // The first fragment is published, the second is not.
            out.write(&bytes[..1500], &mut || true).unwrap();
            let err = q.get_timeout(Duration::from_millis(20)).unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            assert!(q.inner.has_partial.load(Relaxed), "the part was not kept");
            if shutdown {
                // Nothing whole to discard: the part stays for the next get.
                assert_eq!(q.inner.discard_all(), 0);
                assert!(q.inner.has_partial.load(Relaxed), "shutdown lost the part");
            }
            out.write(&bytes[1500..], &mut || true).unwrap();
            out.finish(&mut || true).unwrap();
            drop(guard);
            assert!(q.get_timeout(WAIT).unwrap() == item, "item not intact");
            assert!(!q.inner.has_partial.load(Relaxed));
            assert!(q.try_get().unwrap_err().is_empty());
        }
    }

    /// The small-item path of `get` keeps every check of the general one: a
    /// record over the maximum message size (which no `put` of this queue writes:
    /// a forged one) is refused, a continuation without its start is skipped, and
    /// the items after them arrive in order.
    #[test]
    fn small_items_keep_the_receive_checks() {
        let q = Queue::<Vec<u8>>::builder()
            .max_message_size(4)
            .build()
            .unwrap();
        let ring = &q.inner.ring;
        // `vec![1, 2, 3, 4, 5]`: 6 bytes, over the 4-byte limit.
        assert!(ring
            .try_write(super::super::ring::SINGLE, None, &[&[5, 1, 2, 3, 4, 5]])
            .unwrap()
            .is_some());
        // A last fragment of a message whose start nobody has.
        assert!(ring
            .try_write(super::super::ring::LAST, Some(7), &[&[1, 9]])
            .unwrap()
            .is_some());
        q.put(vec![1, 2]).unwrap();
        q.put(vec![3]).unwrap();
        let err = q.get_timeout(WAIT).unwrap_err();
        assert!(
            matches!(&err, RecvTimeoutError::Invalid(e) if e.to_string().contains("4")),
            "{err:?}"
        );
        assert_eq!(q.get_timeout(WAIT).unwrap(), [1, 2]);
        assert_eq!(q.get_timeout(WAIT).unwrap(), [3]);
        assert!(q.try_get().unwrap_err().is_empty());
        assert_eq!(q.qsize(), 0);
    }

    /// A small item that owns a descriptor, put while this thread is in the middle
    /// of another encoding, is refused: its descriptor does not land in the other
    /// encoding's list (the stack-encoded fast path steps aside there).
    #[cfg(not(loom))]
    #[test]
    fn a_small_item_with_a_descriptor_put_inside_an_encoding_is_refused() {
        #[derive(Serialize, Deserialize)]
        struct WithFd(#[serde(with = "crate::ipc::codec::fd")] std::os::fd::OwnedFd);
        struct PutsInside(Queue<WithFd>);
        impl Serialize for PutsInside {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                let (r, _w) = rustix::pipe::pipe().unwrap();
                let refused = matches!(self.0.put(WithFd(r)), Err(SendError::Rejected(..)));
                s.serialize_bool(refused)
            }
        }
        let q = Queue::<WithFd>::new().unwrap();
        let outer = codec::encode(&PutsInside(q.clone())).unwrap();
        assert_eq!(outer.bytes, [1], "the inner put was not refused");
        assert!(
            outer.fds.is_empty(),
            "the inner item's descriptor leaked out"
        );
        assert_eq!(q.qsize(), 0);
    }

    /// Serializes to more bytes at every call (a `Serialize` that is not a pure
    /// function of the value).
    struct Growing(std::cell::Cell<usize>);

    impl Serialize for Growing {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            let n = self.0.get();
            self.0.set(n + 1);
            s.serialize_bytes(&vec![5u8; DIRECT + n])
        }
    }

    /// An item whose second serialization differs from the first fails with
    /// `Encode`, and the items after it arrive whole.
    #[test]
    fn an_item_that_serializes_differently_twice_is_refused() {
        let q = Queue::<serde_bytes::ByteBuf>::builder()
            .capacity(4 << 20)
            .build()
            .unwrap();
        let err = q
            .inner
            .put_value(&Growing(std::cell::Cell::new(0)), Patience::Forever)
            .expect_err("refused");
        assert!(
            matches!(&err, Fail::Rejected(e) if e.kind() == ErrorKind::Encode),
            "wrong failure"
        );
        let item = serde_bytes::ByteBuf::from(vec![9u8; 3 * DIRECT]);
        q.put_timeout(item.clone(), WAIT).unwrap();
        assert_eq!(q.get_timeout(WAIT).unwrap(), item);
        assert!(q.try_get().unwrap_err().is_empty());
    }

    /// A value that owns a descriptor is refused on the direct path too, before
    /// anything goes into the ring.
    #[cfg(not(loom))]
    #[test]
    fn a_large_item_with_a_descriptor_is_refused() {
        #[derive(Serialize, Deserialize)]
        struct WithFd(
            serde_bytes::ByteBuf,
            #[serde(with = "crate::ipc::codec::fd")] std::os::fd::OwnedFd,
        );
        let q = Queue::<WithFd>::new().unwrap();
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let err = q
            .put_timeout(
                WithFd(serde_bytes::ByteBuf::from(vec![0u8; 2 * DIRECT]), r),
                WAIT,
            )
            .unwrap_err();
        assert!(matches!(err, SendTimeoutError::Rejected(..)), "not refused");
        assert_eq!(q.qsize(), 0);
        assert!(q.is_empty());
    }

    /// With `try_put`, a large item that does not fit now is `Full`, and nothing of it
    /// goes in.
    #[test]
    fn try_put_of_a_large_item_that_does_not_fit_is_full() {
        let q = Queue::<serde_bytes::ByteBuf>::builder()
            .capacity(64 << 10)
            .build()
            .unwrap();
        let item = serde_bytes::ByteBuf::from(vec![3u8; 2 * DIRECT]);
        q.try_put(serde_bytes::ByteBuf::from(vec![1u8; 40 << 10]))
            .unwrap();
        assert!(q.try_put(item.clone()).unwrap_err().is_full());
        assert_eq!(q.qsize(), 1);
        assert_eq!(q.get_timeout(WAIT).unwrap().len(), 40 << 10);
        assert!(q.try_get().unwrap_err().is_empty());
    }

    #[test]
    fn a_huge_item_does_not_stay_in_the_scratch_buffer() {
        let q = Queue::<serde_bytes::ByteBuf>::builder()
            .capacity(1 << 20)
            .build()
            .unwrap();
        let item = serde_bytes::ByteBuf::from(vec![1u8; codec::KEEP_SCRATCH + 1]);
        let t = {
            let q = q.clone();
            std::thread::spawn(move || (q.get_timeout(WAIT).unwrap().len(), get_scratch().1))
        };
        q.put_timeout(item, WAIT).unwrap();
        // Neither the receiving thread nor this one keeps a buffer that large.
        let (len, kept) = t.join().unwrap();
        assert_eq!(len, codec::KEEP_SCRATCH + 1);
        assert!(kept < DIRECT, "{kept}");
        assert!(scratch_capacity() < DIRECT);
    }
}
