//! The rbd-fuse reaper: a background loop (tracked by the host, see `Host::spawn`) that
//! every second reaps exited rbd-fuse children and restarts them, each restart a job keyed
//! by the attachment id (so it is ordered with Detach, Release, Acquire and shared attaches
//! of that attachment). A read-only attachment keeps its loop device, moved onto the new
//! FUSE file (`LOOP_CHANGE_FD`), so filesystems mounted on it stay usable; a writable one
//! (or a device the move fails on) gets a fresh loop device. A restart that fails is tried
//! again after [`RETRY_BACKOFF`]. Start-up reconciliation uses the same restart.

use super::{blocking, Ctx, Engine, State, KIND};
use crate::drivers::{self, rbd_fuse};
use crate::error::AttachError;
use crate::store::{Backing, Db, Record};
use imagebus_host::{HostError, Key};
use imagebus_schema::attach::AttachSource;
use imagebus_sys::loopdev::LoopHold;
use imagebus_sys::proc::Reaped;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often rbd-fuse children are reaped.
const REAP_EVERY: Duration = Duration::from_secs(1);
/// How long to wait before restarting an rbd-fuse whose restart failed.
const RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// What a restart changed.
#[derive(Debug)]
pub(crate) struct Revived {
    pid: u32,
    device: PathBuf,
    loop_number: u32,
    /// A freshly bound loop device is held with autoclear until the restart is recorded
    /// ([`Revived::keep`]); a device moved onto the new image file holds nothing.
    hold: LoopHold,
}

impl Revived {
    /// The hold of the new device, to keep once the restart is durable (`self` stays
    /// usable for [`apply_revived`]).
    pub(crate) fn take_hold(&mut self) -> LoopHold {
        std::mem::replace(&mut self.hold, LoopHold::none())
    }
}

/// Keeps the loop device of a restart whose record was saved (or failed to be: the
/// state in memory points at the device either way, and a live daemon keeps what it
/// points at).
pub(crate) fn keep_hold(id: u64, hold: LoopHold) {
    if let Err(e) = hold.keep() {
        warn!(id, error = %e, "turning autoclear off on the restarted rbd-fuse loop device");
    }
}

/// An rbd-fuse attachment to look at.
struct Candidate {
    id: u64,
    pid: u32,
    dir: PathBuf,
}

/// Whether the rbd-fuse `pid` serving `dir` exited (reaping it if it is our child).
fn exited(ctx: &Ctx, pid: u32, dir: &std::path::Path) -> bool {
    matches!(ctx.sys.procs.reap(pid), Reaped::Exited { .. })
        || !rbd_fuse::is_ours(&ctx.sys, pid, dir)
}

/// The rbd-fuse attachments that are neither being removed, nor restarted, nor waiting.
fn candidates(s: &State, now: Instant) -> Vec<Candidate> {
    s.db.records
        .values()
        .filter(|r| !s.removing.contains(&r.id) && !s.reviving.contains(&r.id))
        .filter(|r| s.retry_after.get(&r.id).is_none_or(|t| now >= *t))
        .filter_map(|r| match &r.backing {
            Backing::RbdFuse { pid, dir, .. } => Some(Candidate {
                id: r.id,
                pid: *pid,
                dir: dir.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The loop: ticks until `stop` is cancelled or the actor is gone.
pub(crate) async fn reaper(engine: Engine, stop: CancellationToken) {
    let mut every = tokio::time::interval(REAP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        match engine.reap_once().await {
            Ok(()) => {}
            Err(AttachError::Stopped) => break,
            Err(e) => debug!(error = %e, "reaping rbd-fuse"),
        }
    }
    debug!("rbd-fuse reaper stopped");
}

impl Engine {
    /// One tick: finds the exited rbd-fuse processes and queues a restart for each.
    async fn reap_once(&self) -> Result<(), AttachError> {
        let now = Instant::now();
        let candidates = self.read(move |s| candidates(s, now)).await?;
        if candidates.is_empty() {
            return Ok(());
        }
        let ctx = self.ctx.clone();
        let dead: Vec<u64> = blocking(move || {
            Ok(candidates
                .into_iter()
                .filter(|c| exited(&ctx, c.pid, &c.dir))
                .map(|c| c.id)
                .collect())
        })
        .await?;
        for id in dead {
            if self.step(move |s| s.reviving.insert(id)).await? {
                let engine = self.clone();
                self.host.spawn(async move { engine.revive_job(id).await });
            }
        }
        Ok(())
    }

    /// Runs the restart of attachment `id` as a job on its key.
    async fn revive_job(&self, id: u64) {
        let engine = self.clone();
        let span = tracing::info_span!("attach.revive", id);
        let run = self
            .host
            .mutate(vec![Key::id(KIND, id)], move |_| async move {
                engine.revive(id).await
            });
        match tracing::Instrument::instrument(run, span).await {
            Ok(Ok(())) | Err(HostError::Stopped(_)) => {}
            Ok(Err(e)) => warn!(id, error = %e, "restarting rbd-fuse"),
            Err(e) => warn!(id, error = %e, "restarting rbd-fuse"),
        }
        let _ = self.step(move |s| s.reviving.remove(&id)).await;
    }

    /// Restarts the rbd-fuse of attachment `id` if it is still recorded and still dead.
    async fn revive(&self, id: u64) -> Result<(), AttachError> {
        let record = self
            .read(move |s| {
                (!s.removing.contains(&id))
                    .then(|| s.db.records.get(&id).cloned())
                    .flatten()
            })
            .await?;
        let Some(record) = record else { return Ok(()) };
        let Backing::RbdFuse { pid, dir, .. } = record.backing.clone() else {
            return Ok(());
        };
        let ctx = self.ctx.clone();
        let result = blocking(move || {
            if !exited(&ctx, pid, &dir) {
                return Ok(None);
            }
            warn!(id, "rbd-fuse of attachment exited; restarting it");
            revive_kernel(&ctx, &record)
        })
        .await;
        match result {
            Ok(None) => Ok(()),
            Ok(Some(mut rev)) => {
                let hold = rev.take_hold();
                let snap = self
                    .step(move |s| {
                        s.retry_after.remove(&id);
                        apply_revived(&mut s.db, id, &rev);
                        s.snapshot()
                    })
                    .await?;
                let persisted = self.persist(snap).await;
                keep_hold(id, hold);
                persisted
            }
            Err(e) => {
                warn!(id, error = %e, "could not restart rbd-fuse; retrying in 30 s");
                self.step(move |s| s.retry_after.insert(id, Instant::now() + RETRY_BACKOFF))
                    .await?;
                Ok(())
            }
        }
    }
}

/// Restarts the rbd-fuse of `record` (blocking); `None` when it is not an rbd-fuse one.
pub(crate) fn revive_kernel(ctx: &Ctx, record: &Record) -> Result<Option<Revived>, AttachError> {
    let (
        Backing::RbdFuse {
            pid,
            dir,
            loop_number,
        },
        AttachSource::Rbd(src),
    ) = (&record.backing, &record.source)
    else {
        return Ok(None);
    };
    let sys = &ctx.sys;
    let tag = ctx.loop_tag(record.id);
    let ours = rbd_fuse::loop_is_ours(sys, *loop_number, &tag, dir, &src.image);
    let keep = ours && src.read_only;
    if ours && !keep {
        drivers::loopdev::detach(sys, *loop_number)?;
    }
    rbd_fuse::stop(sys, *pid, dir);
    let new_pid = match rbd_fuse::start(sys, dir, src) {
        Ok(p) => p,
        Err(e) => {
            if keep {
                let _ = drivers::loopdev::detach(sys, *loop_number);
            }
            return Err(e);
        }
    };
    let moved = if keep {
        match rbd_fuse::rebind_loop(sys, dir, src, *loop_number) {
            Ok(d) => Some(d),
            Err(e) => {
                warn!(id = record.id, error = %e, "keeping the loop device failed; binding a fresh one");
                let _ = drivers::loopdev::detach(sys, *loop_number);
                None
            }
        }
    } else {
        None
    };
    let (dev, hold) = match moved {
        Some(d) => (d, LoopHold::none()),
        None => match rbd_fuse::bind_loop_held(sys, dir, src, tag) {
            Ok(bound) => bound,
            Err(e) => {
                rbd_fuse::stop(sys, new_pid, dir);
                return Err(e);
            }
        },
    };
    info!(id = record.id, pid = new_pid, device = %dev.device.display(), "rbd-fuse restarted");
    Ok(Some(Revived {
        pid: new_pid,
        device: dev.device,
        loop_number: dev.number,
        hold,
    }))
}

/// Records a restart: the attachment's new process and device, and the new device of the
/// attachments sharing it.
pub(crate) fn apply_revived(db: &mut Db, id: u64, rev: &Revived) {
    if let Some(r) = db.records.get_mut(&id) {
        if let Backing::RbdFuse { dir, .. } = &r.backing {
            r.backing = Backing::RbdFuse {
                pid: rev.pid,
                dir: dir.clone(),
                loop_number: rev.loop_number,
            };
            r.device = rev.device.clone();
        }
    }
    for r in db.records.values_mut() {
        if r.backing == (Backing::Shared { of: id }) {
            r.device = rev.device.clone();
        }
    }
}
