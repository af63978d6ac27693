//! `RLock` across processes: a re-entrant lock that the holder may take again (a
//! recursive function here), while other processes wait for the outermost release
//! (Python's `multiprocessing.RLock`).
//!
//! ```sh
//! cargo run --release -p multiproc --example rlock
//! ```

use multiproc::{Process, RLock, Value};

/// Adds `depth` to the total, taking the lock once per level of recursion.
fn add(lock: &RLock, total: &Value<u64>, depth: u32) {
    let _g = lock.lock().expect("lock");
    assert_eq!(lock.count(), 4 - depth, "held once per level");
    let before = total.get();
    if depth > 1 {
        add(lock, total, depth - 1);
    }
    total.set(total.get() + 1);
    assert_eq!(total.get(), before + u64::from(depth), "nobody else got in");
}

fn worker((lock, total): (RLock, Value<u64>)) {
    for _ in 0..200 {
        add(&lock, &total, 3);
    }
}

fn main() -> multiproc::Result<()> {
    let lock = RLock::new()?;
    let total = Value::new(0u64)?;
    let kids = (0..3)
        .map(|_| Process::start_with(worker, (lock.clone(), total.clone())))
        .collect::<multiproc::Result<Vec<_>>>()?;
    for k in kids {
        k.join()?;
    }
    assert_eq!(total.get(), 3 * 200 * 3);
    assert!(!lock.is_locked());
    println!(
        "3 processes x 200 recursive sections of depth 3: total {}",
        total.get()
    );
    Ok(())
}
