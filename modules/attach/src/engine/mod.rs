//! The attach engine: the state the actor owns ([`State`]), what every job shares
//! ([`Ctx`]), and the helpers jobs use ([`Engine`]). One file per verb or concern:
//! [`attach`] (create), [`shared`] (shared read-only RBD mappings, Acquire), [`detach`]
//! (Detach, Release, removal and teardown), [`reap`] (the rbd-fuse reaper) and
//! [`reconcile`] (start-up).
//!
//! Concurrency: jobs run beside each other and do their slow work (syscalls, external
//! tools, waits for rbd-fuse) on the blocking pool through [`blocking`]; they change the
//! state only in short steps ([`Engine::step`]). A step that changes what is persisted
//! takes a [`Snapshot`]; the job makes it durable ([`Engine::persist`]) before it replies.
//! Attachments being created live in [`State::pending`] only (invisible to Get/List, not
//! acquirable, but their names and RBD images are taken); attachments being removed are in
//! [`State::removing`] (refused by Acquire, attach-shared and a second Detach).

pub(crate) mod attach;
pub(crate) mod detach;
pub(crate) mod holders;
pub(crate) mod reap;
pub(crate) mod reconcile;
pub(crate) mod shared;

use crate::config::{AttachConfig, AttachSys};
use crate::error::AttachError;
use crate::store::{Db, Record, Snapshot, Writer};
use imagebus_host::Host;
use imagebus_schema::attach::{AttachInfo, RbdSource};
use imagebus_schema::Selector;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The kind in this module's job keys: `Key::id(KIND, attachment id)`.
pub(crate) const KIND: &str = "attach";

/// What never changes while the actor runs; shared by every job.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub cfg: AttachConfig,
    pub sys: AttachSys,
    /// The random token of the state directory (in loop tags and krbd key names).
    pub instance: String,
    /// The ordered writer of `attach.json`.
    pub writer: Writer,
}

impl Ctx {
    /// The loop tag of attachment `id`: `imagebus-attach:<instance>:<id>`.
    pub fn loop_tag(&self, id: u64) -> String {
        format!("{}{id}", self.tag_prefix())
    }

    /// The common prefix of this instance's loop tags.
    pub fn tag_prefix(&self) -> String {
        format!("imagebus-attach:{}:", self.instance)
    }

    /// The description of attachment `id`'s krbd key.
    pub fn key_name(&self, id: u64) -> String {
        format!("imagebus-attach.{}.{id}", self.instance)
    }

    /// The rbd-fuse directory of attachment `id`.
    pub fn fuse_dir(&self, id: u64) -> PathBuf {
        self.cfg.rbd_dir().join(id.to_string())
    }
}

/// An RBD image as a mapping identity: pool, namespace, image, snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageId {
    pool: String,
    namespace: Option<String>,
    image: String,
    snapshot: Option<String>,
}

impl ImageId {
    pub fn of(src: &RbdSource) -> Self {
        Self {
            pool: src.pool.clone(),
            namespace: src.namespace.clone(),
            image: src.image.clone(),
            snapshot: src.snapshot.clone(),
        }
    }
}

/// What an attach in flight has reserved.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Its name.
    pub name: Option<String>,
    /// The RBD image it maps (not for loop and local).
    pub image: Option<ImageId>,
}

/// The state the actor owns.
#[derive(Debug)]
pub(crate) struct State {
    /// The persisted part: records, id counter, intents.
    pub db: Db,
    /// Attaches in flight by their (already allocated) id.
    pub pending: BTreeMap<u64, Pending>,
    /// Records being removed (their kernel objects are being torn down).
    pub removing: BTreeSet<u64>,
    /// rbd-fuse attachments with a restart queued or running.
    pub reviving: BTreeSet<u64>,
    /// When a failed rbd-fuse restart may be tried again, by attachment id.
    pub retry_after: BTreeMap<u64, Instant>,
    /// The number of the last snapshot taken.
    pub seq: u64,
}

impl State {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            pending: BTreeMap::new(),
            removing: BTreeSet::new(),
            reviving: BTreeSet::new(),
            retry_after: BTreeMap::new(),
            seq: 0,
        }
    }

    /// A copy of the persisted part, numbered after every earlier one.
    pub fn snapshot(&mut self) -> Snapshot {
        self.seq += 1;
        Snapshot {
            seq: self.seq,
            db: self.db.clone(),
        }
    }

    /// Get: a recorded attachment (also while it is being removed).
    pub fn get(&self, target: &Selector) -> Result<AttachInfo, AttachError> {
        Ok(self.db.find(target)?.info())
    }

    /// List: every recorded attachment, by id.
    pub fn list(&self) -> Vec<AttachInfo> {
        self.db.records.values().map(Record::info).collect()
    }

    /// The attachment a command names, for its job keys: its id and, for a shared one, the
    /// id of the attachment whose device it shares.
    pub fn resolve(&self, target: &Selector) -> Result<(u64, Option<u64>), AttachError> {
        let r = self.db.find(target)?;
        Ok((r.id, r.shared_of()))
    }

    /// Who has `name`: a record or an attach in flight.
    pub fn name_owner(&self, name: &str) -> Option<u64> {
        let recorded = self
            .db
            .records
            .values()
            .find(|r| r.name.as_deref() == Some(name))
            .map(|r| r.id);
        recorded.or_else(|| {
            self.pending
                .iter()
                .find(|(_, p)| p.name.as_deref() == Some(name))
                .map(|(id, _)| *id)
        })
    }

    /// A live record by id: not being removed.
    pub fn live(&self, id: u64, target: &Selector) -> Result<&Record, AttachError> {
        let r = self
            .db
            .records
            .get(&id)
            .ok_or_else(|| AttachError::NotFound(target.clone()))?;
        if self.removing.contains(&id) {
            return Err(AttachError::Removing { id });
        }
        Ok(r)
    }
}

/// A job's view of the actor: the host (for steps) and the shared context.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    pub host: Host<State>,
    pub ctx: Arc<Ctx>,
}

impl Engine {
    /// Runs one short step on the state.
    pub async fn step<R, F>(&self, f: F) -> Result<R, AttachError>
    where
        R: Send + 'static,
        F: FnOnce(&mut State) -> R + Send + 'static,
    {
        Ok(self.host.apply(f).await?)
    }

    /// Answers `f` from the current state.
    pub async fn read<R, F>(&self, f: F) -> Result<R, AttachError>
    where
        R: Send + 'static,
        F: FnOnce(&State) -> R + Send + 'static,
    {
        Ok(self.host.read(f).await?)
    }

    /// Makes `snap` (or a newer snapshot) durable.
    pub async fn persist(&self, snap: Snapshot) -> Result<(), AttachError> {
        self.ctx.writer.write(snap).await
    }

    /// Persists a snapshot if there is one; a failure is only logged (used on paths that
    /// already fail, or that start-up reconciliation repairs).
    pub async fn persist_quietly(&self, snap: Option<Snapshot>) {
        if let Some(snap) = snap {
            if let Err(e) = self.persist(snap).await {
                tracing::warn!(error = %e, "saving attach state");
            }
        }
    }
}

/// Runs `f` on the blocking pool in the current tracing span ([`imagebus_sys::blocking`]).
/// A panic in `f` is resumed in the caller (inside a job it kills the actor, as a panic in
/// a step would).
pub(crate) async fn blocking<R, F>(f: F) -> Result<R, AttachError>
where
    R: Send + 'static,
    F: FnOnce() -> Result<R, AttachError> + Send + 'static,
{
    match imagebus_sys::blocking(f).await {
        Ok(r) => r,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(AttachError::Unavailable(format!(
                "the blocking work of an attach command was cancelled: {e}"
            ))),
        },
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh instance token.
pub(crate) fn random_token() -> String {
    // 64 bits from the clock and the pid are enough to tell state directories apart.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:016x}",
        (nanos as u64) ^ (u64::from(std::process::id()) << 40)
    )
}
