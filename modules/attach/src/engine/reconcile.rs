//! Start-up: opening the state and reconciling it with the kernel (before the actor runs,
//! so nothing else touches the state meanwhile), and what reconciliation found.
//!
//! 1. Check every record: a loop device must still carry our tag and backing file; a local
//!    device must still exist; a krbd device must still map the same image; an rbd-fuse
//!    attachment must have its process (pid plus `/proc/<pid>/cmdline`), its FUSE mount and
//!    its loop device — a dead rbd-fuse is restarted ([`super::reap::revive_kernel`]).
//! 2. Drop the records whose device vanished.
//! 3. Drop shared attachments whose mapping went, and holds by attachments that went.
//! 4. Detach orphan loop devices: this instance's tag (or backed by a file in our rbd-fuse
//!    directories) and no record owns them.
//! 5. Kill orphan rbd-fuse processes, unmount orphan FUSE mounts and remove leftover
//!    attachment directories under our rbd directory.
//! 6. Unmap the krbd devices of the RBD attaches in the journal (`intents`): attaches that
//!    crashed between the sysfs write and saving their record — any number of them.
//! 7. Clear the journal; the caller saves.

use super::reap::{apply_revived, keep_hold, revive_kernel};
use super::{random_token, Ctx};
use crate::config::{AttachConfig, AttachSys};
use crate::drivers::{self, rbd_fuse};
use crate::error::AttachError;
use crate::store::{Backing, Db, Store, Writer};
use imagebus_schema::Holder;
use imagebus_sys::loopdev::LoopHold;
use imagebus_sys::proc::Signal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use tracing::{info, warn};

/// What start-up reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// Attachments found intact.
    pub kept: Vec<u64>,
    /// Attachments whose device had vanished; dropped from the state.
    pub vanished: Vec<u64>,
    /// rbd-fuse attachments whose process had died; restarted (their device may differ).
    pub restarted: Vec<u64>,
    /// Orphans removed from the kernel or disk, one line each.
    pub cleaned: Vec<String>,
}

impl ReconcileReport {
    /// Whether nothing had to be changed.
    pub fn is_clean(&self) -> bool {
        self.vanished.is_empty() && self.restarted.is_empty() && self.cleaned.is_empty()
    }
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kept {:?}, vanished {:?}, restarted {:?}, cleaned [{}]",
            self.kept,
            self.vanished,
            self.restarted,
            self.cleaned.join("; ")
        )
    }
}

/// Opens (or creates) the state in `cfg.state_dir`, reconciles it with the kernel and
/// saves it (blocking).
pub(crate) fn open(
    cfg: AttachConfig,
    sys: AttachSys,
) -> Result<(Ctx, Db, ReconcileReport), AttachError> {
    imagebus_sys::state::ensure_private_dir(&cfg.state_dir)?;
    imagebus_sys::state::ensure_private_dir(&cfg.rbd_dir())?;
    let store = Store::new(&cfg.state_dir);
    let mut db = match store.load()? {
        Some(db) => db,
        None => {
            let db = Db::new(random_token());
            store.save(&db)?;
            db
        }
    };
    let ctx = Ctx {
        cfg,
        sys,
        instance: db.instance.clone(),
        writer: Writer::new(store.clone()),
    };
    let mut holds = Vec::new();
    let report = reconcile(&ctx, &mut db, &mut holds);
    let saved = store.save(&db);
    // The loop devices bound for restarted rbd-fuses stay from now on (see `keep_hold`).
    for (id, hold) in holds {
        keep_hold(id, hold);
    }
    saved?;
    if report.is_clean() {
        info!(%report, "attach state reconciled");
    } else {
        warn!(%report, "attach state reconciled with changes");
    }
    Ok((ctx, db, report))
}

/// Reconciles `db` with the kernel (see the module docs). The loop devices bound for
/// restarted rbd-fuses go to `holds`, to keep once `db` is saved.
pub(crate) fn reconcile(
    ctx: &Ctx,
    db: &mut Db,
    holds: &mut Vec<(u64, LoopHold)>,
) -> ReconcileReport {
    let mut report = ReconcileReport::default();
    check_records(ctx, db, &mut report, holds);
    drop_vanished(ctx, db, &report);
    drop_orphaned_sharers(db, &mut report);
    clean_orphan_loops(ctx, db, &mut report);
    clean_orphan_fuse(ctx, db, &mut report);
    clean_interrupted_krbd(ctx, db, &mut report);
    db.intents.clear();
    report
}

enum Check {
    Kept,
    Restarted,
    Vanished,
}

/// Step 1.
fn check_records(
    ctx: &Ctx,
    db: &mut Db,
    report: &mut ReconcileReport,
    holds: &mut Vec<(u64, LoopHold)>,
) {
    let ids: Vec<u64> = db.records.keys().copied().collect();
    for id in ids {
        match check(ctx, db, id, holds) {
            Ok(Check::Kept) => report.kept.push(id),
            Ok(Check::Restarted) => report.restarted.push(id),
            Ok(Check::Vanished) => report.vanished.push(id),
            Err(e) => {
                warn!(id, error = %e, "attachment could not be recovered; dropping it");
                report.vanished.push(id);
            }
        }
    }
}

fn check(
    ctx: &Ctx,
    db: &mut Db,
    id: u64,
    holds: &mut Vec<(u64, LoopHold)>,
) -> Result<Check, AttachError> {
    let Some(record) = db.records.get(&id).cloned() else {
        return Ok(Check::Vanished);
    };
    let (sys, tag) = (&ctx.sys, ctx.loop_tag(id));
    let ok = match &record.backing {
        Backing::Loop {
            number,
            file,
            inode,
        } => drivers::loopdev::present(sys, *number, &tag, file, Some(*inode)),
        Backing::Local { rdev } => drivers::local::present(sys, &record.device, *rdev),
        Backing::Krbd {
            id,
            pool,
            image,
            snapshot,
        } => drivers::rbd::krbd_present(sys, *id, pool, image, snapshot),
        Backing::Shared { of } => db.records.contains_key(of),
        Backing::RbdFuse {
            pid,
            dir,
            loop_number,
        } => {
            let mnt = rbd_fuse::mnt_path(dir);
            let alive = rbd_fuse::is_ours(sys, *pid, dir);
            let looped = drivers::loopdev::present(sys, *loop_number, &tag, &mnt, None);
            if alive && looped {
                true
            } else if !imagebus_sys::paths::exists(&rbd_fuse::conf_path(dir)) {
                return Ok(Check::Vanished);
            } else {
                if let Some(mut rev) = revive_kernel(ctx, &record)? {
                    holds.push((id, rev.take_hold()));
                    apply_revived(db, id, &rev);
                }
                return Ok(Check::Restarted);
            }
        }
    };
    Ok(if ok { Check::Kept } else { Check::Vanished })
}

/// Step 2.
fn drop_vanished(ctx: &Ctx, db: &mut Db, report: &ReconcileReport) {
    for id in &report.vanished {
        if let Some(r) = db.records.remove(id) {
            let _ = super::detach::teardown(ctx, &r, true);
        }
    }
}

/// Step 3.
fn drop_orphaned_sharers(db: &mut Db, report: &mut ReconcileReport) {
    let live: BTreeSet<u64> = db.records.keys().copied().collect();
    let orphaned: Vec<u64> = db
        .records
        .values()
        .filter(|r| r.shared_of().is_some_and(|of| !live.contains(&of)))
        .map(|r| r.id)
        .collect();
    for id in orphaned {
        db.records.remove(&id);
        report.kept.retain(|k| *k != id);
        report.vanished.push(id);
    }
    let live: BTreeSet<u64> = db.records.keys().copied().collect();
    for r in db.records.values_mut() {
        r.holders
            .retain(|h| !matches!(h, Holder::Attach(a) if !live.contains(a)));
    }
}

/// Step 4.
fn clean_orphan_loops(ctx: &Ctx, db: &Db, report: &mut ReconcileReport) {
    let rbd_dir = ctx.cfg.rbd_dir();
    let prefix = ctx.tag_prefix();
    let owned: BTreeSet<(u32, u64)> = db
        .records
        .values()
        .filter_map(|r| match r.backing {
            Backing::Loop { number, .. } => Some((number, r.id)),
            Backing::RbdFuse { loop_number, .. } => Some((loop_number, r.id)),
            _ => None,
        })
        .collect();
    for dev in ctx.sys.loops.list().unwrap_or_default() {
        let tagged_id = dev
            .tag
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok());
        let orphan = match tagged_id {
            Some(id) => !owned.contains(&(dev.number, id)),
            None => {
                dev.backing_file.starts_with(&rbd_dir)
                    && !owned.iter().any(|(n, _)| *n == dev.number)
            }
        };
        if !orphan {
            continue;
        }
        match ctx.sys.loops.detach(dev.number) {
            Ok(()) => report.cleaned.push(format!(
                "loop device {} on {}",
                dev.device.display(),
                dev.backing_file.display()
            )),
            Err(e) => warn!(device = %dev.device.display(), error = %e, "orphan loop device"),
        }
    }
}

/// Step 5.
fn clean_orphan_fuse(ctx: &Ctx, db: &Db, report: &mut ReconcileReport) {
    let rbd_dir = ctx.cfg.rbd_dir();
    let owned_dirs: BTreeSet<&Path> = db
        .records
        .values()
        .filter_map(|r| match &r.backing {
            Backing::RbdFuse { dir, .. } => Some(dir.as_path()),
            _ => None,
        })
        .collect();
    let owned_pids: BTreeSet<u32> = db
        .records
        .values()
        .filter_map(|r| match r.backing {
            Backing::RbdFuse { pid, .. } => Some(pid),
            _ => None,
        })
        .collect();
    for (pid, cmd) in ctx.sys.procs.find("rbd-fuse") {
        let ours = cmd.iter().any(|a| Path::new(a).starts_with(&rbd_dir));
        if ours && !owned_pids.contains(&pid) {
            let _ = ctx.sys.procs.signal(pid, Signal::Kill);
            let _ = ctx.sys.procs.reap(pid);
            report.cleaned.push(format!("rbd-fuse process {pid}"));
        }
    }
    for m in ctx.sys.fuse.list().unwrap_or_default() {
        let owner = m.mountpoint.parent().filter(|p| owned_dirs.contains(p));
        if m.mountpoint.starts_with(&rbd_dir) && owner.is_none() {
            match ctx.sys.fuse.unmount(&m.mountpoint, true) {
                Ok(()) => report
                    .cleaned
                    .push(format!("FUSE mount {}", m.mountpoint.display())),
                Err(e) => warn!(mount = %m.mountpoint.display(), error = %e, "orphan FUSE mount"),
            }
        }
    }
    if let Ok(names) = imagebus_sys::state::list_names(&rbd_dir) {
        for name in names {
            let path = rbd_dir.join(name);
            if !owned_dirs.contains(path.as_path())
                && imagebus_sys::state::remove_tree(&path).is_ok()
            {
                report.cleaned.push(format!("directory {}", path.display()));
            }
        }
    }
}

/// Step 6.
fn clean_interrupted_krbd(ctx: &Ctx, db: &Db, report: &mut ReconcileReport) {
    if db.intents.is_empty() {
        return;
    }
    let owned: BTreeSet<u32> = db
        .records
        .values()
        .filter_map(|r| match r.backing {
            Backing::Krbd { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    let keys: BTreeSet<String> = db.intents.iter().map(|id| ctx.key_name(*id)).collect();
    for dev in ctx.sys.rbd.list().unwrap_or_default() {
        let interrupted = dev.key.as_ref().is_some_and(|k| keys.contains(k));
        if !owned.contains(&dev.id) && interrupted && ctx.sys.rbd.unmap(dev.id, true).is_ok() {
            report
                .cleaned
                .push(format!("krbd device {}", dev.device.display()));
        }
    }
}
