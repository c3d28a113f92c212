//! What the mount module persists: one record per mount plus the id counter
//! (`<run_dir>/mounts.json`) and the durable id floor (`<state_dir>/mount-ids.json`), both
//! `{"version": 1, "data": ...}`, mode 0600, written atomically by
//! `imagebus_sys::state::StateFile`. See `engine.rs` for why two files.

use imagebus_schema::mount::MountInfo;
use imagebus_schema::{Holder, Selector};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

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
            attachment: self.attachment,
            children: self.children.clone(),
            holders: self.holders.iter().cloned().collect(),
            created_at: self.created_at,
        }
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
    /// The id a selector points at, if any.
    pub fn find(&self, target: &Selector) -> Option<u64> {
        match target {
            Selector::Id(id) => self.mounts.contains_key(id).then_some(*id),
            Selector::Name(name) => self
                .mounts
                .values()
                .find(|r| r.name.as_deref() == Some(name.as_str()))
                .map(|r| r.id),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(back.find(&Selector::Name("web".into())), Some(1));
        assert_eq!(back.find(&Selector::Id(9)), None);
        let info = back.mounts[&1].info();
        assert_eq!(info.kind, "overlay");
        assert_eq!(info.holders, vec![Holder::User, Holder::Container(4)]);
    }
}
