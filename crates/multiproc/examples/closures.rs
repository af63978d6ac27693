//! Closures and borrowed data: a `ThreadPool` runs closures that capture shared state
//! (`Pool` would need `fn` items and serde data), and `multiproc::scope` lends local
//! data to threads and to Fork children without copying it up front.
//!
//! Run: `cargo run --release --example closures`
//!
//! Python:
//! ```python
//! index = {w: i for i, w in enumerate(words)}
//! with ThreadPool(4) as pool:
//!     print(pool.map(lambda w: index[w], query))
//! # and a forked child that reads the parent's data in place
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use multiproc::pool::ThreadPool;

fn main() -> multiproc::Result<()> {
    let words: Vec<String> = (0..10_000).map(|i| format!("w{i}")).collect();

    // 1. A thread pool over closures: the closure captures an `Arc` of a map with no
    //    reason to be serialized, and a `Mutex` that every task updates.
    let index: Arc<HashMap<String, usize>> = Arc::new(
        words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect(),
    );
    let misses = Arc::new(Mutex::new(Vec::new()));
    let pool = ThreadPool::new(4)?;
    let (idx, m) = (Arc::clone(&index), Arc::clone(&misses));
    let query = vec!["w7".to_string(), "w9999".into(), "nope".into()];
    let found = pool.map(
        move |w: String| {
            let hit = idx.get(&w).copied();
            if hit.is_none() {
                m.lock().unwrap().push(w);
            }
            hit
        },
        query,
    )?;
    println!(
        "thread pool: {found:?}, misses {:?}",
        misses.lock().unwrap()
    );
    pool.join();

    // 2. A scope: a thread and a Fork child borrow `words` where it is. The child sees a
    //    copy-on-write snapshot; its answer comes back serialized.
    let (longest, total) = multiproc::scope(|s| -> multiproc::Result<(usize, usize)> {
        let t = s.spawn(|| words.iter().map(String::len).max().unwrap_or(0))?;
        let c = s.fork(|| words.iter().map(String::len).sum::<usize>())?;
        Ok((t.join()?, c.join()?))
    })??;
    println!("scope: longest word {longest} bytes, {total} bytes in all");
    Ok(())
}
