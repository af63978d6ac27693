//! Deliberate crashes, for demonstrations and tests of fault isolation.
//!
//! Python ships the same thing as `faulthandler._sigsegv()`: a way to make the current
//! process die the way a buggy native extension would, to see what happens to the
//! others. Each function ends the *whole* current process, whichever thread calls it —
//! which is exactly the point when comparing a crash in a thread with one in a child
//! process.
//!
//! ```no_run
//! // Not run: it would end the doctest.
//! multiproc::fault::segfault();
//! ```

/// Kills the current process with `SIGSEGV`, as an invalid memory access would.
///
/// The signal's default action is restored first (Rust installs a `SIGSEGV` handler
/// to report stack overflows), so the process dies of the signal and its parent sees
/// "killed by SIGSEGV".
pub fn segfault() -> ! {
    crate::sys::signal::die_of(crate::sys::signal::SIGSEGV)
}

/// Kills the current process with `SIGABRT`, as `abort()` does.
pub fn abort() -> ! {
    std::process::abort()
}

/// Kills the current process with signal `signo` at its default action.
///
/// # Panics
///
/// Panics if `signo` is not a signal whose default action ends the process.
pub fn die_of_signal(signo: i32) -> ! {
    assert!(
        crate::sys::signal::ends_process_by_default(signo),
        "signal {signo} does not end a process by default"
    );
    crate::sys::signal::die_of(signo)
}
