//! Memory shared between processes.
//!
//! [`SharedMemory`] is a block of bytes that several processes map at once. It is
//! created from an anonymous `memfd`, so there is no name in `/dev/shm` to leak: the
//! kernel frees the memory when the last process using it is gone, however they
//! ended. Hand it to a child as the argument of
//! [`Process::start_with`](crate::Process::start_with) (it travels as a file
//! descriptor, by every start method), or let an unrelated process
//! [`attach`](SharedMemory::attach) to it by [`name`](SharedMemory::name).
//!
//! [`Value<T>`] and [`Array<T>`] hold plain-old-data ([`Pod`]) in shared memory,
//! like Python's `multiprocessing.Value` and `Array`: optionally with a
//! [`Lock`](crate::Lock), and with atomic operations for integers.
//!
//! ```
//! use std::sync::atomic::Ordering;
//! use multiproc::{Process, SharedMemory};
//!
//! fn bump(shm: SharedMemory) {
//!     shm.atomic_u64(0).fetch_add(1, Ordering::SeqCst);
//! }
//!
//! let shm = SharedMemory::create(8)?;
//! let children = (0..2)
//!     .map(|_| Process::start_with(bump, shm.clone()))
//!     .collect::<Result<Vec<_>, _>>()?;
//! for c in children {
//!     c.join()?;
//! }
//! assert_eq!(shm.atomic_u64(0).load(Ordering::SeqCst), 2);
//! # Ok::<(), multiproc::Error>(())
//! ```

mod layout;
mod segment;
#[cfg(not(loom))]
mod shareable_list;
mod shared;
mod value;

pub use layout::Pod;
pub(crate) use layout::ShmLayout;
pub use segment::SharedMemory;
#[cfg(not(loom))]
pub use shareable_list::{Item, ShareableList};
pub(crate) use shared::Shared;
pub use value::{Array, Integer, Op, Value};
