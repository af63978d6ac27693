//! `ProcessPool`: the handle that starts the pool, submits tasks, closes and joins it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::chunk::{chunk_entry_ref, ChunkOut};
use super::drive::manager_thread;
use super::flat;
use super::shared::{lock, Config, RemoteTask, Shared, Task};
use crate::error::{Error, ErrorKind, Result};
use crate::ipc::codec;
use crate::pool::builder::Backend;
use crate::pool::flavor::Flavor;
use crate::pool::slot::{Completion, Drive, Slot};

/// The parent side of a process pool.
pub(crate) struct ProcessPool {
    shared: Arc<Shared>,
    manager: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool")
            .field("pids", &*lock(&self.shared.pids))
            .finish()
    }
}

impl ProcessPool {
    /// Starts `cfg.workers` workers, waits until each is ready, starts the manager.
    pub(crate) fn start(cfg: Config) -> Result<ProcessPool> {
        let shared = Shared::start(cfg)?;
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("multiproc-pool".into())
            .spawn(move || manager_thread(&s))
            .map_err(|e| Error::new(ErrorKind::Start).with_source(e))?;
        Ok(ProcessPool {
            shared,
            manager: Mutex::new(Some(handle)),
        })
    }

    /// What task slots use to make progress while their owner waits.
    pub(crate) fn driver(&self) -> Arc<dyn Drive> {
        self.shared.clone()
    }

    /// Queues many tasks with one lock; sends them at once if a worker is idle.
    pub(crate) fn submit_all(&self, ts: Vec<RemoteTask>) {
        let n = ts.len();
        {
            let mut q = lock(&self.shared.queue);
            if q.closed {
                drop(q);
                for t in ts {
                    t.sink.fail(closed_error());
                }
                return;
            }
            for t in ts {
                let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
                q.tasks.push_back(Task { id, t });
            }
        }
        self.shared.hs.queued(n);
        // With every worker busy, the next answer makes the manager send these.
        if self.shared.hs.idle.load(Ordering::SeqCst) > 0 && !self.shared.drive() {
            // Another thread is stepping; make sure someone looks at the queue again.
            if self.shared.hs.asleep() {
                self.shared.wake_manager();
            }
        }
    }

    /// The pids of the current workers.
    pub(crate) fn pids(&self) -> Vec<i32> {
        lock(&self.shared.pids).clone()
    }

    /// No more tasks; queued ones still run.
    pub(crate) fn close(&self) {
        lock(&self.shared.queue).closed = true;
        self.shared.wake_manager();
    }

    /// Kills the workers now; unfinished tasks fail with `PoolClosed`.
    pub(crate) fn terminate(&self) {
        {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            q.terminate = true;
        }
        self.shared.wake_manager();
        self.join();
    }

    /// Closes, then waits until every task has finished and every worker has exited.
    pub(crate) fn join(&self) {
        self.close();
        if let Some(h) = lock(&self.manager).take() {
            let _ = h.join();
        } else {
            // Another thread is joining: wait for the manager to finish.
            let mut done = lock(&self.shared.finished);
            while !*done {
                done = self
                    .shared
                    .finished_cv
                    .wait(done)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

impl ProcessPool {
    /// [`Flavor::unit`] for a chunk given by reference: it is only encoded (a slice
    /// encodes as the `Vec` the worker decodes).
    pub(crate) fn unit_of_slice<F, A, R>(
        &self,
        items: &[A],
        slot: &Arc<Slot<ChunkOut<R>>>,
        retries: u32,
    ) -> Result<RemoteTask>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let mut bytes = Vec::new();
        let fds = if flat::encode(items, &mut bytes) {
            Vec::new()
        } else {
            codec::encode_into(items, &mut bytes)?
        };
        Ok(RemoteTask {
            entry: chunk_entry_ref::<F, A, R>(),
            payload: Arc::new(bytes),
            fds,
            sink: Arc::clone(slot) as Arc<dyn Completion>,
            retries,
            timeout: None,
        })
    }
}

impl Flavor for ProcessPool {
    type Unit = RemoteTask;

    fn kind(&self) -> Backend {
        Backend::Processes
    }

    fn unit<F, A, R>(
        &self,
        _f: F,
        items: Vec<A>,
        slot: &Arc<Slot<ChunkOut<R>>>,
        retries: u32,
    ) -> Result<RemoteTask>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.unit_of_slice::<F, A, R>(&items, slot, retries)
    }

    fn unit_bytes(unit: &RemoteTask) -> usize {
        unit.payload.len()
    }

    fn submit_all(&self, units: Vec<RemoteTask>) {
        ProcessPool::submit_all(self, units);
    }

    fn driver(&self) -> Option<Arc<dyn Drive>> {
        Some(ProcessPool::driver(self))
    }

    fn pids(&self) -> Vec<i32> {
        ProcessPool::pids(self)
    }

    fn close(&self) {
        ProcessPool::close(self);
    }

    fn join(&self) {
        ProcessPool::join(self);
    }

    fn terminate(&self) {
        ProcessPool::terminate(self);
    }
}

impl Drop for ProcessPool {
    /// Closes the pool; the manager finishes the queued tasks in the background and
    /// then stops the workers.
    fn drop(&mut self) {
        self.close();
    }
}

fn closed_error() -> Error {
    Error::new(ErrorKind::PoolClosed).with_message("the task was submitted after close()")
}
