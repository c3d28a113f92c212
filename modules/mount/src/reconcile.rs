//! Start-up reconciliation of the state file with the kernel and the attach module.
//!
//! After a crash (`kill -9`) the state may lag the kernel by one command. In order:
//! 1. records whose mountpoint is mounted more than once get the extra mounts detached;
//! 2. records whose mountpoint is not mounted any more are collected (cascade);
//! 3. holders `mount:N` for unknown N are dropped (collecting what becomes unheld);
//! 4. mounts under `<run_dir>/mounts/` that no record owns are lazily unmounted, and
//!    directories under `mounts/` and `overlays/` that no record owns are removed;
//! 5. attachments held by `mount:N` for unknown N are released through the attach module;
//! 6. the id counter is raised past every id seen in traces, so ids are never reused.

use crate::engine::Mounts;
use crate::error::MountError;
use imagebus_schema::Holder;
use imagebus_sys::mount::Unmounted;
use imagebus_sys::mountinfo::MountEntry;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
    /// Steps that failed (reconciliation goes on; the next start-up retries).
    pub errors: Vec<String>,
}

impl ReconcileReport {
    /// Whether nothing needed cleaning and nothing failed.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

/// The id a path directly under `dir` stands for, if it is `dir/<digits>[/...]`.
fn id_under(dir: &Path, path: &Path) -> Option<u64> {
    let first = path.strip_prefix(dir).ok()?.components().next()?;
    first.as_os_str().to_str()?.parse().ok()
}

impl Mounts {
    /// Runs reconciliation and persists the result.
    pub(crate) async fn reconcile(&mut self) -> Result<ReconcileReport, MountError> {
        let mut report = ReconcileReport::default();
        let mounts_dir = self.cfg.mounts_dir();
        let overlays_dir = self.cfg.overlays_dir();
        let table: Vec<MountEntry> = self
            .blocking(|sys| sys.table.mounts())
            .await?
            .map_err(|e| MountError::sys("reading the mount table", e))?;
        let mut max_seen = 0u64;

        // 1 + 2: known records against the table.
        let known: Vec<(u64, PathBuf)> = self
            .db
            .mounts
            .values()
            .map(|r| (r.id, r.mountpoint.clone()))
            .collect();
        for (id, mp) in known {
            let count = table.iter().filter(|e| e.mount_point == mp).count();
            for _ in 1..count {
                let target = mp.clone();
                match self
                    .blocking(move |sys| sys.mounter.unmount(&target, true))
                    .await?
                {
                    Ok(_) => report.duplicates.push(mp.clone()),
                    Err(e) => report
                        .errors
                        .push(format!("detaching duplicate on {mp:?}: {e}")),
                }
            }
            if count == 0 && self.db.mounts.contains_key(&id) {
                tracing::warn!(id, mountpoint = ?mp, "mount vanished; collecting");
                report.vanished.push(id);
                if let Err(e) = self.collect(id).await {
                    report
                        .errors
                        .push(format!("collecting vanished mount {id}: {e}"));
                }
            }
        }

        // 3: holders naming mounts that do not exist.
        let stale: Vec<(u64, Holder)> = self
            .db
            .mounts
            .values()
            .flat_map(|r| r.holders.iter().map(move |h| (r.id, h.clone())))
            .filter(|(_, h)| matches!(h, Holder::Mount(n) if !self.db.mounts.contains_key(n)))
            .collect();
        for (id, holder) in stale {
            if let Holder::Mount(n) = holder {
                max_seen = max_seen.max(n);
            }
            report.stale_holders.push((id, holder.clone()));
            if let Err(e) = self.release_inner(id, holder).await {
                report
                    .errors
                    .push(format!("releasing stale holder of {id}: {e}"));
            }
        }

        // 4: orphan mounts (children first: reverse table order) and directories.
        let table: Vec<MountEntry> = self
            .blocking(|sys| sys.table.mounts())
            .await?
            .map_err(|e| MountError::sys("reading the mount table", e))?;
        for entry in table.iter().rev() {
            let Some(_) = entry.mount_point.strip_prefix(&mounts_dir).ok() else {
                continue;
            };
            let owner = id_under(&mounts_dir, &entry.mount_point);
            if owner.is_some_and(|id| self.db.mounts.contains_key(&id)) {
                continue;
            }
            max_seen = max_seen.max(owner.unwrap_or(0));
            let target = entry.mount_point.clone();
            match self
                .blocking(move |sys| sys.mounter.unmount(&target, true))
                .await?
            {
                Ok(Unmounted::Done) => report.orphan_mounts.push(entry.mount_point.clone()),
                Ok(Unmounted::NotMounted) => {}
                Err(e) => report
                    .errors
                    .push(format!("unmounting orphan {:?}: {e}", entry.mount_point)),
            }
        }
        for (dir, tree) in [(mounts_dir, false), (overlays_dir, true)] {
            let d = dir.clone();
            let names = self
                .blocking(move |sys| sys.paths.list_dir(&d))
                .await?
                .map_err(|e| MountError::sys(format!("listing {dir:?}"), e))?;
            for name in names {
                let id = name.parse::<u64>().ok();
                if id.is_some_and(|id| self.db.mounts.contains_key(&id)) {
                    continue;
                }
                max_seen = max_seen.max(id.unwrap_or(0));
                let path = dir.join(&name);
                let p = path.clone();
                let removed = self
                    .blocking(move |sys| {
                        if tree {
                            sys.paths.remove_tree(&p)
                        } else {
                            sys.paths.remove_dir(&p)
                        }
                    })
                    .await?;
                match removed {
                    Ok(_) => report.orphan_dirs.push(path),
                    Err(e) => report.errors.push(format!("removing orphan {path:?}: {e}")),
                }
            }
        }

        // 5: attachments held by mounts we do not know.
        match self.attach.list().await {
            Ok(atts) => {
                for att in atts {
                    for holder in &att.holders {
                        let Holder::Mount(n) = holder else { continue };
                        if self
                            .db
                            .mounts
                            .get(n)
                            .is_some_and(|r| r.attachment == Some(att.id))
                        {
                            continue;
                        }
                        max_seen = max_seen.max(*n);
                        match self.attach.release(att.id, holder.clone()).await {
                            Ok(()) => report.released_attachments.push((att.id, *n)),
                            Err(e) => report
                                .errors
                                .push(format!("releasing attachment {} of mount {n}: {e}", att.id)),
                        }
                    }
                }
            }
            Err(e) => report.errors.push(format!("listing attachments: {e}")),
        }

        // 6: ids are never reused.
        let ids: BTreeSet<u64> = self.db.mounts.keys().copied().collect();
        let highest = ids.last().copied().unwrap_or(0).max(max_seen);
        if self.db.next_id <= highest {
            self.db.next_id = highest + 1;
        }
        self.persist().await?;
        if report.is_clean() {
            tracing::info!(
                mounts = self.db.mounts.len(),
                "mount state reconciled: clean"
            );
        } else {
            tracing::warn!(?report, "mount state reconciled: cleaned up after a crash");
        }
        Ok(report)
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
