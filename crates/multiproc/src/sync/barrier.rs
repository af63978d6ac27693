//! [`Barrier`]: a meeting point for a fixed number of threads and processes.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::primitive::{
    current_thread, futex_wait, futex_wake, owner_is_dead, AtomicU32, AtomicU64, Ordering, Wake,
};
use super::robust::{Acquired, RawLock};
use crate::backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::identity::FnRef;
use crate::shm::{Shared, SharedMemory};
use crate::sys;

/// The shared-memory layout of a [`Barrier`].
///
/// # State
///
/// `lock` (a robust lock, see [`Lock`](crate::Lock)) guards every field's *writes*:
///
/// | field      | meaning                                                              |
/// |------------|----------------------------------------------------------------------|
/// | `gen`      | generation number, the futex word waiters sleep on; `+1` when a generation ends (all arrived, or broken) |
/// | `outcomes` | bit `g % 64`: generation `g` ended with everyone through (`1`) or broken (`0`) |
/// | `count`    | parties arrived in the current generation                            |
/// | `parties`  | how many parties the barrier waits for (set at creation)             |
/// | `broken`   | `1` while broken: every `wait` fails at once until `reset`           |
/// | `dead_party` | pid of the party whose death broke the barrier, `0` if none (cleared by `reset`) |
///
/// A waiter of generation `g` sleeps while `gen == g`, then reads bit `g % 64` of
/// `outcomes` (valid unless 64 more generations ended meanwhile).
///
/// # Dead parties
///
/// The waiting parties are recorded in a [`Parties`] table beside this struct: the
/// party with arrival index `i` writes its thread id, pid and thread start time to
/// slot `i` under `lock`, before it counts itself. A party in another process can die
/// while it waits (a `SIGKILL`); it must not count as arrived. So:
///
/// * the last party to arrive checks, under `lock`, that every recorded waiter of
///   another process is alive before it releases them (one `poll` of their
///   processes' pidfds, see [`Watches`]);
/// * every waiter wakes each [`LIVENESS_TICK`](backoff::LIVENESS_TICK) and checks one other waiter, the
///   next in arrival order (a ring: while one waiter lives, every death is seen);
///
/// and a dead party breaks the barrier (its pid in `dead_party`). A check reads a slot
/// without the lock, so before breaking the checker takes `lock` and confirms that
/// the generation, the count and the slot are still what it checked. A waiter of this
/// process is never checked: the checker runs, so its process lives, and a thread
/// blocked in `wait` cannot exit.
///
/// # Memory ordering
///
/// Writers hold `lock`; `outcomes` is written before `gen` is incremented with
/// `Release`, and waiters read `gen` with `Acquire` before `outcomes`. The last
/// party's (and the action's) writes happen-before every waiter's return.
#[repr(C)]
#[derive(Debug, Default)]
pub(super) struct RawBarrier {
    lock: RawLock,
    outcomes: AtomicU64,
    gen: AtomicU32,
    count: AtomicU32,
    parties: AtomicU32,
    broken: AtomicU32,
    dead_party: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawBarrier>() == 48);

/// Most waiters the [`Parties`] table records (1 MiB of table, sparse): a death
/// among waiters past this many is not detected.
const MAX_TRACKED: usize = 1 << 16;

/// Bytes per slot of the [`Parties`] table: thread id (`u32`), pid (`u32`), thread
/// start time (`u64`).
const SLOT: usize = 16;

/// A waiting party, as recorded in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Party {
    tid: u32,
    pid: u32,
    start: u64,
}

impl Party {
    fn current() -> Party {
        let (tid, start) = current_thread();
        Party {
            tid,
            pid: std::process::id(),
            start,
        }
    }

    /// Whether a liveness check applies: a recorded party of another process than
    /// `me`. A party of this process is alive: the caller runs, and a thread blocked
    /// in `wait` cannot exit (only its whole process can end).
    fn foreign(self, me: u32) -> bool {
        self.tid != 0 && self.pid != me
    }
}

/// Most processes a [`Watches`] cache keeps a pidfd for.
const MAX_WATCHED: usize = 256;

/// Pidfds of the processes of parties seen waiting, so that checking the waiters
/// before a release is one `poll` rather than a `/proc` read per party (with a
/// `/proc` read per round, a round of a barrier between two processes took 4-7 times
/// as long on the 2-CPU VM).
///
/// A pidfd is opened once per party and kept only if the party's thread is alive
/// with its recorded start time after the pidfd was opened: then the pidfd is that
/// party's process, not a later one that reused its pid. A waiting party can only end
/// with its process, so the pidfd turning readable (the process exited) is its death.
#[derive(Default)]
struct Watches {
    known: Vec<(Party, OwnedFd)>,
}

impl Watches {
    /// Makes sure `p`'s process is watched; `false` if `p` is dead already.
    fn watch(&mut self, p: Party) -> bool {
        if self.known.iter().any(|(k, _)| *k == p) {
            return true;
        }
        let fd = match sys::pidfd::open_if_exists(p.pid as i32) {
            Ok(Some(fd)) => fd,
            Ok(None) => return false,
            // Out of descriptors, say: ask `/proc` this time.
            Err(_) => return !owner_is_dead(p.tid, p.start),
        };
        if owner_is_dead(p.tid, p.start) {
            return false;
        }
        if self.known.len() >= MAX_WATCHED {
            self.known.clear();
        }
        self.known.push((p, fd));
        true
    }

    /// The first of `parties` that is dead.
    fn first_dead(&mut self, parties: &[Party]) -> Option<Party> {
        if let Some(p) = parties.iter().find(|p| !self.watch(**p)) {
            return Some(*p);
        }
        let fds: Vec<BorrowedFd<'_>> = parties
            .iter()
            .filter_map(|p| self.known.iter().find(|(k, _)| k == p))
            .map(|(_, fd)| fd.as_fd())
            .collect();
        if fds.len() != parties.len() {
            // Evicted meanwhile by a full cache: ask `/proc`.
            return parties
                .iter()
                .copied()
                .find(|p| owner_is_dead(p.tid, p.start));
        }
        match sys::pidfd::poll_readable(&fds, Some(Instant::now())) {
            Ok(exited) => exited
                .iter()
                .position(|&x| x)
                .and_then(|i| parties.get(i).copied()),
            Err(_) => parties
                .iter()
                .copied()
                .find(|p| owner_is_dead(p.tid, p.start)),
        }
    }
}

/// The first dead party among `parties` (only those of other processes are checked).
fn first_dead(watches: &Mutex<Watches>, parties: impl Iterator<Item = Party>) -> Option<Party> {
    if cfg!(loom) {
        // Loom models have no dead threads.
        return None;
    }
    let me = std::process::id();
    let foreign: Vec<Party> = parties.filter(|p| p.foreign(me)).collect();
    if foreign.is_empty() {
        return None;
    }
    match watches.try_lock() {
        Ok(mut w) => w.first_dead(&foreign),
        Err(TryLockError::Poisoned(p)) => p.into_inner().first_dead(&foreign),
        // Another thread checks through this handle (or held it when this process
        // was forked): ask `/proc` directly.
        Err(TryLockError::WouldBlock) => {
            foreign.into_iter().find(|p| owner_is_dead(p.tid, p.start))
        }
    }
}

/// The table of waiting parties (see [`RawBarrier`]'s "Dead parties"): one slot per
/// arrival index, in a segment of its own because its size depends on the number of
/// parties. Every index is checked against the segment's length, whatever the shared
/// `parties` and `count` words say.
#[derive(Clone)]
struct Parties {
    mem: SharedMemory,
}

impl Parties {
    /// A table for a barrier of `parties` (`None` if no party ever waits, and under
    /// loom, whose models have no dead threads).
    fn new(parties: u32) -> Result<Option<Parties>> {
        let waiters = (parties as usize).saturating_sub(1).min(MAX_TRACKED);
        if waiters == 0 || cfg!(loom) {
            return Ok(None);
        }
        Ok(Some(Parties {
            mem: SharedMemory::create(waiters * SLOT)?,
        }))
    }

    fn slots(&self) -> usize {
        self.mem.len() / SLOT
    }

    /// Records the party with arrival index `i` (untracked past the table).
    fn record(&self, i: usize, p: Party) {
        if i < self.slots() {
            self.mem
                .atomic_u32(i * SLOT)
                .store(p.tid, Ordering::Relaxed);
            self.mem
                .atomic_u32(i * SLOT + 4)
                .store(p.pid, Ordering::Relaxed);
            self.mem
                .atomic_u64(i * SLOT + 8)
                .store(p.start, Ordering::Relaxed);
        }
    }

    /// The party recorded in slot `i`, if there is such a slot.
    fn get(&self, i: usize) -> Option<Party> {
        (i < self.slots()).then(|| Party {
            tid: self.mem.atomic_u32(i * SLOT).load(Ordering::Relaxed),
            pid: self.mem.atomic_u32(i * SLOT + 4).load(Ordering::Relaxed),
            start: self.mem.atomic_u64(i * SLOT + 8).load(Ordering::Relaxed),
        })
    }

    /// The waiters recorded in slots `0..n`.
    fn waiters(&self, n: usize) -> impl Iterator<Item = Party> + '_ {
        (0..n.min(self.slots())).filter_map(|i| self.get(i))
    }
}

impl RawBarrier {
    fn lock(&self) {
        if self.lock.lock(None) == Some(Acquired::OwnerDied) {
            // A process died in the middle of a barrier operation: its count and
            // generation may be inconsistent, so break the barrier.
            self.break_locked();
        }
    }

    fn unlock(&self) {
        self.lock.unlock(false);
    }

    /// Breaks the current generation: its waiters fail. Call holding `lock`.
    fn break_locked(&self) {
        let g = self.gen.load(Ordering::Relaxed);
        self.broken.store(1, Ordering::Relaxed);
        self.outcomes
            .fetch_and(!(1u64 << (g % 64)), Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.gen.store(g.wrapping_add(1), Ordering::Release);
        futex_wake(&self.gen, u32::MAX);
    }

    /// Breaks the current generation because `dead` died waiting. Call holding `lock`.
    fn break_dead_locked(&self, dead: Party) {
        self.dead_party.store(dead.pid.max(1), Ordering::Relaxed);
        self.break_locked();
    }

    /// The error of a wait on a broken barrier.
    fn broken_error(&self) -> Error {
        let e = Error::new(ErrorKind::BrokenBarrier);
        match self.dead_party.load(Ordering::Relaxed) {
            0 => e,
            pid => e.with_message(format!("a party (pid {pid}) died while it waited")),
        }
    }
}

/// A barrier for a fixed number of parties, threads or processes alike: Python's
/// `multiprocessing.Barrier`.
///
/// Each party calls [`wait`](Self::wait); the last to arrive runs the optional
/// action, then everyone is released and the barrier is ready for the next round.
/// `wait` returns the party's arrival index, `0..parties` (the last to arrive gets
/// `parties - 1`), different for each party, so exactly one can be picked for extra
/// work.
///
/// The barrier *breaks* when a waiting party times out (see also
/// [`with_default_timeout`](Self::with_default_timeout)), when the action panics, on
/// [`abort`](Self::abort), or on [`reset`](Self::reset) while parties wait: every
/// waiter then fails with [`ErrorKind::BrokenBarrier`], the party whose timeout
/// expired too (as Python's `BrokenBarrierError`; its message says it timed out),
/// and later waits fail until `reset`.
///
/// A party in another process that dies while it waits (killed, say) breaks the
/// barrier too: the others fail with [`ErrorKind::BrokenBarrier`], whose message names
/// the dead party's pid, within about 50 ms of the death, and a party arriving later
/// is never released as if the dead one were there. (A thread cannot end while it
/// waits; only its whole process can.)
///
/// The action is a plain `fn()`; it travels to children started by any start method
/// (by its offset in the executable, as process entry points do). It runs with the
/// barrier's internal lock held, so it must not use the barrier.
///
/// # Examples
///
/// ```
/// use multiproc::{Barrier, Process};
///
/// fn party(b: Barrier) -> usize {
///     b.wait().unwrap()
/// }
///
/// let b = Barrier::new(3)?;
/// let kids = (0..2).map(|_| Process::start_with(party, b.clone())).collect::<Result<Vec<_>, _>>()?;
/// let mine = b.wait()?;
/// let mut all: Vec<usize> = kids.into_iter().map(|k| k.join()).collect::<Result<_, _>>()?;
/// all.push(mine);
/// all.sort();
/// assert_eq!(all, [0, 1, 2]);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    raw: Shared<RawBarrier>,
    parties: Option<Parties>,
    /// This handle's (and its clones') cache of the parties' pidfds.
    watches: Arc<Mutex<Watches>>,
    action: Option<fn()>,
    /// Used by [`wait`](Self::wait); travels with the handle to children.
    timeout: Option<Duration>,
}

impl Barrier {
    /// Creates a barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `parties` is 0; [`ErrorKind::Os`] if the segment
    /// cannot be created.
    pub fn new(parties: u32) -> Result<Barrier> {
        Self::make(parties, None)
    }

    /// Creates a barrier whose last arriving party runs `action` before the others
    /// are released.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// fn hello() {
    ///     println!("everyone is here");
    /// }
    ///
    /// let b = multiproc::Barrier::with_action(1, hello)?;
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn with_action(parties: u32, action: fn()) -> Result<Barrier> {
        Self::make(parties, Some(action))
    }

    fn make(parties: u32, action: Option<fn()>) -> Result<Barrier> {
        if parties == 0 {
            return Err(Error::new(ErrorKind::InvalidInput)
                .with_message("a barrier needs at least one party"));
        }
        let raw: Shared<RawBarrier> = Shared::new()?;
        raw.parties.store(parties, Ordering::Relaxed);
        Ok(Barrier {
            raw,
            parties: Parties::new(parties)?,
            watches: Arc::default(),
            action,
            timeout: None,
        })
    }

    /// Makes [`wait`](Self::wait) on this handle (and on its clones and the copies
    /// passed to children, made after this call) time out after `timeout`, Python's
    /// `Barrier(parties, timeout=...)`. [`wait_timeout`](Self::wait_timeout) still
    /// uses its own timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::{Barrier, ErrorKind};
    ///
    /// let b = Barrier::new(2)?.with_default_timeout(Duration::from_millis(5));
    /// assert_eq!(b.default_timeout(), Some(Duration::from_millis(5)));
    /// assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    /// assert!(b.is_broken());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn with_default_timeout(mut self, timeout: Duration) -> Barrier {
        self.timeout = Some(timeout);
        self
    }

    /// The timeout [`wait`](Self::wait) uses, if one was set.
    pub fn default_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Waits until all parties have called `wait`; returns this party's arrival index.
    ///
    /// With a [default timeout](Self::with_default_timeout), this is
    /// [`wait_timeout`](Self::wait_timeout) with it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`] if the barrier is or becomes broken (by this
    /// party's default timeout too).
    ///
    /// # Panics
    ///
    /// Resumes the action's panic in the party that ran it (the barrier is broken
    /// first, so the other parties fail instead of hanging).
    pub fn wait(&self) -> Result<usize> {
        match self.timeout {
            Some(t) => self.wait_timeout(t),
            None => self.wait_until(None),
        }
    }

    /// As [`wait`](Self::wait), breaking the barrier if not everyone arrives within
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`] if the barrier is or becomes broken, including
    /// by this party's timeout (then the error's message says so).
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::{Barrier, ErrorKind};
    ///
    /// let b = Barrier::new(2)?;
    /// let e = b.wait_timeout(Duration::from_millis(5)).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
    /// assert!(b.is_broken());
    /// b.reset();
    /// assert!(!b.is_broken());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<usize> {
        let raw = &*self.raw;
        raw.lock();
        if raw.broken.load(Ordering::Relaxed) != 0 {
            let e = raw.broken_error();
            raw.unlock();
            return Err(e);
        }
        let g = raw.gen.load(Ordering::Relaxed);
        let index = raw.count.load(Ordering::Relaxed);
        let parties = raw.parties.load(Ordering::Relaxed);
        if index.saturating_add(1) >= parties {
            // Nobody is released as if a dead party had arrived.
            let dead = self
                .parties
                .as_ref()
                .and_then(|t| first_dead(&self.watches, t.waiters(index as usize)));
            if let Some(dead) = dead {
                raw.break_dead_locked(dead);
                let e = raw.broken_error();
                raw.unlock();
                return Err(e);
            }
            if let Some(action) = self.action {
                if let Err(panic) = std::panic::catch_unwind(action) {
                    raw.break_locked();
                    raw.unlock();
                    std::panic::resume_unwind(panic);
                }
            }
            raw.count.store(0, Ordering::Relaxed);
            raw.outcomes.fetch_or(1u64 << (g % 64), Ordering::Relaxed);
            raw.gen.store(g.wrapping_add(1), Ordering::Release);
            raw.unlock();
            futex_wake(&raw.gen, u32::MAX);
            return Ok(index as usize);
        }
        if let Some(t) = &self.parties {
            t.record(index as usize, Party::current());
        }
        raw.count.store(index + 1, Ordering::Relaxed);
        raw.unlock();
        while raw.gen.load(Ordering::Acquire) == g {
            let nap = match backoff::nap(deadline) {
                Some(nap) => Some(nap),
                None => {
                    raw.lock();
                    let timed_out = raw.gen.load(Ordering::Relaxed) == g;
                    if timed_out {
                        raw.break_locked();
                    }
                    raw.unlock();
                    if timed_out {
                        return Err(Error::new(ErrorKind::BrokenBarrier)
                            .with_message("timed out; the barrier is now broken"));
                    }
                    break;
                }
            };
            if futex_wait(&raw.gen, g, nap) == Wake::TimedOut {
                self.check_neighbour(g, index as usize);
            }
        }
        if raw.outcomes.load(Ordering::Relaxed) & (1u64 << (g % 64)) != 0 {
            Ok(index as usize)
        } else {
            Err(raw.broken_error())
        }
    }

    /// The liveness tick of the waiter with arrival index `me` in generation `g`:
    /// checks the next waiter in arrival order and breaks the barrier if it died.
    fn check_neighbour(&self, g: u32, me: usize) {
        let Some(table) = &self.parties else { return };
        let raw = &*self.raw;
        let count = raw.count.load(Ordering::Relaxed) as usize;
        if count < 2 {
            return;
        }
        let next = (me + 1) % count;
        let Some(p) = table.get(next).filter(|_| next != me) else {
            return;
        };
        if first_dead(&self.watches, std::iter::once(p)).is_none() {
            return;
        }
        raw.lock();
        let still = raw.gen.load(Ordering::Relaxed) == g
            && next < raw.count.load(Ordering::Relaxed) as usize
            && table.get(next) == Some(p);
        if still {
            raw.break_dead_locked(p);
        }
        raw.unlock();
    }

    /// Breaks the barrier: current and future waiters fail until [`reset`](Self::reset).
    pub fn abort(&self) {
        self.raw.lock();
        if self.raw.broken.load(Ordering::Relaxed) == 0 {
            self.raw.break_locked();
        }
        self.raw.unlock();
    }

    /// Returns the barrier to its empty, unbroken state; parties waiting now fail
    /// with [`ErrorKind::BrokenBarrier`].
    pub fn reset(&self) {
        self.raw.lock();
        if self.raw.count.load(Ordering::Relaxed) != 0 {
            self.raw.break_locked();
        }
        self.raw.broken.store(0, Ordering::Relaxed);
        self.raw.dead_party.store(0, Ordering::Relaxed);
        self.raw.unlock();
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.raw.broken.load(Ordering::Relaxed) != 0
    }

    /// The number of parties the barrier waits for.
    pub fn parties(&self) -> u32 {
        self.raw.parties.load(Ordering::Relaxed)
    }

    /// How many parties are waiting now (a snapshot). Python's `n_waiting`.
    pub fn n_waiting(&self) -> u32 {
        self.raw.count.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire<S, P> {
    raw: S,
    parties: Option<P>,
    action: Option<FnRef>,
    timeout: Option<Duration>,
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Wire {
            raw: &self.raw,
            parties: self.parties.as_ref().map(|p| &p.mem),
            action: self.action.map(FnRef::new),
            timeout: self.timeout,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = Wire::<Shared<RawBarrier>, SharedMemory>::deserialize(d)?;
        let action = match w.action {
            Some(f) => Some(f.resolve().ok_or_else(|| {
                serde::de::Error::custom("the barrier's action comes from a different executable")
            })?),
            None => None,
        };
        Ok(Barrier {
            raw: w.raw,
            parties: w.parties.map(|mem| Parties { mem }),
            watches: Arc::default(),
            action,
            timeout: w.timeout,
        })
    }
}
