//! Stopping, with all of its escalation: (1) in a step, decide, mark `stopping` and
//! register the caller as a waiter; (2) once that is durable, send the stop signal (or
//! SIGKILL to a created container); (3) after the grace period, SIGKILL; (4) the caller is
//! answered when `exits.rs` records the end.
//!
//! `Stop` holds the container's key only for steps 1-2; it waits for the exit outside the
//! job, and the grace timer takes the key again for step 3, so a `Start` or `Delete` of the
//! container cannot interleave with the SIGKILL. A forced delete already holds the key and
//! runs the whole sequence inline ([`stop_holding_key`]).
//!
//! A container already stopping: the state keeps, per run, the earliest time any stop
//! asked for its SIGKILL ([`Containers::kill_by`]); a later `Stop` whose timeout ends
//! sooner arms a timer of its own (a timer that fires late, for a run that has ended or
//! was killed already, finds nothing to do), and a forced delete sends SIGKILL at once.
//! The caller's wait ends 250 ms before its deadline at the latest (`InProgress`, code
//! `Timeout`): the container stays stopping, its SIGKILL still due.

use super::{blocking, reply_by, Containers, Engine};
use crate::error::ContainerError;
use crate::store::Durable;
use imagebus_schema::container::{ContainerInfo, ContainerState};
use imagebus_schema::Selector;
use imagebus_sys::signal::SIGKILL;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a stopped init may take to go after SIGKILL before the wait gives up.
pub const KILL_GRACE: Duration = Duration::from_secs(30);

/// A forced delete of a running container stops waiting for a graceful exit this long
/// before its caller's deadline and sends SIGKILL, so the delete can finish in time.
pub const FORCE_MARGIN: Duration = Duration::from_secs(3);

/// Who stops: a `Stop`, or a forced delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopper {
    /// `Stop` (and zos `SignalDelete`): the stop signal, SIGKILL after the grace period.
    Stop,
    /// A forced delete that stops gracefully first (zos `Delete`): as `Stop`, but a
    /// container already stopping gets SIGKILL at once.
    GracefulDelete,
    /// A forced delete as `docker rm -f`: SIGKILL at once.
    KillDelete,
}

/// What step 2 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Already stopping, and SIGKILL is due no later than this stop asks: only wait.
    Nothing,
    /// Already stopping, and this stop asks for an earlier SIGKILL: arm a timer for it.
    Escalate,
    /// Already stopping, and a forced delete asks: SIGKILL now.
    KillNow,
    /// Send the stop signal, then escalate after the grace period.
    Signal(i32),
    /// A created container never ran: SIGKILL every process at once.
    KillCreated,
}

/// A stop in progress.
struct Pending {
    rid: String,
    generation: u64,
    /// This stop's grace period.
    after: Duration,
    /// When SIGKILL is due (the earliest any stop asked for; `None`: never).
    kill_at: Option<Instant>,
    action: Action,
    rx: oneshot::Receiver<Result<ContainerInfo, ContainerError>>,
    durable: Option<Durable>,
}

impl Pending {
    /// Whether this stop arms a SIGKILL timer.
    fn arms(&self) -> bool {
        matches!(self.action, Action::Signal(_) | Action::Escalate)
    }
}

enum Plan {
    /// Not running: nothing to stop (a pending restart is cancelled; durable once the
    /// commit resolves).
    Done(Box<ContainerInfo>, Option<Durable>),
    Wait(Pending),
}

/// Step 1. A forced delete kills a container already stopping at once, and a running one
/// too for [`Stopper::KillDelete`].
fn plan(
    s: &mut Containers,
    id: u64,
    timeout_ms: Option<u64>,
    by: Stopper,
    now: Instant,
) -> Result<Plan, ContainerError> {
    let rec = s.target(id)?;
    if rec.restart_due_ms.is_some() && !rec.is_live() {
        // An operator's stop ends the restart policy's row: nothing is run again.
        let info = rec.info.clone();
        if let Some(r) = s.record_mut(id) {
            r.restart_due_ms = None;
            r.restart_streak = 0;
        }
        tracing::info!(id, "stop: the pending restart is cancelled");
        return Ok(Plan::Done(Box::new(info), Some(s.save(id, Vec::new()))));
    }
    let rec = s.target(id)?;
    let after = Duration::from_millis(timeout_ms.unwrap_or(rec.stop_timeout_ms));
    let (rid, generation, state, sig) = (
        rec.info.runtime_id.clone(),
        rec.generation,
        rec.info.state,
        rec.stop_signal,
    );
    // A huge grace period is "never", not an overflow.
    let asked = now.checked_add(after);
    let (action, kill_at) = match state {
        ContainerState::Exited | ContainerState::Dead => {
            return Ok(Plan::Done(Box::new(rec.info.clone()), None))
        }
        ContainerState::Stopping if by != Stopper::Stop => {
            s.kill_by(id, generation, Some(now));
            (Action::KillNow, Some(now))
        }
        ContainerState::Stopping => match s.kill_by(id, generation, asked) {
            (true, due) => (Action::Escalate, due),
            (false, due) => (Action::Nothing, due),
        },
        ContainerState::Created => (Action::KillCreated, Some(now)),
        // A forced delete kills at once, as `docker rm -f` does; `Stop` is the graceful way.
        ContainerState::Running if by == Stopper::KillDelete => {
            s.kill_by(id, generation, Some(now));
            (Action::KillNow, Some(now))
        }
        ContainerState::Running => (Action::Signal(sig), s.kill_by(id, generation, asked).1),
    };
    let (tx, rx) = oneshot::channel();
    s.add_waiter(id, tx);
    let durable = match (action, state) {
        (Action::Signal(_), _) | (Action::KillNow, ContainerState::Running) => {
            if let Some(r) = s.record_mut(id) {
                r.info.state = ContainerState::Stopping;
                // The operator's stop wins over an unhealthy run's end: no reason
                // `unhealthy`, no restart.
                r.health_kill = false;
            }
            Some(s.save_and_tell(id))
        }
        _ => None,
    };
    Ok(Plan::Wait(Pending {
        rid,
        generation,
        after,
        kill_at,
        action,
        rx,
        durable,
    }))
}

/// Steps 1 and 2; the caller holds the container's key.
async fn begin(
    e: &Engine,
    id: u64,
    timeout_ms: Option<u64>,
    by: Stopper,
) -> Result<Plan, ContainerError> {
    let now = Instant::now();
    let plan = e
        .host
        .apply(move |s| plan(s, id, timeout_ms, by, now))
        .await??;
    let mut p = match plan {
        Plan::Wait(p) => p,
        Plan::Done(info, durable) => {
            if let Some(d) = durable {
                d.wait().await?;
            }
            return Ok(Plan::Done(info, None));
        }
    };
    if let Some(d) = p.durable.take() {
        d.wait().await?;
    }
    let (runtime, rid) = (e.sys.runtime.clone(), p.rid.clone());
    match p.action {
        Action::Nothing | Action::Escalate => {}
        Action::KillCreated | Action::KillNow => {
            if p.action == Action::KillNow {
                tracing::info!(id, "forced delete; sending SIGKILL");
            }
            if let Ok(Err(err)) = blocking(move || runtime.kill(&rid, SIGKILL, true)).await {
                tracing::warn!(id, error = %err, "sending SIGKILL");
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

/// `Stop`: signals, then waits (outside the job) until the init has exited. A container
/// already stopping has its SIGKILL brought forward when this stop's grace period ends
/// earlier. The wait ends at the caller's deadline ([`ContainerError::InProgress`]: the
/// container is still stopping and its SIGKILL still due).
pub async fn stop(
    e: &Arc<Engine>,
    target: Selector,
    timeout_ms: Option<u64>,
) -> Result<ContainerInfo, ContainerError> {
    let id = e.resolve(target).await?;
    let plan = e
        .job(id, move |e| async move {
            let plan = begin(&e, id, timeout_ms, Stopper::Stop).await?;
            if let Plan::Wait(p) = &plan {
                if p.arms() {
                    arm(&e, id, p.generation, p.after);
                }
            }
            Ok(plan)
        })
        .await?;
    match plan {
        Plan::Done(info, _) => Ok(*info),
        Plan::Wait(p) => {
            let bound = p
                .kill_at
                .map(|at| at.saturating_duration_since(Instant::now()) + KILL_GRACE);
            wait(p.rx, bound, reply_by(), id).await
        }
    }
}

/// zos `SignalDelete`: sends the stop signal and arms the escalation; does not wait.
pub async fn signal(e: &Arc<Engine>, id: u64) -> Result<(), ContainerError> {
    e.job(id, move |e| async move {
        if let Plan::Wait(p) = begin(&e, id, None, Stopper::Stop).await? {
            if p.arms() {
                arm(&e, id, p.generation, p.after);
            }
        }
        Ok(())
    })
    .await
}

/// Stops container `id` and waits for its exit: for a forced delete, which already holds
/// the container's key. A container already stopping gets SIGKILL at once, and so does a
/// running one for [`Stopper::KillDelete`] (as `docker rm -f`); for
/// [`Stopper::GracefulDelete`] a running one gets the stop signal and SIGKILL after its
/// grace period, or [`FORCE_MARGIN`] before the caller's deadline if that comes first.
pub async fn stop_holding_key(
    e: &Engine,
    id: u64,
    by: Stopper,
) -> Result<ContainerInfo, ContainerError> {
    let p = match begin(e, id, None, by).await? {
        Plan::Done(info, _) => return Ok(*info),
        Plan::Wait(p) => p,
    };
    let mut rx = p.rx;
    if let Action::Signal(_) = p.action {
        let now = Instant::now();
        let mut grace = p.after;
        if let Some(d) = imagebus_bus::deadline::current() {
            grace = grace.min(d.saturating_duration_since(now + FORCE_MARGIN));
        }
        match tokio::time::timeout(grace, &mut rx).await {
            Ok(answer) => return answer.map_err(|_| ContainerError::Unavailable)?,
            Err(_) => kill_now(e, id, p.generation).await,
        }
    }
    wait(rx, Some(KILL_GRACE), None, id).await
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

/// Step 4: the caller's wait for the exit: `Conflict` once `bound` passes (SIGKILL was
/// due and the init is still there after [`KILL_GRACE`]; `None`: no bound),
/// [`ContainerError::InProgress`] at `reply_by` (the caller's deadline is near).
async fn wait(
    rx: oneshot::Receiver<Result<ContainerInfo, ContainerError>>,
    bound: Option<Duration>,
    reply_by: Option<Instant>,
    id: u64,
) -> Result<ContainerInfo, ContainerError> {
    let bound = bound.and_then(|b| Instant::now().checked_add(b));
    let (until, deadline_first) = match (bound, reply_by) {
        (Some(b), Some(r)) if r < b => (Some(r), true),
        (Some(b), _) => (Some(b), false),
        (None, r) => (r, r.is_some()),
    };
    let answer = match until {
        Some(until) => tokio::time::timeout_at(until.into(), rx).await,
        None => Ok(rx.await),
    };
    match answer {
        Ok(Ok(answer)) => answer,
        // The state (and the waiter with it) is gone: the actor stopped.
        Ok(Err(_)) => Err(ContainerError::Unavailable),
        Err(_) if deadline_first => Err(ContainerError::InProgress(format!(
            "container {id} is still stopping at the caller's deadline; \
             it stays stopping and is killed when its grace period ends \
             (a stop with a shorter timeout, or a forced delete, kills it sooner)"
        ))),
        Err(_) => Err(ContainerError::WrongState {
            id,
            state: ContainerState::Stopping,
            what: "the init has not exited after SIGKILL",
        }),
    }
}
