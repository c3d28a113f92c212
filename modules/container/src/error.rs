//! The container module's errors and their one mapping to wire codes.

use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_host::HostError;
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
    #[error("container name {:?} is already taken", imagebus_bus::echo(.0))]
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
    #[error("mount module: {}", .0.message)]
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
    /// The actor is gone (shutting down, or restarting after a failure).
    #[error("the container actor is not running")]
    Unavailable,
    /// The caller's deadline passed while the command waited for its turn; nothing was
    /// started.
    #[error("{0}")]
    Timeout(String),
    /// The caller's deadline came while the command was still in progress: it answers
    /// before the deadline (holding no bus worker for a caller that gave up) and the
    /// command goes on (e.g. a container still stopping, its SIGKILL still due).
    #[error("{0}")]
    InProgress(String),
}

impl From<HostError> for ContainerError {
    fn from(err: HostError) -> Self {
        match err {
            HostError::Stopped(_) | HostError::Panicked(_) => Self::Unavailable,
            HostError::Timeout { .. } => Self::Timeout(err.to_string()),
        }
    }
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

impl ContainerError {
    /// The wire code of this error (a mount module error keeps its own).
    pub fn code(&self) -> ErrorCode {
        let code = match self {
            Self::NotFound(_) | Self::Missing(_) => ErrorCode::NotFound,
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NameTaken(_) | Self::WrongState { .. } => ErrorCode::Conflict,
            Self::Mount(inner) => inner.code,
            Self::Runtime {
                source: RuntimeError::Invalid(_),
                ..
            } => ErrorCode::InvalidArgument,
            Self::Runtime {
                source: RuntimeError::NotFound(_),
                ..
            } => ErrorCode::NotFound,
            Self::Runtime { .. } | Self::State { .. } | Self::Store { .. } => ErrorCode::Internal,
            Self::ExecTimeout { .. } | Self::Timeout(_) | Self::InProgress(_) => ErrorCode::Timeout,
            Self::Unavailable => ErrorCode::Unavailable,
        };
        // A full file system (the state directory, say) is a resource that may come back,
        // and the command changed nothing: not a bug.
        if code == ErrorCode::Internal && imagebus_sys::is_out_of_space(self) {
            ErrorCode::Unavailable
        } else {
            code
        }
    }
}

impl From<ContainerError> for RemoteError {
    fn from(err: ContainerError) -> Self {
        match err {
            ContainerError::Mount(inner) => inner,
            other => RemoteError::with_chain(other.code(), &other),
        }
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
        let e: ContainerError = HostError::Timeout {
            actor: "container",
            waited: std::time::Duration::from_millis(5),
        }
        .into();
        assert_eq!(e.code(), ErrorCode::Timeout);
        assert!(e.to_string().contains("deadline"), "{e}");
        let e: RemoteError = ContainerError::from(HostError::Panicked("container")).into();
        assert_eq!(e.code, ErrorCode::Unavailable);
        let e: RemoteError = ContainerError::from(HostError::Stopped("container")).into();
        assert_eq!(e.code, ErrorCode::Unavailable);
    }
}
