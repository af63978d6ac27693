//! The manager's server: the process that holds the shared objects and serves one
//! connection per thread.
//!
//! Every object lives in one table behind one mutex; a blocking operation (a queue's
//! `get`, a lock's `acquire`) waits on one condition variable that every change
//! notifies, rechecking its own object each time. Waiting happens in slices of
//! [`CHECK_PEER`]: after each slice the thread checks whether its client is still
//! there (its socket hung up or failed; TCP connections have keepalive on, so a
//! client whose machine vanished is noticed too), so a client that dies while it
//! waits leaves no thread behind, and a value taken for a client that is gone is put
//! back (see [`Undo`]).
//!
//! Nothing a client sends is trusted: requests arrive through a
//! [`SocketConnection`] with a maximum message size, decode with a checked decoder,
//! and refer to objects by id (an unknown id is an error, not a panic). Values are
//! opaque bytes the server never decodes; a registered type's code runs under
//! `catch_unwind`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::managed::{ErasedManaged, Factory, Registry};
use super::ordered::OrderedMap;
use super::wire::{Bytes, Kind, ObjectId, Op, Owner, Reply, Request, Wait};
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::{Address, Connection, Listener, RecvError, SendError, SocketConnection};

/// How often a waiting server thread checks that its client is still there.
const CHECK_PEER: Duration = Duration::from_millis(100);
/// Most connections served at once; more are closed at once (bounded threads).
pub(crate) const MAX_CONNECTIONS: usize = 1024;

/// What the owner hands the server process.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ServerArgs {
    pub(crate) address: Address,
    pub(crate) authkey: Option<Vec<u8>>,
    pub(crate) max_message: usize,
    /// The server reports `Ok(address it listens at)` or the error here, once.
    pub(crate) ready: Connection,
}

/// The server process's entry point (started with [`Builder::start`](super::Builder)).
///
/// Returns when a client asks for [`Request::Shutdown`] (the process then exits,
/// ending every connection), after removing its socket file.
pub(crate) fn serve<R: Registry>(args: ServerArgs) {
    let listener = match Listener::bind(&args.address, args.authkey.as_deref()) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            let _ = args.ready.send(Err::<Address, Error>(e));
            return;
        }
    };
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let state = Arc::new(State {
        objects: Mutex::new(Objects::default()),
        changed: Condvar::new(),
        create: R::create,
        stop: Mutex::new(stop_tx),
        connections: AtomicUsize::new(0),
        max_message: args.max_message,
    });
    let accepting = Arc::clone(&listener);
    let st = Arc::clone(&state);
    let accept = std::thread::Builder::new()
        .name("manager-accept".into())
        .spawn(move || accept_loop(&accepting, &st));
    if let Err(e) = accept {
        let _ = args.ready.send(Err::<Address, Error>(
            Error::os(e).with_message("the manager server cannot start its accept thread"),
        ));
        return;
    }
    if args
        .ready
        .send(Ok::<Address, Error>(listener.address().clone()))
        .is_err()
    {
        return; // the owner is gone
    }
    let _ = stop_rx.recv();
    if let Address::Unix(path) = listener.address() {
        let _ = std::fs::remove_file(path);
    }
}

fn accept_loop(listener: &Arc<Listener>, state: &Arc<State>) {
    loop {
        let conn = match listener.accept_unauthenticated() {
            Ok(c) => c.with_max_message_size(state.max_message),
            Err(_) => {
                // EMFILE and the like: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // A client whose machine vanished is noticed by its waiting thread.
        if super::session::keepalive(listener.address(), &conn).is_err() {
            continue;
        }
        if state.connections.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            state.connections.fetch_sub(1, Ordering::AcqRel);
            continue; // dropped: the client sees the connection closed
        }
        let l = Arc::clone(listener);
        let st = Arc::clone(state);
        let spawned = std::thread::Builder::new()
            .name("manager-conn".into())
            .spawn(move || {
                if l.authenticate(&conn).is_ok() {
                    serve_connection(&st, &conn);
                }
                st.connections.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            state.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Undoes an operation whose reply could not be delivered (the client is gone).
enum Undo {
    /// Put a taken value back at the front of the queue.
    Requeue(ObjectId, Bytes),
    /// Release a lock or semaphore acquired for the client.
    Release(ObjectId, Owner),
}

fn serve_connection(state: &State, conn: &SocketConnection) {
    // The first request names the client's process, which owns the locks it takes
    // through any of its connections.
    let process = match conn.recv::<Request>() {
        Ok(Request::Hello(p)) => p,
        _ => return,
    };
    if conn.send(Reply::Unit).is_err() {
        return;
    }
    state.lock().attach(process);
    loop {
        let request = match conn.recv::<Request>() {
            Ok(r) => r,
            Err(RecvError::Disconnected) => break,
            Err(RecvError::Invalid(e)) => {
                // Too large or malformed: say why, then hang up (the stream may be
                // out of step).
                let _ = conn.send(Reply::Err(e));
                break;
            }
        };
        let (reply, undo) = match request {
            Request::Hello(_) => (Reply::Err(protocol("a second hello")), None),
            Request::DecRef(id) => {
                state.decref(id);
                continue;
            }
            Request::Shutdown => {
                let _ = conn.send(Reply::Unit);
                let stop = state.stop.lock().unwrap_or_else(|e| e.into_inner());
                let _ = stop.send(());
                return;
            }
            Request::Info => {
                let objects = state.lock().map.len() as u64;
                (
                    Reply::Info {
                        pid: std::process::id(),
                        objects,
                    },
                    None,
                )
            }
            Request::Create(kind) => (state.create(kind), None),
            Request::IncRef(id) => (state.incref(id), None),
            Request::Call(id, op) => match state.call(id, op, process, conn) {
                Some(r) => r,
                None => break, // the client left while the operation waited
            },
        };
        let refused = match conn.send(reply) {
            Ok(()) => continue,
            // Over the message size (or not encodable): nothing was written, so the
            // stream is in step; the client is told why, and what was taken for it
            // goes back.
            Err(SendError::Rejected(_, e)) if e.kind() != ErrorKind::Os => e,
            Err(_) => {
                if let Some(undo) = undo {
                    state.undo(undo);
                }
                break;
            }
        };
        if let Some(undo) = undo {
            state.undo(undo);
        }
        let why = format!(
            "the manager server cannot send its reply: {refused} (Builder::max_message_size)"
        );
        if conn.send(Reply::Err(refused.with_message(why))).is_err() {
            break;
        }
    }
    state.lock().detach(process, &state.changed);
}

fn protocol(what: &str) -> Error {
    Error::new(ErrorKind::Corrupt).with_message(format!("manager protocol violation: {what}"))
}

fn no_object(id: ObjectId) -> Error {
    Error::new(ErrorKind::InvalidInput)
        .with_message(format!("the manager holds no object {id} (it was freed)"))
}

fn wrong_kind(id: ObjectId) -> Error {
    Error::new(ErrorKind::InvalidInput)
        .with_message(format!("object {id} does not support this operation"))
}

/// The state shared by the server's threads.
struct State {
    objects: Mutex<Objects>,
    /// Notified on every change a waiter may be waiting for.
    changed: Condvar,
    create: Factory,
    stop: Mutex<mpsc::Sender<()>>,
    connections: AtomicUsize,
    max_message: usize,
}

#[derive(Default)]
struct Objects {
    next: ObjectId,
    map: HashMap<ObjectId, Slot>,
    /// Live connections per client process.
    processes: HashMap<u64, usize>,
}

struct Slot {
    refs: u64,
    obj: Obj,
}

/// A reentrant lock's state (also a condition's lock).
#[derive(Default)]
struct RState {
    owner: Option<Owner>,
    count: u64,
}

impl RState {
    fn try_acquire(&mut self, who: Owner) -> bool {
        match self.owner {
            None => {
                self.owner = Some(who);
                self.count = 1;
                true
            }
            Some(o) if o == who => {
                self.count += 1;
                true
            }
            Some(_) => false,
        }
    }

    fn release(&mut self, who: Owner) -> Result<()> {
        if self.owner != Some(who) {
            return Err(Error::new(ErrorKind::NotOwner));
        }
        self.count -= 1;
        if self.count == 0 {
            self.owner = None;
        }
        Ok(())
    }
}

#[derive(Default)]
struct CondState {
    lock: RState,
    next_ticket: u64,
    waiting: VecDeque<u64>,
    notified: HashSet<u64>,
}

struct BarrierState {
    parties: u64,
    count: u64,
    generation: u64,
    broken: bool,
}

enum Obj {
    Dict(OrderedMap),
    List(Vec<Bytes>),
    Queue {
        items: VecDeque<Bytes>,
        maxsize: u64,
        unfinished: u64,
    },
    Lock(Option<Owner>),
    RLock(RState),
    Semaphore {
        value: u64,
        bound: Option<u64>,
    },
    Event(bool),
    Condition(CondState),
    Barrier(BarrierState),
    Custom(Arc<Mutex<Box<dyn ErasedManaged>>>),
}

impl Objects {
    fn attach(&mut self, process: u64) {
        *self.processes.entry(process).or_default() += 1;
    }

    /// A connection closed; when it was its process's last, the process is gone and
    /// the locks it held are released.
    fn detach(&mut self, process: u64, changed: &Condvar) {
        let Some(n) = self.processes.get_mut(&process) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        self.processes.remove(&process);
        for slot in self.map.values_mut() {
            match &mut slot.obj {
                Obj::Lock(holder) if holder.is_some_and(|o| o.process == process) => {
                    *holder = None;
                }
                Obj::RLock(r) if r.owner.is_some_and(|o| o.process == process) => {
                    *r = RState::default();
                }
                Obj::Condition(c) if c.lock.owner.is_some_and(|o| o.process == process) => {
                    c.lock = RState::default();
                }
                _ => {}
            }
        }
        changed.notify_all();
    }
}

/// What a blocking step found.
enum Step<T> {
    Done(T),
    NotYet,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create(&self, kind: Kind) -> Reply {
        let obj = match kind {
            Kind::Dict => Obj::Dict(OrderedMap::default()),
            Kind::List => Obj::List(Vec::new()),
            Kind::Queue { maxsize } => Obj::Queue {
                items: VecDeque::new(),
                maxsize,
                unfinished: 0,
            },
            Kind::Lock => Obj::Lock(None),
            Kind::RLock => Obj::RLock(RState::default()),
            Kind::Semaphore { value, bounded } => Obj::Semaphore {
                value,
                bound: bounded.then_some(value),
            },
            Kind::Event => Obj::Event(false),
            Kind::Condition => Obj::Condition(CondState::default()),
            Kind::Barrier { parties } => {
                if parties == 0 {
                    return Reply::Err(
                        Error::new(ErrorKind::InvalidInput)
                            .with_message("a barrier needs at least one party"),
                    );
                }
                Obj::Barrier(BarrierState {
                    parties,
                    count: 0,
                    generation: 0,
                    broken: false,
                })
            }
            Kind::Custom { type_id, init } => {
                match crate::panic::catch(|| (self.create)(&type_id, &init)) {
                    Ok(Some(Ok(m))) => Obj::Custom(Arc::new(Mutex::new(m))),
                    Ok(Some(Err(e))) => return Reply::Err(e),
                    Ok(None) => {
                        return Reply::Err(Error::new(ErrorKind::NotRegistered).with_message(
                            format!("no type {type_id:?} is registered with this manager"),
                        ))
                    }
                    Err(p) => return Reply::Err(Error::from_panic(p)),
                }
            }
        };
        let mut objects = self.lock();
        objects.next += 1;
        let id = objects.next;
        objects.map.insert(id, Slot { refs: 1, obj });
        Reply::Id(id)
    }

    fn incref(&self, id: ObjectId) -> Reply {
        match self.lock().map.get_mut(&id) {
            Some(slot) => {
                slot.refs += 1;
                Reply::Unit
            }
            None => Reply::Err(no_object(id)),
        }
    }

    fn decref(&self, id: ObjectId) {
        let mut objects = self.lock();
        if let Some(slot) = objects.map.get_mut(&id) {
            slot.refs -= 1;
            if slot.refs == 0 {
                let slot = objects.map.remove(&id);
                drop(objects);
                // Waiters on it see it gone.
                self.changed.notify_all();
                drop(slot); // a registered type's `Drop` runs outside the table's lock
            }
        }
    }

    fn undo(&self, undo: Undo) {
        let mut objects = self.lock();
        match undo {
            Undo::Requeue(id, v) => {
                if let Some(Slot {
                    obj: Obj::Queue { items, .. },
                    ..
                }) = objects.map.get_mut(&id)
                {
                    items.push_front(v);
                }
            }
            Undo::Release(id, who) => match objects.map.get_mut(&id).map(|s| &mut s.obj) {
                Some(Obj::Semaphore { value, .. }) => *value = value.saturating_add(1),
                Some(Obj::Lock(holder)) if *holder == Some(who) => *holder = None,
                Some(Obj::RLock(r)) => drop(r.release(who)),
                Some(Obj::Condition(c)) => drop(c.lock.release(who)),
                _ => {}
            },
        }
        self.changed.notify_all();
    }

    /// Runs `step` on object `id` until it is done, the wait is over (`Ok(None)`) or
    /// the client hangs up (`Err(())`).
    fn block<T>(
        &self,
        id: ObjectId,
        wait: Wait,
        conn: &SocketConnection,
        mut step: impl FnMut(&mut Obj) -> Result<Step<T>>,
    ) -> std::result::Result<Result<Option<T>>, ()> {
        let deadline = match wait {
            Wait::For(d) => Instant::now().checked_add(d),
            _ => None,
        };
        let mut objects = self.lock();
        loop {
            let Some(slot) = objects.map.get_mut(&id) else {
                return Ok(Err(no_object(id)));
            };
            match step(&mut slot.obj) {
                Err(e) => return Ok(Err(e)),
                Ok(Step::Done(v)) => {
                    self.changed.notify_all();
                    return Ok(Ok(Some(v)));
                }
                Ok(Step::NotYet) => {}
            }
            let slice = match (wait, deadline) {
                (Wait::No, _) => return Ok(Ok(None)),
                (Wait::For(_), Some(d)) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Ok(None));
                    }
                    left.min(CHECK_PEER)
                }
                _ => CHECK_PEER,
            };
            let (guard, timed_out) = self
                .changed
                .wait_timeout(objects, slice)
                .unwrap_or_else(|e| e.into_inner());
            objects = guard;
            if timed_out.timed_out() && crate::sys::socket::peer_gone(conn.as_fd()) {
                return Err(()); // the client hung up, or its connection failed
            }
        }
    }

    /// Runs one operation; `None` if the client left while it waited.
    fn call(
        &self,
        id: ObjectId,
        op: Op,
        process: u64,
        conn: &SocketConnection,
    ) -> Option<(Reply, Option<Undo>)> {
        let same_process = |o: Owner| {
            if o.process == process {
                Ok(o)
            } else {
                Err(protocol("an owner from another process"))
            }
        };
        let reply = match op {
            Op::QueuePut(v, wait) => {
                let mut v = Some(v);
                let r = self.block(id, wait, conn, |obj| match obj {
                    Obj::Queue {
                        items,
                        maxsize,
                        unfinished,
                    } => {
                        if *maxsize == 0 || (items.len() as u64) < *maxsize {
                            items.push_back(v.take().expect("put once"));
                            *unfinished += 1;
                            Ok(Step::Done(()))
                        } else {
                            Ok(Step::NotYet)
                        }
                    }
                    _ => Err(wrong_kind(id)),
                });
                bool_reply(r.ok()?)
            }
            Op::QueueGet(wait) => {
                let r = self.block(id, wait, conn, |obj| match obj {
                    Obj::Queue { items, .. } => Ok(match items.pop_front() {
                        Some(v) => Step::Done(v),
                        None => Step::NotYet,
                    }),
                    _ => Err(wrong_kind(id)),
                });
                return Some(match r.ok()? {
                    Ok(Some(v)) => (Reply::Value(Some(v.clone())), Some(Undo::Requeue(id, v))),
                    Ok(None) => (Reply::Value(None), None),
                    Err(e) => (Reply::Err(e), None),
                });
            }
            Op::QueueJoin(wait) => {
                let r = self.block(id, wait, conn, |obj| match obj {
                    Obj::Queue { unfinished, .. } => Ok(if *unfinished == 0 {
                        Step::Done(())
                    } else {
                        Step::NotYet
                    }),
                    _ => Err(wrong_kind(id)),
                });
                bool_reply(r.ok()?)
            }
            Op::Acquire(who, wait) => {
                let who = match same_process(who) {
                    Ok(w) => w,
                    Err(e) => return Some((Reply::Err(e), None)),
                };
                let r = self.block(id, wait, conn, |obj| match obj {
                    Obj::Lock(holder) => Ok(if holder.is_none() {
                        *holder = Some(who);
                        Step::Done(())
                    } else {
                        Step::NotYet
                    }),
                    Obj::RLock(r) => Ok(if r.try_acquire(who) {
                        Step::Done(())
                    } else {
                        Step::NotYet
                    }),
                    Obj::Condition(c) => Ok(if c.lock.try_acquire(who) {
                        Step::Done(())
                    } else {
                        Step::NotYet
                    }),
                    Obj::Semaphore { value, .. } => Ok(if *value > 0 {
                        *value -= 1;
                        Step::Done(())
                    } else {
                        Step::NotYet
                    }),
                    _ => Err(wrong_kind(id)),
                });
                // Taken for a client that is gone: given back.
                let r = r.ok()?;
                let undo = matches!(r, Ok(Some(()))).then_some(Undo::Release(id, who));
                return Some((bool_reply(r), undo));
            }
            Op::CondWait(who, wait) => match same_process(who) {
                Ok(who) => self.cond_wait(id, who, wait, conn)?,
                Err(e) => Reply::Err(e),
            },
            Op::EventWait(wait) => {
                let r = self.block(id, wait, conn, |obj| match obj {
                    Obj::Event(flag) => Ok(if *flag { Step::Done(()) } else { Step::NotYet }),
                    _ => Err(wrong_kind(id)),
                });
                bool_reply(r.ok()?)
            }
            Op::BarrierWait(wait) => self.barrier_wait(id, wait, conn)?,
            Op::Custom(request) => self.custom(id, &request),
            op => self.immediate(id, op, &same_process),
        };
        Some((reply, None))
    }

    /// A condition's `wait`: release the lock, wait for a notification (or the
    /// deadline), then take the lock back, waiting as long as that takes.
    fn cond_wait(
        &self,
        id: ObjectId,
        who: Owner,
        wait: Wait,
        conn: &SocketConnection,
    ) -> Option<Reply> {
        let (saved, ticket) = {
            let mut objects = self.lock();
            let taken = match objects.map.get_mut(&id).map(|s| &mut s.obj) {
                Some(Obj::Condition(c)) => {
                    if c.lock.owner != Some(who) {
                        return Some(Reply::Err(
                            Error::new(ErrorKind::NotOwner)
                                .with_message("wait on a condition whose lock is not held"),
                        ));
                    }
                    let saved = c.lock.count;
                    c.lock = RState::default();
                    c.next_ticket += 1;
                    c.waiting.push_back(c.next_ticket);
                    (saved, c.next_ticket)
                }
                Some(_) => return Some(Reply::Err(wrong_kind(id))),
                None => return Some(Reply::Err(no_object(id))),
            };
            self.changed.notify_all();
            taken
        };
        let notified = self.block(id, wait, conn, |obj| match obj {
            Obj::Condition(c) => Ok(if c.notified.remove(&ticket) {
                Step::Done(())
            } else {
                Step::NotYet
            }),
            _ => Err(wrong_kind(id)),
        });
        let notified = match notified {
            Ok(Ok(n)) => n.is_some(),
            Ok(Err(e)) => return Some(Reply::Err(e)),
            Err(()) => {
                self.forget_ticket(id, ticket);
                return None;
            }
        };
        if !notified {
            // Timed out; a notification that raced with the deadline still counts.
            let mut objects = self.lock();
            if let Some(Slot {
                obj: Obj::Condition(c),
                ..
            }) = objects.map.get_mut(&id)
            {
                c.waiting.retain(|&t| t != ticket);
                let late = c.notified.remove(&ticket);
                drop(objects);
                return self.cond_reacquire(id, who, saved, late, conn);
            }
        }
        self.cond_reacquire(id, who, saved, notified, conn)
    }

    fn forget_ticket(&self, id: ObjectId, ticket: u64) {
        if let Some(Slot {
            obj: Obj::Condition(c),
            ..
        }) = self.lock().map.get_mut(&id)
        {
            c.waiting.retain(|&t| t != ticket);
            c.notified.remove(&ticket);
        }
    }

    fn cond_reacquire(
        &self,
        id: ObjectId,
        who: Owner,
        saved: u64,
        notified: bool,
        conn: &SocketConnection,
    ) -> Option<Reply> {
        let r = self.block(id, Wait::Forever, conn, |obj| match obj {
            Obj::Condition(c) => Ok(if c.lock.owner.is_none() {
                c.lock.owner = Some(who);
                c.lock.count = saved;
                Step::Done(())
            } else {
                Step::NotYet
            }),
            _ => Err(wrong_kind(id)),
        });
        Some(match r.ok()? {
            Ok(_) => Reply::Bool(notified),
            Err(e) => Reply::Err(e),
        })
    }

    fn barrier_wait(&self, id: ObjectId, wait: Wait, conn: &SocketConnection) -> Option<Reply> {
        let broken = || Error::new(ErrorKind::BrokenBarrier);
        let (index, generation) = {
            let mut objects = self.lock();
            let b = match objects.map.get_mut(&id).map(|s| &mut s.obj) {
                Some(Obj::Barrier(b)) => b,
                Some(_) => return Some(Reply::Err(wrong_kind(id))),
                None => return Some(Reply::Err(no_object(id))),
            };
            if b.broken {
                return Some(Reply::Err(broken()));
            }
            let index = b.count;
            b.count += 1;
            if b.count == b.parties {
                b.count = 0;
                b.generation += 1;
                self.changed.notify_all();
                return Some(Reply::Len(index));
            }
            (index, b.generation)
        };
        let r = self.block(id, wait, conn, |obj| match obj {
            Obj::Barrier(b) if b.generation != generation => Ok(Step::Done(())),
            Obj::Barrier(b) if b.broken => Err(broken()),
            Obj::Barrier(_) => Ok(Step::NotYet),
            _ => Err(wrong_kind(id)),
        });
        let outcome = match r {
            Ok(Ok(Some(()))) => return Some(Reply::Len(index)),
            Ok(Err(e)) => Some(Reply::Err(e)),
            Ok(Ok(None)) => Some(Reply::Err(
                broken().with_message("a party timed out waiting at the barrier"),
            )),
            Err(()) => None,
        };
        // A party that timed out or left breaks the barrier for everyone, as in Python.
        if let Some(Slot {
            obj: Obj::Barrier(b),
            ..
        }) = self.lock().map.get_mut(&id)
        {
            if b.generation == generation {
                b.broken = true;
            }
        }
        self.changed.notify_all();
        outcome
    }

    fn custom(&self, id: ObjectId, request: &[u8]) -> Reply {
        let object = match self.lock().map.get(&id).map(|s| &s.obj) {
            Some(Obj::Custom(m)) => Arc::clone(m),
            Some(_) => return Reply::Err(wrong_kind(id)),
            None => return Reply::Err(no_object(id)),
        };
        let mut object = object.lock().unwrap_or_else(|e| e.into_inner());
        match crate::panic::catch(|| object.call(request)) {
            Ok(Ok(v)) => Reply::Value(Some(v)),
            Ok(Err(e)) => Reply::Err(e),
            Err(p) => Reply::Err(Error::from_panic(p)),
        }
    }

    /// The operations that never wait.
    fn immediate(
        &self,
        id: ObjectId,
        op: Op,
        same_process: &dyn Fn(Owner) -> Result<Owner>,
    ) -> Reply {
        let mut objects = self.lock();
        let Some(slot) = objects.map.get_mut(&id) else {
            return Reply::Err(no_object(id));
        };
        let r =
            apply(&mut slot.obj, op, same_process).unwrap_or_else(|()| Reply::Err(wrong_kind(id)));
        drop(objects);
        self.changed.notify_all();
        r
    }
}

fn bool_reply<T>(r: Result<Option<T>>) -> Reply {
    match r {
        Ok(v) => Reply::Bool(v.is_some()),
        Err(e) => Reply::Err(e),
    }
}

fn index(i: u64, len: usize) -> Option<usize> {
    usize::try_from(i).ok().filter(|&i| i < len)
}

fn out_of_range(i: u64, len: usize) -> Reply {
    Reply::Err(
        Error::new(ErrorKind::InvalidInput)
            .with_message(format!("index {i} out of range for a list of length {len}")),
    )
}

/// Applies a non-blocking operation; `Err(())` if `obj` does not support it.
fn apply(
    obj: &mut Obj,
    op: Op,
    same_process: &dyn Fn(Owner) -> Result<Owner>,
) -> std::result::Result<Reply, ()> {
    Ok(match (obj, op) {
        (Obj::Dict(d), Op::DictGet(k)) => Reply::Value(d.get(&k).cloned()),
        (Obj::Dict(d), Op::DictInsert(k, v)) => Reply::Value(d.insert(k, v)),
        (Obj::Dict(d), Op::DictSetDefault(k, v)) => {
            Reply::Value(Some(d.get_or_insert(k, v).clone()))
        }
        (Obj::Dict(d), Op::DictRemove(k)) => Reply::Value(d.remove(&k)),
        (Obj::Dict(d), Op::DictContains(k)) => Reply::Bool(d.contains_key(&k)),
        (Obj::Dict(d), Op::DictKeys) => Reply::Values(d.keys().cloned().collect()),
        (Obj::Dict(d), Op::DictValues) => Reply::Values(d.values().cloned().collect()),
        (Obj::Dict(d), Op::DictItems) => {
            Reply::Items(d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        (Obj::Dict(d), Op::DictUpdate(items)) => {
            d.extend(items);
            Reply::Unit
        }
        (Obj::Dict(d), Op::Len) => Reply::Len(d.len() as u64),
        (Obj::Dict(d), Op::Clear) => {
            d.clear();
            Reply::Unit
        }
        (Obj::List(l), Op::ListGet(i)) => Reply::Value(index(i, l.len()).map(|i| l[i].clone())),
        (Obj::List(l), Op::ListSet(i, v)) => match index(i, l.len()) {
            Some(i) => Reply::Value(Some(std::mem::replace(&mut l[i], v))),
            None => out_of_range(i, l.len()),
        },
        (Obj::List(l), Op::ListPush(v)) => {
            l.push(v);
            Reply::Unit
        }
        (Obj::List(l), Op::ListExtend(vs)) => {
            l.extend(vs);
            Reply::Unit
        }
        (Obj::List(l), Op::ListPop) => Reply::Value(l.pop()),
        (Obj::List(l), Op::ListInsert(i, v)) => {
            let at = usize::try_from(i).unwrap_or(usize::MAX).min(l.len());
            l.insert(at, v);
            Reply::Unit
        }
        (Obj::List(l), Op::ListRemove(i)) => match index(i, l.len()) {
            Some(i) => Reply::Value(Some(l.remove(i))),
            None => out_of_range(i, l.len()),
        },
        (Obj::List(l), Op::ListToVec) => Reply::Values(l.clone()),
        (Obj::List(l), Op::Len) => Reply::Len(l.len() as u64),
        (Obj::List(l), Op::Clear) => {
            l.clear();
            Reply::Unit
        }
        (Obj::Queue { items, .. }, Op::Len) => Reply::Len(items.len() as u64),
        (Obj::Queue { unfinished, .. }, Op::QueueTaskDone) => {
            if *unfinished == 0 {
                Reply::Err(
                    Error::new(ErrorKind::TooManyReleases)
                        .with_message("task_done called more times than values were put"),
                )
            } else {
                *unfinished -= 1;
                Reply::Unit
            }
        }
        (Obj::Lock(holder), Op::Release(who)) => match same_process(who) {
            Err(e) => Reply::Err(e),
            Ok(_) if holder.is_none() => Reply::Err(
                Error::new(ErrorKind::NotOwner).with_message("release of an unlocked lock"),
            ),
            Ok(_) => {
                *holder = None;
                Reply::Unit
            }
        },
        (Obj::RLock(r), Op::Release(who)) => match same_process(who).and_then(|w| r.release(w)) {
            Ok(()) => Reply::Unit,
            Err(e) => Reply::Err(e),
        },
        (Obj::Condition(c), Op::Release(who)) => {
            match same_process(who).and_then(|w| c.lock.release(w)) {
                Ok(()) => Reply::Unit,
                Err(e) => Reply::Err(e),
            }
        }
        (Obj::Semaphore { value, bound }, Op::Release(_)) => {
            if bound.is_some_and(|b| *value >= b) || *value == u64::MAX {
                Reply::Err(Error::new(ErrorKind::TooManyReleases))
            } else {
                *value += 1;
                Reply::Unit
            }
        }
        (Obj::Event(flag), Op::EventSet) => {
            *flag = true;
            Reply::Unit
        }
        (Obj::Event(flag), Op::EventClear) => {
            *flag = false;
            Reply::Unit
        }
        (Obj::Event(flag), Op::EventIsSet) => Reply::Bool(*flag),
        (Obj::Condition(c), Op::CondNotify(who, n)) => match same_process(who) {
            Err(e) => Reply::Err(e),
            Ok(w) if c.lock.owner != Some(w) => Reply::Err(
                Error::new(ErrorKind::NotOwner)
                    .with_message("notify on a condition whose lock is not held"),
            ),
            Ok(_) => {
                for _ in 0..n {
                    match c.waiting.pop_front() {
                        Some(t) => {
                            c.notified.insert(t);
                        }
                        None => break,
                    }
                }
                Reply::Unit
            }
        },
        (Obj::Barrier(b), Op::BarrierAbort) => {
            b.broken = true;
            Reply::Unit
        }
        (Obj::Barrier(b), Op::Len) => Reply::Len(b.count),
        _ => return Err(()),
    })
}
