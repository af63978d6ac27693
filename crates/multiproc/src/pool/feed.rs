//! What `map`, `imap` and their kin do the same way on every pool type: split the
//! input into chunks, submit them, and gather the chunks' results in order.
//!
//! Two pool types share it: [`Pool`] (threads, processes or a cluster, for `fn` items
//! and serde data) and [`ThreadPool`](super::ThreadPool) (threads, for any `Send`
//! closure and data). Each says how it runs a function over a chunk by implementing
//! [`SubmitChunks`] with its own bounds on the function and the data; everything else
//! here is generic over [`Feeds`], so the two cannot drift apart.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::handle::Pool;
use super::inplace;
use super::map_handle::{self, MapHandle};
use super::process::chunk::{self, ChunkOut};
use super::progress::Progress;
use super::slot::{self, Callback, Drive, Slot, Taken};
use super::task;
use crate::error::{Error, RemotePanic, Result};

/// A submitted chunk: its slot and its number of items.
pub(crate) type Chunk<R> = (Arc<Slot<ChunkOut<R>>>, usize);

/// A pool's settings that shape how its input is chunked and fed.
pub(crate) trait Feeds {
    /// The chunk size the pool was built with, if any.
    fn default_chunksize(&self) -> Option<usize>;
    /// How many chunks `imap` may have in flight ahead of its consumer.
    fn prefetch_chunks(&self) -> usize;
    /// The chunk size for an input of `len` items.
    fn auto_chunksize(&self, len: usize) -> usize;
    /// A progress bar for `len` items (drawn only if the pool was built with one).
    fn progress_bar(&self, len: Option<usize>) -> Progress;
    /// What a thread waiting on one of this pool's slots can step to make progress.
    fn driver(&self) -> Option<Arc<dyn Drive>>;
}

/// A pool that can apply `F` to chunks of `A`: each pool type implements it with the
/// bounds its workers need (a `Copy` `fn` and serde data for [`Pool`]; any shared
/// closure and `Send` data for [`ThreadPool`](super::ThreadPool)).
pub(crate) trait SubmitChunks<F, A, R>: Feeds {
    /// Submits one unit per chunk, with as few wake-ups as the backend allows;
    /// returns their slots in input order.
    fn submit_chunks(&self, f: &F, chunks: Vec<Vec<A>>) -> Vec<Chunk<R>>;

    /// The chunk size for `len` items of `f` when the caller gave none.
    fn chunksize_for(&self, _f: &F, len: usize) -> usize {
        self.auto_chunksize(len)
    }

    /// Told that `map` applied `f` to `len` items in chunks of `chunksize` in
    /// `elapsed` (and whether it succeeded), so that later chunk sizes can follow the
    /// items' cost.
    fn learn(&self, _f: &F, _len: usize, _chunksize: usize, _elapsed: Duration, _ok: bool) {}

    /// Applies `f` to all of `items` in chunks of `chunksize` and returns the values
    /// in order, or the first failed item's error in input order (after every chunk
    /// has finished); `bar` is told each chunk's size as it is taken. By default one
    /// `Vec` per chunk ([`map_chunks`]); a pool whose workers are threads of this
    /// process reads and writes in place instead ([`inplace::map`]).
    fn map_all(&self, f: &F, items: Vec<A>, chunksize: usize, bar: &Progress) -> Result<Vec<R>>
    where
        R: Send + 'static,
    {
        map_chunks(self, f, items, chunksize, bar)
    }

    /// [`map_all`](Self::map_all) without waiting: `list` completes with what it
    /// would return, on the thread that completes the last chunk.
    fn map_all_async(
        &self,
        f: &F,
        items: Vec<A>,
        chunksize: usize,
        list: Arc<Slot<Vec<R>>>,
    ) -> MapHandle<R>
    where
        R: Send + 'static,
    {
        MapHandle::new(list, self.submit_chunks(f, split(items, chunksize)))
    }

    /// How `map` decodes a chunk's values that arrived as bytes straight into its
    /// list, if this pool's chunks can arrive so.
    fn decode_into(&self) -> Option<DecodeInto<R>> {
        None
    }
}

/// Decodes the values of a chunk of `n` items that a worker sent as bytes, appending
/// them to a list; returns the chunk's panics ([`chunk::decode_values_into`]).
pub(crate) type DecodeInto<R> =
    fn(&[u8], Vec<OwnedFd>, usize, &mut Vec<R>) -> Result<Vec<(u32, RemotePanic)>>;

impl Feeds for Pool {
    fn default_chunksize(&self) -> Option<usize> {
        Pool::default_chunksize(self)
    }

    fn prefetch_chunks(&self) -> usize {
        Pool::prefetch_chunks(self)
    }

    fn auto_chunksize(&self, len: usize) -> usize {
        Pool::auto_chunksize(self, len)
    }

    fn progress_bar(&self, len: Option<usize>) -> Progress {
        Pool::progress_bar(self, len)
    }

    fn driver(&self) -> Option<Arc<dyn Drive>> {
        Pool::driver(self)
    }
}

impl<F, A, R> SubmitChunks<F, A, R> for Pool
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    fn submit_chunks(&self, f: &F, chunks: Vec<Vec<A>>) -> Vec<Chunk<R>> {
        Pool::submit_chunks(self, *f, chunks)
    }

    fn chunksize_for(&self, _f: &F, len: usize) -> usize {
        Pool::chunksize_for::<F>(self, len)
    }

    fn learn(&self, _f: &F, len: usize, chunksize: usize, elapsed: Duration, ok: bool) {
        Pool::learn::<F>(self, len, chunksize, elapsed, ok);
    }

    fn map_all(&self, f: &F, items: Vec<A>, chunksize: usize, bar: &Progress) -> Result<Vec<R>> {
        if let Some(engine) = self.thread_engine() {
            return inplace::map(engine, items, chunksize, *f, bar);
        }
        match self.submit_ranges(*f, &items, chunksize) {
            Some(slots) => {
                drop(items);
                gather(&slots, Some(chunk::decode_values_into::<R>), |n| bar.inc(n))
            }
            None => map_chunks(self, f, items, chunksize, bar),
        }
    }

    fn map_all_async(
        &self,
        f: &F,
        items: Vec<A>,
        chunksize: usize,
        list: Arc<Slot<Vec<R>>>,
    ) -> MapHandle<R> {
        match self.thread_engine() {
            Some(engine) => inplace::map_async(engine, items, chunksize, *f, list),
            None => MapHandle::new(list, Pool::submit_chunks(self, *f, split(items, chunksize))),
        }
    }

    fn decode_into(&self) -> Option<DecodeInto<R>> {
        Some(chunk::decode_values_into::<R>)
    }
}

/// Splits the input into chunks of the pool's automatic size for `f`. The input is
/// collected first: a `Vec` is taken as it is, without a copy.
fn chunk_input<P, F, A, R, I>(pool: &P, f: &F, items: I) -> Vec<Vec<A>>
where
    P: SubmitChunks<F, A, R> + ?Sized,
    I: IntoIterator<Item = A>,
{
    let all: Vec<A> = items.into_iter().collect();
    let cs = pool.chunksize_for(f, all.len());
    split(all, cs)
}

/// Cuts `all` into chunks of `cs` items (the last one shorter), in order. From the
/// back, so that each chunk is one block copy out of the input's buffer (an
/// item-by-item `take` cost the caller's thread about a tenth of a 10^6-item map) and
/// the first chunk keeps that buffer.
fn split<A>(mut all: Vec<A>, cs: usize) -> Vec<Vec<A>> {
    let cs = cs.max(1);
    let mut chunks = Vec::with_capacity(all.len().div_ceil(cs));
    while all.len() > cs {
        let last = (all.len() - 1) / cs * cs;
        chunks.push(all.split_off(last));
    }
    if !all.is_empty() {
        chunks.push(all);
    }
    chunks.reverse();
    chunks
}

/// A `map`'s list of values this large is backed by huge pages: filling 80 MB (10^7
/// `u64`s) took 19,500 page faults per call (issue 11).
const HUGE_LIST: usize = 8 << 20;

/// Waits for every chunk in order and returns all values, or the first failed item's
/// error in input order (after every chunk has finished); `on_chunk` is told each
/// chunk's size as it is taken.
///
/// With `into`, a chunk that a worker process sent as bytes is decoded straight into
/// the list.
pub(crate) fn gather<R: Send + 'static>(
    chunks: &[Chunk<R>],
    into: Option<DecodeInto<R>>,
    mut on_chunk: impl FnMut(usize),
) -> Result<Vec<R>> {
    let mut out = Vec::with_capacity(chunks.iter().map(|(_, n)| n).sum());
    if std::mem::size_of_val(out.spare_capacity_mut()) >= HUGE_LIST {
        crate::sys::mm::advise_huge_pages(out.spare_capacity_mut());
    }
    let mut first_err: Option<Error> = None;
    for (slot, n) in chunks {
        let n = *n;
        slot.wait_until(None);
        let r = match slot.take_encoded() {
            Taken::Encoded(bytes, fds, decode) => match into {
                _ if first_err.is_some() => {
                    on_chunk(n);
                    continue;
                }
                None => slot::decode_caught(decode, &bytes, fds),
                Some(into) => {
                    let at = out.len();
                    match into(&bytes, fds, n, &mut out) {
                        Ok(panics) if panics.is_empty() && out.len() - at == n => {
                            on_chunk(n);
                            continue;
                        }
                        Ok(panics) => Ok(ChunkOut {
                            values: out.split_off(at),
                            panics,
                        }),
                        Err(e) => {
                            out.truncate(at);
                            Err(e)
                        }
                    }
                }
            },
            Taken::Value(r) => r,
        };
        on_chunk(n);
        if first_err.is_some() {
            continue;
        }
        match r {
            Ok(c) if c.panics.is_empty() && c.values.len() == n => out.extend(c.values),
            other => first_err = task::expand(other, n).into_iter().find_map(Result::err),
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `map` (and `map_chunked`, with a `chunksize`): collects the input, then
/// [`SubmitChunks::map_all`] with the pool's progress bar.
pub(crate) fn map<P, F, A, R, I>(
    pool: &P,
    f: &F,
    items: I,
    chunksize: Option<usize>,
) -> Result<Vec<R>>
where
    P: SubmitChunks<F, A, R> + ?Sized,
    R: Send + 'static,
    I: IntoIterator<Item = A>,
{
    let all: Vec<A> = items.into_iter().collect();
    let len = all.len();
    let cs = chunksize.unwrap_or_else(|| pool.chunksize_for(f, len));
    let bar = pool.progress_bar(Some(len));
    let start = Instant::now();
    let out = pool.map_all(f, all, cs, &bar);
    pool.learn(f, len, cs, start.elapsed(), out.is_ok());
    bar.finish();
    out
}

/// [`SubmitChunks::map_all`] with one `Vec` per chunk: submits the chunks and
/// gathers their values.
pub(crate) fn map_chunks<P, F, A, R>(
    pool: &P,
    f: &F,
    items: Vec<A>,
    chunksize: usize,
    bar: &Progress,
) -> Result<Vec<R>>
where
    P: SubmitChunks<F, A, R> + ?Sized,
    R: Send + 'static,
{
    let slots = pool.submit_chunks(f, split(items, chunksize));
    gather(&slots, pool.decode_into(), |n| bar.inc(n))
}

/// `map_results`: every item's own result, in order.
pub(crate) fn map_results<P, F, A, R, I>(pool: &P, f: &F, items: I) -> Vec<Result<R>>
where
    P: SubmitChunks<F, A, R> + ?Sized,
    R: Send + 'static,
    I: IntoIterator<Item = A>,
{
    let chunks = chunk_input(pool, f, items);
    let total = chunks.iter().map(Vec::len).sum();
    let bar = pool.progress_bar(Some(total));
    let slots = pool.submit_chunks(f, chunks);
    let mut out = Vec::with_capacity(total);
    for (slot, n) in slots {
        out.extend(task::expand(slot.join(), n));
        bar.inc(n);
    }
    bar.finish();
    out
}

/// `map_async`: submits every chunk now; the handle completes with the whole list.
pub(crate) fn map_async<P, F, A, R, I>(
    pool: &P,
    f: &F,
    items: I,
    callback: Option<Callback<Vec<R>>>,
) -> MapHandle<R>
where
    P: SubmitChunks<F, A, R> + ?Sized,
    R: Send + 'static,
    I: IntoIterator<Item = A>,
{
    let list = map_handle::list_slot(callback, pool.driver());
    let all: Vec<A> = items.into_iter().collect();
    let cs = pool.chunksize_for(f, all.len());
    pool.map_all_async(f, all, cs, list)
}

/// The callback of `map_async_with`: a panic in the user's `callback` is caught and
/// ignored, and the list goes on to the handle.
pub(crate) fn list_callback<R, C>(callback: C) -> Callback<Vec<R>>
where
    C: FnOnce(&Result<Vec<R>>) + Send + 'static,
{
    Box::new(move |r| {
        let _ = crate::panic::catch(|| callback(&r));
        r
    })
}

/// The callback of `apply_async_with`: the user's `callback` sees the task's one
/// result (a panic in it is caught and ignored) before the handle does.
pub(crate) fn item_callback<R, C>(callback: C) -> Callback<ChunkOut<R>>
where
    C: FnOnce(&Result<R>) + Send + 'static,
{
    Box::new(move |out| {
        let r = task::single(out);
        let _ = crate::panic::catch(|| callback(&r));
        r.map(|v| ChunkOut {
            values: vec![v],
            panics: Vec::new(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_cuts_in_order_like_slice_chunks() {
        for len in [0usize, 1, 2, 9, 10, 11, 64, 1000] {
            let all: Vec<usize> = (0..len).collect();
            for cs in [1usize, 2, 3, 7, 10, 64, 1000, usize::MAX] {
                let want: Vec<Vec<usize>> = all.chunks(cs).map(<[usize]>::to_vec).collect();
                assert_eq!(split(all.clone(), cs), want, "len {len}, chunk size {cs}");
            }
        }
    }
}
