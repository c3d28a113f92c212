//! Start-up reconciliation, before the actor starts: (1) remove this instance's runtime
//! containers that have no record (a crash in the middle of a create, possibly many at
//! once), and kill the processes of and remove this instance's cgroups that neither a
//! record nor the runtime knows (a create cut short inside the runtime); (2) for every live record, re-attach to its monitor if it still runs (re-arming
//! the SIGKILL timer of a stopping one), (3) else watch the init directly if it outlived
//! the monitor, (4) else record the end (`exited` from the exit file, or `dead`); (5) give
//! back the mounts that containers without a record still hold (a create cut short after
//! its mount was made), which collects them and what they nest; (6) remove the files of
//! ids without a record (state and run directories, log file) that such a create left;
//! (7) remove the directories of interactive sessions whose helper was killed
//! (`imagebus_sys::session::sweep`).
//! Watchers and timers are started once the actor runs ([`FollowUps::start`]).

use super::exits::{self, End};
use super::{blocking, restart, stop, watch, Containers, Engine};
use crate::config::{ContainerConfig, ContainerSys};
use crate::error::ContainerError;
use crate::store::Watched;
use imagebus_bus::ErrorCode;
use imagebus_schema::container::ContainerState;
use imagebus_schema::mount::MountModule;
use imagebus_schema::Holder;
use imagebus_sys::runtime::RuntimeState;
use imagebus_sys::state;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What start-up reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Containers whose monitor still runs, watched again.
    pub reattached: usize,
    /// Containers whose monitor is gone but whose init runs, now watched directly.
    pub monitor_lost: usize,
    /// Containers whose run ended while no actor watched (now `exited` or `dead`).
    pub ended: usize,
    /// Runtime containers, and cgroups no runtime state owns, of this instance without a
    /// record, removed.
    pub orphans_removed: usize,
    /// Mount holds of containers without a record, released.
    pub stale_holds_released: usize,
    /// Ids without a record whose leftover files were removed.
    pub leftover_files_removed: usize,
    /// Interactive sessions whose helper is gone (killed), their directories removed.
    pub stale_sessions_removed: usize,
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} re-attached, {} watched without their monitor, {} ended, {} orphan runtime containers removed, {} stale mount holds released, {} leftover file sets removed, {} dead sessions swept",
            self.reattached, self.monitor_lost, self.ended, self.orphans_removed, self.stale_holds_released, self.leftover_files_removed, self.stale_sessions_removed
        )
    }
}

/// Watchers and timers to start once the actor runs.
#[derive(Debug, Default)]
pub struct FollowUps {
    watch: Vec<(Watched, u64, u64)>,
    arm: Vec<(u64, u64, Duration)>,
    /// Pending restarts: id, generation, when due (ms since the epoch).
    restart: Vec<(u64, u64, u64)>,
    /// Stale holds (mount, container) the mount module could not release yet: it checks
    /// with this module, which is not serving until it has started.
    stale: Vec<(u64, u64)>,
}

impl FollowUps {
    /// Starts them.
    pub fn start(self, e: &Engine) {
        for (w, id, generation) in self.watch {
            watch::watch(e, w, id, generation);
            // The health checks of a live run go on, from the status in its record.
            super::health::arm(e, id, generation);
        }
        for (id, generation, after) in self.arm {
            stop::arm(e, id, generation, after);
        }
        for (id, generation, due) in self.restart {
            restart::resume(e, id, generation, due);
        }
        if !self.stale.is_empty() {
            tokio::spawn(release_stale_later(e.mounts.clone(), self.stale));
        }
    }
}

/// Brings `s` in line with the monitors and the runtime.
pub async fn reconcile(
    cfg: &ContainerConfig,
    sys: &ContainerSys,
    mounts: &dyn MountModule,
    s: &mut Containers,
) -> Result<(ReconcileReport, FollowUps), ContainerError> {
    let mut report = ReconcileReport::default();
    let mut follow = FollowUps::default();
    let runtime = sys.runtime.clone();
    let listed = blocking(move || runtime.list())
        .await?
        .map_err(|e| ContainerError::runtime("listing runtime containers", e))?;
    report.orphans_removed = remove_orphans(cfg, sys, s, &listed).await?;
    for id in s.ids() {
        let Ok(rec) = s.record(id) else {
            continue;
        };
        if !rec.is_live() {
            // A restart that was pending when the last actor stopped.
            if let Some(due) = rec.restart_due_ms {
                follow.restart.push((id, rec.generation, due));
            }
            continue;
        }
        let (generation, stopping) = (rec.generation, rec.info.state == ContainerState::Stopping);
        let after = Duration::from_millis(rec.stop_timeout_ms);
        let (watched, pid, rid) = (rec.watched, rec.info.pid, rec.info.runtime_id.clone());
        if let Some(d) = promote_started(s, id, generation, &listed) {
            let _ = d.wait().await;
        }
        match watched {
            // 2.
            Some(w) if watch::is_alive(sys, w).await? => {
                tracing::info!(id, pid = w.pid, "re-attached to a live container");
                follow.watch.push((w, id, generation));
                if stopping {
                    follow.arm.push((id, generation, after));
                }
                report.reattached += 1;
            }
            _ => match outlived(sys, pid, &rid, &listed).await? {
                // 3.
                Some(w) => {
                    if let Some(d) = exits::apply_outlived(s, id, generation, w) {
                        let _ = d.wait().await;
                    }
                    follow.watch.push((w, id, generation));
                    report.monitor_lost += 1;
                }
                // 4.
                None => {
                    if let Some(w) = end(cfg, sys, s, id, generation, &mut follow).await? {
                        follow.watch.push((w, id, generation));
                        report.monitor_lost += 1;
                    } else {
                        report.ended += 1;
                    }
                }
            },
        }
    }
    report.stale_holds_released = release_stale_holds(mounts, s, &mut follow.stale).await;
    // 6.
    let known = s.ids().into_iter().collect();
    let c = cfg.clone();
    report.leftover_files_removed = blocking(move || remove_leftover_files(&c, &known)).await?;
    // 7. Before this actor serves, so no session of its own is being set up.
    let (stream, work) = (cfg.session_dir(), cfg.session_work_dir());
    report.stale_sessions_removed =
        blocking(move || imagebus_sys::session::sweep::sweep_stale(&stream, &work)).await?;
    Ok((report, follow))
}

/// A `Start` cut short after `runc start` but before its record was saved: the record
/// says `created`, the runtime `running`. The record follows the runtime (and the event
/// goes out), so the container is not started twice nor reported as never started.
fn promote_started(
    s: &mut Containers,
    id: u64,
    generation: u64,
    listed: &[RuntimeState],
) -> Option<crate::store::Durable> {
    let rec = s.record_mut(id)?;
    let rid = &rec.info.runtime_id;
    if !listed
        .iter()
        .any(|st| &st.id == rid && st.status == "running")
    {
        return None;
    }
    if !rec.mark_started(generation) {
        return None;
    }
    tracing::warn!(
        id,
        "started while the last actor stopped; recorded as running"
    );
    Some(s.save_and_tell(id))
}

/// Step 5: releases every mount hold `Container(n)` whose container `n` has no record. A
/// mount module that cannot be reached now (a split deployment starting out of order) is
/// logged, not fatal: the next start tries again. The mount module asks this module
/// whether the container still holds the mount before it lets the hold go, and this module
/// serves only once it has started: holds refused as `Unavailable` go to `later`.
async fn release_stale_holds(
    mounts: &dyn MountModule,
    s: &Containers,
    later: &mut Vec<(u64, u64)>,
) -> usize {
    let listed = match mounts.list().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "listing mounts to release stale container holds");
            return 0;
        }
    };
    let mut released = 0;
    for m in listed {
        for h in &m.holders {
            let Holder::Container(n) = h else { continue };
            if s.record(*n).is_ok() {
                continue;
            }
            match mounts.release(m.id, h.clone()).await {
                Ok(()) => {
                    tracing::info!(
                        mount = m.id,
                        container = n,
                        "released a mount held by a container that does not exist"
                    );
                    released += 1;
                }
                Err(e) if e.code == ErrorCode::Unavailable => later.push((m.id, *n)),
                Err(e) => {
                    tracing::warn!(mount = m.id, container = n, error = %e, "releasing a stale container hold")
                }
            }
        }
    }
    released
}

/// How long stale holds refused at start-up are retried once the actor runs.
const STALE_RETRY: Duration = Duration::from_secs(120);

/// Step 5, the rest: retries (every half second, within [`STALE_RETRY`]) the holds the
/// mount module could not check with this module before it was serving.
async fn release_stale_later(mounts: Arc<dyn MountModule>, mut stale: Vec<(u64, u64)>) {
    let deadline = tokio::time::Instant::now() + STALE_RETRY;
    loop {
        let mut left = Vec::new();
        for (mount, n) in stale {
            match mounts.release(mount, Holder::Container(n)).await {
                Ok(()) => tracing::info!(
                    mount,
                    container = n,
                    "released a mount held by a container that does not exist"
                ),
                Err(e) if e.code == ErrorCode::Unavailable => left.push((mount, n)),
                Err(e) => {
                    tracing::warn!(mount, container = n, error = %e, "releasing a stale container hold")
                }
            }
        }
        if left.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(holds = ?left, "stale container holds not released; the next start tries again");
            return;
        }
        stale = left;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Step 1: runtime containers of this instance without a record.
async fn remove_orphans(
    cfg: &ContainerConfig,
    sys: &ContainerSys,
    s: &Containers,
    listed: &[RuntimeState],
) -> Result<usize, ContainerError> {
    let prefix = format!("{}-", cfg.instance);
    let known = s.runtime_ids();
    let orphans: Vec<String> = listed
        .iter()
        .filter(|st| st.id.starts_with(&prefix) && !known.contains(&st.id))
        .map(|st| st.id.clone())
        .collect();
    let count = orphans.len();
    let (runtime, cgroups, instance) = (
        sys.runtime.clone(),
        sys.cgroups.clone(),
        cfg.instance.clone(),
    );
    let listed_ids: BTreeSet<String> = listed.iter().map(|st| st.id.clone()).collect();
    let stray = blocking(move || {
        for rid in orphans {
            tracing::warn!(runtime_id = %rid, "removing a runtime container without a record");
            let _ = runtime.delete(&rid, true);
            let _ = cgroups.remove(&format!("/{instance}/{rid}"));
        }
        // Cgroups of this instance that neither a record nor the runtime knows: a create
        // cut short inside the runtime (its `runc init` already in the cgroup and in the
        // container's namespaces, pinning its mounts, but no runtime state yet).
        let mut stray = 0;
        for rid in cgroups.children(&format!("/{instance}")) {
            if !rid.starts_with(&prefix) || known.contains(&rid) || listed_ids.contains(&rid) {
                continue;
            }
            let rel = format!("/{instance}/{rid}");
            let killed = cgroups.kill_all(&rel);
            tracing::warn!(cgroup = %rel, killed, "removing a cgroup no container or runtime state owns");
            if let Err(e) = cgroups.remove(&rel) {
                tracing::warn!(cgroup = %rel, error = %e, "removing a stray cgroup");
            }
            stray += 1;
        }
        // Left empty by a daemon that stopped with no container, or by the orphans above.
        cgroups.remove_if_empty(&format!("/{instance}"));
        stray
    })
    .await?;
    Ok(count + stray)
}

/// Step 6 (blocking): the state and run directories and the log of every id that has no
/// record. Ids are never reused, so these belong to no container and never will.
fn remove_leftover_files(cfg: &ContainerConfig, known: &BTreeSet<u64>) -> usize {
    let mut ids = BTreeSet::new();
    for dir in [&cfg.state_dir, &cfg.run_dir] {
        for name in state::list_names(dir).unwrap_or_default() {
            if let Ok(id) = name.parse::<u64>() {
                ids.insert(id);
            }
        }
    }
    let prefix = format!("{}-", cfg.instance);
    for name in state::list_names(&cfg.log_dir).unwrap_or_default() {
        let id = name
            .strip_prefix(&prefix)
            .and_then(|r| r.split_once('.'))
            .filter(|(_, kind)| {
                let rotated = kind
                    .strip_prefix("log.")
                    .is_some_and(|n| n.parse::<u32>().is_ok());
                rotated || ["log", "stdout", "stderr"].contains(kind)
            })
            .and_then(|(id, _)| id.parse::<u64>().ok());
        ids.extend(id);
    }
    let mut removed = 0;
    for id in ids.difference(known) {
        tracing::warn!(id, "removing the files of a container without a record");
        let _ = state::remove_tree(&cfg.container_dir(*id));
        let _ = state::remove_tree(&cfg.run_files_dir(*id));
        for f in cfg.log_files(*id) {
            let _ = state::remove_file(&f);
        }
        removed += 1;
    }
    removed
}

/// Step 3: the init `pid` still runs as the runtime's container `rid`.
async fn outlived(
    sys: &ContainerSys,
    pid: Option<u32>,
    rid: &str,
    listed: &[RuntimeState],
) -> Result<Option<Watched>, ContainerError> {
    let Some(pid) = pid else {
        return Ok(None);
    };
    if !listed.iter().any(|st| st.id == rid && st.pid == pid) {
        return Ok(None);
    }
    let procs = sys.procs.clone();
    let start_time = blocking(move || procs.start_time(pid)).await?;
    Ok(start_time.map(|start_time| Watched {
        pid,
        start_time,
        monitor: false,
    }))
}

/// Step 4: the end of the run, as `exits.rs` records it; the init to watch if it turns out
/// to have outlived its monitor after all.
async fn end(
    cfg: &ContainerConfig,
    sys: &ContainerSys,
    s: &mut Containers,
    id: u64,
    generation: u64,
    follow: &mut FollowUps,
) -> Result<Option<Watched>, ContainerError> {
    let Some(run) = exits::current_run(s, id, generation) else {
        return Ok(None);
    };
    let (c, y) = (cfg.clone(), sys.clone());
    match blocking(move || exits::probe(&c, &y, id, &run)).await? {
        End::Outlived(w) => {
            if let Some(d) = exits::apply_outlived(s, id, generation, w) {
                let _ = d.wait().await;
            }
            Ok(Some(w))
        }
        End::Over(exit) => {
            if let Some(ended) = exits::apply_end(s, id, generation, exit) {
                if exits::answer(ended).await.is_some() {
                    if let Some(due) = s.record(id).ok().and_then(|r| r.restart_due_ms) {
                        follow.restart.push((id, generation, due));
                    }
                }
            }
            Ok(None)
        }
    }
}
