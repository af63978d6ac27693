//! A signal storm: every blocking call with a timeout, while a `SIGALRM` handler runs
//! about once a millisecond on every thread of the process, returns its timeout
//! within the deadline plus a margin (issue 9, item 8).
//!
//! A handler without `SA_RESTART` turns each sleep in `poll`, `futex` and friends into
//! `EINTR`; a wait that restarted its whole timeout after each one would never end.
//! The storm is a thread that sends the signal to every other thread (`tgkill`)
//! rather than an interval timer: a process-directed `SIGALRM` lands on one thread
//! of the kernel's choosing (usually the harness's idle main thread), so the thread
//! that waits, or the library's own threads (the pool manager, the reaper), might
//! never see one.
//!
//! Its own test binary with one test: the handler and the storm are process-wide. The
//! storm runs with `SA_RESTART` off, then on. If a call overruns, the storm pauses so
//! that the call can finish, and the test reports every call that overran.
//!
//! # Safety
//!
//! The `unsafe` calls install a `SIGALRM` handler that only touches an atomic
//! (async-signal-safe), from an all-zero `sigaction` (a valid one), and send the signal
//! with `tgkill` to this process's own threads only.
#![allow(unsafe_code)]

mod util;

use util::{sleep_ms, sleeps_forever};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use multiproc::pool::{self, Backend, Pool, WaitFor};
use multiproc::sync::TryLockError;
use multiproc::{
    Barrier, BoundedSemaphore, Condition, ErrorKind, Event, JoinableQueue, Lock, Pipe, Queue,
    RLock, Semaphore, StartMethod, Thread,
};

/// Every timed call waits this long.
const DEADLINE: Duration = Duration::from_millis(200);
/// How late a call may return (the machine is shared and loaded).
const MARGIN: Duration = Duration::from_millis(1500);

/// Signals handled so far.
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// Whether the storm is sending.
static STORMING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_alarm(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn install_handler(restart: bool) {
    // SAFETY: all-zero bytes are a valid `sigaction` (no handler, no flags, empty mask).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as usize;
    sa.sa_flags = if restart { libc::SA_RESTART } else { 0 };
    // SAFETY: `sa.sa_mask` is a valid, writable signal set.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: a valid `sigaction` whose handler only touches an atomic
    // (async-signal-safe); the old action is not asked for.
    let r = unsafe { libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()) };
    assert_eq!(r, 0, "sigaction");
}

/// Sends `SIGALRM` to every other thread of this process about once a millisecond
/// while [`STORMING`] is set.
fn start_storm(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("storm".into())
        .spawn(move || {
            let pid = std::process::id() as libc::pid_t;
            let me = rustix::thread::gettid().as_raw_nonzero().get();
            let mut tids = Vec::new();
            let mut refreshed = Instant::now() - Duration::from_secs(1);
            while !stop.load(Ordering::Relaxed) {
                if refreshed.elapsed() > Duration::from_millis(10) {
                    tids = std::fs::read_dir("/proc/self/task")
                        .map(|d| {
                            d.flatten()
                                .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
                                .filter(|&t| t != me)
                                .collect()
                        })
                        .unwrap_or_default();
                    refreshed = Instant::now();
                }
                if STORMING.load(Ordering::Relaxed) {
                    for &t in &tids {
                        // SAFETY: tgkill with this process's pid only reaches its own
                        // threads (a thread gone meanwhile gives ESRCH); the handler
                        // is installed before the storm starts.
                        unsafe { libc::syscall(libc::SYS_tgkill, pid, t, libc::SIGALRM) };
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .expect("spawn storm")
}

/// Measures timed calls and collects the ones that overran or returned wrongly.
struct Judge {
    failures: Vec<String>,
    calls: usize,
    /// Signals handled during the calls, in all.
    handled: u64,
    started: Arc<AtomicU64>,
    epoch: Instant,
}

impl Judge {
    /// Runs `call`, which makes one call with a [`DEADLINE`] timeout and returns
    /// `Ok(())` if it reported the timeout as it should.
    fn timed(&mut self, name: &str, call: impl FnOnce() -> Result<(), String>) {
        STORMING.store(true, Ordering::SeqCst);
        let before = HANDLED.load(Ordering::Relaxed);
        let t = Instant::now();
        self.started.store(
            t.duration_since(self.epoch).as_micros() as u64 + 1,
            Ordering::SeqCst,
        );
        let outcome = call();
        let elapsed = t.elapsed();
        self.started.store(0, Ordering::SeqCst);
        let handled = HANDLED.load(Ordering::Relaxed) - before;
        let paused = !STORMING.swap(true, Ordering::SeqCst);
        self.calls += 1;
        eprintln!("{name}: {elapsed:?}, {handled} signals handled");
        if let Err(e) = outcome {
            self.failures
                .push(format!("{name}: {e} (after {elapsed:?})"));
        } else if paused || elapsed > DEADLINE + MARGIN {
            self.failures.push(format!(
                "{name}: returned after {elapsed:?}, deadline {DEADLINE:?}"
            ));
        } else if elapsed < DEADLINE {
            self.failures
                .push(format!("{name}: timed out early, after {elapsed:?}"));
        } else if handled == 0 {
            // Each call must have been interrupted; how often depends on the load
            // (the storm thread also waits for a CPU): see the total in the test.
            self.failures
                .push(format!("{name}: no signal during the call"));
        }
        self.handled += handled;
    }
}

/// Pauses the storm when a call overruns its deadline plus margin, so that a call
/// that restarts its timeout after each signal still ends (and is reported).
fn start_rescuer(started: Arc<AtomicU64>, epoch: Instant, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("rescuer".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let s = started.load(Ordering::SeqCst);
                if s != 0 {
                    let since = epoch.elapsed().saturating_sub(Duration::from_micros(s - 1));
                    if since > DEADLINE + MARGIN {
                        STORMING.store(false, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .expect("spawn rescuer");
}

fn timeout_kind(r: multiproc::Result<impl std::fmt::Debug>) -> Result<(), String> {
    match r {
        Err(e) if e.kind() == ErrorKind::Timeout => Ok(()),
        other => Err(format!("expected a timeout, got {other:?}")),
    }
}

fn is_false(b: bool) -> Result<(), String> {
    if b {
        Err("reported success".into())
    } else {
        Ok(())
    }
}

fn processes(j: &mut Judge) {
    for m in StartMethod::ALL {
        let mut p = util::builder(m).start(sleeps_forever).expect("start");
        j.timed(&format!("Process::join_timeout ({m})"), || {
            timeout_kind(p.join_timeout(DEADLINE))
        });
        j.timed(&format!("ipc::wait on a process ({m})"), || {
            let r = multiproc::ipc::wait(&[&p], Some(DEADLINE)).map_err(|e| e.to_string())?;
            if r.is_empty() {
                Ok(())
            } else {
                Err(format!("ready: {r:?}"))
            }
        });
        p.kill().expect("kill");
        assert!(p.join().is_err());
    }
    let (tx, rx) = mpsc::channel::<()>();
    let mut t = Thread::start(move || {
        let _ = rx.recv();
    })
    .expect("thread");
    j.timed("Thread::join_timeout", || {
        timeout_kind(t.join_timeout(DEADLINE))
    });
    drop(tx);
    t.join().expect("join");
}

fn pipes(j: &mut Judge) {
    let (a, b) = Pipe::builder().capacity(4096).build().expect("pipe");
    j.timed("Connection::recv_timeout", || {
        match b.recv_timeout::<u32>(DEADLINE) {
            Err(e) if e.is_timeout() => Ok(()),
            other => Err(format!("expected a timeout, got {other:?}")),
        }
    });
    j.timed("Connection::recv_bytes_into_timeout", || {
        let mut buf = Vec::new();
        match b.recv_bytes_into_timeout(&mut buf, DEADLINE) {
            Err(e) if e.is_timeout() => Ok(()),
            other => Err(format!("expected a timeout, got {other:?}")),
        }
    });
    j.timed("Connection::poll", || is_false(b.poll(DEADLINE)));
    j.timed("ipc::wait on connections", || {
        let r = multiproc::ipc::wait(&[&b], Some(DEADLINE)).map_err(|e| e.to_string())?;
        if r.is_empty() {
            Ok(())
        } else {
            Err(format!("ready: {r:?}"))
        }
    });
    while a.try_send_bytes(&[7u8; 512]).is_ok() {}
    j.timed("Connection::send_timeout (full)", || {
        match a.send_timeout(vec![7u8; 512], DEADLINE) {
            Err(e) if e.is_timeout() => Ok(()),
            other => Err(format!("expected a timeout, got {other:?}")),
        }
    });
    j.timed("Connection::send_bytes_timeout (full)", || {
        timeout_kind(a.send_bytes_timeout(&[7u8; 512], DEADLINE))
    });
}

fn sockets_and_channels(j: &mut Judge) {
    use multiproc::ipc::{Address, Client, Listener, Select};
    let l = Listener::bind(
        &Address::Abstract(util::unique_name("mp-storm").into_bytes()),
        None,
    )
    .expect("bind");
    let a = l.address().clone();
    let server = std::thread::spawn(move || l.accept().expect("accept"));
    let c = Client::connect(&a, None).expect("connect");
    let s = server.join().unwrap();
    j.timed("SocketConnection::recv_timeout", || {
        match c.recv_timeout::<u32>(DEADLINE) {
            Err(e) if e.is_timeout() => Ok(()),
            other => Err(format!("expected a timeout, got {other:?}")),
        }
    });
    j.timed("SocketConnection::poll", || is_false(c.poll(DEADLINE)));
    drop(s);

    let (tx, rx) = multiproc::ipc::channel::<u32>().expect("channel");
    j.timed("ipc::Receiver::recv_timeout", || {
        match rx.recv_timeout(DEADLINE) {
            Err(e) if e.is_timeout() => Ok(()),
            other => Err(format!("expected a timeout, got {other:?}")),
        }
    });
    j.timed("ipc::Select::ready_timeout", || {
        let mut sel = Select::new();
        sel.recv(&rx);
        match sel.ready_timeout(DEADLINE) {
            Ok(None) => Ok(()),
            other => Err(format!("expected nothing ready, got {other:?}")),
        }
    });
    drop(tx);

    let mut t = multiproc::thread::Timer::start(Duration::from_secs(60), || 1u8).expect("timer");
    j.timed("Timer::join_timeout", || {
        timeout_kind(t.join_timeout(DEADLINE))
    });
    t.cancel();
    assert_eq!(t.join().expect("join"), None);
    // A timer's own wait keeps its deadline too: it fires on time, not late.
    let t = multiproc::thread::Timer::start(DEADLINE, || 2u8).expect("timer");
    j.timed("Timer fires after its interval", || match t.join() {
        Ok(Some(2)) => Ok(()),
        other => Err(format!("expected Some(2), got {other:?}")),
    });
}

fn queues(j: &mut Judge) {
    let q: Queue<u32> = Queue::bounded(1).expect("queue");
    j.timed("Queue::get_timeout", || match q.get_timeout(DEADLINE) {
        Err(e) if e.is_timeout() => Ok(()),
        other => Err(format!("expected a timeout, got {other:?}")),
    });
    q.put(1).expect("put");
    j.timed("Queue::put_timeout (full)", || {
        match q.put_timeout(2, DEADLINE) {
            Err(e) if e.is_timeout() => Ok(()),
            other => Err(format!("expected a timeout, got {other:?}")),
        }
    });
    let jq: JoinableQueue<u32> = JoinableQueue::new().expect("joinable");
    jq.put(1).expect("put");
    j.timed("JoinableQueue::join_timeout", || {
        is_false(jq.join_timeout(DEADLINE))
    });
}

/// Runs `hold` on another thread until the returned sender is dropped.
fn held_elsewhere(
    hold: impl FnOnce(mpsc::Receiver<()>, mpsc::Sender<()>) + Send + 'static,
) -> mpsc::Sender<()> {
    let (release_tx, release_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || hold(release_rx, ready_tx));
    ready_rx.recv().expect("holder ready");
    release_tx
}

fn locks(j: &mut Judge) {
    let lock = Lock::new().expect("lock");
    let l2 = lock.clone();
    let release = held_elsewhere(move |release, ready| {
        let _g = l2.lock().expect("lock");
        ready.send(()).unwrap();
        let _ = release.recv();
    });
    j.timed("Lock::lock_timeout", || match lock.lock_timeout(DEADLINE) {
        Err(TryLockError::WouldBlock) => Ok(()),
        Ok(_) => Err("got the lock".into()),
        Err(e) => Err(format!("{e:?}")),
    });
    drop(release);

    let rlock = RLock::new().expect("rlock");
    let r2 = rlock.clone();
    let release = held_elsewhere(move |release, ready| {
        let _g = r2.lock().expect("rlock");
        ready.send(()).unwrap();
        let _ = release.recv();
    });
    j.timed("RLock::lock_timeout", || {
        match rlock.lock_timeout(DEADLINE) {
            Err(TryLockError::WouldBlock) => Ok(()),
            Ok(_) => Err("got the lock".into()),
            Err(e) => Err(format!("{e:?}")),
        }
    });
    drop(release);

    let s = Semaphore::new(0).expect("semaphore");
    j.timed("Semaphore::acquire_timeout", || {
        is_false(s.acquire_timeout(DEADLINE))
    });
    let bs = BoundedSemaphore::new(1).expect("bounded");
    assert!(bs.acquire_timeout(Duration::ZERO));
    j.timed("BoundedSemaphore::acquire_timeout", || {
        is_false(bs.acquire_timeout(DEADLINE))
    });
    let e = Event::new().expect("event");
    j.timed("Event::wait_timeout", || is_false(e.wait_timeout(DEADLINE)));

    let c = Condition::new().expect("condition");
    j.timed("Condition::wait_timeout", || {
        let g = c.lock().map_err(|e| format!("{e:?}"))?;
        let (_g, notified) = c.wait_timeout(g, DEADLINE).map_err(|e| format!("{e:?}"))?;
        is_false(notified)
    });
    j.timed("Condition::wait_for_timeout", || {
        let g = c.lock().map_err(|e| format!("{e:?}"))?;
        let (_g, ok) = c
            .wait_for_timeout(g, DEADLINE, || false)
            .map_err(|e| format!("{e:?}"))?;
        is_false(ok)
    });
    let b = Barrier::new(2).expect("barrier");
    j.timed("Barrier::wait_timeout", || match b.wait_timeout(DEADLINE) {
        Err(e) if e.kind() == ErrorKind::BrokenBarrier => Ok(()),
        other => Err(format!("expected a broken barrier, got {other:?}")),
    });
}

fn pools(j: &mut Judge) {
    for backend in [Backend::Threads, Backend::Processes] {
        let pool = Pool::builder()
            .backend(backend)
            .workers(1)
            .build()
            .expect("pool");
        let mut h = pool.submit(sleep_ms, 60_000);
        j.timed(&format!("TaskHandle::wait_timeout ({backend:?})"), || {
            is_false(h.wait_timeout(DEADLINE))
        });
        j.timed(&format!("TaskHandle::join_timeout ({backend:?})"), || {
            timeout_kind(h.join_timeout(DEADLINE))
        });
        let hs = vec![pool.submit(sleep_ms, 1)];
        j.timed(&format!("pool::wait ({backend:?})"), || {
            let done = pool::wait(&hs, WaitFor::All, Some(DEADLINE));
            if done.is_empty() {
                Ok(())
            } else {
                Err(format!("done: {done:?}"))
            }
        });
        let mut it = pool::as_completed(hs);
        j.timed(&format!("AsCompleted::next_timeout ({backend:?})"), || {
            timeout_kind(it.next_timeout(DEADLINE))
        });
        let mut m = pool.map_async(sleep_ms, vec![1]);
        j.timed(&format!("MapHandle::wait_timeout ({backend:?})"), || {
            is_false(m.wait_timeout(DEADLINE))
        });
        j.timed(&format!("MapHandle::join_timeout ({backend:?})"), || {
            timeout_kind(m.join_timeout(DEADLINE))
        });
        let mut im = pool.imap(sleep_ms, vec![1]);
        j.timed(&format!("Imap::next_timeout ({backend:?})"), || {
            timeout_kind(im.next_timeout(DEADLINE))
        });
        let mut iu = pool.imap_unordered(sleep_ms, vec![1]);
        j.timed(
            &format!("ImapUnordered::next_timeout ({backend:?})"),
            || timeout_kind(iu.next_timeout(DEADLINE)),
        );
        drop((it, m, im, iu, h));
        pool.terminate();

        // A deadline the pool's own threads keep: the task's time limit.
        let pool = Pool::builder()
            .backend(backend)
            .workers(1)
            .task_timeout(DEADLINE)
            .build()
            .expect("pool");
        let h = pool.submit(sleep_ms, 60_000);
        j.timed(&format!("Builder::task_timeout ({backend:?})"), || {
            timeout_kind(h.join())
        });
        pool.terminate();
    }
}

#[test]
fn every_timed_wait_keeps_its_deadline_in_a_signal_storm() {
    let _w = util::watchdog(Duration::from_secs(600));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let mut failures = Vec::new();
    let mut calls = 0;
    let mut handled = 0;
    for restart in [false, true] {
        install_handler(restart);
        let storm = start_storm(Arc::clone(&stop));
        start_rescuer(Arc::clone(&started), epoch, Arc::clone(&stop));
        let mut j = Judge {
            failures: Vec::new(),
            calls: 0,
            handled: 0,
            started: Arc::clone(&started),
            epoch,
        };
        processes(&mut j);
        pipes(&mut j);
        sockets_and_channels(&mut j);
        queues(&mut j);
        locks(&mut j);
        pools(&mut j);
        STORMING.store(false, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        storm.join().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stop.store(false, Ordering::SeqCst);
        calls += j.calls;
        handled += j.handled;
        failures.extend(
            j.failures
                .into_iter()
                .map(|f| format!("[SA_RESTART {}] {f}", if restart { "on" } else { "off" })),
        );
    }
    assert!(calls >= 60, "only {calls} calls ran");
    // About 200 per call on an idle machine (one a millisecond).
    assert!(
        handled >= 10 * calls as u64,
        "only {handled} signals in {calls} calls: the storm did not blow"
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} timed calls failed in the storm:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
