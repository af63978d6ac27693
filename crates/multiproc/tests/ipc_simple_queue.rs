//! `SimpleQueue` (Python's `multiprocessing.SimpleQueue`) between processes.

mod util;

use std::time::Duration;

use multiproc::ipc::SimpleQueue;
use multiproc::StartMethod;

const LIMIT: Duration = Duration::from_secs(60);

fn producer((q, n): (SimpleQueue<(u32, String)>, u32)) {
    for i in 0..n {
        q.put((i, format!("item {i}"))).unwrap();
    }
}

#[test]
fn producers_in_children_by_every_start_method_then_close() {
    let _w = util::watchdog(LIMIT);
    let q = SimpleQueue::new().unwrap();
    assert!(q.empty());
    let ps: Vec<_> = StartMethod::ALL
        .into_iter()
        .map(|m| {
            util::builder(m)
                .start_with(producer, (q.clone(), 50))
                .unwrap()
        })
        .collect();
    let mut got = Vec::new();
    for _ in 0..50 * ps.len() {
        got.push(q.get().unwrap());
    }
    for p in ps {
        p.join().unwrap();
    }
    assert!(q.empty());
    got.sort();
    assert_eq!(got.len(), 150);
    assert!(got.iter().all(|(i, s)| *s == format!("item {i}")));
    q.put((7, "last".into())).unwrap();
    assert!(!q.empty());
    q.close();
    assert_eq!(q.get().unwrap(), (7, "last".into()));
    assert!(q.get().unwrap_err().is_disconnected());
    assert!(q.put((8, "late".into())).unwrap_err().is_disconnected());
}
