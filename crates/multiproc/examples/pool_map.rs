//! A pool maps a function over many inputs with threads or with processes, and keeps
//! going when a task crashes its worker.
//!
//! Run: `cargo run --release --example pool_map`
//!
//! Python:
//! ```python
//! with multiprocessing.Pool(4) as pool:
//!     print(sum(pool.map(count_primes, chunks)))
//! ```
//! (and in Python, a worker killed mid-task hangs `pool.map` forever.)

use std::time::{Duration, Instant};

use multiproc::pool::{self, Backend, Pool};
use multiproc::ErrorKind;

/// Counts the primes in `lo..hi` by trial division: CPU-bound work.
fn count_primes((lo, hi): (u64, u64)) -> u64 {
    (lo.max(2)..hi)
        .filter(|&x| (2..).take_while(|d| d * d <= x).all(|d| x % d != 0))
        .count() as u64
}

/// A task that sometimes crashes its whole worker process.
fn fragile(x: u32) -> u32 {
    if x == 13 {
        multiproc::fault::segfault();
    }
    x * 2
}

fn main() -> multiproc::Result<()> {
    let chunks: Vec<(u64, u64)> = (0..40).map(|i| (i * 25_000, (i + 1) * 25_000)).collect();

    // Sequential, then the same map on threads and on processes: one word differs.
    let t = Instant::now();
    let want: u64 = chunks.iter().copied().map(count_primes).sum();
    let sequential = t.elapsed();
    println!("{want} primes below 1,000,000; sequential {sequential:.2?}");
    for backend in [Backend::Threads, Backend::Processes] {
        let pool = Pool::builder().backend(backend).build()?;
        let t = Instant::now();
        let got: u64 = pool.map(count_primes, chunks.clone())?.iter().sum();
        let took = t.elapsed();
        assert_eq!(got, want);
        println!(
            "{backend:?} with {} workers (cpu_count): {took:.2?}, speedup {:.2}x",
            pool.workers(),
            sequential.as_secs_f64() / took.as_secs_f64()
        );
        pool.join();
    }

    // A task that segfaults costs only itself: the worker is replaced.
    let pool = Pool::builder()
        .workers(2)
        .task_timeout(Duration::from_secs(5))
        .build()?;
    let results = pool.map_results(fragile, 10..16);
    for (x, r) in (10..16).zip(&results) {
        match r {
            Ok(v) => println!("fragile({x}) = {v}"),
            Err(e) if e.kind() == ErrorKind::WorkerDied => println!("fragile({x}) failed: {e}"),
            Err(e) => panic!("unexpected failure of fragile({x}): {e}"),
        }
    }

    // The executor interface: submit, then take results as they complete.
    let handles: Vec<_> = chunks[..4]
        .iter()
        .map(|&c| pool.submit(count_primes, c))
        .collect();
    for (i, r) in pool::as_completed(handles) {
        println!("chunk {i}: {} primes", r?);
    }
    pool.join();
    Ok(())
}
