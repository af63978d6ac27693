//! [`Options`]: where the cluster is, its name, its key and its timeouts; shared by
//! clients ([`Builder::cluster`](crate::pool::Builder::cluster)) and worker hosts
//! ([`Worker`](super::Worker)).

use std::fmt;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// The environment variable the shared HMAC key is read from by default.
pub const KEY_ENV: &str = "MULTIPROC_CLUSTER_KEY";
/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// Settings common to a cluster's clients and worker hosts.
///
/// # Examples
///
/// ```no_run
/// use multiproc::pool::{cluster, Pool};
/// use std::time::Duration;
///
/// let opts = cluster::Options::new("redis://mp:PASSWORD@10.0.0.5:6379/")
///     .name("render")
///     .auth_key(b"a shared secret of 16+ bytes".to_vec())
///     .broker_timeout(Duration::from_secs(10));
/// let pool = Pool::builder().cluster(opts).build()?;
/// # drop(pool);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) heartbeat: Duration,
    pub(crate) min_idle: Duration,
    pub(crate) max_deliveries: u8,
    pub(crate) broker_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) lease: Duration,
    pub(crate) window: Option<usize>,
    pub(crate) blob_threshold: usize,
    pub(crate) max_payload: usize,
    pub(crate) blob_ttl: Duration,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) same_build: bool,
    #[cfg(feature = "cluster-tls")]
    pub(crate) tls_root_cert: Option<Vec<u8>>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("url", &redact(&self.url))
            .field("name", &self.name)
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .field("heartbeat", &self.heartbeat)
            .field("min_idle", &self.min_idle)
            .field("max_deliveries", &self.max_deliveries)
            .field("broker_timeout", &self.broker_timeout)
            .field("lease", &self.lease)
            .field("window", &self.window)
            .field("task_timeout", &self.task_timeout)
            .field("same_build", &self.same_build)
            .finish_non_exhaustive()
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl Options {
    /// Options for the Redis at `url` (`redis://[user:password@]host:port/[db]`) with
    /// the defaults: cluster name `multiproc`, the key from [`KEY_ENV`], heartbeat
    /// 5 s, `min_idle` 30 s, 3 deliveries, `broker_timeout` 30 s, connect timeout 5 s,
    /// client lease 60 s, payloads over 256 KiB in side keys, at most 64 MiB.
    pub fn new(url: impl Into<String>) -> Options {
        Options {
            url: url.into(),
            name: "multiproc".into(),
            key: None,
            heartbeat: Duration::from_secs(5),
            min_idle: Duration::from_secs(30),
            max_deliveries: 3,
            broker_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            window: None,
            blob_threshold: 256 << 10,
            max_payload: 64 << 20,
            blob_ttl: Duration::from_secs(3600),
            task_timeout: None,
            same_build: false,
            #[cfg(feature = "cluster-tls")]
            tls_root_cert: None,
        }
    }

    /// The cluster's name: every key is prefixed `{name}:`, and clients and hosts of
    /// one cluster use the same name (default `multiproc`).
    pub fn name(mut self, name: impl Into<String>) -> Options {
        self.name = name.into();
        self
    }

    /// The shared key that signs every task and result (HMAC-SHA256), at least
    /// [`MIN_KEY_LEN`] bytes. Default: the value of [`KEY_ENV`].
    pub fn auth_key(mut self, key: impl Into<Vec<u8>>) -> Options {
        self.key = Some(key.into());
        self
    }

    /// How often a host proves it is alive and keeps its running tasks (default 5 s).
    pub fn heartbeat(mut self, every: Duration) -> Options {
        self.heartbeat = every;
        self
    }

    /// How long a task may go without its host's heartbeat before another host takes
    /// it over (default 30 s). Keep it several heartbeats long.
    pub fn min_idle(mut self, idle: Duration) -> Options {
        self.min_idle = idle;
        self
    }

    /// How many hosts may disappear while running one task before it fails with
    /// [`ErrorKind::WorkerDied`] (default 3).
    pub fn max_deliveries(mut self, n: u8) -> Options {
        self.max_deliveries = n;
        self
    }

    /// How long Redis may be unreachable before the pool fails its tasks with
    /// [`ErrorKind::BrokerUnavailable`] (default 30 s).
    pub fn broker_timeout(mut self, timeout: Duration) -> Options {
        self.broker_timeout = timeout;
        self
    }

    /// The timeout of a connection attempt, and of each command (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self.command_timeout = timeout;
        self
    }

    /// How long a client's tasks and results outlive it in Redis if it dies without
    /// cleaning up (default 60 s): hosts drop the tasks of a client whose lease has
    /// expired.
    pub fn lease(mut self, lease: Duration) -> Options {
        self.lease = lease;
        self
    }

    /// The most tasks one client has in Redis at once (default: 64, or twice what
    /// the live hosts take at once, 33 per slot, if more). Further tasks wait in the
    /// client, where they can still be cancelled.
    pub fn window(mut self, tasks: usize) -> Options {
        self.window = Some(tasks);
        self
    }

    /// Payloads (arguments or results of one task) at least this large go to a side
    /// key with an expiry instead of into the stream (default 256 KiB).
    pub fn blob_threshold(mut self, bytes: usize) -> Options {
        self.blob_threshold = bytes;
        self
    }

    /// The largest payload accepted: a larger one fails with
    /// [`ErrorKind::Encode`] before anything is written (default 64 MiB).
    pub fn max_payload(mut self, bytes: usize) -> Options {
        self.max_payload = bytes;
        self
    }

    /// How long a side key lives if nobody deletes it (default 1 h).
    pub fn blob_ttl(mut self, ttl: Duration) -> Options {
        self.blob_ttl = ttl;
        self
    }

    /// Fails a task that runs longer than `timeout` on its host with
    /// [`ErrorKind::Timeout`] naming the host: the limit travels with each task, and the
    /// host's local pool kills the worker running it, as
    /// [`Builder::task_timeout`](crate::pool::Builder::task_timeout) does locally (which
    /// sets this for a cluster pool). A host with a shorter limit of its own
    /// ([`Worker::task_timeout`](super::Worker::task_timeout)) applies that one.
    /// At most about 49 days.
    pub fn task_timeout(mut self, timeout: Duration) -> Options {
        self.task_timeout = Some(timeout);
        self
    }

    /// Runs this client's tasks only on hosts of the client's own build (its GNU
    /// build-id, or the SHA-256 of its executable without one), not merely on hosts
    /// that register the task with the same name and types (default `false`).
    ///
    /// A task key covers a function's name and its argument and result types, not its
    /// code: a host running another build of the program (an older deploy, say) with
    /// the same function runs that build's code. With `same_build(true)` the client
    /// refuses, before sending, a task that no live host of its build can run
    /// ([`ErrorKind::BinaryMismatch`], naming the hosts and their builds), and a host of
    /// another build that reads the task anyway (it came up after the client looked)
    /// answers [`ErrorKind::BinaryMismatch`] naming both builds and runs nothing.
    /// Every host of the cluster must then run the client's build: tasks read by a
    /// host of another build fail, they are not passed on.
    pub fn same_build(mut self, yes: bool) -> Options {
        self.same_build = yes;
        self
    }

    /// Trusts this CA (PEM) for a `rediss://` URL instead of the system's roots
    /// (feature `cluster-tls`).
    #[cfg(feature = "cluster-tls")]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Options {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Checks the settings and resolves the key; the validated form.
    pub(crate) fn resolve(&self) -> Result<Resolved> {
        let key = match &self.key {
            Some(k) => k.clone(),
            None => std::env::var_os(KEY_ENV)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .ok_or_else(|| {
                    Error::new(ErrorKind::InvalidInput).with_message(format!(
                        "a cluster needs a shared key: set {KEY_ENV} or call auth_key \
                         (at least {MIN_KEY_LEN} bytes)"
                    ))
                })?,
        };
        if key.len() < MIN_KEY_LEN {
            return Err(Error::new(ErrorKind::InvalidInput).with_message(format!(
                "the cluster key ({KEY_ENV} or auth_key) is {} bytes; it must be at least \
                 {MIN_KEY_LEN}",
                key.len()
            )));
        }
        let bad = |what: &str| {
            Err(Error::new(ErrorKind::InvalidInput).with_message(format!("the cluster's {what}")))
        };
        if self.name.is_empty() || self.name.contains(['{', '}']) {
            return bad("name must be non-empty and contain no braces");
        }
        if self.max_deliveries == 0 {
            return bad("max_deliveries must be at least 1");
        }
        for (what, d) in [
            ("heartbeat", self.heartbeat),
            ("min_idle", self.min_idle),
            ("broker_timeout", self.broker_timeout),
            ("connect timeout", self.connect_timeout),
            ("lease", self.lease),
        ] {
            if d < Duration::from_millis(10) {
                return bad(&format!("{what} must be at least 10 ms"));
            }
        }
        if self.min_idle <= self.heartbeat {
            return bad("min_idle must be longer than the heartbeat");
        }
        if self
            .task_timeout
            .is_some_and(|t| t.is_zero() || t.as_millis() > u128::from(u32::MAX))
        {
            return bad("task_timeout must be between 1 ms and u32::MAX ms");
        }
        if self.window == Some(0) {
            return bad("window must be at least 1");
        }
        Ok(Resolved {
            opts: self.clone(),
            key,
            prefix: format!("{{{}}}", self.name),
        })
    }
}

/// Validated options with the key and the key prefix.
#[derive(Clone)]
pub(crate) struct Resolved {
    pub(crate) opts: Options,
    pub(crate) key: Vec<u8>,
    /// `{name}`: the hash tag every key starts with.
    pub(crate) prefix: String,
}

impl Resolved {
    pub(crate) fn tasks(&self) -> String {
        format!("{}:tasks", self.prefix)
    }
    pub(crate) fn results(&self, client: &str) -> String {
        format!("{}:res:{client}", self.prefix)
    }
    pub(crate) fn client(&self, client: &str) -> String {
        format!("{}:client:{client}", self.prefix)
    }
    pub(crate) fn blob(&self, client: &str, task: u64, attempt: u8, side: char) -> String {
        format!("{}:blob:{client}:{task}:{attempt}:{side}", self.prefix)
    }
    pub(crate) fn host(&self, host: &str) -> String {
        format!("{}:host:{host}", self.prefix)
    }
    pub(crate) fn hosts(&self) -> String {
        format!("{}:hosts", self.prefix)
    }
    pub(crate) fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }
    pub(crate) fn lock(&self, what: &str) -> String {
        format!("{}:lock:{what}", self.prefix)
    }
}

/// The consumer group of the task stream.
pub(crate) const GROUP: &str = "workers";

/// 16 random bytes (ids of clients and hosts).
pub(crate) fn random_id() -> [u8; 16] {
    use std::io::Read;
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // Unique enough without the kernel's randomness: time, pid and a counter.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        b[..8].copy_from_slice(&t.to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        b[12..].copy_from_slice(
            &(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u32).to_le_bytes(),
        );
    }
    b
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        let o = Options::new("redis://127.0.0.1:1/");
        assert_eq!(
            o.clone()
                .auth_key(b"short".to_vec())
                .resolve()
                .err()
                .unwrap()
                .kind(),
            ErrorKind::InvalidInput
        );
        let r = o.clone().auth_key(vec![1; 16]).resolve().unwrap();
        assert_eq!(r.tasks(), "{multiproc}:tasks");
        assert!(o
            .clone()
            .auth_key(vec![1; 16])
            .name("a}b")
            .resolve()
            .is_err());
        assert!(o
            .auth_key(vec![1; 16])
            .heartbeat(Duration::from_secs(40))
            .resolve()
            .is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("redis://u:secret@h:1/"), "redis://u:***@h:1/");
        assert_eq!(redact("redis://h:1/"), "redis://h:1/");
    }
}
