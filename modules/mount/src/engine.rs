//! The mount module's state machine: the records, reference counting and collection.
//! Owned by the actor task; every method runs on it, one command at a time.
//!
//! Persistence: the state file is written once at the end of each command that changed
//! something. A crash in between leaves kernel objects the state does not know; start-up
//! reconciliation (`reconcile.rs`) finds them by their traces (mountpoint directories,
//! `Holder::Mount(id)` references on attachments) and cleans them up.

use crate::config::{MountConfig, MountSys, STATE_VERSION};
use crate::error::MountError;
use crate::record::{Db, MountRecord};
use imagebus_schema::attach::AttachModule;
use imagebus_schema::mount::MountInfo;
use imagebus_schema::{Holder, Selector};
use imagebus_sys::mount::Unmounted;
use imagebus_sys::state::StateFile;
use std::sync::Arc;

/// The mount module's state and dependencies.
pub(crate) struct Mounts {
    pub(crate) cfg: MountConfig,
    pub(crate) sys: MountSys,
    pub(crate) attach: Arc<dyn AttachModule>,
    pub(crate) db: Db,
    file: StateFile<Db>,
}

impl std::fmt::Debug for Mounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounts")
            .field("cfg", &self.cfg)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Mounts {
    /// Loads the state (empty when there is none); does not touch the kernel.
    pub(crate) async fn load(
        cfg: MountConfig,
        sys: MountSys,
        attach: Arc<dyn AttachModule>,
    ) -> Result<Self, MountError> {
        cfg.validate()?;
        let file: StateFile<Db> = StateFile::new(cfg.state_file(), STATE_VERSION);
        let loader = file.clone();
        let dir = cfg.state_dir.clone();
        let db = tokio::task::spawn_blocking(move || {
            imagebus_sys::state::ensure_private_dir(&dir)?;
            loader.load()
        })
        .await
        .map_err(|e| MountError::Internal(format!("state loader: {e}")))??
        .unwrap_or_default();
        Ok(Self {
            cfg,
            sys,
            attach,
            db,
            file,
        })
    }

    /// Runs `f` with the syscall seams on the blocking pool.
    pub(crate) async fn blocking<R, F>(&self, f: F) -> Result<R, MountError>
    where
        R: Send + 'static,
        F: FnOnce(&MountSys) -> R + Send + 'static,
    {
        let sys = self.sys.clone();
        tokio::task::spawn_blocking(move || f(&sys))
            .await
            .map_err(|e| MountError::Internal(format!("blocking task: {e}")))
    }

    /// Writes the state file (atomic, 0600).
    pub(crate) async fn persist(&self) -> Result<(), MountError> {
        let file = self.file.clone();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || file.save(&db))
            .await
            .map_err(|e| MountError::Internal(format!("state writer: {e}")))??;
        Ok(())
    }

    fn resolve(&self, target: &Selector) -> Result<u64, MountError> {
        self.db
            .find(target)
            .ok_or_else(|| MountError::NotFound(target.clone()))
    }

    fn record(&self, id: u64) -> Result<&MountRecord, MountError> {
        self.db
            .mounts
            .get(&id)
            .ok_or(MountError::NotFound(Selector::Id(id)))
    }

    pub(crate) fn get(&self, target: &Selector) -> Result<MountInfo, MountError> {
        Ok(self.record(self.resolve(target)?)?.info())
    }

    pub(crate) fn list(&self) -> Vec<MountInfo> {
        self.db.mounts.values().map(MountRecord::info).collect()
    }

    pub(crate) async fn acquire(
        &mut self,
        target: &Selector,
        holder: Holder,
    ) -> Result<MountInfo, MountError> {
        let id = self.resolve(target)?;
        let rec = self
            .db
            .mounts
            .get_mut(&id)
            .ok_or(MountError::NotFound(Selector::Id(id)))?;
        if rec.holders.insert(holder) {
            let info = rec.info();
            self.persist().await?;
            return Ok(info);
        }
        Ok(rec.info())
    }

    pub(crate) async fn release(&mut self, id: u64, holder: Holder) -> Result<(), MountError> {
        if !self
            .db
            .mounts
            .get(&id)
            .is_some_and(|r| r.holders.contains(&holder))
        {
            return Ok(());
        }
        let result = self.release_inner(id, holder).await;
        self.persist().await?;
        result
    }

    pub(crate) async fn unmount(
        &mut self,
        target: &Selector,
        force: bool,
    ) -> Result<(), MountError> {
        let id = self.resolve(target)?;
        let rec = self.record(id)?;
        let others: Vec<Holder> = rec
            .holders
            .iter()
            .filter(|h| **h != Holder::User)
            .cloned()
            .collect();
        if !others.is_empty() && !force {
            return Err(MountError::InUse {
                id,
                holders: others,
            });
        }
        if force && !others.is_empty() {
            tracing::warn!(id, holders = ?others, "force unmount while held");
        }
        let result = self.collect(id).await;
        self.persist().await?;
        result
    }

    /// Removes `holder` from mount `id` (unknown ids and holders are fine) and collects
    /// the mount when no holder remains. Does not persist.
    pub(crate) async fn release_inner(
        &mut self,
        id: u64,
        holder: Holder,
    ) -> Result<(), MountError> {
        let Some(rec) = self.db.mounts.get_mut(&id) else {
            return Ok(());
        };
        rec.holders.remove(&holder);
        if rec.holders.is_empty() {
            Box::pin(self.collect(id)).await?;
        }
        Ok(())
    }

    /// Unmounts mount `id` lazily, removes its directories and record, then releases what
    /// it held (children, attachment), cascading. Kernel failures keep the record and
    /// return the error; failures further down the cascade are logged (reconciliation
    /// picks up what is left). Does not persist.
    pub(crate) async fn collect(&mut self, id: u64) -> Result<(), MountError> {
        let Some(rec) = self.db.mounts.get(&id).cloned() else {
            return Ok(());
        };
        let mp = rec.mountpoint.clone();
        let overlay_root = rec.overlay.as_ref().and_then(|o| o.ephemeral_root.clone());
        let outcome = self
            .blocking(move |sys| -> Result<Unmounted, MountError> {
                let how = sys
                    .mounter
                    .unmount(&mp, true)
                    .map_err(|e| MountError::sys(format!("unmounting {mp:?}"), e))?;
                if let Err(e) = sys.paths.remove_dir(&mp) {
                    tracing::warn!(error = %e, "removing mountpoint");
                }
                if let Some(root) = overlay_root {
                    if let Err(e) = sys.paths.remove_tree(&root) {
                        tracing::warn!(error = %e, "removing overlay directories");
                    }
                }
                Ok(how)
            })
            .await??;
        if outcome == Unmounted::NotMounted {
            tracing::info!(id, "mount had already vanished");
        }
        self.db.mounts.remove(&id);
        tracing::info!(id, kind = rec.kind.as_str(), "unmounted");
        for child in rec.children {
            if let Err(e) = Box::pin(self.release_inner(child, Holder::Mount(id))).await {
                tracing::warn!(id, child, error = %e, "releasing child mount");
            }
        }
        if let Some(att) = rec.attachment {
            if let Err(e) = self.attach.release(att, Holder::Mount(id)).await {
                tracing::warn!(id, attachment = att, error = %e, "releasing attachment");
            }
        }
        Ok(())
    }
}
