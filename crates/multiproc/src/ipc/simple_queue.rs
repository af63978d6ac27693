//! [`SimpleQueue`]: Python's `multiprocessing.SimpleQueue`, a [`Queue`] with only
//! `put`, `get`, `empty` and `close`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{RecvError, SendError};
use super::queue::Queue;
use crate::error::Result;

/// An unbounded queue for many producers and consumers in any processes, with
/// Python's `SimpleQueue` interface: [`put`](Self::put), [`get`](Self::get),
/// [`empty`](Self::empty), [`close`](Self::close).
///
/// It is a [`Queue`] underneath (shared-memory ring, side locks that survive a
/// crashed holder, no feeder thread: a `put` is complete when it returns), without
/// the size limit, the non-blocking and timeout variants and `qsize`; use a
/// [`Queue`] when you need those. It is cloned, and passed to a child, like a
/// `Queue`.
///
/// # Examples
///
/// ```
/// use multiproc::ipc::SimpleQueue;
/// use multiproc::Process;
///
/// fn worker(q: SimpleQueue<String>) {
///     q.put("done".to_string()).unwrap();
/// }
///
/// let q = SimpleQueue::new()?;
/// assert!(q.empty());
/// let p = Process::start_with(worker, q.clone())?;
/// assert_eq!(q.get()?, "done");
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// Creates an empty queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new() -> Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            queue: Queue::new()?,
        })
    }

    /// Adds `value` at the back (waiting only while the ring buffer is full).
    ///
    /// # Errors
    ///
    /// As [`Queue::put`]: the value comes back if the queue was closed or the value
    /// cannot be sent.
    pub fn put(&self, value: T) -> std::result::Result<(), SendError<T>> {
        self.queue.put(value)
    }

    /// Takes the value at the front, waiting for one.
    ///
    /// # Errors
    ///
    /// As [`Queue::get`]: [`RecvError::Disconnected`] once the queue is closed and
    /// drained.
    pub fn get(&self) -> std::result::Result<T, RecvError> {
        self.queue.get()
    }
}

impl<T> SimpleQueue<T> {
    /// Returns `true` if the queue holds no item (a snapshot). Python's `empty()`.
    pub fn empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Closes the queue for every process: `put` fails from now on, and `get` fails
    /// once the items left are taken (see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close();
    }

    /// The full [`Queue`] this one wraps.
    pub fn into_queue(self) -> Queue<T> {
        self.queue
    }
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("empty", &self.empty())
            .finish_non_exhaustive()
    }
}

/// Shares the queue with another process, as a [`Queue`].
impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.queue.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(SimpleQueue {
            queue: Queue::deserialize(d)?,
        })
    }
}
