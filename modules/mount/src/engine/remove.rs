//! `Unmount`, `Release` and the collect cascade.
//!
//! The decision to remove a mount and its `removing` mark are one step: [`State::begin_unmount`]
//! for an unmount, [`State::release_holder`] for a release that dropped the last holder.
//! A marked mount is invisible to every other command, so nobody can acquire it while the
//! kernel work runs. [`collect`] then, per mount: unmounts lazily and removes its
//! directories (blocking pool); in one step removes the record and releases
//! `Holder::Mount(id)` on each child, marking the children left without holders; releases
//! the attachment (attach module); and goes on with the marked children (overlay → lowers →
//! image mounts → attachments).

use crate::engine::{Job, Released, State};
use crate::error::MountError;
use imagebus_schema::{Holder, Selector};
use imagebus_sys::mount::Unmounted;
use std::collections::VecDeque;

impl State {
    /// Re-checks an unmount of `target` (resolved to `id` before the job started) and
    /// marks the mount removing. Holders other than `user` refuse it unless `force`.
    pub(crate) fn begin_unmount(
        &mut self,
        target: &Selector,
        id: u64,
        force: bool,
    ) -> Result<(), MountError> {
        let rec = self
            .visible(id)
            .filter(|_| self.find(target) == Some(id))
            .ok_or_else(|| MountError::NotFound(target.clone()))?;
        let others: Vec<Holder> = rec
            .holders
            .iter()
            .filter(|h| **h != Holder::User)
            .cloned()
            .collect();
        if !others.is_empty() {
            if !force {
                return Err(MountError::InUse {
                    id,
                    holders: others,
                });
            }
            tracing::warn!(id, holders = ?others, "force unmount while held");
        }
        self.removing.insert(id);
        Ok(())
    }

    /// A collected mount's record goes, and its children lose `Holder::Mount(id)`; returns
    /// the children this left without holders (now marked removing).
    fn end_collect(&mut self, id: u64, children: &[u64]) -> Vec<u64> {
        self.db.mounts.remove(&id);
        self.removing.remove(&id);
        let holder = Holder::Mount(id);
        children
            .iter()
            .copied()
            .filter(|c| self.release_holder(*c, &holder) == Released::Collect)
            .collect()
    }
}

/// The `Unmount` command on mount `id` (what `target` resolved to).
pub(crate) async fn unmount(
    job: &Job,
    target: Selector,
    id: u64,
    force: bool,
) -> Result<(), MountError> {
    job.step(move |st: &mut State| st.begin_unmount(&target, id, force))
        .await??;
    collect(job, id).await?;
    job.save().await
}

/// The `Release` command: idempotent, never fails for unknown ids or holders.
pub(crate) async fn release(job: &Job, id: u64, holder: Holder) -> Result<(), MountError> {
    let result = drop_holder(job, id, holder).await;
    if !matches!(result, Ok(false)) {
        job.save().await?;
    }
    result.map(|_| ())
}

/// Drops `holder` from mount `id` and collects the mount if that was its last holder.
/// Returns whether the state changed. Does not save.
pub(crate) async fn drop_holder(job: &Job, id: u64, holder: Holder) -> Result<bool, MountError> {
    match job
        .step(move |st: &mut State| st.release_holder(id, &holder))
        .await?
    {
        Released::Unchanged => Ok(false),
        Released::Dropped => Ok(true),
        Released::Collect => collect(job, id).await.map(|()| true),
    }
}

/// Collects mount `id` (already marked removing) and, cascading, the children it leaves
/// without holders. A failure on `id` itself keeps its record (unmarked) and is returned;
/// failures further down are logged (start-up reconciliation picks up what is left). Does
/// not save.
pub(crate) async fn collect(job: &Job, id: u64) -> Result<(), MountError> {
    let mut queue = VecDeque::from([id]);
    let mut result = Ok(());
    while let Some(next) = queue.pop_front() {
        match collect_one(job, next).await {
            Ok(children) => queue.extend(children),
            Err(e) if next == id => result = Err(e),
            Err(e) => tracing::warn!(id, child = next, error = %e, "collecting a child mount"),
        }
    }
    result
}

/// Collects one marked mount; returns its children to collect next.
async fn collect_one(job: &Job, id: u64) -> Result<Vec<u64>, MountError> {
    let Some(rec) = job
        .step(move |st: &mut State| st.db.mounts.get(&id).cloned())
        .await?
    else {
        job.step(move |st: &mut State| st.removing.remove(&id))
            .await?;
        return Ok(Vec::new());
    };
    let mp = rec.mountpoint.clone();
    let overlay_root = rec.overlay.as_ref().and_then(|o| o.ephemeral_root.clone());
    let unmounted = job
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
        .await?;
    let how = match unmounted {
        Ok(how) => how,
        Err(e) => {
            // The mount stays: usable again.
            job.step(move |st: &mut State| st.removing.remove(&id))
                .await?;
            return Err(e);
        }
    };
    if how == Unmounted::NotMounted {
        tracing::info!(id, "mount had already vanished");
    }
    let children = rec.children.clone();
    let next = job
        .step(move |st: &mut State| st.end_collect(id, &children))
        .await?;
    tracing::info!(id, kind = rec.kind.as_str(), "unmounted");
    if let Some(att) = rec.attachment {
        let released = job
            .cleanup(move |a| async move { a.release(att, Holder::Mount(id)).await })
            .await;
        if let Err(e) = released {
            tracing::warn!(id, attachment = att, error = %e, "releasing attachment");
        }
    }
    if let Some(digest) = rec.image.clone() {
        if let Err(e) = job.release_image(digest, Holder::Mount(id)).await {
            tracing::warn!(id, image = ?rec.image, error = %e, "releasing image");
        }
    }
    Ok(next)
}
