//! `Manager`: shared dict/list/queue/lock/namespace/sync objects and registered types
//! across child processes of every start method, TCP with the right and a wrong key,
//! `connect` from an unrelated process, the server killed with `SIGKILL` (every call,
//! blocked or not, gets `Disconnected` within a deadline), client death (its locks
//! released, its untaken value put back), reference counting, hostile clients, and
//! no leaked process, socket file or directory.

mod util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use multiproc::ipc::{Address, Client};
use multiproc::manager::{Dict, List, Lock, Managed, Namespace, Proxy, Queue};
use multiproc::{ErrorKind, Manager, Process, StartMethod};
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(120);

fn start(method: StartMethod) -> Manager {
    Manager::builder()
        .start_method(method)
        .allow_threads(true) // the watchdog is a thread
        .start()
        .unwrap()
}

fn child(method: StartMethod) -> multiproc::process::Builder {
    Process::builder().start_method(method).allow_threads(true)
}

fn socket_path(m: &Manager) -> PathBuf {
    match m.address() {
        Address::Unix(p) => p.clone(),
        a => panic!("not a Unix socket: {a}"),
    }
}

type Shared = (
    Dict<String, u64>,
    List<u32>,
    Queue<u32>,
    Lock,
    Namespace,
    u32,
);

/// Adds to a counter under the lock, appends to the list, answers on the queue.
fn work((counts, seen, out, lock, ns, me): Shared) {
    for _ in 0..20 {
        let _held = lock.lock().unwrap();
        // A read-modify-write that loses updates without the lock.
        let n = counts.get("total".to_string()).unwrap().unwrap_or(0);
        counts.insert("total".to_string(), n + 1).unwrap();
    }
    seen.push(me).unwrap();
    ns.set(&format!("worker-{me}"), &me).unwrap();
    out.put(me * 100).unwrap();
}

#[test]
fn dict_list_queue_lock_shared_by_children_of_every_start_method() {
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let m = start(method);
        let counts = m.dict::<String, u64>().unwrap();
        let seen = m.list::<u32>().unwrap();
        let out = m.queue::<u32>().unwrap();
        let lock = m.lock().unwrap();
        let ns = m.namespace().unwrap();
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let args = (
                    counts.clone(),
                    seen.clone(),
                    out.clone(),
                    lock.clone(),
                    ns.clone(),
                    i,
                );
                child(method).start_with(work, args).unwrap()
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(
            counts.get("total".to_string()).unwrap(),
            Some(60),
            "{method:?}"
        );
        let mut s = seen.to_vec().unwrap();
        s.sort_unstable();
        assert_eq!(s, [0, 1, 2], "{method:?}");
        let mut got: Vec<u32> = (0..3)
            .map(|_| out.get_timeout(Duration::from_secs(30)).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 100, 200], "{method:?}");
        assert_eq!(ns.get::<u32>("worker-2").unwrap(), Some(2));
        let mut names = ns.names().unwrap();
        names.sort();
        assert_eq!(names, ["worker-0", "worker-1", "worker-2"]);
        m.shutdown().unwrap();
    }
}

/// Sends a proxy back through an `ipc::Queue`: proxies travel as values too.
fn make_list(q: multiproc::Queue<List<String>>) {
    let list = q.get().unwrap();
    list.push("from the child".to_string()).unwrap();
    let copy = list.clone();
    q.put(copy).unwrap();
}

#[test]
fn a_proxy_travels_through_an_ipc_queue_and_keeps_its_object_alive() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let q = multiproc::Queue::<List<String>>::new().unwrap();
    let p = Process::start_with(make_list, q.clone()).unwrap();
    {
        // The only proxy in this process goes into the queue and is dropped here:
        // the reference taken for the trip keeps the object alive.
        let list = m.list::<String>().unwrap();
        q.put(list).unwrap();
    }
    p.join().unwrap();
    let back = q.get_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(back.to_vec().unwrap(), ["from the child"]);
    drop(back);
    assert!(
        util::eventually(Duration::from_secs(10), || m.object_count().unwrap() == 0),
        "the list outlived its last proxy: {} objects",
        m.object_count().unwrap()
    );
}

#[test]
fn tcp_with_the_right_key_works_and_a_wrong_key_is_refused() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::builder()
        .address(Address::Tcp("127.0.0.1:0".parse().unwrap()))
        .authkey(b"right key".to_vec())
        .start()
        .unwrap();
    let address = m.address().clone();
    assert!(matches!(address, Address::Tcp(a) if a.port() != 0));
    let d = m.dict::<u32, String>().unwrap();
    d.insert(1, "one".to_string()).unwrap();

    let client = Manager::connect(&address, Some(b"right key")).unwrap();
    let q = client.queue::<String>().unwrap();
    q.put("hello".to_string()).unwrap();
    assert_eq!(q.get().unwrap(), "hello");

    for key in [Some(&b"wrong key"[..]), None] {
        let e = Manager::connect(&address, key).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{key:?}: {e}");
    }
    // A raw client that fails the challenge never reaches the object table.
    let e = Client::connect(&address, Some(b"nope")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
    assert_eq!(d.get(1).unwrap().as_deref(), Some("one"));
    assert_eq!(
        client.shutdown().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// Connects by address and key, as an unrelated program would, and hands a queue
/// it created back through a queue of queues.
fn connect_and_write((address, key, handoff): (Address, Vec<u8>, Queue<Queue<String>>)) {
    let m = Manager::connect(&address, Some(&key)).unwrap();
    let q = m.queue::<String>().unwrap();
    q.put("made by the client".to_string()).unwrap();
    handoff.put(q).unwrap();
}

#[test]
fn connect_from_a_spawned_process_by_address_and_key() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::builder().authkey(b"k".to_vec()).start().unwrap();
    let handoff = m.queue::<Queue<String>>().unwrap();
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .start_with(
            connect_and_write,
            (m.address().clone(), b"k".to_vec(), handoff.clone()),
        )
        .unwrap();
    p.join().unwrap();
    let q = handoff.get_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(q.get().unwrap(), "made by the client");
}

#[test]
fn killing_the_server_fails_every_call_and_every_blocked_call_within_a_deadline() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let path = socket_path(&m);
    let dir = path.parent().unwrap().to_owned();
    let q = m.queue::<u32>().unwrap();
    let lock = m.lock().unwrap();
    let d = m.dict::<u32, u32>().unwrap();
    let ev = m.event().unwrap();
    lock.acquire().unwrap();
    let (q2, l2, e2) = (q.clone(), lock.clone(), ev.clone());
    let blocked_get = std::thread::spawn(move || q2.get());
    let blocked_lock = std::thread::spawn(move || l2.acquire());
    let blocked_wait = std::thread::spawn(move || e2.wait());
    std::thread::sleep(Duration::from_millis(300)); // let them block (not required)
    let pid = m.pid().unwrap();
    let killed = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let deadline = Duration::from_secs(5);
    let e = blocked_get.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    let e = blocked_lock.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    let e = blocked_wait.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    // Deadline plus a generous margin for a loaded machine.
    assert!(
        killed.elapsed() < deadline + Duration::from_secs(10),
        "blocked calls took {:?} to fail",
        killed.elapsed()
    );
    for e in [
        d.insert(1, 1).unwrap_err(),
        q.put(1).unwrap_err(),
        lock.release().unwrap_err(),
        m.dict::<u8, u8>().unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    }
    drop((q, lock, d, ev));
    drop(m);
    assert!(!path.exists(), "socket file left: {}", path.display());
    assert!(!dir.exists(), "socket directory left: {}", dir.display());
    assert!(!util::alive(pid));
    assert!(util::zombie_children().is_empty());
}

#[test]
fn drop_and_shutdown_leave_no_process_socket_or_descriptor() {
    let _w = util::watchdog(LIMIT);
    // Warm up lazily created process-wide descriptors (death pipe, fork server).
    drop(Manager::new().unwrap());
    let fds = util::open_fds();
    for explicit in [false, true] {
        let m = Manager::new().unwrap();
        let pid = m.pid().unwrap();
        let path = socket_path(&m);
        let dir = path.parent().unwrap().to_owned();
        let d = m.dict::<u8, u8>().unwrap();
        d.insert(1, 2).unwrap();
        assert!(path.exists());
        if explicit {
            m.shutdown().unwrap();
            m.shutdown().unwrap(); // idempotent
            assert_eq!(d.get(1).unwrap_err().kind(), ErrorKind::Disconnected);
        }
        drop(m);
        drop(d);
        assert!(!util::alive(pid), "server {pid} still running");
        assert!(!path.exists() && !dir.exists(), "{} left", dir.display());
    }
    assert!(util::zombie_children().is_empty());
    assert!(
        util::eventually(Duration::from_secs(10), || util::open_fds() <= fds),
        "descriptors leaked: {} before, {} after",
        fds,
        util::open_fds()
    );
}

/// Takes the lock and a value, then exits without releasing or answering.
fn die_holding((lock, q): (Lock, Queue<u32>)) {
    lock.acquire().unwrap();
    assert_eq!(q.get().unwrap(), 7);
    // Leaves with the lock held.
}

#[test]
fn a_client_that_dies_holding_a_lock_releases_it() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let lock = m.lock().unwrap();
    let q = m.queue::<u32>().unwrap();
    q.put(7).unwrap();
    let p = Process::start_with(die_holding, (lock.clone(), q.clone())).unwrap();
    p.join().unwrap();
    assert!(
        lock.acquire_timeout(Duration::from_secs(30)).unwrap(),
        "the dead client's lock was never released"
    );
    lock.release().unwrap();
}

/// Blocks in `get` until killed.
fn block_in_get(q: Queue<u32>) {
    let _ = q.get();
}

#[test]
fn a_value_taken_for_a_killed_client_goes_back_to_the_queue() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let q = m.queue::<u32>().unwrap();
    let p = Process::start_with(block_in_get, q.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(500)); // usually blocked by now
    p.kill().unwrap();
    let _ = p.join();
    q.put(42).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), 42);
}

#[test]
fn objects_are_freed_with_their_last_proxy() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    let d2 = d.clone();
    let l = m.list::<u8>().unwrap();
    assert_eq!(m.object_count().unwrap(), 2);
    drop(d);
    assert_eq!(d2.len().unwrap(), 0);
    drop(d2);
    drop(l);
    assert!(util::eventually(Duration::from_secs(10), || m
        .object_count()
        .unwrap()
        == 0));
}

/// A registered type: a bank account that refuses overdrafts.
struct Account {
    balance: i64,
}

#[derive(Debug, Serialize, Deserialize)]
enum AccountOp {
    Deposit(i64),
    Withdraw(i64),
    Balance,
    Panic,
}

impl Managed for Account {
    const TYPE_ID: &'static str = "Account";
    type Init = i64;
    type Request = AccountOp;
    type Response = Result<i64, String>;

    fn new(balance: i64) -> Account {
        Account { balance }
    }

    fn handle(&mut self, op: AccountOp) -> Result<i64, String> {
        match op {
            AccountOp::Deposit(n) => self.balance += n,
            AccountOp::Withdraw(n) if n > self.balance => return Err("overdraft".into()),
            AccountOp::Withdraw(n) => self.balance -= n,
            AccountOp::Balance => {}
            AccountOp::Panic => panic!("the account is haunted"),
        }
        Ok(self.balance)
    }
}

fn deposit_ten(account: Proxy<Account>) {
    for _ in 0..10 {
        account.call(&AccountOp::Deposit(1)).unwrap().unwrap();
    }
}

#[test]
fn a_registered_type_is_shared_by_children_of_every_start_method() {
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let m = Manager::builder()
            .register::<Account>()
            .start_method(method)
            .allow_threads(true)
            .start()
            .unwrap();
        let account = m.create::<Account>(&100).unwrap();
        let kids: Vec<_> = (0..2)
            .map(|_| {
                child(method)
                    .start_with(deposit_ten, account.clone())
                    .unwrap()
            })
            .collect();
        for k in kids {
            k.join().unwrap();
        }
        assert_eq!(account.call(&AccountOp::Balance).unwrap(), Ok(120));
        assert_eq!(
            account.call(&AccountOp::Withdraw(1000)).unwrap(),
            Err("overdraft".to_string())
        );
        let e = account.call(&AccountOp::Panic).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.panic().unwrap().message(), "the account is haunted");
        // Still usable after the panic.
        assert_eq!(account.call(&AccountOp::Balance).unwrap(), Ok(120));
    }
    let plain = Manager::new().unwrap();
    let e = plain.create::<Account>(&1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotRegistered);
}

#[test]
fn a_hostile_client_with_the_key_cannot_take_the_server_down() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    let key = m.authkey().unwrap().to_vec();
    // Garbage instead of a hello, a huge length prefix, then garbage after a hello.
    let c = Client::connect(m.address(), Some(&key)).unwrap();
    c.send_bytes(&[0xff; 64]).unwrap();
    assert!(c.recv_bytes().is_err());
    let c = Client::connect(m.address(), Some(&key)).unwrap();
    c.send_bytes(&vec![0u8; 65 << 20]).ok();
    let c = Client::connect(m.address(), Some(&key)).unwrap();
    c.send_bytes(&[0x00, 0x00]).unwrap(); // a `Hello(0)`, then junk
    let _ = c.recv_bytes();
    let _ = c.send_bytes(&[0x63, 0xff, 0xff]); // no such request
    let _ = c.recv_bytes();
    drop(c);
    d.insert(1, 1).unwrap();
    assert_eq!(d.get(1).unwrap(), Some(1));
}

#[test]
fn semaphore_event_condition_and_barrier_across_threads() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let sem = m.bounded_semaphore(1).unwrap();
    assert!(sem.try_acquire().unwrap());
    assert!(!sem.acquire_timeout(Duration::from_millis(50)).unwrap());
    sem.release().unwrap();
    assert_eq!(
        sem.release().unwrap_err().kind(),
        ErrorKind::TooManyReleases
    );

    let cond = m.condition().unwrap();
    assert_eq!(cond.wait().unwrap_err().kind(), ErrorKind::NotOwner);
    let ns = m.namespace().unwrap();
    let (c, n) = (cond.clone(), ns.clone());
    let t = std::thread::spawn(move || {
        let _g = c.lock().unwrap();
        while n.get::<bool>("go").unwrap() != Some(true) {
            c.wait().unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    {
        let _g = cond.lock().unwrap();
        ns.set("go", &true).unwrap();
        cond.notify_all().unwrap();
    }
    t.join().unwrap();
    {
        let _g = cond.lock().unwrap();
        assert!(!cond.wait_timeout(Duration::from_millis(50)).unwrap());
    }

    let rl = m.rlock().unwrap();
    let g1 = rl.lock().unwrap();
    let g2 = rl.lock().unwrap();
    let r2 = rl.clone();
    let other = std::thread::spawn(move || r2.try_acquire().unwrap());
    assert!(!other.join().unwrap());
    drop(g2);
    drop(g1);
    assert_eq!(rl.release().unwrap_err().kind(), ErrorKind::NotOwner);

    let b = m.barrier(2).unwrap();
    assert_eq!(
        b.wait_timeout(Duration::from_millis(50))
            .unwrap_err()
            .kind(),
        ErrorKind::BrokenBarrier
    );
    assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    assert_eq!(m.barrier(0).unwrap_err().kind(), ErrorKind::InvalidInput);

    let q = m.queue::<u8>().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(
        q.join_timeout(Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::Timeout
    );
    q.get().unwrap();
    q.get().unwrap();
    q.task_done().unwrap();
    q.task_done().unwrap();
    q.join().unwrap();
    assert_eq!(
        q.task_done().unwrap_err().kind(),
        ErrorKind::TooManyReleases
    );
    let bounded = m.queue_bounded::<u8>(1).unwrap();
    assert!(bounded.try_put(1).unwrap());
    assert!(!bounded.try_put(2).unwrap());
    assert_eq!(
        bounded
            .put_timeout(3, Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::Timeout
    );
}

/// Starts a manager, reports its server's pid, and waits to be killed.
fn own_a_manager(report: multiproc::Queue<i32>) {
    let m = Manager::new().unwrap();
    report.put(m.pid().unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(600));
    drop(m);
}

#[test]
fn the_server_dies_with_its_owner_even_when_the_owner_is_killed() {
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let report = multiproc::Queue::<i32>::new().unwrap();
        let owner = child(method)
            .start_with(own_a_manager, report.clone())
            .unwrap();
        let server = report.get_timeout(Duration::from_secs(60)).unwrap();
        assert!(util::alive(server));
        owner.kill().unwrap();
        let _ = owner.join();
        assert!(
            util::eventually(Duration::from_secs(20), || !util::alive(server)),
            "{method:?}: the server {server} outlived its killed owner"
        );
    }
}

#[test]
fn a_forked_child_cannot_stop_its_parents_server() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    let mref = &m;
    let kid = Process::builder()
        .allow_threads(true)
        .fork(move || mref.shutdown().unwrap_err().kind() == ErrorKind::InvalidInput)
        .unwrap();
    assert!(kid.join().unwrap());
    // A forked child that drops its copy of the handle leaves the server alone too.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(Manager::new().unwrap())));
    let pid = slot.lock().unwrap().as_ref().unwrap().pid().unwrap();
    let theirs = std::sync::Arc::clone(&slot);
    let kid = Process::builder()
        .allow_threads(true)
        .fork(move || drop(theirs.lock().unwrap().take()))
        .unwrap();
    kid.join().unwrap();
    assert!(
        util::alive(pid),
        "the child's drop stopped the parent's server"
    );
    let owned = slot.lock().unwrap().take().unwrap();
    assert_eq!(owned.object_count().unwrap(), 0);
    drop(owned);
    assert!(!util::alive(pid));
    d.insert(1, 1).unwrap();
}

fn bump((v, lock): (multiproc::manager::Value<u64>, Lock)) {
    for _ in 0..10 {
        let _held = lock.lock().unwrap();
        v.update(|n| n + 1).unwrap();
    }
}

#[test]
fn a_value_updated_under_a_lock_by_children() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let v = m.value(&5u64).unwrap();
    let lock = m.lock().unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| Process::start_with(bump, (v.clone(), lock.clone())).unwrap())
        .collect();
    for k in kids {
        k.join().unwrap();
    }
    assert_eq!(v.get().unwrap(), 35);
    assert_eq!(v.set(1).unwrap(), 35);
    assert_eq!(v.get().unwrap(), 1);
}

/// `(local port, remote port, state, timer)` of this network namespace's IPv4 TCP
/// sockets, from `/proc/net/tcp` (timer 2 is the keepalive timer).
fn tcp_sockets() -> Vec<(u16, u16, u8, u8)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap(), 16).unwrap();
    table
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let state = u8::from_str_radix(f[3], 16).unwrap();
            let timer = u8::from_str_radix(f[5].split(':').next().unwrap(), 16).unwrap();
            (port(f[1]), port(f[2]), state, timer)
        })
        .collect()
}

#[test]
fn tcp_connections_have_keepalive_on_both_sides() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::builder()
        .address(Address::Tcp("127.0.0.1:0".parse().unwrap()))
        .start()
        .unwrap();
    let Address::Tcp(a) = m.address().clone() else {
        unreachable!()
    };
    let d = m.dict::<u8, u8>().unwrap();
    d.insert(1, 1).unwrap(); // an idle connection stays in the pool
    const ESTABLISHED: u8 = 1;
    const KEEPALIVE_TIMER: u8 = 2;
    let ours = || -> Vec<_> {
        tcp_sockets()
            .into_iter()
            .filter(|&(l, r, st, _)| st == ESTABLISHED && (l == a.port() || r == a.port()))
            .collect()
    };
    // Once the last reply is acknowledged (until then the retransmit timer runs).
    let armed = util::eventually(Duration::from_secs(10), || {
        let o = ours();
        o.len() >= 2 && o.iter().all(|s| s.3 == KEEPALIVE_TIMER)
    });
    assert!(armed, "connections without keepalive: {:?}", ours());
}

#[test]
fn a_timeout_call_returns_even_when_the_server_is_stopped() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let q = m.queue::<u8>().unwrap();
    let lock = m.lock().unwrap();
    q.put(1).unwrap();
    let pid = rustix::process::Pid::from_raw(m.pid().unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    // The stop is asynchronous: wait until every thread of the server is stopped.
    let stopped = || {
        std::fs::read_dir(format!("/proc/{}/task", pid.as_raw_nonzero()))
            .unwrap()
            .flatten()
            .all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                stat.rfind(')')
                    .is_some_and(|c| stat[c + 1..].trim_start().starts_with('T'))
            })
    };
    assert!(util::eventually(Duration::from_secs(30), stopped));
    let start = Instant::now();
    let e = q.get_timeout(Duration::from_millis(100)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let e = lock
        .acquire_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // Each waits its timeout plus a grace of 5 s; a generous margin on top.
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    // The server undid what it did for the connections that gave up: the value is
    // still there and the lock free.
    // (The threads serving the abandoned calls run them now, and undo them when
    // their replies find no reader: wait for that, rather than try once.)
    assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), 1);
    assert!(lock.acquire_timeout(Duration::from_secs(30)).unwrap());
}

#[test]
fn a_dict_lists_its_entries_in_insertion_order() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::new().unwrap();
    let d = m.dict::<String, u32>().unwrap();
    for (i, k) in ["zebra", "apple", "mango"].into_iter().enumerate() {
        d.insert(k.to_string(), i as u32).unwrap();
    }
    d.insert("apple".to_string(), 10).unwrap();
    d.remove("zebra".to_string()).unwrap();
    d.update([("kiwi".to_string(), 3), ("zebra".to_string(), 4)])
        .unwrap();
    assert_eq!(d.keys().unwrap(), ["apple", "mango", "kiwi", "zebra"]);
    assert_eq!(d.values().unwrap(), [10, 2, 3, 4]);
    assert_eq!(d.get_or_insert("mango".to_string(), 99).unwrap(), 2);
}

#[test]
fn a_hostile_server_gives_typed_errors_not_panics() {
    let _w = util::watchdog(LIMIT);
    let address = Address::Abstract(util::unique_name("mp-fake-manager").into_bytes());
    let listener = multiproc::ipc::Listener::bind(&address, Some(b"k")).unwrap();
    let fake = std::thread::spawn(move || {
        // 1: garbage instead of the hello's reply.
        let c = listener.accept().unwrap();
        let _ = c.recv_bytes();
        c.send_bytes(&[0xff; 16]).unwrap();
        // 2: hangs up at once.
        drop(listener.accept().unwrap());
        // 3: an empty reply, then hang-up.
        let c = listener.accept().unwrap();
        let _ = c.recv_bytes();
        c.send_bytes(&[]).unwrap();
        drop(c);
    });
    let e = Manager::connect(&address, Some(b"k")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    let e = Manager::connect(&address, Some(b"k")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    let e = Manager::connect(&address, Some(b"k")).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Decode | ErrorKind::Disconnected),
        "{e}"
    );
    fake.join().unwrap();
}

#[test]
fn a_manager_restarted_at_the_same_address_is_reached_on_the_first_call() {
    let _w = util::watchdog(LIMIT);
    let address = Address::Abstract(util::unique_name("mp-restart").into_bytes());
    let start = || {
        Manager::builder()
            .address(address.clone())
            .authkey(b"k".to_vec())
            .start()
            .unwrap()
    };
    let first = start();
    let client = Manager::connect(&address, Some(b"k")).unwrap();
    client.dict::<u8, u8>().unwrap(); // leaves an idle connection to the first server
    first.shutdown().unwrap();
    let _second = start();
    // The idle connection to the first server is gone; the call uses a new one.
    client.dict::<u8, u8>().unwrap();
}

/// Stops every thread of the server `m` and waits until they all are stopped.
fn stop_server(m: &Manager) -> rustix::process::Pid {
    let pid = rustix::process::Pid::from_raw(m.pid().unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let stopped = || {
        std::fs::read_dir(format!("/proc/{}/task", pid.as_raw_nonzero()))
            .unwrap()
            .flatten()
            .all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                stat.rfind(')')
                    .is_some_and(|c| stat[c + 1..].trim_start().starts_with('T'))
            })
    };
    assert!(util::eventually(Duration::from_secs(30), stopped));
    pid
}

#[test]
fn a_timeout_call_on_a_new_connection_to_a_stopped_server_returns() {
    let _w = util::watchdog(LIMIT);
    // Without a key there is no handshake to time out: only the call's own bound
    // can end the wait for the server's hello reply on a new connection.
    for keyed in [false, true] {
        let b = Manager::builder().allow_threads(true);
        let b = if keyed {
            b.authkey(b"k".to_vec())
        } else {
            b.no_authkey()
        };
        let m = b.start().unwrap();
        let q = m.queue::<u8>().unwrap();
        let pid = stop_server(&m);
        // Continued however the test ends, so that dropping `m` can stop it.
        struct Resume(rustix::process::Pid);
        impl Drop for Resume {
            fn drop(&mut self) {
                let _ = rustix::process::kill_process(self.0, rustix::process::Signal::CONT);
            }
        }
        let resume = Resume(pid);
        let (tx, rx) = std::sync::mpsc::channel();
        // Two calls at once: one takes the idle connection, the other needs a new one.
        for _ in 0..2 {
            let (q, tx) = (q.clone(), tx.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let r = q.get_timeout(Duration::from_millis(100));
                let _ = tx.send((r.map_err(|e| e.kind()), start.elapsed()));
            });
        }
        for _ in 0..2 {
            // The call's timeout plus its 5 s grace, and a generous margin.
            let (r, took) = rx
                .recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|_| panic!("keyed {keyed}: a _timeout call still waits"));
            assert_eq!(r, Err(ErrorKind::Timeout), "keyed {keyed}");
            assert!(took < Duration::from_secs(15), "keyed {keyed}: {took:?}");
        }
        drop(resume);
        assert_eq!(q.len().unwrap(), 0);
    }
}

#[test]
fn a_reply_larger_than_the_message_limit_is_an_error_and_the_server_stays() {
    let _w = util::watchdog(LIMIT);
    let m = Manager::builder()
        .allow_threads(true)
        .max_message_size(4096)
        .start()
        .unwrap();
    let l = m.list::<String>().unwrap();
    // Each push is small; together they are larger than one message may be.
    for i in 0..100 {
        l.push(format!("{i:0>100}")).unwrap();
    }
    let e = l.to_vec().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(l.len().unwrap(), 100, "the server still answers");
}

#[test]
fn dropping_a_manager_whose_server_is_stopped_returns() {
    let _w = util::watchdog(LIMIT);
    for keyed in [false, true] {
        let b = Manager::builder().allow_threads(true);
        let b = if keyed {
            b.authkey(b"k".to_vec())
        } else {
            b.no_authkey()
        };
        let m = b.start().unwrap();
        let server = m.pid().unwrap();
        stop_server(&m);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(m);
            let _ = tx.send(());
        });
        // Shutdown's grace (5 s to connect and be answered, 5 s to exit), then a
        // kill, which ends a stopped process too; a generous margin on top.
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let pid = rustix::process::Pid::from_raw(server).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
            panic!("keyed {keyed}: dropping the manager still waits for its stopped server");
        }
        assert!(
            !util::alive(server),
            "keyed {keyed}: the server outlived its manager"
        );
    }
}

#[test]
fn a_killed_owners_socket_directory_is_swept_by_the_next_manager() {
    let _w = util::watchdog(LIMIT);
    let report = multiproc::Queue::<i32>::new().unwrap();
    let owner = child(StartMethod::Fork)
        .start_with(own_a_manager, report.clone())
        .unwrap();
    let server = report.get_timeout(Duration::from_secs(60)).unwrap();
    let owner_pid = owner.pid();
    owner.kill().unwrap();
    let _ = owner.join();
    assert!(util::eventually(Duration::from_secs(20), || !util::alive(
        server
    )));
    let prefix = format!("multiproc-manager-{owner_pid}-");
    let left = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count()
    };
    assert_eq!(left(), 1, "the killed owner's server could not clean up");
    // The listening socket can outlive the server for a moment (another process of
    // the dead owner's, on its way out, may still hold a copy): until nobody holds
    // it, it accepts connections and the directory is rightly not yet stale.
    let socket = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .unwrap()
        .path()
        .join("manager.sock");
    assert!(util::eventually(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).is_err()
    }));
    // A live manager's directory is kept.
    let live = Manager::builder().allow_threads(true).start().unwrap();
    assert_eq!(
        left(),
        0,
        "the next manager sweeps the dead owner's directory"
    );
    assert!(socket_path(&live).exists());
    let again = Manager::builder().allow_threads(true).start().unwrap();
    assert!(socket_path(&live).exists() && socket_path(&again).exists());
}

#[test]
fn a_dead_owners_directory_without_its_socket_is_swept_too() {
    let _w = util::watchdog(LIMIT);
    // A server that saw its owner die may remove its socket on the way out and leave the
    // directory (full CI hit this): the directory of an owner that is gone, with no
    // socket in it, is stale as well.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let dir = std::env::temp_dir().join(format!("multiproc-manager-{dead_pid}-0-deadbeef"));
    std::fs::create_dir_all(&dir).unwrap();
    let live = Manager::builder().allow_threads(true).start().unwrap();
    assert!(!dir.exists(), "the next manager sweeps {}", dir.display());
    assert!(socket_path(&live).exists());
}
