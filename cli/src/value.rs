//! JSON on the command line ↔ msgpack on the wire.

use rmpv::Value;
use serde_json::Value as Json;

/// Encodes one JSON document as one msgpack argument (maps keep string keys; integers
/// stay integers; the bus decodes any integer width into the parameter's type).
pub fn json_to_msgpack(json: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &to_rmpv(json));
    out
}

fn to_rmpv(json: &Json) -> Value {
    match json {
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
        Json::Array(a) => Value::Array(a.iter().map(to_rmpv).collect()),
        Json::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (Value::from(k.as_str()), to_rmpv(v)))
                .collect(),
        ),
    }
}

/// Renders a decoded msgpack value as JSON. Binary that is UTF-8 becomes a string, other
/// binary an array of bytes; map keys that are not strings are rendered as their JSON text;
/// extension values become `{"ext": type, "data": [bytes]}`.
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
            let back = msgpack_to_json(&decode(&json_to_msgpack(&j)).unwrap());
            assert_eq!(back, j);
        }
    }

    #[test]
    fn strings_encode_as_msgpack_str() {
        assert_eq!(json_to_msgpack(&json!("hi")), b"\xa2hi");
        assert_eq!(json_to_msgpack(&json!(1)), b"\x01");
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
