//! What happens when a run ends: (1) check that the run is still the current one,
//! (2) look at the exit file, the cgroup's OOM-kill count and the runtime outside the
//! actor (and then clean up the runtime state and cgroups: the count must be read first), (3) record `exited` or `dead` in a step, answer the `Stop` callers
//! once that is durable. If the monitor ended without an exit file while the init still
//! runs, the init is watched directly instead.
//!
//! No key is taken: a command holding the container's key (a forced delete) may be waiting
//! for this exit. The generation check in each step keeps a stale report from touching a
//! newer run, and nothing can start a new run before step 3 (it needs `exited`/`dead`).

use super::{blocking, event, restart, watch, Containers, Engine, Files, StopWaiter};
use crate::config::{ContainerConfig, ContainerSys};
use crate::store::{Durable, Watched};
use imagebus_schema::container::{ContainerInfo, ContainerState};
use imagebus_sys::monitor::{now_ms, read_exit_file, ExitRecord};
use imagebus_sys::paths::exists;
use std::time::Duration;

/// What the end of a run needs to know about it.
#[derive(Debug, Clone)]
pub struct Run {
    /// Runtime id.
    pub rid: String,
    /// The init's pid, if known.
    pub pid: Option<u32>,
    /// Whether the monitor (not the init) was watched.
    pub monitor: bool,
}

/// What the probe found.
#[derive(Debug)]
pub enum End {
    /// The monitor is gone without an exit file but the init still runs: watch it.
    Outlived(Watched),
    /// The run is over; the runtime state and cgroups are cleaned up.
    Over(Exit),
}

/// How a run ended.
#[derive(Debug)]
pub struct Exit {
    /// The exit file, if it could be read.
    pub file: Result<Option<ExitRecord>, String>,
    /// Whether the monitor was watched (so an exit file was expected).
    pub monitor: bool,
    /// The OOM killer killed a process of the run (the cgroup's `oom_kill` count, fresh
    /// per run since the cgroup is removed at each end, is above zero).
    pub oom: bool,
}

/// The reason an exited container's run gets when the OOM killer hit it.
pub const OOM: &str = "oom";

/// Step 1: run `generation` of `id` if it is still the current, live one.
pub fn current_run(s: &Containers, id: u64, generation: u64) -> Option<Run> {
    let rec = s.record(id).ok()?;
    (rec.generation == generation && rec.is_live()).then(|| Run {
        rid: rec.info.runtime_id.clone(),
        pid: rec.info.pid,
        monitor: rec.watched.is_some_and(|w| w.monitor),
    })
}

/// Step 2 (blocking): did the init outlive its monitor? If not, read the exit file and
/// remove the runtime state and cgroups.
pub fn probe(cfg: &ContainerConfig, sys: &ContainerSys, id: u64, run: &Run) -> End {
    if run.monitor {
        if let Some(w) = init_outlived_monitor(cfg, sys, id, run) {
            return End::Outlived(w);
        }
    }
    let file = read_exit_file(&Files::of(cfg, id).exit).map_err(|e| e.to_string());
    // Before `runtime.delete`, which removes the cgroup and with it the count.
    let oom = sys
        .cgroups
        .stats(&cfg.cgroup_path(id))
        .oom_kills
        .is_some_and(|n| n > 0);
    if let Err(e) = sys.runtime.delete(&run.rid, true) {
        tracing::warn!(rid = %run.rid, error = %e, "runtime delete after exit");
    }
    if let Err(e) = sys.cgroups.remove(&cfg.cgroup_path(id)) {
        tracing::warn!(rid = %run.rid, error = %e, "cgroup cleanup after exit");
    }
    End::Over(Exit {
        file,
        monitor: run.monitor,
        oom,
    })
}

/// A monitor that ended without an exit file (it was killed) while the init still runs.
fn init_outlived_monitor(
    cfg: &ContainerConfig,
    sys: &ContainerSys,
    id: u64,
    run: &Run,
) -> Option<Watched> {
    // The monitor writes the exit file before it exits: present means a normal end.
    if exists(&Files::of(cfg, id).exit) {
        return None;
    }
    let pid = run.pid?;
    let state = sys.runtime.state(&run.rid).ok().flatten()?;
    if state.pid != pid || state.status == "stopped" {
        return None;
    }
    let start_time = sys.procs.start_time(pid)?;
    Some(Watched {
        pid,
        start_time,
        monitor: false,
    })
}

/// Step 3a: from now on the init itself is watched.
pub fn apply_outlived(s: &mut Containers, id: u64, generation: u64, w: Watched) -> Option<Durable> {
    let rec = s.record_mut(id)?;
    if rec.generation != generation || !rec.is_live() {
        return None;
    }
    tracing::warn!(id, pid = w.pid, "monitor lost; watching the init directly");
    rec.watched = Some(w);
    Some(s.save(id, Vec::new()))
}

/// What step 3b did: the container as it is now, its commit, its `Stop` callers, and the
/// delay of the restart its policy scheduled.
pub type Ended = (ContainerInfo, Durable, Vec<StopWaiter>, Option<Duration>);

/// Step 3b: the run is over (`exited` with the exit file's status, else `dead`); the
/// restart policy decides whether it runs again ([`restart::decide`]).
pub fn apply_end(s: &mut Containers, id: u64, generation: u64, exit: Exit) -> Option<Ended> {
    let rec = s.record_mut(id)?;
    if rec.generation != generation || !rec.is_live() {
        return None;
    }
    let was = rec.info.state;
    rec.watched = None;
    rec.info.pid = None;
    match exit.file {
        Ok(Some(x)) if x.exit_code.is_some() || x.signal.is_some() => {
            rec.info.state = ContainerState::Exited;
            rec.info.exit_code = x.shell_code();
            rec.info.exit_signal = x.signal;
            rec.info.finished_at_ms = Some(x.exited_at_ms);
            rec.info.reason = if rec.health_kill {
                Some(super::health::UNHEALTHY.to_string())
            } else {
                exit.oom.then(|| OOM.to_string())
            };
        }
        other => {
            rec.info.state = ContainerState::Dead;
            rec.info.finished_at_ms = Some(now_ms());
            rec.info.reason = Some(match other {
                Ok(Some(_)) => "the init was not the monitor's child; exit status unknown".into(),
                Err(e) => format!("reading the exit status: {e}"),
                Ok(None) if exit.monitor => {
                    "the monitor ended without recording an exit status".into()
                }
                Ok(None) => "the monitor was lost; the init ended with an unknown status".into(),
            });
        }
    }
    let restart = restart::decide(rec, was, now_ms());
    let info = rec.info.clone();
    tracing::info!(id, state = info.state.as_str(), exit_code = ?info.exit_code, restart_in = ?restart, "container ended");
    let durable = s.save(id, vec![event(&info, false)]);
    Some((info, durable, s.take_waiters(id), restart))
}

/// Answers the `Stop` callers once the end is durable; returns the delay of the restart
/// the policy scheduled, for the caller to arm once the actor runs.
pub async fn answer((info, durable, waiters, restart): Ended) -> Option<Duration> {
    if let Err(e) = durable.wait().await {
        tracing::error!(id = info.id, error = %e, "saving the end of a run");
    }
    for w in waiters {
        let _ = w.send(Ok(info.clone()));
    }
    restart
}

/// The watched process of run `generation` of `id` has ended.
pub async fn ended(e: &Engine, id: u64, generation: u64) {
    let span = tracing::info_span!("exit", id, generation);
    let _ = tracing::Instrument::instrument(ended_in(e, id, generation), span).await;
}

async fn ended_in(e: &Engine, id: u64, generation: u64) -> Option<()> {
    let run = e
        .host
        .read(move |s| current_run(s, id, generation))
        .await
        .ok()??;
    let (cfg, sys) = (e.cfg.clone(), e.sys.clone());
    let end = blocking(move || probe(&cfg, &sys, id, &run)).await.ok()?;
    match end {
        End::Outlived(w) => {
            let durable = e
                .host
                .apply(move |s| apply_outlived(s, id, generation, w))
                .await
                .ok()??;
            if let Err(err) = durable.wait().await {
                tracing::error!(id, error = %err, "saving the container record");
            }
            watch::watch(e, w, id, generation);
        }
        End::Over(exit) => {
            let ended = e
                .host
                .apply(move |s| apply_end(s, id, generation, exit))
                .await
                .ok()??;
            if let Some(delay) = answer(ended).await {
                restart::schedule(e, id, generation, delay);
            }
        }
    }
    Some(())
}
