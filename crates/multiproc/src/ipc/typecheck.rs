//! The debug-build type check of [`Connection`](crate::ipc::Connection)'s typed
//! messages: sending `-1i64` and receiving it as `u64` is an error, not a number
//! (`1`: postcard zigzag-encodes `i64`; bincode gave `18446744073709551615`).
//!
//! The codec (postcard) carries no types, so the receiver cannot tell what was sent.
//! In debug builds (`cfg(debug_assertions)`), a typed send computes a 64-bit *shape
//! hash* of the value while encoding it (a [`Tee`] around the serializer, so the
//! value's `Serialize` runs once) and appends it to the message with an 8-byte
//! marker. The hash follows the serde data model (what each `serialize_*` call was:
//! `i64`, `str`, a sequence of `u8`, a struct of three fields…), not the Rust type
//! name, so types that serde encodes alike pass: `&str` and `String`, `&T`,
//! `Box<T>`, `Arc<T>` and `T`, a newtype and its field, a struct and a tuple of the
//! same fields, `HashMap` and `BTreeMap`, `Vec<u8>` and `serde_bytes`. The receiver
//! decodes through [`Traced`], which computes the same hash from what `T::deserialize`
//! asks the format for, and compares: `i64` vs `u64`, `String` vs `Vec<u8>`,
//! `(u8, u8)` vs `u8`, `f64` vs `f32` and `bool` vs `u8` differ.
//!
//! Both ends of a pipe run the same executable (a child of another build is refused
//! with [`ErrorKind::BinaryMismatch`](crate::ErrorKind::BinaryMismatch) before it
//! gets a connection), hence the same profile, so they agree on whether the trailer
//! is there. Release builds neither write nor check it.
//!
//! What is not checked: the element types of an empty sequence or map, and values
//! (the order of sequence elements and map entries does not count, so a `HashSet`
//! received in another iteration order still matches). A message sent with
//! `send_bytes` has no trailer and is decoded unchecked. A raw message that happens
//! to end with the 8-byte marker would be taken for a typed one by `recv::<T>` in a
//! debug build.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

use crate::codec;

/// Marks the end of a typed message in debug builds.
pub(crate) const MARKER: [u8; 8] = *b"\xa7mpTYPE\x5c";
/// Bytes a debug build appends to a typed message.
pub(crate) const TRAILER: usize = 16;

/// Appends the type trailer with the shape hash a [`Tee`] computed (debug builds
/// only; 0: not traced, the receiver then skips the check).
pub(crate) fn append(shape: u64, out: &mut Vec<u8>) {
    if cfg!(debug_assertions) {
        out.extend_from_slice(&shape.to_le_bytes());
        out.extend_from_slice(&MARKER);
    }
}

/// Encodes `value` appending to `out`, with the type trailer in debug builds.
///
/// # Errors
///
/// As [`codec::encode_into`].
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> crate::Result<Vec<std::os::fd::OwnedFd>> {
    if cfg!(debug_assertions) {
        let shape = Cell::new(0);
        let r = codec::encode_into(&Tee::new(value, &shape), out);
        append(shape.get(), out);
        r
    } else {
        codec::encode_into(value, out)
    }
}

/// Decodes a message that carries no descriptors, checking its type trailer if it
/// has one.
///
/// # Errors
///
/// [`ErrorKind::Decode`](crate::ErrorKind::Decode) if it does not decode as `T`, or
/// was sent as another type.
pub(crate) fn decode<T: de::DeserializeOwned>(msg: &[u8]) -> crate::Result<T> {
    let (len, sent) = split(msg);
    let shape = Cell::new(0);
    let v = codec::decode_seed(&msg[..len], Vec::new(), Traced::<T>::new(&shape))?;
    verify::<T>(shape.get(), sent)
        .map_err(|m| crate::Error::new(crate::ErrorKind::Decode).with_message(m))?;
    Ok(v)
}

/// Splits a received message into the length of its encoded value and the shape
/// hash its sender recorded (`None`: no trailer, or not traced).
pub(crate) fn split(msg: &[u8]) -> (usize, Option<u64>) {
    if !cfg!(debug_assertions) || msg.len() < TRAILER || !msg.ends_with(&MARKER) {
        return (msg.len(), None);
    }
    let n = msg.len() - TRAILER;
    let mut h = [0; 8];
    h.copy_from_slice(&msg[n..n + 8]);
    let h = u64::from_le_bytes(h);
    (n, (h != 0).then_some(h))
}

/// Checks the shape hash of what the receiver decoded (`got`, 0: not traced) against
/// the one its sender recorded.
///
/// # Errors
///
/// A message saying the types differ.
pub(crate) fn verify<T>(got: u64, sent: Option<u64>) -> Result<(), String> {
    match sent {
        Some(sent) if got != 0 && got != sent => Err(format!(
            "type mismatch: the message was sent as a value of another type than `{}` \
             (checked in debug builds only)",
            std::any::type_name::<T>()
        )),
        _ => Ok(()),
    }
}

/// One step of a 64-bit mix (splitmix64's finalizer over `a ^ b·φ`).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Kinds of the serde data model; the numbers only have to differ.
mod kind {
    pub(super) const BOOL: u64 = 1;
    pub(super) const I8: u64 = 2;
    pub(super) const I16: u64 = 3;
    pub(super) const I32: u64 = 4;
    pub(super) const I64: u64 = 5;
    pub(super) const I128: u64 = 6;
    pub(super) const U8: u64 = 7;
    pub(super) const U16: u64 = 8;
    pub(super) const U32: u64 = 9;
    pub(super) const U64: u64 = 10;
    pub(super) const U128: u64 = 11;
    pub(super) const F32: u64 = 12;
    pub(super) const F64: u64 = 13;
    pub(super) const CHAR: u64 = 14;
    pub(super) const STR: u64 = 15;
    pub(super) const NONE: u64 = 16;
    pub(super) const SOME: u64 = 17;
    pub(super) const UNIT: u64 = 18;
    pub(super) const VARIANT: u64 = 19;
    pub(super) const SEQ: u64 = 20;
    pub(super) const TUPLE: u64 = 21;
    pub(super) const MAP: u64 = 22;
}

/// Serializes `value` through the inner serializer, unchanged, and computes the
/// shape hash of what it serialized into `slot` (in the same pass, so a `Serialize`
/// impl with side effects runs once).
pub(crate) struct Tee<'s, T: ?Sized> {
    value: &'s T,
    slot: &'s Cell<u64>,
}

impl<'s, T: ?Sized> Tee<'s, T> {
    pub(crate) fn new(value: &'s T, slot: &'s Cell<u64>) -> Self {
        Tee { value, slot }
    }
}

impl<T: Serialize + ?Sized> Serialize for Tee<'_, T> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.slot.set(0);
        self.value.serialize(Ser {
            inner: s,
            slot: self.slot,
        })
    }
}

/// The serializer [`Tee`] hands to the value.
struct Ser<'s, S> {
    inner: S,
    slot: &'s Cell<u64>,
}

/// A compound value being serialized: sequences and maps sum their elements'
/// hashes (their order does not count), tuples, structs and variants chain them.
struct Compound<'s, C> {
    inner: C,
    slot: &'s Cell<u64>,
    ordered: bool,
    /// Unordered: the kind; ordered: the running hash.
    head: u64,
    sum: u64,
    key: u64,
}

impl<'s, S> Ser<'s, S> {}

macro_rules! ser_prim {
    ($($m:ident($t:ty) => $k:expr),* $(,)?) => {$(
        fn $m(self, v: $t) -> Result<S::Ok, S::Error> {
            let slot = self.slot;
            let r = self.inner.$m(v);
            slot.set(mix($k, 0));
        r
        }
    )*};
}

impl<'s, S: ser::Serializer> ser::Serializer for Ser<'s, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'s, S::SerializeSeq>;
    type SerializeTuple = Compound<'s, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'s, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'s, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'s, S::SerializeMap>;
    type SerializeStruct = Compound<'s, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'s, S::SerializeStructVariant>;

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }

    ser_prim!(
        serialize_bool(bool) => kind::BOOL,
        serialize_i8(i8) => kind::I8,
        serialize_i16(i16) => kind::I16,
        serialize_i32(i32) => kind::I32,
        serialize_i64(i64) => kind::I64,
        serialize_i128(i128) => kind::I128,
        serialize_u8(u8) => kind::U8,
        serialize_u16(u16) => kind::U16,
        serialize_u32(u32) => kind::U32,
        serialize_u64(u64) => kind::U64,
        serialize_u128(u128) => kind::U128,
        serialize_f32(f32) => kind::F32,
        serialize_f64(f64) => kind::F64,
        serialize_char(char) => kind::CHAR,
        serialize_str(&str) => kind::STR,
    );

    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        // The same as a sequence of `u8` (postcard encodes both alike).
        let h = bytes_hash(v.len());
        let slot = self.slot;
        let r = self.inner.serialize_bytes(v);
        slot.set(h);
        r
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        let slot = self.slot;
        let r = self.inner.serialize_none();
        slot.set(mix(kind::NONE, 0));
        r
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let child = Cell::new(0);
        let slot = self.slot;
        let r = self.inner.serialize_some(&Tee::new(value, &child));
        slot.set(mix(kind::SOME, child.get()));
        r
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        let slot = self.slot;
        let r = self.inner.serialize_unit();
        slot.set(mix(kind::UNIT, 0));
        r
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        let slot = self.slot;
        let r = self.inner.serialize_unit_struct(name);
        slot.set(mix(kind::UNIT, 0));
        r
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        let slot = self.slot;
        let r = self.inner.serialize_unit_variant(name, index, variant);
        slot.set(mix(variant_head(index), mix(kind::UNIT, 0)));
        r
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        // Transparent: a newtype matches its field.
        self.inner
            .serialize_newtype_struct(name, &Tee::new(value, self.slot))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let child = Cell::new(0);
        let slot = self.slot;
        let r =
            self.inner
                .serialize_newtype_variant(name, index, variant, &Tee::new(value, &child));
        slot.set(mix(variant_head(index), child.get()));
        r
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let c = self.inner.serialize_seq(len)?;
        Ok(compound(self.slot, c, false, kind::SEQ))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let c = self.inner.serialize_tuple(len)?;
        Ok(compound(self.slot, c, true, kind::TUPLE))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let c = self.inner.serialize_tuple_struct(name, len)?;
        Ok(compound(self.slot, c, true, kind::TUPLE))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let c = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(compound(self.slot, c, true, variant_head(index)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let c = self.inner.serialize_map(len)?;
        Ok(compound(self.slot, c, false, kind::MAP))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let c = self.inner.serialize_struct(name, len)?;
        Ok(compound(self.slot, c, true, kind::TUPLE))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let c = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(compound(self.slot, c, true, variant_head(index)))
    }
}

fn compound<C>(slot: &Cell<u64>, inner: C, ordered: bool, head: u64) -> Compound<'_, C> {
    Compound {
        inner,
        slot,
        ordered,
        head: if ordered { mix(head, 0) } else { head },
        sum: 0,
        key: 0,
    }
}

/// The hash of `n` bytes: a sequence of `n` `u8`s.
fn bytes_hash(n: usize) -> u64 {
    mix(kind::SEQ, mix(kind::U8, 0).wrapping_mul(n as u64))
}

/// The start of an enum variant's hash.
fn variant_head(index: u32) -> u64 {
    mix(kind::VARIANT, u64::from(index))
}

impl<C> Compound<'_, C> {
    /// Adds one element's (or field's) hash.
    fn add(&mut self, h: u64) {
        if self.ordered {
            self.head = mix(self.head, h);
        } else {
            self.sum = self.sum.wrapping_add(h);
        }
    }
    fn finish<R>(self, r: R) -> R {
        self.slot.set(if self.ordered {
            self.head
        } else {
            mix(self.head, self.sum)
        });
        r
    }
}

macro_rules! ser_compound {
    ($($tr:ident :: $m:ident ($($arg:ident : $argty:ty),*)),* $(,)?) => {$(
        impl<C: ser::$tr> ser::$tr for Compound<'_, C> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn $m<T: Serialize + ?Sized>(&mut self, $($arg: $argty,)* value: &T) -> Result<(), C::Error> {
                let child = Cell::new(0);
                self.inner.$m($($arg,)* &Tee::new(value, &child))?;
                self.add(child.get());
                Ok(())
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                // `end` consumes the inner compound; keep the hash first.
                let Compound { inner, slot, ordered, head, sum, key } = self;
                let me = Compound { inner: (), slot, ordered, head, sum, key };
                me.finish(inner.end())
            }
        }
    )*};
}

ser_compound!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(key: &'static str),
    SerializeStructVariant::serialize_field(key: &'static str),
);

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        let child = Cell::new(0);
        self.inner.serialize_key(&Tee::new(key, &child))?;
        self.key = child.get();
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let child = Cell::new(0);
        self.inner.serialize_value(&Tee::new(value, &child))?;
        self.add(mix(self.key, child.get()));
        Ok(())
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        let Compound {
            inner,
            slot,
            ordered,
            head,
            sum,
            key,
        } = self;
        let me = Compound {
            inner: (),
            slot,
            ordered,
            head,
            sum,
            key,
        };
        me.finish(inner.end())
    }
}

// ---- The receiving side: the same hash, from what `T::deserialize` asks for ----

/// Deserializes a `T` while computing the shape hash of what it asked the format
/// for; the hash lands in `slot` (0 if the format was asked for something the trace
/// does not follow, such as `deserialize_any`: the check is then skipped).
pub(crate) struct Traced<'s, T> {
    slot: &'s Cell<u64>,
    _t: PhantomData<fn() -> T>,
}

impl<'s, T> Traced<'s, T> {
    pub(crate) fn new(slot: &'s Cell<u64>) -> Self {
        Traced {
            slot,
            _t: PhantomData,
        }
    }
}

impl<T> Clone for Traced<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Traced<'_, T> {}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Traced<'_, T> {
    type Value = T;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        self.slot.set(0);
        T::deserialize(Tracer {
            inner: d,
            slot: self.slot,
        })
    }
}

/// A seed whose deserializer is traced into `slot`.
struct Seed<'s, S> {
    inner: S,
    slot: &'s Cell<u64>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Tracer {
            inner: d,
            slot: self.slot,
        })
    }
}

/// A deserializer that records the shape of each request in `slot`.
struct Tracer<'s, D> {
    inner: D,
    slot: &'s Cell<u64>,
}

/// What a wrapped visitor is for.
#[derive(Clone, Copy)]
enum Role {
    /// Bytes: hashed as a sequence of `u8` of their length.
    Bytes,
    /// An `Option`.
    Option,
    /// A newtype struct (transparent).
    Newtype,
    /// A sequence (`ordered == false`: element hashes summed) or a tuple, struct or
    /// variant (chained from `init`).
    Seq { ordered: bool, init: u64 },
    /// A map.
    Map,
    /// An enum.
    Enum,
    /// An enum's variant index, recorded in the slot as is.
    Index,
}

struct Vis<'s, V> {
    inner: V,
    slot: &'s Cell<u64>,
    role: Role,
}

macro_rules! prim {
    ($($m:ident => $k:expr),* $(,)?) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            self.slot.set(mix($k, 0));
            self.inner.$m(v)
        }
    )*};
}

impl<'s, D> Tracer<'s, D> {
    fn wrap<V>(&self, inner: V, role: Role) -> Vis<'s, V> {
        Vis {
            inner,
            slot: self.slot,
            role,
        }
    }
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Tracer<'_, D> {
    type Error = D::Error;

    prim!(
        deserialize_bool => kind::BOOL,
        deserialize_i8 => kind::I8,
        deserialize_i16 => kind::I16,
        deserialize_i32 => kind::I32,
        deserialize_i64 => kind::I64,
        deserialize_i128 => kind::I128,
        deserialize_u8 => kind::U8,
        deserialize_u16 => kind::U16,
        deserialize_u32 => kind::U32,
        deserialize_u64 => kind::U64,
        deserialize_u128 => kind::U128,
        deserialize_f32 => kind::F32,
        deserialize_f64 => kind::F64,
        deserialize_char => kind::CHAR,
        deserialize_str => kind::STR,
        deserialize_string => kind::STR,
        deserialize_unit => kind::UNIT,
    );

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(v)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_ignored_any(v)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_identifier(v)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, Role::Bytes);
        self.inner.deserialize_bytes(v)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, Role::Bytes);
        self.inner.deserialize_byte_buf(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, Role::Option);
        self.inner.deserialize_option(v)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.slot.set(mix(kind::UNIT, 0));
        self.inner.deserialize_unit_struct(name, v)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, Role::Newtype);
        self.inner.deserialize_newtype_struct(name, v)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        let role = Role::Seq {
            ordered: false,
            init: kind::SEQ,
        };
        let v = self.wrap(v, role);
        self.inner.deserialize_seq(v)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, TUPLE);
        self.inner.deserialize_tuple(len, v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, TUPLE);
        self.inner.deserialize_tuple_struct(name, len, v)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, Role::Map);
        self.inner.deserialize_map(v)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, TUPLE);
        self.inner.deserialize_struct(name, fields, v)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        let v = self.wrap(v, Role::Enum);
        self.inner.deserialize_enum(name, variants, v)
    }
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A tuple or struct: fields chained in order.
const TUPLE: Role = Role::Seq {
    ordered: true,
    init: kind::TUPLE,
};

macro_rules! forward {
    ($($m:ident($t:ty)),* $(,)?) => {$(
        fn $m<E: de::Error>(self, v: $t) -> Result<V::Value, E> {
            self.inner.$m(v)
        }
    )*};
}

impl<V> Vis<'_, V> {
    fn bytes(&self, n: usize) {
        if matches!(self.role, Role::Bytes) {
            self.slot
                .set(mix(kind::SEQ, mix(kind::U8, 0).wrapping_mul(n as u64)));
        }
    }
    fn index(&self, i: u64) {
        if matches!(self.role, Role::Index) {
            self.slot.set(i);
        }
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
    );

    fn visit_u32<E: de::Error>(self, v: u32) -> Result<V::Value, E> {
        self.index(u64::from(v));
        self.inner.visit_u32(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
        self.index(v);
        self.inner.visit_u64(v)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
        self.bytes(v.len());
        self.inner.visit_bytes(v)
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        self.bytes(v.len());
        self.inner.visit_borrowed_bytes(v)
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
        self.bytes(v.len());
        self.inner.visit_byte_buf(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        if matches!(self.role, Role::Option) {
            self.slot.set(mix(kind::NONE, 0));
        }
        self.inner.visit_none()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        if !matches!(self.role, Role::Option) {
            return self.inner.visit_some(d);
        }
        let child = Cell::new(0);
        let r = self.inner.visit_some(Tracer {
            inner: d,
            slot: &child,
        });
        self.slot.set(mix(kind::SOME, child.get()));
        r
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        if !matches!(self.role, Role::Newtype) {
            return self.inner.visit_newtype_struct(d);
        }
        self.inner.visit_newtype_struct(Tracer {
            inner: d,
            slot: self.slot,
        })
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let Role::Seq { ordered, init } = self.role else {
            return self.inner.visit_seq(seq);
        };
        let acc = Cell::new(if ordered { mix(init, 0) } else { 0 });
        let r = self.inner.visit_seq(SeqW {
            inner: seq,
            acc: &acc,
            ordered,
        });
        self.slot.set(if ordered {
            acc.get()
        } else {
            mix(init, acc.get())
        });
        r
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        if !matches!(self.role, Role::Map) {
            return self.inner.visit_map(map);
        }
        let acc = Cell::new(0);
        let key = Cell::new(0);
        let r = self.inner.visit_map(MapW {
            inner: map,
            acc: &acc,
            key: &key,
        });
        self.slot.set(mix(kind::MAP, acc.get()));
        r
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        if !matches!(self.role, Role::Enum) {
            return self.inner.visit_enum(data);
        }
        self.inner.visit_enum(EnumW {
            inner: data,
            slot: self.slot,
        })
    }
}

struct SeqW<'s, A> {
    inner: A,
    acc: &'s Cell<u64>,
    ordered: bool,
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for SeqW<'_, A> {
    type Error = A::Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let child = Cell::new(0);
        let r = self.inner.next_element_seed(Seed {
            inner: seed,
            slot: &child,
        })?;
        if r.is_some() {
            let h = child.get();
            self.acc.set(if self.ordered {
                mix(self.acc.get(), h)
            } else {
                self.acc.get().wrapping_add(h)
            });
        }
        Ok(r)
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct MapW<'s, A> {
    inner: A,
    acc: &'s Cell<u64>,
    key: &'s Cell<u64>,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for MapW<'_, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(Seed {
            inner: seed,
            slot: self.key,
        })
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let child = Cell::new(0);
        let r = self.inner.next_value_seed(Seed {
            inner: seed,
            slot: &child,
        })?;
        self.acc.set(
            self.acc
                .get()
                .wrapping_add(mix(self.key.get(), child.get())),
        );
        Ok(r)
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct EnumW<'s, A> {
    inner: A,
    slot: &'s Cell<u64>,
}

/// The variant identifier's seed: records the index it is given.
struct IndexSeed<'s, S> {
    inner: S,
    index: &'s Cell<u64>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for IndexSeed<'_, S> {
    type Value = S::Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(IndexDe {
            inner: d,
            index: self.index,
        })
    }
}

/// Passes every request through with a visitor that records an integer index.
struct IndexDe<'s, D> {
    inner: D,
    index: &'s Cell<u64>,
}

macro_rules! index_forward {
    ($($m:ident),* $(,)?) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            self.inner.$m(Vis { inner: v, slot: self.index, role: Role::Index })
        }
    )*};
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for IndexDe<'_, D> {
    type Error = D::Error;
    index_forward!(
        deserialize_any,
        deserialize_identifier,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_str,
    );
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u128 f32 f64 char string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum ignored_any
    }
}

impl<'de, 's, A: de::EnumAccess<'de>> de::EnumAccess<'de> for EnumW<'s, A> {
    type Error = A::Error;
    type Variant = VariantW<'s, A::Variant>;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let index = Cell::new(0);
        let (v, variant) = self.inner.variant_seed(IndexSeed {
            inner: seed,
            index: &index,
        })?;
        let head = mix(kind::VARIANT, index.get());
        Ok((
            v,
            VariantW {
                inner: variant,
                slot: self.slot,
                head,
            },
        ))
    }
}

struct VariantW<'s, A> {
    inner: A,
    slot: &'s Cell<u64>,
    head: u64,
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for VariantW<'_, A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.slot.set(mix(self.head, mix(kind::UNIT, 0)));
        self.inner.unit_variant()
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        let child = Cell::new(0);
        let r = self.inner.newtype_variant_seed(Seed {
            inner: seed,
            slot: &child,
        });
        self.slot.set(mix(self.head, child.get()));
        r
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, A::Error> {
        let v = Vis {
            inner: v,
            slot: self.slot,
            role: Role::Seq {
                ordered: true,
                init: self.head,
            },
        };
        self.inner.tuple_variant(len, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, A::Error> {
        let v = Vis {
            inner: v,
            slot: self.slot,
            role: Role::Seq {
                ordered: true,
                init: self.head,
            },
        };
        self.inner.struct_variant(fields, v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::sync::Arc;

    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use super::*;

    /// Sends `a`, receives a `B`: `Ok` if the check passes (decode errors panic).
    fn shape<A: Serialize>(a: &A) -> u64 {
        let slot = Cell::new(0);
        codec::encode(&Tee::new(a, &slot)).unwrap();
        assert_ne!(slot.get(), 0, "untraced");
        slot.get()
    }

    fn check<A: Serialize, B: DeserializeOwned>(a: A) -> Result<B, String> {
        let e = codec::encode(&a).unwrap();
        let plain = codec::encode(&Tee::new(&a, &Cell::new(0))).unwrap();
        assert_eq!(plain.bytes, e.bytes, "the tee changes nothing");
        let slot = Cell::new(0);
        let b = codec::decode_seed(&e.bytes, e.fds, Traced::<B>::new(&slot))
            .map_err(|e| format!("decode: {e}"))?;
        assert_ne!(slot.get(), 0, "untraced");
        verify::<B>(slot.get(), Some(shape(&a)))?;
        Ok(b)
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Meters(u64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct P {
        x: u8,
        y: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum E {
        A(u8),
        B(u8),
        C,
        D { x: i32, y: Option<String> },
        T(u8, u16),
    }

    #[test]
    fn serde_equivalent_types_pass() {
        assert_eq!(check::<_, String>("x").unwrap(), "x");
        assert_eq!(check::<_, u32>(&5u32).unwrap(), 5);
        assert_eq!(*check::<_, Arc<i64>>(Box::new(1i64)).unwrap(), 1);
        assert_eq!(check::<_, Vec<u8>>([3u8, 4].as_slice()).unwrap(), [3, 4]);
        assert_eq!(check::<_, u64>(Meters(3)).unwrap(), 3);
        assert_eq!(check::<_, Meters>(3u64).unwrap(), Meters(3));
        let p = P {
            x: 1,
            y: "a".into(),
        };
        assert_eq!(check::<_, (u8, String)>(&p).unwrap(), (1, "a".into()));
        let h: HashMap<String, Option<u8>> = [
            ("a".into(), None),
            ("b".into(), Some(2)),
            ("c".into(), Some(3)),
        ]
        .into();
        let b = check::<_, BTreeMap<String, Option<u8>>>(&h).unwrap();
        assert_eq!(b.len(), 3);
        let s: HashSet<Option<u8>> = [None, Some(1), Some(2)].into();
        assert_eq!(check::<_, HashSet<Option<u8>>>(&s).unwrap(), s);
        assert_eq!(check::<_, Option<String>>(None::<u8>).unwrap(), None);
        for e in [
            E::A(1),
            E::C,
            E::D {
                x: -1,
                y: Some("s".into()),
            },
            E::T(1, 2),
        ] {
            assert_eq!(check::<_, E>(&e).unwrap(), e);
        }
        assert_eq!(check::<_, [u16; 2]>((1u16, 2u16)).unwrap(), [1, 2]);
        assert_eq!(
            check::<_, std::time::Duration>(std::time::Duration::from_millis(5)).unwrap(),
            std::time::Duration::from_millis(5)
        );
    }

    #[test]
    fn different_types_fail() {
        // The examples: the codec alone gives Ok(1) (zigzag -1) and Ok(bytes).
        let e = check::<_, u64>(-1i64).unwrap_err();
        assert!(e.contains("type mismatch") && e.contains("`u64`"), "{e}");
        assert!(check::<_, Vec<u8>>("ab").is_err());
        assert!(check::<_, u8>((1u8, 2u8)).is_err());
        assert!(check::<_, f32>(1.0f64).is_err());
        assert!(check::<_, bool>(1u8).is_err());
        assert!(check::<_, Vec<u64>>(vec![1u32, 2]).is_err());
        assert!(check::<_, E>(E::B(1)).is_ok());
        assert!(check::<_, Option<u8>>(Some(1u16)).is_err());
        assert!(check::<_, (u16, u8)>((1u8, 2u16)).is_err());
        assert!(check::<_, E>((0u32, 5u16)).is_err());
        assert!(check::<_, i32>('x').is_err());
    }

    #[test]
    fn trailer_round_trip() {
        let mut buf = vec![1, 2, 3];
        append(shape(&7u16), &mut buf);
        let (n, h) = split(&buf);
        if cfg!(debug_assertions) {
            assert_eq!((n, h), (3, Some(shape(&7u16))));
        } else {
            assert_eq!((n, h), (3, None));
        }
        // No trailer: the whole message, unchecked.
        assert_eq!(split(b"plain bytes, and more bytes"), (27, None));
        assert!(verify::<u8>(5, None).is_ok());
        assert!(verify::<u8>(0, Some(5)).is_ok());
    }
}
