//! Creating a mount and the inline children it defines, all or nothing: every step that
//! changed something pushes its inverse on an undo log, replayed in reverse on failure.

use crate::drivers::{bind, image, overlay, Built};
use crate::engine::Mounts;
use crate::error::MountError;
use crate::record::{now, MountRecord};
use crate::validate;
use imagebus_schema::mount::{MountInfo, MountRef, MountSource, MountSpec};
use imagebus_schema::{Holder, Selector};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The inverse of one step.
#[derive(Debug)]
pub(crate) enum Undo {
    /// Remove a directory we created (empty by then).
    RemoveDir(PathBuf),
    /// Remove a directory tree we created.
    RemoveTree(PathBuf),
    /// Lazily unmount what we mounted.
    Unmount(PathBuf),
    /// Give back an attachment reference.
    ReleaseAttach(u64, Holder),
    /// Take back a holder we added to an existing mount.
    DropHolder(u64, Holder),
    /// Forget a record we inserted.
    Forget(u64),
}

impl Mounts {
    /// Validates `spec`, creates it and its inline children, persists. On any failure
    /// everything created so far is undone and nothing is persisted.
    pub(crate) async fn mount(
        &mut self,
        spec: MountSpec,
        holder: Holder,
    ) -> Result<MountInfo, MountError> {
        validate::check(&spec, &self.db)?;
        let mut undo = Vec::new();
        let created = match self.create(spec, holder, &mut undo).await {
            Ok(id) => self.persist().await.map(|()| id),
            Err(e) => Err(e),
        };
        match created {
            Ok(id) => Ok(self
                .db
                .mounts
                .get(&id)
                .map(MountRecord::info)
                .ok_or_else(|| {
                    MountError::Internal(format!("mount {id} vanished right after creation"))
                })?),
            Err(e) => {
                tracing::warn!(error = %e, steps = undo.len(), "mount failed, undoing");
                self.rollback(undo).await;
                Err(e)
            }
        }
    }

    /// Creates one mount (recursively its inline children) owned by `holder`.
    pub(crate) async fn create(
        &mut self,
        spec: MountSpec,
        holder: Holder,
        undo: &mut Vec<Undo>,
    ) -> Result<u64, MountError> {
        let id = self.db.allocate();
        let mountpoint = self.cfg.mountpoint(id);
        let mounts_dir = self.cfg.mounts_dir();
        let mp = mountpoint.clone();
        self.blocking(move |sys| {
            sys.paths
                .create_dir_all(&mounts_dir, 0o755)
                .and_then(|()| sys.paths.create_dir(&mp, 0o755))
                .map_err(|e| MountError::sys(format!("creating mountpoint {mp:?}"), e))
        })
        .await??;
        undo.push(Undo::RemoveDir(mountpoint.clone()));
        let built: Built = match &spec.source {
            MountSource::Image(img) => image::build(self, id, img, undo).await?,
            MountSource::Overlay(ov) => overlay::build(self, id, ov, undo).await?,
            MountSource::Bind(b) => bind::build(self, id, b, undo).await?,
        };
        let record = MountRecord {
            id,
            name: spec.name,
            kind: built.kind,
            mountpoint,
            fs_type: built.fs_type,
            source: built.source,
            read_only: built.read_only,
            attachment: built.attachment,
            children: built.children,
            holders: BTreeSet::from([holder]),
            overlay: built.overlay,
            created_at: now(),
        };
        tracing::info!(id, kind = record.kind.as_str(), mountpoint = ?record.mountpoint, "mounted");
        self.db.mounts.insert(id, record);
        undo.push(Undo::Forget(id));
        Ok(id)
    }

    /// Gets a child mount for parent `parent`: references an existing one (adding
    /// `Holder::Mount(parent)`) or creates an inline one owned by the parent.
    pub(crate) async fn child(
        &mut self,
        parent: u64,
        r: &MountRef,
        undo: &mut Vec<Undo>,
    ) -> Result<u64, MountError> {
        let holder = Holder::Mount(parent);
        match r {
            MountRef::Existing(sel) => {
                let id = self
                    .db
                    .find(sel)
                    .ok_or_else(|| MountError::NotFound(sel.clone()))?;
                let rec = self
                    .db
                    .mounts
                    .get_mut(&id)
                    .ok_or(MountError::NotFound(Selector::Id(id)))?;
                if rec.holders.insert(holder.clone()) {
                    undo.push(Undo::DropHolder(id, holder));
                }
                Ok(id)
            }
            MountRef::Inline(spec) => Box::pin(self.create((**spec).clone(), holder, undo)).await,
        }
    }

    /// Replays `undo` in reverse; failures are logged and the rest still runs.
    pub(crate) async fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            let result = match &step {
                Undo::Forget(id) => {
                    self.db.mounts.remove(id);
                    Ok(())
                }
                Undo::DropHolder(id, holder) => {
                    if let Some(rec) = self.db.mounts.get_mut(id) {
                        rec.holders.remove(holder);
                    }
                    Ok(())
                }
                Undo::ReleaseAttach(att, holder) => self
                    .attach
                    .release(*att, holder.clone())
                    .await
                    .map_err(MountError::Attach),
                Undo::Unmount(path) => {
                    let path = path.clone();
                    self.blocking(move |sys| {
                        sys.mounter
                            .unmount(&path, true)
                            .map(|_| ())
                            .map_err(|e| MountError::sys(format!("unmounting {path:?}"), e))
                    })
                    .await
                    .and_then(|r| r)
                }
                Undo::RemoveDir(path) | Undo::RemoveTree(path) => {
                    let path = path.clone();
                    let tree = matches!(step, Undo::RemoveTree(_));
                    self.blocking(move |sys| {
                        let r = if tree {
                            sys.paths.remove_tree(&path)
                        } else {
                            sys.paths.remove_dir(&path)
                        };
                        r.map(|_| ())
                            .map_err(|e| MountError::sys(format!("removing {path:?}"), e))
                    })
                    .await
                    .and_then(|r| r)
                }
            };
            if let Err(e) = result {
                tracing::warn!(?step, error = %e, "undo step failed");
            }
        }
    }
}
