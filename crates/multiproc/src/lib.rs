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
/// Registers a function as a cluster task: `#[multiproc::remote]` on the `fn` (feature
/// `cluster`).
///
/// The function is unchanged: calling it still runs it here. The attribute adds what
/// [`task!`](crate::task) next to the function adds (it expands to `task!(f)`, the one
/// registration code path), so a [cluster pool](crate::pool::cluster) can run the
/// function on other machines, under the same name and key as `task!(f)` would. Use
/// `task!` for what you cannot annotate: a function of another crate, an instantiation
/// of a generic function (`task!(f::<u32>)`), or several at once.
///
/// Why `remote`: an attribute and the `task!` macro cannot both be named `task` at
/// the crate root (one macro namespace). Python users know the word from Ray's
/// `@ray.remote`, which marks a function that may run on another machine. Unlike
/// Ray, nothing changes at the call sites: `pool.map(f, items)` is the same call as
/// on a local pool.
///
/// `#[multiproc::remote(crate = mp)]` names multiproc when it is a dependency under
/// another name (`mp = { package = "multiproc", .. }`).
///
/// # What cannot be a task
///
/// Refused at compile time, with a message saying why. A task has one argument
/// type and one result type, both crossing machines as serde values, and is found on
/// a host by its name. So a generic function is refused (register each
/// instantiation with `task!(f::<T>)`; an `impl Trait` argument is generic too):
///
/// ```compile_fail
/// #[multiproc::remote]
/// fn first<T: Copy>(x: [T; 2]) -> T {
///     x[0]
/// }
/// # fn main() { let _ = first::<u8>; }
/// ```
///
/// An `async fn` (its result is a future, not a value):
///
/// ```compile_fail
/// #[multiproc::remote]
/// async fn fetch(x: u64) -> u64 {
///     x
/// }
/// # fn main() { let _ = fetch; }
/// ```
///
/// A method (a host has no `self` to call it on; take the value as the argument):
///
/// ```compile_fail
/// struct Tile(u32);
/// impl Tile {
///     #[multiproc::remote]
///     fn area(&self, scale: u32) -> u32 {
///         self.0 * scale
///     }
/// }
/// # fn main() { let _ = Tile(1).area(2); }
/// ```
///
/// More than one argument, or none (pass several values as one tuple, as below):
///
/// ```compile_fail
/// #[multiproc::remote]
/// fn add(a: u32, b: u32) -> u32 {
///     a + b
/// }
/// # fn main() { let _ = add; }
/// ```
///
/// An `unsafe fn` is refused too, and a closure cannot carry an attribute (a cluster
/// pool refuses closures at run time with
/// [`ErrorKind::InvalidInput`], before anything is sent). The attribute goes on a free
/// function, in a module or a block: inside an `impl` it cannot register (an item
/// there cannot name `Self::f`), so write `task!(Type::f)` after the `impl` for an
/// associated function.
///
/// # Examples
///
/// ```
/// use multiproc::pool::cluster::registered;
///
/// #[multiproc::remote]
/// fn add((a, b): (u32, u32)) -> u32 {
///     a + b
/// }
///
/// assert_eq!(add((2, 3)), 5); // still an ordinary function
/// let def = registered()
///     .into_iter()
///     .find(|t| t.name().ends_with("::add"))
///     .unwrap();
/// assert_eq!(def.signature(), "((u32, u32)) -> u32");
/// // With a cluster pool (`Pool::builder().redis(url).build()?`):
/// // `pool.map(add, [(1, 2), (3, 4)])?` runs it on the worker hosts.
/// ```
#[cfg(feature = "cluster")]
pub use multiproc_macros::remote;

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
