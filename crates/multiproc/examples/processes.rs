//! The article's second example: two processes print 1..10 and a..j concurrently, then "Done".
//!
//! Run: `cargo run --example processes`
//!
//! The only change from `threads.rs` is the word `Process`: each function now runs in a
//! child process with its own memory (started by the default fork server), and its
//! output still reaches this terminal because children inherit stdout.
//!
//! Python:
//! ```python
//! p1 = multiprocessing.Process(target=print_numbers)
//! p2 = multiprocessing.Process(target=print_letters)
//! p1.start(); p2.start(); p1.join(); p2.join()
//! print("Done")
//! ```

use multiproc::Process;

fn print_numbers() {
    for i in 1..=10 {
        println!("{i}");
    }
}

fn print_letters() {
    for letter in 'a'..='j' {
        println!("{letter}");
    }
}

fn main() -> multiproc::Result<()> {
    let p1 = Process::start(print_numbers)?;
    let p2 = Process::start(print_letters)?;
    p1.join()?;
    p2.join()?;
    println!("Done");
    Ok(())
}
