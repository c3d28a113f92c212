//! Where the image store keeps things, and the seams it uses.

use crate::error::ImageError;
use imagebus_sys::cmd::{LinuxRunner, Runner};
use imagebus_sys::paths::is_plain_absolute;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Name of the records file inside [`StoreConfig::state_dir`].
pub const RECORDS_FILE: &str = "images.json";

/// Format version of the records file.
pub const STATE_VERSION: u32 = 1;

/// Default bound of one import.
pub const DEFAULT_IMPORT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Directories and limits of the image store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Everything of the store, e.g. `/var/lib/imagebus/image` (0700): the records
    /// (`images.json`, 0600), the image files (`images/<hex>.erofs` or `.squashfs`, named
    /// by digest) and imports in progress (`staging/`, emptied at start-up).
    pub state_dir: PathBuf,
    /// How long one import may take once started.
    pub import_timeout: Duration,
}

impl StoreConfig {
    /// A configuration with the default import timeout.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            import_timeout: DEFAULT_IMPORT_TIMEOUT,
        }
    }

    /// Checks that the directory is absolute and free of `..`.
    pub fn validate(&self) -> Result<(), ImageError> {
        if !is_plain_absolute(&self.state_dir) {
            return Err(ImageError::Invalid(format!(
                "state_dir {:?} must be an absolute path without '..'",
                self.state_dir
            )));
        }
        Ok(())
    }

    /// The records file.
    pub fn records_file(&self) -> PathBuf {
        self.state_dir.join(RECORDS_FILE)
    }

    /// The directory of the image files.
    pub fn images_dir(&self) -> PathBuf {
        self.state_dir.join("images")
    }

    /// The file of image `digest` (`sha256:<hex>`) with filesystem `fs`.
    pub fn image_file(&self, digest: &str, fs: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.images_dir().join(format!("{hex}.{fs}"))
    }

    /// The directory of imports in progress.
    pub fn staging_dir(&self) -> PathBuf {
        self.state_dir.join("staging")
    }
}

/// The seams of the image store.
#[derive(Clone)]
pub struct ImageSys {
    /// Runs `mkfs.erofs` / `mksquashfs`.
    pub runner: Arc<dyn Runner>,
}

impl std::fmt::Debug for ImageSys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSys").finish_non_exhaustive()
    }
}

impl ImageSys {
    /// The real machine.
    pub fn linux() -> Self {
        Self {
            runner: Arc::new(LinuxRunner),
        }
    }
}
