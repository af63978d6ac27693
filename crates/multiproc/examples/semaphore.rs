//! `Semaphore` across processes: at most two of six worker processes are in the
//! guarded section at any time (Python's `multiprocessing.Semaphore`), counted in
//! shared memory; the RAII guard gives its unit back when it goes out of scope.
//!
//! ```sh
//! cargo run --release -p multiproc --example semaphore
//! ```

use std::time::Duration;

use multiproc::{Process, Semaphore, Value};

/// Enters the section under the semaphore; returns how many were inside with it.
fn worker((sem, inside): (Semaphore, Value<u32>)) -> u32 {
    let _unit = sem.guard();
    let now = inside.fetch_add(1) + 1;
    std::thread::sleep(Duration::from_millis(20));
    inside.fetch_sub(1);
    now
}

fn main() -> multiproc::Result<()> {
    let sem = Semaphore::new(2)?;
    let inside = Value::new(0u32)?;
    let workers = (0..6)
        .map(|_| Process::start_with(worker, (sem.clone(), inside.clone())))
        .collect::<multiproc::Result<Vec<_>>>()?;
    let mut most = 0;
    for w in workers {
        most = most.max(w.join()?);
    }
    assert!(most <= 2, "{most} inside at once");
    assert_eq!(sem.value(), 2, "every unit came back");
    println!("6 processes, at most {most} inside the section at once");
    Ok(())
}
