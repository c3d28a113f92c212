//! The system container actor's domain error and its one mapping to wire codes.

use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_host::HostError;
use imagebus_sys::state::StateError;

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// No such system container (or image).
    #[error("{0} not found")]
    NotFound(String),
    /// The name, a container or a host file is taken, or there is nothing to roll back to.
    #[error("{0}")]
    Conflict(String),
    /// Bad input; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// A peer module failed.
    #[error("{0}")]
    Peer(RemoteError),
    /// A file of ours could not be read or written.
    #[error("system container state")]
    State(#[from] StateError),
    /// systemctl failed (could not run, or exited non-zero).
    #[error("{command}: {detail}")]
    Systemctl {
        /// The command line.
        command: String,
        /// What it printed, or why it did not run.
        detail: String,
    },
    /// The caller's deadline passed while the job waited for its turn.
    #[error("{0}")]
    Timeout(String),
    /// The actor is not running.
    #[error("the syscontainer actor is not running")]
    Stopped,
    /// The actor failed while serving this request and is restarting.
    #[error("{0}")]
    Crashed(String),
    /// A bug or an I/O failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<HostError> for SysError {
    fn from(err: HostError) -> Self {
        match err {
            HostError::Stopped(_) => SysError::Stopped,
            HostError::Timeout { .. } => SysError::Timeout(err.to_string()),
            HostError::Panicked(_) => SysError::Crashed(err.to_string()),
        }
    }
}

impl From<RemoteError> for SysError {
    fn from(err: RemoteError) -> Self {
        SysError::Peer(err)
    }
}

impl SysError {
    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            SysError::NotFound(_) => ErrorCode::NotFound,
            SysError::Conflict(_) => ErrorCode::Conflict,
            SysError::Invalid(_) => ErrorCode::InvalidArgument,
            SysError::Peer(e) => e.code,
            SysError::Timeout(_) => ErrorCode::Timeout,
            SysError::Stopped | SysError::Crashed(_) | SysError::Systemctl { .. } => {
                ErrorCode::Unavailable
            }
            SysError::State(_) | SysError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// An I/O error on `path` while doing `what`.
    pub fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> Self {
        SysError::Internal(format!("{what} {}: {e}", path.display()))
    }
}

impl From<SysError> for RemoteError {
    fn from(err: SysError) -> Self {
        match err {
            SysError::Peer(e) => e,
            other => RemoteError::with_chain(other.code(), &other),
        }
    }
}
