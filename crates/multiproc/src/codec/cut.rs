//! Decoding a message received apart from its large byte string (a queue item of
//! 1 MiB, say: see `ipc::frame::recv_split`): the string's bytes arrived in a
//! buffer of their own, and the value that asks for a byte string (or a string)
//! where they were is handed that buffer (`visit_byte_buf`, `visit_string`)
//! instead of a borrowed slice it would copy (serde_bytes' `ByteBuf` visitor copies
//! borrowed bytes: issue 14, 15 % of a 1 MiB item's CPU time).
//!
//! The rest of the message is read by postcard's own deserializer through a flavor
//! with a hole where the string was, and every deserializer postcard hands to the
//! value (for a struct's fields, a sequence's elements, an enum's variant...) is
//! wrapped, so the hand-over happens wherever the string is nested. If the value
//! reads the hole any other way (the mark was not where an honest sender puts it,
//! or a type reads a string it serialized as bytes as something else), the
//! message is put back together and decoded as usual: the result is always that
//! of decoding the whole message.

#![cfg_attr(loom, allow(dead_code))]

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::error::Result;

/// Decodes a value from `head` (the message without the byte string's bytes) and
/// `bulk` (those bytes), the string's length being at `at` in `head` and its bytes
/// having been at `bulk_at` (`at <= bulk_at <= head.len()`, else the whole message
/// cannot be rebuilt and this is a decode error). The result is that of decoding
/// the whole message, whatever the cut: one whose length is not postcard's varint
/// of `bulk.len()` ending at `bulk_at` is put back together and decoded as usual.
///
/// # Errors
///
/// [`ErrorKind::Decode`](crate::error::ErrorKind::Decode) if the message is not a
/// valid encoding of `T`.
pub(crate) fn decode_cut<T: DeserializeOwned>(
    head: &[u8],
    bulk: Vec<u8>,
    at: usize,
    bulk_at: usize,
) -> Result<T> {
    if at > bulk_at || bulk_at > head.len() {
        return Err(crate::error::Error::new(crate::error::ErrorKind::Decode)
            .with_message("a large byte string's place is outside its message"));
    }
    if !length_is(&head[at..bulk_at], bulk.len()) {
        return decode_whole(head, &bulk, bulk_at);
    }
    let st = State {
        pos: Cell::new(0),
        at,
        bulk_at,
        bulk: Cell::new(Some(bulk)),
        hole: Cell::new(false),
    };
    let mut d = postcard::Deserializer::from_flavor(Holed { head, st: &st });
    let r = T::deserialize(De {
        inner: &mut d,
        st: &st,
    });
    match r {
        Ok(v) => Ok(v),
        Err(_) if st.hole.get() => decode_whole(head, &st.bulk.take().unwrap_or_default(), bulk_at),
        Err(e) => Err(super::decode_error(e)),
    }
}

/// Puts the message back together and decodes it.
fn decode_whole<T: DeserializeOwned>(head: &[u8], bulk: &[u8], bulk_at: usize) -> Result<T> {
    let mut whole = Vec::with_capacity(head.len() + bulk.len());
    whole.extend_from_slice(&head[..bulk_at]);
    whole.extend_from_slice(bulk);
    whole.extend_from_slice(&head[bulk_at..]);
    super::decode(&whole, Vec::new())
}

/// Whether `bytes` are exactly a varint postcard reads as `len` (its
/// `try_take_varint_u64`: at most 10 bytes, the tenth at most 1).
fn length_is(bytes: &[u8], len: usize) -> bool {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate() {
        if i >= 10 {
            return false;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return i + 1 == bytes.len() && !(i == 9 && b > 1) && value == len as u64;
        }
    }
    false
}

/// What the flavor and the wrapped deserializers share.
struct State {
    /// The flavor's position in the head buffer.
    pos: Cell<usize>,
    /// Where the string's length is.
    at: usize,
    /// Where its bytes were (the hole).
    bulk_at: usize,
    /// The string's bytes, until handed over.
    bulk: Cell<Option<Vec<u8>>>,
    /// Set when something read at the hole before the hand-over.
    hole: Cell<bool>,
}

impl State {
    /// The string's bytes, if the reader is at its length and they were not taken.
    fn take_bulk(&self) -> Option<Vec<u8>> {
        if self.pos.get() != self.at {
            return None;
        }
        let bulk = self.bulk.take()?;
        self.pos.set(self.bulk_at);
        Some(bulk)
    }

    /// Checks that `n` bytes can be read at the flavor's position: not across the
    /// hole while the string is not handed over.
    fn readable(&self, n: usize) -> postcard::Result<usize> {
        let p = self.pos.get();
        let end = p
            .checked_add(n)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        if end > self.bulk_at && p <= self.bulk_at && self.untaken() {
            self.hole.set(true);
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        Ok(end)
    }

    fn untaken(&self) -> bool {
        let b = self.bulk.take();
        let some = b.is_some();
        self.bulk.set(b);
        some
    }
}

/// postcard's input: the head buffer, with a hole at `bulk_at`.
struct Holed<'de> {
    head: &'de [u8],
    st: &'de State,
}

impl<'de> postcard::de_flavors::Flavor<'de> for Holed<'de> {
    type Remainder = ();
    type Source = ();

    #[inline]
    fn pop(&mut self) -> postcard::Result<u8> {
        let end = self.st.readable(1)?;
        let b = *self
            .head
            .get(end - 1)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.st.pos.set(end);
        Ok(b)
    }

    #[inline]
    fn try_take_n(&mut self, ct: usize) -> postcard::Result<&'de [u8]> {
        let p = self.st.pos.get();
        let end = self.st.readable(ct)?;
        let s = self
            .head
            .get(p..end)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.st.pos.set(end);
        Ok(s)
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A deserializer that hands the string over at its place, and wraps what it gives
/// the value.
struct De<'s, D> {
    inner: D,
    st: &'s State,
}

/// A visitor (or an access, or a seed) whose deserializers are wrapped.
struct Wrap<'s, V> {
    inner: V,
    st: &'s State,
}

impl<'s, V> Wrap<'s, V> {
    fn new(inner: V, st: &'s State) -> Self {
        Wrap { inner, st }
    }
}

macro_rules! forward_de {
    ($($name:ident),* $(,)?) => {$(
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$name(Wrap::new(visitor, self.st))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<'_, D> {
    type Error = D::Error;

    forward_de!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        match self.st.take_bulk() {
            Some(bulk) => visitor.visit_byte_buf(bulk),
            None => self.inner.deserialize_bytes(Wrap::new(visitor, self.st)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        match self.st.take_bulk() {
            Some(bulk) => visitor.visit_byte_buf(bulk),
            None => self.inner.deserialize_byte_buf(Wrap::new(visitor, self.st)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        match self.st.take_bulk() {
            Some(bulk) => owned_string(bulk, visitor, self.st),
            None => self.inner.deserialize_str(Wrap::new(visitor, self.st)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        match self.st.take_bulk() {
            Some(bulk) => owned_string(bulk, visitor, self.st),
            None => self.inner.deserialize_string(Wrap::new(visitor, self.st)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_unit_struct(name, Wrap::new(visitor, self.st))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_newtype_struct(name, Wrap::new(visitor, self.st))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_tuple(len, Wrap::new(visitor, self.st))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_tuple_struct(name, len, Wrap::new(visitor, self.st))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_struct(name, fields, Wrap::new(visitor, self.st))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_enum(name, variants, Wrap::new(visitor, self.st))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Hands `bulk` over as a `String`; if it is not UTF-8, puts it back and fails,
/// so that the whole message is decoded for postcard's own error.
fn owned_string<'de, V: Visitor<'de>, E: de::Error>(
    bulk: Vec<u8>,
    visitor: V,
    st: &State,
) -> Result<V::Value, E> {
    match String::from_utf8(bulk) {
        Ok(s) => visitor.visit_string(s),
        Err(e) => {
            st.bulk.set(Some(e.into_bytes()));
            st.hole.set(true);
            Err(E::custom("invalid UTF-8"))
        }
    }
}

macro_rules! forward_visit {
    ($($name:ident($ty:ty)),* $(,)?) => {$(
        fn $name<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$name(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(De {
            inner: d,
            st: self.st,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(De {
            inner: d,
            st: self.st,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Wrap::new(a, self.st))
    }

    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Wrap::new(a, self.st))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Wrap::new(a, self.st))
    }
}

/// A seed whose deserializer is wrapped.
struct Seed<'s, S> {
    inner: S,
    st: &'s State,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(De {
            inner: d,
            st: self.st,
        })
    }
}

impl<'s, V> Wrap<'s, V> {
    fn seed<S>(&self, inner: S) -> Seed<'s, S> {
        Seed { inner, st: self.st }
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 's, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'s, A> {
    type Error = A::Error;
    type Variant = Wrap<'s, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let st = self.st;
        let (v, variant) = self.inner.variant_seed(Seed { inner: seed, st })?;
        Ok((v, Wrap::new(variant, st)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, Wrap::new(visitor, self.st))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner
            .struct_variant(fields, Wrap::new(visitor, self.st))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use serde_bytes::ByteBuf;

    /// A byte string that remembers whether it was handed its buffer.
    #[derive(Debug, PartialEq)]
    struct Owned(Vec<u8>, bool);

    impl<'de> Deserialize<'de> for Owned {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Owned, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Owned;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Owned, E> {
                    Ok(Owned(v.to_vec(), false))
                }
                fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Owned, E> {
                    Ok(Owned(v, true))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Item {
        A(u8, ByteBuf),
        B {
            s: String,
            o: Option<Vec<(u16, ByteBuf)>>,
        },
    }

    /// The head, bulk and cut of `value`'s encoding, cut where an honest sender
    /// marks it.
    fn cut_of<T: Serialize>(value: &T) -> (Vec<u8>, Vec<u8>, usize, usize) {
        let whole = crate::codec::encode(value).unwrap().bytes;
        let (len, mark, _) = crate::codec::encoded_len_marked(value, 1000).unwrap();
        assert_eq!(len, whole.len());
        let at = mark.expect("marked");
        let mut bulk_at = at;
        while whole[bulk_at] & 0x80 != 0 {
            bulk_at += 1;
        }
        bulk_at += 1;
        let n = whole.len() - bulk_at;
        let blen = (0..)
            .find(|&l| length_is(&whole[at..bulk_at], l))
            .filter(|&l| l <= n)
            .unwrap();
        let head = [&whole[..bulk_at], &whole[bulk_at + blen..]].concat();
        (head, whole[bulk_at..bulk_at + blen].to_vec(), at, bulk_at)
    }

    /// Issue 14: the byte string at the cut is handed to the value (no copy), at
    /// the top level and nested, and strings are handed over too.
    #[test]
    fn the_string_at_the_cut_is_handed_over() {
        let v = (7u32, ByteBuf::from(vec![3u8; 5000]), "tail".to_string());
        let (head, bulk, at, bulk_at) = cut_of(&v);
        let got: (u32, Owned, String) = decode_cut(&head, bulk, at, bulk_at).unwrap();
        assert_eq!(got, (7, Owned(vec![3u8; 5000], true), "tail".into()));

        for item in [
            Item::A(1, ByteBuf::from(vec![9u8; 3000])),
            Item::B {
                s: "x".repeat(2000),
                o: None,
            },
            Item::B {
                s: "y".into(),
                o: Some(vec![
                    (1, ByteBuf::new()),
                    (2, ByteBuf::from(vec![4u8; 4000])),
                ]),
            },
        ] {
            let (head, bulk, at, bulk_at) = cut_of(&item);
            let got: Item = decode_cut(&head, bulk, at, bulk_at).unwrap();
            assert_eq!(got, item);
        }
        // A string that is not UTF-8 at the cut: postcard's own error.
        let (head, bulk, at, bulk_at) = cut_of(&ByteBuf::from(vec![0xffu8; 2000]));
        let err = decode_cut::<String>(&head, bulk, at, bulk_at).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Decode);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the cut (an honest one or not), the result is that of
        /// decoding the whole message.
        #[test]
        fn any_cut_decodes_as_the_whole(
            v in proptest::collection::vec(
                (proptest::prelude::any::<u8>(),
                 proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                 "[a-z\u{e9}]{0,12}",
                 proptest::option::of(proptest::prelude::any::<u16>())),
                0..6),
            a in 0usize..2000, b in 0usize..2000, c in 0usize..2000,
        ) {
            let v: Vec<_> = v.into_iter().map(|(x, b, s, o)| (x, ByteBuf::from(b), s, o)).collect();
            let whole = crate::codec::encode(&v).unwrap().bytes;
            let mut cuts = [a % (whole.len() + 1), b % (whole.len() + 1), c % (whole.len() + 1)];
            cuts.sort_unstable();
            let [a, b, c] = cuts;
            let head = [&whole[..b], &whole[c..]].concat();
            let want = crate::codec::decode::<Vec<(u8, ByteBuf, String, Option<u16>)>>(&whole, Vec::new()).ok();
            let got = decode_cut::<Vec<(u8, ByteBuf, String, Option<u16>)>>(&head, whole[b..c].to_vec(), a, b).ok();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
