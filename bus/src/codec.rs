//! msgpack encoding of arguments, results and wire structures.
//!
//! - [`encode`]: compact (rmp-serde, structs as maps keyed by field name): what we send.
//! - [`encode_go`]: byte-exact Go vmihailenco/msgpack v4 (`int` as `d3`+8 bytes and so on),
//!   for golden tests and for talking to peers that compare bytes.
//! - [`decode`]: lenient: integers of any width into any integer or float type, structs as
//!   maps or arrays.
//!
//! The `encode_arg`/`decode_arg`/`encode_reply`/`decode_data`/`encode_value` functions are
//! what `#[object]`-generated code calls.

mod go;
pub mod scan;

pub use go::encode_go;

use crate::error::{ErrorCode, RemoteError};
use crate::object::{DispatchError, Reply};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;

/// msgpack `nil`.
pub const NIL: u8 = 0xc0;

/// A value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Encoding failed (e.g. a map with non-string keys the format cannot express).
    #[error("encoding msgpack: {0}")]
    Encode(String),
    /// The bytes are not the expected msgpack value.
    #[error("decoding msgpack: {0}")]
    Decode(String),
}

impl From<CodecError> for RemoteError {
    fn from(e: CodecError) -> Self {
        RemoteError::decode(e.to_string())
    }
}

/// Compact msgpack with structs as maps (what rbus sends; Go decodes it).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_sized(value, 64)
}

/// [`encode`] into a buffer of `capacity` bytes first, for a caller that knows about how
/// large the value encodes (a request, a reply), so that it is not grown on the way.
pub fn encode_sized<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut buf = Vec::with_capacity(capacity);
    let mut ser = rmp_serde::Serializer::new(&mut buf).with_struct_map();
    value
        .serialize(&mut ser)
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(buf)
}

/// Decodes one msgpack value. Empty input decodes as `nil` (so `()` and `Option` work).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let bytes = if bytes.is_empty() { &[NIL][..] } else { bytes };
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}

/// [`decode`] into a value that borrows from `bytes` (its strings, where it asks to).
pub fn decode_borrowed<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let bytes = if bytes.is_empty() { &[NIL][..] } else { bytes };
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}

/// Encodes one argument into its `Inputs` item.
pub fn encode_arg<T: Serialize + ?Sized>(value: &T) -> Result<ByteBuf, RemoteError> {
    encode(value)
        .map(ByteBuf::from)
        .map_err(|e| RemoteError::decode(e.to_string()))
}

/// Encodes a value (an event, a result) into msgpack bytes.
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RemoteError> {
    encode(value).map_err(|e| RemoteError::decode(e.to_string()))
}

/// Decodes argument `index` of a request into the parameter type.
pub fn decode_arg<T: DeserializeOwned>(
    inputs: &[ByteBuf],
    index: usize,
) -> Result<T, DispatchError> {
    let Some(item) = inputs.get(index) else {
        return Err(DispatchError::Arity {
            expected: index + 1,
            got: inputs.len(),
        });
    };
    decode(item).map_err(|e| DispatchError::Decode {
        index,
        message: e.to_string(),
    })
}

/// Decodes a response's `Data` (empty, `c0`, or a value) into the return type.
pub fn decode_data<T: DeserializeOwned>(data: &[u8]) -> Result<T, RemoteError> {
    decode(data).map_err(|e| RemoteError::new(ErrorCode::Decode, format!("reply data: {e}")))
}

/// Turns a method's result into a [`Reply`]; a result that cannot be encoded becomes a
/// `Decode` call error.
pub fn encode_reply<T: Serialize>(result: Result<T, RemoteError>) -> Reply {
    match result {
        Ok(v) => match encode(&v) {
            Ok(bytes) => Reply::Value(bytes),
            Err(e) => Reply::Error(RemoteError::decode(format!("encoding the result: {e}"))),
        },
        Err(e) => Reply::Error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i32,
        label: String,
    }

    #[test]
    fn ints_of_any_width_decode_into_any_number_type() {
        let go_one = [0xd3, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(decode::<u8>(&go_one).unwrap(), 1);
        assert_eq!(decode::<i32>(&go_one).unwrap(), 1);
        assert_eq!(decode::<u64>(&go_one).unwrap(), 1);
        assert_eq!(decode::<f64>(&go_one).unwrap(), 1.0);
        assert_eq!(decode::<f32>(&[0x01]).unwrap(), 1.0);
        assert_eq!(decode::<i64>(&[0xcf, 0, 0, 0, 0, 0, 0, 0, 7]).unwrap(), 7);
        assert!(
            decode::<u8>(&[0xcd, 1, 0]).is_err(),
            "256 does not fit a u8"
        );
    }

    #[test]
    fn structs_decode_from_maps_and_arrays() {
        let p = Point {
            x: 3,
            label: "a".into(),
        };
        let map = encode(&p).unwrap();
        assert_eq!(map[0], 0x82, "struct is a 2-entry map");
        assert_eq!(decode::<Point>(&map).unwrap(), p);
        let arr = rmp_serde::to_vec(&p).unwrap();
        assert_eq!(arr[0], 0x92, "struct is a 2-item array");
        assert_eq!(decode::<Point>(&arr).unwrap(), p);
    }

    #[test]
    fn empty_and_nil_data_decode_as_nil() {
        decode_data::<()>(&[]).unwrap();
        decode_data::<()>(&[NIL]).unwrap();
        assert_eq!(decode_data::<Option<u32>>(&[]).unwrap(), None);
        assert_eq!(decode_data::<Option<u32>>(&[0x05]).unwrap(), Some(5));
        let err = decode_data::<u32>(&[0xa1, b'x']).unwrap_err();
        assert_eq!(err.code, ErrorCode::Decode);
    }

    #[test]
    fn decode_arg_reports_position_and_arity() {
        let inputs = vec![encode_arg(&5u32).unwrap(), encode_arg("s").unwrap()];
        assert_eq!(decode_arg::<u32>(&inputs, 0).unwrap(), 5);
        assert_eq!(decode_arg::<String>(&inputs, 1).unwrap(), "s");
        assert!(matches!(
            decode_arg::<u32>(&inputs, 1),
            Err(DispatchError::Decode { index: 1, .. })
        ));
        assert_eq!(
            decode_arg::<u32>(&inputs, 2),
            Err(DispatchError::Arity {
                expected: 3,
                got: 2
            })
        );
    }

    #[test]
    fn encode_reply_maps_values_and_errors() {
        assert_eq!(encode_reply::<()>(Ok(())), Reply::Value(vec![NIL]));
        assert_eq!(
            encode_reply(Ok((3.0f64, -1.0f64))),
            Reply::Value(encode(&(3.0, -1.0)).unwrap())
        );
        let e = RemoteError::not_found("x");
        assert_eq!(encode_reply::<u8>(Err(e.clone())), Reply::Error(e));
    }
}
