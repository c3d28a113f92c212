//! The mount module's engine: the state the actor owns ([`State`]), the context every
//! command shares ([`Ctx`]), and how a command reaches both ([`Job`]).
//!
//! The state lives in the actor host; commands change it only in short synchronous steps
//! ([`Job::step`]) and do the slow work (kernel calls on the blocking pool, calls to the
//! attach module, state-file writes) between steps, so commands on different mounts run
//! concurrently. What keeps them apart:
//! - **reservations**: a create validates its whole spec and reserves its names and
//!   persistent overlay directories in one step, so a second create of the same name gets
//!   `Conflict`; ids are allocated in steps and never reused;
//! - **pending records**: records a create is still building (or saving) are hidden from
//!   `Get`, `List`, `Acquire`, `Unmount` and references until the create commits;
//! - **removing marks**: the step that decides to remove a mount (an unmount, or a
//!   release that left it without holders) marks it, and a marked mount is gone for every
//!   other command (`NotFound`), so an `Acquire` racing a cascade either lands before the
//!   decision (and keeps the mount) or is refused.
//!
//! One file per verb: `create.rs`, `remove.rs` (unmount, release, the collect cascade),
//! `acquire.rs` (and the reads), `reconcile.rs` (start-up), `holders.rs` (who may add or
//! drop a holder).

pub(crate) mod acquire;
pub(crate) mod create;
pub(crate) mod holders;
pub(crate) mod reconcile;
pub(crate) mod remove;

use crate::config::{MountConfig, MountSys};
use crate::error::MountError;
use crate::store::{Db, MountRecord, Snapshot, Store};
use imagebus_bus::RemoteError;
use imagebus_host::Host;
use imagebus_schema::attach::AttachModule;
use imagebus_schema::container::ContainerModule;
use imagebus_schema::image::ImageModule;
use imagebus_schema::mount::MountInfo;
use imagebus_schema::{Holder, Selector};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a record being created stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Kernel work in progress: hidden, and left out of snapshots (after a crash its
    /// traces are cleaned as orphans).
    Building,
    /// Built and being written: still hidden, but in every snapshot from now on.
    Saving,
}

/// What a release did to a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Released {
    /// Nothing (unknown mount or holder, or the mount is pending or being removed).
    Unchanged,
    /// The holder was dropped; others remain.
    Dropped,
    /// The last holder was dropped and the mount is now marked removing: collect it.
    Collect,
}

/// The mount module's state, owned by the actor host.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The records (persisted).
    pub(crate) db: Db,
    /// Records of creates in flight, by id.
    pub(crate) pending: BTreeMap<u64, Phase>,
    /// Mounts being removed.
    pub(crate) removing: BTreeSet<u64>,
    /// Ids of a create being undone: still pending, but they no longer claim their
    /// children and attachments, so the undo's releases pass the owners' checks.
    pub(crate) abandoned: BTreeSet<u64>,
    /// Names reserved by creates in flight.
    pub(crate) names: BTreeSet<String>,
    /// Persistent overlay directories reserved by creates in flight.
    pub(crate) persist_dirs: BTreeSet<PathBuf>,
    /// The number of the last snapshot taken.
    seq: u64,
}

impl State {
    /// The state of loaded records.
    pub(crate) fn new(db: Db) -> Self {
        Self {
            db,
            ..Self::default()
        }
    }

    /// Whether other commands may see and use mount `id`: committed, not being removed.
    pub(crate) fn is_visible(&self, id: u64) -> bool {
        self.db.mounts.contains_key(&id)
            && !self.pending.contains_key(&id)
            && !self.removing.contains(&id)
    }

    /// A visible record.
    pub(crate) fn visible(&self, id: u64) -> Option<&MountRecord> {
        self.db.mounts.get(&id).filter(|_| self.is_visible(id))
    }

    /// The visible mount a selector points at.
    pub(crate) fn find(&self, target: &Selector) -> Option<u64> {
        match target {
            Selector::Id(id) => self.is_visible(*id).then_some(*id),
            Selector::Name(name) => self
                .db
                .mounts
                .values()
                .find(|r| r.name.as_deref() == Some(name.as_str()) && self.is_visible(r.id))
                .map(|r| r.id),
        }
    }

    /// Whether `name` is used by any record (pending and removing ones too) or reserved.
    pub(crate) fn name_taken(&self, name: &str) -> bool {
        self.names.contains(name) || self.db.name_taken(name)
    }

    /// Whether `dir` holds the upper directory of any overlay, or is reserved.
    pub(crate) fn persist_dir_in_use(&self, dir: &Path) -> bool {
        self.persist_dirs.contains(dir) || self.db.mounts.values().any(|r| r.persists_in(dir))
    }

    /// `Get`.
    pub(crate) fn get(&self, target: &Selector) -> Result<MountInfo, MountError> {
        self.find(target)
            .and_then(|id| self.visible(id))
            .map(MountRecord::info)
            .ok_or_else(|| MountError::NotFound(target.clone()))
    }

    /// `List`: the visible mounts.
    pub(crate) fn list(&self) -> Vec<MountInfo> {
        self.db
            .mounts
            .values()
            .filter(|r| self.is_visible(r.id))
            .map(MountRecord::info)
            .collect()
    }

    /// Marks `id` removing if it exists, is not pending and is not marked yet.
    pub(crate) fn mark_removing(&mut self, id: u64) -> bool {
        self.db.mounts.contains_key(&id)
            && !self.pending.contains_key(&id)
            && self.removing.insert(id)
    }

    /// Drops `holder` from mount `id`; when that leaves it without holders, marks it
    /// removing in the same step. Pending and removing mounts are left alone.
    pub(crate) fn release_holder(&mut self, id: u64, holder: &Holder) -> Released {
        if self.pending.contains_key(&id) || self.removing.contains(&id) {
            return Released::Unchanged;
        }
        let Some(rec) = self.db.mounts.get_mut(&id) else {
            return Released::Unchanged;
        };
        if !rec.holders.remove(holder) {
            return Released::Unchanged;
        }
        if rec.holders.is_empty() {
            self.removing.insert(id);
            return Released::Collect;
        }
        Released::Dropped
    }

    /// A numbered copy of what is to be persisted: every record but those still being
    /// built.
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        self.seq += 1;
        let mut db = Db {
            next_id: self.db.next_id,
            mounts: BTreeMap::new(),
        };
        for (id, rec) in &self.db.mounts {
            if self.pending.get(id) != Some(&Phase::Building) {
                db.mounts.insert(*id, rec.clone());
            }
        }
        Snapshot { seq: self.seq, db }
    }
}

/// What every command shares and never changes: configuration, seams, the attach module
/// and the state files' writer.
pub(crate) struct Ctx {
    pub(crate) cfg: MountConfig,
    pub(crate) sys: MountSys,
    pub(crate) attach: Arc<dyn AttachModule>,
    /// The image store, for `stored` mounts (`None`: they are refused).
    pub(crate) image: Option<Arc<dyn ImageModule>>,
    /// The container module, asked whether a `Container(n)` holder is genuine (`None`:
    /// such holders are not checked; see `engine/holders.rs`).
    pub(crate) container: Option<Arc<dyn ContainerModule>>,
    pub(crate) store: Store,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("cfg", &self.cfg)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// How a job reaches the state (the host, or start-up reconciliation's own state).
pub(crate) type Access = imagebus_host::StateAccess<State>;

/// One command's view: the shared context and the state's steps.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) state: Access,
}

impl Job {
    /// A job of the running actor.
    pub(crate) fn new(ctx: Arc<Ctx>, host: Host<State>) -> Self {
        Self {
            ctx,
            state: Access::Host(host),
        }
    }

    /// Runs one short synchronous step on the state (atomic with respect to every other
    /// step and read).
    pub(crate) async fn step<R, F>(&self, f: F) -> Result<R, MountError>
    where
        R: Send + 'static,
        F: FnOnce(&mut State) -> R + Send + 'static,
    {
        Ok(self.state.apply(f).await?)
    }

    /// Runs `f` with the syscall seams on the blocking pool ([`imagebus_sys::blocking`]).
    pub(crate) async fn blocking<R, F>(&self, f: F) -> Result<R, MountError>
    where
        R: Send + 'static,
        F: FnOnce(&MountSys) -> R + Send + 'static,
    {
        let sys = self.ctx.sys.clone();
        imagebus_sys::blocking(move || f(&sys))
            .await
            .map_err(|e| MountError::Internal(format!("blocking task: {e}")))
    }

    /// Runs a clean-up call to the attach module (releasing what a failed or collected
    /// mount held) outside the caller's deadline: a job runs inside it, and a bus call
    /// made after it passed would fail at once and leak the attachment until the next
    /// start-up. The bus client still bounds the call by its own timeout.
    pub(crate) async fn cleanup<T, F, Fut>(&self, f: F) -> Result<T, RemoteError>
    where
        F: FnOnce(Arc<dyn AttachModule>) -> Fut,
        Fut: Future<Output = Result<T, RemoteError>>,
    {
        imagebus_bus::deadline::unbounded(f(self.ctx.attach.clone())).await
    }

    /// The image store, or `Unavailable` when this mount actor has none.
    pub(crate) fn images(&self) -> Result<Arc<dyn ImageModule>, MountError> {
        self.ctx.image.clone().ok_or_else(|| {
            MountError::Image(RemoteError::unavailable(
                "this mount actor has no image store".to_string(),
            ))
        })
    }

    /// Releases an image-store image held by `holder`, outside the caller's deadline (as
    /// [`Job::cleanup`]).
    pub(crate) async fn release_image(
        &self,
        digest: String,
        holder: Holder,
    ) -> Result<(), MountError> {
        let images = self.images()?;
        imagebus_bus::deadline::unbounded(images.release(digest, holder))
            .await
            .map_err(MountError::Image)
    }

    /// Takes a snapshot in a step and makes it durable (see `store.rs`).
    pub(crate) async fn save(&self) -> Result<(), MountError> {
        let snap = self.step(State::snapshot).await?;
        self.ctx.store.write(snap).await
    }
}
