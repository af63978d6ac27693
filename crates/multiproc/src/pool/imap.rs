//! `Imap` and `ImapUnordered`: lazy, bounded-prefetch iterators over a pool's results.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::iter::Fuse;
use std::marker::PhantomData;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::feed::{Chunk, Feeds};
use super::progress::Progress;
use super::task::expand;
use crate::error::{Error, ErrorKind, Result};

/// Submits chunks of the input to the pool, with the function bound in: each pool
/// type makes it with its own bounds on the function and the data (see
/// [`SubmitChunks`](super::feed::SubmitChunks)), so the iterators need none.
pub(crate) type Submit<'p, A, R> = Box<dyn Fn(Vec<Vec<A>>) -> Vec<Chunk<R>> + Send + Sync + 'p>;

/// What both iterators share: the input, the chunking and the prefetch bound.
struct Feed<'p, F, I: Iterator, R> {
    pool: &'p (dyn Feeds + Sync),
    submit: Submit<'p, I::Item, R>,
    /// The function's type, which names the iterator's type as before: the function
    /// itself is in `submit`.
    f: PhantomData<F>,
    input: Fuse<I>,
    chunksize: Option<usize>,
    prefetch: usize,
    progress: Option<Progress>,
    /// A setting given as zero: the first item is an error saying so, then the end.
    refused: Option<&'static str>,
    ended: bool,
}

impl<'p, F, I: Iterator, R> Feed<'p, F, I, R> {
    fn new(pool: &'p (dyn Feeds + Sync), submit: Submit<'p, I::Item, R>, input: I) -> Self {
        Feed {
            pool,
            submit,
            f: PhantomData,
            input: input.fuse(),
            chunksize: pool.default_chunksize(),
            prefetch: pool.prefetch_chunks(),
            progress: None,
            refused: None,
            ended: false,
        }
    }

    /// The error for a setting given as zero, once; the iterator ends after it.
    fn refusal(&mut self) -> Option<Error> {
        let what = self.refused.take()?;
        self.ended = true;
        Some(
            Error::new(ErrorKind::InvalidInput)
                .with_message(format!("the {what} must be at least 1")),
        )
    }

    fn chunksize(&mut self) -> usize {
        if let Some(c) = self.chunksize {
            return c;
        }
        let (lo, hi) = self.input.size_hint();
        let c = if hi == Some(lo) {
            self.pool.auto_chunksize(lo)
        } else {
            1
        };
        self.chunksize = Some(c);
        c
    }

    fn bar(&mut self) -> &Progress {
        if self.progress.is_none() {
            let (lo, hi) = self.input.size_hint();
            let len = if hi == Some(lo) { Some(lo) } else { None };
            self.progress = Some(self.pool.progress_bar(len));
        }
        self.progress.as_ref().expect("set above")
    }

    /// Pulls and submits up to `room` chunks.
    fn pull(&mut self, room: usize) -> Vec<Chunk<R>> {
        if self.ended {
            return Vec::new();
        }
        let cs = self.chunksize();
        self.bar();
        let mut chunks = Vec::new();
        while chunks.len() < room {
            let c: Vec<I::Item> = self.input.by_ref().take(cs).collect();
            if c.is_empty() {
                break;
            }
            chunks.push(c);
        }
        if chunks.is_empty() {
            return Vec::new();
        }
        (self.submit)(chunks)
    }
}

/// The ordered, lazy iterator [`Pool::imap`](super::Pool::imap) and
/// [`ThreadPool::imap`](super::ThreadPool::imap) return.
///
/// Nothing is submitted until the first call to `next`; the builder-style methods
/// adjust the chunk size and the prefetch bound before that. Dropping it leaves the
/// submitted chunks to finish in the background; their results are discarded.
#[must_use = "iterators are lazy and do nothing unless consumed: no task is submitted \
              before the first `next`"]
pub struct Imap<'p, F, I: Iterator, R> {
    feed: Feed<'p, F, I, R>,
    inflight: VecDeque<Chunk<R>>,
    ready: std::vec::IntoIter<Result<R>>,
}

impl<'p, F, I: Iterator, R> Imap<'p, F, I, R> {
    /// The iterator over `input`, fed to `pool` through `submit` (which applies a
    /// function of type `F`).
    pub(crate) fn new(
        pool: &'p (dyn Feeds + Sync),
        submit: Submit<'p, I::Item, R>,
        input: I,
    ) -> Self {
        Imap {
            feed: Feed::new(pool, submit, input),
            inflight: VecDeque::new(),
            ready: Vec::new().into_iter(),
        }
    }
}

impl<F, I: Iterator, R: Send + 'static> Imap<'_, F, I, R> {
    fn next_until(&mut self, deadline: Option<Instant>) -> Waited<R> {
        if let Some(e) = self.feed.refusal() {
            return Ok(Some(Err(e)));
        }
        loop {
            if let Some(r) = self.ready.next() {
                self.feed.bar().inc(1);
                return Ok(Some(r));
            }
            let room = self.feed.prefetch.saturating_sub(self.inflight.len());
            let more = self.feed.pull(room);
            self.inflight.extend(more);
            let Some((slot, _)) = self.inflight.front() else {
                self.feed.bar().finish();
                return Ok(None);
            };
            if !slot.wait_until(deadline) {
                return Err(TimedOut);
            }
            let (slot, n) = self.inflight.pop_front().expect("front exists");
            self.ready = expand(slot.join(), n).into_iter();
        }
    }
}

/// What `Imap` and `ImapUnordered` share beyond their [`Feed`]: `Debug`, the
/// builder-style settings, `Iterator` and `next_timeout`, all over the type's own
/// `next_until`. (`$order` words the docs: "the next result" / "a result".)
macro_rules! feed_iterator {
    ($name:ident, $python:literal, $order:literal, $method:literal) => {
        impl<F, I: Iterator, R> fmt::Debug for $name<'_, F, I, R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("chunksize", &self.feed.chunksize)
                    .field("prefetch", &self.feed.prefetch)
                    .field("inflight", &self.inflight.len())
                    .finish()
            }
        }

        impl<F, I: Iterator, R> $name<'_, F, I, R> {
            /// Sets the number of items per task for this call. Zero is refused: the
            /// first item is then an [`ErrorKind::InvalidInput`] error, and nothing runs.
            pub fn chunksize(mut self, n: usize) -> Self {
                if n == 0 {
                    self.feed.refused = Some("chunksize");
                }
                self.feed.chunksize = Some(n.max(1));
                self
            }

            /// Sets how many chunks may be in flight ahead of the consumer for this
            /// call (Python's `Executor.map(buffersize=…)`). Zero is refused as for
            /// [`chunksize`](Self::chunksize).
            pub fn prefetch(mut self, chunks: usize) -> Self {
                if chunks == 0 {
                    self.feed.refused = Some("prefetch");
                }
                self.feed.prefetch = chunks.max(1);
                self
            }
        }

        impl<F, I: Iterator, R: Send + 'static> Iterator for $name<'_, F, I, R> {
            type Item = Result<R>;

            fn next(&mut self) -> Option<Result<R>> {
                self.next_until(None).unwrap_or(None)
            }
        }

        impl<F, I: Iterator, R: Send + 'static> $name<'_, F, I, R> {
            #[doc = concat!("Like `next`, but waits at most `timeout` for ", $order, " (Python's")]
            #[doc = concat!("`", $python, ".next(timeout)`): `Ok(None)` at the end, `Ok(Some(result))`")]
            /// for the next item.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Timeout`] if no result is ready in time; the iterator stays
            /// usable and a later call returns it. (A task that itself timed out is
            /// `Ok(Some(Err(_)))`.)
            ///
            /// # Examples
            ///
            /// ```
            /// use multiproc::pool::Pool;
            /// use std::time::Duration;
            ///
            /// fn nap(ms: u64) -> u64 {
            ///     std::thread::sleep(Duration::from_millis(ms));
            ///     ms
            /// }
            ///
            /// let pool = Pool::threads(1)?;
            #[doc = concat!("let mut it = pool.", $method, "(nap, vec![200]);")]
            /// assert!(it.next_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
            /// assert_eq!(it.next_timeout(Duration::from_secs(60))?.unwrap()?, 200);
            /// assert!(it.next().is_none());
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Result<R>>> {
                self.next_until(Instant::now().checked_add(timeout))
                    .map_err(|TimedOut| wait_timeout(timeout))
            }
        }
    };
}

feed_iterator!(Imap, "IMapIterator", "the next result", "imap");
feed_iterator!(
    ImapUnordered,
    "IMapUnorderedIterator",
    "a result",
    "imap_unordered"
);

/// The next item, or the deadline passed first.
type Waited<R> = std::result::Result<Option<Result<R>>, TimedOut>;

/// No result arrived before the deadline.
struct TimedOut;

/// The error `next_timeout` returns when no result is ready in time.
fn wait_timeout(timeout: Duration) -> Error {
    Error::new(ErrorKind::Timeout).with_message(format!("no result within {timeout:?}"))
}

/// The lazy iterator [`Pool::imap_unordered`](super::Pool::imap_unordered) and
/// [`ThreadPool::imap_unordered`](super::ThreadPool::imap_unordered) return: results in
/// completion order.
///
/// Nothing is submitted until the first call to `next`. Dropping it leaves the
/// submitted chunks to finish in the background; their results are discarded.
#[must_use = "iterators are lazy and do nothing unless consumed: no task is submitted \
              before the first `next`"]
pub struct ImapUnordered<'p, F, I: Iterator, R> {
    feed: Feed<'p, F, I, R>,
    inflight: HashMap<usize, Chunk<R>>,
    next_index: usize,
    tx: mpsc::Sender<usize>,
    rx: mpsc::Receiver<usize>,
    ready: std::vec::IntoIter<Result<R>>,
}

impl<'p, F, I: Iterator, R> ImapUnordered<'p, F, I, R> {
    /// The iterator over `input`, fed to `pool` through `submit` (which applies a
    /// function of type `F`).
    pub(crate) fn new(
        pool: &'p (dyn Feeds + Sync),
        submit: Submit<'p, I::Item, R>,
        input: I,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        ImapUnordered {
            feed: Feed::new(pool, submit, input),
            inflight: HashMap::new(),
            next_index: 0,
            tx,
            rx,
            ready: Vec::new().into_iter(),
        }
    }
}

impl<F, I: Iterator, R: Send + 'static> ImapUnordered<'_, F, I, R> {
    fn next_until(&mut self, deadline: Option<Instant>) -> Waited<R> {
        if let Some(e) = self.feed.refusal() {
            return Ok(Some(Err(e)));
        }
        loop {
            if let Some(r) = self.ready.next() {
                self.feed.bar().inc(1);
                return Ok(Some(r));
            }
            let room = self.feed.prefetch.saturating_sub(self.inflight.len());
            for (slot, n) in self.feed.pull(room) {
                let i = self.next_index;
                self.next_index += 1;
                slot.notify_on(self.tx.clone(), i);
                self.inflight.insert(i, (slot, n));
            }
            if self.inflight.is_empty() {
                self.feed.bar().finish();
                return Ok(None);
            }
            let got = match deadline {
                None => self.rx.recv().ok(),
                Some(d) => match self
                    .rx
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                {
                    Ok(i) => Some(i),
                    Err(mpsc::RecvTimeoutError::Timeout) => return Err(TimedOut),
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
            };
            let Some((slot, n)) = got.and_then(|i| self.inflight.remove(&i)) else {
                return Ok(None);
            };
            self.ready = expand(slot.join(), n).into_iter();
        }
    }
}
