//! A process is SIGKILLed while it holds a `Lock` in the middle of an update; the
//! parent's next `lock()` returns `OwnerDied` with the guard, repairs the data and
//! goes on. (Python's `multiprocessing.Lock` would hang forever here.)
//!
//! ```sh
//! cargo run --release -p multiproc --example crash_recovery
//! ```

use std::time::Duration;

use multiproc::{Array, Event, Lock, Process};

/// Two balances that must always sum to 100.
fn transfer_forever(args: (Lock, Array<i64>, Event)) {
    let (lock, accounts, holding) = args;
    let guard = lock.lock().unwrap_or_else(|died| died.into_inner());
    accounts.set(0, accounts.get(0).unwrap() - 10); // debit ...
    holding.set();
    std::thread::sleep(Duration::from_secs(60)); // ... killed before the credit
    accounts.set(1, accounts.get(1).unwrap() + 10);
    drop(guard);
}

fn main() -> multiproc::Result<()> {
    let lock = Lock::new()?;
    let accounts = Array::from_slice(&[50i64, 50])?;
    let holding = Event::new()?;
    let child = Process::start_with(
        transfer_forever,
        (lock.clone(), accounts.clone(), holding.clone()),
    )?;
    holding.wait();
    child.kill()?;
    println!("killed pid {} while it held the lock", child.pid());

    let t = std::time::Instant::now();
    let guard = match lock.lock() {
        Ok(guard) => guard,
        Err(died) => {
            let v = accounts.to_vec();
            println!(
                "OwnerDied after {:?}: balances {v:?} (sum {})",
                t.elapsed(),
                v[0] + v[1]
            );
            accounts.set(0, 100 - v[1]); // roll back the half-done transfer
            died.into_inner()
        }
    };
    let v = accounts.to_vec();
    assert_eq!(v[0] + v[1], 100);
    println!("repaired: {v:?}");
    drop(guard);
    Ok(())
}
