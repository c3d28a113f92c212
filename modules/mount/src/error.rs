//! The mount module's domain error and its one mapping to wire codes.

use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_host::HostError;
use imagebus_schema::{Holder, Selector};
use imagebus_sys::mount::MountFailure;
use imagebus_sys::state::StateError;
use imagebus_sys::SysError;
use std::path::PathBuf;

/// Everything that can go wrong in the mount module.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// No mount with that id or name.
    #[error("mount {0} not found")]
    NotFound(Selector),
    /// Another mount already has this name.
    #[error("mount name {:?} is already taken", imagebus_bus::echo(.0))]
    NameTaken(String),
    /// Other holders still reference the mount (use `force`).
    #[error(
        "mount {id} is still held by {}; remove those first (or force)",
        .holders.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    InUse {
        /// The mount.
        id: u64,
        /// Its holders besides `user`.
        holders: Vec<Holder>,
    },
    /// A release of a holder whose owner still holds the mount: only the owner may drop
    /// it (by deleting itself, or dropping the reference first).
    #[error("mount {id} is held by {}; delete {} instead", owner(.holder), owner(.holder))]
    HeldByOwner {
        /// The mount.
        id: u64,
        /// The holder whose owner still holds it.
        holder: Holder,
    },
    /// A holder whose owner does not exist or does not hold (or create) this mount.
    #[error("{} does not hold mount {id} (no such {}, or it stands on another mount)", owner(.holder), kind(.holder))]
    ForgedHolder {
        /// The mount (`None`: a mount being created).
        id: MountId,
        /// The holder named in the call.
        holder: Holder,
    },
    /// The owner of a holder could not be asked; the call is refused (fail closed).
    #[error("cannot check holder {holder} with its owner: {}", .cause.message)]
    OwnerUnavailable {
        /// The holder named in the call.
        holder: Holder,
        /// Why the owner could not be asked.
        cause: RemoteError,
    },
    /// The spec is malformed or violates a rule; nothing was changed.
    #[error("invalid mount spec: {0}")]
    Invalid(String),
    /// A filesystem type we do not mount.
    #[error("unsupported filesystem type {0:?} (supported: squashfs, erofs, ext4, xfs)")]
    UnknownFsType(String),
    /// No supported filesystem was found on the device.
    #[error("no supported filesystem (squashfs, erofs, ext4, xfs) found on {0:?}")]
    UndetectedFs(PathBuf),
    /// A bind path does not exist.
    #[error("bind source {0:?} does not exist")]
    MissingPath(PathBuf),
    /// A bind path leaves its base mount (`..` or a symlink pointing outside).
    #[error("bind path {path:?} escapes its base mount {base:?}")]
    Escapes {
        /// The base mount's mountpoint.
        base: PathBuf,
        /// The offending relative path.
        path: PathBuf,
    },
    /// The persistent overlay directory is used by another overlay.
    #[error("overlay directory {0:?} is already in use by another overlay")]
    PersistDirBusy(PathBuf),
    /// The attach module refused or failed; its code is kept.
    #[error("attach module: {}", .0.message)]
    Attach(RemoteError),
    /// The image store refused or failed; its code is kept.
    #[error("image store: {0}")]
    Image(RemoteError),
    /// The kernel refused a mount.
    #[error("mounting {target:?}")]
    Kernel {
        /// The mountpoint.
        target: PathBuf,
        /// The syscall error.
        #[source]
        source: SysError,
    },
    /// A directory or unmount operation failed.
    #[error("{op}")]
    Sys {
        /// What was attempted.
        op: String,
        /// The syscall error.
        #[source]
        source: SysError,
    },
    /// The state file could not be read or written.
    #[error("mount state")]
    State(#[from] StateError),
    /// The actor is not running.
    #[error("the mount actor is not running")]
    Stopped,
    /// The actor failed while serving this request and is restarting.
    #[error("{0}")]
    Crashed(String),
    /// The caller's deadline passed while the command waited for its turn; it was not
    /// started.
    #[error("{0}")]
    Timeout(String),
    /// A bug: a blocking task panicked or an invariant broke.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MountError {
    /// A [`MountError::Sys`] for `op`.
    pub(crate) fn sys(op: impl Into<String>, source: SysError) -> Self {
        MountError::Sys {
            op: op.into(),
            source,
        }
    }
}

/// A mount id in an error message (`None`: a mount being created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountId(pub Option<u64>);

impl std::fmt::Display for MountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id}"),
            None => f.write_str("(new)"),
        }
    }
}

/// The owner a holder names, in words ("container 7").
fn owner(holder: &Holder) -> String {
    match holder {
        Holder::User => "the user".to_string(),
        Holder::Mount(id) => format!("mount {id}"),
        Holder::Attach(id) => format!("attachment {id}"),
        Holder::Container(id) => format!("container {id}"),
    }
}

/// The kind of owner a holder names.
fn kind(holder: &Holder) -> &'static str {
    match holder {
        Holder::User => "user",
        Holder::Mount(_) => "mount",
        Holder::Attach(_) => "attachment",
        Holder::Container(_) => "container",
    }
}

impl From<HostError> for MountError {
    fn from(err: HostError) -> Self {
        match err {
            HostError::Stopped(_) => MountError::Stopped,
            HostError::Timeout { .. } => MountError::Timeout(err.to_string()),
            HostError::Panicked(_) => MountError::Crashed(err.to_string()),
        }
    }
}

fn kernel_code(source: &SysError) -> ErrorCode {
    match MountFailure::of(source) {
        MountFailure::Invalid | MountFailure::ReadOnly | MountFailure::NotFound => {
            ErrorCode::InvalidArgument
        }
        MountFailure::NoSuchFsType => ErrorCode::Unsupported,
        MountFailure::Busy => ErrorCode::Conflict,
        MountFailure::Other => ErrorCode::Internal,
    }
}

impl MountError {
    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        let code = match self {
            MountError::NotFound(_) => ErrorCode::NotFound,
            MountError::NameTaken(_) | MountError::InUse { .. } | MountError::PersistDirBusy(_) => {
                ErrorCode::Conflict
            }
            MountError::HeldByOwner { .. } => ErrorCode::Conflict,
            MountError::ForgedHolder { .. } => ErrorCode::InvalidArgument,
            MountError::OwnerUnavailable { .. } => ErrorCode::Unavailable,
            MountError::Invalid(_)
            | MountError::UnknownFsType(_)
            | MountError::UndetectedFs(_)
            | MountError::MissingPath(_)
            | MountError::Escapes { .. } => ErrorCode::InvalidArgument,
            MountError::Attach(remote) | MountError::Image(remote) => remote.code,
            MountError::Kernel { source, .. } => kernel_code(source),
            MountError::Stopped | MountError::Crashed(_) => ErrorCode::Unavailable,
            MountError::Timeout(_) => ErrorCode::Timeout,
            MountError::Sys { .. } | MountError::State(_) | MountError::Internal(_) => {
                ErrorCode::Internal
            }
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

impl From<MountError> for RemoteError {
    fn from(err: MountError) -> Self {
        RemoteError::with_chain(err.code(), &err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let r: RemoteError = MountError::NotFound(Selector::Id(3)).into();
        assert_eq!(r.code, ErrorCode::NotFound);
        let r: RemoteError = MountError::InUse {
            id: 1,
            holders: vec![Holder::Mount(2)],
        }
        .into();
        assert_eq!(r.code, ErrorCode::Conflict);
        let r: RemoteError = MountError::Attach(RemoteError::unavailable("down")).into();
        assert_eq!(r.code, ErrorCode::Unavailable);
        let einval = SysError::io("mount", "/m", std::io::Error::from_raw_os_error(22));
        let r: RemoteError = MountError::Kernel {
            target: "/m".into(),
            source: einval,
        }
        .into();
        assert_eq!(r.code, ErrorCode::InvalidArgument);
        assert!(r.message.contains("Invalid argument"), "{}", r.message);
        let r: RemoteError = MountError::UnknownFsType("vfat".into()).into();
        assert_eq!(r.code, ErrorCode::InvalidArgument);
        let waited = std::time::Duration::from_millis(5);
        let host = |e: HostError| RemoteError::from(MountError::from(e));
        let r = host(HostError::Timeout {
            actor: "mount",
            waited,
        });
        assert_eq!(r.code, ErrorCode::Timeout);
        assert!(r.message.contains("deadline passed"), "{}", r.message);
        assert_eq!(
            host(HostError::Stopped("mount")).code,
            ErrorCode::Unavailable
        );
        assert_eq!(
            host(HostError::Panicked("mount")).code,
            ErrorCode::Unavailable
        );
    }
}
