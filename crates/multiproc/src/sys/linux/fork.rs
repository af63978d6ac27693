//! Creating processes: `fork`, `clone(CLONE_PARENT)`, `posix_spawn` of this program, `_exit`.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/fork.2.html>
//! - <https://man7.org/linux/man-pages/man2/clone.2.html> (`CLONE_PARENT`)
//! - <https://man7.org/linux/man-pages/man3/posix_spawn.3.html>
//! - <https://man7.org/linux/man-pages/man3/pthread_atfork.3.html>
//!
//! Also [`PerProcess`]: library state behind a lock that a fork cannot leave held.
//!
//! # Safety
//!
//! The syscall wrappers pass valid pointers that outlive each call. [`PerProcess`]
//! hands out references to heap slots that are never freed (a slot replaced after a
//! fork is leaked, not dropped), so a `&'static` to one stays valid. [`close_leaked`]
//! is an `unsafe fn`: its caller vouches that the descriptor's owner (such a leaked
//! slot's value) never uses it again; [`is_open`] passes integers only.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Which side of a fork the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// In the new child.
    Child,
    /// In the parent; the child's pid.
    Parent(i32),
}

/// `fork(2)` through glibc, so its `atfork` handlers (malloc's among them) run.
///
/// The child must follow the rules of a forked child of a possibly multi-threaded
/// process; multiproc's callers check the thread count first.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: `fork` has no memory-safety preconditions of its own; what the child
    // may do afterwards is the caller's contract (documented on the callers).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `clone(CLONE_PARENT | SIGCHLD)`: a fork whose child is a *sibling* of the caller,
/// that is, a child of the caller's parent, which can then `waitid` it, read its exit
/// status and get `SIGCHLD` for it as for any child of its own.
///
/// Only the single-threaded fork server calls this. The raw syscall skips glibc's
/// `atfork` handlers, which is sound because no other thread can hold a lock.
pub(crate) fn clone_parent() -> io::Result<Forked> {
    let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: with a null stack the child continues on a copy-on-write copy of the
    // caller's stack, exactly like `fork`; the remaining arguments (parent_tid,
    // child_tid, tls) are unused without the flags that read them.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match r {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // No `atfork` handlers ran: invalidate the cached thread id ourselves.
            super::thread::forget_after_fork();
            Ok(Forked::Child)
        }
        pid => Ok(Forked::Parent(i32::try_from(pid).expect("pid fits in i32"))),
    }
}

/// Ends this process at once with `code`, running no destructors or `atexit` handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// `EINVAL`, for a fork request that cannot be carried out as asked (the fork
/// server's answer is an error number).
pub(crate) const EINVAL: i32 = libc::EINVAL;
/// `EAGAIN`, for a fork that failed without an error number.
pub(crate) const EAGAIN: i32 = libc::EAGAIN;

/// Whether `fd` is an open descriptor of this process (one [`spawn`] kept, say).
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: integer arguments only; a number that is not open fails with `EBADF`.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Closes descriptor `fd`, whose owner this process has leaked: in a freshly forked
/// child, a descriptor that the parent's copy of a [`PerProcess`] value owns.
///
/// # Safety
///
/// `fd` must be open, and whatever owns it must never use, close or drop it again. The
/// parent's copy of a [`PerProcess`] value is such an owner in a forked child: the child
/// never locks it and never drops it (its slot is leaked). No other `OwnedFd` or
/// `BorrowedFd` may refer to `fd`.
pub(crate) unsafe fn close_leaked(fd: RawFd) {
    // SAFETY: guaranteed by the caller: nothing that is used again owns or borrows `fd`.
    unsafe {
        libc::close(fd);
    }
}

/// Where [`spawn`] places the first descriptor it keeps in the child.
pub(crate) const FIRST_KEPT_FD: RawFd = 3;

/// Starts `exe` with `argv = [argv0]`, the environment `env` and, besides stdin/out/err,
/// exactly the descriptors `keep`: `keep[i]` becomes descriptor `FIRST_KEPT_FD + i` in
/// the child, and every descriptor above them is closed before `exec`, whether or not
/// it was close-on-exec (as Python's `spawn` does with `close_fds`). The parent's
/// descriptors are untouched.
///
/// Errors from `exec` in the child are reported here (glibc's `posix_spawn` waits for
/// the `exec` with `CLONE_VFORK`).
pub(crate) fn spawn(exe: &CStr, argv0: &CStr, env: &[CString], keep: &[RawFd]) -> io::Result<i32> {
    let above = RawFd::try_from(keep.len())
        .ok()
        .and_then(|n| FIRST_KEPT_FD.checked_add(n))
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Copies above the target range: the child places them with `dup2` one after the
    // other, and a source that sat at an earlier target would be overwritten first.
    let staged = keep
        .iter()
        .map(|&fd| dup_at_least(fd, above))
        .collect::<io::Result<Vec<OwnedFd>>>()?;
    let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    // SAFETY: initializes the actions object in place.
    check(unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) })?;
    let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // SAFETY: initializes the attribute object in place.
    if let Err(e) = check(unsafe { libc::posix_spawnattr_init(attr.as_mut_ptr()) }) {
        // SAFETY: `actions` was initialized above and is destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr()) };
        return Err(e);
    }
    let result = (|| {
        for (dst, src) in (FIRST_KEPT_FD..).zip(&staged) {
            // SAFETY: `actions` is initialized; descriptors are plain integers here.
            check(unsafe {
                libc::posix_spawn_file_actions_adddup2(actions.as_mut_ptr(), src.as_raw_fd(), dst)
            })?;
        }
        // Everything else, the staged copies included (glibc 2.34+: `close_range`).
        // SAFETY: `actions` is initialized; `above` is a plain integer.
        check(unsafe {
            libc::posix_spawn_file_actions_addclosefrom_np(actions.as_mut_ptr(), above)
        })?;
        let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: initializes the set.
        unsafe { libc::sigemptyset(empty.as_mut_ptr()) };
        let mut all_default = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: initializes the set.
        unsafe { libc::sigfillset(all_default.as_mut_ptr()) };
        // SAFETY: `attr` is initialized; the sets were initialized just above.
        check(unsafe { libc::posix_spawnattr_setsigmask(attr.as_mut_ptr(), empty.as_ptr()) })?;
        // SAFETY: as above.
        check(unsafe {
            libc::posix_spawnattr_setsigdefault(attr.as_mut_ptr(), all_default.as_ptr())
        })?;
        let flags = (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short;
        // SAFETY: `attr` is initialized.
        check(unsafe { libc::posix_spawnattr_setflags(attr.as_mut_ptr(), flags) })?;
        let argv = [argv0.as_ptr().cast_mut(), std::ptr::null_mut()];
        let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
        envp.push(std::ptr::null_mut());
        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid for the call: `exe`, `argv` and `envp` are
        // NUL-terminated and outlive it; `actions` and `attr` are initialized.
        check(unsafe {
            libc::posix_spawn(
                &mut pid,
                exe.as_ptr(),
                actions.as_ptr(),
                attr.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        })?;
        Ok(pid)
    })();
    // SAFETY: both objects were initialized above and are destroyed exactly once.
    unsafe { libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr()) };
    // SAFETY: as above.
    unsafe { libc::posix_spawnattr_destroy(attr.as_mut_ptr()) };
    result
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a close-on-exec copy of `fd` numbered `min` or above.
fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; a descriptor that is not open fails with `EBADF`.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `r` was just created by `fcntl` and nothing else refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Names the calling thread (and so, in a single-threaded child, the process) for
/// `ps`/`top`; the kernel keeps the first 15 bytes.
pub(crate) fn set_process_name(name: &str) {
    let mut bytes: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    bytes.push(0);
    if let Ok(c) = CStr::from_bytes_with_nul(&bytes) {
        let _ = rustix::thread::set_name(c);
    }
}

/// This process's environment as `NAME=value` entries, read straight from
/// `environ`, without std's environment lock (which another thread of the parent may
/// have held at the fork).
///
/// Only for a child that is still single-threaded (nothing changes `environ` meanwhile).
pub(crate) fn environ_in_child() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // SAFETY: reading the `environ` pointer itself; single-threaded caller (above).
    let mut p = unsafe { libc::environ };
    if p.is_null() {
        return out;
    }
    loop {
        // SAFETY: `environ` is a null-terminated array of pointers (POSIX); `p` walks
        // it up to that null and no further.
        let entry = unsafe { *p };
        if entry.is_null() {
            return out;
        }
        // SAFETY: each non-null entry is a NUL-terminated string that lives as long
        // as the environment is not changed (it is not, by the caller's contract).
        out.push(unsafe { CStr::from_ptr(entry) }.to_bytes().to_vec());
        // SAFETY: `entry` was not the terminating null, so the next element exists.
        p = unsafe { p.add(1) };
    }
}

/// Replaces this process's environment with `entries` (`NAME=value`), by pointing
/// `environ` at a new array, without std's environment lock (see
/// [`environ_in_child`]). The strings and the array are leaked: the environment
/// lives as long as the process.
///
/// Only for a child that is still single-threaded.
pub(crate) fn replace_environ_in_child(entries: Vec<CString>) {
    let mut ptrs: Vec<*mut libc::c_char> = entries.into_iter().map(CString::into_raw).collect();
    ptrs.push(std::ptr::null_mut());
    let array = Box::leak(ptrs.into_boxed_slice());
    // SAFETY: a null-terminated array of NUL-terminated strings, all leaked (valid for
    // the rest of the process); single-threaded caller, so no `getenv` races the store.
    // glibc's `setenv` later copies an array it did not allocate rather than free it.
    unsafe { libc::environ = array.as_mut_ptr() };
}

/// A library global behind a mutex that belongs to one process: a forked child
/// never uses its parent's copy, which another thread of the parent may have held
/// locked at the moment of the fork (it would stay locked forever in the child).
/// The child's first [`lock`](Self::lock) makes a fresh value with `init` instead,
/// and the parent's copy is leaked in the child, never dropped there (its
/// descriptors, if any, are the parent's business; see the callers' `forget` paths).
///
/// "This process" is the pid and the fork generation (bumped by the `atfork` child
/// handler, and by [`clone_parent`]): the pid catches a fork that ran no handler (a
/// raw `clone`), the generation a child whose pid is that of a dead ancestor.
#[derive(Debug)]
pub(crate) struct PerProcess<T: 'static> {
    current: AtomicPtr<Slot<T>>,
    init: fn() -> T,
}

#[derive(Debug)]
struct Slot<T> {
    pid: u32,
    generation: u32,
    value: Mutex<T>,
}

impl<T: 'static> PerProcess<T> {
    /// A global whose value, in each process, starts as `init()`.
    pub(crate) const fn new(init: fn() -> T) -> PerProcess<T> {
        PerProcess {
            current: AtomicPtr::new(std::ptr::null_mut()),
            init,
        }
    }

    /// Locks this process's value (a poisoned lock is recovered: the values kept
    /// here stay consistent at every step).
    pub(crate) fn lock(&'static self) -> MutexGuard<'static, T> {
        self.slot().lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&'static self) -> &'static Mutex<T> {
        super::thread::watch_forks();
        let pid = std::process::id();
        let generation = super::thread::fork_generation();
        loop {
            let p = self.current.load(Ordering::Acquire);
            // SAFETY: a non-null pointer here came from `Box::into_raw` below and is
            // never freed (module docs), so it points to a live `Slot` for 'static.
            if let Some(slot) = unsafe { p.as_ref() } {
                if slot.pid == pid && slot.generation == generation {
                    return &slot.value;
                }
            }
            let fresh = Box::into_raw(Box::new(Slot {
                pid,
                generation,
                value: Mutex::new((self.init)()),
            }));
            match self
                .current
                .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: `fresh` is now published and, like every slot, never freed.
                // The old slot (the parent's copy) is leaked on purpose.
                Ok(_) => return unsafe { &(*fresh).value },
                Err(_) => {
                    // Another thread of this process installed its slot first.
                    // SAFETY: `fresh` was never published; this is its only owner.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    static VALUE: PerProcess<u32> = PerProcess::new(|| 7);

    #[test]
    fn a_child_gets_a_fresh_value_though_the_lock_was_held_at_the_fork() {
        *VALUE.lock() = 8;
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _g = VALUE.lock();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        held_rx.recv().unwrap();
        match fork().unwrap() {
            Forked::Child => {
                // The parent's copy is locked forever here; a fresh one is not.
                let v = *VALUE.lock();
                exit_now(i32::try_from(v).unwrap_or(99))
            }
            Forked::Parent(pid) => {
                let pidfd = super::super::pidfd::open(pid).unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                let ready =
                    super::super::pidfd::poll_readable(&[pidfd.as_fd()], Some(deadline)).unwrap();
                if !ready[0] {
                    let _ = super::super::pidfd::send_signal(pidfd.as_fd(), libc::SIGKILL);
                }
                let exit = super::super::pidfd::reap_blocking(pidfd.as_fd()).unwrap();
                drop(release_tx);
                holder.join().unwrap();
                assert_eq!(exit, Ok(7), "the child hung or saw the parent's value");
                assert_eq!(*VALUE.lock(), 8, "the parent keeps its own");
            }
        }
    }
}
