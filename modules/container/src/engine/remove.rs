//! `Delete`, as one job on the container's key (so a concurrent `Start` or `Stop` of it
//! runs wholly before or after):
//! 1. check: live containers need `force`, which (2) kills them first (SIGKILL at once;
//!    zos `Delete` stops them gracefully, escalating inline);
//! 3. in a step, mark the container `removing` (commands no longer find it) and wait until
//!    everything queued for it is written;
//! 4. release the mount reference (inline chains cascade in the mount module); on failure
//!    the mark is cleared and the error returned;
//! 5. remove the runtime state, cgroups and files;
//! 6. in a step, forget it; the final event (`deleted`) goes out once durable.
//!
//! The caller is answered at the latest shortly before its deadline (`Timeout`, see
//! [`Engine::job`]); the delete goes on, and steps 3-6 run without the caller's deadline.

use super::launch::remove_traces;
use super::{stop, Containers, Engine};
use crate::error::ContainerError;
use crate::store::Durable;
use imagebus_schema::{Holder, Selector};
use std::sync::Arc;

/// Deletes `target`; with `force` a live container is killed first (SIGKILL at once, as
/// `docker rm -f`).
pub async fn delete(e: &Arc<Engine>, target: Selector, force: bool) -> Result<(), ContainerError> {
    delete_with(e, target, force, stop::Stopper::KillDelete).await
}

/// zos `Delete`: always forced, but a running container is stopped gracefully first (its
/// stop signal, SIGKILL after its grace period), as zos does.
pub async fn delete_gracefully(e: &Arc<Engine>, target: Selector) -> Result<(), ContainerError> {
    delete_with(e, target, true, stop::Stopper::GracefulDelete).await
}

async fn delete_with(
    e: &Arc<Engine>,
    target: Selector,
    force: bool,
    by: stop::Stopper,
) -> Result<(), ContainerError> {
    let id = e.resolve(target).await?;
    e.job(
        id,
        move |e| async move { delete_job(&e, id, force, by).await },
    )
    .await
}

async fn delete_job(
    e: &Engine,
    id: u64,
    force: bool,
    by: stop::Stopper,
) -> Result<(), ContainerError> {
    // 1.
    let live = e
        .host
        .read(move |s| check(s, id, force).map(|_| s.target(id).is_ok_and(|r| r.is_live())))
        .await??;
    // 2.
    if live {
        stop::stop_holding_key(e, id, by).await?;
    }
    // Once stopped, the delete finishes even if its caller gave up meanwhile (it answered
    // `Timeout` at its deadline): a half-deleted container would help no one.
    imagebus_bus::deadline::unbounded(finish(e, id)).await
}

/// Steps 3 to 6.
async fn finish(e: &Engine, id: u64) -> Result<(), ContainerError> {
    // 3.
    let (mount, flushed) = e.host.apply(move |s| mark(s, id)).await??;
    flushed.wait().await?;
    // 4.
    if let Err(err) = e.mounts.release(mount, Holder::Container(id)).await {
        let _ = e.host.apply(move |s| s.unmark_removing(id)).await;
        return Err(ContainerError::Mount(err));
    }
    // 5.
    remove_traces(e, id).await;
    // 6.
    if let Some(done) = e.host.apply(move |s| s.forget(id)).await? {
        done.wait().await?;
    }
    tracing::info!(id, "container deleted");
    Ok(())
}

/// Step 1: a live container needs `force`.
fn check(s: &Containers, id: u64, force: bool) -> Result<(), ContainerError> {
    let rec = s.target(id)?;
    if rec.is_live() && !force {
        return Err(ContainerError::WrongState {
            id,
            state: rec.info.state,
            what: "stop it first or delete with force",
        });
    }
    Ok(())
}

/// Step 3: the mark, the mount to release, and a barrier behind the container's writes.
fn mark(s: &mut Containers, id: u64) -> Result<(u64, Durable), ContainerError> {
    check(s, id, false)?;
    let mount = s.target(id)?.info.mount;
    s.mark_removing(id);
    Ok((mount, s.barrier()))
}
