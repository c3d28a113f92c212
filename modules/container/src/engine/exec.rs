//! `Exec`: `runc exec` into a running container, outside the actor (the target comes from
//! a read; the process runs on the blocking pool, bounded by its timeout).

use super::{blocking, Engine};
use crate::error::ContainerError;
use imagebus_schema::container::{ContainerState, ExecResult, ExecSpec};
use imagebus_schema::Selector;
use imagebus_sys::runtime::{ExecRequest, RuntimeError};
use std::time::Duration;

/// Default exec deadline.
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 30_000;

/// Output kept per stream.
const MAX_EXEC_OUTPUT: usize = 1 << 20;

/// Runs `spec` in `target`.
pub async fn exec(
    e: &Engine,
    target: Selector,
    spec: ExecSpec,
) -> Result<ExecResult, ContainerError> {
    let (id, rid, state) = e
        .host
        .read(move |s| {
            let id = s.find(&target)?;
            let r = s.target(id)?;
            Ok::<_, ContainerError>((id, r.info.runtime_id.clone(), r.info.state))
        })
        .await??;
    super::nul::check_exec(&spec)?;
    if state != ContainerState::Running {
        return Err(ContainerError::WrongState {
            id,
            state,
            what: "exec needs a running container",
        });
    }
    let mut req = request(spec)?;
    // The process is killed by the caller's deadline at the latest: an exec holds no bus
    // worker for a caller that gave up.
    if let Some(by) = super::reply_by() {
        req.timeout = req
            .timeout
            .min(by.saturating_duration_since(std::time::Instant::now()));
    }
    let ms = u64::try_from(req.timeout.as_millis()).unwrap_or(u64::MAX);
    let runtime = e.sys.runtime.clone();
    let out = blocking(move || runtime.exec(&rid, &req))
        .await?
        .map_err(|err| match err {
            RuntimeError::Timeout { .. } => ContainerError::ExecTimeout { id, ms },
            RuntimeError::NotFound(_) => ContainerError::WrongState {
                id,
                state: ContainerState::Exited,
                what: "exec needs a running container",
            },
            other => ContainerError::runtime(format!("exec in container {id}"), other),
        })?;
    Ok(ExecResult {
        exit_code: out.exit_code,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Checks `spec` and turns it into the runtime's request.
pub(crate) fn request(spec: ExecSpec) -> Result<ExecRequest, ContainerError> {
    let args = spec.command.argv().map_err(ContainerError::Invalid)?;
    if args.first().is_none_or(|a| a.is_empty()) {
        return Err(ContainerError::Invalid("the exec command is empty".into()));
    }
    if let Some(bad) = spec
        .env
        .iter()
        .find(|e| e.split_once('=').is_none_or(|(k, _)| k.is_empty()))
    {
        return Err(ContainerError::Invalid(format!(
            "environment entry {bad:?} is not KEY=VALUE"
        )));
    }
    let ms = spec.timeout_ms.unwrap_or(DEFAULT_EXEC_TIMEOUT_MS);
    Ok(ExecRequest {
        args,
        env: spec.env,
        cwd: spec.working_dir,
        user: spec.user.map(|u| format!("{}:{}", u.uid, u.gid)),
        timeout: Duration::from_millis(ms),
        max_output: MAX_EXEC_OUTPUT,
    })
}
