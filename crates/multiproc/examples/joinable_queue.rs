//! `JoinableQueue`: worker processes mark each item done with `task_done`, and the
//! producer's `join` returns once every item put has been processed (Python's
//! `multiprocessing.JoinableQueue`).
//!
//! ```sh
//! cargo run --release -p multiproc --example joinable_queue
//! ```

use std::time::Duration;

use multiproc::{JoinableQueue, Process, Value};

fn worker((jobs, sum): (JoinableQueue<u64>, Value<u64>)) {
    while let Ok(n) = jobs.get() {
        sum.fetch_add(n * n);
        jobs.task_done().expect("one task_done per get");
    }
}

fn main() -> multiproc::Result<()> {
    let jobs = JoinableQueue::<u64>::new()?;
    let sum = Value::new(0u64)?;
    let workers = (0..3)
        .map(|_| Process::start_with(worker, (jobs.clone(), sum.clone())))
        .collect::<multiproc::Result<Vec<_>>>()?;
    for n in 1..=100 {
        jobs.put(n).expect("put");
    }
    assert!(
        jobs.join_timeout(Duration::from_secs(30)),
        "every item processed"
    );
    assert_eq!(jobs.unfinished(), 0);
    println!(
        "100 items processed by 3 workers: sum of squares {}",
        sum.get()
    );
    assert_eq!(sum.get(), (1..=100u64).map(|n| n * n).sum());
    jobs.close(); // the workers' get now ends
    for w in workers {
        w.join()?;
    }
    Ok(())
}
