//! Stopping, with all of its escalation: (1) in a step, decide, mark `stopping` and
//! register the caller as a waiter; (2) once that is durable, send the stop signal (or
//! SIGKILL to a created container); (3) after the grace period, SIGKILL; (4) the caller is
//! answered when `exits.rs` records the end.
//!
//! `Stop` holds the container's key only for steps 1-2; it waits for the exit outside the
//! job, and the grace timer takes the key again for step 3, so a `Start` or `Delete` of the
//! container cannot interleave with the SIGKILL. A forced delete already holds the key and
//! runs the whole sequence inline ([`stop_holding_key`]).

use super::{blocking, Containers, Engine};
use crate::error::ContainerError;
use crate::store::Durable;
use imagebus_schema::container::{ContainerInfo, ContainerState};
use imagebus_schema::Selector;
use imagebus_sys::signal::SIGKILL;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a stopped init may take to go after SIGKILL before the wait gives up.
pub const KILL_GRACE: Duration = Duration::from_secs(30);

/// What step 2 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Already stopping: only wait.
    Nothing,
    /// Send the stop signal, then escalate after the grace period.
    Signal(i32),
    /// A created container never ran: SIGKILL every process at once.
    KillCreated,
}

/// A stop in progress.
struct Pending {
    rid: String,
    generation: u64,
    after: Duration,
    action: Action,
    rx: oneshot::Receiver<Result<ContainerInfo, ContainerError>>,
    durable: Option<Durable>,
}

enum Plan {
    /// Not running: nothing to stop.
    Done(Box<ContainerInfo>),
    Wait(Pending),
}

/// Step 1.
fn plan(s: &mut Containers, id: u64, timeout_ms: Option<u64>) -> Result<Plan, ContainerError> {
    let rec = s.target(id)?;
    let after = Duration::from_millis(timeout_ms.unwrap_or(rec.stop_timeout_ms));
    let (rid, generation, state, sig) = (
        rec.info.runtime_id.clone(),
        rec.generation,
        rec.info.state,
        rec.stop_signal,
    );
    let action = match state {
        ContainerState::Exited | ContainerState::Dead => {
            return Ok(Plan::Done(Box::new(rec.info.clone())))
        }
        ContainerState::Stopping => Action::Nothing,
        ContainerState::Created => Action::KillCreated,
        ContainerState::Running => Action::Signal(sig),
    };
    let (tx, rx) = oneshot::channel();
    s.add_waiter(id, tx);
    let durable = match action {
        Action::Signal(_) => {
            if let Some(r) = s.record_mut(id) {
                r.info.state = ContainerState::Stopping;
            }
            Some(s.save_and_tell(id))
        }
        _ => None,
    };
    Ok(Plan::Wait(Pending {
        rid,
        generation,
        after,
        action,
        rx,
        durable,
    }))
}

/// Steps 1 and 2; the caller holds the container's key.
async fn begin(e: &Engine, id: u64, timeout_ms: Option<u64>) -> Result<Plan, ContainerError> {
    let plan = e.host.apply(move |s| plan(s, id, timeout_ms)).await??;
    let Plan::Wait(mut p) = plan else {
        return Ok(plan);
    };
    if let Some(d) = p.durable.take() {
        d.wait().await?;
    }
    let (runtime, rid) = (e.sys.runtime.clone(), p.rid.clone());
    match p.action {
        Action::Nothing => {}
        Action::KillCreated => {
            if let Ok(Err(err)) = blocking(move || runtime.kill(&rid, SIGKILL, true)).await {
                tracing::warn!(id, error = %err, "killing a created container");
            }
        }
        Action::Signal(sig) => {
            if let Ok(Err(err)) = blocking(move || runtime.kill(&rid, sig, false)).await {
                tracing::warn!(id, error = %err, "sending the stop signal");
            }
        }
    }
    Ok(Plan::Wait(p))
}

/// `Stop`: signals, then waits (outside the job) until the init has exited.
pub async fn stop(
    e: &Arc<Engine>,
    target: Selector,
    timeout_ms: Option<u64>,
) -> Result<ContainerInfo, ContainerError> {
    let id = e.resolve(target).await?;
    let plan = e
        .job(id, move |e| async move {
            let plan = begin(&e, id, timeout_ms).await?;
            if let Plan::Wait(p) = &plan {
                if matches!(p.action, Action::Signal(_)) {
                    arm(&e, id, p.generation, p.after);
                }
            }
            Ok(plan)
        })
        .await?;
    match plan {
        Plan::Done(info) => Ok(*info),
        Plan::Wait(p) => wait(p.rx, p.after + KILL_GRACE, id).await,
    }
}

/// zos `SignalDelete`: sends the stop signal and arms the escalation; does not wait.
pub async fn signal(e: &Arc<Engine>, id: u64) -> Result<(), ContainerError> {
    e.job(id, move |e| async move {
        if let Plan::Wait(p) = begin(&e, id, None).await? {
            if matches!(p.action, Action::Signal(_)) {
                arm(&e, id, p.generation, p.after);
            }
        }
        Ok(())
    })
    .await
}

/// Stops container `id` and waits for its exit, escalating inline: for a job that already
/// holds the container's key (a forced delete).
pub async fn stop_holding_key(e: &Engine, id: u64) -> Result<ContainerInfo, ContainerError> {
    let p = match begin(e, id, None).await? {
        Plan::Done(info) => return Ok(*info),
        Plan::Wait(p) => p,
    };
    let mut rx = p.rx;
    if p.action != Action::KillCreated {
        match tokio::time::timeout(p.after, &mut rx).await {
            Ok(answer) => return answer.map_err(|_| ContainerError::Unavailable)?,
            Err(_) => kill_now(e, id, p.generation).await,
        }
    }
    wait(rx, KILL_GRACE, id).await
}

/// Arms step 3 for run `generation` of `id`: after `after`, a job on the container's key
/// sends SIGKILL if that run is still stopping. Re-armed by start-up reconciliation.
pub fn arm(e: &Engine, id: u64, generation: u64, after: Duration) {
    let (weak, quit) = (e.weak(), e.quit.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(after) => {}
            () = quit.cancelled() => return,
        }
        let Some(e) = weak.upgrade() else {
            return;
        };
        let r = e
            .job(id, move |e| async move {
                kill_now(&e, id, generation).await;
                Ok(())
            })
            .await;
        if let Err(err) = r {
            tracing::warn!(id, error = %err, "SIGKILL after the stop timeout");
        }
    });
}

/// Step 3: SIGKILL to every process of run `generation` of `id` if it is still stopping.
async fn kill_now(e: &Engine, id: u64, generation: u64) {
    let rid = e
        .host
        .read(move |s| {
            s.target(id)
                .ok()
                .filter(|r| r.generation == generation && r.info.state == ContainerState::Stopping)
                .map(|r| r.info.runtime_id.clone())
        })
        .await
        .ok()
        .flatten();
    let Some(rid) = rid else {
        return;
    };
    tracing::info!(id, "stop timeout passed; sending SIGKILL");
    let runtime = e.sys.runtime.clone();
    if let Ok(Err(err)) = blocking(move || runtime.kill(&rid, SIGKILL, true)).await {
        tracing::warn!(id, error = %err, "SIGKILL after the stop timeout");
    }
}

/// Step 4: the caller's wait for the exit, bounded.
async fn wait(
    rx: oneshot::Receiver<Result<ContainerInfo, ContainerError>>,
    bound: Duration,
    id: u64,
) -> Result<ContainerInfo, ContainerError> {
    match tokio::time::timeout(bound, rx).await {
        Ok(Ok(answer)) => answer,
        // The state (and the waiter with it) is gone: the actor stopped.
        Ok(Err(_)) => Err(ContainerError::Unavailable),
        Err(_) => Err(ContainerError::WrongState {
            id,
            state: ContainerState::Stopping,
            what: "the init has not exited after SIGKILL",
        }),
    }
}
