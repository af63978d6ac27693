//! The seam between [`Pool`](super::Pool) and its backends.
//!
//! `Pool` is one public type over private *flavors* (crossbeam's channel idiom): the
//! thread pool (`pool/thread.rs`), the process pool (`pool/process/`) and, with the
//! `cluster` feature, the Redis-backed cluster (`pool/cluster/`). Everything `Pool`
//! does that is not the same for every backend goes through [`Flavor`]: making the
//! unit of work for a chunk of items, submitting units, and the pool's lifecycle.
//! `Pool` itself keeps what is common: chunking, slots and handles, callbacks,
//! progress, `map`/`imap` collection.
//!
//! # Adding a backend
//!
//! Implement [`Flavor`] in the backend's own files, add one variant to [`Inner`]
//! and one arm to [`dispatch!`](crate::pool::flavor::dispatch), and a way to build it
//! in `Builder::build`. The other backends are not touched: each names its own
//! [`Flavor::Unit`], so no backend sees another's units.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::builder::Backend;
use super::process::chunk::ChunkOut;
use super::slot::{Drive, Slot};
use crate::error::Result;

/// What a backend provides to [`Pool`](super::Pool).
///
/// Every method but [`unit`](Self::unit) and [`submit_all`](Self::submit_all) is
/// lifecycle, with the semantics of the `Pool` method of the same name.
pub(crate) trait Flavor: Send + Sync {
    /// One unit of work, ready to submit: one call, or one chunk of a `map`.
    type Unit: Send;

    /// Which public [`Backend`] this is.
    fn kind(&self) -> Backend;

    /// Makes the unit that applies `f` to each of `items` and completes `slot` with the
    /// chunk's values and panics; a panic of one item is that item's result only.
    /// `retries` is how often the unit may be rerun after its worker died or timed
    /// out, where the backend can rerun.
    ///
    /// # Errors
    ///
    /// Why the unit cannot be made (the items do not encode, the function is not
    /// registered for a cluster): the caller fails `slot` with it.
    fn unit<F, A, R>(
        &self,
        f: F,
        items: Vec<A>,
        slot: &Arc<Slot<ChunkOut<R>>>,
        retries: u32,
    ) -> Result<Self::Unit>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static;

    /// The encoded bytes a unit carries (0 if it carries none): a `map` that encodes
    /// its chunks submits what is ready every 256 KiB instead of at the end.
    fn unit_bytes(_unit: &Self::Unit) -> usize {
        0
    }

    /// Queues units with one lock and one wake-up; a closed pool fails them through
    /// their slots. Never blocks on the work.
    fn submit_all(&self, units: Vec<Self::Unit>);

    /// What a thread waiting on one of this backend's slots can step to make progress
    /// itself (the process backend's manager), if anything.
    fn driver(&self) -> Option<Arc<dyn Drive>> {
        None
    }

    /// The number of workers for chunking, given the number the pool was built with.
    fn workers(&self, configured: usize) -> usize {
        configured
    }

    /// The process ids of the current worker processes (none for threads).
    fn pids(&self) -> Vec<i32> {
        Vec::new()
    }

    /// No more units; queued ones still run.
    fn close(&self);

    /// Closes, then waits until every unit has finished and the workers have exited.
    fn join(&self);

    /// Stops now: queued (and, where workers can be killed, running) units fail.
    fn terminate(&self);
}

/// The backend of a [`Pool`](super::Pool): one variant per [`Flavor`].
pub(crate) enum Inner {
    Threads(super::thread::ThreadPool),
    Processes(super::process::ProcessPool),
    #[cfg(feature = "cluster")]
    Cluster(super::cluster::client::ClusterPool),
}

/// Evaluates `$body` with `$b` bound to the [`Flavor`] inside an [`Inner`]; the body is
/// compiled once per flavor, so it may call generic methods.
macro_rules! dispatch {
    ($inner:expr, $b:ident => $body:expr) => {
        match $inner {
            $crate::pool::flavor::Inner::Threads($b) => $body,
            $crate::pool::flavor::Inner::Processes($b) => $body,
            #[cfg(feature = "cluster")]
            $crate::pool::flavor::Inner::Cluster($b) => $body,
        }
    };
}
pub(crate) use dispatch;
