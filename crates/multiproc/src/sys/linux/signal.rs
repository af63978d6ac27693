//! Signal names and the dispositions a child needs.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man7/signal.7.html>
//!
//! # Safety
//!
//! The `unsafe` calls change signal dispositions to `SIG_IGN`/`SIG_DFL` (no handler
//! code) or, for the cluster host, to a handler that only stores to an atomic
//! (async-signal-safe) and is a `static` function; and they unblock and raise a signal
//! through a `sigset_t` initialized by `sigemptyset` before use.
#![allow(unsafe_code)]

/// `SIGTERM`: please stop.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
/// `SIGKILL`: cannot be caught.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;
/// `SIGSEGV`: an invalid memory access.
pub(crate) const SIGSEGV: i32 = libc::SIGSEGV;
/// `SIGABRT`: `abort()`.
pub(crate) const SIGABRT: i32 = libc::SIGABRT;
/// `SIGINT`: Ctrl-C.
pub(crate) const SIGINT: i32 = libc::SIGINT;

/// Whether `signo`'s default action ends the process (what `die_of` needs to kill).
pub(crate) fn ends_process_by_default(signo: i32) -> bool {
    matches!(
        signo,
        libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGFPE
            | libc::SIGILL
            | libc::SIGABRT
            | libc::SIGKILL
            | libc::SIGTERM
    )
}

/// Whether `signo` is a signal this system has: a named one or a real-time one.
pub(crate) fn exists(signo: i32) -> bool {
    name(signo).is_some() || (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signo)
}

/// The conventional name of signal `signo` ("SIGSEGV"), or `None` if unknown.
pub(crate) fn name(signo: i32) -> Option<&'static str> {
    Some(match signo {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// Sets SIGPIPE to "ignore", as Rust's `main` does before user code runs.
///
/// A re-executed child starts its work from a constructor, before `main`, so it has
/// to do this itself; a write to a closed pipe then fails with `EPIPE` instead of
/// killing the child.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE and installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Ignores SIGINT (the fork server: Ctrl-C is for the parent to handle).
pub(crate) fn ignore_sigint() {
    // SAFETY: SIG_IGN is a valid disposition and installs no handler code.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}

/// Restores SIGINT's default disposition (a fork server's child).
pub(crate) fn default_sigint() {
    // SAFETY: SIG_DFL is a valid disposition and installs no handler code.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Restores `signo`'s default action, unblocks it and raises it: the process dies of it.
pub(crate) fn die_of(signo: i32) -> ! {
    // SAFETY: SIG_DFL is a valid disposition and installs no handler code.
    unsafe {
        libc::signal(signo, libc::SIG_DFL);
    }
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initializes the set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
    }
    // SAFETY: the set was initialized above.
    unsafe {
        libc::sigaddset(set.as_mut_ptr(), signo);
    }
    // SAFETY: the set is initialized; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), std::ptr::null_mut());
    }
    // SAFETY: raising a signal has no memory-safety preconditions.
    unsafe {
        libc::raise(signo);
    }
    // Only reached if the signal did not end the process (SIGKILL/SIGTERM blocked
    // elsewhere is impossible here, but be total).
    std::process::abort()
}

/// Set by the SIGTERM handler that [`catch_sigterm`] installs.
#[cfg(feature = "cluster")]
static SIGTERM_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(feature = "cluster")]
extern "C" fn on_sigterm(_: libc::c_int) {
    // An atomic store is async-signal-safe.
    SIGTERM_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Catches SIGTERM (a cluster worker host drains on it instead of dying) and returns
/// the flag its handler sets.
#[cfg(feature = "cluster")]
pub(crate) fn catch_sigterm() -> &'static std::sync::atomic::AtomicBool {
    let handler: extern "C" fn(libc::c_int) = on_sigterm;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; it
    // stays valid for the life of the process (a `static` function). Handlers are
    // reset to the default by `exec`, so the host's local workers are unaffected.
    unsafe {
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    &SIGTERM_SEEN
}
