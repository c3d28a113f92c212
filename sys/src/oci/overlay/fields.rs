//! The JSON helpers of [`super`]: typed parsing that refuses the keys a type did not
//! keep, field-named errors, and the NUL check.

use super::REJECTED;
use crate::runtime::RuntimeError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

pub(super) fn invalid(msg: String) -> RuntimeError {
    RuntimeError::Invalid(msg)
}

/// The error for a field that is not honoured.
pub fn refused(path: &str) -> RuntimeError {
    match REJECTED.iter().find(|(p, _)| *p == path) {
        Some((p, why)) => invalid(format!("oci field {p} is not supported: {why}")),
        None => invalid(format!("oci field {path} is unknown")),
    }
}

/// Parses `value` as `T` and writes it back; a key of `value` that `T` did not keep is
/// refused (with its path). Returns the parsed value and its normalised JSON.
pub(super) fn typed<T: DeserializeOwned + Serialize>(
    path: &str,
    value: &Value,
) -> Result<(T, Value), RuntimeError> {
    let parsed: T = serde_json::from_value(value.clone())
        .map_err(|e| invalid(format!("oci field {path}: {e}")))?;
    let back =
        serde_json::to_value(&parsed).map_err(|e| invalid(format!("oci field {path}: {e}")))?;
    kept(path, value, &back)?;
    Ok((parsed, back))
}

/// Every non-null key of `raw` is in `back` (recursively).
fn kept(path: &str, raw: &Value, back: &Value) -> Result<(), RuntimeError> {
    match (raw, back) {
        (Value::Object(r), Value::Object(b)) => {
            for (k, v) in r.iter().filter(|(_, v)| !v.is_null()) {
                let sub = format!("{path}.{k}");
                match b.get(k) {
                    Some(bv) => kept(&sub, v, bv)?,
                    None => return Err(refused(&sub)),
                }
            }
            Ok(())
        }
        (Value::Array(r), Value::Array(b)) if r.len() == b.len() => r
            .iter()
            .zip(b)
            .try_for_each(|(rv, bv)| kept(&format!("{path}[]"), rv, bv)),
        _ => Ok(()),
    }
}

pub(super) fn strings(path: &str, value: &Value) -> Result<Vec<String>, RuntimeError> {
    serde_json::from_value(value.clone())
        .map_err(|_| invalid(format!("oci field {path} must be an array of strings")))
}

pub(super) fn string(path: &str, value: &Value) -> Result<String, RuntimeError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("oci field {path} must be a string")))
}

pub(super) fn object<'a>(
    path: &str,
    value: &'a Value,
) -> Result<&'a Map<String, Value>, RuntimeError> {
    value
        .as_object()
        .ok_or_else(|| invalid(format!("oci field {path} must be an object")))
}

/// Non-null entries of an object.
pub(super) fn present(m: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    m.iter().filter(|(_, v)| !v.is_null())
}

/// A NUL byte anywhere in the document (no syscall takes one).
pub(super) fn no_nul(path: &str, value: &Value) -> Result<(), RuntimeError> {
    let bad = |s: &str| s.contains('\0');
    match value {
        Value::String(s) if bad(s) => Err(invalid(format!("oci field {path} has a NUL byte"))),
        Value::Array(a) => a.iter().try_for_each(|v| no_nul(path, v)),
        Value::Object(m) => m.iter().try_for_each(|(k, v)| {
            if bad(k) {
                return Err(invalid(format!("oci field {path} has a NUL byte in a key")));
            }
            no_nul(&format!("{path}.{k}"), v)
        }),
        _ => Ok(()),
    }
}
