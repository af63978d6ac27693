//! The process backend: persistent worker processes, driven by whichever thread is
//! at hand.
//!
//! # Design
//!
//! The workers and their sockets live in one [`Manager`] behind a mutex. Any thread
//! may take it and *step* it (read the answers that arrived, reap dead workers,
//! enforce timeouts, send queued tasks, all without blocking):
//!
//! - a thread waiting for a result steps it while it spins, so a result travels
//!   worker → waiting thread with no hand-off and no wake-up;
//! - a submitting thread steps it when a worker is idle, so a task travels
//!   submitter → worker directly;
//! - the manager thread steps it whenever its `poll` on the sockets, the workers'
//!   pidfds and an `eventfd` says something happened, so tasks progress, callbacks
//!   run and timeouts fire when nobody waits.
//!
//! Tasks are batched: everything queued for a worker goes out in one `sendmsg`, and
//! each worker keeps a window of tasks in flight, sized so that about
//! [`QUEUED_WORK`] of work waits there.
//!
//! A worker answers its tasks in order, one record each, so when it dies the oldest
//! unanswered task is the one it was running: that task gets the error that names
//! how the worker died (or `Timeout`, if the manager killed it for overrunning), and
//! the tasks queued behind it go back to the front of the queue for other workers.
//!
//! Completions (and user callbacks) run after the manager's mutex is released.
//!
//! # Files
//!
//! | file | what |
//! |---|---|
//! | `shared.rs` | configuration, tuning constants, task types, the state every thread shares |
//! | `handle.rs` | [`ProcessPool`]: start, submit, close, join, terminate |
//! | `manager.rs` | the workers as the parent sees them: windows, deaths, timeouts, replacements |
//! | `drive.rs` | who steps the manager: the manager thread, waiters and submitters |
//! | `handshake.rs` | the sleeping/drivers flags that decide who wakes the manager thread (loom-modelled) |
//! | `wire.rs` | the records on a worker's socket |
//! | `worker.rs` | the loop a worker process runs |
//! | `chunk.rs` | the chunk protocol: a chunk of arguments in, values and panics out |
//! | `flat.rs` | a chunk of plain numbers encoded and decoded without postcard's per-item calls |
//!
//! # The seam for other transports
//!
//! The manager only sees [`RemoteTask`]: an [`EntryRef`], encoded bytes, and a
//! [`Completion`]. A backend whose workers run elsewhere (Redis Streams, say) takes the
//! same tasks; it needs a named `EntryRef` variant instead of an address offset.

pub(crate) mod chunk;
mod drive;
mod flat;
mod handle;
mod handshake;
mod manager;
mod shared;
pub(crate) mod wire;
mod worker;

pub(crate) use handle::ProcessPool;
pub(crate) use shared::Config;
#[cfg(feature = "cluster")]
pub(crate) use shared::RemoteTask;
pub(crate) use worker::{worker_socket, Init};
