//! `Uninstall`: stop the service (systemd: `systemctl disable --now NAME.service`), remove
//! the `NAME` link (the commit: from here on start-up reconciliation finishes the job),
//! then the unit and every journaled host path, the container, both slots and their
//! mounts, and have systemd reload its units. [`undo_all`] is also how a failed or crashed
//! install is undone.

use crate::config::SysConfig;
use crate::engine::{blocking, deploy, host, load, Ctx};
use crate::error::SysError;
use crate::store::{self, Info};
use imagebus_schema::syscontainer::Supervisor;
use imagebus_schema::Selector;

pub(crate) async fn uninstall(ctx: &Ctx, name: &str) -> Result<(), SysError> {
    let rec = load(ctx, name)
        .await?
        .ok_or_else(|| SysError::NotFound(format!("system container {name}")))?;
    // A systemctl that fails leaves the system container installed (and the call may be
    // repeated): nothing is removed under a systemd that still runs the unit.
    uncommit(ctx, name, &rec.current, false).await?;
    if load(ctx, name).await?.is_some() || has_leftovers(ctx, name).await? {
        return Err(SysError::Internal(format!(
            "{name}: some parts could not be removed; see the daemon's log"
        )));
    }
    tracing::info!(name, "system container uninstalled");
    Ok(())
}

/// Stops and disables the service, removes the `NAME` link, then everything else
/// ([`undo_all`]). Errors before the link is removed leave the system container as it
/// was, unless `force` (undoing a failed install), which logs them and goes on.
pub(crate) async fn uncommit(
    ctx: &Ctx,
    name: &str,
    current: &Info,
    force: bool,
) -> Result<(), SysError> {
    if let Err(e) = stop_for_good(ctx, name, current).await {
        if !force {
            return Err(e);
        }
        tracing::warn!(name, error = %e, "the service was not stopped; removing it anyway");
    }
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    blocking(move || store::unlink(&cfg, &n)).await?;
    undo_all(ctx, name).await;
    Ok(())
}

/// Stops the service so that its supervisor does not start it again.
async fn stop_for_good(ctx: &Ctx, name: &str, current: &Info) -> Result<(), SysError> {
    match current.supervisor {
        Supervisor::Systemd => {
            let cfg = ctx.cfg.clone();
            let n = name.to_string();
            let unit_exists = blocking(move || Ok(cfg.service_file(&n).exists())).await?;
            if unit_exists {
                ctx.systemd.disable_now(name).await?;
            }
            deploy::stop_service(ctx, name, current).await?;
        }
        Supervisor::Zinit => {
            deploy::stop_service(ctx, name, current).await?;
            if let Err(e) = ctx.zinit.forget(name).await {
                tracing::warn!(name, error = %e, "zinit did not forget the unit");
            }
        }
        Supervisor::Imagebusd => deploy::stop_service(ctx, name, current).await?,
    }
    Ok(())
}

async fn has_leftovers(ctx: &Ctx, name: &str) -> Result<bool, SysError> {
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    blocking(move || Ok(store::names(&cfg)?.contains(&n))).await
}

/// Removes everything of `name` that is not committed (no `NAME` link): its container
/// (when it stands on one of its slots' mounts), its host paths (a systemd unit of ours
/// is disabled first, and systemd reloads its units after), its slots and mounts. Best
/// effort: what fails is logged, and the next start-up tries again.
pub(crate) async fn undo_all(ctx: &Ctx, name: &str) {
    let mut ours = Vec::new();
    for slot in [0, 1] {
        let sel = Selector::Name(SysConfig::mount_name(name, slot));
        if let Ok(m) = ctx.mount.get(sel).await {
            ours.push(m.id);
        }
    }
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    let systemd_unit = blocking(move || {
        let unit = cfg.service_file(&n);
        Ok(store::journal(&cfg, &n)?.iter().any(|e| e.path == unit))
    })
    .await
    .unwrap_or(false);
    if systemd_unit {
        if let Err(e) = ctx.systemd.disable_now(name).await {
            tracing::warn!(name, error = %e, "systemd unit not disabled");
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
    if !systemd_unit && ctx.zinit.answers().await {
        if let Err(e) = ctx.zinit.forget(name).await {
            tracing::warn!(name, error = %e, "zinit did not forget the unit");
        }
    }
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    if let Err(e) = blocking(move || host::remove_all(&cfg, &n)).await {
        tracing::warn!(name, error = %e, "host paths not removed");
    }
    if systemd_unit {
        if let Err(e) = ctx.systemd.daemon_reload().await {
            tracing::warn!(name, error = %e, "systemd did not reload its units");
        }
    }
    for slot in [0, 1] {
        if let Err(e) = deploy::remove_slot(ctx, name, slot).await {
            tracing::warn!(name, slot, error = %e, "slot not removed");
        }
    }
}
