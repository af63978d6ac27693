//! `Condition` across processes: consumers sleep until a producer process says that
//! the shared value they wait for is there (Python's `multiprocessing.Condition`).
//!
//! ```sh
//! cargo run --release -p multiproc --example condition
//! ```

use multiproc::{Condition, Process, Value};

/// Waits until the value reaches `want`, then returns what it saw.
fn consumer((cond, value, want): (Condition, Value<u32>, u32)) -> u32 {
    let guard = cond.lock().expect("lock");
    let _guard = cond.wait_for(guard, || value.get() >= want).expect("wait");
    value.get()
}

fn producer((cond, value): (Condition, Value<u32>)) {
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _guard = cond.lock().expect("lock");
        value.set(value.get() + 1);
        cond.notify_all();
    }
}

fn main() -> multiproc::Result<()> {
    let cond = Condition::new()?;
    let value = Value::new(0u32)?;
    let consumers = (1..=3)
        .map(|want| Process::start_with(consumer, (cond.clone(), value.clone(), want)))
        .collect::<multiproc::Result<Vec<_>>>()?;
    let p = Process::start_with(producer, (cond, value.clone()))?;
    for (want, c) in (1..=3).zip(consumers) {
        let seen = c.join()?;
        assert!(seen >= want);
        println!("consumer waiting for {want} woke up and saw {seen}");
    }
    p.join()?;
    assert_eq!(value.get(), 3);
    Ok(())
}
