//! Start-up reconciliation of the records with the kernel and the attach module. Runs
//! before the actor host starts, on a state of its own ([`Access::Local`]), with the same
//! steps and cascade as the commands.
//!
//! After a crash (`kill -9`) the records may lag the kernel by the commands that were in
//! flight (any number of them). In order:
//! 1. records whose mountpoint is mounted more than once get the extra mounts detached;
//! 2. records whose mountpoint is not mounted any more are collected (cascade);
//! 3. holders `mount:N` for unknown N are dropped (collecting what becomes unheld);
//! 4. mounts under `<run_dir>/mounts/` that no record owns are lazily unmounted, and
//!    directories under `mounts/` and `overlays/` that no record owns are removed;
//! 5. attachments held by `mount:N` for unknown N are released through the attach module,
//!    and so are image-store images (when the actor has an image store);
//! 6. the id counter is raised past every id seen in traces, so ids are never reused.

use crate::engine::{remove, Access, Ctx, Job, State};
use crate::error::MountError;
use imagebus_schema::attach::AttachModule;
use imagebus_schema::Holder;
use imagebus_sys::mount::Unmounted;
use imagebus_sys::mountinfo::MountEntry;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What start-up reconciliation found and cleaned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Mounts known to the state whose kernel mount had vanished (collected).
    pub vanished: Vec<u64>,
    /// Extra mounts stacked on a known mountpoint, detached.
    pub duplicates: Vec<PathBuf>,
    /// `(mount, holder)` references to mounts that no longer exist, dropped.
    pub stale_holders: Vec<(u64, Holder)>,
    /// Mounts under our run directory that no record owns, lazily unmounted.
    pub orphan_mounts: Vec<PathBuf>,
    /// Directories under our run directory that no record owns, removed.
    pub orphan_dirs: Vec<PathBuf>,
    /// `(attachment, mount)`: attachments held by unknown mounts, released.
    pub released_attachments: Vec<(u64, u64)>,
    /// `(attachment, mount)`: attachments held by unknown mounts whose release the attach
    /// module refused as `Unavailable` (it checks `mount:N` holders with this module, which
    /// is not serving yet); retried once the actor runs.
    pub deferred_attachments: Vec<(u64, u64)>,
    /// `(image digest, mount)`: image-store images held by unknown mounts, released.
    pub released_images: Vec<(String, u64)>,
    /// Steps that failed (reconciliation goes on; the next start-up retries).
    pub errors: Vec<String>,
}

impl ReconcileReport {
    /// Whether nothing needed cleaning and nothing failed.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

/// The report and the highest id seen in traces, while reconciling.
#[derive(Debug, Default)]
struct Pass {
    report: ReconcileReport,
    max_seen: u64,
}

/// The id a path directly under `dir` stands for, if it is `dir/<digits>[/...]`.
fn id_under(dir: &Path, path: &Path) -> Option<u64> {
    let first = path.strip_prefix(dir).ok()?.components().next()?;
    first.as_os_str().to_str()?.parse().ok()
}

/// Reconciles `state` and persists the result; returns the state for the actor host.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    state: State,
) -> Result<(State, ReconcileReport), MountError> {
    let shared = Arc::new(Mutex::new(state));
    let job = Job {
        ctx,
        state: Access::Local(shared.clone()),
    };
    let report = reconcile(&job).await;
    drop(job);
    let state = Arc::try_unwrap(shared)
        .map_err(|_| MountError::Internal("reconciliation kept the state".into()))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok((state, report?))
}

async fn reconcile(job: &Job) -> Result<ReconcileReport, MountError> {
    let mut pass = Pass::default();
    let table = read_table(job).await?;
    known_mounts(job, &table, &mut pass).await?;
    stale_holders(job, &mut pass).await;
    let table = read_table(job).await?;
    orphan_mounts(job, &table, &mut pass).await?;
    orphan_dirs(job, &mut pass).await?;
    orphan_attachments(job, &mut pass).await?;
    orphan_images(job, &mut pass).await?;
    let max_seen = pass.max_seen;
    // 6: ids are never reused.
    let count = job
        .step(move |st: &mut State| {
            let highest = st.db.mounts.keys().last().copied().unwrap_or(0);
            let highest = highest.max(max_seen);
            if st.db.next_id <= highest {
                st.db.next_id = highest + 1;
            }
            st.db.mounts.len()
        })
        .await?;
    job.save().await?;
    let report = pass.report;
    if report.is_clean() {
        tracing::info!(mounts = count, "mount state reconciled: clean");
    } else {
        tracing::warn!(?report, "mount state reconciled: cleaned up after a crash");
    }
    Ok(report)
}

async fn read_table(job: &Job) -> Result<Vec<MountEntry>, MountError> {
    job.blocking(|sys| sys.table.mounts())
        .await?
        .map_err(|e| MountError::sys("reading the mount table", e))
}

/// 1 + 2: known records against the table.
async fn known_mounts(job: &Job, table: &[MountEntry], pass: &mut Pass) -> Result<(), MountError> {
    let known: Vec<(u64, PathBuf)> = job
        .step(|st: &mut State| {
            st.db
                .mounts
                .values()
                .map(|r| (r.id, r.mountpoint.clone()))
                .collect()
        })
        .await?;
    for (id, mp) in known {
        let count = table.iter().filter(|e| e.mount_point == mp).count();
        for _ in 1..count {
            let target = mp.clone();
            match job
                .blocking(move |sys| sys.mounter.unmount(&target, true))
                .await?
            {
                Ok(_) => pass.report.duplicates.push(mp.clone()),
                Err(e) => pass
                    .report
                    .errors
                    .push(format!("detaching duplicate on {mp:?}: {e}")),
            }
        }
        // (An earlier collect's cascade may have taken it already.)
        if count == 0 && job.step(move |st: &mut State| st.mark_removing(id)).await? {
            tracing::warn!(id, mountpoint = ?mp, "mount vanished; collecting");
            pass.report.vanished.push(id);
            if let Err(e) = remove::collect(job, id).await {
                pass.report
                    .errors
                    .push(format!("collecting vanished mount {id}: {e}"));
            }
        }
    }
    Ok(())
}

/// 3: holders naming mounts that do not exist.
async fn stale_holders(job: &Job, pass: &mut Pass) {
    let stale = job
        .step(|st: &mut State| {
            st.db
                .mounts
                .values()
                .flat_map(|r| r.holders.iter().map(move |h| (r.id, h.clone())))
                .filter(|(_, h)| matches!(h, Holder::Mount(n) if !st.db.mounts.contains_key(n)))
                .collect::<Vec<(u64, Holder)>>()
        })
        .await;
    let stale = match stale {
        Ok(stale) => stale,
        Err(e) => {
            pass.report
                .errors
                .push(format!("finding stale holders: {e}"));
            return;
        }
    };
    for (id, holder) in stale {
        if let Holder::Mount(n) = holder {
            pass.max_seen = pass.max_seen.max(n);
        }
        pass.report.stale_holders.push((id, holder.clone()));
        if let Err(e) = remove::drop_holder(job, id, holder).await {
            pass.report
                .errors
                .push(format!("releasing stale holder of {id}: {e}"));
        }
    }
}

/// 4a: mounts under `mounts/` no record owns (children first: reverse table order).
async fn orphan_mounts(job: &Job, table: &[MountEntry], pass: &mut Pass) -> Result<(), MountError> {
    let mounts_dir = job.ctx.cfg.mounts_dir();
    let known: Vec<u64> = job
        .step(|st: &mut State| st.db.mounts.keys().copied().collect())
        .await?;
    for entry in table.iter().rev() {
        if !entry.mount_point.starts_with(&mounts_dir) {
            continue;
        }
        let owner = id_under(&mounts_dir, &entry.mount_point);
        if owner.is_some_and(|id| known.contains(&id)) {
            continue;
        }
        pass.max_seen = pass.max_seen.max(owner.unwrap_or(0));
        let target = entry.mount_point.clone();
        match job
            .blocking(move |sys| sys.mounter.unmount(&target, true))
            .await?
        {
            Ok(Unmounted::Done) => pass.report.orphan_mounts.push(entry.mount_point.clone()),
            Ok(Unmounted::NotMounted) => {}
            Err(e) => pass
                .report
                .errors
                .push(format!("unmounting orphan {:?}: {e}", entry.mount_point)),
        }
    }
    Ok(())
}

/// 4b: directories under `mounts/` and `overlays/` no record owns.
async fn orphan_dirs(job: &Job, pass: &mut Pass) -> Result<(), MountError> {
    let cfg = &job.ctx.cfg;
    let known: Vec<u64> = job
        .step(|st: &mut State| st.db.mounts.keys().copied().collect())
        .await?;
    for (dir, tree) in [(cfg.mounts_dir(), false), (cfg.overlays_dir(), true)] {
        let d = dir.clone();
        let names = job
            .blocking(move |sys| sys.paths.list_dir(&d))
            .await?
            .map_err(|e| MountError::sys(format!("listing {dir:?}"), e))?;
        for name in names {
            let id = name.parse::<u64>().ok();
            if id.is_some_and(|id| known.contains(&id)) {
                continue;
            }
            pass.max_seen = pass.max_seen.max(id.unwrap_or(0));
            let path = dir.join(&name);
            let p = path.clone();
            let removed = job
                .blocking(move |sys| {
                    if tree {
                        sys.paths.remove_tree(&p)
                    } else {
                        sys.paths.remove_dir(&p)
                    }
                })
                .await?;
            match removed {
                Ok(_) => pass.report.orphan_dirs.push(path),
                Err(e) => pass
                    .report
                    .errors
                    .push(format!("removing orphan {path:?}: {e}")),
            }
        }
    }
    Ok(())
}

/// 5: attachments held by mounts we do not know.
async fn orphan_attachments(job: &Job, pass: &mut Pass) -> Result<(), MountError> {
    let atts = match job.ctx.attach.list().await {
        Ok(atts) => atts,
        Err(e) => {
            pass.report.errors.push(format!("listing attachments: {e}"));
            return Ok(());
        }
    };
    let owned: Vec<(u64, Option<u64>)> = job
        .step(|st: &mut State| {
            st.db
                .mounts
                .values()
                .map(|r| (r.id, r.attachment))
                .collect()
        })
        .await?;
    for att in atts {
        for holder in &att.holders {
            let Holder::Mount(n) = holder else { continue };
            if owned.contains(&(*n, Some(att.id))) {
                continue;
            }
            pass.max_seen = pass.max_seen.max(*n);
            match job.ctx.attach.release(att.id, holder.clone()).await {
                Ok(()) => pass.report.released_attachments.push((att.id, *n)),
                Err(e) if e.code == imagebus_bus::ErrorCode::Unavailable => {
                    pass.report.deferred_attachments.push((att.id, *n));
                }
                Err(e) => pass
                    .report
                    .errors
                    .push(format!("releasing attachment {} of mount {n}: {e}", att.id)),
            }
        }
    }
    Ok(())
}

/// How long start-up waits for the image store's list.
const IMAGE_LIST_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// 5b: image-store images held by mounts we do not know (or that hold another image).
async fn orphan_images(job: &Job, pass: &mut Pass) -> Result<(), MountError> {
    let Ok(images) = job.images() else {
        return Ok(());
    };
    // Bounded: in a split deployment the image store may not be up (or not deployed);
    // the next start-up retries.
    let list = match tokio::time::timeout(IMAGE_LIST_WAIT, images.list()).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => {
            pass.report.errors.push(format!("listing images: {e}"));
            return Ok(());
        }
        Err(_) => {
            pass.report.errors.push(format!(
                "listing images: no answer within {IMAGE_LIST_WAIT:?}"
            ));
            return Ok(());
        }
    };
    let owned: Vec<(u64, Option<String>)> = job
        .step(|st: &mut State| {
            st.db
                .mounts
                .values()
                .map(|r| (r.id, r.image.clone()))
                .collect()
        })
        .await?;
    for img in list {
        for holder in &img.holders {
            let Holder::Mount(n) = holder else { continue };
            if owned.contains(&(*n, Some(img.digest.clone()))) {
                continue;
            }
            pass.max_seen = pass.max_seen.max(*n);
            match images.release(img.digest.clone(), holder.clone()).await {
                Ok(()) => pass.report.released_images.push((img.digest.clone(), *n)),
                Err(e) => pass
                    .report
                    .errors
                    .push(format!("releasing image {} of mount {n}: {e}", img.digest)),
            }
        }
    }
    Ok(())
}

/// How long releases refused at start-up are retried once the actor runs.
const DEFERRED_RETRY: std::time::Duration = std::time::Duration::from_secs(120);

/// Step 5, the rest: retries (every half second, within [`DEFERRED_RETRY`]) the releases
/// of attachments held by unknown mounts that the attach module could not check with this
/// module before it was serving.
pub(crate) async fn release_later(attach: Arc<dyn AttachModule>, mut todo: Vec<(u64, u64)>) {
    let deadline = tokio::time::Instant::now() + DEFERRED_RETRY;
    loop {
        let mut left = Vec::new();
        for (att, n) in todo {
            match attach.release(att, Holder::Mount(n)).await {
                Ok(()) => tracing::info!(
                    attachment = att,
                    mount = n,
                    "released an attachment of a mount that does not exist"
                ),
                Err(e) if e.code == imagebus_bus::ErrorCode::Unavailable => left.push((att, n)),
                Err(e) => {
                    tracing::warn!(attachment = att, mount = n, error = %e, "releasing an attachment of a mount that does not exist")
                }
            }
        }
        if left.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(attachments = ?left, "attachments of vanished mounts not released; the next start tries again");
            return;
        }
        todo = left;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_under_the_mounts_dir() {
        let d = Path::new("/run/ib/mounts");
        assert_eq!(id_under(d, Path::new("/run/ib/mounts/12")), Some(12));
        assert_eq!(id_under(d, Path::new("/run/ib/mounts/12/proc")), Some(12));
        assert_eq!(id_under(d, Path::new("/run/ib/mounts/x")), None);
        assert_eq!(id_under(d, Path::new("/run/other/1")), None);
    }
}
