//! Hello, thread: run a function in a thread of this process and get back its value,
//! or its panic as an error.
//!
//! Run: `cargo run -p multiproc --example hello_thread`
//!
//! Python:
//! ```python
//! t = threading.Thread(target=greet, args=("world",), name="greeter")
//! t.start(); t.join()   # Python's join returns None, and a raised exception is only printed
//! ```

use multiproc::Thread;

fn greet(name: String) -> String {
    format!(
        "hello, {name}, from a thread of process {}",
        std::process::id()
    )
}

fn fail() -> u32 {
    panic!("something went wrong in the thread");
}

fn main() -> multiproc::Result<()> {
    let t = Thread::builder()
        .name("greeter")
        .start(|| greet("world".to_string()))?;
    println!("started thread {}", t.name().unwrap_or("?"));
    println!("{}", t.join()?);

    // A panic ends only that thread; `join` hands it back as an error.
    let err = Thread::start(fail)?.join().unwrap_err();
    println!("the second thread panicked: {err}");
    assert!(err.is_panic());
    Ok(())
}
