//! `Start`: created → running (`runc start`), exited or dead → a new run (same bundle, same
//! log), running → no-op. A job on the container's key.

use super::launch::{launch, Launched};
use super::{blocking, watch, Containers, Engine};
use crate::error::ContainerError;
use crate::store::Durable;
use imagebus_schema::container::{ContainerInfo, ContainerState};
use imagebus_schema::Selector;
use std::sync::Arc;

/// Starts `target`.
pub async fn start(e: &Arc<Engine>, target: Selector) -> Result<ContainerInfo, ContainerError> {
    let id = e.resolve(target).await?;
    e.job(id, move |e| async move { start_job(&e, id).await })
        .await
}

async fn start_job(e: &Engine, id: u64) -> Result<ContainerInfo, ContainerError> {
    let rec = e.host.read(move |s| s.target(id).cloned()).await??;
    let generation = rec.generation;
    match rec.info.state {
        ContainerState::Running => Ok(rec.info),
        ContainerState::Stopping => Err(ContainerError::WrongState {
            id,
            state: rec.info.state,
            what: "cannot start while stopping",
        }),
        ContainerState::Created => {
            let (runtime, rid) = (e.sys.runtime.clone(), rec.info.runtime_id.clone());
            blocking(move || runtime.start(&rid))
                .await?
                .map_err(|err| ContainerError::runtime(format!("starting container {id}"), err))?;
            let (info, durable) = e
                .host
                .apply(move |s| mark_started(s, id, generation))
                .await??;
            durable.wait().await?;
            Ok(info)
        }
        ContainerState::Exited | ContainerState::Dead => {
            let launched = launch(e, &rec, true).await?;
            let (info, durable) = e
                .host
                .apply(move |s| apply_rerun(s, id, generation, launched))
                .await??;
            durable.wait().await?;
            watch::watch(e, launched.watched, id, generation + 1);
            super::health::arm(e, id, generation + 1);
            Ok(info)
        }
    }
}

/// The step after `runc start`: running, unless the run already ended meanwhile.
fn mark_started(
    s: &mut Containers,
    id: u64,
    generation: u64,
) -> Result<(ContainerInfo, Durable), ContainerError> {
    let rec = s
        .record_mut(id)
        .ok_or(ContainerError::NotFound(Selector::Id(id)))?;
    if rec.mark_started(generation) {
        let info = rec.info.clone();
        return Ok((info, s.save_and_tell(id)));
    }
    // It ended (and was recorded) between `runc start` and now: report what it is.
    Ok((rec.info.clone(), s.barrier()))
}

/// The step after a re-run's launch. The key keeps every other command out, and the old
/// run has ended, so nothing changed the record meanwhile.
fn apply_rerun(
    s: &mut Containers,
    id: u64,
    generation: u64,
    launched: Launched,
) -> Result<(ContainerInfo, Durable), ContainerError> {
    let rec = s
        .record_mut(id)
        .ok_or(ContainerError::NotFound(Selector::Id(id)))?;
    if rec.generation != generation {
        return Err(ContainerError::WrongState {
            id,
            state: rec.info.state,
            what: "changed while starting",
        });
    }
    launched.apply(rec);
    // An operator's start begins a new row for the restart policy.
    rec.restart_streak = 0;
    let info = rec.info.clone();
    Ok((info, s.save_and_tell(id)))
}
