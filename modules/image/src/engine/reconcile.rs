//! Start-up reconciliation of the records with the files, before the actor host starts:
//! 1. the staging directory (imports cut short) is removed;
//! 2. records whose image file is gone are dropped;
//! 3. files under `images/` that no record owns (an import cut short between the rename
//!    and the records write, or a remove between the write and the delete) are deleted.
//!
//! Holders are kept: the mount module releases those of mounts that no longer exist
//! when it starts (it starts after the image store).

use crate::engine::{Access, Ctx, Job, State};
use crate::error::ImageError;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What start-up reconciliation found and cleaned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Whether a staging directory was left and removed.
    pub staging_removed: bool,
    /// Images whose file had vanished (records dropped).
    pub vanished: Vec<String>,
    /// Files no record owns, deleted.
    pub orphan_files: Vec<PathBuf>,
}

/// Runs the reconciliation on `state` and hands it back.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    state: State,
) -> Result<(State, ReconcileReport), ImageError> {
    let shared = Arc::new(Mutex::new(state));
    let job = Job {
        ctx: ctx.clone(),
        state: Access::Local(shared.clone()),
    };
    let mut report = ReconcileReport::default();
    let cfg = ctx.cfg.clone();
    let files: Vec<(String, PathBuf)> = job
        .step(|st: &mut State| {
            st.db
                .images
                .values()
                .map(|r| (r.digest.clone(), r.file.clone()))
                .collect()
        })
        .await?;
    let (staging_removed, vanished, orphans) = job
        .blocking(move || -> Result<_, ImageError> {
            let staging = cfg.staging_dir().exists();
            imagebus_sys::state::remove_tree(&cfg.staging_dir())?;
            let vanished: Vec<String> = files
                .iter()
                .filter(|(_, f)| !f.is_file())
                .map(|(d, _)| d.clone())
                .collect();
            let mut orphans = Vec::new();
            for name in imagebus_sys::state::list_names(&cfg.images_dir())? {
                let path = cfg.images_dir().join(&name);
                if files.iter().any(|(_, f)| *f == path) {
                    continue;
                }
                // Best effort: something we cannot remove (a directory someone put there)
                // must not keep the store from starting.
                match imagebus_sys::state::remove_file(&path) {
                    Ok(_) => orphans.push(path),
                    Err(e) => tracing::warn!(?path, error = %e, "leaving an unknown entry"),
                }
            }
            Ok((staging, vanished, orphans))
        })
        .await??;
    report.staging_removed = staging_removed;
    report.orphan_files = orphans;
    if !vanished.is_empty() {
        let v = vanished.clone();
        job.step(move |st: &mut State| {
            for d in &v {
                st.db.images.remove(d);
            }
        })
        .await?;
        job.save().await?;
    }
    report.vanished = vanished;
    drop(job);
    let state = Arc::try_unwrap(shared)
        .map_err(|_| ImageError::Internal("reconciliation state still shared".into()))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok((state, report))
}
