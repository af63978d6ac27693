//! [`Pipe`] and its [`PipeBuilder`]: Python's `multiprocessing.Pipe`, which creates
//! connected pairs of [`Connection`]s over shared memory.

use std::os::fd::OwnedFd;

use super::connection::{Connection, Wire};
use super::frame::DEFAULT_MAX_MESSAGE;
use super::ring::{footprint, user_capacity, Ring};
use crate::error::{Error, Result};
use crate::shm::SharedMemory;
use crate::sys;

/// Default size of each direction's ring buffer (1 MiB).
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// Creates connected pairs of [`Connection`]s (Python's `multiprocessing.Pipe`).
///
/// Messages travel through a ring buffer in shared memory, one per direction, so a
/// message costs two `memcpy`s and, only when the receiver is asleep, one
/// `futex` wake-up; a receiver that is waiting spins briefly before it sleeps. A
/// Unix socket pair beside the rings tells each end when the other is gone (every
/// copy of it closed: the process exited, crashed or dropped it), so a receiver gets
/// end-of-stream instead of hanging, and it makes connections usable with
/// [`wait`](crate::ipc::wait).
///
/// # Examples
///
/// ```
/// use multiproc::ipc::{Connection, Pipe};
/// use multiproc::Process;
///
/// fn child(conn: Connection) {
///     let n: u64 = conn.recv().unwrap();
///     conn.send(n * 2).unwrap();
/// }
///
/// let (parent, child_end) = Pipe::new()?;
/// let p = Process::start_with(child, child_end)?;
/// parent.send(21u64)?;
/// assert_eq!(parent.recv::<u64>()?, 42);
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pipe;

impl Pipe {
    /// Creates a duplex pipe with the default settings: both ends send and receive.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) if the shared memory or the socket pair cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::Pipe::new()?;
    /// a.send("ping".to_string())?;
    /// assert_eq!(b.recv::<String>()?, "ping");
    /// b.send_bytes(b"pong")?;
    /// assert_eq!(a.recv_bytes()?, b"pong");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Result<(Connection, Connection)> {
        Pipe::builder().build()
    }

    /// Same as [`Pipe::new`].
    ///
    /// # Errors
    ///
    /// As [`Pipe::new`].
    pub fn duplex() -> Result<(Connection, Connection)> {
        Pipe::new()
    }

    /// Creates a one-way pipe: returns `(receiver, sender)`, in Python's order
    /// (`Pipe(duplex=False)`).
    ///
    /// # Errors
    ///
    /// As [`Pipe::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, tx) = multiproc::Pipe::one_way()?;
    /// tx.send(1u8)?;
    /// assert_eq!(rx.recv::<u8>()?, 1);
    /// assert!(rx.send(2u8).unwrap_err().is_rejected());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn one_way() -> Result<(Connection, Connection)> {
        Pipe::builder().duplex(false).build()
    }

    /// A [`PipeBuilder`] to set the buffer size, the maximum message size and duplex.
    pub fn builder() -> PipeBuilder {
        PipeBuilder {
            capacity: DEFAULT_CAPACITY,
            max_message: DEFAULT_MAX_MESSAGE,
            duplex: true,
        }
    }
}

/// Configures a [`Pipe`] before it is created.
///
/// # Examples
///
/// ```
/// let (a, b) = multiproc::Pipe::builder()
///     .capacity(64 * 1024)
///     .max_message_size(1024)
///     .build()?;
/// assert!(a.send(vec![0u8; 2000]).unwrap_err().is_rejected());
/// assert_eq!(a.send_bytes(&[0; 2000]).unwrap_err().kind(), multiproc::ErrorKind::InvalidInput);
/// # drop(b);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a PipeBuilder does nothing until `build` is called"]
pub struct PipeBuilder {
    capacity: usize,
    max_message: usize,
    duplex: bool,
}

impl PipeBuilder {
    /// Size of each direction's ring buffer in bytes, rounded up to a power of two
    /// (default 1 MiB, at least 4 KiB, at most 1 GiB). Larger messages still pass,
    /// in fragments; a larger ring lets a sender run further ahead.
    pub fn capacity(mut self, bytes: usize) -> PipeBuilder {
        self.capacity = bytes;
        self
    }

    /// The largest message accepted, in bytes (default 1 GiB). A larger send fails
    /// with [`SendError::Rejected`](super::SendError::Rejected); the receiver also enforces its own copy of the
    /// limit, so a corrupted length cannot make it allocate without bound.
    pub fn max_message_size(mut self, bytes: usize) -> PipeBuilder {
        self.max_message = bytes;
        self
    }

    /// Whether both ends send and receive (default `true`). A one-way pipe returns
    /// `(receiver, sender)`.
    pub fn duplex(mut self, yes: bool) -> PipeBuilder {
        self.duplex = yes;
        self
    }

    /// Creates the pipe.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) if the shared memory or the socket pair cannot be created.
    pub fn build(self) -> Result<(Connection, Connection)> {
        let cap = user_capacity(self.capacity);
        let rings = if self.duplex { 2 } else { 1 };
        let mem = SharedMemory::create(footprint(cap) * rings)?;
        for r in 0..rings {
            drop(Ring::init(mem.clone(), r * footprint(cap), cap));
        }
        let (s0, s1) = sys::socket::pair().map_err(Error::os)?;
        let wire = |side: u8, sock: OwnedFd| Wire {
            mem: mem.clone(),
            sock,
            side,
            duplex: self.duplex,
            max_message: self.max_message as u64,
        };
        let a = Connection::from_wire(wire(0, s0))?;
        let b = Connection::from_wire(wire(1, s1))?;
        // One-way: side 0 sends on ring 0, side 1 receives it; Python's order is
        // (receiver, sender).
        Ok(if self.duplex { (a, b) } else { (b, a) })
    }
}
