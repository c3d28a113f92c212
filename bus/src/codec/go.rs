//! A serde serializer that writes the exact bytes Go's vmihailenco/msgpack v4 `Marshal`
//! writes (non-compact mode): every integer in its type's fixed width (`i64` as `d3` + 8
//! bytes, `u64` `cf`, `u32` `ce`, `i32` `d2`, `u16` `cd`, `i16` `d1`, `u8` `cc`, `i8` `d0`),
//! `f64` `cb`, `f32` `ca`, strings as fixstr/`d9`/`da`/`db`, byte buffers as bin, `None`
//! as `c0`, structs as maps keyed by field name in declaration order. The msgpack timestamp
//! (`_ExtStruct` newtype, as rmp-serde spells extensions) is written as an extension.

use super::CodecError;
use rmp::encode as w;
use serde::ser::{self, Serialize};
use std::fmt::Display;

/// Encodes `value` exactly as Go's msgpack v4 encodes the corresponding Go value.
pub fn encode_go<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut ser = GoSerializer {
        out: Vec::with_capacity(64),
    };
    value
        .serialize(&mut ser)
        .map_err(|e| CodecError::Encode(e.0))?;
    Ok(ser.out)
}

#[derive(Debug)]
struct GoError(String);

impl Display for GoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GoError {}

impl ser::Error for GoError {
    fn custom<T: Display>(msg: T) -> Self {
        GoError(msg.to_string())
    }
}

fn io<E: Display>(e: E) -> GoError {
    GoError(e.to_string())
}

fn len32(len: usize) -> Result<u32, GoError> {
    u32::try_from(len).map_err(|_| GoError(format!("length {len} exceeds msgpack limits")))
}

struct GoSerializer {
    out: Vec<u8>,
}

/// Buffers the items of a sequence or map so the header can carry the exact count.
struct Compound<'a> {
    parent: &'a mut GoSerializer,
    body: GoSerializer,
    count: usize,
    map: bool,
    /// For enum variants `{variant: [...]}` / `{variant: {...}}`.
    variant: Option<&'static str>,
}

impl<'a> Compound<'a> {
    fn new(parent: &'a mut GoSerializer, map: bool, variant: Option<&'static str>) -> Self {
        Compound {
            parent,
            body: GoSerializer { out: Vec::new() },
            count: 0,
            map,
            variant,
        }
    }

    fn item<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), GoError> {
        v.serialize(&mut self.body)
    }

    fn finish(self) -> Result<(), GoError> {
        let out = &mut self.parent.out;
        if let Some(v) = self.variant {
            w::write_map_len(out, 1).map_err(io)?;
            w::write_str(out, v).map_err(io)?;
        }
        let n = len32(self.count)?;
        if self.map {
            w::write_map_len(out, n).map_err(io)?;
        } else {
            w::write_array_len(out, n).map_err(io)?;
        }
        out.extend_from_slice(&self.body.out);
        Ok(())
    }
}

impl<'a> ser::Serializer for &'a mut GoSerializer {
    type Ok = ();
    type Error = GoError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), GoError> {
        w::write_bool(&mut self.out, v).map_err(io)
    }
    fn serialize_i8(self, v: i8) -> Result<(), GoError> {
        w::write_i8(&mut self.out, v).map_err(io)
    }
    fn serialize_i16(self, v: i16) -> Result<(), GoError> {
        w::write_i16(&mut self.out, v).map_err(io)
    }
    fn serialize_i32(self, v: i32) -> Result<(), GoError> {
        w::write_i32(&mut self.out, v).map_err(io)
    }
    fn serialize_i64(self, v: i64) -> Result<(), GoError> {
        w::write_i64(&mut self.out, v).map_err(io)
    }
    fn serialize_u8(self, v: u8) -> Result<(), GoError> {
        w::write_u8(&mut self.out, v).map_err(io)
    }
    fn serialize_u16(self, v: u16) -> Result<(), GoError> {
        w::write_u16(&mut self.out, v).map_err(io)
    }
    fn serialize_u32(self, v: u32) -> Result<(), GoError> {
        w::write_u32(&mut self.out, v).map_err(io)
    }
    fn serialize_u64(self, v: u64) -> Result<(), GoError> {
        w::write_u64(&mut self.out, v).map_err(io)
    }
    fn serialize_f32(self, v: f32) -> Result<(), GoError> {
        w::write_f32(&mut self.out, v).map_err(io)
    }
    fn serialize_f64(self, v: f64) -> Result<(), GoError> {
        w::write_f64(&mut self.out, v).map_err(io)
    }
    fn serialize_char(self, v: char) -> Result<(), GoError> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), GoError> {
        w::write_str(&mut self.out, v).map_err(io)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), GoError> {
        w::write_bin(&mut self.out, v).map_err(io)
    }
    fn serialize_none(self) -> Result<(), GoError> {
        w::write_nil(&mut self.out).map_err(io)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), GoError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), GoError> {
        w::write_nil(&mut self.out).map_err(io)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), GoError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        v: &'static str,
    ) -> Result<(), GoError> {
        self.serialize_str(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<(), GoError> {
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            let mut body = GoSerializer { out: Vec::new() };
            v.serialize(&mut body)?;
            return write_ext(&mut self.out, &body.out);
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), GoError> {
        w::write_map_len(&mut self.out, 1).map_err(io)?;
        w::write_str(&mut self.out, variant).map_err(io)?;
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, GoError> {
        Ok(Compound::new(self, false, None))
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, GoError> {
        Ok(Compound::new(self, false, None))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, GoError> {
        Ok(Compound::new(self, false, None))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, GoError> {
        Ok(Compound::new(self, false, Some(variant)))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, GoError> {
        Ok(Compound::new(self, true, None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, GoError> {
        Ok(Compound::new(self, true, None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, GoError> {
        Ok(Compound::new(self, true, Some(variant)))
    }
}

/// `body` is the Go-encoding of `(i8, bytes)`: `92 d0 <type> c4 <len> <payload>`.
fn write_ext(out: &mut Vec<u8>, body: &[u8]) -> Result<(), GoError> {
    let bad = || GoError("extension must be an (i8, bytes) pair".into());
    let [0x92, 0xd0, ty, rest @ ..] = body else {
        return Err(bad());
    };
    let payload = match rest {
        [0xc4, n, p @ ..] if usize::from(*n) == p.len() => p,
        [0xc5, a, b, p @ ..] if usize::from(u16::from_be_bytes([*a, *b])) == p.len() => p,
        _ => return Err(bad()),
    };
    w::write_ext_meta(out, len32(payload.len())?, i8::from_be_bytes([*ty])).map_err(io)?;
    out.extend_from_slice(payload);
    Ok(())
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = GoError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), GoError> {
        self.count += 1;
        self.item(v)
    }
    fn end(self) -> Result<(), GoError> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = GoError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), GoError> {
        self.count += 1;
        self.item(v)
    }
    fn end(self) -> Result<(), GoError> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = GoError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), GoError> {
        self.count += 1;
        self.item(v)
    }
    fn end(self) -> Result<(), GoError> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = GoError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), GoError> {
        self.count += 1;
        self.item(v)
    }
    fn end(self) -> Result<(), GoError> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = GoError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), GoError> {
        self.count += 1;
        self.item(k)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), GoError> {
        self.item(v)
    }
    fn end(self) -> Result<(), GoError> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = GoError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), GoError> {
        self.count += 1;
        self.item(key)?;
        self.item(v)
    }
    fn end(self) -> Result<(), GoError> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = GoError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), GoError> {
        self.count += 1;
        self.item(key)?;
        self.item(v)
    }
    fn end(self) -> Result<(), GoError> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_their_go_fixed_width() {
        assert_eq!(encode_go(&1i64).unwrap(), [0xd3, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(encode_go(&1u64).unwrap(), [0xcf, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(encode_go(&1u32).unwrap(), [0xce, 0, 0, 0, 1]);
        assert_eq!(encode_go(&-1i32).unwrap(), [0xd2, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(encode_go(&1u8).unwrap(), [0xcc, 1]);
        assert_eq!(encode_go(&1.5f32).unwrap(), [0xca, 0x3f, 0xc0, 0, 0]);
    }

    #[test]
    fn strings_bytes_and_nil() {
        assert_eq!(encode_go("abc").unwrap(), [0xa3, b'a', b'b', b'c']);
        let long = "x".repeat(40);
        assert_eq!(&encode_go(&long).unwrap()[..2], &[0xd9, 40]);
        assert_eq!(
            encode_go(&serde_bytes::ByteBuf::from(vec![1u8])).unwrap(),
            [0xc4, 1, 1]
        );
        assert_eq!(encode_go(&Option::<u8>::None).unwrap(), [0xc0]);
        assert_eq!(encode_go(&Vec::<u8>::new()).unwrap(), [0x90]);
    }
}
