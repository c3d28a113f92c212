//! The slow part of an import, in a staging directory of its own: layers applied onto
//! `rootfs/`, then packed into one read-only filesystem image with `mkfs.erofs` (or
//! `mksquashfs` where erofs-utils is missing); a plain squashfs/erofs source is copied.
//! The caller moves the result into the store and removes the staging directory, whatever
//! happened.

use super::apply::{Applier, ApplyError};
use super::blobs::{decompress, Hashing};
use super::plan::Plan;
use imagebus_sys::cmd::{CommandCall, Runner};
use imagebus_sys::fsdetect::FsType;
use imagebus_sys::SysError;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A layer was refused (escape, malformed, deadline).
    #[error("layer {index} ({path}): {source}")]
    Layer {
        /// 0-based, lowest first.
        index: usize,
        /// Its path among the image's files.
        path: String,
        /// Why.
        #[source]
        source: ApplyError,
    },
    /// A layer blob is missing, unreadable or does not match its digest.
    #[error("{0}")]
    Blob(String),
    /// No tool could pack the tree, or it failed.
    #[error("{0}")]
    Pack(String),
    /// The deadline passed.
    #[error("the import ran past its deadline")]
    Timeout,
    /// Writing the staging directory failed.
    #[error("{0}")]
    Io(String),
}

/// What was built: the file (inside the staging directory) and its filesystem.
#[derive(Debug)]
pub struct Built {
    /// The image file.
    pub file: PathBuf,
    /// `erofs` or `squashfs`.
    pub fs: FsType,
}

/// Builds the image of `plan` in `staging` (an empty directory of ours).
pub fn build(
    plan: &Plan,
    staging: &Path,
    runner: &dyn Runner,
    deadline: Instant,
) -> Result<Built, BuildError> {
    if let Some((src, fs)) = &plan.file {
        let out = staging.join(format!("image.{}", fs.as_str()));
        std::fs::copy(src, &out).map_err(|e| BuildError::Io(format!("copying {src:?}: {e}")))?;
        return Ok(Built { file: out, fs: *fs });
    }
    let root = staging.join("rootfs");
    std::fs::create_dir(&root).map_err(|e| BuildError::Io(format!("creating {root:?}: {e}")))?;
    let mut applier = Applier::new(&root, deadline).map_err(|source| BuildError::Layer {
        index: 0,
        path: String::new(),
        source,
    })?;
    for (index, layer) in plan.layers.iter().enumerate() {
        // A blob with a digest is checked whole before any of it is unpacked, so a
        // corrupt download is refused as such (not as whatever its decoder trips on).
        if let Some(want) = &layer.digest {
            verify(plan, &layer.path, want)?;
        }
        let raw = plan.blobs.open(&layer.path).map_err(BuildError::Blob)?;
        let tar =
            decompress(raw).map_err(|e| BuildError::Blob(format!("layer {}: {e}", layer.path)))?;
        applier.apply(tar).map_err(|source| match source {
            ApplyError::Timeout => BuildError::Timeout,
            source => BuildError::Layer {
                index,
                path: layer.path.clone(),
                source,
            },
        })?;
    }
    pack(&root, staging, runner, deadline)
}

/// Reads the blob at `path` through and compares its digest with `want`.
fn verify(plan: &Plan, path: &str, want: &str) -> Result<(), BuildError> {
    let raw = plan.blobs.open(path).map_err(BuildError::Blob)?;
    let got = Hashing::new(raw)
        .finish()
        .map_err(|e| BuildError::Blob(format!("layer {path}: {e}")))?;
    if got != want {
        return Err(BuildError::Blob(format!(
            "layer {path} does not match its digest {want}"
        )));
    }
    Ok(())
}

/// Packs `root` into `staging/image.erofs` (or `.squashfs`).
fn pack(
    root: &Path,
    staging: &Path,
    runner: &dyn Runner,
    deadline: Instant,
) -> Result<Built, BuildError> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .ok_or(BuildError::Timeout)?;
    let root_s = root.to_string_lossy().into_owned();
    let erofs = staging.join("image.erofs");
    let call = CommandCall::new(
        "mkfs.erofs",
        [
            "--quiet".to_string(),
            erofs.to_string_lossy().into_owned(),
            root_s.clone(),
        ],
    );
    match runner.run(&call, left) {
        Ok(out) if out.success() => {
            return Ok(Built {
                file: erofs,
                fs: FsType::Erofs,
            })
        }
        Ok(out) => {
            return Err(BuildError::Pack(format!(
                "mkfs.erofs failed ({:?}): {}",
                out.code,
                out.stderr.trim()
            )))
        }
        Err(SysError::Timeout { .. }) => return Err(BuildError::Timeout),
        Err(SysError::Spawn { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BuildError::Pack(format!("mkfs.erofs: {e}"))),
    }
    let squashfs = staging.join("image.squashfs");
    let call = CommandCall::new(
        "mksquashfs",
        [
            root_s,
            squashfs.to_string_lossy().into_owned(),
            "-noappend".into(),
            "-no-progress".into(),
        ],
    );
    match runner.run(&call, left) {
        Ok(out) if out.success() => Ok(Built {
            file: squashfs,
            fs: FsType::Squashfs,
        }),
        Ok(out) => Err(BuildError::Pack(format!(
            "mksquashfs failed ({:?}): {}",
            out.code,
            out.stderr.trim()
        ))),
        Err(SysError::Timeout { .. }) => Err(BuildError::Timeout),
        Err(e) => Err(BuildError::Pack(format!(
            "neither mkfs.erofs (erofs-utils) nor mksquashfs (squashfs-tools) ran: {e}"
        ))),
    }
}
