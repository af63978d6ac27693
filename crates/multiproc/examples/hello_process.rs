//! Hello, process: the same as `hello_thread.rs` with `Process`. The function runs in a
//! child process, with its own pid and memory, and its value comes back to the parent; a
//! child that crashes is reported with how it ended, and the parent goes on.
//!
//! Run: `cargo run -p multiproc --example hello_process`
//!
//! Python:
//! ```python
//! p = multiprocessing.Process(target=greet, args=("world",))
//! p.start(); p.join()   # the value is lost; p.exitcode is -11 after a segfault
//! ```

use multiproc::Process;

fn greet(name: String) -> String {
    format!(
        "hello, {name}, from process {} (child of {})",
        std::process::id(),
        std::os::unix::process::parent_id()
    )
}

fn crash() -> u32 {
    multiproc::fault::segfault()
}

fn main() -> multiproc::Result<()> {
    println!("parent is process {}", std::process::id());
    let p = Process::start_with(greet, "world".to_string())?;
    println!("started child {}", p.pid());
    println!("{}", p.join()?);

    // A segfault ends only that child; `join` says so, and the parent carries on.
    let err = Process::start(crash)?.join().unwrap_err();
    let exitcode = err.exit_status().map(|s| s.exitcode());
    println!("the second child crashed: {err} (Python's exitcode: {exitcode:?})");
    Ok(())
}
