//! A counter in shared memory, incremented by several processes under a `Lock`,
//! and the same with an atomic `fetch_add` (no lock needed).
//!
//! ```sh
//! cargo run --release -p multiproc --example shared_counter
//! ```

use multiproc::{Process, Value};

const N: u64 = 100_000;

fn add_locked(v: Value<u64>) {
    for _ in 0..N {
        let _g = v.get_lock().expect("created with a lock").lock().unwrap();
        v.set(v.get() + 1);
    }
}

fn add_atomic(v: Value<u64>) {
    for _ in 0..N {
        v.fetch_add(1);
    }
}

/// Runs `f` in 4 processes sharing one counter.
fn run<F: FnOnce(Value<u64>) + Copy + 'static>(name: &str, f: F) -> multiproc::Result<()> {
    let v = Value::with_lock(0u64)?;
    let t = std::time::Instant::now();
    let kids = (0..4)
        .map(|_| Process::start_with(f, v.clone()))
        .collect::<multiproc::Result<Vec<Process<()>>>>()?;
    for k in kids {
        k.join()?;
    }
    assert_eq!(v.get(), 4 * N);
    println!(
        "4 processes x {N} increments {name}: {} in {:?}",
        v.get(),
        t.elapsed()
    );
    Ok(())
}

fn main() -> multiproc::Result<()> {
    run("under the lock", add_locked)?;
    run("with fetch_add", add_atomic)
}
