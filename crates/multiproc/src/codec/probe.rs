//! A serializer that writes nothing and keeps the text of the first custom error, for
//! the encode error path: postcard reports a `Serialize` impl's own error (`"cannot be
//! pickled"`) as a bare `SerdeSerCustom`, so the codec serializes the value again
//! through this probe to recover what the impl said.

use std::fmt;

use serde::ser::{self, Serialize};

/// Serializes `value` through the probe: the message of the custom error it raises,
/// if any.
pub(super) fn custom_message<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    value.serialize(Probe).err().map(|e| e.0)
}

#[derive(Debug)]
struct Probe;

#[derive(Debug)]
struct Custom(String);

impl fmt::Display for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Custom {}

impl ser::Error for Custom {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Custom(msg.to_string())
    }
}

type R = Result<(), Custom>;

/// The scalar methods: accept and discard.
macro_rules! accept {
    ($($name:ident($($ty:ty)?)),* $(,)?) => {
        $(fn $name(self $(, _: $ty)?) -> R { Ok(()) })*
    };
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = Custom;
    type SerializeSeq = Probe;
    type SerializeTuple = Probe;
    type SerializeTupleStruct = Probe;
    type SerializeTupleVariant = Probe;
    type SerializeMap = Probe;
    type SerializeStruct = Probe;
    type SerializeStructVariant = Probe;

    accept!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        v.serialize(Probe)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
        v.serialize(Probe)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> R {
        v.serialize(Probe)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Probe, Custom> {
        Ok(Probe)
    }
    fn serialize_tuple(self, _: usize) -> Result<Probe, Custom> {
        Ok(Probe)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Probe, Custom> {
        Ok(Probe)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Probe, Custom> {
        Ok(Probe)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Probe, Custom> {
        Ok(Probe)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Probe, Custom> {
        Ok(Probe)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Probe, Custom> {
        Ok(Probe)
    }
}

/// The compound methods: serialize each part through the probe.
macro_rules! parts {
    ($($trait:ident :: $method:ident ($($key:ty),*)),* $(,)?) => {$(
        impl ser::$trait for Probe {
            type Ok = ();
            type Error = Custom;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $key,)* v: &T) -> R {
                v.serialize(Probe)
            }
            fn end(self) -> R {
                Ok(())
            }
        }
    )*};
}

parts!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

impl ser::SerializeMap for Probe {
    type Ok = ();
    type Error = Custom;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
        k.serialize(Probe)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        v.serialize(Probe)
    }
    fn end(self) -> R {
        Ok(())
    }
}
