//! Who am I, who started me, whom did I start: [`current_process`],
//! [`parent_process`] and [`active_children`] (Python's
//! `multiprocessing.current_process()`, `parent_process()` and `active_children()`),
//! and the default names `Process-N`.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sys;
use crate::sys::fork::PerProcess;

/// Set in a child that multiproc started: its name and its parent. Per process: a
/// forked child starts with `None` (not its parent's copy) until it enters.
static ME: PerProcess<Option<Me>> = PerProcess::new(|| None);

#[derive(Clone)]
struct Me {
    name: Arc<str>,
    /// The parent's pid.
    parent: Option<i32>,
}

/// Children started by this process: (pid, name), pruned once reaped.
static CHILDREN: PerProcess<Vec<(i32, Arc<str>)>> = PerProcess::new(Vec::new);

/// Numbers the default names.
static NEXT: AtomicUsize = AtomicUsize::new(1);

/// The name of a process multiproc did not start.
pub const MAIN_PROCESS_NAME: &str = "MainProcess";

/// The name a child gets when none was given: `Process-N`, numbered from 1 in
/// each process (as Python's).
pub(crate) fn default_name() -> String {
    format!("Process-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Records, in a newly started child (before the user's function runs), its name
/// and the pid of its parent: the process that started it (known to the caller,
/// not read with `getppid`, which names init once the parent is gone). No
/// descriptor is kept: [`parent_process`] opens a pidfd when asked.
pub(crate) fn enter_child(name: &str, parent: Option<i32>) {
    *ME.lock() = Some(Me {
        name: Arc::from(name),
        parent: parent.filter(|&p| p > 0),
    });
}

/// Remembers a child this process started (see [`active_children`]).
pub(crate) fn register_child(pid: i32, name: &str) {
    let mut c = CHILDREN.lock();
    // A reaped child's pid may come back for a new child: one entry per pid.
    c.retain(|(p, _)| *p != pid);
    c.push((pid, Arc::from(name)));
}

/// The process this code runs in (Python's `current_process()`).
///
/// # Examples
///
/// ```
/// use multiproc::process::{current_process, MAIN_PROCESS_NAME};
/// use multiproc::Process;
///
/// fn whoami() -> String {
///     current_process().name().to_string()
/// }
///
/// assert_eq!(current_process().name(), MAIN_PROCESS_NAME);
/// assert_eq!(current_process().pid(), std::process::id() as i32);
/// let p = Process::builder().name("worker-7").start(whoami)?;
/// assert_eq!(p.join()?, "worker-7");
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn current_process() -> CurrentProcess {
    let name = ME
        .lock()
        .as_ref()
        .map_or_else(|| Arc::from(MAIN_PROCESS_NAME), |m| Arc::clone(&m.name));
    CurrentProcess {
        pid: sys::proc::pid(),
        name,
    }
}

/// What [`current_process`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    pid: i32,
    name: Arc<str>,
}

impl CurrentProcess {
    /// This process's id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The name it was started with ([`Builder::name`](super::Builder::name), or
    /// `Process-N`), in full (`ps` shows its first 15 bytes);
    /// [`MAIN_PROCESS_NAME`] if multiproc did not start it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The process that started this one, if multiproc did (Python's
/// `parent_process()`): `None` in a process multiproc did not start.
///
/// Its [`is_alive`](ParentProcess::is_alive) follows the parent through a pidfd
/// (opened by this call, kept by the returned value: checked against `getppid`, so
/// a reused pid is never mistaken for the parent), and a
/// child that does not die with its parent
/// ([`Builder::die_with_parent(false)`](super::Builder::die_with_parent)) can see it
/// go.
///
/// # Examples
///
/// ```
/// use multiproc::process::parent_process;
/// use multiproc::Process;
///
/// fn parent_alive() -> Option<(i32, bool)> {
///     parent_process().map(|p| (p.pid(), p.is_alive()))
/// }
///
/// assert!(parent_process().is_none());
/// let got = Process::start(parent_alive)?.join()?;
/// assert_eq!(got, Some((std::process::id() as i32, true)));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    let pid = ME.lock().as_ref()?.parent?;
    // The pidfd is that process only if it is still our parent after the open (a
    // parent cannot be reaped, and its pid reused, while we are its child); if
    // `getppid` names another process, the parent is gone.
    let pidfd = sys::pidfd::open(pid)
        .ok()
        .filter(|_| sys::proc::ppid() == Some(pid));
    Some(ParentProcess {
        pid,
        pidfd: pidfd.map(Arc::new),
    })
}

/// What [`parent_process`] returns.
#[derive(Clone)]
pub struct ParentProcess {
    pid: i32,
    /// `None`: the parent had ended when [`parent_process`] looked.
    pidfd: Option<Arc<OwnedFd>>,
}

impl ParentProcess {
    /// The parent's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Returns `true` while the parent runs.
    pub fn is_alive(&self) -> bool {
        !self.wait_timeout(Duration::ZERO)
    }

    /// Waits at most `timeout` for the parent to end; returns `true` if it has
    /// (Python's `parent_process().join(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let Some(pidfd) = &self.pidfd else {
            return true;
        };
        let deadline = Instant::now().checked_add(timeout);
        sys::pidfd::poll_readable(&[pidfd.as_fd()], deadline)
            .map(|r| r[0])
            .unwrap_or(false)
    }
}

impl fmt::Debug for ParentProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParentProcess")
            .field("pid", &self.pid)
            .field("alive", &self.is_alive())
            .finish()
    }
}

/// A live child, as [`active_children`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    pid: i32,
    name: Arc<str>,
}

impl ChildInfo {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The name it was started with.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The children this process started with [`Process`](crate::Process) (any start
/// method) that are still running (Python's `active_children()`), oldest first.
///
/// A child that has exited is not listed, whether or not its handle was joined.
/// Python returns the `Process` objects; here the handles belong to their owners, so
/// this lists pids and names. (Pool workers are not listed: the pool owns them.)
///
/// # Examples
///
/// ```
/// use multiproc::process::active_children;
/// use multiproc::Process;
///
/// fn nap() {
///     std::thread::sleep(std::time::Duration::from_millis(500));
/// }
///
/// let p = Process::builder().name("napper").start(nap)?;
/// let pid = p.pid();
/// assert!(active_children().iter().any(|c| c.pid() == pid && c.name() == "napper"));
/// p.join()?;
/// assert!(!active_children().iter().any(|c| c.pid() == pid));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn active_children() -> Vec<ChildInfo> {
    let mut c = CHILDREN.lock();
    let mut live = Vec::new();
    c.retain(|(pid, name)| {
        // Looks without reaping: an exited child (a zombie until its handle or the
        // reaper collects it) is no longer active, and once reaped (`ECHILD`) its
        // entry goes.
        match sys::pidfd::has_exited(*pid) {
            Ok(false) => {
                live.push(ChildInfo {
                    pid: *pid,
                    name: Arc::clone(name),
                });
                true
            }
            Ok(true) => true,
            Err(_) => false,
        }
    });
    live
}
