//! The attach module's persisted state: every attachment with what backs it in the kernel,
//! the id counter (ids are never reused), and a one-entry intent journal that lets
//! start-up find the kernel object of an attach that crashed before it was recorded.
//!
//! File: `<state_dir>/attach.json`, format version [`FORMAT_VERSION`], written through
//! [`imagebus_sys::state::StateFile`] (atomic, mode 0600). Secrets are never in it: the
//! source is stored redacted, and an rbd-fuse key lives only in its attachment's private
//! Ceph config file.

use crate::error::AttachError;
use imagebus_schema::attach::{AttachInfo, AttachSource};
use imagebus_schema::{Holder, Selector};
use imagebus_sys::state::StateFile;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Version of the on-disk layout.
pub const FORMAT_VERSION: u32 = 1;

/// What backs an attachment in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Backing {
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
pub struct Record {
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

    /// The holders as `a, b, c`.
    pub fn holders_text(&self) -> String {
        self.holders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An attach in progress: written before the kernel is touched, cleared once the record
/// is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The id the attachment will get.
    pub id: u64,
}

/// The whole persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Db {
    /// Random token of this state directory; part of every loop tag, so that two daemons
    /// (or parallel tests) never take each other's devices for orphans.
    pub instance: String,
    /// The next id to hand out.
    pub next_id: u64,
    /// Attachments by id.
    pub records: BTreeMap<u64, Record>,
    /// The attach in progress, if a crash interrupted one.
    #[serde(default)]
    pub intent: Option<Intent>,
}

impl Db {
    /// An empty state with a fresh instance token.
    pub fn new(instance: String) -> Self {
        Self {
            instance,
            next_id: 1,
            records: BTreeMap::new(),
            intent: None,
        }
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

    /// The loop tag of attachment `id`: `imagebus-attach:<instance>:<id>`.
    pub fn loop_tag(&self, id: u64) -> String {
        format!("{}{id}", self.tag_prefix())
    }

    /// The common prefix of this instance's loop tags.
    pub fn tag_prefix(&self) -> String {
        format!("imagebus-attach:{}:", self.instance)
    }
}

/// Loads and saves [`Db`].
#[derive(Debug, Clone)]
pub struct Store {
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
        Ok(self.file.load()?)
    }

    /// Writes the state atomically.
    pub fn save(&self, db: &Db) -> Result<(), AttachError> {
        Ok(self.file.save(db)?)
    }
}
