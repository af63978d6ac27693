//! Every item and every value is dropped exactly once, on every path through
//! [`Buffers`]: what Miri would check of the module's unsafe code, with counters.

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

/// Doubles `x`; the value counts its drops in `out`.
fn double(out: &Arc<AtomicUsize>) -> impl Fn(Counted) -> Counted + '_ {
    move |x| Counted {
        n: x.n * 2,
        drops: Arc::clone(out),
    }
}

const LENS: [u64; 6] = [0, 1, 2, 7, 64, 100];
const CHUNKS: [usize; 5] = [1, 3, 7, 64, usize::MAX];

#[test]
fn every_chunk_run_gives_every_value_in_order_and_drops_each_once() {
    for len in LENS {
        for cs in CHUNKS {
            let (ins, outs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let b = Buffers::new(counted(len, &ins), cs);
            // Out of order, as workers may take them.
            for c in (0..b.chunks()).rev() {
                assert!(b.run(c, &double(&outs)).unwrap().is_empty());
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
            let got: Vec<u64> = v.iter().map(|x| x.n).collect();
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
    let outs = Arc::new(AtomicUsize::new(0));
    let ins = Arc::new(AtomicUsize::new(0));
    let b = Buffers::new(counted(10, &ins), 4);
    assert_eq!(b.chunks(), 3);
    assert_eq!([b.range(0), b.range(1), b.range(2)], [0..4, 4..8, 8..10]);
    assert!(b.run(1, &double(&outs)).is_some());
    assert!(b.run(1, &double(&outs)).is_none(), "a chunk ran twice");
    assert!(
        b.run(3, &double(&outs)).is_none(),
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
    for cs in CHUNKS {
        let (ins, outs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let b = Buffers::new(counted(20, &ins), cs);
        let calls = AtomicUsize::new(0);
        let f = |x: Counted| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert!(x.n % 3 != 1, "item {} refused", x.n);
            double(&outs)(x)
        };
        let mut panicked = Vec::new();
        for c in 0..b.chunks() {
            let start = b.range(c).start;
            for (at, p) in b.run(c, &f).unwrap() {
                assert!(p.to_string().contains("refused"), "{p}");
                panicked.push(start + at as usize);
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 20, "every item is called");
        let want: Vec<usize> = (0..20).filter(|i| i % 3 == 1).collect();
        assert_eq!(panicked, want, "chunk size {cs}");
        assert!(b.take().is_none(), "a result with holes was taken");
        drop(b);
        assert_eq!(ins.load(Ordering::SeqCst), 20, "chunk size {cs}");
        assert_eq!(
            outs.load(Ordering::SeqCst),
            20 - want.len(),
            "chunk size {cs}"
        );
    }
}

#[test]
fn zero_sized_items_and_values() {
    let b: Buffers<(), ()> = Buffers::new(vec![(); 1000], 7);
    for c in 0..b.chunks() {
        assert!(b.run(c, &|()| ()).unwrap().is_empty());
    }
    assert_eq!(b.take().unwrap().len(), 1000);
    let b: Buffers<(), u8> = Buffers::new(vec![(); 10], 3);
    assert!(b.run(2, &|()| 1).is_some());
    drop(b);
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
        b.run(c, &double(&outs));
    }
    let v = b.take().unwrap();
    assert_eq!(v.len(), 5);
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
