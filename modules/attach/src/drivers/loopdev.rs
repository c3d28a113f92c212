//! `loop`: a regular image file on a free loop device (`/dev/loop-control`).
//!
//! Autoclear is off on purpose: the device must outlive the fd that bound it, stay put
//! between Attach and a later Mount, and survive a daemon restart; with autoclear the
//! kernel would free it on the first last-close. Teardown is explicit (`LOOP_CLR_FD`, which
//! the kernel defers to the last close when a mount still holds the device), and orphans
//! from a crash are found by the tag we store in `lo_file_name` (see `reconcile`).

use super::{check_path, Mapped};
use crate::config::AttachSys;
use crate::error::AttachError;
use crate::store::Backing;
use imagebus_schema::attach::LoopSource;
use imagebus_sys::blockdev::FileKind;
use imagebus_sys::loopdev::LoopAttach;
use std::path::Path;

/// Pseudo filesystems whose files are never images (`/proc/self/mem` is a "regular file").
const PSEUDO: [&str; 2] = ["/proc", "/sys"];

/// What can be checked of a loop source without the kernel: an absolute plain path
/// without NUL, outside the pseudo filesystems.
pub fn validate(src: &LoopSource) -> Result<(), AttachError> {
    check_path("image file", &src.path)?;
    if PSEUDO.iter().any(|p| src.path.starts_with(p)) {
        return Err(AttachError::Invalid(format!(
            "image file {:?} is on a pseudo filesystem (/proc, /sys), not an image",
            src.path
        )));
    }
    Ok(())
}

/// Validates the file and binds it to a free loop device tagged `tag`.
pub fn attach(sys: &AttachSys, src: &LoopSource, tag: String) -> Result<Mapped, AttachError> {
    validate(src)?;
    let stat = sys
        .files
        .stat(&src.path)
        .map_err(|e| AttachError::sys(format!("checking {:?}", src.path), e))?;
    // A link into /proc or /sys: the file is on the same device as the pseudo filesystem.
    if let Some(st) = &stat {
        for p in PSEUDO {
            if matches!(sys.files.stat(Path::new(p)), Ok(Some(ps)) if ps.dev == st.dev) {
                return Err(AttachError::Invalid(format!(
                    "image file {:?} is on a pseudo filesystem ({p}), not an image",
                    src.path
                )));
            }
        }
    }
    match stat.map(|s| s.kind) {
        None => {
            return Err(AttachError::Invalid(format!(
                "image file {:?} does not exist",
                src.path
            )))
        }
        Some(FileKind::Regular) => {}
        Some(_) => {
            return Err(AttachError::Invalid(format!(
                "{:?} is not a regular file",
                src.path
            )))
        }
    }
    let req = LoopAttach {
        file: src.path.clone(),
        read_only: src.read_only,
        autoclear: false,
        tag,
    };
    let dev = sys.loops.attach(&req).map_err(|e| {
        if e.is_access_denied() {
            let mode = if src.read_only {
                "read-only"
            } else {
                "read-write"
            };
            AttachError::Invalid(format!("cannot open {:?} {mode}: {e}", src.path))
        } else {
            AttachError::sys(format!("binding {:?} to a loop device", src.path), e)
        }
    })?;
    Ok(Mapped {
        device: dev.device,
        driver: "loop",
        read_only: src.read_only,
        backing: Backing::Loop {
            number: dev.number,
            file: src.path.clone(),
            inode: dev.inode,
        },
        hold: imagebus_sys::loopdev::LoopHold::none(),
    })
}

/// Whether `/dev/loop<number>` is still ours: same tag, and its backing file (as sysfs
/// reports it; a deleted file gets a ` (deleted)` suffix) and inode are the recorded ones.
pub fn present(sys: &AttachSys, number: u32, tag: &str, file: &Path, inode: Option<u64>) -> bool {
    match sys.loops.status(number) {
        Ok(Some(d)) => {
            d.tag == tag
                && d.backing_file
                    .as_os_str()
                    .as_encoded_bytes()
                    .starts_with(file.as_os_str().as_encoded_bytes())
                && inode.is_none_or(|i| i == d.inode)
        }
        _ => false,
    }
}

/// Unbinds the device; an already free one is fine.
pub fn detach(sys: &AttachSys, number: u32) -> Result<(), AttachError> {
    sys.loops
        .detach(number)
        .map_err(|e| AttachError::sys(format!("detaching /dev/loop{number}"), e))
}
