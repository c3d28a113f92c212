//! Persistence: `<state_dir>/images.json` (`{"version": 1, "data": Db}`, mode 0600,
//! written atomically by `imagebus_sys::state::StateFile`), and the ordered writer.
//!
//! The image files themselves are `<state_dir>/images/<hex>.<fs>`. Images and their
//! holders survive a reboot (the files are on the state disk), so the records live beside
//! them. Holders that point at mounts gone with a reboot are released by the mount
//! module's start-up reconciliation.
//!
//! As in the other modules, each command that changed something takes a [`Snapshot`] in a
//! step and hands it to [`Store::write`] before replying; an older snapshot never
//! overwrites a newer one.

use crate::config::{StoreConfig, STATE_VERSION};
use crate::error::ImageError;
use imagebus_schema::image::{ImageConfig, ImageInfo};
use imagebus_schema::Holder;
use imagebus_sys::state::StateFile;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// One stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:<hex>`.
    pub digest: String,
    /// `NAME:TAG` names.
    pub names: BTreeSet<String>,
    /// `erofs` or `squashfs`.
    pub fs_type: String,
    /// The image file.
    pub file: PathBuf,
    /// Its size.
    pub size: u64,
    /// How it was packed when imported.
    pub format: String,
    /// Its config.
    #[serde(default)]
    pub config: ImageConfig,
    /// Who uses it.
    #[serde(default)]
    pub holders: BTreeSet<Holder>,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

impl ImageRecord {
    /// The reply form.
    pub fn info(&self) -> ImageInfo {
        ImageInfo {
            digest: self.digest.clone(),
            names: self.names.iter().cloned().collect(),
            fs_type: self.fs_type.clone(),
            file: self.file.clone(),
            size: self.size,
            format: self.format.clone(),
            config: self.config.clone(),
            holders: self.holders.iter().cloned().collect(),
            created_at: self.created_at,
        }
    }
}

/// The whole persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Db {
    /// Every image by digest.
    pub images: BTreeMap<String, ImageRecord>,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The records as of one step.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) seq: u64,
    pub(crate) db: Db,
}

/// The records file and the ordered writer.
#[derive(Debug)]
pub(crate) struct Store {
    records: StateFile<Db>,
    written: tokio::sync::Mutex<u64>,
}

impl Store {
    /// Prepares the directories (0700) and reads the records.
    pub(crate) async fn load(cfg: &StoreConfig) -> Result<(Self, Db), ImageError> {
        let records: StateFile<Db> = StateFile::new(cfg.records_file(), STATE_VERSION);
        let (dir, images) = (cfg.state_dir.clone(), cfg.images_dir());
        let r = records.clone();
        let db = imagebus_sys::blocking(move || -> Result<_, ImageError> {
            imagebus_sys::state::ensure_private_dir(&dir)?;
            imagebus_sys::state::ensure_private_dir(&images)?;
            Ok(r.load()?)
        })
        .await
        .map_err(|e| ImageError::Internal(format!("state loader: {e}")))??;
        let store = Self {
            records,
            written: tokio::sync::Mutex::new(0),
        };
        Ok((store, db.unwrap_or_default()))
    }

    /// Makes `snap` durable unless a newer snapshot already is.
    pub(crate) async fn write(&self, snap: Snapshot) -> Result<(), ImageError> {
        let mut written = self.written.lock().await;
        if snap.seq <= *written {
            return Ok(());
        }
        let records = self.records.clone();
        let seq = snap.seq;
        imagebus_sys::blocking(move || records.save(&snap.db))
            .await
            .map_err(|e| ImageError::Internal(format!("state writer: {e}")))??;
        *written = seq;
        Ok(())
    }
}
