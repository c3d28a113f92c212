//! The image store's engine: the state the actor owns ([`State`]), the context every
//! command shares ([`Ctx`]), and how a command reaches both ([`Job`]).
//!
//! What keeps concurrent commands apart:
//! - **keys**: every job holds the key of the digest it works on and of the name it
//!   gives, so two imports of one image (or one name) run one after the other, and the
//!   second finds the first's result;
//! - **reserved names**: an import reserves its name in a step before the slow work, so a
//!   `Tag` or another import cannot give it to another image meanwhile;
//! - **holders**: `Remove` checks the holders and removes the record in one step, so an
//!   `Acquire` either lands before (and the remove answers `Conflict`) or after (and gets
//!   `NotFound`).
//!
//! One file per verb: `import.rs`, `remove.rs` (`Remove`, `Tag`), `hold.rs` (`Acquire`,
//! `Release`), `reconcile.rs` (start-up).

pub(crate) mod hold;
pub(crate) mod import;
pub(crate) mod reconcile;
pub(crate) mod remove;

use crate::config::{ImageSys, StoreConfig};
use crate::error::ImageError;
use crate::oci::source::{digest_prefix, normalize_name};
use crate::store::{Db, ImageRecord, Snapshot, Store};
use imagebus_host::Host;
use imagebus_schema::image::ImageInfo;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// The image store's state, owned by the actor host.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The records (persisted).
    pub(crate) db: Db,
    /// Names reserved by imports in flight → the digest they will name.
    pub(crate) reserved: BTreeMap<String, String>,
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

    /// The digest `target` points at: a name (normalized), a full digest, or a unique
    /// digest prefix of 12 or more hex digits.
    pub(crate) fn find(&self, target: &str) -> Result<String, ImageError> {
        if let Ok(name) = normalize_name(target) {
            if let Some(r) = self.db.images.values().find(|r| r.names.contains(&name)) {
                return Ok(r.digest.clone());
            }
        }
        if let Some(prefix) = digest_prefix(target) {
            let mut found = self.db.images.keys().filter(|d| d.starts_with(&prefix));
            return match (found.next(), found.next()) {
                (Some(d), None) => Ok(d.clone()),
                (Some(_), Some(_)) => Err(ImageError::Ambiguous(target.to_string())),
                _ => Err(ImageError::NotFound(format!(
                    "image {:?}",
                    imagebus_bus::echo(target)
                ))),
            };
        }
        Err(ImageError::NotFound(format!(
            "image {:?}",
            imagebus_bus::echo(target)
        )))
    }

    /// The image that `name` (normalized) names or will name, if any.
    pub(crate) fn owner(&self, name: &str) -> Option<String> {
        self.reserved.get(name).cloned().or_else(|| {
            self.db
                .images
                .values()
                .find(|r| r.names.contains(name))
                .map(|r| r.digest.clone())
        })
    }

    /// `Get`.
    pub(crate) fn get(&self, target: &str) -> Result<ImageInfo, ImageError> {
        let digest = self.find(target)?;
        self.db
            .images
            .get(&digest)
            .map(ImageRecord::info)
            .ok_or_else(|| ImageError::NotFound(format!("image {digest}")))
    }

    /// `List`.
    pub(crate) fn list(&self) -> Vec<ImageInfo> {
        self.db.images.values().map(ImageRecord::info).collect()
    }

    /// A numbered copy of the records.
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        self.seq += 1;
        Snapshot {
            seq: self.seq,
            db: self.db.clone(),
        }
    }
}

/// What every command shares and never changes.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cfg: StoreConfig,
    pub(crate) sys: ImageSys,
    pub(crate) store: Store,
    /// Numbers staging directories.
    pub(crate) staging_seq: AtomicU64,
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

    /// Runs one short synchronous step on the state.
    pub(crate) async fn step<R, F>(&self, f: F) -> Result<R, ImageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut State) -> R + Send + 'static,
    {
        Ok(self.state.apply(f).await?)
    }

    /// Runs `f` on the blocking pool.
    pub(crate) async fn blocking<R, F>(&self, f: F) -> Result<R, ImageError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        imagebus_sys::blocking(f)
            .await
            .map_err(|e| ImageError::Internal(format!("blocking task: {e}")))
    }

    /// Takes a snapshot in a step and makes it durable.
    pub(crate) async fn save(&self) -> Result<(), ImageError> {
        let snap = self.step(State::snapshot).await?;
        self.ctx.store.write(snap).await
    }
}
