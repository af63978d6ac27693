//! Every row of the README's "Coming from Python" table, compiled and run: each
//! `// row:` comment below quotes the row's Python column, and the code after it uses
//! what the multiproc column says. `tests/readme_python_table.rs` checks that the
//! README's rows and these comments are the same list, and that each identifier the
//! multiproc column calls appears in its row's code here.
//!
//! ```
//! use std::time::Duration;
//!
//! use multiproc::ipc::{self, Address, TryRecvError, TrySendError};
//! use multiproc::manager;
//! use multiproc::pool::{self, Backend, Pool, WaitFor};
//! use multiproc::process::{self, Builder};
//! use multiproc::sync::OwnerDied;
//! use multiproc::thread;
//! use multiproc::{
//!     Array, Barrier, BoundedSemaphore, Condition, ErrorKind, Event, JoinableQueue, Lock,
//!     Manager, Pipe, Process, Queue, RLock, Semaphore, SharedMemory, StartMethod, Thread, Value,
//! };
//!
//! fn f() -> u32 {
//!     7
//! }
//! fn sq(x: u64) -> u64 {
//!     x * x
//! }
//! fn add(a: u64, b: u64) -> u64 {
//!     a + b
//! }
//! fn sleepy(ms: u64) -> u64 {
//!     std::thread::sleep(Duration::from_millis(ms));
//!     ms
//! }
//! fn boom() -> u32 {
//!     panic!("no luck")
//! }
//! fn nothing() {}
//! let d = Duration::from_secs(30);
//! let x = 20u64;
//!
//! // row: `threading.Thread(target=f).start()`
//! assert_eq!(Thread::start(f)?.join()?, 7);
//!
//! // row: `multiprocessing.Process(target=f, args=(x,)).start()`
//! let p = Process::start_with(sq, x)?;
//! // row: `p.join()`
//! assert_eq!(p.join()?, 400);
//!
//! // row: `p.join(timeout)`
//! let mut p = Process::start_with(sleepy, 60_000)?;
//! let e = p.join_timeout(Duration::from_millis(10)).unwrap_err();
//! assert_eq!(e.kind(), ErrorKind::Timeout);
//! // row: `p.is_alive()`, `p.pid`, `p.exitcode`
//! assert!(p.is_alive() && p.pid() > 0 && p.exitcode().is_none());
//! // row: `p.terminate()`, `p.kill()`
//! p.terminate()?;
//! p.kill()?;
//! assert!(p.join().is_err());
//!
//! // row: `p.daemon = True`
//! let p = Builder::new().die_with_parent(true).start(f)?;
//! p.join()?;
//!
//! // row: `get_context("fork")` / `set_start_method("spawn")`
//! let p = Builder::new().start_method(StartMethod::Fork).allow_threads(true).start(f)?;
//! p.join()?;
//! StartMethod::set_default(StartMethod::Spawn);
//! StartMethod::set_default(StartMethod::ForkServer);
//!
//! // row: `Process(name='w')`, default `Process-1`, `p.name`
//! let p = Builder::new().name("w").start(f)?;
//! assert_eq!(p.name(), "w");
//! p.join()?;
//!
//! // row: `current_process()`, `parent_process()`, `active_children()`
//! let me = process::current_process();
//! assert_eq!((me.name(), me.pid()), ("MainProcess", std::process::id() as i32));
//! if let Some(parent) = process::parent_process() {
//!     let _ = (parent.is_alive(), parent.wait_timeout(Duration::ZERO));
//! }
//! let _running: Vec<process::ChildInfo> = process::active_children();
//!
//! // row: `set_executable(path)`
//! let _b = Builder::new().executable(std::env::current_exe()?);
//!
//! // row: an exception in the child, traceback on stderr
//! let e = Process::start(boom)?.join().unwrap_err();
//! assert_eq!(e.kind(), ErrorKind::Panicked);
//! assert!(e.panic().unwrap().location().is_some());
//!
//! // row: `faulthandler._sigsegv()`
//! fn crash() -> u32 {
//!     multiproc::fault::segfault()
//! }
//! let e = Process::start(crash)?.join().unwrap_err();
//! assert_eq!(e.kind(), ErrorKind::Signaled);
//!
//! // row: `Pool(4).map(f, xs)` / `ThreadPool(4)`
//! assert_eq!(Pool::processes(4)?.map(sq, vec![1, 2])?, [1, 4]);
//! let pool = Pool::threads(4)?;
//!
//! // row: `pool.imap(f, xs)`, `imap_unordered`, `starmap`, `apply_async(f, (x,), callback=cb)`
//! assert_eq!(pool.imap(sq, 1..=3).collect::<Result<Vec<_>, _>>()?, [1, 4, 9]);
//! assert_eq!(pool.imap_unordered(sq, 1..=3).count(), 3);
//! assert_eq!(pool.starmap(add, vec![(1, 2)])?, [3]);
//! let cb = |r: &multiproc::Result<u64>| assert_eq!(*r.as_ref().unwrap(), 400);
//! pool.apply_async_with(sq, x, cb).join()?;
//!
//! // row: `ProcessPoolExecutor().submit(f, x)`, `wait`, `as_completed`
//! let hs = vec![pool.submit(sq, 2), pool.submit(sq, 3)];
//! assert_eq!(pool::wait(&hs, WaitFor::All, Some(d)).len(), 2);
//! let mut done: Vec<u64> = pool::as_completed(hs).map(|(_, r)| r.unwrap()).collect();
//! done.sort();
//! assert_eq!(done, [4, 9]);
//!
//! // row: `ThreadPoolExecutor(thread_name_prefix='io')`
//! fn my_name(_: ()) -> String {
//!     std::thread::current().name().unwrap_or_default().to_owned()
//! }
//! let io = pool::Builder::new()
//!     .backend(Backend::Threads)
//!     .thread_name_prefix("io")
//!     .workers(1)
//!     .build()?;
//! assert_eq!(io.apply(my_name, ())?, "io_0");
//!
//! // row: `ThreadPool(4).map(f, xs)` with `f` a lambda or closure over shared objects, `submit(f, x)`
//! let k = std::sync::Arc::new(10u64);
//! let tp = pool::ThreadPool::new(4)?;
//! let kk = std::sync::Arc::clone(&k);
//! assert_eq!(tp.map(move |v: u64| v * *kk, vec![1, 2])?, [10, 20]);
//! let seen = std::sync::Arc::new(std::sync::Mutex::new(0));
//! let s2 = std::sync::Arc::clone(&seen);
//! tp.submit(move |v: u64| *s2.lock().unwrap() += v, 5).join()?;
//! assert_eq!(*seen.lock().unwrap(), 5);
//!
//! // row: threads and `os.fork()` children reading the caller's local data
//! let local = vec![1u64, 2, 3];
//! let (sum, len) = multiproc::scope(|s| -> multiproc::Result<(u64, usize)> {
//!     let t = s.spawn(|| local.iter().sum::<u64>())?;
//!     let c = s.fork(|| local.len())?;
//!     Ok((t.join()?, c.join()?))
//! })??;
//! assert_eq!((sum, len), (6, 3));
//!
//! // row: `os.cpu_count()`
//! assert!(pool::cpu_count() >= 1);
//!
//! // row: `Pipe()` / `Pipe(duplex=False)`
//! let (a, b) = Pipe::new()?;
//! let (rx, tx) = Pipe::one_way()?;
//! tx.send(1u8)?;
//! assert_eq!(rx.recv::<u8>()?, 1);
//!
//! // row: `conn.send(obj)`, `conn.recv()`, `send_bytes`, `recv_bytes`, `recv_bytes_into`
//! a.send((1u32, "x".to_string()))?;
//! assert_eq!(b.recv::<(u32, String)>()?, (1, "x".to_string()));
//! a.send_bytes(b"ab")?;
//! assert_eq!(b.recv_bytes()?, b"ab");
//! a.send_bytes(b"cd")?;
//! let mut vec = Vec::new();
//! assert_eq!(b.recv_bytes_into(&mut vec)?, 2);
//!
//! // row: `conn.recv_bytes(maxlength)`
//! a.send_bytes(b"abc")?;
//! assert!(b.recv_bytes_max(2).is_err());
//!
//! // row: `conn.poll(timeout)`, `connection.wait([...], timeout)`
//! a.send(5u8)?;
//! assert!(b.poll(d));
//! let process = Process::start(f)?;
//! let ready = ipc::wait(&[&b, &a, &process], Some(d))?;
//! assert!(ready.contains(&0));
//! process.join()?;
//! let _ = b.recv::<u8>()?;
//!
//! // row: (no typed pipe; `queue.SimpleQueue` between two processes)
//! let (tx, rx) = ipc::channel::<u64>()?;
//! tx.send(3)?;
//! assert_eq!(rx.recv()?, 3);
//! let mut sel = ipc::Select::new();
//! let i = sel.recv(&rx);
//! tx.send(4)?;
//! assert_eq!(sel.ready()?, i);
//! assert_eq!(rx.iter().next(), Some(4));
//!
//! // row: `connection.Listener(address, authkey=k)`, `accept()`, `Client(address, authkey=k)`
//! let _other_kinds = [
//!     Address::Tcp("127.0.0.1:0".parse()?),
//!     Address::Unix(std::env::temp_dir().join("mp-doc.sock")),
//! ];
//! let address = Address::Abstract(format!("mp-doc-{}", std::process::id()).into_bytes());
//! let listener = ipc::Listener::bind(&address, Some(b"key"))?;
//! let client = std::thread::spawn(move || ipc::Client::connect(&address, Some(b"key")));
//! let server_end = listener.accept()?;
//! let client_end = client.join().unwrap()?;
//! client_end.send(9u8)?;
//! assert_eq!(server_end.recv::<u8>()?, 9);
//!
//! // row: `Queue(maxsize)`, `put`, `get`, `put_nowait`, `get(timeout=t)`
//! let q = Queue::bounded(1)?;
//! q.put(1u32)?;
//! assert!(matches!(q.try_put(2), Err(TrySendError::Full(2))));
//! assert_eq!(q.get()?, 1);
//! assert!(q.get_timeout(Duration::from_millis(1)).is_err());
//! assert!(matches!(q.try_get(), Err(TryRecvError::Empty)));
//!
//! // row: `SimpleQueue()`, `put`, `get`, `empty()`, `close()`
//! let sq_ = ipc::SimpleQueue::new()?;
//! sq_.put(1u8)?;
//! assert!(!sq_.empty());
//! assert_eq!(sq_.get()?, 1);
//! sq_.close();
//!
//! // row: `JoinableQueue()`, `task_done()`, `join()`
//! let jq = JoinableQueue::new()?;
//! jq.put(1u8)?;
//! jq.get()?;
//! jq.task_done()?;
//! jq.join();
//!
//! // row: (no batch put/get: one `put`/`get` per item)
//! let bq: Queue<u64> = Queue::new()?;
//! assert_eq!(bq.put_all(0..100).unwrap(), 100);
//! let full: Queue<u8> = Queue::bounded(2)?;
//! assert_eq!(full.try_put_all([1, 2, 3]).unwrap_err().sent, 2);
//! assert!(full.put_all_timeout([4], Duration::from_millis(1)).is_err());
//! let mut batch = Vec::new();
//! assert_eq!(bq.get_many(64, &mut batch)?, 64);
//! assert_eq!(bq.try_get_many(64, &mut batch)?, 36);
//! assert!(bq.get_many_timeout(64, &mut batch, Duration::from_millis(1)).is_err());
//! jq.put_all([1u8, 2]).unwrap();
//! let mut jbatch = Vec::new();
//! let n = jq.get_many(8, &mut jbatch)?;
//! jq.task_done_many(n)?;
//!
//! // row: `q.close()`, `q.shutdown(immediate=True)`
//! let q2: Queue<u8> = Queue::new()?;
//! q2.put(1)?;
//! assert_eq!(q2.shutdown(true), 1);
//! q.close();
//!
//! // row: `shared_memory.SharedMemory(create=True, size=n)` / `SharedMemory(name)`
//! let shm = SharedMemory::create(4096)?;
//! let name = shm.name();
//! let _same = SharedMemory::attach(&name)?;
//!
//! // row: `SharedMemory(name='x', create=True, size=n)`, `SharedMemory('x')`, `shm.unlink()` (unrelated processes)
//! let x = format!("mp-doc-{}", std::process::id());
//! let named = SharedMemory::create_named(&x, 4096)?;
//! let _opened = SharedMemory::open(&x)?;
//! let (_again, created) = SharedMemory::open_or_create(&x, 4096)?;
//! assert!(!created);
//! named.unlink()?;
//!
//! // row: (no zero-copy channel: a `SharedMemory` per payload, its name sent through a `Queue`)
//! let (tx, rx) = ipc::loan_channel(2, 4096)?;
//! let mut l = tx.loan(3)?;
//! l.write(0, b"abc")?;
//! let _fill_in_place = l.as_mut_ptr();
//! l.send()?;
//! let s = rx.recv()?;
//! let mut buf = [0u8; 2];
//! s.read(1, &mut buf)?;
//! assert_eq!(&buf, b"bc");
//! let mut vec = Vec::new();
//! s.read_into(&mut vec);
//! assert_eq!(vec, b"abc");
//! let _read_in_place = s.as_ptr();
//! drop(s);
//!
//! // row: `shared_memory.ShareableList([1, 'a', None])`, `ShareableList(name='x')`
//! use multiproc::shm::{Item, ShareableList};
//! let list = ShareableList::new(vec![Item::Int(1), "a".into(), Item::None])?;
//! list.set(0, Item::Int(2))?;
//! assert_eq!(list.get(0)?, Item::Int(2));
//! let y = format!("mp-doc-list-{}", std::process::id());
//! let named = ShareableList::create_named(&y, vec![Item::Int(1)])?;
//! assert_eq!(ShareableList::open(&y)?.get(0)?, Item::Int(1));
//! named.shm().unlink()?;
//!
//! // row: `Value('i', 0)` / `RawValue('i', 0)` / `Array('d', 10)`
//! let v = Value::<i32>::with_lock(0)?;
//! let _raw = Value::<i32>::new(0)?;
//! let _arr = Array::<f64>::new(10)?;
//!
//! // row: `with v.get_lock(): v.value += 1`
//! {
//!     let _g = v.get_lock().unwrap().lock().unwrap_or_else(OwnerDied::into_inner);
//!     v.set(v.get() + 1);
//! }
//! v.fetch_add(1);
//! assert_eq!(v.get(), 2);
//!
//! // row: `Lock()`, `lock.acquire(timeout=t)`, `with lock:`
//! let lock = Lock::new()?;
//! drop(lock.lock_timeout(d));
//! {
//!     let _g = lock.lock().unwrap_or_else(OwnerDied::into_inner);
//! }
//!
//! // row: `RLock`, `Semaphore(n)`, `BoundedSemaphore(n)`, `Event`, `Condition`, `Barrier(n, action)`
//! let _r = RLock::new()?;
//! let sem = Semaphore::new(2)?;
//! let _b = BoundedSemaphore::new(2)?;
//! let _e = Event::new()?;
//! let cond = Condition::new()?;
//! let _bar = Barrier::with_action(1, nothing)?;
//!
//! // row: `with sem:`
//! {
//!     let _unit = sem.guard();
//!     let two = sem.try_guard();
//!     assert!(two.is_some());
//!     assert!(sem.guard_timeout(Duration::from_millis(1)).is_none());
//! }
//!
//! // row: `threading.Timer(t, f).start()`, `timer.cancel()`
//! let timer = thread::Timer::start(d, f)?;
//! assert!(timer.cancel());
//! assert_eq!(timer.join()?, None);
//!
//! // row: `sem.get_value()`, `cond.notify(n)`, `Barrier(n, timeout=t)`, `BrokenBarrierError`
//! assert_eq!(sem.value(), 2);
//! cond.notify(1);
//! let bar = Barrier::new(2)?.with_default_timeout(Duration::from_millis(10));
//! assert_eq!(bar.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
//!
//! // row: `Manager()`, `m.dict()`, `m.list()`, `m.Queue()`, `m.Lock()`, `m.Namespace()`, `m.Value(t, x)`
//! let m = Manager::new()?;
//! let dict = m.dict::<String, u32>()?;
//! let _list = m.list::<u32>()?;
//! let mq = m.queue::<u32>()?;
//! let _lock = m.lock()?;
//! let _ns = m.namespace()?;
//! let _v = m.value(&x)?;
//! dict.insert("k".to_string(), 1)?;
//! assert_eq!(dict.get("k".to_string())?, Some(1));
//! Process::start_with(|q: manager::Queue<u32>| q.put(5).unwrap(), mq.clone())?.join()?;
//! assert_eq!(mq.get()?, 5);
//!
//! // row: `BaseManager(address, authkey).connect()`, `register(typeid, callable)`
//! struct Tally(u32);
//! impl manager::Managed for Tally {
//!     const TYPE_ID: &'static str = "Tally";
//!     type Init = u32;
//!     type Request = u32;
//!     type Response = u32;
//!     fn new(start: u32) -> Tally {
//!         Tally(start)
//!     }
//!     fn handle(&mut self, add: u32) -> u32 {
//!         self.0 += add;
//!         self.0
//!     }
//! }
//! let server = Manager::builder().register::<Tally>().start()?;
//! let (address, key) = (server.address().clone(), server.authkey().unwrap().to_vec());
//! let client = Manager::connect(&address, Some(&key))?;
//! assert_eq!(client.create::<Tally>(&1)?.call(&2)?, 3);
//! let gone = server.shutdown().and_then(|()| client.dict::<u8, u8>().map(drop));
//! assert_eq!(gone.unwrap_err().kind(), ErrorKind::Disconnected);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
