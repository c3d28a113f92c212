//! Health checks (`ContainerSpec.health`): a task per run ([`arm`]) that, every interval,
//! (1) reads the run from the state, (2) runs the check as an exec in the container on the
//! blocking pool, bounded by the check's own timeout (the exec engine's request and the
//! runtime's `exec`, which kills the process at its deadline), (3) records the outcome in
//! a step ([`record`]); a change of status (`starting` → `healthy` → `unhealthy` ...) is
//! saved with a `running` event carrying it. No key is held while a check runs, so a
//! hanging check never delays a command.
//!
//! Combined with the restart policy: when a container becomes unhealthy and its policy is
//! `on-failure` or `always`, the same step marks the run `health_kill`, and (4) a job on
//! the container's key sends it the stop signal, then SIGKILL after its stop timeout if it
//! is still running. Its end is a failure with the reason `unhealthy`, and the policy
//! restarts it as usual (backoff, `max_retries`). With `no` the status is only reported.
//! A `Stop` of the container wins as always (its run ends `stopping`: no restart).
//!
//! The task ends with its run (another generation, or a state that is not live) or with
//! the actor; start-up reconciliation arms the checks of the runs it re-attaches, keeping
//! the status the record had.

use super::{blocking, exec, Containers, Engine};
use crate::error::ContainerError;
use crate::store::Durable;
use imagebus_schema::container::{
    ContainerState, ExecSpec, Health, HealthSpec, HealthStatus, RestartPolicy,
};
use imagebus_sys::monitor::now_ms;
use imagebus_sys::runtime::RuntimeError;
use imagebus_sys::signal::SIGKILL;
use std::time::Duration;

/// The reason of a run the module ended because it was unhealthy.
pub const UNHEALTHY: &str = "unhealthy";

/// Output of a check kept in [`Health::last_output`].
const MAX_OUTPUT: usize = 4096;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it succeeded (exit code 0).
    pub ok: bool,
    /// Its exit code (`None`: timed out or could not run).
    pub exit_code: Option<i32>,
    /// The end of its output, or why it failed.
    pub output: String,
}

/// Starts the checks of run `generation` of `id`, if its spec has a health check (read
/// from the state when the task starts).
pub fn arm(e: &Engine, id: u64, generation: u64) {
    let (weak, quit) = (e.weak(), e.quit.clone());
    tokio::spawn(async move {
        let spec = match weak.upgrade() {
            Some(e) => e
                .host
                .read(move |s| s.record(id).ok().and_then(|r| r.info.spec.health.clone()))
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let Some(spec) = spec else {
            return;
        };
        let interval = Duration::from_millis(spec.interval_ms());
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = quit.cancelled() => return,
            }
            let Some(e) = weak.upgrade() else {
                return;
            };
            match check_once(&e, id, generation, &spec).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(err) => {
                    tracing::warn!(id, error = %err, "health check");
                }
            }
        }
    });
}

/// One round; false once the run is over (the task ends).
async fn check_once(
    e: &Engine,
    id: u64,
    generation: u64,
    spec: &HealthSpec,
) -> Result<bool, ContainerError> {
    // 1.
    let run = e
        .host
        .read(move |s| {
            s.target(id)
                .ok()
                .filter(|r| r.generation == generation && r.is_live())
                .map(|r| (r.info.state, r.info.runtime_id.clone()))
        })
        .await?;
    let Some((state, rid)) = run else {
        return Ok(false);
    };
    if state != ContainerState::Running {
        // Created (not started yet) or stopping: nothing to check this round.
        return Ok(true);
    }
    // 2.
    let outcome = run_check(e, &rid, spec).await?;
    // 3.
    let now = now_ms();
    let recorded = e
        .host
        .apply(move |s| record(s, id, generation, outcome, now))
        .await?;
    let Some((durable, kill)) = recorded else {
        return Ok(true);
    };
    if let Some(d) = durable {
        d.wait().await?;
    }
    if kill {
        // 4.
        end_unhealthy(e, id, generation).await?;
    }
    Ok(true)
}

/// Runs the check as an exec, bounded by its timeout.
async fn run_check(e: &Engine, rid: &str, spec: &HealthSpec) -> Result<Outcome, ContainerError> {
    let timeout_ms = spec.timeout_ms();
    let req = exec::request(ExecSpec {
        command: spec.command.clone(),
        env: Vec::new(),
        working_dir: None,
        user: None,
        timeout_ms: Some(timeout_ms),
    })?;
    let (runtime, rid) = (e.sys.runtime.clone(), rid.to_string());
    let out = blocking(move || runtime.exec(&rid, &req)).await?;
    Ok(match out {
        Ok(o) => {
            let mut text = o.stdout;
            text.push_str(&o.stderr);
            Outcome {
                ok: o.exit_code == 0,
                exit_code: Some(o.exit_code),
                output: tail(&text, MAX_OUTPUT),
            }
        }
        Err(RuntimeError::Timeout { .. }) => Outcome {
            ok: false,
            exit_code: None,
            output: format!(
                "the health check ran longer than its timeout ({timeout_ms} ms) and was killed"
            ),
        },
        Err(err) => Outcome {
            ok: false,
            exit_code: None,
            output: tail(
                &format!("the health check could not run: {err}"),
                MAX_OUTPUT,
            ),
        },
    })
}

/// The last `max` bytes of `s` (on a character boundary).
fn tail(s: &str, max: usize) -> String {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// Step 3: the outcome of a check of run `generation` of `id` (ignored if that run is no
/// longer the running one). Returns the commit of a status change (`None`: no change, so
/// nothing to write) and whether the run is to be ended as unhealthy.
pub fn record(
    s: &mut Containers,
    id: u64,
    generation: u64,
    outcome: Outcome,
    now: u64,
) -> Option<(Option<Durable>, bool)> {
    let rec = s.record_mut(id)?;
    // A run being ended as unhealthy stays so: its checks no longer count.
    if rec.generation != generation || rec.info.state != ContainerState::Running || rec.health_kill
    {
        return None;
    }
    let spec = rec.info.spec.health.clone()?;
    let in_start_period = rec
        .info
        .started_at_ms
        .is_some_and(|t| now < t.saturating_add(spec.start_period_ms()));
    let h = rec.info.health.get_or_insert_with(Health::starting);
    let before = h.status;
    let status = apply(h, &spec, outcome, in_start_period, now);
    if status == before {
        return Some((None, false));
    }
    tracing::info!(id, from = before.as_str(), to = status.as_str(), "health");
    let kill = status == HealthStatus::Unhealthy
        && rec.info.spec.restart.policy != RestartPolicy::No
        && !rec.health_kill;
    if kill {
        rec.health_kill = true;
    }
    Some((Some(s.save_and_tell(id)), kill))
}

/// The outcome of one check applied to `h`; returns the new status.
fn apply(
    h: &mut Health,
    spec: &HealthSpec,
    outcome: Outcome,
    in_start_period: bool,
    now: u64,
) -> HealthStatus {
    h.last_check_ms = Some(now);
    h.last_exit_code = outcome.exit_code;
    h.last_output = outcome.output;
    if outcome.ok {
        h.failing_streak = 0;
        h.status = HealthStatus::Healthy;
    } else if !in_start_period {
        h.failing_streak = h.failing_streak.saturating_add(1);
        if h.failing_streak >= spec.retries() {
            h.status = HealthStatus::Unhealthy;
        }
    }
    h.status
}

/// Step 4: the stop signal to the unhealthy run, on the container's key (so no new run
/// can have replaced it), then SIGKILL after its stop timeout if it still runs.
async fn end_unhealthy(e: &Engine, id: u64, generation: u64) -> Result<(), ContainerError> {
    let Some(e) = e.weak().upgrade() else {
        return Ok(());
    };
    let grace = e
        .job(id, move |e| async move {
            signal(&e, id, generation, None).await
        })
        .await?;
    let Some(grace) = grace else {
        return Ok(());
    };
    let quit = e.quit.clone();
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        () = quit.cancelled() => return Ok(()),
    }
    e.job(id, move |e| async move {
        signal(&e, id, generation, Some(SIGKILL)).await
    })
    .await?;
    Ok(())
}

/// Sends `sig` (default: the stop signal) to run `generation` of `id` if it is still
/// running and marked `health_kill` (a `Stop` meanwhile makes it stopping: its own timer
/// escalates). Returns the stop timeout, when it signalled.
async fn signal(
    e: &Engine,
    id: u64,
    generation: u64,
    sig: Option<i32>,
) -> Result<Option<Duration>, ContainerError> {
    let target = e
        .host
        .read(move |s| {
            s.target(id)
                .ok()
                .filter(|r| {
                    r.generation == generation
                        && r.health_kill
                        && r.info.state == ContainerState::Running
                })
                .map(|r| (r.info.runtime_id.clone(), r.stop_signal, r.stop_timeout_ms))
        })
        .await?;
    let Some((rid, stop_signal, grace_ms)) = target else {
        return Ok(None);
    };
    let (sig, all) = match sig {
        Some(s) => (s, true),
        None => (stop_signal, false),
    };
    tracing::info!(id, signal = sig, "ending an unhealthy container");
    let runtime = e.sys.runtime.clone();
    if let Ok(Err(err)) = blocking(move || runtime.kill(&rid, sig, all)).await {
        tracing::warn!(id, error = %err, "signalling an unhealthy container");
    }
    Ok(Some(Duration::from_millis(grace_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_schema::container::CommandLine;

    fn outcome(ok: bool) -> Outcome {
        Outcome {
            ok,
            exit_code: Some(i32::from(!ok)),
            output: String::new(),
        }
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_and_a_success_heals() {
        let spec = HealthSpec {
            command: CommandLine::Line("x".into()),
            interval_ms: None,
            timeout_ms: None,
            retries: Some(3),
            start_period_ms: None,
        };
        let mut h = Health::starting();
        // Failures in the start period do not count.
        for _ in 0..5 {
            assert_eq!(
                apply(&mut h, &spec, outcome(false), true, 1),
                HealthStatus::Starting
            );
        }
        assert_eq!(h.failing_streak, 0);
        let seq: Vec<HealthStatus> = [false, false, true, false, false, false, false]
            .iter()
            .map(|ok| apply(&mut h, &spec, outcome(*ok), false, 2))
            .collect();
        use HealthStatus::*;
        assert_eq!(
            seq,
            [Starting, Starting, Healthy, Healthy, Healthy, Unhealthy, Unhealthy]
        );
        assert_eq!(
            (h.failing_streak, h.last_check_ms, h.last_exit_code),
            (4, Some(2), Some(1))
        );
        // A success in the start period counts.
        let mut h = Health::starting();
        assert_eq!(apply(&mut h, &spec, outcome(true), true, 1), Healthy);
    }

    #[test]
    fn tail_keeps_the_end_on_a_character_boundary() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aé", 2), "é");
    }
}
