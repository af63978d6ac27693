//! Worker processes fed by a `Queue`: the parent puts tasks on one queue, three
//! processes take them as they become free and put their results on another. Closing
//! the task queue tells the workers there is no more work once it is empty.
//!
//! Run: `cargo run --release -p multiproc --example queue_workers`
//!
//! Python:
//! ```python
//! def worker(tasks, results):
//!     for lo, hi in iter(tasks.get, None):
//!         results.put(longest_collatz((lo, hi)))
//! ```

use multiproc::{Process, Queue};

/// A task: the numbers `lo..hi`.
type Range = (u64, u64);
/// A result: a start and the length of its chain.
type Longest = (u64, u32);

/// The start in `lo..hi` with the longest Collatz chain, and the chain's length.
fn longest_collatz((lo, hi): Range) -> Longest {
    let steps = |mut n: u64| {
        let mut s = 0;
        while n != 1 {
            n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
            s += 1;
        }
        s
    };
    (lo..hi)
        .map(|n| (n, steps(n)))
        .max_by_key(|&(_, s)| s)
        .unwrap_or((lo, 0))
}

/// Runs in each worker: takes ranges until the queue is closed and drained, returns
/// how many it did.
fn worker((tasks, results): (Queue<Range>, Queue<Longest>)) -> usize {
    let mut done = 0;
    while let Ok(range) = tasks.get() {
        results
            .put(longest_collatz(range))
            .expect("results queue open");
        done += 1;
    }
    done
}

fn main() -> multiproc::Result<()> {
    let tasks = Queue::new()?;
    let results = Queue::new()?;
    let workers = (0..3)
        .map(|_| Process::start_with(worker, (tasks.clone(), results.clone())))
        .collect::<multiproc::Result<Vec<Process<usize>>>>()?;

    const CHUNKS: u64 = 100;
    for i in 0..CHUNKS {
        tasks.put((1 + i * 10_000, 1 + (i + 1) * 10_000))?;
    }
    tasks.close(); // no more tasks: workers stop once the queue is empty

    let mut best = (1, 0);
    for _ in 0..CHUNKS {
        let r = results.get()?;
        if r.1 > best.1 {
            best = r;
        }
    }
    for w in workers {
        let pid = w.pid();
        println!("worker {pid} did {} of the {CHUNKS} ranges", w.join()?);
    }
    println!(
        "longest Collatz chain below 1,000,001 starts at {} ({} steps)",
        best.0, best.1
    );
    assert_eq!(best, (837_799, 524));
    Ok(())
}
