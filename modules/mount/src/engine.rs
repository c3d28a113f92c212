//! The mount module's state machine: the records, reference counting and collection.
//! Owned by the actor task; every method runs on it, one command at a time.
//!
//! Persistence, in two files written atomically (`StateFile`: temp file, fsync, rename):
//! - the records, `<run_dir>/mounts.json`, written once at the end of each command that
//!   changed something. They describe kernel mounts, which do not survive a reboot, so they
//!   live beside the mountpoints (a tmpfs such as `/run` in production): after `kill -9`
//!   they are all there; after a reboot they are gone together with the mounts.
//! - the id floor, `<state_dir>/mount-ids.json`: every id below it may have been handed
//!   out. Raised by [`ID_BLOCK`] ids at a time, before an id above it is returned, so ids are
//!   never reused, even across reboots, for one durable write per block.
//!
//! A crash between a kernel change and the records write leaves kernel objects the records
//! do not know; start-up reconciliation (`reconcile.rs`) finds them by their traces
//! (mountpoint directories, `Holder::Mount(id)` references on attachments) and cleans them
//! up.

use crate::config::{MountConfig, MountSys, STATE_VERSION};
use crate::error::MountError;
use crate::record::IdFloor;
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
    records: StateFile<Db>,
    ids: StateFile<IdFloor>,
    id_floor: u64,
}

/// How many ids one durable write of the id floor covers.
pub(crate) const ID_BLOCK: u64 = 256;

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
        let records: StateFile<Db> = StateFile::new(cfg.records_file(), STATE_VERSION);
        let ids: StateFile<IdFloor> = StateFile::new(cfg.ids_file(), STATE_VERSION);
        let (state_dir, run_dir) = (cfg.state_dir.clone(), cfg.run_dir.clone());
        let (r, i, paths) = (records.clone(), ids.clone(), sys.paths.clone());
        let (db, floor) = tokio::task::spawn_blocking(move || -> Result<_, MountError> {
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
        Ok(Self {
            cfg,
            sys,
            attach,
            db,
            records,
            ids,
            id_floor,
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

    /// Writes the records (atomic, 0600), after raising the durable id floor if ids at or
    /// above it were taken.
    pub(crate) async fn persist(&mut self) -> Result<(), MountError> {
        let raise = (self.db.next_id > self.id_floor).then(|| self.db.next_id + ID_BLOCK - 1);
        let (records, ids, db) = (self.records.clone(), self.ids.clone(), self.db.clone());
        tokio::task::spawn_blocking(move || -> Result<(), MountError> {
            if let Some(id_floor) = raise {
                ids.save(&IdFloor { id_floor })?;
            }
            records.save(&db)?;
            Ok(())
        })
        .await
        .map_err(|e| MountError::Internal(format!("state writer: {e}")))??;
        if let Some(floor) = raise {
            self.id_floor = floor;
        }
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
