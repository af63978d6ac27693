//! User-defined shared types: the [`Managed`] trait, its type-erased form in the
//! server, the type-level [`Registry`] and the typed [`Proxy`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::session::{decode, encode, Handle};
use super::wire::{Bytes, Op, Reply};
use crate::error::Result;

/// A type whose values live in a manager's server and are used through a
/// [`Proxy`] (Python's `BaseManager.register(typeid, callable)`).
///
/// A method call on a Python proxy becomes a [`Request`](Self::Request) value here:
/// an enum with one variant per method, answered by a [`Response`](Self::Response).
/// Requests are handled one at a time per object (the server locks the object for
/// [`handle`](Self::handle)), so `handle` may take `&mut self` without further
/// locking. Register the type with [`Builder::register`](super::Builder::register)
/// and create values with [`Manager::create`](super::Manager::create).
///
/// `handle` runs in the server: it must not block for long (other clients of the
/// same object wait), and a panic in it is reported to the caller as
/// [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) (the object stays usable;
/// restore its invariants if a panic can break them).
///
/// # Examples
///
/// ```
/// use multiproc::manager::{Managed, Manager};
/// use serde::{Deserialize, Serialize};
///
/// /// A counter that only goes up.
/// struct Counter(u64);
///
/// #[derive(Serialize, Deserialize)]
/// enum CounterRequest {
///     Add(u64),
///     Get,
/// }
///
/// impl Managed for Counter {
///     const TYPE_ID: &'static str = "Counter";
///     type Init = u64;
///     type Request = CounterRequest;
///     type Response = u64;
///
///     fn new(start: u64) -> Counter {
///         Counter(start)
///     }
///
///     fn handle(&mut self, request: CounterRequest) -> u64 {
///         if let CounterRequest::Add(n) = request {
///             self.0 += n;
///         }
///         self.0
///     }
/// }
///
/// let manager = Manager::builder().register::<Counter>().start()?;
/// let counter = manager.create::<Counter>(&10)?;
/// assert_eq!(counter.call(&CounterRequest::Add(5))?, 15);
/// assert_eq!(counter.call(&CounterRequest::Get)?, 15);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub trait Managed: Send + 'static {
    /// The name the type is registered under: unique among a manager's registered
    /// types (Python's `typeid`).
    const TYPE_ID: &'static str;
    /// What [`new`](Self::new) takes (sent from the client that creates the object).
    type Init: Serialize + DeserializeOwned;
    /// A method call.
    type Request: Serialize + DeserializeOwned;
    /// A method's result.
    type Response: Serialize + DeserializeOwned;

    /// Creates the object in the server.
    fn new(init: Self::Init) -> Self
    where
        Self: Sized;

    /// Handles one call.
    fn handle(&mut self, request: Self::Request) -> Self::Response;
}

/// A [`Managed`] object in the server, with its types erased.
pub(crate) trait ErasedManaged: Send {
    /// Decodes a request, handles it and encodes the response.
    fn call(&mut self, request: &[u8]) -> Result<Bytes>;
}

impl<M: Managed> ErasedManaged for M {
    fn call(&mut self, request: &[u8]) -> Result<Bytes> {
        let request: M::Request = decode(request)?;
        encode(&self.handle(request))
    }
}

/// Makes an object of a registered type from its `TYPE_ID` and encoded init;
/// `None` if no such type is registered.
pub(crate) type Factory = fn(&str, &[u8]) -> Option<Result<Box<dyn ErasedManaged>>>;

pub(crate) mod sealed {
    use super::ErasedManaged;
    use crate::error::Result;

    /// The registry's lookup (an implementation detail of [`Registry`](super::Registry)).
    pub trait Lookup: 'static {
        /// Creates an object of the registered type `type_id` from its encoded init;
        /// `None` if no such type is registered.
        #[allow(private_interfaces)]
        fn create(type_id: &str, init: &[u8]) -> Option<Result<Box<dyn ErasedManaged>>>;
    }
}

/// The set of [`Managed`] types a manager's server can create: `()` for none, and
/// `(M, R)` for `M` and those of `R`, as [`Builder::register`](super::Builder::register)
/// builds it.
///
/// The set is a type, not a runtime table, so the server's entry point is an
/// ordinary generic function that every [start method](crate::StartMethod) can find
/// in a fresh process: a spawned server knows the registered types without anything
/// being sent but their names. This trait is sealed.
pub trait Registry: sealed::Lookup {}

impl sealed::Lookup for () {
    #[allow(private_interfaces)]
    fn create(_: &str, _: &[u8]) -> Option<Result<Box<dyn ErasedManaged>>> {
        None
    }
}

impl Registry for () {}

impl<M: Managed, R: Registry> sealed::Lookup for (M, R) {
    #[allow(private_interfaces)]
    fn create(type_id: &str, init: &[u8]) -> Option<Result<Box<dyn ErasedManaged>>> {
        if type_id == M::TYPE_ID {
            Some(decode::<M::Init>(init).map(|i| Box::new(M::new(i)) as Box<dyn ErasedManaged>))
        } else {
            R::create(type_id, init)
        }
    }
}

impl<M: Managed, R: Registry> Registry for (M, R) {}

/// A proxy to a [`Managed`] object in a manager's server: [`call`](Self::call) sends
/// a request and returns the response.
///
/// Like every proxy, it can be cloned (the clones refer to the same object), sent to
/// another process (through a [`Pipe`](crate::Pipe), a [`Queue`](crate::Queue) or as
/// a [`Process`](crate::Process) argument; it reconnects to the server there), and
/// the object is freed when the last proxy to it is dropped. See the
/// [module docs](super) for the rules.
///
/// # Examples
///
/// See [`Managed`].
pub struct Proxy<M> {
    handle: Handle,
    _type: PhantomData<fn() -> M>,
}

impl<M: Managed> Proxy<M> {
    pub(crate) fn from_handle(handle: Handle) -> Proxy<M> {
        Proxy {
            handle,
            _type: PhantomData,
        }
    }

    /// Calls a method of the object.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) if the server is
    /// gone; [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) if `handle`
    /// panicked; [`ErrorKind::Encode`](crate::ErrorKind::Encode)/[`Decode`](crate::ErrorKind::Decode)
    /// if the request or response does not make the trip.
    pub fn call(&self, request: &M::Request) -> Result<M::Response> {
        let reply = self.handle.call(Op::Custom(encode(request)?))?;
        match reply {
            Reply::Value(Some(b)) => decode(&b),
            r => Err(super::session::unexpected(&r)),
        }
    }
}

impl<M> Clone for Proxy<M> {
    fn clone(&self) -> Self {
        Proxy {
            handle: self.handle.clone(),
            _type: PhantomData,
        }
    }
}

impl<M: Managed> fmt::Debug for Proxy<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("type", &M::TYPE_ID)
            .field("object", &self.handle)
            .finish()
    }
}

impl<M> Serialize for Proxy<M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.handle.serialize(s)
    }
}

impl<'de, M> Deserialize<'de> for Proxy<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Handle::deserialize(d).map(|handle| Proxy {
            handle,
            _type: PhantomData,
        })
    }
}
