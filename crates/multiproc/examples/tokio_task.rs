//! Awaiting pool tasks in tokio: a `TaskHandle` (and a `MapHandle`) is a `Future`, so
//! an async program hands CPU-bound work to a process pool and awaits it without
//! blocking its runtime; other tasks keep running meanwhile.
//!
//! ```sh
//! cargo run --release -p multiproc --example tokio_task
//! ```
//!
//! (With the crate's `tokio` feature, `Process::join_async`, `Connection::recv_async` and
//! `Queue::get_async` do the same for processes, pipes and queues.)

use std::time::Duration;

use multiproc::Pool;

/// CPU-bound work for the pool's worker processes.
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

fn main() -> multiproc::Result<()> {
    let pool = Pool::processes(2)?;
    // One thread: the ticker task runs on it while the pool computes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ticker = tokio::spawn(async {
            let mut ticks = 0u32;
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                ticks += 1;
                if ticks == 3 {
                    return ticks;
                }
            }
        });
        let a = pool.submit(collatz_steps, 27);
        let b = pool.submit(collatz_steps, 97);
        let (a, b) = tokio::join!(a, b);
        let (a, b) = (a?, b?);
        println!("collatz steps: 27 -> {a}, 97 -> {b}");
        assert_eq!((a, b), (111, 118));
        let map = pool.map_async(collatz_steps, 1..=10u64);
        let all = map.await?;
        println!("1..=10 -> {all:?}");
        assert_eq!(ticker.await.expect("ticker"), 3);
        Ok(())
    })
}
