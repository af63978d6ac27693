#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

mod backoff;
pub mod codec;
mod error;
mod exit;
pub mod fault;
mod identity;
// The fuzz targets' way in (`fuzz/`): not an API, not documented.
#[cfg(all(feature = "fuzzing", not(loom)))]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;
pub mod ipc;
#[cfg(not(loom))]
pub mod manager;
mod panic;
pub mod pool;
pub mod process;
// The README's "Coming from Python" table, row by row, as a doctest.
#[cfg(doctest)]
mod python_table;
pub mod scope;
pub mod shm;
pub mod sync;
mod sys;
#[cfg(feature = "tokio")]
mod tokio_io;
// Reaches internals for the hostile-peer tests; not an API (see the module docs).
#[doc(hidden)]
pub mod test_support;
pub mod thread;

pub use crate::error::{Error, ErrorKind, Location, RemotePanic, Result};
#[cfg(not(loom))]
pub use crate::ipc::{JoinableQueue, Pipe, Queue};
#[cfg(not(loom))]
pub use crate::manager::Manager;
pub use crate::pool::Pool;
pub use crate::process::{ExitStatus, Process, Signal, StartMethod};
pub use crate::scope::scope;
pub use crate::shm::{Array, SharedMemory, Value};
pub use crate::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
pub use crate::thread::Thread;

// Handles cross threads; a regression here is a breaking change.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Process<()>>();
    send_sync::<Thread<()>>();
    send_sync::<Error>();
    send_sync::<SharedMemory>();
    send_sync::<Lock>();
    #[cfg(not(loom))]
    send_sync::<ipc::Connection>();
    #[cfg(not(loom))]
    send_sync::<Queue<String>>();
    send_sync::<Pool>();
    send_sync::<pool::ThreadPool>();
    #[cfg(not(loom))]
    send_sync::<Manager>();
    #[cfg(not(loom))]
    send_sync::<manager::Dict<String, u64>>();
    #[cfg(not(loom))]
    send_sync::<manager::Lock>();
    send_sync::<RLock>();
    send_sync::<Semaphore>();
    send_sync::<BoundedSemaphore>();
    send_sync::<Event>();
    send_sync::<Condition>();
    send_sync::<Barrier>();
    send_sync::<Value<u64>>();
    send_sync::<Array<u8>>();
};
