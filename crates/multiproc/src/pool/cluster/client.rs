//! The client side: [`ClusterPool`], the third backend of [`Pool`](crate::pool::Pool).
//!
//! Two threads, each with its own connection:
//!
//! - the *sender* takes queued tasks while fewer than the window are in Redis, marks
//!   each started (so `cancel` fails from then on), and writes them in one pipeline
//!   (`[SET blob EX]; XADD {P}:tasks * h n p s` each); it also refreshes the client's
//!   lease and the list of live hosts. Tasks submitted while nothing else is queued
//!   or outstanding (one `apply` at a time) are written by the submitting thread
//!   itself when the sender's connection is free, which saves a wake-up of the
//!   sender on the way of the task;
//! - the *receiver* reads the client's result stream (`XREAD BLOCK`, with an
//!   `XTRIM MINID` of what it has read in the same round trip every 64 entries or
//!   1 MiB, or when idle), checks each entry's MAC, completes the task's slot with the bytes exactly as a local worker
//!   would have sent them, and drops a result whose task is no longer outstanding (a
//!   duplicate, from a host that was given up on but finished after all).
//!
//! When Redis cannot be reached, both reconnect with backoff; after `broker_timeout`
//! every queued and outstanding task fails with `BrokerUnavailable`, and so does every
//! task submitted while Redis stays away. When Redis comes back with another `run_id`
//! (restarted, its data lost), every outstanding task is written again: the client
//! keeps each payload until its result arrives.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Value;

use super::config::{hex, random_id, Resolved};
use super::conn::{self, broker_error, is_connection_error};
use super::host::{build_id, build_key, HostInfo};
use super::wire::{self, BlobRef, Entry, ResultHeader, Status, TaskHeader, WireError};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::slot::Completion;

/// How long a blocking read waits in Redis before it looks at the pool's state.
const BLOCK: Duration = Duration::from_millis(500);
/// Tasks written per pipeline at most.
const BATCH: usize = 512;
/// The result stream is trimmed once this many entries have been read since the last
/// trim…
const TRIM_EVERY: usize = 64;
/// …or this many bytes (or when it is idle).
const TRIM_BYTES: usize = 1 << 20;

/// One unit of work for the cluster: a registered task and its encoded chunk.
pub(crate) struct ClusterTask {
    pub(crate) key: u64,
    pub(crate) name: &'static str,
    pub(crate) items: u32,
    pub(crate) payload: Arc<Vec<u8>>,
    pub(crate) sink: Arc<dyn Completion>,
    /// Reruns left after a host reports that the task's worker died or timed out.
    pub(crate) retries: u32,
}

struct Sent {
    t: ClusterTask,
    attempt: u8,
    /// Written to Redis (as far as this client knows).
    sent: bool,
}

struct State {
    /// Submitted, not yet in Redis: `(task id, task, attempt)`.
    queue: VecDeque<(u64, ClusterTask, u8)>,
    outstanding: HashMap<u64, Sent>,
    closed: bool,
    terminated: bool,
    /// The threads are to exit.
    stop: bool,
    /// Redis has been unreachable for longer than `broker_timeout`: why.
    unavailable: Option<String>,
    /// Redis lost its data: write every outstanding task again.
    resend_all: bool,
    /// A host found the lease key gone: write it now.
    renew_lease: bool,
    hosts: Vec<HostInfo>,
}

/// A cluster pool's counters and the hosts it sees ([`Pool::cluster_stats`](crate::pool::Pool::cluster_stats)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClusterStats {
    /// The live worker hosts, as of the last refresh (every heartbeat).
    pub hosts: Vec<HostStatus>,
    /// Results that arrived for tasks already answered, and were dropped.
    pub duplicates_dropped: u64,
    /// Results of tasks that were delivered to more than one host (a host
    /// disappeared while running them).
    pub redelivered: u64,
    /// Result entries whose MAC did not verify, dropped.
    pub unauthenticated_dropped: u64,
    /// Connections re-established to Redis.
    pub reconnects: u64,
    /// Tasks written again because Redis lost them (restarted empty).
    pub resubmitted: u64,
}

/// One live worker host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStatus {
    /// The host's id (`hostname-pid-random`).
    pub id: String,
    /// Its GNU build-id (hex), or the SHA-256 of its executable.
    pub build_id: String,
    /// Tasks it runs at once.
    pub slots: u32,
    /// Tasks it is running.
    pub running: u32,
    /// Task entries it dropped because their MAC did not verify.
    pub unauthenticated: u64,
    /// Tasks it stopped, or never started, because their client terminated the pool
    /// or is gone (a running one's local worker is killed).
    pub cancelled: u64,
    /// How many task keys it registers.
    pub tasks: usize,
}

#[derive(Default)]
struct Stats {
    duplicates: AtomicU64,
    redelivered: AtomicU64,
    unauthenticated: AtomicU64,
    reconnects: AtomicU64,
    resubmitted: AtomicU64,
}

struct Shared {
    st: Mutex<State>,
    cv: Condvar,
    cfg: Resolved,
    id: [u8; 16],
    idx: String,
    next: AtomicU64,
    stats: Stats,
    run_id: Mutex<String>,
    /// The sender's connection (`None` while it is down). A thread that submits a
    /// lone task writes it itself when this is free ([`Shared::send_now`]).
    scon: Mutex<Option<redis::Connection>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client side of a cluster pool.
pub(crate) struct ClusterPool {
    sh: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for ClusterPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPool")
            .field("cluster", &self.sh.cfg.opts.name)
            .field("client", &self.sh.idx)
            .finish()
    }
}

impl ClusterPool {
    /// Connects, checks the server, creates the task group and this client's result
    /// stream and lease, and starts the two threads.
    pub(crate) fn start(cfg: Resolved) -> Result<ClusterPool> {
        let id = random_id();
        let sh = Arc::new(Shared {
            st: Mutex::new(State {
                queue: VecDeque::new(),
                outstanding: HashMap::new(),
                closed: false,
                terminated: false,
                stop: false,
                unavailable: None,
                resend_all: false,
                renew_lease: false,
                hosts: Vec::new(),
            }),
            cv: Condvar::new(),
            idx: hex(&id),
            id,
            cfg,
            next: AtomicU64::new(1),
            stats: Stats::default(),
            run_id: Mutex::new(String::new()),
            scon: Mutex::new(None),
        });
        let mut send_con = conn::connect(&sh.cfg, sh.cfg.opts.command_timeout)?;
        let info = conn::server_info(&mut send_con)?;
        if let Some(w) = &info.warning {
            eprintln!("multiproc cluster: warning: {w}");
        }
        sh.setup(&mut send_con)?;
        sh.refresh_hosts(&mut send_con)?;
        let recv_con = conn::connect(&sh.cfg, BLOCK + Duration::from_secs(5))?;
        *lock(&sh.scon) = Some(send_con);
        let mut threads = Vec::new();
        let mut recv_con = Some(recv_con);
        for name in ["multiproc-cluster-send", "multiproc-cluster-recv"] {
            let s = Arc::clone(&sh);
            // The sender's connection is `scon`; the receiver takes its own.
            let con = if name.ends_with("send") {
                None
            } else {
                recv_con.take()
            };
            let spawned = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || match con {
                    None => s.sender(),
                    Some(con) => s.receiver(con),
                });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    lock(&sh.st).stop = true;
                    sh.cv.notify_all();
                    return Err(Error::new(ErrorKind::Start).with_source(e));
                }
            }
        }
        Ok(ClusterPool {
            sh,
            threads: Mutex::new(threads),
        })
    }

    /// Queues tasks; a closed pool, or one whose broker has been unreachable past its
    /// timeout, fails them at once.
    ///
    /// Tasks submitted while nothing else is queued or outstanding (one `apply` at a
    /// time, the first chunks of a map) are written to Redis from the calling thread,
    /// if the sender's connection is free: a round trip on this thread instead of a
    /// wake-up of the sender thread (about 20 µs when its CPU is idle) before it.
    /// Otherwise the sender thread writes them, batched.
    pub(crate) fn submit_all(&self, ts: Vec<ClusterTask>) {
        let mut st = lock(&self.sh.st);
        let refuse = if st.closed {
            Some(
                Error::new(ErrorKind::PoolClosed)
                    .with_message("the task was submitted after close()"),
            )
        } else {
            st.unavailable
                .as_ref()
                .map(|m| Error::new(ErrorKind::BrokerUnavailable).with_message(m.clone()))
        };
        if let Some(e) = refuse {
            drop(st);
            for t in ts {
                t.sink.fail(e.duplicate());
            }
            return;
        }
        let lone =
            st.queue.is_empty() && st.outstanding.is_empty() && !st.resend_all && !st.renew_lease;
        for t in ts {
            let id = self.sh.next.fetch_add(1, Ordering::Relaxed);
            st.queue.push_back((id, t, 0));
        }
        drop(st);
        if lone && self.sh.send_now() {
            return;
        }
        self.sh.cv.notify_all();
    }

    /// The slots of the live hosts (at least 1), for automatic chunking.
    pub(crate) fn slots(&self) -> usize {
        let st = lock(&self.sh.st);
        (st.hosts.iter().map(|h| h.slots as usize).sum::<usize>()).max(1)
    }

    pub(crate) fn stats(&self) -> ClusterStats {
        let s = &self.sh.stats;
        ClusterStats {
            hosts: lock(&self.sh.st)
                .hosts
                .iter()
                .map(|h| HostStatus {
                    id: h.id.clone(),
                    build_id: h.build_id.clone(),
                    slots: h.slots,
                    running: h.running,
                    unauthenticated: h.unauthenticated,
                    cancelled: h.cancelled,
                    tasks: h.keys.len(),
                })
                .collect(),
            duplicates_dropped: s.duplicates.load(Ordering::Relaxed),
            redelivered: s.redelivered.load(Ordering::Relaxed),
            unauthenticated_dropped: s.unauthenticated.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            resubmitted: s.resubmitted.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn close(&self) {
        lock(&self.sh.st).closed = true;
        self.sh.cv.notify_all();
    }

    /// Fails every unfinished task with `PoolClosed`, and deletes this client's lease
    /// key: at their next heartbeat, hosts stop its running tasks (killing the local
    /// workers) and drop its queued ones.
    pub(crate) fn terminate(&self) {
        let dropped = {
            let mut st = lock(&self.sh.st);
            st.closed = true;
            st.terminated = true;
            st.take_all()
        };
        self.sh.cv.notify_all();
        let e = Error::new(ErrorKind::PoolClosed).with_message("the pool was terminated");
        for s in dropped {
            s.fail(e.duplicate());
        }
        self.join();
    }

    /// Closes, waits for every task to finish, stops the threads and deletes this
    /// client's keys.
    pub(crate) fn join(&self) {
        self.close();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for ClusterPool {
    fn drop(&mut self) {
        self.close();
    }
}

impl State {
    /// Removes every queued and outstanding task; returns their sinks.
    fn take_all(&mut self) -> Vec<Arc<dyn Completion>> {
        let mut v: Vec<_> = self.queue.drain(..).map(|(_, t, _)| t.sink).collect();
        v.extend(self.outstanding.drain().map(|(_, s)| s.t.sink));
        v
    }

    fn drained(&self) -> bool {
        self.queue.is_empty() && self.outstanding.is_empty()
    }

    fn window(&self, cfg: &Resolved) -> usize {
        cfg.opts.window.unwrap_or_else(|| {
            // Enough for every host to read ahead while tasks are short.
            let slots: usize = self.hosts.iter().map(|h| h.slots as usize).sum();
            (2 * slots * (1 + super::host::PREFETCH)).max(64)
        })
    }
}

impl Shared {
    /// After (re)connecting: checks the server, notices a restart, makes sure the
    /// group, the result stream and the lease exist.
    fn setup(&self, con: &mut redis::Connection) -> Result<()> {
        let info = conn::server_info(con)?;
        let restarted = {
            let mut r = lock(&self.run_id);
            let changed = !r.is_empty() && *r != info.run_id;
            *r = info.run_id;
            changed
        };
        conn::ensure_group(con, &self.cfg)?;
        let res = self.cfg.results(&self.idx);
        let lease = self.cfg.opts.lease.as_millis() as u64;
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&res)
            .query(con)
            .map_err(|e| broker_error("EXISTS failed", e))?;
        let mut p = redis::pipe();
        if exists == 0 {
            // A stream exists only with an entry: add one and trim it away. Hosts write
            // results with NOMKSTREAM, so a stream deleted by `join` or expired after
            // this client died is never recreated by a late result.
            p.cmd("XADD").arg(&res).arg("*").arg("x").arg("").ignore();
            p.cmd("XTRIM").arg(&res).arg("MAXLEN").arg(0).ignore();
        }
        p.cmd("PEXPIRE").arg(&res).arg(lease).ignore();
        p.cmd("SET")
            .arg(self.cfg.client(&self.idx))
            .arg(format!("pid {}", std::process::id()))
            .arg("PX")
            .arg(lease)
            .ignore();
        p.query::<()>(con)
            .map_err(|e| broker_error("cannot create the client's result stream", e))?;
        if restarted {
            lock(&self.st).resend_all = true;
            self.cv.notify_all();
        }
        Ok(())
    }

    /// Reads the host records.
    fn refresh_hosts(&self, con: &mut redis::Connection) -> Result<()> {
        let ids: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
            .arg(self.cfg.hosts())
            .query(con)
            .map_err(|e| broker_error("SMEMBERS failed", e))?;
        let mut hosts = Vec::new();
        let mut gone = Vec::new();
        if !ids.is_empty() {
            let keys: Vec<String> = ids
                .iter()
                .map(|i| self.cfg.host(&String::from_utf8_lossy(i)))
                .collect();
            let vals: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&keys)
                .query(con)
                .map_err(|e| broker_error("MGET failed", e))?;
            for ((id, key), v) in ids.iter().zip(&keys).zip(vals) {
                // Only an expired record is removed from the set: a record this client
                // cannot verify (another key, a forgery) is skipped, never deleted, or a
                // client with a wrong key would hide live hosts from everyone else.
                match v {
                    None => gone.push(id.clone()),
                    Some(v) => hosts.extend(HostInfo::verified(&self.cfg.key, key, &v)),
                }
            }
        }
        if !gone.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("SREM")
                .arg(self.cfg.hosts())
                .arg(&gone)
                .query(con);
        }
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        lock(&self.st).hosts = hosts;
        Ok(())
    }

    /// Fails every task with `BrokerUnavailable` and refuses new ones while Redis
    /// stays away.
    fn give_up(&self, why: &Error) {
        let sinks = {
            let mut st = lock(&self.st);
            st.unavailable = Some(format!(
                "Redis unreachable for more than {:?}: {why}",
                self.cfg.opts.broker_timeout
            ));
            st.take_all()
        };
        self.cv.notify_all();
        let e = Error::new(ErrorKind::BrokerUnavailable)
            .with_message(format!(
                "Redis unreachable for more than {:?}",
                self.cfg.opts.broker_timeout
            ))
            .with_source(std::io::Error::other(why.to_string()));
        for s in sinks {
            s.fail(e.duplicate());
        }
    }

    /// Returns a working connection, reconnecting as needed; `None` when the pool is
    /// to stop. Gives up on the tasks after `broker_timeout` but keeps trying.
    fn ensure(&self, con: &mut Option<redis::Connection>, read_timeout: Duration) -> bool {
        let mut down_since: Option<Instant> = None;
        loop {
            if con.is_some() {
                return true;
            }
            if lock(&self.st).stop {
                return false;
            }
            let since = *down_since.get_or_insert_with(Instant::now);
            let deadline = since + self.cfg.opts.broker_timeout;
            let now = Instant::now();
            let until = if now < deadline {
                deadline
            } else {
                now + Duration::from_secs(2)
            };
            match conn::reconnect(&self.cfg, read_timeout, until, &|| lock(&self.st).stop) {
                Ok(mut c) => match self.setup(&mut c) {
                    Ok(()) => {
                        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        lock(&self.st).unavailable = None;
                        *con = Some(c);
                    }
                    Err(e) => {
                        if Instant::now() >= deadline {
                            self.give_up(&e);
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                },
                Err(e) => {
                    if Instant::now() >= deadline {
                        let first = lock(&self.st).unavailable.is_none();
                        if first {
                            self.give_up(&e);
                        }
                        // Keep trying, so that a later submit works once Redis is back.
                        let drained = {
                            let st = lock(&self.st);
                            st.closed && st.drained()
                        };
                        if drained {
                            lock(&self.st).stop = true;
                            self.cv.notify_all();
                            return false;
                        }
                    }
                }
            }
        }
    }

    // ---- the sender thread ------------------------------------------------------

    fn sender(self: &Arc<Self>) {
        let o = &self.cfg.opts;
        let lease_every = o.lease / 6;
        let hosts_every = o.heartbeat;
        let mut next_lease = Instant::now() + lease_every;
        let mut next_hosts = Instant::now() + hosts_every;
        loop {
            // Wait for work: tasks to write while the window has room, or housekeeping.
            {
                let mut st = lock(&self.st);
                let go = loop {
                    if st.stop {
                        break false;
                    }
                    if st.closed && st.drained() {
                        st.stop = true;
                        self.cv.notify_all();
                        break false;
                    }
                    if st.resend_all {
                        st.resend_all = false;
                        let n = st.outstanding.len() as u64;
                        self.stats.resubmitted.fetch_add(n, Ordering::Relaxed);
                        for s in st.outstanding.values_mut() {
                            s.sent = false;
                        }
                    }
                    let now = Instant::now();
                    let room = st.window(&self.cfg).saturating_sub(st.outstanding.len());
                    let unsent = st.outstanding.values().any(|s| !s.sent);
                    if st.renew_lease {
                        st.renew_lease = false;
                        next_lease = now;
                    }
                    if unsent
                        || (room > 0 && !st.queue.is_empty())
                        || now >= next_lease.min(next_hosts)
                    {
                        break true;
                    }
                    let wait = next_lease.min(next_hosts).saturating_duration_since(now);
                    st = self
                        .cv
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                };
                if !go {
                    break;
                }
            }
            // The connection, then the batch: whoever holds the connection takes and
            // writes the unsent tasks, so a submitting thread that writes its own
            // (`send_now`) and this thread never write a task twice.
            let mut con = lock(&self.scon);
            if !self.ensure(&mut con, o.command_timeout) {
                break;
            }
            // The lease first: a host drops the tasks of a client without one.
            let now = Instant::now();
            if now >= next_lease {
                next_lease = now + lease_every;
                let r = self.refresh_lease(con.as_mut().expect("connected"));
                if let Err(e) = r {
                    if is_connection_error(&e) {
                        *con = None;
                        continue;
                    }
                }
            }
            let (batch, refused) = {
                let mut st = lock(&self.st);
                let room = st.window(&self.cfg).saturating_sub(st.outstanding.len());
                self.take_batch(&mut st, room)
            };
            for (sink, e) in refused {
                sink.fail(e);
            }
            if !self.write_or_fail(&mut con, &batch) {
                continue;
            }
            let now = Instant::now();
            if now >= next_hosts {
                next_hosts = now + hosts_every;
                if self
                    .refresh_hosts(con.as_mut().expect("connected"))
                    .is_err()
                {
                    *con = None;
                }
            }
        }
        // Leaving: this client's keys go now (a terminated client's queued tasks are
        // then dropped by the hosts, which check the lease key).
        if let Some(c) = lock(&self.scon).as_mut() {
            let _: redis::RedisResult<()> = redis::pipe()
                .cmd("DEL")
                .arg(self.cfg.client(&self.idx))
                .ignore()
                .cmd("DEL")
                .arg(self.cfg.results(&self.idx))
                .ignore()
                .query(c);
        }
    }

    /// Writes the tasks `batch` on `con` (connected). Returns `false` if the
    /// connection was lost (it is dropped; the tasks stay unsent, for the sender to
    /// write once it has reconnected); tasks the server refuses fail.
    fn write_or_fail(&self, con: &mut Option<redis::Connection>, batch: &[u64]) -> bool {
        let Some(c) = con.as_mut() else { return false };
        if batch.is_empty() {
            return true;
        }
        match self.write(c, batch) {
            Ok(()) => true,
            Err(e) if is_connection_error(&e) => {
                *con = None;
                false
            }
            Err(e) => {
                // Refused by the server (permissions, memory): these tasks fail.
                let err = broker_error("Redis refused the tasks", e);
                let sinks: Vec<_> = {
                    let mut st = lock(&self.st);
                    batch
                        .iter()
                        .filter_map(|id| st.outstanding.remove(id))
                        .map(|s| s.t.sink)
                        .collect()
                };
                self.cv.notify_all();
                for s in sinks {
                    s.fail(err.duplicate());
                }
                true
            }
        }
    }

    /// Writes the queued tasks from the calling thread if the sender's connection is
    /// free and up; returns `false` if the sender thread must do it (then woken by
    /// the caller).
    fn send_now(&self) -> bool {
        let mut con = match self.scon.try_lock() {
            Ok(c) => c,
            Err(_) => return false,
        };
        if con.is_none() {
            return false;
        }
        let (batch, refused) = {
            let mut st = lock(&self.st);
            if st.stop || st.unavailable.is_some() || st.renew_lease || st.resend_all {
                return false;
            }
            let room = st.window(&self.cfg).saturating_sub(st.outstanding.len());
            self.take_batch(&mut st, room)
        };
        for (sink, e) in refused {
            sink.fail(e);
        }
        // More queued than the window took: the sender writes the rest.
        self.write_or_fail(&mut con, &batch) && lock(&self.st).queue.is_empty()
    }

    /// Moves up to `room` queued tasks to the outstanding map (unsent) and returns the
    /// ids to write now, with the tasks refused before sending.
    #[allow(clippy::type_complexity)]
    fn take_batch(
        &self,
        st: &mut State,
        room: usize,
    ) -> (Vec<u64>, Vec<(Arc<dyn Completion>, Error)>) {
        let mut refused = Vec::new();
        let mut ids: Vec<u64> = st
            .outstanding
            .iter()
            .filter(|(_, s)| !s.sent)
            .map(|(id, _)| *id)
            .take(BATCH)
            .collect();
        let mut room = room;
        while room > 0 && ids.len() < BATCH {
            let Some((id, t, attempt)) = st.queue.pop_front() else {
                break;
            };
            if attempt == 0 && !t.sink.try_start() {
                continue; // cancelled while queued
            }
            if t.payload.len() > self.cfg.opts.max_payload {
                let e = Error::new(ErrorKind::Encode).with_message(format!(
                    "a task of {} bytes is too large for the broker (max_payload {} bytes); \
                     pass a path or URL instead",
                    t.payload.len(),
                    self.cfg.opts.max_payload
                ));
                refused.push((t.sink, e));
                continue;
            }
            if let Some(e) = self.no_host_for(&st.hosts, &t) {
                refused.push((t.sink, e));
                continue;
            }
            st.outstanding.insert(
                id,
                Sent {
                    t,
                    attempt,
                    sent: false,
                },
            );
            ids.push(id);
            room -= 1;
        }
        (ids, refused)
    }

    /// Why no live host can run `t`, when hosts are known and none can: none
    /// registers its key ([`ErrorKind::NotRegistered`]), or, with
    /// [`same_build`](super::Options::same_build), only hosts of other builds do
    /// ([`ErrorKind::BinaryMismatch`]).
    fn no_host_for(&self, hosts: &[HostInfo], t: &ClusterTask) -> Option<Error> {
        let has = |h: &&HostInfo| h.keys.binary_search(&t.key).is_ok();
        let same = |h: &&HostInfo| !self.cfg.opts.same_build || h.build_id == build_id();
        if hosts.is_empty() || hosts.iter().filter(has).any(|h| same(&h)) {
            return None;
        }
        let names: Vec<String> = hosts
            .iter()
            .map(|h| format!("{} (build {})", h.id, short(&h.build_id)))
            .collect();
        Some(if hosts.iter().any(|h| has(&h)) {
            Error::new(ErrorKind::BinaryMismatch).with_message(format!(
                "no live worker host runs this client's build {} (same_build): {} cannot \
                 run `{}`; it was not sent",
                short(build_id()),
                names.join(", "),
                t.name
            ))
        } else {
            Error::new(ErrorKind::NotRegistered).with_message(format!(
                "no live worker host can run `{}`: {} do not register it with this signature",
                t.name,
                names.join(", ")
            ))
        })
    }

    /// Writes the tasks `ids` (still outstanding) in one pipeline.
    fn write(&self, con: &mut redis::Connection, ids: &[u64]) -> redis::RedisResult<()> {
        let stream = self.cfg.tasks();
        let mut p = redis::pipe();
        let mut written = Vec::with_capacity(ids.len());
        {
            let st = lock(&self.st);
            for id in ids {
                let Some(s) = st.outstanding.get(id) else {
                    continue;
                };
                let h = TaskHeader {
                    client: self.id,
                    task: *id,
                    key: s.t.key,
                    items: s.t.items,
                    attempt: s.attempt,
                    max_deliveries: self.cfg.opts.max_deliveries,
                    timeout_ms: self
                        .cfg
                        .opts
                        .task_timeout
                        .map_or(0, |t| t.as_millis().clamp(1, u128::from(u32::MAX)) as u32),
                    build: if self.cfg.opts.same_build {
                        build_key()
                    } else {
                        0
                    },
                };
                let mut fields: wire::Fields =
                    vec![("h", h.encode()), ("n", s.t.name.as_bytes().to_vec())];
                if s.t.payload.len() >= self.cfg.opts.blob_threshold {
                    let key = self.cfg.blob(&self.idx, *id, s.attempt, 'a');
                    p.cmd("SET")
                        .arg(&key)
                        .arg(s.t.payload.as_slice())
                        .arg("EX")
                        .arg(self.cfg.opts.blob_ttl.as_secs().max(1))
                        .ignore();
                    fields.push(("b", BlobRef::of(key, &s.t.payload).encode()));
                } else {
                    fields.push(("p", s.t.payload.to_vec()));
                }
                let sig = wire::sign(&self.cfg.key, &stream, &fields);
                let c = p.cmd("XADD").arg(&stream).arg("*");
                for (n, v) in &fields {
                    c.arg(*n).arg(v.as_slice());
                }
                c.arg("s").arg(sig).ignore();
                written.push(*id);
            }
        }
        p.query::<()>(con)?;
        let mut st = lock(&self.st);
        for id in written {
            if let Some(s) = st.outstanding.get_mut(&id) {
                s.sent = true;
            }
        }
        Ok(())
    }

    fn refresh_lease(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let lease = self.cfg.opts.lease.as_millis() as u64;
        redis::pipe()
            .cmd("SET")
            .arg(self.cfg.client(&self.idx))
            .arg(format!("pid {}", std::process::id()))
            .arg("PX")
            .arg(lease)
            .ignore()
            .cmd("PEXPIRE")
            .arg(self.cfg.results(&self.idx))
            .arg(lease)
            .ignore()
            .query(con)
    }

    // ---- the receiver thread ----------------------------------------------------

    fn receiver(self: &Arc<Self>, con: redis::Connection) {
        let mut con = Some(con);
        let res = self.cfg.results(&self.idx);
        let mut last = "0-0".to_owned();
        let mut trim: Option<String> = None;
        // Entries and bytes read since the stream was last trimmed.
        let mut untrimmed = (0usize, 0usize);
        // The last read found nothing within BLOCK.
        let mut idle = false;
        let mut run_id = lock(&self.run_id).clone();
        loop {
            if lock(&self.st).stop {
                break;
            }
            if !self.ensure(&mut con, BLOCK + Duration::from_secs(5)) {
                break;
            }
            let now_run = lock(&self.run_id).clone();
            if now_run != run_id {
                // Redis restarted: its stream ids start over.
                run_id = now_run;
                last = "0-0".to_owned();
                trim = None;
            }
            let c = con.as_mut().expect("connected");
            // What was read is trimmed in the same round trip as a read, once
            // TRIM_EVERY entries or TRIM_BYTES have been read or the stream is idle:
            // not after every result, as XTRIM's reply wakes this thread while the
            // XREAD blocks, on the way of the next task of one `apply` at a time.
            let mut p = redis::pipe();
            if untrimmed.0 >= TRIM_EVERY || untrimmed.1 >= TRIM_BYTES || untrimmed.0 > 0 && idle {
                if let Some(below) = trim.take() {
                    p.cmd("XTRIM").arg(&res).arg("MINID").arg(below).ignore();
                }
                untrimmed = (0, 0);
            }
            p.cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&res)
                .arg(&last);
            let r: redis::RedisResult<Value> = p.query::<(Value,)>(c).map(|(v,)| v);
            let v = match r {
                Ok(v) => v,
                Err(e) if is_connection_error(&e) => {
                    con = None;
                    continue;
                }
                Err(_) => {
                    // The stream is gone (expired while Redis was away, say): recreate.
                    con = None;
                    continue;
                }
            };
            let entries = conn::read_reply(&v);
            idle = entries.is_empty();
            if idle {
                continue;
            }
            for (id, fields) in entries {
                last = id.clone();
                untrimmed.0 += 1;
                let Some(fields) = fields else { continue };
                untrimmed.1 += fields.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
                match Entry::verified(&self.cfg.key, &res, id, fields) {
                    Some(e) => self.on_result(c, e),
                    None => {
                        self.stats.unauthenticated.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            trim = Some(last.clone());
        }
    }

    fn on_result(&self, con: &mut redis::Connection, e: Entry) {
        let Ok(h) = ResultHeader::decode(&e.h) else {
            self.stats.unauthenticated.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (sent, wake) = {
            let mut st = lock(&self.st);
            let Some(sent) = st.outstanding.remove(&h.task) else {
                drop(st);
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return;
            };
            // The sender waits for room in the window, or to find a closed pool
            // drained; otherwise waking it costs a context switch before the waiter's.
            (sent, st.closed || !st.queue.is_empty())
        };
        if wake {
            self.cv.notify_all();
        }
        if h.deliveries > 1 {
            self.stats.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        let payload = match (e.p, e.b) {
            (Some(p), _) => Ok(p),
            (None, Some(b)) => self.fetch_blob(con, &b),
            (None, None) => Err(Error::new(ErrorKind::Decode).with_message("an empty result")),
        };
        match (h.status, payload) {
            (Status::Ok, Ok(bytes)) => sent.t.sink.deliver_raw(bytes, Vec::new()),
            (Status::Failed, Ok(bytes)) => {
                let err = WireError::decode(&bytes);
                if err.kind() == ErrorKind::Cancelled {
                    // A host found this client's lease gone (Redis lost it, say) and
                    // dropped the task: renew the lease at once and send the task again.
                    let mut st = lock(&self.st);
                    if st.terminated {
                        drop(st);
                        sent.t.sink.fail(
                            Error::new(ErrorKind::PoolClosed)
                                .with_message("the pool was terminated"),
                        );
                    } else {
                        st.renew_lease = true;
                        st.queue.push_front((h.task, sent.t, sent.attempt));
                        drop(st);
                        self.stats.resubmitted.fetch_add(1, Ordering::Relaxed);
                        self.cv.notify_all();
                    }
                    return;
                }
                let retry = matches!(err.kind(), ErrorKind::WorkerDied | ErrorKind::Timeout)
                    && sent.t.retries > 0;
                if retry {
                    let mut t = sent.t;
                    t.retries -= 1;
                    let attempt = sent.attempt.saturating_add(1);
                    let mut st = lock(&self.st);
                    if st.terminated {
                        drop(st);
                        t.sink.fail(
                            Error::new(ErrorKind::PoolClosed)
                                .with_message("the pool was terminated"),
                        );
                    } else {
                        st.queue.push_front((h.task, t, attempt));
                        drop(st);
                        self.cv.notify_all();
                    }
                } else {
                    sent.t.sink.fail(err);
                }
            }
            (_, Err(err)) => sent.t.sink.fail(err),
        }
    }

    fn fetch_blob(&self, con: &mut redis::Connection, b: &[u8]) -> Result<Vec<u8>> {
        let r = BlobRef::decode(b)?;
        if !r
            .key
            .starts_with(&format!("{}:blob:{}:", self.cfg.prefix, self.idx))
        {
            return Err(Error::new(ErrorKind::Decode)
                .with_message("a result blob outside this client's keys"));
        }
        let v: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(&r.key)
            .query(con)
            .map_err(|e| broker_error("GETDEL of a result blob failed", e))?;
        let v = v.ok_or_else(|| {
            Error::new(ErrorKind::Decode).with_message(format!("the result blob {} expired", r.key))
        })?;
        r.check(&v)?;
        Ok(v)
    }
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}
