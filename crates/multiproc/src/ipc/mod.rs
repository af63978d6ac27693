//! Communication between processes (and threads): [`Pipe`]/[`Connection`] for
//! two-party messages, typed [`channel`]s ([`Sender`]/[`Receiver`], with
//! [`Select`]), [`Listener`]/[`Client`] for [`SocketConnection`]s between unrelated
//! processes (Unix sockets or TCP, with an authentication key),
//! [`Queue`]/[`JoinableQueue`]/[`SimpleQueue`] for many producers and consumers,
//! [`loan_channel`] for large payloads written and read in place in a shared pool,
//! [`wait`] over many connections and processes, and the serialization seam
//! ([`codec`]).
//!
//! Pipes and queues carry their messages through ring buffers in shared memory, so
//! a message costs two copies and no system call while the receiver is awake; a
//! waiting receiver spins briefly, then sleeps on a futex. See [`Pipe`] and
//! [`Queue`] for the guarantees when a peer dies.
//!
//! # Examples
//!
//! A typed channel to a worker process, a queue back from it, and [`wait`] for the
//! worker's exit:
//!
//! ```
//! use std::time::Duration;
//! use multiproc::ipc::{channel, wait, Queue, Receiver};
//! use multiproc::Process;
//!
//! /// Squares what it receives until the sender is gone, putting the results on `out`.
//! fn squarer((jobs, out): (Receiver<u64>, Queue<u64>)) {
//!     for n in &jobs {
//!         out.put(n * n).unwrap();
//!     }
//! }
//!
//! let (tx, rx) = channel::<u64>()?;
//! let results = Queue::new()?;
//! let worker = Process::start_with(squarer, (rx, results.clone()))?;
//! for n in 1..=3 {
//!     tx.send(n)?;
//! }
//! drop(tx); // end of stream: the worker's loop ends
//! let got: Vec<u64> = (0..3).map(|_| results.get_timeout(Duration::from_secs(30)).unwrap()).collect();
//! assert_eq!(got, [1, 4, 9]);
//! assert_eq!(wait(&[&worker], Some(Duration::from_secs(30)))?, [0]);
//! worker.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(not(loom))]
mod channel;
pub use crate::codec;
#[cfg(not(loom))]
mod connection;
mod error;
#[cfg(not(loom))]
mod fail;
pub(crate) mod frame;
#[cfg(not(loom))]
pub(crate) mod listener;
#[cfg(not(loom))]
mod loan;
#[cfg(not(loom))]
mod pipe;
#[cfg(not(loom))]
mod queue;
pub(crate) mod ring;
#[cfg(not(loom))]
mod shm_mem;
#[cfg(not(loom))]
pub(crate) mod side;
#[cfg(not(loom))]
mod simple_queue;
#[cfg(not(loom))]
pub(crate) mod socket_connection;
#[cfg(not(loom))]
mod typecheck;
#[cfg(not(loom))]
mod wait;

#[cfg(not(loom))]
pub use channel::{channel, channel_with, IntoIter, Iter, Receiver, Select, Sender, TryIter};
#[cfg(not(loom))]
pub use connection::Connection;
pub use error::{
    BatchSendError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
#[cfg(not(loom))]
pub use frame::DEFAULT_MAX_MESSAGE;
#[cfg(not(loom))]
pub use listener::{Address, Client, Listener, HANDSHAKE_TIMEOUT};
#[cfg(not(loom))]
pub use loan::{loan_channel, Loan, LoanReceiver, LoanSender, Sample, MAX_SLOTS, MAX_SLOT_SIZE};
#[cfg(not(loom))]
pub use pipe::{Pipe, PipeBuilder, DEFAULT_CAPACITY};
#[cfg(not(loom))]
pub use queue::{JoinableQueue, Queue, QueueBuilder, DEFAULT_QUEUE_CAPACITY};
#[cfg(not(loom))]
pub use simple_queue::SimpleQueue;
#[cfg(not(loom))]
pub use socket_connection::SocketConnection;
#[cfg(not(loom))]
pub use wait::{wait, Waitable};
