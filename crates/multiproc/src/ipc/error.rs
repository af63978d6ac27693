//! Per-operation errors of pipes and queues; a failed send hands the value back.
//!
//! The shapes follow crossbeam-channel: `SendError<T>` / `TrySendError<T>` /
//! `SendTimeoutError<T>` carry the value that was not sent, `RecvError` /
//! `TryRecvError` / `RecvTimeoutError` say why nothing was received. Two cases that
//! crossbeam does not have get their own variant, carrying the crate [`Error`] with the
//! details: a value that cannot be sent at all (`Rejected`: it failed to serialize, or
//! it is larger than the configured maximum message size) and a message that arrived
//! but is unusable (`Invalid`: it failed to decode, or the frame was corrupted).

use std::fmt;

use crate::error::{Error, ErrorKind};

/// Sending failed; the value comes back in the error.
///
/// # Examples
///
/// ```
/// use multiproc::ipc::{Pipe, SendError};
///
/// let (a, b) = Pipe::new()?;
/// drop(b);
/// // The peer is gone: the value comes back.
/// # let mut last = Ok(());
/// # for _ in 0..100_000 { last = a.send(7u32); if last.is_err() { break } }
/// # let err: SendError<u32> = last.unwrap_err();
/// assert!(err.is_disconnected());
/// assert_eq!(err.into_inner(), 7);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub enum SendError<T> {
    /// The receiving side is gone (the peer closed or died, or the queue was closed).
    Disconnected(T),
    /// The value can never be sent: it failed to serialize, or it is over the maximum
    /// message size. The [`Error`] says which.
    Rejected(T, Error),
}

/// A non-blocking send failed; the value comes back in the error.
pub enum TrySendError<T> {
    /// There is no room right now (bounded queue full, or the buffer is full).
    Full(T),
    /// The receiving side is gone.
    Disconnected(T),
    /// The value can never be sent (see [`SendError::Rejected`]).
    Rejected(T, Error),
}

/// A send with a deadline failed; the value comes back in the error.
pub enum SendTimeoutError<T> {
    /// The deadline passed before there was room.
    Timeout(T),
    /// The receiving side is gone.
    Disconnected(T),
    /// The value can never be sent (see [`SendError::Rejected`]).
    Rejected(T, Error),
}

/// A blocking receive failed.
#[derive(Debug)]
pub enum RecvError {
    /// The sending side is gone and everything it sent has been received
    /// (end of stream), or the queue was closed and drained.
    Disconnected,
    /// A message arrived but could not be used: it failed to decode, it was over
    /// the maximum message size, or the frame was corrupted. The [`Error`] says which.
    Invalid(Error),
}

/// A non-blocking receive failed.
#[derive(Debug)]
pub enum TryRecvError {
    /// Nothing to receive right now.
    Empty,
    /// The sending side is gone and everything has been received.
    Disconnected,
    /// A message arrived but could not be used (see [`RecvError::Invalid`]).
    Invalid(Error),
}

/// A receive with a deadline failed.
#[derive(Debug)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the deadline.
    Timeout,
    /// The sending side is gone and everything has been received.
    Disconnected,
    /// A message arrived but could not be used (see [`RecvError::Invalid`]).
    Invalid(Error),
}

macro_rules! send_error_common {
    ($ty:ident { $($var:ident),* }) => {
        impl<T> $ty<T> {
            /// Returns the value that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($ty::$var(v) => v,)*
                    $ty::Rejected(v, _) => v,
                }
            }

            /// Returns `true` if the receiving side is gone.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $ty::Disconnected(_))
            }

            /// Returns `true` if the value can never be sent.
            pub fn is_rejected(&self) -> bool {
                matches!(self, $ty::Rejected(..))
            }

            /// The error explaining a rejection.
            pub fn rejection(&self) -> Option<&Error> {
                match self {
                    $ty::Rejected(_, e) => Some(e),
                    _ => None,
                }
            }
        }

        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($ty::$var(_) => f.write_str(concat!(stringify!($ty), "::", stringify!($var), "(..)")),)*
                    $ty::Rejected(_, e) => write!(f, "{}::Rejected(.., {e:?})", stringify!($ty)),
                }
            }
        }

        impl<T> std::error::Error for $ty<T> {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.rejection().map(|e| e as _)
            }
        }
    };
}

send_error_common!(SendError { Disconnected });
send_error_common!(TrySendError { Full, Disconnected });
send_error_common!(SendTimeoutError {
    Timeout,
    Disconnected
});

impl<T> TrySendError<T> {
    /// Returns `true` if there was no room.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// Returns `true` if the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
            SendError::Rejected(_, e) => write!(f, "value rejected: {e}"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
            TrySendError::Rejected(_, e) => write!(f, "value rejected: {e}"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
            SendTimeoutError::Rejected(_, e) => write!(f, "value rejected: {e}"),
        }
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(v) => TrySendError::Disconnected(v),
            SendError::Rejected(v, e) => TrySendError::Rejected(v, e),
        }
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(v) => SendTimeoutError::Disconnected(v),
            SendError::Rejected(v, e) => SendTimeoutError::Rejected(v, e),
        }
    }
}

impl RecvError {
    /// Returns `true` at end of stream.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvError::Disconnected)
    }
}

impl TryRecvError {
    /// Returns `true` if nothing was there.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Returns `true` at end of stream.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl RecvTimeoutError {
    /// Returns `true` if the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }

    /// Returns `true` at end of stream.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Disconnected => f.write_str("receiving on a closed channel"),
            RecvError::Invalid(e) => write!(f, "invalid message: {e}"),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => f.write_str("receiving on a closed channel"),
            TryRecvError::Invalid(e) => write!(f, "invalid message: {e}"),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on receive operation"),
            RecvTimeoutError::Disconnected => f.write_str("receiving on a closed channel"),
            RecvTimeoutError::Invalid(e) => write!(f, "invalid message: {e}"),
        }
    }
}

macro_rules! recv_error_source {
    ($($ty:ident),*) => {$(
        impl std::error::Error for $ty {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $ty::Invalid(e) => Some(e),
                    _ => None,
                }
            }
        }
    )*};
}

recv_error_source!(RecvError, TryRecvError, RecvTimeoutError);

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => TryRecvError::Disconnected,
            RecvError::Invalid(e) => TryRecvError::Invalid(e),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Invalid(e) => RecvTimeoutError::Invalid(e),
        }
    }
}

/// Converts into the crate error (kinds `Disconnected`, or the rejection's own kind).
impl<T> From<SendError<T>> for Error {
    fn from(e: SendError<T>) -> Error {
        match e {
            SendError::Disconnected(_) => Error::new(ErrorKind::Disconnected),
            SendError::Rejected(_, e) => e,
        }
    }
}

/// Converts into the crate error (kinds `Disconnected`, or the invalid message's own kind).
impl From<RecvError> for Error {
    fn from(e: RecvError) -> Error {
        match e {
            RecvError::Disconnected => Error::new(ErrorKind::Disconnected),
            RecvError::Invalid(e) => e,
        }
    }
}

/// A batch send ([`Queue::put_all`](crate::Queue::put_all) and its `try_`/`_timeout`
/// forms) that stopped part-way: how many items went in (the first `sent` of the
/// batch, in order) and why the next one did not; that item comes back inside
/// `error` ([`SendError`], [`TrySendError`] or [`SendTimeoutError`]).
pub struct BatchSendError<E> {
    /// Items of the batch that went in before it stopped.
    pub sent: usize,
    /// Why the next item did not go in; it carries that item.
    pub error: E,
}

impl<E> BatchSendError<E> {
    /// Items of the batch that went in.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// The error, which carries the item that did not go in.
    pub fn into_error(self) -> E {
        self.error
    }
}

impl<E: fmt::Debug> fmt::Debug for BatchSendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSendError")
            .field("sent", &self.sent)
            .field("error", &self.error)
            .finish()
    }
}

impl<E: fmt::Display> fmt::Display for BatchSendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} after {} items of the batch went in",
            self.error, self.sent
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BatchSendError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<E: Into<Error>> From<BatchSendError<E>> for Error {
    fn from(e: BatchSendError<E>) -> Error {
        let sent = e.sent;
        let err: Error = e.error.into();
        let msg = format!("{err} (after {sent} items of the batch went in)");
        Error::new(err.kind()).with_message(msg)
    }
}
