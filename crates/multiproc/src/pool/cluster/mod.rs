//! The same [`Pool`](crate::pool::Pool) on many machines, through Redis Streams
//! (feature `cluster`).
//!
//! ```no_run
//! use multiproc::pool::Pool;
//!
//! #[multiproc::remote] // registers it for the cluster; the function is unchanged
//! fn render(tile: u32) -> u64 {
//!     u64::from(tile) * 2
//! }
//!
//! // MULTIPROC_CLUSTER_KEY holds the shared key (16+ bytes) on clients and hosts.
//! let pool = Pool::builder().redis("redis://mp:PASSWORD@10.0.0.5:6379/").build()?;
//! let out = pool.map(render, 0..1000)?; // every Pool call works as locally
//! # let _ = out;
//! # Ok::<(), multiproc::Error>(())
//! ```
//!
//! # Worker hosts
//!
//! A host is the same program, started in worker mode. One line, no code:
//!
//! ```text
//! MULTIPROC_WORKER=redis://mp:PASSWORD@10.0.0.5:6379/ MULTIPROC_CLUSTER_KEY=… ./myapp
//! ```
//!
//! Before `main` runs, multiproc sees [`WORKER_ENV`] and serves the cluster instead
//! (named by [`WORKER_NAME_ENV`], with [`WORKER_SLOTS_ENV`] slots, default
//! `cpu_count`); SIGTERM drains it and it exits 0. From code: [`serve`]`(url)`, or
//! [`Worker`] for every setting, or [`serve_from_env`] at the top of `main`.
//! `multiproc worker --redis URL -- ./myapp ARGS…` sets the variables and runs the
//! program (`multiproc worker --list -- ./myapp` prints its task table). Each host runs tasks in its own local process pool, so a task that
//! crashes costs one local worker, as locally.
//!
//! # Functions
//!
//! Only named functions registered for the cluster run on it. Register a function
//! with the attribute [`#[multiproc::remote]`](crate::remote) on it; for a function
//! you cannot annotate (another crate's, or an instantiation `f::<u32>` of a generic
//! one), write [`multiproc::task!(f)`](crate::task) next to where you use it. Both
//! register the same thing (the attribute expands to `task!`). The attribute refuses
//! at compile time what cannot be a task: a generic, `async` or `unsafe` function, a
//! method, and a function that does not take exactly one argument (take a tuple).
//!
//! ```
//! #[multiproc::remote]
//! fn area((w, h): (u32, u32)) -> u64 {
//!     u64::from(w) * u64::from(h)
//! }
//!
//! fn clamp(x: i64) -> i64 {
//!     x.clamp(0, 255)
//! }
//! multiproc::task!(clamp, u64::count_ones); // a fn of your crate, or of another
//!
//! let names: Vec<&str> = multiproc::pool::cluster::registered()
//!     .iter()
//!     .map(|t| t.name())
//!     .collect();
//! assert!(names.iter().any(|n| n.ends_with("::area")), "{names:?}");
//! assert!(names.iter().any(|n| n.ends_with("::clamp")), "{names:?}");
//! # let _ = (area((1, 1)), clamp(1));
//! ```
//!
//! A closure is refused with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
//! and an unregistered function with
//! [`ErrorKind::NotRegistered`](crate::ErrorKind::NotRegistered), before anything is
//! sent. A task is found on a host by a key over its name and its argument and result
//! types; a host whose build has the name with other types answers
//! [`ErrorKind::BinaryMismatch`](crate::ErrorKind::BinaryMismatch) and runs nothing.
//! The key does not cover the function's code: a host of another build of the
//! program with the same function runs that build's code, unless the client sets
//! [`Options::same_build`], which refuses hosts of any build but the client's (by GNU
//! build-id), with `BinaryMismatch` too.
//! Values that own file descriptors cannot cross machines
//! ([`ErrorKind::Encode`](crate::ErrorKind::Encode)).
//!
//! # What is guaranteed
//!
//! At-least-once execution, exactly one result per task:
//!
//! | event | what happens | the caller sees |
//! |---|---|---|
//! | a task panics, times out, or kills its local worker | as locally, on the host | `Panicked` / `Timeout` / `WorkerDied` naming the host, once (not redelivered); [`retries`](crate::pool::Builder::retries) reruns the last two |
//! | a host is killed, powered off or partitioned | its tasks stay pending; its heartbeat stops; after `min_idle` another host reclaims and runs them | nothing but the delay |
//! | a task makes every host running it disappear | after `max_deliveries` (3) deliveries it is given up on, with a `{P}:dead` record | `WorkerDied`: "delivered 3 times; every host running it disappeared" |
//! | a partitioned host comes back and answers late | the result is dropped as a duplicate | correct values |
//! | Redis unreachable longer than `broker_timeout` | every queued and outstanding task fails; new ones fail at once until it is back | `BrokerUnavailable` |
//! | Redis restarted empty within `broker_timeout` | the client writes its outstanding tasks again | correct values |
//! | the client dies | once its lease expires, hosts drop its queued tasks and stop its running ones; its keys expire | — |
//! | [`terminate`](crate::pool::Pool::terminate) | unfinished tasks fail at once; the client's lease key is deleted: hosts drop its queued tasks, and at their next heartbeat kill the local workers running its tasks (counted in [`HostStatus::cancelled`]) | `PoolClosed` |
//! | a task runs past [`task_timeout`](crate::pool::Builder::task_timeout) | the limit travels with the task; the host's local pool kills the worker running it | `Timeout` naming the host, once; `retries` reruns it |
//!
//! Side effects must therefore be idempotent, as with Dask or Celery's `acks_late`.
//!
//! # Security
//!
//! Every task and result entry is signed with HMAC-SHA256 under a shared key
//! ([`KEY_ENV`], or [`Options::auth_key`], at least 16 bytes, mandatory); an entry whose
//! MAC does not verify is never run (a host counts and drops it) and a forged result
//! is ignored. Only registered functions can run: whoever can write to Redis without
//! the key can delay work but run nothing. Use Redis AUTH with an ACL user limited to
//! the cluster's keys, for example for the cluster `render`:
//!
//! ```text
//! ACL SETUSER mpworker on >PASSWORD resetkeys ~{render}:* resetchannels -@all +@stream
//!   +xgroup +set +get +getdel +del +exists +expire +pexpire +eval +evalsha +multi +exec
//!   +discard +ping +info +hello +client|setname +client|id +sadd +srem +smembers +mget
//! ```
//!
//! The server must be Redis 6.2 or newer (or a compatible server such as Valkey);
//! a warning is printed unless its `maxmemory-policy` is `noeviction`.
//!
//! # Layout in Redis
//!
//! All keys of the cluster `P` start with `{P}:` (one hash slot): the task stream
//! `tasks` with the consumer group `workers` (trimmed with `XTRIM MINID` below what
//! is delivered and acknowledged, never by length); one result stream `res:<client>`
//! per client, which expires with the client's lease; `client:<client>` (the lease);
//! `blob:…` side keys for payloads over 256 KiB, with an expiry; `host:<id>` records
//! and the `hosts` set; `dead` (tasks given up on, capped at about 10,000 entries);
//! `lock:reap` and `lock:trim`.

pub(crate) mod client;
mod config;
mod conn;
mod flavor;
mod host;
mod registry;
mod wire;

pub use client::{ClusterStats, HostStatus};
pub use config::{Options, KEY_ENV, MIN_KEY_LEN};
pub use host::{
    serve, serve_from_env, Worker, LIST_ENV, WORKER_ENV, WORKER_METHOD_ENV, WORKER_NAME_ENV,
    WORKER_SLOTS_ENV, WORKER_TIMING_ENV, WORKER_TLS_CA_ENV,
};
#[doc(hidden)]
pub use registry::Task;
pub use registry::{registered, TaskDef};

pub(crate) use host::keep_hook_linked;
pub(crate) use registry::{lookup, name_spread};

/// What [`task!`](crate::task) expands to refers to these.
#[doc(hidden)]
pub mod __private {
    pub use super::registry::TASKS;
    pub use linkme;
}
