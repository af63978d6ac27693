//! Reaping children whose handles were dropped before they exited.
//!
//! A dropped [`Process`](crate::Process) whose child still runs hands its pidfd here.
//! One background thread, started on demand and gone when the list is empty, polls
//! the pidfds and reaps each child as it exits, so no zombie outlives its child's
//! life, even if the program never touches multiproc again.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sys;

static ORPHANS: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Threads multiproc itself runs in this process; they hold no lock across a fork
/// (see [`lock_for_fork`]), so the fork check does not count them.
pub(crate) static INTERNAL_THREADS: AtomicUsize = AtomicUsize::new(0);

fn orphans() -> MutexGuard<'static, Vec<OwnedFd>> {
    ORPHANS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes over reaping the child behind `pidfd`.
pub(crate) fn adopt(pidfd: OwnedFd) {
    orphans().push(pidfd);
    if RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    INTERNAL_THREADS.fetch_add(1, Ordering::AcqRel);
    let started = std::thread::Builder::new()
        .name("multiproc-reaper".into())
        .spawn(run);
    if started.is_err() {
        // No thread: reap what has exited now; the rest wait for the next adopt.
        INTERNAL_THREADS.fetch_sub(1, Ordering::AcqRel);
        RUNNING.store(false, Ordering::Release);
        orphans().retain(|fd| !matches!(sys::pidfd::try_reap(fd.as_fd()), Ok(Some(_)) | Err(_)));
    }
}

fn run() {
    loop {
        let fds: Vec<OwnedFd> = {
            let mut list = orphans();
            list.retain(|fd| !matches!(sys::pidfd::try_reap(fd.as_fd()), Ok(Some(_)) | Err(_)));
            if list.is_empty() {
                RUNNING.store(false, Ordering::Release);
                INTERNAL_THREADS.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            list.iter().filter_map(|fd| fd.try_clone().ok()).collect()
        };
        let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
        // Wake when any exits; the timeout picks up children adopted meanwhile.
        let _ =
            sys::pidfd::poll_readable(&borrowed, Some(Instant::now() + Duration::from_millis(100)));
    }
}

/// Holds the orphan list across a `fork`, so the child never inherits it locked by
/// another thread. Pass the guard to [`forget_after_fork`] in the child.
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Vec<OwnedFd>> {
    orphans()
}

/// In a forked child: the parent's orphans are not this process's children.
pub(crate) fn forget_after_fork(mut guard: MutexGuard<'static, Vec<OwnedFd>>) {
    guard.clear();
    drop(guard);
    RUNNING.store(false, Ordering::Release);
    INTERNAL_THREADS.store(0, Ordering::Release);
}
