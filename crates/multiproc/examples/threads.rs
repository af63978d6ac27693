//! The article's first example: two threads print 1..10 and a..j concurrently, then "Done".
//!
//! Run: `cargo run --example threads`
//!
//! Python:
//! ```python
//! t1 = threading.Thread(target=print_numbers)
//! t2 = threading.Thread(target=print_letters)
//! t1.start(); t2.start(); t1.join(); t2.join()
//! print("Done")
//! ```

use multiproc::Thread;

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
    let t1 = Thread::start(print_numbers)?;
    let t2 = Thread::start(print_letters)?;
    t1.join()?;
    t2.join()?;
    println!("Done");
    Ok(())
}
