//! `MapHandle`: the pending result of a whole `map_async` (Python's `MapResult`).
//!
//! A `map_async` submits its chunks as usual and adds one more [`Slot`] for the whole
//! list. Each chunk's slot gets a done-callback that counts down; the callback that
//! brings the count to zero (on whichever thread completed the last chunk) gathers
//! the chunks' results in order and completes the list's slot, which runs the user's
//! callback first. So the list's slot, like every slot, completes exactly once.

use std::fmt;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::feed::gather;
use super::slot::Slot;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::process::chunk::ChunkOut;

/// A submitted chunk: its slot and its number of items.
type Part<R> = (Arc<Slot<ChunkOut<R>>>, usize);

/// The decoder of a slot that only ever receives values (never bytes).
pub(crate) fn values_only<T>(_: &[u8], _: Vec<OwnedFd>) -> Result<T> {
    Err(Error::new(ErrorKind::Decode).with_message("a map result arrived as bytes"))
}

/// The list's slot, for [`Pool::map_async`](super::Pool::map_async).
pub(crate) fn list_slot<R: Send + 'static>(
    callback: Option<super::slot::Callback<Vec<R>>>,
    driver: Option<Arc<dyn super::slot::Drive>>,
) -> Arc<Slot<Vec<R>>> {
    Slot::new(values_only::<Vec<R>>, callback, driver)
}

/// The pending result of a [`Pool::map_async`](super::Pool::map_async): every item's
/// value in input order, once all of them have finished (Python's `MapResult`).
///
/// Like [`TaskHandle`](super::TaskHandle) it can be joined, with or without a
/// timeout, polled, and `.await`ed.
///
/// # Examples
///
/// ```
/// use multiproc::pool::Pool;
///
/// fn sqr(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::processes(2)?;
/// let squares = pool.map_async(sqr, 0..10);
/// // … other work …
/// assert_eq!(squares.join()?[9], 81);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "the map runs on, but its results and errors are discarded unless you `join` \
              or `.await` the handle"]
pub struct MapHandle<R> {
    slot: Arc<Slot<Vec<R>>>,
}

impl<R: Send + 'static> fmt::Debug for MapHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapHandle")
            .field("done", &self.slot.is_done())
            .finish()
    }
}

impl<R: Send + 'static> MapHandle<R> {
    /// Completes `slot` once every part has.
    pub(crate) fn new(slot: Arc<Slot<Vec<R>>>, parts: Vec<Part<R>>) -> MapHandle<R> {
        let slots: Vec<_> = parts.iter().map(|(s, _)| Arc::clone(s)).collect();
        MapHandle::when_all(slot, &slots, move || gather(&parts, None, |_| {}))
    }

    /// Completes `slot` with what `finish` returns once every one of `parts` has
    /// completed, on the thread that completes the last one (at once if none is left).
    pub(crate) fn when_all(
        slot: Arc<Slot<Vec<R>>>,
        parts: &[Arc<Slot<ChunkOut<R>>>],
        finish: impl FnOnce() -> Result<Vec<R>> + Send + 'static,
    ) -> MapHandle<R> {
        if parts.is_empty() {
            slot.deliver(finish());
            return MapHandle { slot };
        }
        let left = Arc::new(AtomicUsize::new(parts.len()));
        let finish = Arc::new(Mutex::new(Some(finish)));
        for part in parts {
            let left = Arc::clone(&left);
            let finish = Arc::clone(&finish);
            let list = Arc::clone(&slot);
            // `finish` may hold the parts' slots; the last closure to run takes it out
            // and runs it, and each closure is dropped once run, so no cycle outlives
            // the map.
            part.on_done(Box::new(move || {
                // AcqRel: the last one sees every other part's completion.
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let f = finish.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(f) = f {
                        list.deliver(f());
                    }
                }
            }));
        }
        MapHandle { slot }
    }

    /// Waits for every item and returns the values in input order (Python's
    /// `MapResult.get()`).
    ///
    /// # Errors
    ///
    /// The first failed item's error in input order, as [`Pool::map`](super::Pool::map);
    /// [`ErrorKind::AlreadyJoined`] if the values were taken already.
    pub fn join(self) -> Result<Vec<R>> {
        self.slot.join()
    }

    /// Waits at most `timeout`, then returns the values (Python's `get(timeout)`).
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join), plus [`ErrorKind::Timeout`], after which the handle
    /// stays usable.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Vec<R>> {
        if !self.wait_timeout(timeout) {
            return Err(Error::new(ErrorKind::Timeout)
                .with_message(format!("the map did not finish within {timeout:?}")));
        }
        self.slot.take()
    }

    /// Waits at most `timeout` for every item to finish, without taking the values;
    /// returns whether they have (Python's `wait(timeout)` then `ready()`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.slot.wait_until(Instant::now().checked_add(timeout))
    }

    /// Returns `true` once every item has finished (Python's `ready()`).
    pub fn is_finished(&self) -> bool {
        self.slot.is_done()
    }
}

impl<R: Send + 'static> Future for MapHandle<R> {
    type Output = Result<Vec<R>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Vec<R>>> {
        self.slot.poll_take(cx)
    }
}
