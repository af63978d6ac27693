//! `ipc::wait`: one thread waits on several pipes and processes at once, and handles
//! each as it becomes ready (Python's `multiprocessing.connection.wait`).
//!
//! ```sh
//! cargo run --release -p multiproc --example wait_many
//! ```

use std::time::Duration;

use multiproc::ipc::{wait, Connection, Pipe, TryRecvError, Waitable};
use multiproc::Process;

/// Sends `n` after `n` x 20 ms, then exits (its end of the pipe closes).
fn report((conn, n): (Connection, u64)) {
    std::thread::sleep(Duration::from_millis(20 * n));
    conn.send(n).expect("send");
}

fn main() -> multiproc::Result<()> {
    let mut readers = Vec::new();
    let mut children = Vec::new();
    for n in [3u64, 1, 2] {
        let (rx, tx) = Pipe::new()?;
        children.push(Process::start_with(report, (tx, n))?);
        readers.push(rx);
    }
    let mut got = Vec::new();
    // Wait on whichever readers are still open, until every sender is gone.
    while !readers.is_empty() {
        let objects: Vec<&dyn Waitable> = readers.iter().map(|r| r as &dyn Waitable).collect();
        let ready = wait(&objects, Some(Duration::from_secs(30)))?;
        let mut closed = Vec::new();
        for i in ready {
            match readers[i].try_recv::<u64>() {
                Ok(n) => got.push(n),
                Err(TryRecvError::Disconnected) => closed.push(i),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Invalid(e)) => return Err(e),
            }
        }
        for i in closed.into_iter().rev() {
            readers.remove(i);
        }
    }
    // Processes are waitable too (ready once exited): join each as it ends.
    let mut exited = 0;
    while !children.is_empty() {
        let procs: Vec<&dyn Waitable> = children.iter().map(|p| p as &dyn Waitable).collect();
        let ready = wait(&procs, Some(Duration::from_secs(30)))?;
        for i in ready.into_iter().rev() {
            children.remove(i).join()?;
            exited += 1;
        }
    }
    assert_eq!(exited, 3);
    println!("received, as they became ready: {got:?}");
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3]);
    Ok(())
}
