//! The three attachment kinds. Each driver validates its source before touching anything,
//! creates the kernel object, and undoes its own partial work when a later step fails.

pub(crate) mod local;
pub(crate) mod loopdev;
pub(crate) mod rbd;
pub(crate) mod rbd_fuse;

use crate::error::AttachError;
use crate::store::Backing;
use imagebus_sys::loopdev::LoopHold;
use std::path::{Path, PathBuf};

/// What a driver created.
#[derive(Debug)]
pub struct Mapped {
    /// The block device node.
    pub device: PathBuf,
    /// `krbd`, `rbd-fuse`, `loop` or `local`.
    pub driver: &'static str,
    /// Whether the device is read-only.
    pub read_only: bool,
    /// What to record for teardown and reconciliation.
    pub backing: Backing,
    /// The open loop device of a binding the kernel frees unless kept (see
    /// [`LoopHold`]): kept once the record is durable, so that a crash before that leaves
    /// no loop device behind. Empty for the other drivers.
    pub hold: LoopHold,
}

/// Checks that a caller-given path is absolute, has no `..` components and no NUL byte
/// (which no syscall takes: it would fail later as an internal error).
pub fn check_path(what: &str, path: &Path) -> Result<(), AttachError> {
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(AttachError::Invalid(format!(
            "{what} {:?} must not contain a NUL byte",
            imagebus_bus::echo(&path.to_string_lossy())
        )));
    }
    if !path.is_absolute() {
        return Err(AttachError::Invalid(format!(
            "{what} {path:?} must be an absolute path"
        )));
    }
    if !imagebus_sys::paths::is_plain_absolute(path) {
        return Err(AttachError::Invalid(format!(
            "{what} {path:?} must not contain '..'"
        )));
    }
    Ok(())
}
