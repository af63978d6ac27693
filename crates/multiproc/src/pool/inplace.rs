//! `map` on worker threads of this process, reading the input and writing the result
//! in place: the thread backend of [`Pool`](super::Pool) and
//! [`ThreadPool`](super::ThreadPool).
//!
//! A map over worker processes cuts its input into one `Vec` per chunk and gathers
//! each chunk's `Vec` of values into the result (`feed::map_chunks`). On threads
//! those are two serial copies of every item on the caller's thread, plus a fresh
//! buffer per chunk: a trivial map over 10^6 items took about ten times rayon's time.
//! Here the input stays the one buffer it came in, and the result is allocated once
//! at its full length. Chunk `c` is the index range `c × cs .. (c + 1) × cs` of both;
//! the job that runs it moves each item out of the input, calls the function, and
//! writes the value at the same index of the result. The caller's thread does work
//! per chunk, not per item.
//!
//! When values have the size and alignment of items (`u64 -> u64`, `String ->
//! String`), the result is the input's own buffer, as with std's in-place
//! `into_iter().map().collect()`: each value is written over the item just moved out
//! of its slot, and the map allocates nothing per item. That is not only a saved
//! allocation. With glibc, an input and a result of equal size in the caller's arena
//! leave, once both are freed, a free block at the top of the heap within a few KiB
//! of glibc's trim threshold (twice the largest block freed from `mmap`: the 8 MB of
//! 10^6 `u64`s). Past it, glibc hands the pages back and the next map of that size
//! faults every one in again: in a program that maps 10^6 `u64`s in a loop, about
//! half the runs took 1953 page faults and 3.5-6.9 ns/item per map, against 0 faults
//! and 0.3-1.4 ns/item for rayon, whose result is allocated on a worker thread, in
//! another arena (rayon takes the same faults when its `collect` runs on the caller's
//! thread).
//!
//! Each chunk is still one job of the thread backend's queue with a slot of its own,
//! so everything else is as for a chunk that owns its items: a panic is that item's
//! error and the chunk goes on, a chunk that overruns the task timeout fails with
//! `Timeout` (its abandoned thread still holds the buffers and finishes with them),
//! `terminate` and a closed pool fail queued chunks (their items are dropped, never
//! passed to the function), `max_tasks_per_child` counts chunks, and the progress bar
//! moves chunk by chunk in input order.
//!
//! # Safety
//!
//! [`Buffers`] owns two allocations of `len` slots, the input's and the result's, or
//! one (`in_place`: the result's is the input's), and threads share it through an
//! `Arc`. Each chunk has a state that only moves forward,
//! `PENDING → RUNNING → DONE`, and leaves `PENDING` only by one compare-exchange in
//! [`Buffers::run`]. Hence, for every index `i` of chunk `c`:
//!
//! - input slot `i` holds a live item exactly while `c` is `PENDING`: only the one
//!   thread whose compare-exchange won reads it, once, moving the item out;
//! - result slot `i` holds a live value exactly when `c` is `DONE` and `i` is not a
//!   *hole* (an item whose call panicked): only that same thread writes it, before it
//!   stores `DONE` with `Release`; [`Buffers::take`] and `Drop` load `DONE` with
//!   `Acquire` before they read it;
//! - [`Buffers::take`] hands the result's allocation to a `Vec` at most once (`taken`),
//!   and only when every chunk is `DONE` with no hole: then every slot holds a value
//!   and no thread writes any more. `Drop` leaves that allocation alone afterwards;
//! - `in_place`, slot `i` is both: an item while `c` is `PENDING`, then nothing
//!   from the runner's read (the item moved into the function) to its write of the
//!   value, which only that thread does, or forever if the call panicked (a hole): it
//!   holds an item or a value or nothing, never both. The allocation was made for `A`s of the
//!   size and alignment of `R`s, so it is one of `R`s of the same capacity; it is
//!   freed once: by the `Vec` that `take` returned, or by `Drop` if `take` did not;
//! - `Drop` runs when the last `Arc` goes, so no `run` is in progress (it borrows the
//!   buffers); it drops the live items and values by the rules above and frees the
//!   allocations `take` did not hand out. A chunk left `RUNNING` (only if `run` unwound, which it does not:
//!   it catches the function's panics) is leaked, never dropped twice.
//!
//! `tests` checks with counted drops that every item and every value is dropped
//! exactly once on every path, in place and not: success, panics (at the first, a
//! middle and the last item), chunks never run, a result not taken.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::feed::Chunk;
use super::map_handle::{values_only, MapHandle};
use super::process::chunk::ChunkOut;
use super::progress::Progress;
use super::slot::{Completion, Slot};
use super::thread::{self, Job};
use crate::error::{Error, ErrorKind, RemotePanic, Result};

/// The chunk has not run: its input slots hold its items.
const PENDING: u8 = 0;
/// A thread is running the chunk.
const RUNNING: u8 = 1;
/// The chunk has run: its result slots hold its values, except at holes.
const DONE: u8 = 2;

/// A map's input and result, shared by its chunks' jobs (see the module's Safety).
pub(crate) struct Buffers<A, R> {
    /// The input's buffer: `len` items, `input_cap` slots.
    input: *mut A,
    input_cap: usize,
    /// The result's buffer: `len` slots, `output_cap` of them allocated.
    output: *mut R,
    output_cap: usize,
    /// The result's buffer is the input's (`A` and `R` have the same size and
    /// alignment): `output` is `input` and `output_cap` is `input_cap`.
    in_place: bool,
    len: usize,
    chunksize: usize,
    /// One state per chunk.
    state: Box<[AtomicU8]>,
    /// The indices whose call panicked: their result slots stay empty.
    holes: Mutex<Vec<usize>>,
    /// The result's buffer belongs to the `Vec` that `take` returned.
    taken: AtomicBool,
    /// Owns `A`s and `R`s (for drop check and auto traits).
    _own: PhantomData<(Vec<A>, Vec<R>)>,
}

// SAFETY: sharing `&Buffers` lets another thread move items out of the input (`A:
// Send`) and write values that the caller takes, or that whichever thread drops the
// last `Arc` drops (`R: Send`). No `&A` or `&R` is ever shared between threads, so
// neither needs `Sync`; disjoint access to the slots is the module's invariant.
unsafe impl<A: Send, R: Send> Send for Buffers<A, R> {}
// SAFETY: as for `Send` above: every method that takes `&self` touches a slot only
// under its chunk's state protocol.
unsafe impl<A: Send, R: Send> Sync for Buffers<A, R> {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding it; recover rather than propagate a poison.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<A, R> Buffers<A, R> {
    /// Takes `items` without a copy and allocates the result, unless values fit the
    /// items' slots (see `in_place`), in chunks of `chunksize` items (at least 1).
    pub(crate) fn new(items: Vec<A>, chunksize: usize) -> Buffers<A, R> {
        let chunksize = chunksize.max(1);
        let len = items.len();
        // Everything that can fail (allocate) before the items are taken apart, so
        // that a failure drops them.
        let state = (0..len.div_ceil(chunksize))
            .map(|_| AtomicU8::new(PENDING))
            .collect();
        let in_place = size_of::<A>() == size_of::<R>() && align_of::<A>() == align_of::<R>();
        let mut output = ManuallyDrop::new(match in_place {
            true => Vec::new(),
            false => Vec::<R>::with_capacity(len),
        });
        let mut items = ManuallyDrop::new(items);
        let (output, output_cap) = match in_place {
            true => (items.as_mut_ptr().cast::<R>(), items.capacity()),
            false => (output.as_mut_ptr(), output.capacity()),
        };
        Buffers {
            input: items.as_mut_ptr(),
            input_cap: items.capacity(),
            output,
            output_cap,
            in_place,
            len,
            chunksize,
            state,
            holes: Mutex::new(Vec::new()),
            taken: AtomicBool::new(false),
            _own: PhantomData,
        }
    }

    /// The number of chunks.
    pub(crate) fn chunks(&self) -> usize {
        self.state.len()
    }

    /// The indices of chunk `c` (`c < chunks()`).
    pub(crate) fn range(&self, c: usize) -> Range<usize> {
        let lo = (c * self.chunksize).min(self.len);
        lo..lo + self.chunksize.min(self.len - lo)
    }

    /// Runs chunk `c`: moves each item out of the input in order, calls `f` with it
    /// and writes the value at the same index of the result. A panic is caught as
    /// that item's result (its slot stays a hole) and the chunk goes on with the next
    /// item. Returns the panics with their indices within the chunk; `None` if there
    /// is no chunk `c` or it has been run already.
    pub(crate) fn run<F: Fn(A) -> R>(&self, c: usize, f: &F) -> Option<Vec<(u32, RemotePanic)>> {
        let state = self.state.get(c)?;
        // Acquire: nothing to see but the items, which the queue's lock ordered
        // already; the exchange is what makes this thread the chunk's only runner.
        state
            .compare_exchange(PENDING, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let Range { start, end } = self.range(c);
        let (src, dst) = (self.input, self.output);
        let mut panics = Vec::new();
        let mut next = start;
        while next < end {
            let r = crate::panic::catch(|| {
                while next < end {
                    let at = next;
                    // Past this item before the call: if it panics, the item is gone
                    // (moved into `f`) and the chunk resumes after it.
                    next += 1;
                    let from = src.wrapping_add(at);
                    // SAFETY: `at < end <= len`, inside the input's allocation, and it
                    // holds a live item: chunk `c` was `PENDING` until this thread's
                    // exchange above, and this loop reads each index once.
                    let item = unsafe { from.read() };
                    let value = f(item);
                    let to = dst.wrapping_add(at);
                    // SAFETY: `at < len <= output_cap`, inside the result's allocation;
                    // only this thread writes chunk `c`'s slots, each once, and nobody
                    // reads them before `DONE` below. In place, slot `at` is the
                    // item's, which the read above moved out: it holds nothing now.
                    unsafe { to.write(value) };
                }
            });
            if let Err(p) = r {
                let at = next - 1;
                lock(&self.holes).push(at);
                panics.push(((at - start) as u32, p));
            }
        }
        // Release: publishes the values (and holes) to `take` and `Drop`.
        state.store(DONE, Ordering::Release);
        Some(panics)
    }

    /// The result, if every chunk has run and no call panicked; `None` otherwise, and
    /// after the first time.
    pub(crate) fn take(&self) -> Option<Vec<R>> {
        // Acquire: pairs with `run`'s `Release` store of `DONE`, so the values are seen.
        if !self.state.iter().all(|s| s.load(Ordering::Acquire) == DONE) {
            return None;
        }
        if !lock(&self.holes).is_empty() || self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `output` and `output_cap` come from `Vec::<R>::with_capacity` (in
        // `new`), or in place from a `Vec<A>` of the same capacity, with `A` of `R`'s
        // size and alignment (checked in `new`), so the same layout as a `Vec<R>`'s;
        // `len <= output_cap`; every slot `0..len` holds a value (every
        // chunk is `DONE`, loaded with `Acquire` above, and there is no hole) that no
        // thread writes again (only a `PENDING` chunk runs). `taken` hands the
        // allocation out once, and `Drop` leaves it alone after that.
        Some(unsafe { Vec::from_raw_parts(self.output, self.len, self.output_cap) })
    }
}

impl<A, R> Drop for Buffers<A, R> {
    fn drop(&mut self) {
        let taken = *self.taken.get_mut();
        let mut holes = std::mem::take(self.holes.get_mut().unwrap_or_else(|e| e.into_inner()));
        holes.sort_unstable();
        for c in 0..self.state.len() {
            let Range { start, end } = self.range(c);
            match *self.state[c].get_mut() {
                PENDING if std::mem::needs_drop::<A>() => {
                    let items = std::ptr::slice_from_raw_parts_mut(
                        self.input.wrapping_add(start),
                        end - start,
                    );
                    // SAFETY: a `PENDING` chunk's input slots hold live items that
                    // nobody moved out (only `run` reads them, after leaving
                    // `PENDING`); this is the last owner, so they are dropped once.
                    unsafe { std::ptr::drop_in_place(items) };
                }
                DONE if !taken && std::mem::needs_drop::<R>() => {
                    for i in start..end {
                        if holes.binary_search(&i).is_ok() {
                            continue;
                        }
                        let value = self.output.wrapping_add(i);
                        // SAFETY: a `DONE` chunk's result slots hold live values but at
                        // its holes (skipped); the result was not taken, so this last
                        // owner drops each once.
                        unsafe { std::ptr::drop_in_place(value) };
                    }
                }
                // `RUNNING` cannot be seen here (see the module's Safety); such a
                // chunk's slots would be leaked, never dropped twice.
                _ => {}
            }
        }
        if self.in_place {
            if !taken {
                // SAFETY: `input` and `input_cap` come from the `Vec` that `new` took
                // apart, whose allocation `take` did not hand out; its live items and
                // values were dropped above, the rest were moved out by `run`, so a
                // `Vec` of length 0 frees it and drops nothing.
                drop(unsafe { Vec::from_raw_parts(self.input, 0, self.input_cap) });
            }
            return;
        }
        // SAFETY: `input` and `input_cap` come from the `Vec` that `new` took apart;
        // its live items were dropped above or moved out by `run`, so a `Vec` of
        // length 0 frees the allocation and drops nothing.
        drop(unsafe { Vec::from_raw_parts(self.input, 0, self.input_cap) });
        if !taken {
            // SAFETY: as above, for the result's allocation from `new`, which `take`
            // did not hand out; its live values were dropped above.
            drop(unsafe { Vec::from_raw_parts(self.output, 0, self.output_cap) });
        }
    }
}

/// A map's buffers and its function, shared by its jobs.
struct Shared<A, R, F> {
    buffers: Buffers<A, R>,
    f: F,
}

/// A map's chunks, submitted: the buffers, and each chunk's slot and size in order.
struct Submitted<A, R, F> {
    shared: Arc<Shared<A, R, F>>,
    slots: Vec<Chunk<R>>,
}

/// Submits one job per chunk of `chunksize` items that applies `f` in place.
fn submit<A, R, F>(
    engine: &thread::ThreadPool,
    items: Vec<A>,
    chunksize: usize,
    f: F,
) -> Submitted<A, R, F>
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    let shared = Arc::new(Shared {
        buffers: Buffers::new(items, chunksize),
        f,
    });
    let chunks = shared.buffers.chunks();
    let mut slots = Vec::with_capacity(chunks);
    let mut jobs = Vec::with_capacity(chunks);
    for c in 0..chunks {
        let slot = Slot::new(values_only::<ChunkOut<R>>, None, None);
        let s = Arc::clone(&slot);
        let sh = Arc::clone(&shared);
        jobs.push(Job {
            run: Box::new(move || {
                let out = match sh.buffers.run(c, &sh.f) {
                    Some(panics) => Ok(ChunkOut {
                        values: Vec::new(),
                        panics,
                    }),
                    None => Err(Error::new(ErrorKind::InvalidInput)
                        .with_message("a chunk of the map was run twice")),
                };
                // Let go of the buffers before the caller can see the chunk done, so
                // that the caller frees them (unless a chunk timed out, whose thread
                // may be the last owner); a panicking drop of an item is ignored.
                let _ = crate::panic::catch(move || drop(sh));
                s.deliver(out);
            }),
            sink: Arc::clone(&slot) as Arc<dyn Completion>,
        });
        slots.push((slot, shared.buffers.range(c).len()));
    }
    engine.submit_all(jobs);
    Submitted { shared, slots }
}

impl<A, R: Send + 'static, F> Submitted<A, R, F> {
    /// Waits for every chunk in order and returns the values, or the first failed
    /// item's error in input order (after every chunk has finished); `on_chunk` is
    /// told each chunk's size as it is taken.
    fn gather(self, mut on_chunk: impl FnMut(usize)) -> Result<Vec<R>> {
        let mut first_err: Option<Error> = None;
        for (slot, n) in self.slots {
            let r = slot.join();
            on_chunk(n);
            if first_err.is_some() {
                continue;
            }
            match r {
                Ok(out) => {
                    if let Some((_, p)) = out.panics.into_iter().next() {
                        first_err = Some(Error::from_panic(p));
                    }
                }
                Err(e) => first_err = Some(e),
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        self.shared.buffers.take().ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput).with_message("the map's results are incomplete")
        })
    }
}

/// Applies `f` to every item on `engine`'s threads in chunks of `chunksize` items,
/// in place, and returns the values in input order, or the first failed item's error
/// in input order (after every chunk has finished); `bar` is told each chunk's size
/// as its result is taken, in order.
pub(crate) fn map<A, R, F>(
    engine: &thread::ThreadPool,
    items: Vec<A>,
    chunksize: usize,
    f: F,
    bar: &Progress,
) -> Result<Vec<R>>
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    submit(engine, items, chunksize, f).gather(|n| bar.inc(n))
}

/// [`map`] without waiting: `list` completes with what `map` returns, on the thread
/// that completes the last chunk.
pub(crate) fn map_async<A, R, F>(
    engine: &thread::ThreadPool,
    items: Vec<A>,
    chunksize: usize,
    f: F,
    list: Arc<Slot<Vec<R>>>,
) -> MapHandle<R>
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    let submitted = submit(engine, items, chunksize, f);
    let parts: Vec<_> = submitted.slots.iter().map(|(s, _)| Arc::clone(s)).collect();
    MapHandle::when_all(list, &parts, move || submitted.gather(|_| {}))
}

#[cfg(test)]
mod tests;
