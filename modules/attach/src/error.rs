//! The attach module's domain error and its one mapping to wire codes.

use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_host::HostError;
use imagebus_schema::Selector;
use imagebus_sys::state::StateError;
use imagebus_sys::SysError;

/// Everything that can go wrong in the attach module. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No attachment has that id or name.
    #[error("attachment {0} not found")]
    NotFound(Selector),
    /// The request is malformed or names something unusable; nothing was changed.
    #[error("invalid attach request: {0}")]
    Invalid(String),
    /// The name is taken by another attachment.
    #[error("name {:?} is already used by attachment {id}", imagebus_bus::echo(.name))]
    NameTaken {
        /// The name.
        name: String,
        /// Who has it.
        id: u64,
    },
    /// The same RBD image/snapshot is mapped already and sharing was not asked for.
    #[error(
        "{image} is already mapped by attachment {id}; ask for shared read-only use to share it"
    )]
    AlreadyMapped {
        /// `pool/[ns/]image[@snap]`.
        image: String,
        /// The attachment that maps it.
        id: u64,
    },
    /// Other holders still reference the attachment.
    #[error("attachment {id} is still held by {holders}; remove those first (or force)")]
    InUse {
        /// The attachment.
        id: u64,
        /// The remaining holders, comma-separated.
        holders: String,
    },
    /// A release of a `mount:N` holder while mount N still stands on the attachment: only
    /// the mount may drop it (by going away).
    #[error("attachment {id} is held by mount {mount}; unmount it instead")]
    HeldByOwner {
        /// The attachment.
        id: u64,
        /// The mount that holds it.
        mount: u64,
    },
    /// A `mount:N` holder whose mount does not exist or does not stand on the attachment.
    #[error("mount {mount} does not hold attachment {id} (no such mount, or it stands on another attachment)")]
    ForgedHolder {
        /// The attachment (`(new)` for one being created).
        id: String,
        /// The mount named in the holder.
        mount: u64,
    },
    /// The RBD image (or pool, or snapshot) does not exist.
    #[error("RBD image {0} does not exist")]
    ImageNotFound(String),
    /// The monitors rejected the user's key, or the user lacks the needed caps.
    #[error("Ceph refused access: {0}")]
    AccessDenied(String),
    /// The monitors or a needed kernel facility could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// This machine cannot do what was asked (e.g. a snapshot through rbd-fuse).
    #[error("{0}")]
    Unsupported(String),
    /// A syscall or tool failed.
    #[error("{what}")]
    Sys {
        /// What we were doing.
        what: String,
        /// The failure.
        #[source]
        source: SysError,
    },
    /// The state file could not be read or written.
    #[error("attach state")]
    State(#[from] StateError),
    /// The RBD image is being mapped or unmapped by another attachment right now.
    #[error("{image} is being {doing} by attachment {id}; try again when that has finished")]
    ImageBusy {
        /// `pool/[ns/]image[@snap]`.
        image: String,
        /// The attachment that is being created or removed.
        id: u64,
        /// `mapped` or `unmapped`.
        doing: &'static str,
    },
    /// The attachment is being detached by another command.
    #[error("attachment {id} is being detached")]
    Removing {
        /// The attachment.
        id: u64,
    },
    /// The caller's deadline passed before the command could start; nothing was changed.
    #[error("{0}")]
    Timeout(String),
    /// The actor is gone (shut down or crashed).
    #[error("the attach actor is not running")]
    Stopped,
}

impl From<HostError> for AttachError {
    fn from(err: HostError) -> Self {
        match err {
            HostError::Stopped(_) => AttachError::Stopped,
            HostError::Panicked(_) => AttachError::Unavailable(err.to_string()),
            HostError::Timeout { .. } => AttachError::Timeout(err.to_string()),
        }
    }
}

impl AttachError {
    /// Wraps a [`SysError`] with what we were doing.
    pub(crate) fn sys(what: impl Into<String>, source: SysError) -> Self {
        AttachError::Sys {
            what: what.into(),
            source,
        }
    }

    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        let code = match self {
            AttachError::NotFound(_) | AttachError::ImageNotFound(_) => ErrorCode::NotFound,
            AttachError::Invalid(_)
            | AttachError::AccessDenied(_)
            | AttachError::ForgedHolder { .. } => ErrorCode::InvalidArgument,
            AttachError::HeldByOwner { .. } => ErrorCode::Conflict,
            AttachError::NameTaken { .. }
            | AttachError::AlreadyMapped { .. }
            | AttachError::InUse { .. }
            | AttachError::ImageBusy { .. }
            | AttachError::Removing { .. } => ErrorCode::Conflict,
            AttachError::Timeout(_) => ErrorCode::Timeout,
            AttachError::Unavailable(_) | AttachError::Stopped => ErrorCode::Unavailable,
            AttachError::Unsupported(_) => ErrorCode::Unsupported,
            AttachError::Sys { .. } | AttachError::State(_) => ErrorCode::Internal,
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

impl From<AttachError> for RemoteError {
    fn from(err: AttachError) -> Self {
        RemoteError::with_chain(err.code(), &err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let e: RemoteError = AttachError::InUse {
            id: 3,
            holders: "mount:1".into(),
        }
        .into();
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.contains("mount:1"), "{}", e.message);
        let e: RemoteError = AttachError::NotFound(Selector::Id(9)).into();
        assert_eq!(e.code, ErrorCode::NotFound);
        let e: RemoteError =
            AttachError::sys("binding /dev/loop0", SysError::Invalid("x".into())).into();
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(e.message, "binding /dev/loop0: invalid input: x");
        // A full state directory: Unavailable (nothing changed, may come back).
        let full = StateError::Io {
            op: "write",
            path: "/s/attach.json".into(),
            source: std::io::Error::from_raw_os_error(libc_enospc()),
        };
        let e: RemoteError = AttachError::State(full).into();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(
            e.message.contains("No space left on device"),
            "{}",
            e.message
        );
        let e: RemoteError = AttachError::from(HostError::Timeout {
            actor: "attach",
            waited: std::time::Duration::from_millis(5),
        })
        .into();
        assert_eq!(e.code, ErrorCode::Timeout);
        assert!(e.message.contains("not started"), "{}", e.message);
        let e: RemoteError = AttachError::from(HostError::Panicked("attach")).into();
        assert_eq!(e.code, ErrorCode::Unavailable);
        let e: RemoteError = AttachError::from(HostError::Stopped("attach")).into();
        assert_eq!(e.code, ErrorCode::Unavailable);
        let e: RemoteError = AttachError::Removing { id: 4 }.into();
        assert_eq!(e.code, ErrorCode::Conflict);
    }

    /// ENOSPC (28 on Linux).
    fn libc_enospc() -> i32 {
        28
    }
}
