//! Errors that cross the bus: a closed set of codes plus a human message.
//!
//! On the wire a call error is Go zbus's `CallError{Message}` with one extra key, `Code`,
//! which Go's msgpack decoder skips. Protocol errors (unknown object or method, bad
//! arguments, a panicking handler) travel in the response's top-level `Error` string, as Go
//! does, with their code in an extra top-level `Code` key.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of failure a [`RemoteError`] is. Closed set; new codes are a wire change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The addressed resource does not exist.
    NotFound,
    /// The request was malformed or violates a precondition; nothing was changed.
    InvalidArgument,
    /// The request conflicts with current state (in use, name taken, already mapped).
    Conflict,
    /// The operation or option is not supported here.
    Unsupported,
    /// A dependency (Redis, a peer module, the kernel facility) is not reachable now.
    Unavailable,
    /// The call's deadline passed before a reply arrived.
    Timeout,
    /// A bug or an unexpected failure on the serving side.
    Internal,
    /// No object with that id is registered on the module (bus-level).
    UnknownObject,
    /// The object has no method of that name (bus-level).
    UnknownMethod,
    /// A payload could not be encoded or decoded (bus-level).
    Decode,
    /// The caller may not call this method: a read-only caller asked for a change
    /// (bus-level).
    PermissionDenied,
}

impl ErrorCode {
    /// Every code, domain codes first (docs are checked against this list).
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::NotFound,
        ErrorCode::InvalidArgument,
        ErrorCode::Conflict,
        ErrorCode::Unsupported,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::UnknownObject,
        ErrorCode::UnknownMethod,
        ErrorCode::Decode,
        ErrorCode::PermissionDenied,
    ];

    /// The code's wire and display name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NotFound",
            ErrorCode::InvalidArgument => "InvalidArgument",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::Unsupported => "Unsupported",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::Timeout => "Timeout",
            ErrorCode::Internal => "Internal",
            ErrorCode::UnknownObject => "UnknownObject",
            ErrorCode::UnknownMethod => "UnknownMethod",
            ErrorCode::Decode => "Decode",
            ErrorCode::PermissionDenied => "PermissionDenied",
        }
    }

    /// Parses a wire name; unknown names give `None` (callers fall back to `Internal`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NotFound" => ErrorCode::NotFound,
            "InvalidArgument" => ErrorCode::InvalidArgument,
            "Conflict" => ErrorCode::Conflict,
            "Unsupported" => ErrorCode::Unsupported,
            "Unavailable" => ErrorCode::Unavailable,
            "Timeout" => ErrorCode::Timeout,
            "Internal" => ErrorCode::Internal,
            "UnknownObject" => ErrorCode::UnknownObject,
            "UnknownMethod" => ErrorCode::UnknownMethod,
            "Decode" => ErrorCode::Decode,
            "PermissionDenied" => ErrorCode::PermissionDenied,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most characters of one piece of user input (a name, a path, an argument) that an
/// error message echoes; see [`echo`].
pub const ECHO_MAX: usize = 128;

/// The longest error message (bytes) a [`RemoteError`] carries, and so any reply: longer
/// ones are cut (see [`bounded_message`]). A message echoing a 1 MB name must not become
/// a multi-megabyte reply.
pub const MAX_MESSAGE: usize = 4096;

/// `input` as an error message may echo it: at most [`ECHO_MAX`] characters, then
/// `…(N bytes in all)`. Use it wherever a message repeats what a caller sent.
pub fn echo(input: &str) -> std::borrow::Cow<'_, str> {
    match input.char_indices().nth(ECHO_MAX) {
        None => std::borrow::Cow::Borrowed(input),
        Some((cut, _)) => {
            std::borrow::Cow::Owned(format!("{}…({} bytes in all)", &input[..cut], input.len()))
        }
    }
}

/// `message` cut to at most [`MAX_MESSAGE`] bytes (at a character boundary, with a marker).
pub fn bounded_message(mut message: String) -> String {
    const MARK: &str = "…(cut)";
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut cut = MAX_MESSAGE - MARK.len();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(MARK);
    message
}

/// The one error type of every bus interface method, local or remote.
///
/// Interface traits return `Result<T, RemoteError>` whether they are served in-process by an
/// actor handle or called over Redis through a generated stub, so callers handle one type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// Human-readable detail; this is Go's `CallError.Message`.
    pub message: String,
}

impl RemoteError {
    /// An error with the given code and message (cut to [`MAX_MESSAGE`] bytes).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: bounded_message(message.into()),
        }
    }

    /// An error whose message is `err` followed by each of its `source()`s, joined by ": ".
    pub fn with_chain(code: ErrorCode, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
            if message.len() > MAX_MESSAGE {
                break;
            }
        }
        Self {
            code,
            message: bounded_message(message),
        }
    }
}

macro_rules! ctor {
    ($($(#[$doc:meta])* $name:ident => $code:ident),* $(,)?) => {
        impl RemoteError {
            $($(#[$doc])* pub fn $name(message: impl Into<String>) -> Self {
                Self::new(ErrorCode::$code, message)
            })*
        }
    };
}

ctor! {
    /// `NotFound`.
    not_found => NotFound,
    /// `InvalidArgument`.
    invalid_argument => InvalidArgument,
    /// `Conflict`.
    conflict => Conflict,
    /// `Unsupported`.
    unsupported => Unsupported,
    /// `Unavailable`.
    unavailable => Unavailable,
    /// `Timeout`.
    timeout => Timeout,
    /// `Internal`.
    internal => Internal,
    /// `Decode`.
    decode => Decode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("Nope"), None);
    }

    /// Issue 10: a 1 MB name made a 5 MB error reply.
    #[test]
    fn echoed_input_and_messages_are_bounded() {
        assert_eq!(echo("short"), "short");
        let name = "é".repeat(1 << 19);
        let e = echo(&name);
        assert!(e.starts_with(&"é".repeat(ECHO_MAX)), "{e}");
        assert!(e.ends_with("…(1048576 bytes in all)"), "{e}");
        let r = RemoteError::not_found(format!("{name} {name} {name}"));
        assert!(r.message.len() <= MAX_MESSAGE, "{}", r.message.len());
        assert!(r.message.ends_with("…(cut)"));
        #[derive(Debug, thiserror::Error)]
        #[error("outer {0}")]
        struct Outer(String, #[source] std::io::Error);
        let err = Outer(name.clone(), std::io::Error::other(name.clone()));
        let r = RemoteError::with_chain(ErrorCode::Internal, &err);
        assert!(r.message.len() <= MAX_MESSAGE, "{}", r.message.len());
        assert_eq!(bounded_message("ok".into()), "ok");
    }

    #[test]
    fn with_chain_joins_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        let r = RemoteError::with_chain(ErrorCode::Internal, &e);
        assert_eq!(r.message, "outer: inner");
        assert_eq!(r.to_string(), "Internal: outer: inner");
    }
}
