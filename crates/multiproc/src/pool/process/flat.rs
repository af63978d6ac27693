//! Chunks of plain numbers without postcard's per-item calls: a `map` over `u64`s
//! spent most of its CPU encoding and decoding them (issue 11).
//!
//! A chunk's items and values travel as postcard encodes a sequence (its length,
//! then each item). When every item serializes as one number or `bool` (or a
//! newtype around one), [`encode`] writes exactly postcard's bytes for them with
//! the writes inlined into one loop (postcard called a `Serialize` function and a
//! flavor per item: about 4 ns of CPU per `u64`, on each side of the socket), and
//! [`decode`] reads them back the same way, with postcard's checks (varint lengths,
//! the last byte's range, a `bool`'s byte, the visitor's range check). Anything
//! else (a string, an `Option`, a struct, an `i128`) makes them give up, and the
//! caller uses the codec, which handles everything: the result is the same bytes
//! and values either way, only faster for numbers.
//!
//! Only types without drop glue are tried: a value that owns a descriptor or a
//! manager's object (whose `Serialize` takes an effect, see
//! [`codec::first_serialization`](crate::codec::first_serialization)) needs drop,
//! and goes through the codec alone, so that an attempt here never serializes it
//! once more.

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible};
use serde::{Serialize, Serializer};

/// Why the fast path gave up: the caller falls back to the codec.
#[derive(Debug)]
pub(crate) struct NotFlat;

impl fmt::Display for NotFlat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a sequence of plain numbers")
    }
}

impl std::error::Error for NotFlat {}

impl ser::Error for NotFlat {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotFlat
    }
}

impl de::Error for NotFlat {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotFlat
    }
}

/// Appends postcard's encoding of `items` (as a sequence) to `out` and returns
/// `true`, if each item serializes as a plain number, a `bool`, or a newtype around
/// one; otherwise `out` is as it was and the caller must use the codec.
pub(crate) fn encode<A: Serialize>(items: &[A], out: &mut Vec<u8>) -> bool {
    if std::mem::needs_drop::<A>() {
        return false;
    }
    let start = out.len();
    out.reserve(10 + std::mem::size_of_val(items));
    put_varint(out, items.len() as u64);
    // Block by block, into room made beforehand: the writer's slice and position
    // stay in registers, where a `Vec`'s length and capacity went through memory
    // on every item.
    let mut at = out.len();
    for block in items.chunks(BLOCK) {
        out.resize(at + block.len() * ITEM_MAX + 8, 0);
        let mut w = Writer {
            buf: &mut out[..],
            at,
        };
        if !block.iter().all(|item| item.serialize(&mut w).is_ok()) {
            out.truncate(start);
            return false;
        }
        at = w.at;
    }
    out.truncate(at);
    true
}

/// Items written per block by [`encode`].
const BLOCK: usize = 256;
/// The most bytes one item takes: a `u64`'s varint (an `f64` takes 8).
const ITEM_MAX: usize = 10;

/// Decodes a postcard sequence of plain numbers (or `bool`s, or newtypes around
/// one) at the start of `bytes`, appending them to `out`; returns the number of
/// bytes read. `None` if the bytes are not such a sequence of at most `max` items
/// (a type that is not a plain number, bytes postcard would refuse, a longer
/// sequence): then `out` is as it was and the caller decodes with the codec,
/// which reports what is wrong.
pub(crate) fn decode<R: DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    out: &mut Vec<R>,
) -> Option<usize> {
    if std::mem::needs_drop::<R>() {
        return None;
    }
    let start = out.len();
    let mut r = Reader { bytes, at: 0 };
    let len = r.varint(10, 1).ok()?;
    // Every item takes at least one byte: a longer count is not worth a reservation.
    let len = usize::try_from(len).ok().filter(|&n| n <= max)?;
    if len > bytes.len() {
        return None;
    }
    out.reserve(len);
    for _ in 0..len {
        match R::deserialize(&mut r) {
            Ok(v) => out.push(v),
            Err(NotFlat) => {
                out.truncate(start);
                return None;
            }
        }
    }
    Some(r.at)
}

/// Appends `v` as a postcard varint.
#[inline(always)]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    if v < 1 << 56 {
        // At most 8 bytes: built in a register and stored as one word (the
        // bytes after the varint are cut off again).
        let mut w = 0u64;
        let mut n = 0;
        while v >= 0x80 {
            w |= ((v & 0x7f) | 0x80) << (8 * n);
            v >>= 7;
            n += 1;
        }
        w |= v << (8 * n);
        let len = out.len() + n + 1;
        out.extend_from_slice(&w.to_le_bytes());
        out.truncate(len);
        return;
    }
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes an item at `at` of `buf`, which has room for [`ITEM_MAX`] bytes and 8
/// more there.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) -> Result<(), NotFlat> {
        *self.buf.get_mut(self.at).ok_or(NotFlat)? = b;
        self.at += 1;
        Ok(())
    }

    #[inline(always)]
    fn word(&mut self, w: u64, len: usize) -> Result<(), NotFlat> {
        self.buf
            .get_mut(self.at..self.at + 8)
            .ok_or(NotFlat)?
            .copy_from_slice(&w.to_le_bytes());
        self.at += len;
        Ok(())
    }

    /// A varint, as [`put_varint`].
    #[inline(always)]
    fn varint(&mut self, mut v: u64) -> Result<(), NotFlat> {
        if v < 0x80 {
            return self.byte(v as u8);
        }
        if v < 1 << 56 {
            let mut w = 0u64;
            let mut n = 0;
            while v >= 0x80 {
                w |= ((v & 0x7f) | 0x80) << (8 * n);
                v >>= 7;
                n += 1;
            }
            w |= v << (8 * n);
            return self.word(w, n + 1);
        }
        while v >= 0x80 {
            self.byte(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.byte(v as u8)
    }
}

macro_rules! not_flat {
    ($($name:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(
            #[inline]
            fn $name(self, $(_: $arg),*) -> Result<$ret, NotFlat> {
                Err(NotFlat)
            }
        )*
    };
}

impl Serializer for &mut Writer<'_> {
    type Ok = ();
    type Error = NotFlat;
    type SerializeSeq = Impossible<(), NotFlat>;
    type SerializeTuple = Impossible<(), NotFlat>;
    type SerializeTupleStruct = Impossible<(), NotFlat>;
    type SerializeTupleVariant = Impossible<(), NotFlat>;
    type SerializeMap = Impossible<(), NotFlat>;
    type SerializeStruct = Impossible<(), NotFlat>;
    type SerializeStructVariant = Impossible<(), NotFlat>;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline(always)]
    fn serialize_bool(self, v: bool) -> Result<(), NotFlat> {
        self.byte(u8::from(v))
    }

    #[inline(always)]
    fn serialize_i8(self, v: i8) -> Result<(), NotFlat> {
        self.byte(v as u8)
    }

    #[inline(always)]
    fn serialize_i16(self, v: i16) -> Result<(), NotFlat> {
        self.varint(u64::from(((v << 1) ^ (v >> 15)) as u16))
    }

    #[inline(always)]
    fn serialize_i32(self, v: i32) -> Result<(), NotFlat> {
        self.varint(u64::from(((v << 1) ^ (v >> 31)) as u32))
    }

    #[inline(always)]
    fn serialize_i64(self, v: i64) -> Result<(), NotFlat> {
        self.varint(((v << 1) ^ (v >> 63)) as u64)
    }

    #[inline(always)]
    fn serialize_u8(self, v: u8) -> Result<(), NotFlat> {
        self.byte(v)
    }

    #[inline(always)]
    fn serialize_u16(self, v: u16) -> Result<(), NotFlat> {
        self.varint(u64::from(v))
    }

    #[inline(always)]
    fn serialize_u32(self, v: u32) -> Result<(), NotFlat> {
        self.varint(u64::from(v))
    }

    #[inline(always)]
    fn serialize_u64(self, v: u64) -> Result<(), NotFlat> {
        self.varint(v)
    }

    #[inline(always)]
    fn serialize_f32(self, v: f32) -> Result<(), NotFlat> {
        self.word(u64::from(v.to_bits()), 4)
    }

    #[inline(always)]
    fn serialize_f64(self, v: f64) -> Result<(), NotFlat> {
        self.word(v.to_bits(), 8)
    }

    #[inline(always)]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotFlat> {
        value.serialize(self)
    }

    not_flat! {
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), NotFlat> {
        Err(NotFlat)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotFlat> {
        Err(NotFlat)
    }
}

/// Reads plain numbers as postcard's deserializer does.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    #[inline(always)]
    fn byte(&mut self) -> Result<u8, NotFlat> {
        let b = *self.bytes.get(self.at).ok_or(NotFlat)?;
        self.at += 1;
        Ok(b)
    }

    /// A varint of at most `max` bytes whose last byte, if it is the `max`th, is at
    /// most `last` (postcard's `try_take_varint_*`). (A branch-free read of up to 8
    /// bytes as one word measured slower: the loop's branches are predicted.)
    #[inline(always)]
    fn varint(&mut self, max: usize, last: u8) -> Result<u64, NotFlat> {
        let b = self.byte()?;
        if b < 0x80 {
            return Ok(u64::from(b));
        }
        let mut out = u64::from(b & 0x7f);
        for i in 1..max {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == max - 1 && b > last {
                    return Err(NotFlat);
                }
                return Ok(out);
            }
        }
        Err(NotFlat)
    }

    #[inline(always)]
    fn word<const N: usize>(&mut self) -> Result<[u8; N], NotFlat> {
        let end = self.at.checked_add(N).ok_or(NotFlat)?;
        let mut w = [0u8; N];
        w.copy_from_slice(self.bytes.get(self.at..end).ok_or(NotFlat)?);
        self.at = end;
        Ok(w)
    }
}

macro_rules! not_flat_de {
    ($($name:ident($($arg:ty),*);)*) => {
        $(
            fn $name<V: Visitor<'de>>(self, $(_: $arg,)* _: V) -> Result<V::Value, NotFlat> {
                Err(NotFlat)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut Reader<'_> {
    type Error = NotFlat;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline(always)]
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        match self.byte()? {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            _ => Err(NotFlat),
        }
    }

    #[inline(always)]
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        v.visit_i8(self.byte()? as i8)
    }

    #[inline(always)]
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        let z = self.varint(3, 3)? as u16;
        v.visit_i16((z >> 1) as i16 ^ -((z & 1) as i16))
    }

    #[inline(always)]
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        let z = self.varint(5, 15)? as u32;
        v.visit_i32((z >> 1) as i32 ^ -((z & 1) as i32))
    }

    #[inline(always)]
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        let z = self.varint(10, 1)?;
        v.visit_i64((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    #[inline(always)]
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        v.visit_u8(self.byte()?)
    }

    #[inline(always)]
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        v.visit_u16(self.varint(3, 3)? as u16)
    }

    #[inline(always)]
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        v.visit_u32(self.varint(5, 15)? as u32)
    }

    #[inline(always)]
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        v.visit_u64(self.varint(10, 1)?)
    }

    #[inline(always)]
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        v.visit_f32(f32::from_bits(u32::from_le_bytes(self.word()?)))
    }

    #[inline(always)]
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFlat> {
        v.visit_f64(f64::from_bits(u64::from_le_bytes(self.word()?)))
    }

    #[inline(always)]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, NotFlat> {
        v.visit_newtype_struct(self)
    }

    not_flat_de! {
        deserialize_any();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(&'static str);
        deserialize_seq();
        deserialize_tuple(usize);
        deserialize_tuple_struct(&'static str, usize);
        deserialize_map();
        deserialize_struct(&'static str, &'static [&'static str]);
        deserialize_enum(&'static str, &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;
    use serde::Deserialize;

    fn both<T>(items: &[T])
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let want = codec::encode(items).unwrap().bytes;
        let mut got = vec![0xaa];
        assert!(encode(items, &mut got), "{items:?}");
        assert_eq!(got[1..], want[..], "{items:?}");
        let mut back: Vec<T> = Vec::new();
        let mut tail = want.clone();
        tail.extend_from_slice(b"rest");
        assert_eq!(decode(&tail, items.len(), &mut back), Some(want.len()));
        assert_eq!(back, items);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Id(u32);

    proptest! {
        /// The bytes are postcard's, and read back to the same values, for every
        /// type the fast path takes.
        #[test]
        fn numbers_encode_as_postcard_does(
            u in proptest::collection::vec(any::<u64>(), 0..40),
            i in proptest::collection::vec(any::<i64>(), 0..40),
            small in proptest::collection::vec(any::<(u8, i8, u16, i16, u32, i32, bool)>(), 0..40),
            f in proptest::collection::vec(any::<f64>().prop_filter("NaN", |x| !x.is_nan()), 0..40),
            g in proptest::collection::vec(any::<f32>().prop_filter("NaN", |x| !x.is_nan()), 0..40),
        ) {
            both(&u);
            both(&u.iter().map(|&x| x as usize).collect::<Vec<_>>());
            both(&u.iter().map(|&x| x >> (x % 64)).collect::<Vec<_>>());
            both(&i);
            both(&i.iter().map(|&x| x as isize).collect::<Vec<_>>());
            both(&small.iter().map(|s| s.0).collect::<Vec<_>>());
            both(&small.iter().map(|s| s.1).collect::<Vec<_>>());
            both(&small.iter().map(|s| s.2).collect::<Vec<_>>());
            both(&small.iter().map(|s| s.3).collect::<Vec<_>>());
            both(&small.iter().map(|s| s.4).collect::<Vec<_>>());
            both(&small.iter().map(|s| s.5).collect::<Vec<_>>());
            both(&small.iter().map(|s| s.6).collect::<Vec<_>>());
            both(&small.iter().map(|s| Id(s.4)).collect::<Vec<_>>());
            both(&f);
            both(&g);
        }

        /// Whatever the bytes, decoding gives up or agrees with postcard: same
        /// values, same length read, never a value postcard would refuse.
        #[test]
        fn decoding_any_bytes_agrees_with_postcard(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            fn check<T: DeserializeOwned + PartialEq + fmt::Debug>(bytes: &[u8]) {
                let mut got: Vec<T> = Vec::new();
                if let Some(n) = decode(bytes, usize::MAX, &mut got) {
                    let (want, rest) = postcard::take_from_bytes::<Vec<T>>(bytes).unwrap();
                    assert_eq!(got, want);
                    assert_eq!(bytes.len() - rest.len(), n);
                } else {
                    assert!(got.is_empty());
                }
            }
            check::<u8>(&bytes);
            check::<i8>(&bytes);
            check::<u16>(&bytes);
            check::<i16>(&bytes);
            check::<u32>(&bytes);
            check::<i32>(&bytes);
            check::<u64>(&bytes);
            check::<i64>(&bytes);
            check::<bool>(&bytes);
            check::<Id>(&bytes);
        }
    }

    #[test]
    fn other_types_are_left_to_the_codec() {
        let mut out = vec![1, 2];
        assert!(!encode(&["a".to_string()], &mut out));
        assert!(!encode(&[Some(1u8)], &mut out));
        assert!(!encode(&[(1u8, 2u8)], &mut out));
        assert!(!encode(&[1u128], &mut out));
        assert!(!encode(&[vec![1u8]], &mut out));
        assert_eq!(out, [1, 2]);
        let bytes = codec::encode(&vec![(1u8, 2u8)]).unwrap().bytes;
        let mut back: Vec<(u8, u8)> = vec![(9, 9)];
        assert_eq!(decode(&bytes, 10, &mut back), None);
        assert_eq!(back, [(9, 9)]);
        // More items than allowed, or than there are bytes for.
        let bytes = codec::encode(&vec![1u64, 2, 3]).unwrap().bytes;
        let mut back: Vec<u64> = Vec::new();
        assert_eq!(decode(&bytes, 2, &mut back), None);
        assert_eq!(decode(&bytes[..3], 3, &mut back), None);
        assert!(back.is_empty());
        // A varint too long for a u16, and a u64 out of a u32's range.
        let bytes = codec::encode(&vec![70_000u32]).unwrap().bytes;
        let mut back: Vec<u16> = Vec::new();
        assert_eq!(decode(&bytes, 10, &mut back), None);
        let bytes = codec::encode(&vec![1u64 << 40]).unwrap().bytes;
        let mut back: Vec<u32> = Vec::new();
        assert_eq!(decode(&bytes, 10, &mut back), None);
        assert!(postcard::from_bytes::<Vec<u32>>(&bytes).is_err());
    }
}
