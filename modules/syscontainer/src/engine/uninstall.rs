//! `Uninstall`: stop the service, remove the `NAME` link (the commit: from here on
//! start-up reconciliation finishes the job), then the unit and every journaled host
//! path, the container, both slots and their mounts. [`undo_all`] is also how a failed
//! or crashed install is undone.

use crate::config::SysConfig;
use crate::engine::{blocking, deploy, host, load, Ctx};
use crate::error::SysError;
use crate::store;
use imagebus_schema::syscontainer::Supervisor;
use imagebus_schema::Selector;

pub(crate) async fn uninstall(ctx: &Ctx, name: &str) -> Result<(), SysError> {
    let rec = load(ctx, name)
        .await?
        .ok_or_else(|| SysError::NotFound(format!("system container {name}")))?;
    deploy::stop_service(ctx, name, &rec.current).await?;
    if rec.current.supervisor == Supervisor::Zinit {
        let _ = ctx.zinit.forget(name).await;
    }
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    blocking(move || store::unlink(&cfg, &n)).await?;
    undo_all(ctx, name).await;
    if load(ctx, name).await?.is_some() || has_leftovers(ctx, name).await? {
        return Err(SysError::Internal(format!(
            "{name}: some parts could not be removed; see the daemon's log"
        )));
    }
    tracing::info!(name, "system container uninstalled");
    Ok(())
}

async fn has_leftovers(ctx: &Ctx, name: &str) -> Result<bool, SysError> {
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    blocking(move || Ok(store::names(&cfg)?.contains(&n))).await
}

/// Removes everything of `name` that is not committed (no `NAME` link): its container
/// (when it stands on one of its slots' mounts), its host paths, its slots and mounts.
/// Best effort: what fails is logged, and the next start-up tries again.
pub(crate) async fn undo_all(ctx: &Ctx, name: &str) {
    let mut ours = Vec::new();
    for slot in [0, 1] {
        let sel = Selector::Name(SysConfig::mount_name(name, slot));
        if let Ok(m) = ctx.mount.get(sel).await {
            ours.push(m.id);
        }
    }
    match deploy::container(ctx, name).await {
        Ok(Some(c)) if ours.contains(&c.mount) => {
            if let Err(e) = deploy::remove_container(ctx, name).await {
                tracing::warn!(name, error = %e, "container not removed");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(name, error = %e, "container not checked"),
    }
    if ctx.zinit.answers().await {
        let _ = ctx.zinit.forget(name).await;
    }
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    if let Err(e) = blocking(move || host::remove_all(&cfg, &n)).await {
        tracing::warn!(name, error = %e, "host paths not removed");
    }
    for slot in [0, 1] {
        if let Err(e) = deploy::remove_slot(ctx, name, slot).await {
            tracing::warn!(name, slot, error = %e, "slot not removed");
        }
    }
}
