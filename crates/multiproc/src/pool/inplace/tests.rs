//! Every item and every value is dropped exactly once, on every path through
//! [`Buffers`], with the result in the input's buffer (`Counted -> Counted`) and in its
//! own (`Counted -> Wide`): what Miri would check of the module's unsafe code, with
//! counters.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::Buffers;

/// A value that counts its drops in a shared counter.
struct Counted {
    n: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn counted(len: u64, drops: &Arc<AtomicUsize>) -> Vec<Counted> {
    (0..len)
        .map(|n| Counted {
            n,
            drops: Arc::clone(drops),
        })
        .collect()
}

/// A value that counts its drops: `Counted` (written over its item) or `Wide` (a
/// size of its own, so in a buffer of its own).
trait Value: Sized {
    fn new(n: u64, drops: &Arc<AtomicUsize>) -> Self;
    fn n(&self) -> u64;
    /// `Buffers<Counted, Self>` writes the result over the input.
    const IN_PLACE: bool;
}

impl Value for Counted {
    fn new(n: u64, drops: &Arc<AtomicUsize>) -> Self {
        Counted {
            n,
            drops: Arc::clone(drops),
        }
    }
    fn n(&self) -> u64 {
        self.n
    }
    const IN_PLACE: bool = true;
}

struct Wide {
    c: Counted,
    _pad: u64,
}

impl Value for Wide {
    fn new(n: u64, drops: &Arc<AtomicUsize>) -> Self {
        Wide {
            c: Counted::new(n, drops),
            _pad: 0,
        }
    }
    fn n(&self) -> u64 {
        self.c.n
    }
    const IN_PLACE: bool = false;
}

/// Doubles `x`; the value counts its drops in `out`.
fn double<R: Value>(out: &Arc<AtomicUsize>) -> impl Fn(Counted) -> R + '_ {
    move |x| R::new(x.n * 2, out)
}

#[test]
fn values_of_the_item_s_size_and_alignment_go_in_place() {
    assert!(Buffers::<Counted, Counted>::new(Vec::new(), 1).in_place);
    assert!(!Buffers::<Counted, Wide>::new(Vec::new(), 1).in_place);
    assert!(Buffers::<u64, i64>::new(Vec::new(), 1).in_place);
    assert!(!Buffers::<u64, u32>::new(Vec::new(), 1).in_place);
    // The same size, another alignment: the allocation's layout would differ.
    assert!(!Buffers::<u64, [u32; 2]>::new(Vec::new(), 1).in_place);
    assert!(Buffers::<(), ()>::new(Vec::new(), 1).in_place);
}

/// In place, the result is the input's allocation, spare capacity and all: the map
/// allocates nothing, and touches no page the input did not.
#[test]
fn a_result_of_the_item_s_layout_is_the_input_s_buffer() {
    let mut items: Vec<u64> = Vec::with_capacity(100);
    items.extend(0..64);
    let at = items.as_ptr() as usize;
    let b: Buffers<u64, i64> = Buffers::new(items, 10);
    for c in 0..b.chunks() {
        assert!(b.run(c, &|x| -(x as i64)).unwrap().is_empty());
    }
    let v = b.take().unwrap();
    drop(b);
    assert_eq!((v.as_ptr() as usize, v.capacity()), (at, 100));
    assert_eq!(v, (0..64).map(|x| -x).collect::<Vec<i64>>());
    // Another size: a buffer of its own, of the input's length.
    let items: Vec<u64> = (0..64).collect();
    let at = items.as_ptr() as usize;
    let b: Buffers<u64, u32> = Buffers::new(items, 10);
    for c in 0..b.chunks() {
        b.run(c, &|x| x as u32 + 1);
    }
    let v = b.take().unwrap();
    drop(b);
    assert_ne!(v.as_ptr() as usize, at);
    assert_eq!(v, (1..65).collect::<Vec<u32>>());
}

const LENS: [u64; 6] = [0, 1, 2, 7, 64, 100];
const CHUNKS: [usize; 5] = [1, 3, 7, 64, usize::MAX];

#[test]
fn every_chunk_run_gives_every_value_in_order_and_drops_each_once() {
    every_chunk_run::<Counted>();
    every_chunk_run::<Wide>();
}

fn every_chunk_run<R: Value>() {
    for len in LENS {
        for cs in CHUNKS {
            let (ins, outs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let b = Buffers::new(counted(len, &ins), cs);
            assert_eq!(b.in_place, R::IN_PLACE);
            // Out of order, as workers may take them.
            for c in (0..b.chunks()).rev() {
                assert!(b.run(c, &double::<R>(&outs)).unwrap().is_empty());
            }
            let v = b.take().expect("every chunk ran");
            assert!(b.take().is_none(), "taken twice");
            drop(b);
            assert_eq!(
                ins.load(Ordering::SeqCst),
                len as usize,
                "len {len}, cs {cs}"
            );
            assert_eq!(
                outs.load(Ordering::SeqCst),
                0,
                "a value dropped before the take"
            );
            let got: Vec<u64> = v.iter().map(R::n).collect();
            assert_eq!(got, (0..len).map(|n| n * 2).collect::<Vec<_>>());
            drop(v);
            assert_eq!(
                outs.load(Ordering::SeqCst),
                len as usize,
                "len {len}, cs {cs}"
            );
        }
    }
}

#[test]
fn a_chunk_runs_once_and_only_chunks_that_exist_run() {
    a_chunk_runs_once::<Counted>();
    a_chunk_runs_once::<Wide>();
}

fn a_chunk_runs_once<R: Value>() {
    let outs = Arc::new(AtomicUsize::new(0));
    let ins = Arc::new(AtomicUsize::new(0));
    let b = Buffers::new(counted(10, &ins), 4);
    assert_eq!(b.chunks(), 3);
    assert_eq!([b.range(0), b.range(1), b.range(2)], [0..4, 4..8, 8..10]);
    assert!(b.run(1, &double::<R>(&outs)).is_some());
    assert!(b.run(1, &double::<R>(&outs)).is_none(), "a chunk ran twice");
    assert!(
        b.run(3, &double::<R>(&outs)).is_none(),
        "a chunk past the end ran"
    );
    assert!(b.take().is_none(), "taken before every chunk ran");
    drop(b);
    // Chunk 1's items went into `double`; chunks 0 and 2 never ran: their items are
    // dropped by the buffers, and chunk 1's values too.
    assert_eq!(ins.load(Ordering::SeqCst), 10);
    assert_eq!(outs.load(Ordering::SeqCst), 4);
}

#[test]
fn a_panic_is_that_item_s_hole_and_the_chunk_goes_on() {
    let every_third: Vec<u64> = (0..20).filter(|i| i % 3 == 1).collect();
    for bad in [&every_third[..], &[0, 10, 19], &[0], &[19], &[10]] {
        panics_at::<Counted>(20, bad);
        panics_at::<Wide>(20, bad);
    }
    panics_at::<Counted>(1, &[0]);
    panics_at::<Wide>(1, &[0]);
}

/// Maps `len` items whose calls panic at the indices `bad`, with each chunk size; then
/// drops the buffers with the result not taken.
fn panics_at<R: Value>(len: u64, bad: &[u64]) {
    for cs in CHUNKS {
        let (ins, outs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let b = Buffers::new(counted(len, &ins), cs);
        assert_eq!(b.in_place, R::IN_PLACE);
        let calls = AtomicUsize::new(0);
        let f = |x: Counted| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert!(!bad.contains(&x.n), "item {} refused", x.n);
            double::<R>(&outs)(x)
        };
        let mut panicked = Vec::new();
        for c in 0..b.chunks() {
            let start = b.range(c).start;
            for (at, p) in b.run(c, &f).unwrap() {
                assert!(p.to_string().contains("refused"), "{p}");
                panicked.push((start + at as usize) as u64);
            }
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            len as usize,
            "every item is called"
        );
        assert_eq!(panicked, bad, "chunk size {cs}");
        assert!(b.take().is_none(), "a result with holes was taken");
        // The items are gone (into `f`), the values are the buffers' to drop.
        assert_eq!(ins.load(Ordering::SeqCst), len as usize, "chunk size {cs}");
        assert_eq!(outs.load(Ordering::SeqCst), 0, "chunk size {cs}");
        drop(b);
        assert_eq!(ins.load(Ordering::SeqCst), len as usize, "chunk size {cs}");
        assert_eq!(
            outs.load(Ordering::SeqCst),
            len as usize - bad.len(),
            "chunk size {cs}"
        );
    }
}

/// Some chunks run (one of them with a panic), others never: each item and each value
/// is dropped once, by `f` or by the buffers.
#[test]
fn chunks_run_panicked_and_never_run_together() {
    for cs in [1, 3, 4] {
        let (ins, outs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let b = Buffers::new(counted(12, &ins), cs);
        let f = |x: Counted| {
            assert!(x.n != 5, "item 5 refused");
            double::<Counted>(&outs)(x)
        };
        // Chunks holding items 0..=5 run; the others stay `PENDING`.
        let ran: Vec<usize> = (0..b.chunks()).filter(|&c| b.range(c).start <= 5).collect();
        let past = b.range(*ran.last().unwrap()).end;
        for &c in &ran {
            b.run(c, &f).unwrap();
        }
        assert_eq!(ins.load(Ordering::SeqCst), past, "chunk size {cs}");
        drop(b);
        assert_eq!(ins.load(Ordering::SeqCst), 12, "chunk size {cs}");
        assert_eq!(outs.load(Ordering::SeqCst), past - 1, "chunk size {cs}");
    }
}

#[test]
fn zero_sized_items_and_values() {
    let b: Buffers<(), ()> = Buffers::new(vec![(); 1000], 7);
    assert!(b.in_place);
    for c in 0..b.chunks() {
        assert!(b.run(c, &|()| ()).unwrap().is_empty());
    }
    assert_eq!(b.take().unwrap().len(), 1000);
    let b: Buffers<(), u8> = Buffers::new(vec![(); 10], 3);
    assert!(!b.in_place);
    assert!(b.run(2, &|()| 1).is_some());
    drop(b);
}

thread_local! {
    /// Drops of `ZIn` and `ZOut` on this thread (the buffers' tests run on one).
    static Z_DROPS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// A zero-sized item that counts its drops.
struct ZIn;

impl Drop for ZIn {
    fn drop(&mut self) {
        Z_DROPS.set((Z_DROPS.get().0 + 1, Z_DROPS.get().1));
    }
}

/// A zero-sized value that counts its drops.
struct ZOut;

impl Drop for ZOut {
    fn drop(&mut self) {
        Z_DROPS.set((Z_DROPS.get().0, Z_DROPS.get().1 + 1));
    }
}

/// Zero-sized items and values with `Drop`, in place: a run with a panic and chunks
/// never run, then a run taken whole.
#[test]
fn zero_sized_items_and_values_with_drop() {
    Z_DROPS.set((0, 0));
    let b: Buffers<ZIn, ZOut> = Buffers::new((0..10).map(|_| ZIn).collect(), 3);
    assert!(b.in_place);
    let calls = AtomicUsize::new(0);
    let f = |z: ZIn| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        assert!(n != 4, "call 4 refused");
        drop(z);
        ZOut
    };
    // Chunks 0..3 and 3..6 run (call 4, item 4, panics); 6..9 and 9..10 never run.
    assert!(b.run(0, &f).unwrap().is_empty());
    assert_eq!(b.run(1, &f).unwrap()[0].0, 1);
    assert_eq!(Z_DROPS.get(), (6, 0));
    drop(b);
    assert_eq!(Z_DROPS.get(), (10, 5));

    Z_DROPS.set((0, 0));
    let b: Buffers<ZIn, ZOut> = Buffers::new((0..10).map(|_| ZIn).collect(), 3);
    for c in 0..b.chunks() {
        assert!(b.run(c, &|_| ZOut).unwrap().is_empty());
    }
    let v = b.take().unwrap();
    drop(b);
    assert_eq!((v.len(), Z_DROPS.get()), (10, (10, 0)));
    drop(v);
    assert_eq!(Z_DROPS.get(), (10, 10));
}

/// The result's buffer is sized for the items even when the input's has spare
/// capacity, and an input with spare capacity is freed whole.
#[test]
fn spare_capacity_of_the_input() {
    let ins = Arc::new(AtomicUsize::new(0));
    let outs = Arc::new(AtomicUsize::new(0));
    let mut items = Vec::with_capacity(100);
    items.extend(counted(5, &ins));
    let b = Buffers::new(items, 2);
    for c in 0..b.chunks() {
        b.run(c, &double::<Wide>(&outs));
    }
    let v = b.take().unwrap();
    assert_eq!((v.len(), v.capacity()), (5, 5));
    drop(b);
    drop(v);
    assert_eq!(
        (ins.load(Ordering::SeqCst), outs.load(Ordering::SeqCst)),
        (5, 5)
    );
}

/// A result too large to allocate panics before the items are taken apart, so they
/// are dropped, not leaked.
#[test]
fn a_result_that_cannot_be_allocated_drops_the_items() {
    let ins = Arc::new(AtomicUsize::new(0));
    let items = counted(10, &ins);
    // 10 values of 2^60 bytes overflow `isize`: `Vec::with_capacity` panics.
    let r = std::panic::catch_unwind(|| Buffers::<Counted, [u8; 1 << 60]>::new(items, 3));
    assert!(r.is_err());
    assert_eq!(ins.load(Ordering::SeqCst), 10);
}
