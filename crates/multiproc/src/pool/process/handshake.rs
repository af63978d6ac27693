//! The sleeping/drivers handshake: who looks at the workers while the manager thread
//! sleeps.
//!
//! The manager thread blocks in `poll` between steps. Two kinds of thread may need it
//! awake: a *submitter* that queued tasks it could not send itself (another thread
//! held the manager), and the last *driver* (a waiter spinning on the manager, see
//! [`Drive`](crate::pool::slot::Drive)) to stop spinning while the manager thread,
//! counting on the drivers, left the workers' sockets out of its poll set. Both are the
//! same race (Dekker's): the manager thread stores `sleeping` then loads what would
//! keep it awake (`queued`, or `drivers` through [`driven`](Handshake::driven)); the
//! other side stores (`queued += n`, `drivers -= 1`) then loads `sleeping`.
//!
//! # Memory ordering
//!
//! Each side stores, then issues a `SeqCst` fence, then loads (every access is
//! `SeqCst` too). The fences are totally ordered: whichever side's fence comes second
//! sees the other side's store, so either the manager thread sees the task or the
//! missing driver (and does not sleep blind), or the other side sees `sleeping` (and
//! writes the eventfd). With `Release`/`Acquire` alone both loads could read the old
//! values, and the wake-up would be lost until the next `BLIND_POLL`/`IDLE_POLL` tick.
//! (`SeqCst` accesses alone also order a store before a later load in C++'s model;
//! the fences make it explicit and are what loom models: it treats `SeqCst` accesses
//! as `AcqRel`, and without the fences `loom_handshake` reports the lost wake-up.)
//! `loom_handshake` (in this module's tests) checks both pairs.
//!
//! The counters `idle`, `inflight` and `short_tasks` are hints published by each
//! step (under the manager's mutex): a stale value costs a spare wake-up or one tick
//! of latency, never a lost task.

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::SeqCst};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::SeqCst};

/// The flags of the handshake (see the module docs).
#[derive(Debug)]
pub(super) struct Handshake {
    /// Tasks pushed since a step last took the queue.
    pub(super) queued: AtomicUsize,
    /// Ready workers with nothing in flight, as of the last step.
    pub(super) idle: AtomicUsize,
    /// Tasks sent to workers and not yet answered, as of the last step.
    pub(super) inflight: AtomicUsize,
    /// Every worker's tasks take less than `BLIND_TASK` on average, as of the last
    /// step: a spinning waiter is then likely to see its answer while it spins.
    pub(super) short_tasks: AtomicBool,
    /// The manager thread is (about to be) blocked in `poll`.
    sleeping: AtomicBool,
    /// Threads spinning on `drive` while they wait for a task: they read the workers'
    /// answers themselves, so meanwhile the manager thread does not wake for them (a
    /// third runnable thread on a 2-CPU machine took a CPU from the waiter or the
    /// worker: `submit_wait` went from ~7 to ~20 µs per task).
    drivers: AtomicUsize,
}

impl Handshake {
    /// The flags of a pool with `idle` ready workers and nothing queued.
    pub(super) fn new(idle: usize) -> Handshake {
        Handshake {
            queued: AtomicUsize::new(0),
            idle: AtomicUsize::new(idle),
            inflight: AtomicUsize::new(0),
            short_tasks: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            drivers: AtomicUsize::new(0),
        }
    }

    /// Manager thread, at the end of a step (under the manager's mutex, so that a
    /// thread that steps next sees it): it is going to sleep.
    pub(super) fn announce_sleep(&self) {
        self.sleeping.store(true, SeqCst);
    }

    /// Manager thread, after [`announce_sleep`](Self::announce_sleep): `true` if tasks
    /// were queued since its step took the queue; it is then awake again and must step
    /// instead of sleeping.
    pub(super) fn must_step_again(&self) -> bool {
        fence(SeqCst);
        if self.queued.load(SeqCst) > 0 {
            self.sleeping.store(false, SeqCst);
            return true;
        }
        false
    }

    /// Manager thread, deciding what to poll: `true` if it may leave the workers'
    /// answers to the spinning drivers (the last one to stop wakes it).
    pub(super) fn driven(&self) -> bool {
        fence(SeqCst);
        self.short_tasks.load(SeqCst) && self.drivers.load(SeqCst) > 0
    }

    /// Manager thread, back from `poll`.
    pub(super) fn awake(&self) {
        self.sleeping.store(false, SeqCst);
    }

    /// Whether the manager thread is (about to be) asleep: a thread that needs it
    /// awake writes its eventfd.
    pub(super) fn asleep(&self) -> bool {
        self.sleeping.load(SeqCst)
    }

    /// A submitter pushed `n` tasks on the queue (then it may look at
    /// [`asleep`](Self::asleep)).
    pub(super) fn queued(&self, n: usize) {
        self.queued.fetch_add(n, SeqCst);
        fence(SeqCst);
    }

    /// A waiter starts spinning on the manager.
    pub(super) fn start_driving(&self) {
        self.drivers.fetch_add(1, SeqCst);
    }

    /// A waiter stops spinning: `true` if it was the last one while the manager thread
    /// sleeps counting on the drivers with answers still to come; it must then wake it.
    pub(super) fn stop_driving(&self) -> bool {
        let last = self.drivers.fetch_sub(1, SeqCst) == 1;
        fence(SeqCst);
        last && self.short_tasks.load(SeqCst)
            && self.sleeping.load(SeqCst)
            && self.inflight.load(SeqCst) > 0
    }
}

#[cfg(all(test, loom))]
mod loom_handshake {
    use super::*;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    /// The manager thread's eventfd: a flag and a condition variable.
    #[derive(Default)]
    struct Eventfd {
        set: Mutex<bool>,
        cv: Condvar,
    }

    impl Eventfd {
        fn signal(&self) {
            *self.set.lock().unwrap() = true;
            self.cv.notify_all();
        }

        /// Blocks until signalled: a lost wake-up is a loom deadlock.
        fn wait(&self) {
            let mut set = self.set.lock().unwrap();
            while !*set {
                set = self.cv.wait(set).unwrap();
            }
        }
    }

    /// A submitter queues a task while the manager thread goes to sleep: the manager
    /// either sees the task or is woken.
    #[test]
    fn a_queued_task_is_never_slept_through() {
        loom::model(|| {
            let h = Arc::new(Handshake::new(1));
            let fd = Arc::new(Eventfd::default());
            let submitter = thread::spawn({
                let (h, fd) = (Arc::clone(&h), Arc::clone(&fd));
                move || {
                    h.queued(1);
                    if h.asleep() {
                        fd.signal();
                    }
                }
            });
            h.announce_sleep();
            if !h.must_step_again() {
                fd.wait();
                h.awake();
            }
            submitter.join().unwrap();
        });
    }

    /// The last driver stops spinning while the manager thread decides whether to
    /// leave the answers to the drivers: if it does, it is woken.
    #[test]
    fn the_last_driver_wakes_a_manager_that_counted_on_it() {
        loom::model(|| {
            let h = Arc::new(Handshake::new(0));
            h.short_tasks.store(true, SeqCst);
            h.inflight.store(1, SeqCst);
            h.start_driving();
            let fd = Arc::new(Eventfd::default());
            let driver = thread::spawn({
                let (h, fd) = (Arc::clone(&h), Arc::clone(&fd));
                move || {
                    if h.stop_driving() {
                        fd.signal();
                    }
                }
            });
            h.announce_sleep();
            assert!(!h.must_step_again());
            if h.driven() {
                // Its poll set leaves out the workers' sockets: only a wake-up helps.
                fd.wait();
            }
            h.awake();
            driver.join().unwrap();
        });
    }
}
