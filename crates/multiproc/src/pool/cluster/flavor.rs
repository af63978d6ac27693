//! How the cluster backend plugs into [`Pool`](crate::pool::Pool): its
//! [`Flavor`](crate::pool::flavor::Flavor).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::{ClusterPool, ClusterTask};
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::codec;
use crate::pool::builder::Backend;
use crate::pool::flavor::Flavor;
use crate::pool::process::chunk::ChunkOut;
use crate::pool::slot::{Completion, Slot};

impl Flavor for ClusterPool {
    type Unit = ClusterTask;

    fn kind(&self) -> Backend {
        Backend::Cluster
    }

    /// A registered task and its encoded chunk; a function that is not registered, or
    /// items that own file descriptors, are refused before anything is sent.
    fn unit<F, A, R>(
        &self,
        _f: F,
        items: Vec<A>,
        slot: &Arc<Slot<ChunkOut<R>>>,
        retries: u32,
    ) -> Result<ClusterTask>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let (key, name) = super::lookup::<F, A, R>()?;
        let e = codec::encode(&items)?;
        if !e.fds.is_empty() {
            return Err(Error::new(ErrorKind::Encode)
                .with_message("values that own file descriptors cannot cross machines"));
        }
        Ok(ClusterTask {
            key,
            name,
            items: items.len() as u32,
            payload: Arc::new(e.bytes),
            sink: Arc::clone(slot) as Arc<dyn Completion>,
            retries,
        })
    }

    fn unit_bytes(unit: &ClusterTask) -> usize {
        unit.payload.len()
    }

    fn submit_all(&self, units: Vec<ClusterTask>) {
        ClusterPool::submit_all(self, units);
    }

    /// The slots of the live hosts (at least 1).
    fn workers(&self, _configured: usize) -> usize {
        self.slots()
    }

    fn close(&self) {
        ClusterPool::close(self);
    }

    fn join(&self) {
        ClusterPool::join(self);
    }

    fn terminate(&self) {
        ClusterPool::terminate(self);
    }
}
