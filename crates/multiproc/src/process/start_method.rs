//! `StartMethod`: how a child process comes to be.

use std::sync::atomic::{AtomicU8, Ordering};

/// How a child process is created. See the [module docs](crate::process) for the
/// trade-offs; [`StartMethod::default`] is [`ForkServer`](StartMethod::ForkServer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StartMethod {
    /// `fork()` this process. Fastest, and a [`Builder::fork`](crate::process::Builder::fork)
    /// closure may capture anything; but the child is a copy of a process that may hold
    /// locks in other threads, so multiproc refuses it while other threads run unless
    /// [`Builder::allow_threads`](crate::process::Builder::allow_threads) says otherwise.
    ///
    /// As in Python, the child inherits every descriptor of the parent (it is a copy),
    /// except multiproc's own connection to its fork server and death pipe.
    Fork,
    /// Re-execute the current program and run the function in the fresh process. The
    /// slowest and the most isolated; the function is a `fn` item or a non-capturing
    /// closure, and its argument is serialized.
    ///
    /// As in Python, the child gets only stdin, stdout, stderr and the descriptors
    /// multiproc hands it (those its argument owns): the rest are closed, even those
    /// opened without close-on-exec.
    Spawn,
    /// Ask a small single-threaded server process (started once, by re-executing this
    /// program) to fork the child. As fast as a fork, safe in a multi-threaded parent;
    /// same function rules as `Spawn`. The child is still a direct child of this process.
    ///
    /// Descriptors as with `Spawn`: the server is started like a `Spawn` child, and
    /// its children get only its stdio and what multiproc hands them.
    ForkServer,
}

static DEFAULT: AtomicU8 = AtomicU8::new(StartMethod::ForkServer as u8);

impl Default for StartMethod {
    /// The process-wide default: [`ForkServer`](StartMethod::ForkServer) unless
    /// [`set_default`](StartMethod::set_default) chose another.
    ///
    /// Why `ForkServer`: it is safe when the parent runs threads (as every `cargo test`
    /// does), it starts children nearly as fast as `fork`, and its children start from
    /// a clean state. Python made the same choice in 3.14.
    fn default() -> StartMethod {
        match DEFAULT.load(Ordering::Relaxed) {
            0 => StartMethod::Fork,
            1 => StartMethod::Spawn,
            _ => StartMethod::ForkServer,
        }
    }
}

impl StartMethod {
    /// Sets the process-wide default (Python's `set_start_method`).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::StartMethod;
    ///
    /// StartMethod::set_default(StartMethod::Spawn);
    /// assert_eq!(StartMethod::default(), StartMethod::Spawn);
    /// StartMethod::set_default(StartMethod::ForkServer);
    /// ```
    pub fn set_default(method: StartMethod) {
        DEFAULT.store(method as u8, Ordering::Relaxed);
    }

    /// The method's name as Python spells it: `"fork"`, `"spawn"` or `"forkserver"`.
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }

    /// Every start method, in order of isolation: `Fork`, `ForkServer`, `Spawn`.
    ///
    /// Loop over it rather than writing the list out, so that a method added later is
    /// not missed (parsing a name, a test or a benchmark over every method).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::StartMethod;
    ///
    /// let names: Vec<&str> = StartMethod::ALL.iter().map(|m| m.name()).collect();
    /// assert_eq!(names, ["fork", "forkserver", "spawn"]);
    /// for m in StartMethod::ALL {
    ///     assert_eq!(m.name().parse::<StartMethod>()?, m);
    /// }
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub const ALL: [StartMethod; 3] = [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ];
}

impl std::str::FromStr for StartMethod {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<StartMethod> {
        StartMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                crate::Error::new(crate::ErrorKind::InvalidInput).with_message(format!(
                    "unknown start method {s:?} (expected fork, spawn or forkserver)"
                ))
            })
    }
}

impl std::fmt::Display for StartMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
