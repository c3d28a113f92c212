//! The attach module's persistence: every attachment with what backs it in the kernel,
//! the id counter (ids are never reused), the intent journal that lets start-up find the
//! kernel object of an RBD attach that crashed before it was recorded, and the ordered
//! [`Writer`] through which every change reaches the disk.
//!
//! File: `<state_dir>/attach.json`, format version [`FORMAT_VERSION`], written through
//! [`imagebus_sys::state::StateFile`] (atomic, mode 0600). Secrets are never in it: the
//! source is stored redacted, and an rbd-fuse key lives only in its attachment's private
//! Ceph config file.
//!
//! The journal is a set of attachment ids (`intents`), one per RBD attach in flight. Files
//! written before attaches ran concurrently have a single `intent: {"id": N}` instead; it is
//! still read (and folded into the set).

use crate::engine::blocking;
use crate::error::AttachError;
use imagebus_schema::attach::{AttachInfo, AttachSource};
use imagebus_schema::{Holder, Selector};
use imagebus_sys::state::StateFile;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Version of the on-disk layout.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// What backs an attachment in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Backing {
    /// A loop device on a regular file.
    Loop {
        /// N of `/dev/loopN`.
        number: u32,
        /// The backing file.
        file: PathBuf,
        /// Its inode when attached (checked on reconcile).
        inode: u64,
    },
    /// A local block device we do not own.
    Local {
        /// Its device number when attached.
        rdev: u64,
    },
    /// A kernel RBD mapping.
    Krbd {
        /// `/dev/rbd<id>`.
        id: u32,
        /// Pool, for matching `/sys/bus/rbd/devices/<id>/pool`.
        pool: String,
        /// Image.
        image: String,
        /// Snapshot, `-` for the head.
        snapshot: String,
    },
    /// rbd-fuse exposing the image as a file, and a loop device on that file.
    RbdFuse {
        /// The rbd-fuse process.
        pid: u32,
        /// The attachment's private directory (config, log, FUSE mountpoint).
        dir: PathBuf,
        /// N of the loop device on the FUSE file.
        loop_number: u32,
    },
    /// Shares the device of another attachment (shared read-only RBD); holds
    /// `Holder::Attach(self)` on it.
    Shared {
        /// The attachment whose device this is.
        of: u64,
    },
}

/// One attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Never reused.
    pub id: u64,
    /// Unique name.
    pub name: Option<String>,
    /// The request, secret redacted.
    pub source: AttachSource,
    /// The device node.
    pub device: PathBuf,
    /// `krbd`, `rbd-fuse`, `loop` or `local`.
    pub driver: String,
    /// Whether the device is read-only.
    pub read_only: bool,
    /// Who holds references.
    pub holders: BTreeSet<Holder>,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// What backs it.
    pub backing: Backing,
}

impl Record {
    /// The reply form.
    pub fn info(&self) -> AttachInfo {
        AttachInfo {
            id: self.id,
            name: self.name.clone(),
            source: self.source.redacted(),
            device: self.device.clone(),
            driver: self.driver.clone(),
            read_only: self.read_only,
            holders: self.holders.iter().cloned().collect(),
            created_at: self.created_at,
        }
    }

    /// The attachment whose device this one shares, if it is a shared one.
    pub fn shared_of(&self) -> Option<u64> {
        match self.backing {
            Backing::Shared { of } => Some(of),
            _ => None,
        }
    }

    /// The holders as `a, b, c`.
    pub fn holders_text(&self) -> String {
        self.holders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The single intent of the files written before attaches ran concurrently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Intent {
    /// The id the attachment would have got.
    pub id: u64,
}

/// The whole persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Db {
    /// Random token of this state directory; part of every loop tag, so that two daemons
    /// (or parallel tests) never take each other's devices for orphans.
    pub instance: String,
    /// The next id to hand out.
    pub next_id: u64,
    /// Attachments by id.
    pub records: BTreeMap<u64, Record>,
    /// RBD attaches in progress (their ids): written before the kernel is touched,
    /// removed once the record is saved or the attach failed.
    #[serde(default)]
    pub intents: BTreeSet<u64>,
    /// The one intent of the older format; read only, folded into `intents` at load.
    #[serde(default, skip_serializing)]
    intent: Option<Intent>,
}

impl Db {
    /// An empty state with a fresh instance token.
    pub fn new(instance: String) -> Self {
        Self {
            instance,
            next_id: 1,
            records: BTreeMap::new(),
            intents: BTreeSet::new(),
            intent: None,
        }
    }

    /// Folds the older single intent into the set.
    fn migrate(mut self) -> Self {
        if let Some(old) = self.intent.take() {
            self.intents.insert(old.id);
        }
        self
    }

    /// Finds a record by id or name.
    pub fn find(&self, target: &Selector) -> Result<&Record, AttachError> {
        let found = match target {
            Selector::Id(id) => self.records.get(id),
            Selector::Name(name) => self
                .records
                .values()
                .find(|r| r.name.as_deref() == Some(name.as_str())),
        };
        found.ok_or_else(|| AttachError::NotFound(target.clone()))
    }
}

/// Loads and saves [`Db`].
#[derive(Debug, Clone)]
pub(crate) struct Store {
    file: StateFile<Db>,
}

impl Store {
    /// The store in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            file: StateFile::new(state_dir.join("attach.json"), FORMAT_VERSION),
        }
    }

    /// Reads the state, or `None` on first start.
    pub fn load(&self) -> Result<Option<Db>, AttachError> {
        Ok(self.file.load()?.map(Db::migrate))
    }

    /// Writes the state atomically.
    pub fn save(&self, db: &Db) -> Result<(), AttachError> {
        Ok(self.file.save(db)?)
    }
}

/// A copy of the state taken in the step that changed it, numbered in step order.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// Later steps have larger numbers.
    pub seq: u64,
    /// The state after the step.
    pub db: Db,
}

/// Writes snapshots in order: one at a time, and never one older than the last written
/// (that one already contains the older change). A command replies only once
/// [`Writer::write`] of its snapshot returned, so every reply is backed by the disk.
#[derive(Debug)]
pub(crate) struct Writer {
    store: Store,
    last: tokio::sync::Mutex<u64>,
}

impl Writer {
    /// A writer whose file already holds everything up to snapshot `0`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            last: tokio::sync::Mutex::new(0),
        }
    }

    /// Makes `snap` (or a newer snapshot) durable.
    pub async fn write(&self, snap: Snapshot) -> Result<(), AttachError> {
        let mut last = self.last.lock().await;
        if snap.seq <= *last {
            return Ok(());
        }
        let (store, seq) = (self.store.clone(), snap.seq);
        blocking(move || store.save(&snap.db)).await?;
        *last = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_single_intent_of_the_older_format_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"version": 1, "data": {"instance": "abc", "next_id": 4, "records": {},
            "intent": {"id": 3}}}"#;
        std::fs::write(dir.path().join("attach.json"), old).unwrap();
        let store = Store::new(dir.path());
        let db = store.load().unwrap().unwrap();
        assert_eq!(db.intents, BTreeSet::from([3]));
        store.save(&db).unwrap();
        let text = std::fs::read_to_string(dir.path().join("attach.json")).unwrap();
        assert!(!text.contains("\"intent\""), "{text}");
        assert_eq!(store.load().unwrap().unwrap().intents, BTreeSet::from([3]));
    }

    #[tokio::test]
    async fn an_older_snapshot_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let writer = Writer::new(store.clone());
        let mut db = Db::new("x".into());
        db.next_id = 7;
        writer
            .write(Snapshot {
                seq: 2,
                db: db.clone(),
            })
            .await
            .unwrap();
        db.next_id = 5;
        writer.write(Snapshot { seq: 1, db }).await.unwrap();
        assert_eq!(store.load().unwrap().unwrap().next_id, 7);
    }
}
