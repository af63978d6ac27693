//! A `Manager`: a server process holding a dict, a queue and a lock that worker
//! processes share through proxies, and a second client that connects to it by
//! address and key over TCP, as an unrelated program would.
//!
//! Run with `cargo run -p multiproc --example manager`.

use std::time::Duration;

use multiproc::ipc::Address;
use multiproc::manager::{Dict, Lock, Queue};
use multiproc::{Manager, Process};

/// Takes words off the queue and counts them in the dict, under the lock.
fn count_words((words, counts, lock): (Queue<String>, Dict<String, u32>, Lock)) -> u32 {
    let mut handled = 0;
    while let Some(word) = words.try_get().unwrap() {
        let _held = lock.lock().unwrap();
        let n = counts.get(&word).unwrap().unwrap_or(0);
        counts.insert(&word, n + 1).unwrap();
        handled += 1;
    }
    handled
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::builder()
        .address(Address::Tcp("127.0.0.1:0".parse()?))
        .authkey(b"example key".to_vec())
        .start()?;
    println!(
        "manager server pid {:?} at {}",
        manager.pid(),
        manager.address()
    );

    let words = manager.queue::<String>()?;
    let counts = manager.dict::<String, u32>()?;
    let lock = manager.lock()?;
    for w in "the quick fox and the lazy dog and the cat".split(' ') {
        words.put(w.to_string())?;
    }
    let workers: Vec<_> = (0..3)
        .map(|_| Process::start_with(count_words, (words.clone(), counts.clone(), lock.clone())))
        .collect::<Result<_, _>>()?;
    let handled: u32 = workers
        .into_iter()
        .map(|w| w.join())
        .sum::<Result<u32, _>>()?;
    println!("the workers handled {handled} words");

    // Another client, by address and key (Python's `BaseManager.connect`).
    let client = Manager::connect(manager.address(), Some(b"example key"))?;
    let done = client.event()?;
    done.set()?;
    assert!(done.wait_timeout(Duration::from_secs(1))?);

    let mut all = counts.items()?;
    all.sort();
    for (word, n) in &all {
        println!("{word:>6}: {n}");
    }
    assert_eq!(counts.get("the".to_string())?, Some(3));
    manager.shutdown()?;
    // Every proxy now reports the server gone, with a typed error.
    let gone = counts.len().unwrap_err();
    println!("after shutdown: {gone} ({:?})", gone.kind());
    Ok(())
}
