//! Restart policies (`ContainerSpec.restart`): (1) in the exit step, [`decide`] whether the
//! run that just ended is run again and when (exponential backoff from [`BACKOFF_BASE`],
//! capped at [`BACKOFF_CAP`]; a run that lasted [`STABLE`] resets the backoff and the
//! `max_retries` budget), and note it in the record (`restart_due_ms`, durable with the
//! exit); (2) a timer ([`schedule`]) that, when the restart is due, (3) takes the
//! container's key and, if that run is still the last one and the restart still pending,
//! launches a new run, counts it (`ContainerInfo.restart_count`) and publishes its
//! `running` event with the reason.
//!
//! Only a run that was `running` when it ended is restarted: a `Stop` (and so a forced
//! `Delete`, zos `Delete` and `SignalDelete`) marks it `stopping` first. A `Stop` of an
//! exited container with a restart pending cancels it; a `Start` replaces it; a `Delete`
//! removes the container, and the timer then finds nothing. Start-up reconciliation
//! re-arms pending restarts and decides for runs that ended while no actor watched.

use super::launch::{launch, Launched};
use super::{watch, Containers, Engine};
use crate::error::ContainerError;
use crate::store::{Durable, Record};
use imagebus_schema::container::{ContainerEvent, ContainerState, RestartPolicy};
use imagebus_sys::monitor::now_ms;
use std::time::Duration;

/// The first restart's delay; each restart in a row doubles it.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);

/// The longest delay between restarts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// A run that lasts this long resets the backoff and the `max_retries` budget.
pub const STABLE: Duration = Duration::from_secs(10);

/// The delay before restart number `streak + 1` of a row.
pub fn backoff(streak: u32) -> Duration {
    let factor = 1u32.checked_shl(streak.min(16)).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Step 1, in the exit step: `rec` has just been marked `exited` or `dead`; `was` is the
/// state its run ended in. Returns the delay of the restart it schedules, if any (noted in
/// the record, which the caller saves).
pub fn decide(rec: &mut Record, was: ContainerState, now: u64) -> Option<Duration> {
    rec.restart_due_ms = None;
    let policy = rec.info.spec.restart;
    // A run the module ended because it was unhealthy failed, whatever its exit code.
    let failed =
        rec.info.state == ContainerState::Dead || rec.info.exit_code != Some(0) || rec.health_kill;
    let wanted = match policy.policy {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure => failed,
        RestartPolicy::Always => true,
    };
    if !wanted || was != ContainerState::Running {
        return None;
    }
    let ran = rec
        .info
        .finished_at_ms
        .unwrap_or(now)
        .saturating_sub(rec.info.started_at_ms.unwrap_or(0));
    if u128::from(ran) >= STABLE.as_millis() {
        rec.restart_streak = 0;
    }
    if policy.max_retries.is_some_and(|m| rec.restart_streak >= m) {
        tracing::info!(
            id = rec.info.id,
            retries = rec.restart_streak,
            "restart policy: no retries left"
        );
        return None;
    }
    let delay = backoff(rec.restart_streak);
    rec.restart_streak = rec.restart_streak.saturating_add(1);
    rec.restart_due_ms = Some(now.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(0)));
    Some(delay)
}

/// Why the run after `rec`'s last one is a restart, for its event.
fn reason(rec: &Record) -> String {
    let policy = rec.info.spec.restart;
    let limit = policy
        .max_retries
        .map(|m| format!(":{m}"))
        .unwrap_or_default();
    let why = match (rec.info.state, rec.info.exit_code) {
        (ContainerState::Dead, _) => format!(
            "died ({})",
            rec.info.reason.as_deref().unwrap_or("unknown end")
        ),
        _ if rec.health_kill => format!(
            "was {} (its health check failed {} times in a row)",
            super::health::UNHEALTHY,
            rec.info.health.as_ref().map_or(0, |h| h.failing_streak)
        ),
        (_, Some(code)) if rec.info.reason.as_deref() == Some(super::exits::OOM) => {
            format!("exited with code {code} (OOM kill)")
        }
        (_, Some(code)) => format!("exited with code {code}"),
        _ => "exited".to_string(),
    };
    format!(
        "restart {} by policy {}{limit}: the init {why}",
        rec.info.restart_count + 1,
        policy.policy.as_str()
    )
}

/// Step 2: after `delay`, restart the run after run `generation` of `id` if it is still
/// pending. Ends with the actor.
pub fn schedule(e: &Engine, id: u64, generation: u64, delay: Duration) {
    let (weak, quit) = (e.weak(), e.quit.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = quit.cancelled() => return,
        }
        let Some(e) = weak.upgrade() else {
            return;
        };
        let r = e
            .job(
                id,
                move |e| async move { restart(&e, id, generation).await },
            )
            .await;
        if let Err(err) = r {
            tracing::warn!(id, error = %err, "restart by policy");
        }
    });
}

/// The re-armed timer of a pending restart found at start-up.
pub fn resume(e: &Engine, id: u64, generation: u64, due_ms: u64) {
    schedule(
        e,
        id,
        generation,
        Duration::from_millis(due_ms.saturating_sub(now_ms())),
    );
}

/// Step 3, holding the key.
async fn restart(e: &Engine, id: u64, generation: u64) -> Result<(), ContainerError> {
    let pending = e
        .host
        .read(move |s| {
            s.target(id).ok().cloned().filter(|r| {
                r.generation == generation
                    && r.restart_due_ms.is_some()
                    && matches!(r.info.state, ContainerState::Exited | ContainerState::Dead)
            })
        })
        .await?;
    let Some(rec) = pending else {
        return Ok(());
    };
    let why = reason(&rec);
    tracing::info!(id, reason = %why, "restarting");
    match launch(e, &rec, true).await {
        Ok(launched) => {
            let durable = e
                .host
                .apply(move |s| apply_restart(s, id, generation, launched, why))
                .await?;
            if let Some(d) = durable {
                d.wait().await?;
                watch::watch(e, launched.watched, id, generation + 1);
                super::health::arm(e, id, generation + 1);
            }
        }
        Err(err) => {
            // Counted like a run that failed at once: the policy decides again.
            let msg = format!("{why}; the restart failed: {err}");
            let next = e
                .host
                .apply(move |s| apply_failed(s, id, generation, msg))
                .await?;
            if let Some((d, delay)) = next {
                d.wait().await?;
                if let Some(delay) = delay {
                    schedule(e, id, generation, delay);
                }
            }
        }
    }
    Ok(())
}

/// The step after a restart's launch: the new run, counted, with its event.
fn apply_restart(
    s: &mut Containers,
    id: u64,
    generation: u64,
    launched: Launched,
    why: String,
) -> Option<Durable> {
    let rec = s.record_mut(id)?;
    if rec.generation != generation {
        return None;
    }
    launched.apply(rec);
    rec.info.restart_count = rec.info.restart_count.saturating_add(1);
    let mut ev: ContainerEvent = super::event(&rec.info, false);
    ev.reason = Some(why);
    Some(s.save(id, vec![ev]))
}

/// The step after a restart that could not be launched: `dead` with the reason, and the
/// policy's next decision.
fn apply_failed(
    s: &mut Containers,
    id: u64,
    generation: u64,
    msg: String,
) -> Option<(Durable, Option<Duration>)> {
    let rec = s.record_mut(id)?;
    if rec.generation != generation {
        return None;
    }
    let now = now_ms();
    rec.info.state = ContainerState::Dead;
    rec.info.reason = Some(msg);
    rec.info.restart_count = rec.info.restart_count.saturating_add(1);
    rec.info.started_at_ms = Some(now);
    rec.info.finished_at_ms = Some(now);
    let delay = decide(rec, ContainerState::Running, now);
    Some((s.save_and_tell(id), delay))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;
    use imagebus_schema::container::{
        CommandLine, ContainerInfo, ContainerSpec, RestartPolicy, RestartSpec,
    };
    use imagebus_schema::mount::MountRef;
    use imagebus_schema::Selector;

    fn ended(policy: &str, exit_code: i32, ran_ms: u64) -> Record {
        let spec = ContainerSpec {
            restart: RestartSpec::parse(policy).unwrap(),
            ..ContainerSpec::new(
                MountRef::Existing(Selector::Id(1)),
                CommandLine::Line("x".into()),
            )
        };
        Record {
            info: ContainerInfo {
                id: 1,
                name: None,
                group: None,
                state: ContainerState::Exited,
                mount: 1,
                rootfs: "/r".into(),
                command: vec!["x".into()],
                pid: None,
                exit_code: Some(exit_code),
                exit_signal: None,
                reason: None,
                log_file: "/l".into(),
                runtime_id: "ib-1".into(),
                created_at_ms: 0,
                started_at_ms: Some(1_000),
                finished_at_ms: Some(1_000 + ran_ms),
                restart_count: 0,
                health: None,
                spec,
            },
            stop_signal: 15,
            stop_timeout_ms: 1000,
            generation: 1,
            watched: None,
            restart_due_ms: None,
            restart_streak: 0,
            health_kill: false,
        }
    }

    #[test]
    fn policies_decide_by_exit_code_and_only_after_a_running_run() {
        let run = ContainerState::Running;
        assert_eq!(decide(&mut ended("no", 3, 5), run, 9), None);
        assert_eq!(decide(&mut ended("on-failure", 0, 5), run, 9), None);
        assert_eq!(
            decide(&mut ended("on-failure", 3, 5), run, 9),
            Some(BACKOFF_BASE)
        );
        assert_eq!(
            decide(&mut ended("always", 0, 5), run, 9),
            Some(BACKOFF_BASE)
        );
        let mut dead = ended("on-failure", 0, 5);
        dead.info.state = ContainerState::Dead;
        dead.info.exit_code = None;
        assert!(
            decide(&mut dead, run, 9).is_some(),
            "an unknown end is a failure"
        );
        // Stopped by the operator (the run was stopping) or never started: no restart.
        let mut r = ended("always", 3, 5);
        assert_eq!(decide(&mut r, ContainerState::Stopping, 9), None);
        assert_eq!(r.restart_due_ms, None);
        assert_eq!(
            decide(&mut ended("always", 3, 5), ContainerState::Created, 9),
            None
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_retries_run_out() {
        let mut r = ended("on-failure:3", 1, 5);
        let mut delays = Vec::new();
        while let Some(d) = decide(&mut r, ContainerState::Running, 100) {
            assert_eq!(r.restart_due_ms, Some(100 + d.as_millis() as u64));
            delays.push(d);
        }
        assert_eq!(delays, [1, 2, 4].map(|k| BACKOFF_BASE * k));
        assert_eq!(r.restart_due_ms, None);
        assert_eq!(backoff(40), BACKOFF_CAP);
        assert!(backoff(6) < BACKOFF_CAP && backoff(7) == BACKOFF_CAP);
        // A run that stayed up for the stable period starts a new row.
        let mut r = ended("on-failure:3", 1, STABLE.as_millis() as u64);
        r.restart_streak = 3;
        assert_eq!(
            decide(&mut r, ContainerState::Running, 9),
            Some(BACKOFF_BASE)
        );
        assert_eq!(r.restart_streak, 1);
        let _ = RestartPolicy::Always;
    }

    #[test]
    fn the_reason_names_the_policy_the_count_and_the_end() {
        let mut r = ended("on-failure:2", 3, 5);
        r.info.restart_count = 1;
        assert_eq!(
            reason(&r),
            "restart 2 by policy on-failure:2: the init exited with code 3"
        );
    }
}
