//! Where the mount module keeps things, and the syscall seams it uses.

use crate::error::MountError;
use imagebus_sys::fsdetect::{FsProbe, LinuxFsProbe};
use imagebus_sys::mount::{LinuxMounter, Mounter};
use imagebus_sys::mountinfo::{MountTable, ProcMountTable};
use imagebus_sys::paths::{is_plain_absolute, LinuxPaths, PathOps};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the records file inside [`MountConfig::run_dir`].
pub const RECORDS_FILE: &str = "mounts.json";

/// Name of the durable id-floor file inside [`MountConfig::state_dir`].
pub const IDS_FILE: &str = "mount-ids.json";

/// Format version of both state files.
pub const STATE_VERSION: u32 = 1;

/// Directories of the mount module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountConfig {
    /// Durable state: the id floor (`mount-ids.json`, mode 0600, directory 0700), e.g.
    /// `/var/lib/imagebus/mount`.
    pub state_dir: PathBuf,
    /// Runtime state, best on a tmpfs, e.g. `/run/imagebus/mount`: the records
    /// (`mounts.json`, mode 0600), mountpoints (`mounts/<id>`) and ephemeral overlay
    /// directories (`overlays/<id>`). Everything under `mounts/` and `overlays/` is ours:
    /// what the records do not own at start-up is cleaned away.
    pub run_dir: PathBuf,
}

/// Characters overlayfs option syntax cannot carry in a path (we do not escape them).
pub(crate) fn has_overlay_unsafe_chars(path: &Path) -> bool {
    path.to_string_lossy().contains([',', ':', '\\', '\n'])
}

impl MountConfig {
    /// Checks that both directories are absolute, free of `..`, and that `run_dir` can
    /// appear in overlay options.
    pub fn validate(&self) -> Result<(), MountError> {
        for (what, dir) in [("state_dir", &self.state_dir), ("run_dir", &self.run_dir)] {
            if !is_plain_absolute(dir) {
                return Err(MountError::Invalid(format!(
                    "{what} {dir:?} must be an absolute path without '..'"
                )));
            }
        }
        if has_overlay_unsafe_chars(&self.run_dir) {
            return Err(MountError::Invalid(format!(
                "run_dir {:?} must not contain ',', ':', '\\' or newlines",
                self.run_dir
            )));
        }
        Ok(())
    }

    /// The records file.
    pub fn records_file(&self) -> PathBuf {
        self.run_dir.join(RECORDS_FILE)
    }

    /// The durable id-floor file.
    pub fn ids_file(&self) -> PathBuf {
        self.state_dir.join(IDS_FILE)
    }

    /// The directory holding every mountpoint.
    pub fn mounts_dir(&self) -> PathBuf {
        self.run_dir.join("mounts")
    }

    /// The mountpoint of mount `id`.
    pub fn mountpoint(&self, id: u64) -> PathBuf {
        self.mounts_dir().join(id.to_string())
    }

    /// The directory holding ephemeral overlay upper/work directories.
    pub fn overlays_dir(&self) -> PathBuf {
        self.run_dir.join("overlays")
    }

    /// The ephemeral upper/work root of overlay `id`.
    pub fn overlay_dir(&self, id: u64) -> PathBuf {
        self.overlays_dir().join(id.to_string())
    }
}

/// The syscall seams of the mount module (all from `imagebus-sys`).
#[derive(Debug, Clone)]
pub struct MountSys {
    /// mount(2) / umount2(2).
    pub mounter: Arc<dyn Mounter>,
    /// `/proc/self/mountinfo`.
    pub table: Arc<dyn MountTable>,
    /// Directories and path resolution.
    pub paths: Arc<dyn PathOps>,
    /// Superblock probing.
    pub probe: Arc<dyn FsProbe>,
}

impl MountSys {
    /// The real kernel.
    pub fn linux() -> Self {
        Self {
            mounter: Arc::new(LinuxMounter),
            table: Arc::new(ProcMountTable),
            paths: Arc::new(LinuxPaths),
            probe: Arc::new(LinuxFsProbe),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_validation() {
        let c = MountConfig {
            state_dir: "/var/lib/ib".into(),
            run_dir: "/run/ib".into(),
        };
        c.validate().unwrap();
        assert_eq!(c.mountpoint(7), PathBuf::from("/run/ib/mounts/7"));
        assert_eq!(c.overlay_dir(7), PathBuf::from("/run/ib/overlays/7"));
        assert_eq!(c.records_file(), PathBuf::from("/run/ib/mounts.json"));
        assert_eq!(c.ids_file(), PathBuf::from("/var/lib/ib/mount-ids.json"));
        let bad = MountConfig {
            run_dir: "/run/a:b".into(),
            ..c.clone()
        };
        assert!(bad.validate().is_err());
        let rel = MountConfig {
            state_dir: "state".into(),
            ..c
        };
        assert!(rel.validate().is_err());
    }
}
