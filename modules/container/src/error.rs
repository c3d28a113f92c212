//! The container module's errors and their one mapping to wire codes.

use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_schema::container::ContainerState;
use imagebus_schema::Selector;
use imagebus_sys::runtime::RuntimeError;

/// What can go wrong in the container module.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No container matches.
    #[error("container {0} not found")]
    NotFound(Selector),
    /// The request is malformed or violates a precondition; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// A referenced thing (network namespace, bind source) does not exist.
    #[error("{0}")]
    Missing(String),
    /// The name is taken.
    #[error("container name {0:?} is already taken")]
    NameTaken(String),
    /// The operation does not fit the container's state.
    #[error("container {id} is {state}: {what}", state = .state.as_str())]
    WrongState {
        /// Container id.
        id: u64,
        /// Its state.
        state: ContainerState,
        /// What was refused.
        what: &'static str,
    },
    /// The mount module refused or failed (its error is passed on as is).
    #[error("mount module: {0}")]
    Mount(RemoteError),
    /// The runtime, the monitor or a cgroup operation failed.
    #[error("{what}")]
    Runtime {
        /// What was attempted.
        what: String,
        /// The cause.
        #[source]
        source: RuntimeError,
    },
    /// An exec'd process ran past its deadline and was killed.
    #[error("exec in container {id} timed out after {ms} ms")]
    ExecTimeout {
        /// Container id.
        id: u64,
        /// The deadline.
        ms: u64,
    },
    /// Reading or writing the module's own files failed.
    #[error("{what}")]
    State {
        /// What was attempted.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The persisted state could not be read or written.
    #[error("{what}")]
    Store {
        /// What was attempted.
        what: String,
        /// The cause.
        #[source]
        source: imagebus_sys::state::StateError,
    },
    /// The actor is gone (shutting down).
    #[error("the container actor is not running")]
    Unavailable,
}

impl ContainerError {
    pub(crate) fn runtime(what: impl Into<String>, source: RuntimeError) -> Self {
        Self::Runtime {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn state(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::State {
            what: what.into(),
            source,
        }
    }
}

impl From<ContainerError> for RemoteError {
    fn from(err: ContainerError) -> Self {
        let code = match &err {
            ContainerError::NotFound(_) | ContainerError::Missing(_) => ErrorCode::NotFound,
            ContainerError::Invalid(_) => ErrorCode::InvalidArgument,
            ContainerError::NameTaken(_) | ContainerError::WrongState { .. } => ErrorCode::Conflict,
            ContainerError::Mount(inner) => return inner.clone(),
            ContainerError::Runtime {
                source: RuntimeError::Invalid(_),
                ..
            } => ErrorCode::InvalidArgument,
            ContainerError::Runtime {
                source: RuntimeError::NotFound(_),
                ..
            } => ErrorCode::NotFound,
            ContainerError::Runtime { .. }
            | ContainerError::State { .. }
            | ContainerError::Store { .. } => ErrorCode::Internal,
            ContainerError::ExecTimeout { .. } => ErrorCode::Timeout,
            ContainerError::Unavailable => ErrorCode::Unavailable,
        };
        RemoteError::with_chain(code, &err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let e: RemoteError = ContainerError::NameTaken("web".into()).into();
        assert_eq!(e.code, ErrorCode::Conflict);
        let e: RemoteError = ContainerError::Mount(RemoteError::not_found("mount 3")).into();
        assert_eq!(e, RemoteError::not_found("mount 3"));
        let e: RemoteError = ContainerError::runtime(
            "starting c1",
            RuntimeError::Invalid("init \"/x\" is not executable".into()),
        )
        .into();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("not executable"), "{}", e.message);
        let e: RemoteError = ContainerError::ExecTimeout { id: 1, ms: 5 }.into();
        assert_eq!(e.code, ErrorCode::Timeout);
    }
}
