//! Types shared by every module: how objects are addressed and who holds a reference.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Addresses one object of a module: by its numeric id or by its unique name.
///
/// msgpack/JSON form: `{"id": 7}` or `{"name": "web"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// The object's id (never reused).
    Id(u64),
    /// The object's unique name.
    Name(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Id(id) => write!(f, "{id}"),
            // Echoed in error messages: bounded, however long the name sent.
            Selector::Name(name) => write!(f, "{:?}", imagebus_bus::echo(name)),
        }
    }
}

impl Selector {
    /// Parses CLI input: all digits is an id, anything else a name.
    pub fn parse(s: &str) -> Self {
        match s.parse::<u64>() {
            Ok(id) => Selector::Id(id),
            Err(_) => Selector::Name(s.to_string()),
        }
    }
}

/// Who holds a reference on an object. An object is collected when its last holder
/// releases it; releasing twice as the same holder is a no-op, so retries are safe.
///
/// msgpack/JSON form: `"user"`, `{"mount": 4}`, `{"attach": 2}`, `{"container": 9}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// The operator or module that created the object directly (the creator's reference).
    User,
    /// A mount of the mount module (it defined the object inline or references it).
    Mount(u64),
    /// An attachment of the attach module.
    Attach(u64),
    /// A container of the container module.
    Container(u64),
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::User => f.write_str("user"),
            Holder::Mount(id) => write!(f, "mount:{id}"),
            Holder::Attach(id) => write!(f, "attach:{id}"),
            Holder::Container(id) => write!(f, "container:{id}"),
        }
    }
}

/// Checks an object name: 1–64 characters from `[A-Za-z0-9._-]`, not starting with `.` or
/// `-`, and not all digits (so it never reads as an id). The error text says what is wrong.
pub fn validate_name(name: &str) -> Result<(), String> {
    let name = &*imagebus_bus::echo(name);
    if name.is_empty() || name.len() > 64 {
        return Err(format!("name {name:?} must be 1 to 64 characters long"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!("name {name:?} may only contain A-Z a-z 0-9 . _ -"));
    }
    if name.starts_with(['.', '-']) {
        return Err(format!("name {name:?} must not start with '.' or '-'"));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("name {name:?} must not be all digits"));
    }
    Ok(())
}

/// Refuses a NUL byte in `value`, a string that reaches a syscall or an exec (a path, an
/// argument, an environment entry): none takes one, so it would fail later, after
/// something ran, as an internal error. The error names `what`.
pub fn no_nul(what: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!(
            "{what} {:?} must not contain a NUL byte",
            imagebus_bus::echo(value)
        ));
    }
    Ok(())
}

/// [`no_nul`] for a path.
pub fn no_nul_path(what: &str, path: &std::path::Path) -> Result<(), String> {
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(format!(
            "{what} {:?} must not contain a NUL byte",
            imagebus_bus::echo(&path.to_string_lossy())
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_are_refused_and_long_names_are_not_echoed_whole() {
        assert!(no_nul("argument", "a\0b").unwrap_err().contains("NUL"));
        assert!(no_nul("argument", "ab").is_ok());
        assert!(no_nul_path("path", std::path::Path::new("/a\0")).is_err());
        let long = "x".repeat(1 << 20);
        let err = validate_name(&long).unwrap_err();
        assert!(err.len() < 400, "{}", err.len());
        assert!(validate_name("a\0b").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("web-1.a_b").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("12").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn selector_json_forms() {
        assert_eq!(
            serde_json::to_string(&Selector::Id(3)).unwrap(),
            r#"{"id":3}"#
        );
        assert_eq!(Selector::parse("42"), Selector::Id(42));
        assert_eq!(Selector::parse("web"), Selector::Name("web".into()));
        assert_eq!(
            serde_json::to_string(&Holder::Mount(4)).unwrap(),
            r#"{"mount":4}"#
        );
        assert_eq!(serde_json::to_string(&Holder::User).unwrap(), r#""user""#);
    }
}
