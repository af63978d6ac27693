//! Test support for the hostile-peer suite (`tests/hostile_peer.rs`), which plays a
//! misbehaving peer from a child process: where a child's result socket and a pool
//! worker's socket are, and where a pipe's or queue's ring lies in its shared memory
//! (the layout is in `ipc/ring.rs`); and [`mark`], a task two different programs
//! can register under one name (the cluster's build check, `tests/cluster_pool.rs`).
//!
//! Not an API: hidden from the docs, not covered by semver, and it may change with
//! the internals it exposes. Nothing in it is needed to use the crate.

use std::os::fd::RawFd;

#[cfg(not(loom))]
use crate::ipc::{Connection, Queue};
#[cfg(not(loom))]
use crate::shm::SharedMemory;

/// In a child process started by multiproc: the socket its result goes back on.
pub fn result_socket() -> Option<RawFd> {
    crate::process::result_socket()
}

/// In a process pool's worker: the socket its records go back on.
pub fn worker_socket() -> Option<RawFd> {
    crate::pool::process::worker_socket()
}

/// Writes `ran` to the file `path` and returns the length of `path`: a task whose
/// name (`multiproc::test_support::mark`) and types are the same in every program
/// that registers it, so that two builds have the same task key. The cluster tests
/// register it in the test binary, and the `cluster_worker` example in another build.
pub fn mark(path: String) -> u64 {
    // A failed write shows as the file's absence, which is what the tests check.
    let _ = std::fs::write(&path, b"ran");
    path.len() as u64
}

/// Offsets in a ring, from its base (see the layout table in `ipc/ring.rs`).
pub mod ring {
    /// `tail: u64`, bytes ever published (producer).
    pub const TAIL: usize = 0;
    /// `put: u64`, messages ever started (producer).
    pub const PUT: usize = 8;
    /// `head: u64`, bytes ever consumed (consumer).
    pub const HEAD: usize = 128;
    /// `got: u64`, sequence number after the last message taken (consumer).
    pub const GOT: usize = 136;
    /// `cap: u64`, the data area's size.
    pub const CAP: usize = 272;
    /// The data area.
    pub const DATA: usize = 384;
    /// Record kinds (low 4 bits of a record's tag).
    pub const SINGLE: u32 = 2;
    /// The first fragment: payload starts with the total length (`u64`) and the
    /// producer's pid (`u32`), 16 bytes.
    pub const FIRST: u32 = 3;
    /// A middle fragment.
    pub const MORE: u32 = 4;
    /// The last fragment.
    pub const LAST: u32 = 5;
}

/// The shared memory of a pipe end and the base offset of the ring it receives
/// from (`None` for a send-only end).
#[cfg(not(loom))]
pub fn pipe_recv_ring(c: &Connection) -> Option<(SharedMemory, usize)> {
    c.recv_ring_base()
}

/// The shared memory of a pipe end and the base offset of the ring it sends on
/// (`None` for a receive-only end).
#[cfg(not(loom))]
pub fn pipe_send_ring(c: &Connection) -> Option<(SharedMemory, usize)> {
    c.send_ring_base()
}

/// The shared memory of a queue and the base offset of its ring.
#[cfg(not(loom))]
pub fn queue_ring<T>(q: &Queue<T>) -> (SharedMemory, usize) {
    q.ring_base()
}
