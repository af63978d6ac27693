//! Ping-pong over a `Pipe`: a child process answers every message it receives, and the
//! parent times the round trips. Dropping the parent's end is the end of the stream:
//! the child's `recv` fails and it returns how many messages it answered.
//!
//! Run: `cargo run --release -p multiproc --example pipe_pingpong`
//!
//! Python:
//! ```python
//! parent, child = multiprocessing.Pipe()
//! p = multiprocessing.Process(target=ponger, args=(child,)); p.start()
//! parent.send(("ping", 1)); print(parent.recv())
//! ```

use std::time::Instant;

use multiproc::ipc::Connection;
use multiproc::{Pipe, Process};

const ROUNDS: u32 = 10_000;

/// Runs in the child: answers each `("ping", n)` with `("pong", n)`.
fn ponger(conn: Connection) -> u32 {
    let mut answered = 0;
    while let Ok((_, n)) = conn.recv::<(String, u32)>() {
        if conn.send(("pong".to_string(), n)).is_err() {
            break;
        }
        answered += 1;
    }
    answered
}

fn main() -> multiproc::Result<()> {
    let (parent, child) = Pipe::new()?;
    let p = Process::start_with(ponger, child)?;

    parent.send(("ping".to_string(), 1))?;
    let (word, n) = parent.recv::<(String, u32)>()?;
    println!(
        "sent (\"ping\", 1), child {} answered ({word:?}, {n})",
        p.pid()
    );

    let t = Instant::now();
    for i in 2..=ROUNDS {
        parent.send(("ping".to_string(), i))?;
        let (_, n) = parent.recv::<(String, u32)>()?;
        assert_eq!(n, i);
    }
    let took = t.elapsed();
    println!(
        "{} more round trips in {took:.2?}: {:.1} us each",
        ROUNDS - 1,
        took.as_secs_f64() * 1e6 / f64::from(ROUNDS - 1)
    );

    drop(parent); // end of stream for the child
    println!("the child answered {} pings", p.join()?);
    Ok(())
}
