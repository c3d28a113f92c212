//! Persistence: what the mount module writes, where, and the ordered writer.
//!
//! Two files, each `{"version": 1, "data": ...}`, mode 0600, written atomically by
//! `imagebus_sys::state::StateFile` (temp file, fsync, rename, fsync of the directory):
//! - the records, `<run_dir>/mounts.json` ([`Db`]: `{next_id, mounts}`). They describe
//!   kernel mounts, which do not survive a reboot, so they live beside the mountpoints (a
//!   tmpfs such as `/run` in production): after `kill -9` they are all there; after a
//!   reboot they are gone together with the mounts.
//! - the id floor, `<state_dir>/mount-ids.json` ([`IdFloor`]): every id below it may have
//!   been handed out. Raised by [`ID_BLOCK`] ids at a time, before a records file with an
//!   id above it is written, so ids are never reused, even across reboots, for one durable
//!   write per block.
//!
//! Commands run concurrently, so the state changes in steps and each command that changed
//! something takes a [`Snapshot`] (a copy of the records and a sequence number) in a step
//! and hands it to [`Store::write`] before replying. The writer writes one snapshot at a
//! time and skips a snapshot older than the last one written: that one was taken later, so
//! it already contains the change. An older snapshot never overwrites a newer one.
//!
//! A crash between a kernel change and the records write leaves kernel objects the records
//! do not know; start-up reconciliation (`engine/reconcile.rs`) finds them by their traces
//! (mountpoint directories, `Holder::Mount(id)` references on attachments) and cleans them
//! up.

use crate::config::{MountConfig, MountSys, STATE_VERSION};
use crate::error::MountError;
use imagebus_schema::mount::MountInfo;
use imagebus_schema::Holder;
use imagebus_sys::state::StateFile;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// How many ids one durable write of the id floor covers.
pub(crate) const ID_BLOCK: u64 = 256;

/// The kind of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A filesystem on an attachment.
    Image,
    /// An overlay.
    Overlay,
    /// A bind mount.
    Bind,
}

impl Kind {
    /// `image`, `overlay` or `bind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Overlay => "overlay",
            Kind::Bind => "bind",
        }
    }
}

/// Upper and work directories of an overlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayDirs {
    /// overlayfs `upperdir`.
    pub upper: PathBuf,
    /// overlayfs `workdir`.
    pub work: PathBuf,
    /// Removed (recursively) on unmount: `Some` for ephemeral overlays.
    pub ephemeral_root: Option<PathBuf>,
}

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// Never reused.
    pub id: u64,
    /// Unique name.
    #[serde(default)]
    pub name: Option<String>,
    /// What kind of mount.
    pub kind: Kind,
    /// `<run_dir>/mounts/<id>`.
    pub mountpoint: PathBuf,
    /// Filesystem type as mounted (`none` for binds).
    pub fs_type: String,
    /// Device or source path (for operators).
    pub source: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
    /// The attachment under an image mount; we hold it as `Holder::Mount(id)`.
    #[serde(default)]
    pub attachment: Option<u64>,
    /// Mounts this one holds as `Holder::Mount(id)` (overlay lowers, bind base).
    #[serde(default)]
    pub children: Vec<u64>,
    /// The digest of the image-store image under a `stored` mount; we hold it as
    /// `Holder::Mount(id)`.
    #[serde(default)]
    pub image: Option<String>,
    /// Who holds this mount.
    pub holders: BTreeSet<Holder>,
    /// Overlay directories.
    #[serde(default)]
    pub overlay: Option<OverlayDirs>,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

impl MountRecord {
    /// The reply form.
    pub fn info(&self) -> MountInfo {
        MountInfo {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind.as_str().to_string(),
            mountpoint: self.mountpoint.clone(),
            fs_type: self.fs_type.clone(),
            read_only: self.read_only,
            source: self.source.clone(),
            upper_dir: self.overlay.as_ref().map(|o| o.upper.clone()),
            work_dir: self.overlay.as_ref().map(|o| o.work.clone()),
            attachment: self.attachment,
            children: self.children.clone(),
            holders: self.holders.iter().cloned().collect(),
            created_at: self.created_at,
        }
    }

    /// Whether this is an overlay whose upper directory lies under `dir` (kept there).
    pub fn persists_in(&self, dir: &std::path::Path) -> bool {
        self.overlay
            .as_ref()
            .is_some_and(|o| o.ephemeral_root.is_none() && o.upper.starts_with(dir))
    }
}

/// The whole persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Db {
    /// The next id to hand out; only ever grows.
    pub next_id: u64,
    /// Every mount by id.
    pub mounts: BTreeMap<u64, MountRecord>,
}

impl Default for Db {
    fn default() -> Self {
        Self {
            next_id: 1,
            mounts: BTreeMap::new(),
        }
    }
}

impl Db {
    /// Whether a mount already has `name`.
    pub fn name_taken(&self, name: &str) -> bool {
        self.mounts
            .values()
            .any(|r| r.name.as_deref() == Some(name))
    }

    /// Takes a fresh id.
    pub fn allocate(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// The durable id floor: every id below `id_floor` may have been handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdFloor {
    /// The lowest id never handed out.
    pub id_floor: u64,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The records as of one step, numbered in the order the snapshots were taken.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) seq: u64,
    pub(crate) db: Db,
}

/// What the writer has made durable.
#[derive(Debug)]
struct Written {
    /// The newest snapshot written.
    seq: u64,
    /// The id floor on disk.
    id_floor: u64,
}

/// The two state files and the ordered writer (shared by every command).
#[derive(Debug)]
pub(crate) struct Store {
    records: StateFile<Db>,
    ids: StateFile<IdFloor>,
    written: tokio::sync::Mutex<Written>,
}

impl Store {
    /// Prepares the directories and reads both files: the records (`None` on a first start
    /// or after a reboot, then `next_id` starts at the id floor). Touches no mount.
    pub(crate) async fn load(cfg: &MountConfig, sys: &MountSys) -> Result<(Self, Db), MountError> {
        let records: StateFile<Db> = StateFile::new(cfg.records_file(), STATE_VERSION);
        let ids: StateFile<IdFloor> = StateFile::new(cfg.ids_file(), STATE_VERSION);
        let (state_dir, run_dir) = (cfg.state_dir.clone(), cfg.run_dir.clone());
        let (r, i, paths) = (records.clone(), ids.clone(), sys.paths.clone());
        let (db, floor) = imagebus_sys::blocking(move || -> Result<_, MountError> {
            imagebus_sys::state::ensure_private_dir(&state_dir)?;
            paths
                .create_dir_all(&run_dir, 0o755)
                .map_err(|e| MountError::sys(format!("creating {run_dir:?}"), e))?;
            Ok((r.load()?, i.load()?))
        })
        .await
        .map_err(|e| MountError::Internal(format!("state loader: {e}")))??;
        let id_floor = floor.map_or(1, |f| f.id_floor);
        // Records present: the process restarted, they are exact. Absent: a reboot (or a
        // first start), continue above every id that may have been handed out.
        let db = db.unwrap_or_else(|| Db {
            next_id: id_floor,
            ..Db::default()
        });
        let store = Self {
            records,
            ids,
            written: tokio::sync::Mutex::new(Written { seq: 0, id_floor }),
        };
        Ok((store, db))
    }

    /// Makes `snap` durable, unless a newer snapshot already is: raises the id floor first
    /// when `next_id` passed it, then writes the records (atomic, 0600). Returns once the
    /// state including `snap` is on disk.
    pub(crate) async fn write(&self, snap: Snapshot) -> Result<(), MountError> {
        let mut written = self.written.lock().await;
        if snap.seq <= written.seq {
            return Ok(());
        }
        let raise = (snap.db.next_id > written.id_floor).then(|| snap.db.next_id + ID_BLOCK - 1);
        let (records, ids) = (self.records.clone(), self.ids.clone());
        imagebus_sys::blocking(move || -> Result<(), MountError> {
            if let Some(id_floor) = raise {
                ids.save(&IdFloor { id_floor })?;
            }
            records.save(&snap.db)?;
            Ok(())
        })
        .await
        .map_err(|e| MountError::Internal(format!("state writer: {e}")))??;
        written.seq = snap.seq;
        if let Some(floor) = raise {
            written.id_floor = floor;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_schema::Selector;

    #[test]
    fn db_round_trips_through_json() {
        let mut db = Db::default();
        let id = db.allocate();
        db.mounts.insert(
            id,
            MountRecord {
                id,
                name: Some("web".into()),
                kind: Kind::Overlay,
                mountpoint: "/run/ib/mounts/1".into(),
                fs_type: "overlay".into(),
                source: "overlay".into(),
                read_only: false,
                attachment: None,
                children: vec![2, 3],
                image: None,
                holders: BTreeSet::from([Holder::User, Holder::Container(4)]),
                overlay: Some(OverlayDirs {
                    upper: "/u".into(),
                    work: "/w".into(),
                    ephemeral_root: None,
                }),
                created_at: 5,
            },
        );
        let text = serde_json::to_string(&db).unwrap();
        let back: Db = serde_json::from_str(&text).unwrap();
        assert_eq!(back, db);
        assert_eq!(back.next_id, 2);
        let state = crate::engine::State::new(back.clone());
        assert_eq!(state.find(&Selector::Name("web".into())), Some(1));
        assert_eq!(state.find(&Selector::Id(9)), None);
        let info = back.mounts[&1].info();
        assert_eq!(info.kind, "overlay");
        assert_eq!(info.holders, vec![Holder::User, Holder::Container(4)]);
    }

    #[tokio::test]
    async fn the_writer_never_lets_an_older_snapshot_overwrite_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = MountConfig {
            state_dir: dir.path().join("state"),
            run_dir: dir.path().join("run"),
        };
        let sys = MountSys::linux();
        let (store, db) = Store::load(&cfg, &sys).await.unwrap();
        assert_eq!(db, Db::default());
        let newer = Db {
            next_id: 3,
            ..Db::default()
        };
        store
            .write(Snapshot {
                seq: 2,
                db: newer.clone(),
            })
            .await
            .unwrap();
        // Taken earlier, written later: skipped.
        store
            .write(Snapshot {
                seq: 1,
                db: Db::default(),
            })
            .await
            .unwrap();
        let (_, back) = Store::load(&cfg, &sys).await.unwrap();
        assert_eq!(back, newer);
        let floor = std::fs::read_to_string(cfg.ids_file()).unwrap();
        assert!(floor.contains("\"id_floor\": 258"), "{floor}");
    }
}
