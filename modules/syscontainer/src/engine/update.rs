//! `Update` and `Rollback`. Update checks the image out into the other slot first
//! (replacing the older deployment; the service keeps running meanwhile, and a failed
//! checkout leaves it as it was), then both switch: stop the service, remove the
//! container, put the target's host side in place, create the container on the target
//! slot, point `NAME` at it (the commit: one rename) and start the service. A failure
//! before the commit puts the previous deployment back.

use crate::engine::deploy::{self, Source};
use crate::engine::exports::check_set;
use crate::engine::{blocking, load, Ctx, Record};
use crate::error::SysError;
use crate::store::{self, Info};
use imagebus_schema::syscontainer::UpdateSpec;

pub(crate) async fn update(ctx: &Ctx, spec: UpdateSpec) -> Result<Record, SysError> {
    let name = spec.name.clone();
    check_set(&spec.values)?;
    let rec = load(ctx, &name)
        .await?
        .ok_or_else(|| SysError::NotFound(format!("system container {name}")))?;
    let cur = &rec.current.deployment;
    let mut set = cur.set.clone();
    set.extend(spec.values.clone());
    let src = Source {
        image: spec.image.clone().unwrap_or_else(|| cur.image.clone()),
        rootfs: cur.rootfs.clone(),
        set,
        supervisor: rec.current.supervisor,
        uuid: cur.values.get("UUID").cloned(),
    };
    let target = 1 - rec.active;
    // Only two deployments are kept: the older one makes room.
    deploy::remove_slot(ctx, &name, target).await?;
    let new = deploy::checkout(ctx, &name, target, &src).await?;
    if let Err(e) = switch(ctx, &name, &rec.current, new).await {
        if let Err(e2) = deploy::remove_slot(ctx, &name, target).await {
            tracing::warn!(name, error = %e2, "the new slot was not removed");
        }
        return Err(e);
    }
    tracing::info!(name, slot = target, "system container updated");
    reload(ctx, &name).await
}

pub(crate) async fn rollback(ctx: &Ctx, name: &str) -> Result<Record, SysError> {
    let rec = load(ctx, name)
        .await?
        .ok_or_else(|| SysError::NotFound(format!("system container {name}")))?;
    let other = rec.other.clone().ok_or_else(|| {
        SysError::Conflict(format!(
            "system container {name} has no previous deployment to roll back to"
        ))
    })?;
    switch(ctx, name, &rec.current, other).await?;
    tracing::info!(name, slot = 1 - rec.active, "system container rolled back");
    reload(ctx, name).await
}

async fn reload(ctx: &Ctx, name: &str) -> Result<Record, SysError> {
    load(ctx, name)
        .await?
        .ok_or_else(|| SysError::Internal(format!("{name} vanished")))
}

/// Moves the service from `from` to `to`; before the commit a failure restores `from`.
async fn switch(ctx: &Ctx, name: &str, from: &Info, mut to: Info) -> Result<(), SysError> {
    deploy::stop_service(ctx, name, from).await?;
    deploy::remove_container(ctx, name).await?;
    let placed = async {
        deploy::apply_host(ctx, name, &to).await?;
        ctx.container
            .create(deploy::container_spec(name, &to))
            .await?;
        Ok::<(), SysError>(())
    }
    .await;
    if let Err(e) = placed {
        tracing::warn!(name, error = %e, "switching failed; restoring the active deployment");
        let restored = async {
            deploy::remove_container(ctx, name).await?;
            deploy::apply_host(ctx, name, from).await?;
            ctx.container
                .create(deploy::container_spec(name, from))
                .await?;
            deploy::start_service(ctx, name, from).await
        }
        .await;
        if let Err(e2) = restored {
            tracing::error!(name, error = %e2, "the active deployment could not be restored");
        }
        return Err(e);
    }
    if to.deployment.activated_at.is_none() {
        to.deployment.activated_at = Some(store::now());
    }
    let cfg = ctx.cfg.clone();
    let (n, t) = (name.to_string(), to.clone());
    blocking(move || {
        store::save_info(&cfg, &n, &t)?;
        store::switch(&cfg, &n, t.deployment.slot)
    })
    .await?;
    deploy::restart_service(ctx, name, &to).await
}
