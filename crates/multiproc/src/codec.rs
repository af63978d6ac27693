//! The serialization seam: values become bytes plus file descriptors (also at its
//! first path, `multiproc::ipc::codec`).
//!
//! Every value that crosses a process boundary in multiproc — a function's argument
//! and result, a queue item, a pipe message — goes through [`encode`] and
//! [`decode`]. The format is [postcard] 1.x (varint integers, no field names, no
//! padding), chosen by measurement over the other maintained compact serde formats (see
//! the commit that replaced bincode 1.x, which is unmaintained: RUSTSEC-2025-0141).
//!
//! Objects that own a descriptor (a pipe end, a shared-memory
//! segment, a lock) cannot be represented by bytes alone. Their `Serialize` impls go
//! through the [`fd`] module: the descriptor is duplicated into a side list that travels
//! next to the bytes (as `SCM_RIGHTS` on a Unix socket), and the bytes hold its index.
//! Outside multiproc's own transports such a value refuses to serialize, rather than
//! producing an index that means nothing.
//!
//! [postcard]: https://docs.rs/postcard/1

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, OwnedFd};
use std::thread::LocalKey;

use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};

thread_local! {
    /// Descriptors collected while encoding (`Some` only inside [`encode`]).
    static SINK: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// Descriptors available while decoding (`Some` only inside [`decode`]).
    static SOURCE: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    /// Set when a decoded value asked for a descriptor that was not there.
    static WANTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The message of the [`fd`] adapter's last refusal: postcard reports a custom
    /// error without its text, so the codec's error takes it from here.
    static REFUSAL: std::cell::Cell<Option<String>> = const { std::cell::Cell::new(None) };
}

/// The serialization passes of one send (see [`one_send`]).
#[derive(Debug, Clone, Copy)]
struct Trip {
    /// Whether a send is marked.
    active: bool,
    /// Passes in progress on this thread: a value's `Serialize` that encodes
    /// something else (a request of its own) nests a pass in the outer one.
    depth: u32,
    /// Side-effect points seen so far in the outermost pass.
    pos: u32,
    /// Side-effect points whose effect took place, over every pass of the send.
    done: u32,
}

/// A [`Trip`] in a thread-local, a cell per field: every access reads or writes
/// one field with its own width. (One `Cell<Option<Trip>>` was copied whole and
/// in parts by turns, and a load wider than the stores before it waits for them
/// to reach the cache: a store-forwarding stall, 7 % of a `Queue<u64>` put,
/// issue 11.)
struct TripCell {
    active: Cell<bool>,
    depth: Cell<u32>,
    pos: Cell<u32>,
    done: Cell<u32>,
}

impl TripCell {
    #[inline]
    fn get(&self) -> Trip {
        Trip {
            active: self.active.get(),
            depth: self.depth.get(),
            pos: self.pos.get(),
            done: self.done.get(),
        }
    }

    #[inline]
    fn set(&self, t: Trip) {
        self.active.set(t.active);
        self.depth.set(t.depth);
        self.pos.set(t.pos);
        self.done.set(t.done);
    }
}

/// A fresh send's trip.
const FRESH: Trip = Trip {
    active: true,
    depth: 0,
    pos: 0,
    done: 0,
};

thread_local! {
    /// The send this thread is in, if a caller marked one with [`one_send`].
    static TRIP: TripCell = const {
        TripCell {
            active: Cell::new(false),
            depth: Cell::new(0),
            pos: Cell::new(0),
            done: Cell::new(0),
        }
    };
}

/// Runs `f`, which serializes one value for one send in several passes (a size pass
/// and then the bytes; a try on the stack and then on the heap; a probe for an
/// error's text). A `Serialize` with an effect outside the bytes (a manager proxy
/// takes a reference for its receiver) asks [`first_serialization`], so the effect
/// happens once per place in the value, not once per pass.
#[cfg_attr(loom, allow(dead_code))]
#[inline]
pub(crate) fn one_send<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Trip);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            TRIP.with(|t| t.set(self.0));
        }
    }
    let _outer = Restore(TRIP.with(|t| {
        let outer = t.get();
        t.set(FRESH);
        outer
    }));
    f()
}

/// Inside [`one_send`]: what follows is the next send (a batch's next item), whose
/// passes take each side effect once again. Cheaper than a `one_send` per item
/// (issue 11: a third of a batch's encoding CPU for 8-byte items).
///
/// # Panics
///
/// Debug builds panic outside a `one_send` (the mark would outlive it).
#[inline]
pub(crate) fn next_send() {
    TRIP.with(|t| {
        debug_assert!(t.active.get(), "next_send outside one_send");
        t.set(FRESH);
    });
}

/// One serialization pass, for the length of the guard.
struct Pass;

impl Pass {
    #[inline]
    fn enter() -> Pass {
        TRIP.with(|t| {
            if t.active.get() {
                let depth = t.depth.get();
                if depth == 0 {
                    t.pos.set(0);
                }
                t.depth.set(depth + 1);
            }
        });
        Pass
    }
}

impl Drop for Pass {
    #[inline]
    fn drop(&mut self) {
        TRIP.with(|t| {
            if t.active.get() {
                t.depth.set(t.depth.get().saturating_sub(1));
            }
        });
    }
}

/// Whether a `Serialize` impl with an effect outside the bytes it writes should
/// take that effect now: `false` only when an earlier pass of the same send
/// ([`one_send`]) already took it at this place of the value.
pub(crate) fn first_serialization() -> bool {
    TRIP.with(|t| {
        if !t.active.get() || t.depth.get() != 1 {
            return true;
        }
        let pos = t.pos.get().saturating_add(1);
        let done = t.done.get();
        t.pos.set(pos);
        t.done.set(done.max(pos));
        pos > done
    })
}

/// Appends postcard's encoding of a value to a `Vec` (postcard's own `to_extend` goes
/// byte by byte).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        extend_small(self.0, data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// `out.extend_from_slice(data)`, faster for the short pieces postcard writes most
/// (a varint, 1 to 10 bytes, which it has just written byte by byte into a buffer on
/// the stack): the bytes are gathered into one word with byte loads, which the CPU
/// forwards from those stores, and written with one store. A wider load of bytes
/// just stored one by one cannot be forwarded and stalls (`memcpy` and fixed-size
/// copies do that): encoding a `Vec<u64>` took 6.5 ns of CPU per item (issue 11).
#[inline(always)]
fn extend_small(out: &mut Vec<u8>, data: &[u8]) {
    if data.len() > 8 {
        out.extend_from_slice(data);
        return;
    }
    let mut w = 0u64;
    for (i, &b) in data.iter().enumerate() {
        w |= u64::from(b) << (8 * i);
    }
    let len = out.len() + data.len();
    out.extend_from_slice(&w.to_le_bytes());
    out.truncate(len);
}

/// Encodes `value` into `buf` without allocating: the encoded length, or `None` if it
/// does not fit or cannot be encoded here (a descriptor outside [`encode`]).
pub(crate) fn encode_to_slice<T: Serialize + ?Sized>(value: &T, buf: &mut [u8]) -> Option<usize> {
    let r = {
        let _pass = Pass::enter();
        postcard::serialize_with_flavor(value, Fill { buf, at: 0 }).ok()
    };
    REFUSAL.with(|m| m.set(None));
    r
}

/// A postcard flavor filling a slice, writing short pieces as [`extend_small`]
/// does (`postcard::to_slice` copied each varint with a `memcpy` call: 15 % of
/// the CPU of a batch of 8-byte Queue items, issue 11). Its output is the length
/// written. The bytes after it may be overwritten.
struct Fill<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl postcard::ser_flavors::Flavor for Fill<'_> {
    type Output = usize;

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.at + data.len();
        if data.len() <= 8 {
            if let Some(word) = self.buf.get_mut(self.at..self.at + 8) {
                let mut w = 0u64;
                for (i, &b) in data.iter().enumerate() {
                    w |= u64::from(b) << (8 * i);
                }
                word.copy_from_slice(&w.to_le_bytes());
                self.at = end;
                return Ok(());
            }
        }
        self.buf
            .get_mut(self.at..end)
            .ok_or(postcard::Error::SerializeBufferFull)?
            .copy_from_slice(data);
        self.at = end;
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        *self
            .buf
            .get_mut(self.at)
            .ok_or(postcard::Error::SerializeBufferFull)? = data;
        self.at += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.at)
    }
}

/// [`encode_to_slice`] for a value that must own no descriptor (a
/// [`Queue`](crate::Queue)'s small items): `None` also when this thread is in the
/// middle of another encoding, whose descriptor list would otherwise collect this
/// value's descriptors (the caller then encodes it with [`encode_unless_large`]).
pub(crate) fn encode_small<T: Serialize + ?Sized>(value: &T, buf: &mut [u8]) -> Option<usize> {
    if SINK.with(|s| s.try_borrow().map_or(true, |l| l.is_some())) {
        return None;
    }
    encode_to_slice(value, buf)
}

/// Largest encoding buffer a [`Queue`](crate::Queue) or a
/// [`Connection`](crate::ipc::Connection) keeps for the next message. A 1 MiB item
/// encodes to a little more than 1 MiB (its length comes first), so a limit of
/// 1 MiB made every such item allocate, page-fault and free two fresh buffers
/// (issue 14: Queue 1 MiB items at 0.4 GB/s, 15% of the time in page faults); above
/// this size a thread keeps nothing, so one huge item does not pin its memory.
pub(crate) const KEEP_SCRATCH: usize = 4 << 20;

/// Decodes a value received without its descriptors: `Ok(None)` if it turns out to
/// own some, so the caller fetches them and decodes again with [`decode`].
pub(crate) fn decode_seed_unless_fds<'a, S: DeserializeSeed<'a>>(
    bytes: &'a [u8],
    seed: S,
) -> Result<Option<S::Value>> {
    WANTED.with(|w| w.set(false));
    match deserialize_seed(bytes, seed) {
        Ok(v) => Ok(Some(v)),
        Err(_) if WANTED.with(|w| w.replace(false)) => {
            REFUSAL.with(|m| m.set(None));
            Ok(None)
        }
        Err(e) => Err(decode_error(e)),
    }
}

/// The format's `deserialize`, through a seed.
fn deserialize_seed<'a, S: DeserializeSeed<'a>>(
    bytes: &'a [u8],
    seed: S,
) -> postcard::Result<S::Value> {
    // As `postcard::from_bytes`: bytes after the value are ignored (the debug type
    // check appends its own, see `ipc::connection`).
    seed.deserialize(&mut postcard::Deserializer::from_bytes(bytes))
}

/// A value encoded for another process: its bytes and the descriptors it owns.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The serialized bytes.
    pub bytes: Vec<u8>,
    /// Duplicates of the descriptors the value refers to, in index order.
    pub fds: Vec<OwnedFd>,
}

/// Serializes `value`, collecting duplicates of any descriptors it owns.
///
/// # Errors
///
/// [`ErrorKind::Encode`] if the value's `Serialize` impl fails (for example a map
/// with non-string keys is fine, but a custom impl may refuse).
///
/// # Examples
///
/// ```
/// use multiproc::ipc::codec;
///
/// let e = codec::encode(&(1u32, "two".to_string()))?;
/// let back: (u32, String) = codec::decode(&e.bytes, e.fds)?;
/// assert_eq!(back, (1, "two".to_string()));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Encoded> {
    let mut bytes = Vec::new();
    encode_into(value, &mut bytes).map(|fds| Encoded { bytes, fds })
}

/// Serializes `value` appending to `out`; returns the descriptors it collected.
///
/// # Errors
///
/// As [`encode`].
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<Vec<OwnedFd>> {
    let start = out.len();
    let r = encode_flavor(value, Append(&mut *out));
    if r.is_err() {
        out.truncate(start);
    }
    r.map(|((), fds)| fds)
}

/// Appends to a `Vec` as [`Append`] does, unless one byte string of `big` bytes or
/// more comes: then it stops and says so in `large`.
#[cfg_attr(loom, allow(dead_code))]
struct AppendSmall<'a> {
    out: &'a mut Vec<u8>,
    big: usize,
    large: &'a mut bool,
}

impl postcard::ser_flavors::Flavor for AppendSmall<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() >= self.big {
            *self.large = true;
            return Err(postcard::Error::SerializeBufferFull);
        }
        extend_small(self.out, data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.out.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// [`encode_into`], unless the value holds a byte string of `big` bytes or more
/// (then `Ok(None)`, `out` as it was): such a value is worth serializing straight
/// to where its bytes go ([`encoded_len_marked`], then [`encode_to`]), since a copy of
/// its bulk costs more than walking it twice.
///
/// # Errors
///
/// As [`encode`].
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn encode_unless_large<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    big: usize,
) -> Result<Option<Vec<OwnedFd>>> {
    let start = out.len();
    let mut large = false;
    let r = encode_flavor(
        value,
        AppendSmall {
            out: &mut *out,
            big,
            large: &mut large,
        },
    );
    match r {
        Ok(((), fds)) => Ok(Some(fds)),
        Err(_) if large => {
            out.truncate(start);
            Ok(None)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The length of `value`'s encoding and the descriptors it owns, and where the length of the value's first byte string (or
/// string) of `big` bytes or more starts in the encoding, if it holds one: the
/// mark a receiver uses to take those bytes apart (see `ipc::frame::recv_split`).
///
/// # Errors
///
/// As [`encode`].
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn encoded_len_marked<T: Serialize + ?Sized>(
    value: &T,
    big: usize,
) -> Result<(usize, Option<usize>, Vec<OwnedFd>)> {
    /// Counts bytes and notes the first large piece.
    struct Marked {
        len: usize,
        big: usize,
        mark: Option<usize>,
    }
    impl postcard::ser_flavors::Flavor for Marked {
        type Output = (usize, Option<usize>);
        #[inline]
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            if self.mark.is_none() && data.len() >= self.big {
                // postcard writes a byte string's (or string's) length, a varint,
                // just before its bytes.
                self.mark = self.len.checked_sub(varint_len(data.len()));
            }
            self.len += data.len();
            Ok(())
        }
        #[inline]
        fn try_push(&mut self, _: u8) -> postcard::Result<()> {
            self.len += 1;
            Ok(())
        }
        fn finalize(self) -> postcard::Result<(usize, Option<usize>)> {
            Ok((self.len, self.mark))
        }
    }
    let ((len, mark), fds) = encode_flavor(
        value,
        Marked {
            len: 0,
            big,
            mark: None,
        },
    )?;
    Ok((len, mark, fds))
}

/// Bytes in postcard's varint encoding of `n`.
fn varint_len(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// Hands `value`'s encoding to `write`, piece by piece, which returns `false` to
/// stop. A value that owns a descriptor is refused (there is no side list here:
/// check with [`encoded_len_marked`] first).
///
/// # Errors
///
/// [`ErrorKind::Encode`] if the value fails to serialize or `write` stopped.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn encode_to<T: Serialize + ?Sized>(
    value: &T,
    write: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<()> {
    struct To<'a>(&'a mut dyn FnMut(&[u8]) -> bool);
    impl postcard::ser_flavors::Flavor for To<'_> {
        type Output = ();
        #[inline]
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            if (self.0)(data) {
                Ok(())
            } else {
                Err(postcard::Error::SerializeBufferFull)
            }
        }
        #[inline]
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            self.try_extend(&[data])
        }
        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }
    let r = {
        let _pass = Pass::enter();
        postcard::serialize_with_flavor(value, To(write))
    };
    let refusal = REFUSAL.with(|m| m.take());
    r.map_err(|e| {
        Error::new(ErrorKind::Encode).with_message(refusal.unwrap_or_else(|| e.to_string()))
    })
}

/// Serializes `value` into `flavor` with a side list for its descriptors; returns
/// the flavor's output and the descriptors.
fn encode_flavor<T: Serialize + ?Sized, F: postcard::ser_flavors::Flavor>(
    value: &T,
    flavor: F,
) -> Result<(F::Output, Vec<OwnedFd>)> {
    let scope = Scope::enter(&SINK, Vec::new());
    let r = {
        let _pass = Pass::enter();
        postcard::serialize_with_flavor(value, flavor)
    };
    let fds = scope.exit().unwrap_or_default();
    match r {
        Ok(out) => Ok((out, fds)),
        Err(e) => {
            let why = match e {
                // postcard drops the text of a `Serialize` impl's own error: serialize
                // again (only on this failure path) into a probe that keeps it.
                postcard::Error::SerdeSerCustom => {
                    let scope = Scope::enter(&SINK, Vec::new());
                    let why = {
                        let _pass = Pass::enter();
                        probe::custom_message(value)
                    };
                    drop(scope.exit());
                    REFUSAL.with(|m| m.take());
                    why.unwrap_or_else(|| message(e))
                }
                e => message(e),
            };
            Err(Error::new(ErrorKind::Encode).with_message(why))
        }
    }
}

/// Deserializes a value from `bytes`, giving it the descriptors that came with them.
///
/// # Errors
///
/// [`ErrorKind::Decode`] if the bytes are not a valid encoding of `T`, or refer to a
/// descriptor that did not arrive.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    decode_seed(bytes, fds, PhantomData::<T>)
}

/// [`decode`] through a [`DeserializeSeed`].
pub(crate) fn decode_seed<'a, S: DeserializeSeed<'a>>(
    bytes: &'a [u8],
    fds: Vec<OwnedFd>,
    seed: S,
) -> Result<S::Value> {
    if fds.is_empty() {
        return deserialize_seed(bytes, seed).map_err(decode_error);
    }
    let scope = Scope::enter(&SOURCE, fds.into_iter().map(Some).collect());
    let r = deserialize_seed(bytes, seed);
    drop(scope.exit());
    r.map_err(decode_error)
}

/// One encoding's (or decoding's) descriptor list in a thread-local, with the outer
/// one put back when it ends: by [`exit`](Scope::exit), or on drop when a `Serialize`
/// or `Deserialize` impl panics (a pool worker catches that panic and serves on, so
/// the thread-local must not keep a finished encoding's list).
struct Scope<T: 'static> {
    key: &'static LocalKey<RefCell<Option<T>>>,
    outer: Option<Option<T>>,
}

impl<T> Scope<T> {
    fn enter(key: &'static LocalKey<RefCell<Option<T>>>, inner: T) -> Scope<T> {
        let outer = key.with(|s| s.borrow_mut().replace(inner));
        Scope {
            key,
            outer: Some(outer),
        }
    }

    /// Ends the scope and returns its list.
    fn exit(mut self) -> Option<T> {
        let outer = self.outer.take().expect("taken only here and in drop");
        self.key
            .with(|s| std::mem::replace(&mut *s.borrow_mut(), outer))
    }
}

impl<T> Drop for Scope<T> {
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            // `try_`: this runs during unwinding, which must not panic again.
            let _ = self.key.try_with(|s| {
                if let Ok(mut slot) = s.try_borrow_mut() {
                    *slot = outer;
                }
            });
        }
    }
}

fn decode_error(e: postcard::Error) -> Error {
    Error::new(ErrorKind::Decode).with_message(message(e))
}

/// postcard's error text, or the [`fd`] adapter's reason when it refused.
fn message(e: postcard::Error) -> String {
    match REFUSAL.with(|m| m.take()) {
        Some(why) => why,
        None => e.to_string(),
    }
}

mod cut;
mod probe;

#[cfg_attr(loom, allow(unused_imports))]
pub(crate) use cut::decode_cut;

/// `#[serde(with = "multiproc::codec::fd")]` for a field holding an [`OwnedFd`]:
/// it travels as a real descriptor through multiproc's transports.
///
/// # Examples
///
/// ```
/// use std::os::fd::OwnedFd;
/// use serde::{Deserialize, Serialize};
///
/// # #[allow(dead_code)]
/// #[derive(Serialize, Deserialize)]
/// struct Handle {
///     #[serde(with = "multiproc::codec::fd")]
///     fd: OwnedFd,
/// }
///
/// let file = std::fs::File::open("/dev/null")?;
/// let encoded = multiproc::codec::encode(&Handle { fd: file.into() })?;
/// assert_eq!(encoded.fds.len(), 1); // the descriptor travels beside the bytes
/// let back: Handle = multiproc::codec::decode(&encoded.bytes, encoded.fds)?;
/// # drop(back.fd);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod fd {
    use super::*;
    use serde::{de, ser, Deserializer, Serializer};

    /// Serializes a duplicate of `fd` into the current encoding's side list.
    ///
    /// # Errors
    ///
    /// Fails outside [`encode`], or if `dup` fails.
    pub fn serialize<S: Serializer, F: AsFd>(fd: &F, s: S) -> Result<S::Ok, S::Error> {
        let dup = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| refused(format!("cannot duplicate a descriptor to send: {e}")))?;
        let index = SINK.with(|sink| {
            sink.borrow_mut().as_mut().map(|v| {
                v.push(dup);
                v.len() - 1
            })
        });
        match index.map(u32::try_from) {
            Some(Ok(i)) => s.serialize_u32(i),
            Some(Err(_)) => Err(refused("more than 2^32 descriptors in one value".into())),
            None => Err(refused(
                "a value that owns a file descriptor can only be sent through multiproc's own channels"
                    .into(),
            )),
        }
    }

    /// Takes the descriptor the encoded index refers to.
    ///
    /// # Errors
    ///
    /// Fails outside [`decode`] or if the descriptor did not arrive.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
        let i = <u32 as serde::Deserialize>::deserialize(d)? as usize;
        SOURCE
            .with(|src| {
                src.borrow_mut()
                    .as_mut()
                    .and_then(|v| v.get_mut(i).and_then(Option::take))
            })
            .ok_or_else(|| {
                WANTED.with(|w| w.set(true));
                let why = format!("file descriptor #{i} did not arrive with the message");
                REFUSAL.with(|m| m.set(Some(why.clone())));
                de::Error::custom(why)
            })
    }

    /// A serialization error saying `why`, kept for the codec's error message.
    fn refused<E: ser::Error>(why: String) -> E {
        REFUSAL.with(|m| m.set(Some(why.clone())));
        E::custom(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize)]
    struct WithFd {
        tag: u8,
        #[serde(with = "fd")]
        fd: OwnedFd,
    }

    #[test]
    fn fd_round_trip() {
        let (a, _b) = rustix::pipe::pipe().unwrap();
        let v = WithFd { tag: 9, fd: a };
        let e = encode(&v).unwrap();
        assert_eq!(e.fds.len(), 1);
        let back: WithFd = decode(&e.bytes, e.fds).unwrap();
        assert_eq!(back.tag, 9);
        assert!(rustix::fs::fstat(&back.fd).is_ok());
    }

    #[test]
    fn fd_outside_transport_is_refused() {
        let (a, _b) = rustix::pipe::pipe().unwrap();
        let v = WithFd { tag: 1, fd: a };
        assert!(postcard::to_allocvec(&v).is_err());
    }

    /// A `Serialize` that panics mid-encoding must not leave that encoding's
    /// descriptor list in place (a pool worker catches the panic and serves on).
    #[test]
    fn panic_in_serialize_restores_the_outer_list() {
        struct Boom;
        impl Serialize for Boom {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                panic!("boom")
            }
        }
        let (a, _b) = rustix::pipe::pipe().unwrap();
        let v = WithFd { tag: 1, fd: a };
        let r = std::panic::catch_unwind(|| encode(&(&v, Boom)));
        assert!(r.is_err());
        assert!(
            postcard::to_allocvec(&v).is_err(),
            "still refused outside encode"
        );
        let e = encode(&v).unwrap();
        assert_eq!(e.fds.len(), 1, "a fresh list, not the abandoned one");
    }

    #[test]
    fn missing_fd_is_a_decode_error() {
        let (a, _b) = rustix::pipe::pipe().unwrap();
        let e = encode(&WithFd { tag: 1, fd: a }).unwrap();
        let err = decode::<WithFd>(&e.bytes, Vec::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        // The adapter's reason, which postcard's own error does not carry.
        assert!(err.to_string().contains("#0 did not arrive"), "{err}");
        // Not left behind for the next, unrelated error.
        let other = decode::<String>(&[5, 0xff], Vec::new()).unwrap_err();
        assert!(!other.to_string().contains("did not arrive"), "{other}");
    }

    /// Refuses to serialize, with its own reason, below a few layers of structure.
    struct Refuses;

    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("cannot be pickled"))
        }
    }

    #[test]
    fn a_serialize_impls_own_error_keeps_its_text() {
        let mut out = vec![7];
        let nested = (1u8, vec![Some(("x", Refuses))]);
        let err = encode_into(&nested, &mut out).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
        assert!(err.to_string().contains("cannot be pickled"), "{err}");
        assert_eq!(out, [7], "a failed encoding leaves the buffer as it was");
    }

    /// Found by the `codec` fuzz target: a pipe end or a queue received from another
    /// process with a segment too small for its rings, or one whose second ring is
    /// misaligned, panicked the receiver while decoding (`Ring::open` read a control
    /// word before checking it lies in the segment).
    #[cfg(not(loom))]
    #[test]
    fn forged_pipe_and_queue_segments_are_decode_errors() {
        use crate::shm::SharedMemory;
        #[derive(Serialize)]
        struct ForgedPipe<'a> {
            mem: &'a SharedMemory,
            #[serde(with = "fd")]
            sock: OwnedFd,
            side: u8,
            duplex: bool,
            max_message: u64,
        }
        #[derive(Serialize)]
        struct ForgedQueue<'a> {
            mem: &'a SharedMemory,
            put_lock: &'a crate::Lock,
            get_lock: &'a crate::Lock,
            joinable: bool,
        }
        let lock = crate::Lock::new().unwrap();
        for len in [8, 16, 200, 1032, 2000] {
            let mem = SharedMemory::create(len).unwrap();
            for duplex in [false, true] {
                let (sock, _peer) = rustix::pipe::pipe().unwrap();
                let e = encode(&ForgedPipe {
                    mem: &mem,
                    sock,
                    side: 0,
                    duplex,
                    max_message: 1 << 20,
                })
                .unwrap();
                let err = decode::<crate::ipc::Connection>(&e.bytes, e.fds).unwrap_err();
                assert_eq!(
                    err.kind(),
                    ErrorKind::Decode,
                    "{len} bytes, duplex {duplex}"
                );
            }
            let e = encode(&ForgedQueue {
                mem: &mem,
                put_lock: &lock,
                get_lock: &lock,
                joinable: false,
            })
            .unwrap();
            let err = decode::<crate::Queue<u8>>(&e.bytes, e.fds).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode, "{len} bytes");
        }
    }

    /// `extend_small` appends exactly what `extend_from_slice` does, for every length
    /// (its word path writes 8 bytes and cuts back), after any prefix.
    #[test]
    fn extend_small_appends_like_extend_from_slice() {
        let data: Vec<u8> = (1..=20).collect();
        for before in [0usize, 1, 7, 8, 13] {
            for n in 0..=data.len() {
                let mut got: Vec<u8> = vec![0xaa; before];
                let mut want = got.clone();
                extend_small(&mut got, &data[..n]);
                want.extend_from_slice(&data[..n]);
                assert_eq!(got, want, "{before} bytes before, {n} appended");
            }
        }
    }

    /// An item that counts the side effects its `Serialize` takes.
    struct Counted<'a>(&'a std::cell::Cell<u32>, [u8; 100]);

    impl Serialize for Counted<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            if first_serialization() {
                self.0.set(self.0.get() + 1);
            }
            self.1.serialize(s)
        }
    }

    #[test]
    fn a_side_effect_happens_once_per_place_in_one_send_however_many_passes() {
        let n = std::cell::Cell::new(0);
        let v = (Counted(&n, [0; 100]), Counted(&n, [1; 100]));
        one_send(|| {
            // A try on the stack that stops inside the first item, then two whole passes.
            let mut small = [0u8; 64];
            assert!(encode_small(&v, &mut small).is_none());
            assert_eq!(n.get(), 1);
            encode(&v).unwrap();
            encoded_len_marked(&v, 1 << 20).unwrap();
        });
        assert_eq!(n.get(), 2, "one effect per item");
        // Outside a send every pass is a send of its own.
        encode(&v).unwrap();
        encode(&v).unwrap();
        assert_eq!(n.get(), 6);
    }

    proptest::proptest! {
        /// The codec's bytes are postcard's, whatever path `Append` takes.
        #[test]
        fn encoding_is_postcards(v: Vec<(u64, i16, String, u128)>) {
            let e = encode(&v).unwrap();
            proptest::prop_assert_eq!(e.bytes, postcard::to_allocvec(&v).unwrap());
        }

        /// The slice flavor writes postcard's bytes, and refuses (never
        /// truncates) a value that does not fit, at every buffer size.
        #[test]
        fn encoding_into_a_slice_is_postcards(v: Vec<(u64, i16, String)>, slack in 0usize..12) {
            let want = postcard::to_allocvec(&v).unwrap();
            let mut buf = vec![0xa5u8; want.len() + slack];
            proptest::prop_assert_eq!(encode_to_slice(&v, &mut buf), Some(want.len()));
            proptest::prop_assert_eq!(&buf[..want.len()], &want[..]);
            if !want.is_empty() {
                let mut short = vec![0u8; want.len() - 1];
                proptest::prop_assert_eq!(encode_to_slice(&v, &mut short), None);
            }
        }

        #[test]
        fn round_trips(v: Vec<(u64, String, Option<i32>)>) {
            let e = encode(&v).unwrap();
            let back: Vec<(u64, String, Option<i32>)> = decode(&e.bytes, e.fds).unwrap();
            proptest::prop_assert_eq!(back, v);
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = decode::<Vec<(u64, String)>>(&bytes, Vec::new());
        }
    }
}
