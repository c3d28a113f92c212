//! The server-side face of an interface: what the `#[object]` macro implements and what
//! [`crate::Server`] dispatches to.

use crate::error::{ErrorCode, RemoteError};
use crate::protocol::ObjectId;
use futures::stream::BoxStream;
use serde_bytes::ByteBuf;

/// A stream of events of one type, as interface traits declare them (`#[bus(stream)]`).
///
/// Dropping it cancels the subscription at once.
pub type EventStream<T> = BoxStream<'static, T>;

/// The result of running one method: its encoded return value (the msgpack bytes that go
/// into `Output.Data`), or the call error it returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// msgpack bytes of the return value (`c0` for `()`).
    Value(Vec<u8>),
    /// The method returned an error.
    Error(RemoteError),
}

/// Why a request could not be handed to a method at all (a protocol error on the wire).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The object has no method with this wire name. Go's text is "not a function".
    #[error("unknown method '{}'", crate::echo(.0))]
    UnknownMethod(String),
    /// Wrong number of inputs; the text is Go's.
    #[error("invalid number of arguments expecting {expected} got {got}")]
    Arity {
        /// Parameters the method takes.
        expected: usize,
        /// Inputs the request carried.
        got: usize,
    },
    /// Input `index` did not decode into the parameter's type.
    #[error("argument {index}: {message}")]
    Decode {
        /// Zero-based argument position.
        index: usize,
        /// Decoder message.
        message: String,
    },
    /// The handler panicked; the text matches Go's "remote method call %s.%s() paniced: %s".
    #[error("remote method call {object}.{method}() paniced: {message}")]
    Panic {
        /// `name@version` of the object.
        object: String,
        /// Wire method name.
        method: String,
        /// Panic payload, when it was a string.
        message: String,
    },
}

impl DispatchError {
    /// The wire code of this protocol error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DispatchError::UnknownMethod(_) => ErrorCode::UnknownMethod,
            DispatchError::Arity { .. } | DispatchError::Decode { .. } => ErrorCode::Decode,
            DispatchError::Panic { .. } => ErrorCode::Internal,
        }
    }
}

/// One event source of an object: its wire name and the encoded values to publish.
pub struct StreamSource {
    /// Event name; the channel is `<module>.<object>@<version>.<name>`.
    pub name: &'static str,
    /// msgpack-encoded values, published one message each.
    pub values: BoxStream<'static, Vec<u8>>,
}

impl std::fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A served object. Implemented by the `XServer<T>` types that `#[object]` generates; hand
/// one to [`crate::Server::register`].
#[async_trait::async_trait]
pub trait Object: Send + Sync + 'static {
    /// The object's id (`name@version`).
    fn id(&self) -> ObjectId;

    /// Wire names of the callable methods, in declaration order.
    fn methods(&self) -> &'static [&'static str];

    /// Wire names of the methods that change nothing (`#[bus(read)]`): the only ones a
    /// request from the object's read-only queue may call.
    fn reads(&self) -> &'static [&'static str] {
        &[]
    }

    /// Runs `method` with the individually encoded `inputs`.
    async fn dispatch(&self, method: &str, inputs: Vec<ByteBuf>) -> Result<Reply, DispatchError>;

    /// Starts every event source once (called by the server when it starts serving).
    fn streams(&self) -> Vec<StreamSource> {
        Vec::new()
    }
}
