//! Send/Sync table of the public handle types: a regression here is a breaking change.

use multiproc::process::{Builder, ExitStatus, Output, Signal};
use multiproc::{Error, Process, RemotePanic, StartMethod, Thread};

fn send_sync<T: Send + Sync>() {}

fn send<T: Send>() {}

#[test]
fn handles_are_send_and_sync() {
    send_sync::<Process<u32>>();
    send_sync::<Process<String>>();
    send_sync::<Thread<u32>>();
    send_sync::<Builder>();
    send_sync::<multiproc::thread::Builder>();
    send_sync::<Error>();
    send_sync::<RemotePanic>();
    send_sync::<ExitStatus>();
    send_sync::<Output>();
    send_sync::<Signal>();
    send_sync::<StartMethod>();
    send_sync::<multiproc::Pool>();
    send_sync::<multiproc::pool::Builder>();
    send_sync::<multiproc::pool::Backend>();
    send_sync::<multiproc::pool::TaskHandle<u32>>();
    send_sync::<multiproc::pool::TaskHandle<String>>();
    send_sync::<multiproc::pool::MapHandle<u32>>();
    send_sync::<multiproc::pool::WaitFor>();
    // An iterator, moved to the thread that consumes it: Send only, as
    // `std::sync::mpsc::IntoIter`.
    send::<multiproc::pool::AsCompleted<u32>>();
    send_sync::<multiproc::pool::ThreadPool>();
    // An `imap` iterator is consumed on one thread but may move there, from either
    // pool type (its function is behind the pool's own bounds).
    send::<multiproc::pool::Imap<'static, fn(u32) -> u32, std::ops::Range<u32>, u32>>();
    // A scope is lent to the threads it starts; its handles may move between them.
    send_sync::<multiproc::scope::Scope<'static, 'static>>();
    send::<multiproc::scope::ScopedThread<'static, u32>>();
    send_sync::<multiproc::scope::ScopedProcess<'static, u32>>();
    // IPC handles are shared between threads; the item type does not matter (only
    // its bytes are stored), so a queue of non-`Send` items is still `Send + Sync`.
    // Manager proxies are shared between threads and sent to processes; like a
    // queue's, their item types are only stored as bytes.
    send_sync::<multiproc::Manager>();
    send_sync::<multiproc::manager::Dict<String, std::rc::Rc<u32>>>();
    send_sync::<multiproc::manager::List<u32>>();
    send_sync::<multiproc::manager::Queue<u32>>();
    send_sync::<multiproc::manager::Namespace>();
    send_sync::<multiproc::manager::Value<u32>>();
    send_sync::<multiproc::manager::Lock>();
    send_sync::<multiproc::manager::Condition>();
    send_sync::<multiproc::manager::Barrier>();
    send_sync::<multiproc::manager::Builder>();
    send::<multiproc::manager::LockGuard<'static>>();
    send_sync::<multiproc::ipc::Connection>();
    send_sync::<multiproc::Queue<u32>>();
    send_sync::<multiproc::Queue<std::rc::Rc<u32>>>();
    send_sync::<multiproc::JoinableQueue<String>>();
    send_sync::<multiproc::ipc::SendError<u32>>();
    send_sync::<multiproc::ipc::RecvError>();
}
