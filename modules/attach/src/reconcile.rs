//! Start-up reconciliation of the state file with the kernel, and what it found.
//!
//! For every recorded attachment: a loop device must still carry our tag and backing file;
//! a local device must still exist; a krbd device must still map the same image; an
//! rbd-fuse attachment must have its process (pid plus `/proc/<pid>/cmdline`), its FUSE
//! mount and its loop device — a dead rbd-fuse is restarted; a read-only attachment keeps
//! its loop device (moved onto the new FUSE file), a writable one gets a fresh one.
//! Attachments whose device vanished are dropped. Then orphans are cleaned: loop devices
//! with this instance's tag (or backed by a file in our rbd-fuse directories) that no
//! record owns, rbd-fuse processes and FUSE mounts under our directory that no record
//! owns, leftover attachment directories, and the kernel object of an attach that crashed
//! before it was recorded.

use crate::attachments::Attachments;
use crate::drivers::{self, rbd_fuse};
use crate::error::AttachError;
use crate::store::Backing;
use imagebus_schema::attach::AttachSource;
use imagebus_schema::{Holder, Selector};
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

impl Attachments {
    /// Reconciles the state with the kernel (see the module docs) and saves it.
    pub fn reconcile(&mut self) -> Result<ReconcileReport, AttachError> {
        let mut report = ReconcileReport::default();
        let ids: Vec<u64> = self.db.records.keys().copied().collect();
        for id in ids {
            match self.check(id) {
                Ok(Check::Kept) => report.kept.push(id),
                Ok(Check::Restarted) => report.restarted.push(id),
                Ok(Check::Vanished) => report.vanished.push(id),
                Err(e) => {
                    warn!(id, error = %e, "attachment could not be recovered; dropping it");
                    report.vanished.push(id);
                }
            }
        }
        for id in &report.vanished {
            if let Some(r) = self.db.records.remove(id) {
                let _ = self.teardown(&r, true);
            }
        }
        // Shared attachments whose base vanished go with it; holds by vanished sharers go.
        let live: BTreeSet<u64> = self.db.records.keys().copied().collect();
        let orphaned_sharers: Vec<u64> = self
            .db
            .records
            .values()
            .filter(|r| matches!(r.backing, Backing::Shared { of } if !live.contains(&of)))
            .map(|r| r.id)
            .collect();
        for id in orphaned_sharers {
            self.db.records.remove(&id);
            report.kept.retain(|k| *k != id);
            report.vanished.push(id);
        }
        let live: BTreeSet<u64> = self.db.records.keys().copied().collect();
        for r in self.db.records.values_mut() {
            r.holders
                .retain(|h| !matches!(h, Holder::Attach(a) if !live.contains(a)));
        }
        self.clean_orphans(&mut report);
        self.db.intent = None;
        self.store.save(&self.db)?;
        if report.is_clean() {
            info!(%report, "attach state reconciled");
        } else {
            warn!(%report, "attach state reconciled with changes");
        }
        Ok(report)
    }

    fn check(&mut self, id: u64) -> Result<Check, AttachError> {
        let record = self.db.find(&Selector::Id(id))?.clone();
        let tag = self.db.loop_tag(id);
        let ok = match &record.backing {
            Backing::Loop {
                number,
                file,
                inode,
            } => drivers::loopdev::present(&self.sys, *number, &tag, file, Some(*inode)),
            Backing::Local { rdev } => drivers::local::present(&self.sys, &record.device, *rdev),
            Backing::Krbd {
                id,
                pool,
                image,
                snapshot,
            } => drivers::rbd::krbd_present(&self.sys, *id, pool, image, snapshot),
            Backing::Shared { of } => self.db.records.contains_key(of),
            Backing::RbdFuse {
                pid,
                dir,
                loop_number,
            } => {
                let mnt = rbd_fuse::mnt_path(dir);
                let alive = rbd_fuse::is_ours(&self.sys, *pid, dir);
                let looped = drivers::loopdev::present(&self.sys, *loop_number, &tag, &mnt, None);
                if alive && looped {
                    true
                } else if !rbd_fuse::conf_path(dir).exists() {
                    return Ok(Check::Vanished);
                } else {
                    self.revive_fuse(id)?;
                    return Ok(Check::Restarted);
                }
            }
        };
        Ok(if ok { Check::Kept } else { Check::Vanished })
    }

    /// Restarts the rbd-fuse of attachment `id`. A read-only attachment keeps its loop
    /// device, moved onto the new FUSE file (`LOOP_CHANGE_FD`), so filesystems mounted on it
    /// stay usable; a writable one (or a device the move fails on) gets a fresh loop device.
    pub(crate) fn revive_fuse(&mut self, id: u64) -> Result<(), AttachError> {
        let record = self.db.find(&Selector::Id(id))?.clone();
        let (
            Backing::RbdFuse {
                pid,
                dir,
                loop_number,
            },
            AttachSource::Rbd(src),
        ) = (&record.backing, &record.source)
        else {
            return Ok(());
        };
        let tag = self.db.loop_tag(id);
        let ours = rbd_fuse::loop_is_ours(&self.sys, *loop_number, &tag, dir, &src.image);
        let keep = ours && src.read_only;
        if ours && !keep {
            drivers::loopdev::detach(&self.sys, *loop_number)?;
        }
        rbd_fuse::stop(&self.sys, *pid, dir);
        let new_pid = match rbd_fuse::start(&self.sys, dir, src) {
            Ok(p) => p,
            Err(e) => {
                if keep {
                    let _ = drivers::loopdev::detach(&self.sys, *loop_number);
                }
                return Err(e);
            }
        };
        let moved = if keep {
            match rbd_fuse::rebind_loop(&self.sys, dir, src, *loop_number) {
                Ok(d) => Some(d),
                Err(e) => {
                    warn!(id, error = %e, "keeping the loop device failed; binding a fresh one");
                    let _ = drivers::loopdev::detach(&self.sys, *loop_number);
                    None
                }
            }
        } else {
            None
        };
        let dev = match moved {
            Some(d) => d,
            None => match rbd_fuse::bind_loop(&self.sys, dir, src, tag) {
                Ok(d) => d,
                Err(e) => {
                    rbd_fuse::stop(&self.sys, new_pid, dir);
                    return Err(e);
                }
            },
        };
        if let Some(r) = self.db.records.get_mut(&id) {
            r.device = dev.device.clone();
            r.backing = Backing::RbdFuse {
                pid: new_pid,
                dir: dir.clone(),
                loop_number: dev.number,
            };
        }
        // Attachments sharing this device follow it.
        for r in self.db.records.values_mut() {
            if r.backing == (Backing::Shared { of: id }) {
                r.device = dev.device.clone();
            }
        }
        info!(id, pid = new_pid, device = %dev.device.display(), "rbd-fuse restarted");
        Ok(())
    }

    fn clean_orphans(&mut self, report: &mut ReconcileReport) {
        let rbd_dir = self.cfg.rbd_dir();
        let prefix = self.db.tag_prefix();
        let owned_loops: BTreeSet<(u32, u64)> = self
            .db
            .records
            .values()
            .filter_map(|r| match r.backing {
                Backing::Loop { number, .. } => Some((number, r.id)),
                Backing::RbdFuse { loop_number, .. } => Some((loop_number, r.id)),
                _ => None,
            })
            .collect();
        for dev in self.sys.loops.list().unwrap_or_default() {
            let tagged_id = dev
                .tag
                .strip_prefix(&prefix)
                .and_then(|s| s.parse::<u64>().ok());
            let ours = match tagged_id {
                Some(id) => !owned_loops.contains(&(dev.number, id)),
                None => {
                    dev.backing_file.starts_with(&rbd_dir)
                        && !owned_loops.iter().any(|(n, _)| *n == dev.number)
                }
            };
            if ours {
                match self.sys.loops.detach(dev.number) {
                    Ok(()) => report.cleaned.push(format!(
                        "loop device {} on {}",
                        dev.device.display(),
                        dev.backing_file.display()
                    )),
                    Err(e) => {
                        warn!(device = %dev.device.display(), error = %e, "orphan loop device")
                    }
                }
            }
        }
        let owned_dirs: BTreeSet<&Path> = self
            .db
            .records
            .values()
            .filter_map(|r| match &r.backing {
                Backing::RbdFuse { dir, .. } => Some(dir.as_path()),
                _ => None,
            })
            .collect();
        let owned_pids: BTreeSet<u32> = self
            .db
            .records
            .values()
            .filter_map(|r| match r.backing {
                Backing::RbdFuse { pid, .. } => Some(pid),
                _ => None,
            })
            .collect();
        for (pid, cmd) in self.sys.procs.find("rbd-fuse") {
            let ours = cmd.iter().any(|a| Path::new(a).starts_with(&rbd_dir));
            if ours && !owned_pids.contains(&pid) {
                let _ = self.sys.procs.signal(pid, Signal::Kill);
                let _ = self.sys.procs.reap(pid);
                report.cleaned.push(format!("rbd-fuse process {pid}"));
            }
        }
        for m in self.sys.fuse.list().unwrap_or_default() {
            let owner = m.mountpoint.parent().filter(|p| owned_dirs.contains(p));
            if m.mountpoint.starts_with(&rbd_dir) && owner.is_none() {
                match self.sys.fuse.unmount(&m.mountpoint, true) {
                    Ok(()) => report
                        .cleaned
                        .push(format!("FUSE mount {}", m.mountpoint.display())),
                    Err(e) => {
                        warn!(mount = %m.mountpoint.display(), error = %e, "orphan FUSE mount")
                    }
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&rbd_dir) {
            for e in entries.flatten() {
                let path = e.path();
                if !owned_dirs.contains(path.as_path())
                    && imagebus_sys::state::remove_tree(&path).is_ok()
                {
                    report.cleaned.push(format!("directory {}", path.display()));
                }
            }
        }
        // krbd: an attach that crashed between the sysfs write and saving its record.
        if let Some(intent) = self.db.intent.clone() {
            let owned: BTreeSet<u32> = self
                .db
                .records
                .values()
                .filter_map(|r| match r.backing {
                    Backing::Krbd { id, .. } => Some(id),
                    _ => None,
                })
                .collect();
            let key = format!("imagebus-attach.{}.{}", self.db.instance, intent.id);
            for dev in self.sys.rbd.list().unwrap_or_default() {
                if !owned.contains(&dev.id)
                    && dev.key.as_deref() == Some(key.as_str())
                    && self.sys.rbd.unmap(dev.id, true).is_ok()
                {
                    report
                        .cleaned
                        .push(format!("krbd device {}", dev.device.display()));
                }
            }
        }
    }
}

enum Check {
    Kept,
    Restarted,
    Vanished,
}
