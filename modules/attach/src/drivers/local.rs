//! `local`: an existing block device, validated and recorded; we never create or remove it.

use super::{check_path, Mapped};
use crate::config::AttachSys;
use crate::error::AttachError;
use crate::store::Backing;
use imagebus_schema::attach::LocalSource;
use imagebus_sys::blockdev::FileKind;
use std::path::Path;

/// Validates the device (it must exist and be a block device) and records it.
pub fn attach(sys: &AttachSys, src: &LocalSource) -> Result<Mapped, AttachError> {
    check_path("device", &src.path)?;
    let stat = sys
        .files
        .stat(&src.path)
        .map_err(|e| AttachError::sys(format!("checking {:?}", src.path), e))?;
    match stat {
        None => Err(AttachError::Invalid(format!(
            "device {:?} does not exist",
            src.path
        ))),
        Some(s) if s.kind == FileKind::Block => Ok(Mapped {
            device: src.path.clone(),
            driver: "local",
            read_only: src.read_only,
            backing: Backing::Local { rdev: s.rdev },
            hold: imagebus_sys::loopdev::LoopHold::none(),
        }),
        Some(s) if s.kind == FileKind::Char => Err(AttachError::Invalid(format!(
            "{:?} is a character device, not a block device",
            src.path
        ))),
        Some(_) => Err(AttachError::Invalid(format!(
            "{:?} is not a block device",
            src.path
        ))),
    }
}

/// Whether the device is still there with the same device number.
pub fn present(sys: &AttachSys, device: &Path, rdev: u64) -> bool {
    matches!(sys.files.stat(device), Ok(Some(s)) if s.kind == FileKind::Block && s.rdev == rdev)
}
