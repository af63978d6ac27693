//! `Barrier` across processes: three processes do a first phase, wait for each other,
//! then all start the second phase together (Python's `multiprocessing.Barrier`).
//!
//! ```sh
//! cargo run --release -p multiproc --example barrier
//! ```

use std::time::{Duration, Instant};

use multiproc::{Barrier, Process};

/// Sleeps `ms` (the first phase), waits at the barrier; returns its arrival index.
fn party((barrier, ms): (Barrier, u64)) -> usize {
    std::thread::sleep(Duration::from_millis(ms));
    barrier
        .wait_timeout(Duration::from_secs(30))
        .expect("barrier")
}

fn main() -> multiproc::Result<()> {
    let barrier = Barrier::new(3)?;
    let start = Instant::now();
    let parties = [10u64, 60, 120]
        .into_iter()
        .map(|ms| Process::start_with(party, (barrier.clone(), ms)))
        .collect::<multiproc::Result<Vec<_>>>()?;
    let mut arrivals = Vec::new();
    for p in parties {
        arrivals.push(p.join()?);
    }
    arrivals.sort_unstable();
    // Every party got a distinct index (0 for the last one to arrive, as in Python).
    assert_eq!(arrivals, [0, 1, 2]);
    println!(
        "3 processes passed the barrier together, after the slowest one ({:?})",
        start.elapsed()
    );
    Ok(())
}
