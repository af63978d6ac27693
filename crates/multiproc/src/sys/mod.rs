//! The platform layer: every syscall multiproc makes goes through here.
//!
//! Each platform provides, one file per kernel facility:
//! - `fork`: `fork`, `clone(CLONE_PARENT)`, `posix_spawn` of this program, `_exit`;
//! - `pidfd`: process handles that can be polled, signalled and reaped;
//! - `premain`: a constructor that runs the hooks higher layers register, before `main`;
//! - `poll`: waits on descriptors, and retries of timed calls, that keep their
//!   deadline when a signal interrupts them;
//! - `socket`: socket pairs that carry framed bytes plus file descriptors;
//! - `proc`: this process's ids, its number of threads, the executable's identity;
//! - `deathsig`: "die when the parent process dies" that does not depend on the
//!   thread that started the child;
//! - `signal`: signal numbers, names and dispositions;
//! - `stdio`: pipes for captured output, and redirecting stdout/stderr onto them;
//! - `futex`: process-shared futex wait/wake on a word in shared memory;
//! - `memfd`: anonymous shared files (no name to leak) and their `/proc` paths;
//! - `mm`: `MAP_SHARED` mappings of such files;
//! - `eventfd`: a wake-up flag another thread polls;
//! - `rlimit`: the address-space and CPU-time limits a process sets on itself;
//! - `thread`: the cached kernel thread id, thread start times, "is this owner dead?".
//!
//! Only Linux is supported: other targets fail to compile here with a clear message
//! rather than half-working.

#[cfg(target_os = "linux")]
pub(crate) mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "multiproc supports Linux only for now: it relies on pidfd, memfd, futex, \
     clone(CLONE_PARENT) and SCM_RIGHTS. Other platforms are not half-supported."
);
