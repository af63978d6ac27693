//! Who steps the [`Manager`](super::manager::Manager): the manager thread, and any
//! thread that waits for a result or submits a task (see the [module docs](super)).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::manager::Life;
use super::shared::{lock, run_all, Shared, BLIND_POLL, IDLE_POLL};
use crate::pool::slot::Drive;
use crate::process::Process;
use crate::sys;
use crate::sys::poll::Interest;

impl Shared {
    pub(super) fn wake_manager(&self) {
        sys::eventfd::signal(self.wake.as_fd());
    }

    /// Steps the manager if no other thread does; repeats while tasks keep arriving.
    pub(super) fn drive(&self) -> bool {
        loop {
            let mut m = match self.mgr.try_lock() {
                Ok(m) => m,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return false,
            };
            let mut done = Vec::new();
            let wake = m.step_as_driver(self, &mut done);
            drop(m);
            if wake && self.hs.asleep() {
                self.wake_manager();
            }
            run_all(done);
            if self.hs.queued.load(Ordering::SeqCst) == 0 {
                return true;
            }
        }
    }
}

impl Drive for Shared {
    fn try_progress(&self) {
        self.drive();
    }

    fn spinning(&self, yes: bool) {
        if yes {
            self.hs.start_driving();
        } else if self.hs.stop_driving() {
            // The manager thread may be asleep without the workers' sockets in its
            // poll set: with answers still to come, it must look at them again now
            // that nobody spins.
            self.wake_manager();
        }
    }
}

/// What the manager thread polls for one worker: serial, socket, want-read,
/// want-write, process (its pidfd).
type PollEntry = (u64, Arc<OwnedFd>, bool, bool, Arc<Process<()>>);

/// The manager thread: steps the manager, then sleeps in `poll` until something
/// happens. Exits once the pool is closed and drained (or terminated).
pub(super) fn manager_thread(sh: &Shared) {
    loop {
        let mut done = Vec::new();
        let (exit, fds, deadline) = {
            let mut m = lock(&sh.mgr);
            let exit = m.step_as_manager(sh, &mut done);
            let deadline = m.next_deadline(&sh.cfg);
            m.sleep_deadline = deadline;
            let fds: Vec<PollEntry> = m
                .workers
                .iter()
                .map(|w| {
                    (
                        w.serial,
                        Arc::clone(&w.sock),
                        w.life != Life::Closed,
                        !w.out.is_empty(),
                        Arc::clone(&w.proc),
                    )
                })
                .collect();
            if !exit {
                sh.hs.announce_sleep();
            }
            (exit, fds, deadline)
        };
        run_all(done);
        if exit {
            break;
        }
        if sh.hs.must_step_again() {
            continue;
        }
        // After `sleeping` was set: a waiter that stops spinning from now on sees it
        // and wakes this thread if answers are still to come (`Drive::spinning`);
        // only with short tasks (`BLIND_TASK`).
        // Meanwhile this thread leaves the workers' answers to the spinners, and
        // looks again at least every `BLIND_POLL` for a task submitted without a
        // waiter while it was not looking.
        let driven = sh.hs.driven();
        let idle_poll = if driven { BLIND_POLL } else { IDLE_POLL };
        let left = deadline.map_or(idle_poll, |d| {
            // A millisecond late rather than early: poll rounds down.
            (d.saturating_duration_since(Instant::now()) + Duration::from_millis(1)).min(idle_poll)
        });
        let wake_at = Instant::now() + left;
        let mut interest = Vec::with_capacity(1 + 2 * fds.len());
        interest.push(Interest {
            fd: sh.wake.as_fd(),
            read: true,
            write: false,
        });
        for (_, sock, read, write, proc) in &fds {
            interest.push(Interest {
                fd: sock.as_fd(),
                read: *read && !driven,
                write: *write,
            });
            interest.push(Interest {
                fd: proc.as_fd(),
                read: true,
                write: false,
            });
        }
        let ready = sys::poll::ready(&interest, Some(wake_at))
            .unwrap_or_else(|_| vec![false; interest.len()]);
        let exited: Vec<u64> = fds
            .iter()
            .enumerate()
            .filter(|(i, _)| ready[2 + 2 * i])
            .map(|(_, f)| f.0)
            .collect();
        drop(interest);
        sh.hs.awake();
        sys::eventfd::clear(sh.wake.as_fd());
        if !exited.is_empty() {
            let mut m = lock(&sh.mgr);
            for w in &mut m.workers {
                if exited.contains(&w.serial) {
                    w.pid_ready = true;
                }
            }
        }
    }
    *lock(&sh.finished) = true;
    sh.finished_cv.notify_all();
}
