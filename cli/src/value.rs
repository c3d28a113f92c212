//! JSON on the command line ↔ msgpack on the wire.

use rmpv::Value;
use serde_json::Value as Json;

/// Encodes one JSON document as one msgpack argument (maps keep string keys; integers
/// stay integers; the bus decodes any integer width into the parameter's type).
///
/// A JSON object with exactly one key `$f32`, `$f64`, `$i64`, `$u64` or `$bytes` is a
/// typed value, for peers (Go's msgpack) that want one exact msgpack type: `{"$f32": 1.5}`
/// is a float32, `{"$bytes": [1, 2]}` or `{"$bytes": "AQI="}` (base64) a bin. Any other
/// key starting with `$` in such a one-key object is refused, so a typo is not sent as a
/// map.
pub fn json_to_msgpack(json: &Json) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &to_rmpv(json)?);
    Ok(out)
}

fn to_rmpv(json: &Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(a) => Value::Array(a.iter().map(to_rmpv).collect::<Result<_, _>>()?),
        Json::Object(m) => match m.iter().next() {
            Some((k, v)) if m.len() == 1 && k.starts_with('$') => typed(k, v)?,
            _ => Value::Map(
                m.iter()
                    .map(|(k, v)| Ok((Value::from(k.as_str()), to_rmpv(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
        },
    })
}

/// One typed value (`{"$f32": 1.5}` …).
fn typed(hint: &str, v: &Json) -> Result<Value, String> {
    let number = || {
        v.as_f64()
            .ok_or_else(|| format!("{hint} takes a number, not {v}"))
    };
    Ok(match hint {
        // Rounding to the nearest float32 is what asking for one means.
        #[allow(clippy::cast_possible_truncation)]
        "$f32" => Value::F32(number()? as f32),
        "$f64" => Value::F64(number()?),
        "$i64" => Value::from(
            v.as_i64()
                .ok_or_else(|| format!("$i64 takes an integer, not {v}"))?,
        ),
        "$u64" => Value::from(
            v.as_u64()
                .ok_or_else(|| format!("$u64 takes a non-negative integer, not {v}"))?,
        ),
        "$bytes" => Value::Binary(match v {
            Json::String(b64) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| format!("$bytes: {e} (give base64 or an array of 0..=255)"))?
            }
            Json::Array(items) => items
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|b| u8::try_from(b).ok())
                        .ok_or_else(|| format!("$bytes: {x} is not a byte (0..=255)"))
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(format!(
                    "$bytes takes base64 or an array of bytes, not {other}"
                ))
            }
        }),
        other => {
            return Err(format!(
                "unknown type hint {other:?} (use $f32, $f64, $i64, $u64 or $bytes)"
            ))
        }
    })
}

/// Renders a decoded msgpack value as JSON. Binary that is UTF-8 becomes a string, other
/// binary an array of bytes; map keys that are not strings are rendered as their JSON text;
/// timestamps (extension -1, Go's `time.Time`) become RFC 3339 strings, other extension
/// values `{"ext": type, "data": [bytes]}`.
pub fn msgpack_to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Json::from(u),
            (_, Some(s)) => Json::from(s),
            _ => Json::Null,
        },
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => Json::String(match s.as_str() {
            Some(s) => s.to_string(),
            None => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        }),
        Value::Binary(b) => bytes(b),
        Value::Array(a) => Json::Array(a.iter().map(msgpack_to_json).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.as_str().map(str::to_string),
                        _ => None,
                    }
                    .unwrap_or_else(|| msgpack_to_json(k).to_string());
                    (key, msgpack_to_json(v))
                })
                .collect(),
        ),
        Value::Ext(-1, data) => match crate::time::msgpack_timestamp(data) {
            Some(t) => Json::String(t),
            None => serde_json::json!({ "ext": -1, "data": data }),
        },
        Value::Ext(t, data) => serde_json::json!({ "ext": t, "data": data }),
    }
}

fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

fn bytes(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) => Json::String(s.to_string()),
        Err(_) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
    }
}

/// Decodes msgpack bytes; empty input is `null` (a method without a return value).
pub fn decode(bytes: &[u8]) -> Result<Value, rmpv::decode::Error> {
    if bytes.is_empty() {
        return Ok(Value::Nil);
    }
    rmpv::decode::read_value(&mut &bytes[..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_plain_json() {
        for j in [
            json!(null),
            json!("hi"),
            json!(-3),
            json!(18446744073709551615u64),
            json!(1.5),
            json!({"source": {"kind": "loop", "path": "/a"}, "ro": true, "n": [1, 2]}),
        ] {
            let back = msgpack_to_json(&decode(&json_to_msgpack(&j).unwrap()).unwrap());
            assert_eq!(back, j);
        }
    }

    #[test]
    fn strings_encode_as_msgpack_str() {
        assert_eq!(json_to_msgpack(&json!("hi")).unwrap(), b"\xa2hi");
        assert_eq!(json_to_msgpack(&json!(1)).unwrap(), b"\x01");
    }

    #[test]
    fn type_hints_pick_the_msgpack_type() {
        let enc = |j| json_to_msgpack(&j).unwrap();
        assert_eq!(enc(json!({"$f32": 1.5})), b"\xca\x3f\xc0\x00\x00");
        assert_eq!(enc(json!(1.5))[0], 0xcb);
        assert_eq!(enc(json!({"$f64": 2}))[0], 0xcb);
        assert_eq!(enc(json!({"$bytes": [1, 2]})), b"\xc4\x02\x01\x02");
        assert_eq!(enc(json!({"$bytes": "AQI="})), b"\xc4\x02\x01\x02");
        assert_eq!(enc(json!([{"$u64": 7}])), b"\x91\x07");
        assert!(json_to_msgpack(&json!({"$bytes": [256]})).is_err());
        assert!(json_to_msgpack(&json!({"$f23": 1})).is_err());
        assert!(json_to_msgpack(&json!({"$f32": "x"})).is_err());
        // Two keys: a plain map.
        assert_eq!(enc(json!({"$a": 1, "b": 2}))[0], 0x82);
    }

    #[test]
    fn go_times_render_as_rfc3339() {
        let v = Value::Ext(-1, 1u32.to_be_bytes().to_vec());
        assert_eq!(msgpack_to_json(&v), json!("1970-01-01T00:00:01Z"));
    }

    #[test]
    fn odd_msgpack_renders() {
        assert_eq!(
            msgpack_to_json(&Value::Binary(vec![0xff, 1])),
            json!([255, 1])
        );
        assert_eq!(msgpack_to_json(&Value::Binary(b"ok".to_vec())), json!("ok"));
        let m = Value::Map(vec![(Value::from(1), Value::from("x"))]);
        assert_eq!(msgpack_to_json(&m), json!({"1": "x"}));
        assert_eq!(decode(b"").unwrap(), Value::Nil);
    }
}
