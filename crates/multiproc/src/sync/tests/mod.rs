//! White-box tests of the synchronization protocols (threads of one process) and,
//! under `--cfg loom`, loom models of them.

#[cfg(not(loom))]
mod lock;
#[cfg(loom)]
mod loom_lock;
#[cfg(loom)]
mod loom_primitives;
#[cfg(not(loom))]
mod primitives;
