//! Batches for [`Queue`]: [`put_all`](Queue::put_all) writes a run of small items
//! under one hold of the producers' side and publishes them together;
//! [`get_many`](Queue::get_many) takes every whole small item there is, up to a
//! limit, under one hold of the consumers' side (issue 11: a `put`/`get` of one
//! 8-byte item is bound by its lock, its publish and its wake-up check).
//!
//! The ring protocol is the one `put` and `get` use (records published by a
//! release store of `tail`, taken by a release store of `head`): a run only
//! writes several records before the one `tail` store, and a consumer copies
//! several out before the one `head` store.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::super::error::{
    BatchSendError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use super::super::fail::{corrupted, Fail};
use super::super::frame::{self, Patience};
use super::super::ring::{Mem, Run, Waited, SINGLE};
use super::{Inner, JoinableQueue, Queue, SMALL};
use crate::codec;
use crate::error::{Error, ErrorKind, Result};

/// Items a run publishes at once; the producers' side is let go after each run,
/// so other producers get their turn and consumers see items while a long batch
/// is still going in.
const RUN: usize = 64;

/// What a run stopped at.
enum Next {
    /// The batch is all in.
    Done,
    /// The run ended (full, or an item that is not small went in after it);
    /// more items may follow.
    More,
}

/// A small item encoded on the stack.
struct Encoded<T> {
    value: T,
    bytes: [u8; SMALL],
    len: usize,
}

impl Inner {
    /// Items the item limit lets in now (`u64::MAX` without one).
    fn item_room(&self, maxsize: u64) -> u64 {
        if maxsize == 0 {
            return u64::MAX;
        }
        let queued = self.ring.put_count().saturating_sub(self.ring.got_count());
        maxsize.saturating_sub(queued)
    }

    /// Publishes `run`, counting its items unfinished first (a joinable queue's
    /// `task_done` for them cannot come earlier); returns how many it held.
    fn publish_run(&self, run: &mut Run) -> usize {
        let n = run.len();
        if n > 0 && self.joinable {
            self.unfinished().fetch_add(n as u64, AcqRel);
        }
        self.ring.publish_run(run);
        n
    }

    /// Waits, holding the producers' side, until the item limit and the ring
    /// have room for one more record of `len` bytes.
    fn wait_room(&self, len: usize, maxsize: u64, patience: Patience) -> Result<(), Fail> {
        if patience == Patience::Try {
            return Err(Fail::Busy);
        }
        let deadline = match patience {
            Patience::Until(d) => Some(d),
            _ => None,
        };
        if self.item_room(maxsize) == 0 {
            match self
                .ring
                .wait_space(deadline, &mut || !self.closed(), &mut || {
                    self.item_room(maxsize) > 0 || self.closed()
                }) {
                Waited::Ready if !self.closed() => {}
                Waited::TimedOut => return Err(Fail::Busy),
                _ => return Err(Fail::Disconnected),
            }
        }
        frame::wait_fit(&self.ring, len, patience, &mut || !self.closed()).map_err(Fail::from)
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Encodes `value` on the stack if it is a small item this queue takes.
    fn encode_small(&self, value: T) -> std::result::Result<Encoded<T>, T> {
        let mut bytes = [0u8; SMALL];
        match codec::encode_small(&value, &mut bytes) {
            Some(len) if len <= self.inner.max_message => Ok(Encoded { value, bytes, len }),
            _ => Err(value),
        }
    }

    /// Puts the items of `items` in order; small items in runs, any other with
    /// the general `put`. Returns how many went in, or how many did with the item
    /// that did not and why.
    fn put_all_with(
        &self,
        items: &mut dyn Iterator<Item = T>,
        patience: Patience,
    ) -> std::result::Result<usize, (usize, T, Fail)> {
        // Each item is a send of its own (`codec::next_send`).
        codec::one_send(|| self.put_each(items, patience))
    }

    fn put_each(
        &self,
        items: &mut dyn Iterator<Item = T>,
        patience: Patience,
    ) -> std::result::Result<usize, (usize, T, Fail)> {
        let mut sent = 0;
        let mut next = items.next();
        while let Some(value) = next.take() {
            // One send per item, whichever way it goes: a `Serialize` with a side
            // effect (a manager proxy's reference) takes it once.
            codec::next_send();
            let first = match self.encode_small(value) {
                Ok(e) => Ok(e),
                Err(v) => Err(self.put_once(v, patience)),
            };
            match first {
                Ok(first) => match self.put_run(first, items, patience, &mut sent)? {
                    Next::Done => return Ok(sent),
                    Next::More => next = items.next(),
                },
                Err(r) => {
                    r.map_err(|(v, f)| (sent, v, f))?;
                    sent += 1;
                    next = items.next();
                }
            }
        }
        Ok(sent)
    }

    /// Puts `first` and the small items after it (at most [`RUN`]) under one hold
    /// of the producers' side; `sent` counts the items published.
    fn put_run(
        &self,
        first: Encoded<T>,
        items: &mut dyn Iterator<Item = T>,
        patience: Patience,
        sent: &mut usize,
    ) -> std::result::Result<Next, (usize, T, Fail)> {
        let inner = &*self.inner;
        if inner.closed() {
            return Err((*sent, first.value, Fail::Disconnected));
        }
        let maxsize = inner.maxsize();
        let ready =
            || inner.item_room(maxsize) > 0 && inner.ring.has_room(SMALL as u64).unwrap_or(true);
        let Some(side) = inner.lock(&inner.put_lock, patience, ready) else {
            return Err((*sent, first.value, Fail::Busy));
        };
        let mut side = Some(side);
        let ring = &inner.ring;
        let mut run = match ring.begin_run() {
            Ok(run) => run,
            Err(c) => return Err((*sent, first.value, Fail::Rejected(corrupted(&c.0)))),
        };
        let mut room = inner.item_room(maxsize);
        let mut cur = first;
        loop {
            let pushed = room > 0
                && match ring.push_run(&mut run, &cur.bytes, cur.len) {
                    Ok(fits) => fits,
                    Err(c) => {
                        *sent += inner.publish_run(&mut run);
                        return Err((*sent, cur.value, Fail::Rejected(corrupted(&c.0))));
                    }
                };
            if !pushed {
                // Full: what is written goes out, then wait for room for this one.
                *sent += inner.publish_run(&mut run);
                if let Err(f) = inner.wait_room(cur.len, maxsize, patience) {
                    return Err((*sent, cur.value, f));
                }
                room = inner.item_room(maxsize);
                continue;
            }
            room -= 1;
            drop(cur.value);
            if run.len() >= RUN {
                *sent += inner.publish_run(&mut run);
                return Ok(Next::More);
            }
            match items.next() {
                None => {
                    *sent += inner.publish_run(&mut run);
                    return Ok(Next::Done);
                }
                Some(v) => {
                    // Not small: the run goes out, the side is let go and the item
                    // goes in as by `put`, in the same send as this try (a
                    // `Serialize` with a side effect takes it once).
                    codec::next_send();
                    match self.encode_small(v) {
                        Ok(e) => cur = e,
                        Err(v) => {
                            *sent += inner.publish_run(&mut run);
                            drop(side.take());
                            self.put_once(v, patience).map_err(|(v, f)| (*sent, v, f))?;
                            *sent += 1;
                            return Ok(Next::More);
                        }
                    }
                }
            }
        }
    }

    /// Takes up to `max` items into `out`: waits for one, then takes every whole
    /// small item there is under the same hold of the consumers' side.
    fn get_many_with(
        &self,
        max: usize,
        out: &mut Vec<T>,
        patience: Patience,
    ) -> std::result::Result<usize, Fail> {
        if max == 0 {
            return Ok(0);
        }
        let inner = &*self.inner;
        let ring = &inner.ring;
        let Some(side) = inner.lock(&inner.get_lock, patience, || ring.has_data()) else {
            return Err(Fail::Busy);
        };
        loop {
            if inner.has_partial.load(Relaxed) {
                break;
            }
            let mut taken = Taking {
                inner,
                head: ring.head(),
                got: 0,
                n: 0,
            };
            let limit = SMALL.min(inner.max_message);
            let mut empty = false;
            while taken.n < max {
                let rec = match ring.peek_at(taken.head) {
                    Ok(Some(rec)) if rec.kind == SINGLE && rec.len <= limit => rec,
                    Ok(None) => {
                        empty = true;
                        break;
                    }
                    // Not a small whole item, or a ring that cannot be read: the
                    // general receive takes it or reports it (when it comes first).
                    _ => break,
                };
                let mut small = [0u8; SMALL];
                ring.copy_out_words(&rec, &mut small);
                let decoded = codec::decode(&small[..rec.len], Vec::new());
                let first = taken.n == 0;
                if decoded.is_ok() || first {
                    // Taken (an item that does not decode is dropped, as by `get`).
                    taken.head = rec.next_head;
                    taken.got = ring.full_seq(rec.seq).saturating_add(1);
                    taken.n += 1;
                }
                match decoded {
                    Ok(v) => out.push(v),
                    // The first item: its error is this call's.
                    Err(e) if first => return Err(Fail::Invalid(e)),
                    // Left for the next call, which reports it.
                    Err(_) => break,
                }
            }
            if taken.n > 0 {
                return Ok(taken.n);
            }
            if !empty {
                break;
            }
            if inner.closed() && !ring.has_data() {
                return Err(Fail::Disconnected);
            }
            let deadline = match patience {
                Patience::Try => return Err(Fail::Busy),
                Patience::Until(d) => Some(d),
                Patience::Forever => None,
            };
            if ring.wait_data(deadline, &mut || !inner.closed()) == Waited::TimedOut {
                return Err(Fail::Busy);
            }
        }
        // A large item, one half-taken, or a record the general receive reports.
        out.push(self.get_other(side, patience)?);
        Ok(1)
    }

    /// Puts every item of `items`, in order, waiting while the queue is full, as
    /// [`put`](Self::put) does for each. Small items (whose encoding fits in 64
    /// bytes) go in runs of up to 64 under one hold of the producers' side,
    /// written back to back into the ring and published together: one lock, one
    /// publish and one wake-up check per run instead of per item. Other items go
    /// in one by one as with `put`. Returns how many went in.
    ///
    /// The items of one call arrive in their order (those of other producers may
    /// come between runs). Each run is published at once: a producer that dies in
    /// the middle of a batch leaves a prefix of it in the queue (whole items, none
    /// twice) and the rest of it nowhere; the next producer takes over the
    /// producers' side as after a `put`.
    ///
    /// To keep the items after one that failed, pass `iter.by_ref()`: the call
    /// takes no item from the iterator past the one it reports.
    ///
    /// # Errors
    ///
    /// [`BatchSendError`] with the number of items that went in and a
    /// [`SendError`] carrying the first that did not: `Disconnected` if the queue
    /// is closed, `Rejected` if it fails to serialize, owns a file descriptor or is
    /// over the maximum message size.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// assert_eq!(q.put_all(0..100u64).unwrap(), 100);
    /// let mut got = Vec::new();
    /// while got.len() < 100 {
    ///     q.get_many(64, &mut got)?;
    /// }
    /// assert_eq!(got, (0..100).collect::<Vec<u64>>());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn put_all<I: IntoIterator<Item = T>>(
        &self,
        items: I,
    ) -> std::result::Result<usize, BatchSendError<SendError<T>>> {
        self.put_all_with(&mut items.into_iter(), Patience::Forever)
            .map_err(|(sent, v, f)| BatchSendError {
                sent,
                error: f.into_send(v),
            })
    }

    /// Puts as many items of `items` as there is room for now, in order (as
    /// [`put_all`](Self::put_all), with [`try_put`](Self::try_put)'s patience).
    ///
    /// # Errors
    ///
    /// [`BatchSendError`] with the number of items that went in and a
    /// [`TrySendError`] carrying the first that did not: `Full` if there was no
    /// room for it (pass `iter.by_ref()` to keep the items after it), otherwise as
    /// [`put_all`](Self::put_all).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::bounded(3)?;
    /// let mut items = 0..10u32;
    /// let err = q.try_put_all(items.by_ref()).unwrap_err();
    /// assert_eq!(err.sent, 3);
    /// assert_eq!(err.error.into_inner(), 3); // the first that did not fit
    /// assert_eq!(items.next(), Some(4));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_put_all<I: IntoIterator<Item = T>>(
        &self,
        items: I,
    ) -> std::result::Result<usize, BatchSendError<TrySendError<T>>> {
        self.put_all_with(&mut items.into_iter(), Patience::Try)
            .map_err(|(sent, v, f)| BatchSendError {
                sent,
                error: f.into_try_send(v),
            })
    }

    /// Puts the items of `items` in order, waiting for room until `timeout` has
    /// passed (it bounds the whole call); the items put before the deadline stay
    /// in the queue.
    ///
    /// # Errors
    ///
    /// [`BatchSendError`] with the number of items that went in and a
    /// [`SendTimeoutError`] carrying the first that did not: `Timeout` if there was
    /// no room for it in time, otherwise as [`put_all`](Self::put_all).
    pub fn put_all_timeout<I: IntoIterator<Item = T>>(
        &self,
        items: I,
        timeout: Duration,
    ) -> std::result::Result<usize, BatchSendError<SendTimeoutError<T>>> {
        self.put_all_with(&mut items.into_iter(), Patience::within(timeout))
            .map_err(|(sent, v, f)| BatchSendError {
                sent,
                error: f.into_send_timeout(v),
            })
    }

    /// Waits for an item, then takes it and every whole small item (encoded in at
    /// most 64 bytes) that follows it now, up to `max` in all, under one hold of
    /// the consumers' side: one lock and one release of the ring's room for the
    /// whole batch. The items are appended to `out` in queue order; returns how
    /// many (at least one; `0` only when `max` is `0`). A large item comes alone.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get): [`RecvError::Disconnected`] once the queue is closed
    /// and drained; [`RecvError::Invalid`] if the first item does not decode as `T`
    /// (it is dropped). An item after the first that does not decode is left in
    /// the queue: the call returns the items before it, and the next call reports
    /// it.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Process, Queue};
    ///
    /// fn producer(q: Queue<u64>) {
    ///     q.put_all(0..1000).unwrap();
    /// }
    ///
    /// let q = Queue::new()?;
    /// let p = Process::start_with(producer, q.clone())?;
    /// let mut got = Vec::with_capacity(1000);
    /// while got.len() < 1000 {
    ///     q.get_many(256, &mut got)?;
    /// }
    /// assert_eq!(got, (0..1000).collect::<Vec<u64>>());
    /// p.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get_many(&self, max: usize, out: &mut Vec<T>) -> std::result::Result<usize, RecvError> {
        self.get_many_with(max, out, Patience::Forever)
            .map_err(Fail::into_recv)
    }

    /// As [`get_many`](Self::get_many) without waiting: takes what is there now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if there is no item, otherwise as
    /// [`get_many`](Self::get_many).
    pub fn try_get_many(
        &self,
        max: usize,
        out: &mut Vec<T>,
    ) -> std::result::Result<usize, TryRecvError> {
        self.get_many_with(max, out, Patience::Try)
            .map_err(Fail::into_try_recv)
    }

    /// As [`get_many`](Self::get_many), waiting at most `timeout` for the first
    /// item (as [`get_timeout`](Self::get_timeout) does).
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came in time, otherwise as
    /// [`get_many`](Self::get_many).
    pub fn get_many_timeout(
        &self,
        max: usize,
        out: &mut Vec<T>,
        timeout: Duration,
    ) -> std::result::Result<usize, RecvTimeoutError> {
        self.get_many_with(max, out, Patience::within(timeout))
            .map_err(Fail::into_recv_timeout)
    }
}

/// Small records a batching `get` has copied out, consumed when it ends (also
/// when a `Deserialize` panics: the items already pushed are then not taken
/// again by the next `get`).
struct Taking<'a> {
    inner: &'a Inner,
    /// `head` after the last record taken.
    head: u64,
    /// `got` after it.
    got: u64,
    /// Records taken.
    n: usize,
}

impl Drop for Taking<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.inner.ring.consume_run(self.head, self.got, self.n);
        }
    }
}

impl<T> JoinableQueue<T> {
    /// Marks `count` items taken (with [`get_many`](Queue::get_many), say) as
    /// processed at once: [`task_done`](Self::task_done) `count` times in one step.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if fewer than `count` items are unfinished
    /// (none is marked then).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::new()?;
    /// q.put_all([1u8, 2, 3]).unwrap();
    /// let mut got = Vec::new();
    /// let n = q.get_many(10, &mut got)?;
    /// q.task_done_many(n)?;
    /// assert_eq!(q.unfinished(), 0);
    /// assert!(q.task_done_many(1).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn task_done_many(&self, count: usize) -> Result<()> {
        let inner = &self.queue.inner;
        let n = count as u64;
        if n == 0 {
            return Ok(());
        }
        let u = inner.unfinished();
        let mut cur = u.load(Acquire);
        loop {
            if cur < n {
                return Err(Error::new(ErrorKind::InvalidInput).with_message(format!(
                    "task_done_many({count}) with only {cur} items unfinished"
                )));
            }
            match u.compare_exchange_weak(cur, cur - n, AcqRel, Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur == n {
            inner.join_seq().fetch_add(1, Release);
            inner.mem.wake_all(inner.join_seq());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::DIRECT;
    use super::*;
    use std::time::Instant;

    /// Bounds every wait, so a defect fails the test instead of hanging it.
    const WAIT: Duration = Duration::from_secs(60);

    /// Items of every path: small ones, ones over 64 bytes, ones in fragments
    /// (over a quarter of a 4 KiB ring) and large byte strings.
    fn mixed(i: u64) -> String {
        let len = match i % 97 {
            13 => 100,
            29 => 3000,
            61 => DIRECT + 5,
            _ => (i % 9) as usize,
        };
        let c = char::from(b'a' + (i % 26) as u8);
        format!("{i}:{}", c.to_string().repeat(len))
    }

    /// A batch of small and large items, through a 4 KiB ring (runs wrap at its
    /// end and fill it) and the default one, arrives whole and in order through
    /// `get_many` with a limit that cuts the runs anywhere.
    #[test]
    fn put_all_and_get_many_keep_every_item_in_order() {
        for capacity in [4096, DEFAULT_CAPACITY] {
            let q = Queue::<String>::builder()
                .capacity(capacity)
                .build()
                .unwrap();
            let n = 2000;
            let t = {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while got.len() < n as usize {
                        let k = q.get_many_timeout(7, &mut got, WAIT).unwrap();
                        assert!((1..=7).contains(&k), "{k}");
                    }
                    got
                })
            };
            assert_eq!(q.put_all((0..n).map(mixed)).unwrap(), n as usize);
            let got = t.join().unwrap();
            assert!(
                got == (0..n).map(mixed).collect::<Vec<_>>(),
                "capacity {capacity}"
            );
            assert_eq!(q.qsize(), 0);
            assert!(q.try_get_many(10, &mut Vec::new()).unwrap_err().is_empty());
        }
    }

    use super::super::DEFAULT_QUEUE_CAPACITY as DEFAULT_CAPACITY;

    /// A bounded queue takes what fits: the first item that does not comes back
    /// with the count, the iterator keeps the rest; the ring's bytes bound it the
    /// same way.
    #[test]
    fn try_put_all_puts_what_fits() {
        let q = Queue::<u32>::bounded(3).unwrap();
        let mut items = 0..10;
        let err = q.try_put_all(items.by_ref()).unwrap_err();
        assert_eq!(err.sent(), 3);
        assert!(err.error.is_full());
        assert_eq!(err.into_error().into_inner(), 3);
        assert_eq!(items.next(), Some(4));
        assert_eq!(q.qsize(), 3);
        let mut got = Vec::new();
        assert_eq!(q.get_many(10, &mut got).unwrap(), 3);
        assert_eq!(got, [0, 1, 2]);
        // The ring's bytes: a 4 KiB ring holds a few hundred 8-byte records.
        let q = Queue::<u64>::builder().capacity(4096).build().unwrap();
        let err = q.try_put_all(0..10_000).unwrap_err();
        let sent = err.sent;
        assert!(sent > 100 && sent < 10_000, "{sent}");
        assert_eq!(err.error.into_inner(), sent as u64);
        assert_eq!(q.qsize(), sent);
        let mut got = Vec::new();
        while q.try_get_many(1000, &mut got).is_ok() {}
        assert_eq!(got, (0..sent as u64).collect::<Vec<_>>());
    }

    /// `put_all_timeout` stops at its deadline with the count; the items before
    /// it stay in the queue.
    #[test]
    fn put_all_timeout_stops_at_the_deadline() {
        let q = Queue::<u8>::bounded(5).unwrap();
        let start = Instant::now();
        let err = q
            .put_all_timeout(0..20, Duration::from_millis(50))
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(50) + Duration::from_secs(2));
        assert_eq!(err.sent, 5);
        assert!(err.error.is_timeout());
        assert_eq!(err.error.into_inner(), 5);
        assert_eq!(q.qsize(), 5);
        // And a consumer makes room for a blocking batch.
        let t = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 25 {
                    q.get_many_timeout(3, &mut got, WAIT).unwrap();
                }
                got
            })
        };
        assert_eq!(q.put_all(5..25).unwrap(), 20);
        assert_eq!(t.join().unwrap(), (0..25).collect::<Vec<u8>>());
    }

    /// Fails to serialize when it holds 7.
    #[derive(Debug, PartialEq, Deserialize)]
    struct NotSeven(u8);

    impl Serialize for NotSeven {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            if self.0 == 7 {
                return Err(serde::ser::Error::custom("seven"));
            }
            s.serialize_u8(self.0)
        }
    }

    use serde::{Deserialize, Serializer};

    /// An item that fails to serialize stops the batch: the error says how many
    /// went in before it and hands it back; the items before it arrive.
    #[test]
    fn an_item_that_fails_to_encode_says_how_many_went_in() {
        let q = Queue::<NotSeven>::new().unwrap();
        let mut items = (0..10).map(NotSeven);
        let err = q.put_all(items.by_ref()).unwrap_err();
        assert_eq!(err.sent, 7);
        assert_eq!(
            err.error.rejection().map(Error::kind),
            Some(ErrorKind::Encode)
        );
        assert!(err.to_string().contains("after 7 items"), "{err}");
        assert_eq!(err.into_error().into_inner(), NotSeven(7));
        assert_eq!(items.next(), Some(NotSeven(8)));
        let mut got = Vec::new();
        q.get_many(100, &mut got).unwrap();
        assert_eq!(got, (0..7).map(NotSeven).collect::<Vec<_>>());
        // Over the maximum message size: refused with the count too.
        let q = Queue::<Vec<u8>>::builder()
            .max_message_size(10)
            .build()
            .unwrap();
        let err = q.put_all([vec![1], vec![2; 20], vec![3]]).unwrap_err();
        assert_eq!(err.sent, 1);
        assert!(err.error.is_rejected());
        assert_eq!(q.qsize(), 1);
    }

    /// A record that does not decode as `T` (a forged one) after the first item
    /// of a batch is left for the next call, which reports it; the items after it
    /// still arrive.
    #[test]
    fn an_item_that_does_not_decode_is_reported_by_the_next_call() {
        let q = Queue::<bool>::new().unwrap();
        q.put_all([true, false]).unwrap();
        // `2` is no bool.
        assert!(q
            .inner
            .ring
            .try_write(SINGLE, None, &[&[2]])
            .unwrap()
            .is_some());
        q.put_all([true]).unwrap();
        let mut got = Vec::new();
        assert_eq!(q.get_many(10, &mut got).unwrap(), 2);
        assert_eq!(got, [true, false]);
        let err = q.get_many(10, &mut got).unwrap_err();
        assert!(matches!(err, RecvError::Invalid(_)), "{err:?}");
        assert_eq!(q.get_many(10, &mut got).unwrap(), 1);
        assert_eq!(got, [true, false, true]);
        assert_eq!(q.qsize(), 0);
    }

    /// A closed queue refuses a batch (the first item comes back, none went in)
    /// and `get_many` drains what is left, then reports it closed; a `get_many`
    /// waiting on an empty queue is woken by the close.
    #[test]
    fn close_stops_batches() {
        let q = Queue::<u16>::new().unwrap();
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || {
                q.get_many(5, &mut Vec::new())
                    .map_err(|e| e.is_disconnected())
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        q.put_all([1, 2, 3]).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(3));
        q.put_all([4, 5]).unwrap();
        q.close();
        let err = q.put_all([6, 7]).unwrap_err();
        assert_eq!(err.sent, 0);
        assert!(err.error.is_disconnected());
        let mut got = Vec::new();
        assert_eq!(q.get_many(10, &mut got).unwrap(), 2);
        assert_eq!(got, [4, 5]);
        assert!(q.get_many(10, &mut got).unwrap_err().is_disconnected());
        assert!(q
            .get_many_timeout(10, &mut got, Duration::from_millis(10))
            .unwrap_err()
            .is_disconnected());
        assert_eq!(q.get_many(0, &mut got).unwrap(), 0);
    }

    /// An empty queue: `try_get_many` is `Empty`, `get_many_timeout` times out
    /// (within the deadline and a margin), a blocking `get_many` gets what comes.
    #[test]
    fn get_many_waits_for_the_first_item() {
        let q = Queue::<u64>::new().unwrap();
        let mut got = Vec::new();
        assert!(q.try_get_many(5, &mut got).unwrap_err().is_empty());
        let start = Instant::now();
        let err = q
            .get_many_timeout(5, &mut got, Duration::from_millis(30))
            .unwrap_err();
        assert!(err.is_timeout());
        assert!(start.elapsed() < Duration::from_millis(30) + Duration::from_secs(2));
        let t = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                q.put_all(0..3).unwrap()
            })
        };
        let mut got = Vec::new();
        while got.len() < 3 {
            q.get_many(5, &mut got).unwrap();
        }
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(t.join().unwrap(), 3);
    }

    /// A joinable queue counts a batch's items unfinished as they are
    /// published, and `task_done_many` marks them done at once (never more than
    /// there are).
    #[test]
    fn a_joinable_queue_counts_batches() {
        let q = JoinableQueue::<u32>::new().unwrap();
        q.put_all(0..200).unwrap();
        assert_eq!(q.unfinished(), 200);
        let mut got = Vec::new();
        let n = q.get_many(150, &mut got).unwrap();
        assert_eq!(n, 150);
        q.task_done_many(n).unwrap();
        assert_eq!(q.unfinished(), 50);
        assert!(!q.join_timeout(Duration::from_millis(10)));
        let err = q.task_done_many(51).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(q.unfinished(), 50);
        let joiner = {
            let q = q.clone();
            std::thread::spawn(move || q.join_timeout(WAIT))
        };
        q.get_many(100, &mut got).unwrap();
        q.task_done_many(50).unwrap();
        assert!(joiner.join().unwrap());
        assert_eq!(got, (0..200).collect::<Vec<_>>());
    }

    /// A run written and never published (its producer died before the publish)
    /// leaves no trace: no item, no count, and the next producer's items come
    /// next.
    #[test]
    fn an_unpublished_run_leaves_no_trace() {
        let q = Queue::<u64>::builder().capacity(4096).build().unwrap();
        q.put_all([1, 2]).unwrap();
        let ring = &q.inner.ring;
        let mut run = ring.begin_run().unwrap();
        for i in 0..100u64 {
            let mut b = [0u8; SMALL];
            let n = codec::encode_small(&(1000 + i), &mut b).unwrap();
            assert!(ring.push_run(&mut run, &b, n).unwrap());
        }
        let _never_published = run;
        assert_eq!(q.qsize(), 2);
        q.put_all([3]).unwrap();
        assert_eq!(q.qsize(), 3);
        let mut got = Vec::new();
        assert_eq!(q.get_many(10, &mut got).unwrap(), 3);
        assert_eq!(got, [1, 2, 3]);
        assert!(q.try_get_many(10, &mut got).unwrap_err().is_empty());
    }

    static EFFECTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// Bytes whose serialization has an effect outside them (as a manager
    /// proxy's reference), counted once per send by `first_serialization`.
    #[derive(Debug, PartialEq, Deserialize)]
    struct Effect(Vec<u8>);

    impl Serialize for Effect {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            if codec::first_serialization() {
                EFFECTS.fetch_add(1, Relaxed);
            }
            self.0.serialize(s)
        }
    }

    /// Every item of a batch is one send: an item that is tried on the stack
    /// and then put another way (over 64 bytes), first in a batch or after a
    /// run, takes its side effect once.
    #[test]
    fn each_item_of_a_batch_takes_its_side_effect_once() {
        let q = Queue::<Effect>::new().unwrap();
        let items = || {
            [
                Effect(vec![1; 200]),
                Effect(vec![2]),
                Effect(vec![3; 200]),
                Effect(vec![4]),
            ]
        };
        EFFECTS.store(0, Relaxed);
        assert_eq!(q.put_all(items()).unwrap(), 4);
        assert_eq!(EFFECTS.load(Relaxed), 4);
        let mut got = Vec::new();
        while got.len() < 4 {
            q.get_many(10, &mut got).unwrap();
        }
        assert_eq!(got, items());
    }

    /// A consumers' `head` scribbled past the tail (another process's word) stops
    /// a batch with a `Corrupt` rejection and the count of the items before it,
    /// never a panic or a write over unread records.
    #[test]
    fn a_scribbled_head_stops_a_batch() {
        let q = Queue::<u64>::builder().capacity(4096).build().unwrap();
        let (mem, base) = q.ring_base();
        // `head` is at offset 128 of the ring.
        mem.u64_at(base + 128).store(1 << 40, Relaxed);
        let err = q.put_all(0..10_000).unwrap_err();
        assert!(err.sent < 10_000);
        assert_eq!(
            err.error.rejection().map(Error::kind),
            Some(ErrorKind::Corrupt),
            "{err}"
        );
    }

    /// Producer and consumer threads, batches and single items mixed: every item
    /// arrives once, and each consumer sees each producer's items in order.
    #[test]
    fn threads_share_batches() {
        let q = Queue::<(u8, u32)>::builder()
            .capacity(8192)
            .build()
            .unwrap();
        let per = 5000u32;
        let producers: Vec<_> = (0..3u8)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut i = 0;
                    while i < per {
                        let k = (i % 100 + 1).min(per - i);
                        if k == 1 {
                            q.put((p, i)).unwrap();
                        } else {
                            q.put_all((i..i + k).map(|j| (p, j))).unwrap();
                        }
                        i += k;
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut last = [None::<u32>; 3];
                    loop {
                        let from = got.len();
                        match q.get_many_timeout(33, &mut got, WAIT) {
                            Ok(_) => {}
                            Err(e) if e.is_disconnected() => return got,
                            Err(e) => panic!("{e}"),
                        }
                        for &(p, i) in &got[from..] {
                            let l = &mut last[p as usize];
                            assert!(l.is_none_or(|l| l < i), "producer {p}: {l:?} then {i}");
                            *l = Some(i);
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.close();
        let mut all: Vec<(u8, u32)> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let want: Vec<_> = (0..3u8)
            .flat_map(|p| (0..per).map(move |i| (p, i)))
            .collect();
        assert!(all == want, "items lost or duplicated");
    }
}
