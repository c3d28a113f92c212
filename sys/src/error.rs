//! The error types of the syscall layer. There are exactly three, one per kind of caller,
//! and each says what was attempted, on what, and the OS error:
//!
//! - [`SysError`] (here): syscalls, ioctls, sysfs and external commands of the block and
//!   mount seams (`LoopDevices`, `RbdBus`, `Files`, `Runner`, `FuseMounts`, `Processes`,
//!   `Mounter`, `MountTable`, `FsProbe`, `PathOps`). Callers branch on the errno
//!   ([`SysError::errno`]).
//! - [`RuntimeError`] (in [`crate::runtime`]): the container seams (`Runtime`,
//!   `MonitorLauncher`, `Cgroups`, `NetNamespaces`) and bundle files. Callers branch on
//!   what the OCI runtime said (`NotFound`, `Failed` with its message, `Timeout`), which
//!   has no errno.
//! - [`StateError`] (in [`crate::state`]): versioned state files, where the caller must
//!   tell a corrupt file and one from another format version from an I/O error.
//!
//! They stay separate because each caller matches on different cases; a state failure
//! inside a container seam becomes a [`RuntimeError`] through the `From` below.

pub use crate::runtime::RuntimeError;
pub use crate::state::StateError;
use std::io;
use std::path::PathBuf;

/// A failed syscall, ioctl, sysfs access or external command.
///
/// Variants carry the operation and the path or program involved, so a caller can wrap
/// them in its own domain error without losing context. [`SysError::errno`] gives the raw
/// OS error where there is one, for callers that branch on `ENOENT`, `EBUSY` and the like.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// A syscall on a path failed.
    #[error("{op} {path:?}")]
    Io {
        /// What was attempted (`open`, `LOOP_CONFIGURE`, `write sysfs`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A syscall without a path failed.
    #[error("{op}")]
    Os {
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An external command could not be started.
    #[error("starting {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An external command ran and failed.
    #[error("{program} {}: {stderr}", exit_text(*.code))]
    Command {
        /// The program.
        program: String,
        /// Exit code, `None` when killed by a signal.
        code: Option<i32>,
        /// The tail of its stderr (callers must not pass secrets on command lines).
        stderr: String,
    },
    /// An external command did not finish in time (it was killed).
    #[error("{program} did not finish within {secs} s")]
    Timeout {
        /// The program.
        program: String,
        /// The deadline in seconds.
        secs: u64,
    },
    /// The kernel or a tool returned data we could not parse.
    #[error("unexpected data from {what}: {detail}")]
    Parse {
        /// Where the data came from.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The facility does not exist on this machine (no `/sys/bus/rbd`, no `/dev/loop-control`).
    #[error("{0} is not available on this machine")]
    Unavailable(String),
    /// Input that the syscall layer refuses (e.g. a malformed base64 key).
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl SysError {
    /// An [`SysError::Io`] from the last OS error.
    pub fn last_os(op: &'static str, path: impl Into<PathBuf>) -> Self {
        SysError::Io {
            op,
            path: path.into(),
            source: io::Error::last_os_error(),
        }
    }

    /// An [`SysError::Io`] from an `io::Error`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SysError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The raw OS error number, if this error has one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SysError::Io { source, .. }
            | SysError::Os { source, .. }
            | SysError::Spawn { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether this is `EACCES`, `EPERM` or `EROFS`.
    pub fn is_access_denied(&self) -> bool {
        matches!(self.errno(), Some(libc::EACCES | libc::EPERM | libc::EROFS))
    }

    /// Whether this is `EBUSY`.
    pub fn is_busy(&self) -> bool {
        self.errno() == Some(libc::EBUSY)
    }

    /// Whether this is an `ENOENT`.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc::ENOENT)
    }
}

/// Whether `err`, or any error in its `source()` chain, is an OS error saying the file
/// system is full (`ENOSPC`, or `EDQUOT`: the quota is). Modules answer such failures
/// `Unavailable` (a resource that may come back, nothing changed) instead of `Internal`.
pub fn is_out_of_space(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        let full = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            .is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT);
        if full {
            return true;
        }
        next = e.source();
    }
    false
}

impl From<StateError> for RuntimeError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Io { op, path, source } => RuntimeError::Io { op, path, source },
            other => RuntimeError::Parse {
                what: "a state file".into(),
                detail: other.to_string(),
            },
        }
    }
}

/// Result alias of the [`SysError`] seams.
pub type SysResult<T> = Result<T, SysError>;

/// "exited with status N", or "was killed by a signal" for `None`.
fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exited with status {c}"),
        None => "was killed by a signal".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_space_is_found_anywhere_in_the_chain() {
        let full = |n| StateError::Io {
            op: "write",
            path: "/s/x.json".into(),
            source: io::Error::from_raw_os_error(n),
        };
        assert!(is_out_of_space(&full(libc::ENOSPC)));
        assert!(is_out_of_space(&full(libc::EDQUOT)));
        assert!(!is_out_of_space(&full(libc::EIO)));
        let runtime = RuntimeError::from(full(libc::ENOSPC));
        assert!(is_out_of_space(&runtime));
        assert!(!is_out_of_space(&SysError::Unavailable("x".into())));
    }
}
