//! Why a pipe, queue or socket operation did not happen ([`Fail`]), converted to
//! each public error type of [`super::error`] in one place; and the crate errors
//! these operations report, built here so each message is written once.

use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::frame::SendFail;
use crate::error::{Error, ErrorKind};

/// Why an operation did not happen, before conversion to the public error types.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Full (a send) or empty (a receive): at once under
    /// [`Patience::Try`](super::frame::Patience::Try), or at the deadline.
    Busy,
    /// The peer is gone (or the queue is closed and drained).
    Disconnected,
    /// This value or message cannot go; the caller gets it back.
    Rejected(Error),
    /// What arrived cannot be used.
    Invalid(Error),
    /// A message over the maximum size arrived and was skipped: unlike
    /// [`Invalid`](Fail::Invalid), the stream is still in step. Reported as
    /// [`Invalid`](Fail::Invalid).
    TooLarge(Error),
}

impl From<SendFail> for Fail {
    fn from(e: SendFail) -> Fail {
        match e {
            SendFail::Full | SendFail::TimedOut => Fail::Busy,
            SendFail::Stopped => Fail::Disconnected,
            SendFail::Corrupt(c) => Fail::Rejected(corrupted(&c.0)),
        }
    }
}

impl Fail {
    /// For a blocking send, which cannot be busy: anything but an error is the peer
    /// gone.
    pub(crate) fn into_send<T>(self, v: T) -> SendError<T> {
        match self {
            Fail::Rejected(e) | Fail::Invalid(e) | Fail::TooLarge(e) => SendError::Rejected(v, e),
            Fail::Busy | Fail::Disconnected => SendError::Disconnected(v),
        }
    }

    pub(crate) fn into_try_send<T>(self, v: T) -> TrySendError<T> {
        match self {
            Fail::Busy => TrySendError::Full(v),
            Fail::Disconnected => TrySendError::Disconnected(v),
            Fail::Rejected(e) | Fail::Invalid(e) | Fail::TooLarge(e) => {
                TrySendError::Rejected(v, e)
            }
        }
    }

    pub(crate) fn into_send_timeout<T>(self, v: T) -> SendTimeoutError<T> {
        match self {
            Fail::Busy => SendTimeoutError::Timeout(v),
            Fail::Disconnected => SendTimeoutError::Disconnected(v),
            Fail::Rejected(e) | Fail::Invalid(e) | Fail::TooLarge(e) => {
                SendTimeoutError::Rejected(v, e)
            }
        }
    }

    /// For a blocking receive, which cannot be busy: anything but an error is the
    /// peer gone.
    pub(crate) fn into_recv(self) -> RecvError {
        match self {
            Fail::Rejected(e) | Fail::Invalid(e) | Fail::TooLarge(e) => RecvError::Invalid(e),
            Fail::Busy | Fail::Disconnected => RecvError::Disconnected,
        }
    }

    pub(crate) fn into_try_recv(self) -> TryRecvError {
        match self {
            Fail::Busy => TryRecvError::Empty,
            Fail::Disconnected => TryRecvError::Disconnected,
            Fail::Rejected(e) | Fail::Invalid(e) | Fail::TooLarge(e) => TryRecvError::Invalid(e),
        }
    }

    pub(crate) fn into_recv_timeout(self) -> RecvTimeoutError {
        match self {
            Fail::Busy => RecvTimeoutError::Timeout,
            Fail::Disconnected => RecvTimeoutError::Disconnected,
            Fail::Rejected(e) | Fail::Invalid(e) | Fail::TooLarge(e) => {
                RecvTimeoutError::Invalid(e)
            }
        }
    }

    /// For the calls that report the crate [`Error`] (`send_bytes`, …).
    pub(crate) fn into_error(self) -> Error {
        match self {
            Fail::Busy => Error::new(ErrorKind::Timeout),
            Fail::Disconnected => Error::new(ErrorKind::Disconnected),
            Fail::Rejected(e) | Fail::Invalid(e) | Fail::TooLarge(e) => e,
        }
    }
}

/// A message to send is over the maximum message size.
pub(crate) fn too_large(len: usize, max: usize) -> Error {
    Error::new(ErrorKind::InvalidInput).with_message(format!(
        "message of {len} bytes exceeds the maximum message size of {max} bytes"
    ))
}

/// A message that arrived is over the maximum message size.
pub(crate) fn too_large_in(len: u64, max: usize) -> Error {
    Error::new(ErrorKind::Decode).with_message(format!(
        "received a message of {len} bytes, over the maximum message size of {max} bytes"
    ))
}

/// The message stream (a ring, or a socket's framing) is broken.
pub(crate) fn corrupted(detail: &str) -> Error {
    Error::new(ErrorKind::Corrupt).with_message(format!("corrupted message stream: {detail}"))
}

/// A value that owns a descriptor was put on a queue.
pub(crate) fn fd_refused() -> Error {
    Error::new(ErrorKind::Encode).with_message(
        "values that own file descriptors cannot be sent through a queue; \
         send them through a pipe, or pass them to the child at start",
    )
}

/// A receive on the sending end of a one-way pipe.
pub(crate) fn write_only() -> Error {
    Error::new(ErrorKind::InvalidInput).with_message("this end of a one-way pipe cannot receive")
}

/// A send on the receiving end of a one-way pipe.
pub(crate) fn read_only() -> Error {
    Error::new(ErrorKind::InvalidInput).with_message("this end of a one-way pipe cannot send")
}

/// A socket connection's peer closed in the middle of a message.
pub(crate) fn closed_mid_message() -> Error {
    Error::new(ErrorKind::Decode).with_message("the socket closed in the middle of a message")
}

/// The authentication handshake of a socket connection failed.
pub(crate) fn auth_failed(detail: &str) -> Error {
    Error::new(ErrorKind::AuthenticationFailed).with_message(detail.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid() -> Fail {
        Fail::Invalid(Error::new(ErrorKind::Decode))
    }

    #[test]
    fn busy_is_full_empty_or_timeout_by_call() {
        assert!(Fail::Busy.into_try_send(1).is_full());
        assert!(Fail::Busy.into_send_timeout(1).is_timeout());
        assert!(matches!(Fail::Busy.into_try_recv(), TryRecvError::Empty));
        assert!(matches!(
            Fail::Busy.into_recv_timeout(),
            RecvTimeoutError::Timeout
        ));
        assert_eq!(Fail::Busy.into_error().kind(), ErrorKind::Timeout);
    }

    #[test]
    fn errors_keep_their_kind_and_the_value_comes_back() {
        let e = Fail::TooLarge(too_large_in(9, 8)).into_recv();
        assert!(matches!(e, RecvError::Invalid(ref e) if e.kind() == ErrorKind::Decode));
        let e = invalid().into_try_send(5u8);
        assert!(matches!(e, TrySendError::Rejected(5, _)));
        assert_eq!(Fail::Disconnected.into_send(3u8).into_inner(), 3);
        assert!(Fail::Disconnected.into_send(3u8).is_disconnected());
        assert_eq!(
            Fail::from(SendFail::Stopped).into_error().kind(),
            ErrorKind::Disconnected
        );
    }
}
