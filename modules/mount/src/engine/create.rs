//! `Mount`: creating a mount and the inline children it defines, all or nothing, in one
//! job.
//!
//! 1. [`begin`]: one step validates the whole spec against the state and reserves its
//!    names and persistent overlay directories (a concurrent create of one of them gets
//!    `Conflict`).
//! 2. [`Build::create`]: per mount, an id is allocated and marked pending in a step, the
//!    kernel work runs outside the actor, and the record is inserted (still pending,
//!    hidden) in a step. Referenced children gain `Holder::Mount(parent)` in a step that
//!    refuses pending and removing mounts. Every change pushes its inverse on the undo log.
//! 3. [`Build::commit`]: the records join the snapshots and are written; then a step makes
//!    them visible and drops the reservations.
//!
//! On any failure the undo log is replayed in reverse (kernel work, attachments, holders
//! through the release cascade, records in steps), then a step drops the pending ids and
//! the reservations.

use crate::drivers::{bind, image, overlay, stored, Built};
use crate::engine::remove;
use crate::engine::{Job, Phase, State};
use crate::error::MountError;
use crate::store::{now, MountRecord};
use crate::validate;
use imagebus_schema::mount::{MountInfo, MountRef, MountSource, MountSpec};
use imagebus_schema::{Holder, Selector};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

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
    /// Give back an image-store image (by digest).
    ReleaseImage(String, Holder),
    /// Take back a holder we added to an existing mount (collecting it if that was the
    /// last one by now).
    DropHolder(u64, Holder),
    /// Forget a record we inserted.
    Forget(u64),
}

/// What a create reserved in its first step.
#[derive(Debug, Default)]
pub(crate) struct Reservation {
    names: Vec<String>,
    persist_dirs: Vec<PathBuf>,
}

/// A create in progress: its job, its undo log and the ids it allocated.
pub(crate) struct Build<'a> {
    pub(crate) job: &'a Job,
    pub(crate) undo: Vec<Undo>,
    ids: Vec<u64>,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, MountError>> + Send + 'a>>;

/// The `Mount` command.
pub(crate) async fn mount(
    job: &Job,
    spec: MountSpec,
    holder: Holder,
) -> Result<MountInfo, MountError> {
    let reserved = begin(job, &spec).await?;
    let mut b = Build {
        job,
        undo: Vec::new(),
        ids: Vec::new(),
    };
    let built = match b.create(spec, holder).await {
        Ok(id) => b.commit().await.map(|()| id),
        Err(e) => Err(e),
    };
    match built {
        Ok(id) => b.finish(id, reserved).await,
        Err(e) => {
            tracing::warn!(error = %e, steps = b.undo.len(), "mount failed, undoing");
            b.rollback(reserved).await;
            Err(e)
        }
    }
}

/// Step 1: validates `spec` and reserves its names and persistent directories.
async fn begin(job: &Job, spec: &MountSpec) -> Result<Reservation, MountError> {
    let spec = spec.clone();
    job.step(move |st: &mut State| {
        let plan = validate::check(&spec, st)?;
        let r = Reservation {
            names: plan.names.into_iter().collect(),
            persist_dirs: plan.persist_dirs.into_iter().collect(),
        };
        st.names.extend(r.names.iter().cloned());
        st.persist_dirs.extend(r.persist_dirs.iter().cloned());
        Ok(r)
    })
    .await?
}

impl State {
    /// Forgets a create's pending ids and reservations.
    fn end_create(&mut self, ids: &[u64], r: &Reservation) {
        for id in ids {
            self.pending.remove(id);
            self.abandoned.remove(id);
        }
        for name in &r.names {
            self.names.remove(name);
        }
        for dir in &r.persist_dirs {
            self.persist_dirs.remove(dir);
        }
    }
}

impl Build<'_> {
    /// Step 2: creates one mount (recursively its inline children) owned by `holder`.
    pub(crate) async fn create(
        &mut self,
        spec: MountSpec,
        holder: Holder,
    ) -> Result<u64, MountError> {
        let id = self
            .job
            .step(|st: &mut State| {
                let id = st.db.allocate();
                st.pending.insert(id, Phase::Building);
                id
            })
            .await?;
        self.ids.push(id);
        let cfg = &self.job.ctx.cfg;
        let mountpoint = cfg.mountpoint(id);
        let (mounts_dir, mp) = (cfg.mounts_dir(), mountpoint.clone());
        self.job
            .blocking(move |sys| {
                sys.paths
                    .create_dir_all(&mounts_dir, 0o755)
                    .and_then(|()| sys.paths.create_dir(&mp, 0o755))
                    .map_err(|e| MountError::sys(format!("creating mountpoint {mp:?}"), e))
            })
            .await??;
        self.undo.push(Undo::RemoveDir(mountpoint.clone()));
        let built: Built = match &spec.source {
            MountSource::Image(img) => image::build(self, id, img).await?,
            MountSource::Overlay(ov) => overlay::build(self, id, ov).await?,
            MountSource::Bind(b) => bind::build(self, id, b).await?,
            MountSource::Stored(s) => stored::build(self, id, s).await?,
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
            image: built.image,
            holders: BTreeSet::from([holder]),
            overlay: built.overlay,
            created_at: now(),
        };
        tracing::info!(id, kind = record.kind.as_str(), mountpoint = ?record.mountpoint, "mounted");
        self.job
            .step(move |st: &mut State| st.db.mounts.insert(id, record))
            .await?;
        self.undo.push(Undo::Forget(id));
        Ok(id)
    }

    /// Gets a child mount for `parent`: references a visible one (adding
    /// `Holder::Mount(parent)` in a step) or creates an inline one owned by the parent.
    /// Returns its id and mountpoint. (Boxed: creates nest through it.)
    pub(crate) fn child<'s>(
        &'s mut self,
        parent: u64,
        r: &'s MountRef,
    ) -> Boxed<'s, (u64, PathBuf)> {
        Box::pin(async move {
            let holder = Holder::Mount(parent);
            let sel = match r {
                MountRef::Inline(spec) => {
                    let id = self.create((**spec).clone(), holder).await?;
                    return Ok((id, self.job.ctx.cfg.mountpoint(id)));
                }
                MountRef::Existing(sel) => sel.clone(),
            };
            let h = holder.clone();
            let (id, mountpoint, added) = self
                .job
                .step(move |st: &mut State| {
                    let id = st
                        .find(&sel)
                        .ok_or_else(|| MountError::NotFound(sel.clone()))?;
                    let rec = st
                        .db
                        .mounts
                        .get_mut(&id)
                        .ok_or(MountError::NotFound(Selector::Id(id)))?;
                    let added = rec.holders.insert(h);
                    Ok::<_, MountError>((id, rec.mountpoint.clone(), added))
                })
                .await??;
            if added {
                self.undo.push(Undo::DropHolder(id, holder));
            }
            Ok((id, mountpoint))
        })
    }

    /// Step 3a: the records join the snapshots and are made durable.
    async fn commit(&mut self) -> Result<(), MountError> {
        let ids = self.ids.clone();
        self.job
            .step(move |st: &mut State| {
                for id in ids {
                    st.pending.insert(id, Phase::Saving);
                }
            })
            .await?;
        self.job.save().await
    }

    /// Step 3b: the records become visible; the reservations go.
    async fn finish(self, id: u64, r: Reservation) -> Result<MountInfo, MountError> {
        let ids = self.ids;
        self.job
            .step(move |st: &mut State| {
                st.end_create(&ids, &r);
                st.db.mounts.get(&id).map(MountRecord::info)
            })
            .await?
            .ok_or_else(|| {
                MountError::Internal(format!("mount {id} vanished right after creation"))
            })
    }

    /// Replays the undo log in reverse (failures are logged and the rest still runs),
    /// drops the pending ids and reservations, and writes the state.
    async fn rollback(self, r: Reservation) {
        let job = self.job;
        // From here on the create claims nothing (`State::holds_attachment`).
        let abandoned = self.ids.clone();
        if let Err(e) = job
            .step(move |st: &mut State| st.abandoned.extend(abandoned))
            .await
        {
            tracing::warn!(error = %e, "marking an undone create");
        }
        for step in self.undo.into_iter().rev() {
            if let Err(e) = undo(job, &step).await {
                tracing::warn!(?step, error = %e, "undo step failed");
            }
        }
        let ids = self.ids;
        let ended = job
            .step(move |st: &mut State| st.end_create(&ids, &r))
            .await;
        if let Err(e) = ended.and(job.save().await) {
            tracing::warn!(error = %e, "saving the state after an undone mount");
        }
    }
}

/// Undoes one step.
async fn undo(job: &Job, step: &Undo) -> Result<(), MountError> {
    match step {
        Undo::Forget(id) => {
            let id = *id;
            job.step(move |st: &mut State| st.db.mounts.remove(&id))
                .await?;
            Ok(())
        }
        Undo::DropHolder(id, holder) => remove::drop_holder(job, *id, holder.clone())
            .await
            .map(|_| ()),
        Undo::ReleaseAttach(att, holder) => {
            let (att, holder) = (*att, holder.clone());
            job.cleanup(move |a| async move { a.release(att, holder).await })
                .await
                .map_err(MountError::Attach)
        }
        Undo::ReleaseImage(digest, holder) => {
            let (digest, holder) = (digest.clone(), holder.clone());
            job.release_image(digest, holder).await
        }
        Undo::Unmount(path) => {
            let path = path.clone();
            job.blocking(move |sys| {
                sys.mounter
                    .unmount(&path, true)
                    .map(|_| ())
                    .map_err(|e| MountError::sys(format!("unmounting {path:?}"), e))
            })
            .await?
        }
        Undo::RemoveDir(path) | Undo::RemoveTree(path) => {
            let path = path.clone();
            let tree = matches!(step, Undo::RemoveTree(_));
            job.blocking(move |sys| {
                let r = if tree {
                    sys.paths.remove_tree(&path)
                } else {
                    sys.paths.remove_dir(&path)
                };
                r.map(|_| ())
                    .map_err(|e| MountError::sys(format!("removing {path:?}"), e))
            })
            .await?
        }
    }
}
