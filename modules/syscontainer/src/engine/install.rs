//! `Install`: check the image out into slot 0, put its host side in place, create its
//! container, then point `NAME` at slot 0 (the commit) and start the service. Until the
//! commit, a failure (or, after a crash, start-up reconciliation) undoes every step; a
//! service that does not start (`systemctl enable --now` failing, a container that does
//! not start) undoes the install too.

use crate::engine::deploy::{self, Source};
use crate::engine::exports::check_set;
use crate::engine::{blocking, load, uninstall, Ctx, Record};
use crate::error::SysError;
use crate::store;
use imagebus_schema::syscontainer::{InstallSpec, Supervisor};

/// Longest system container name (its mounts are named `sys.NAME.<slot>`).
pub const MAX_NAME: usize = 48;

/// Checks a system container name.
pub(crate) fn check_name(name: &str) -> Result<(), SysError> {
    imagebus_schema::common::validate_name(name).map_err(SysError::Invalid)?;
    if name.len() > MAX_NAME || name.contains('.') {
        return Err(SysError::Invalid(format!(
            "system container name {:?} must be at most {MAX_NAME} characters of A-Z a-z 0-9 _ -",
            imagebus_bus::echo(name)
        )));
    }
    Ok(())
}

pub(crate) async fn install(ctx: &Ctx, spec: InstallSpec) -> Result<Record, SysError> {
    let name = spec.name.clone();
    check_name(&name)?;
    check_set(&spec.values)?;
    if let Some(r) = &spec.rootfs {
        imagebus_schema::common::no_nul_path("rootfs", r).map_err(SysError::Invalid)?;
        if !r.is_absolute() {
            return Err(SysError::Invalid(format!(
                "rootfs {} must be absolute",
                r.display()
            )));
        }
    }
    imagebus_schema::common::no_nul("image", &spec.image).map_err(SysError::Invalid)?;
    if let Some(r) = spec.rootfs.clone() {
        // Before anything is imported or mounted: a bad directory changes nothing.
        let is_dir = blocking(move || Ok(std::fs::metadata(&r).is_ok_and(|m| m.is_dir()))).await?;
        if !is_dir {
            return Err(SysError::Invalid(format!(
                "rootfs {} is not a directory",
                spec.rootfs
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            )));
        }
    }
    if load(ctx, &name).await?.is_some() {
        return Err(SysError::Conflict(format!(
            "system container {name} is already installed"
        )));
    }
    let cfg = ctx.cfg.clone();
    let n = name.clone();
    let leftovers = blocking(move || {
        Ok(store::names(&cfg)?.contains(&n)
            || cfg.unit_file(&n).exists()
            || (cfg.systemd_booted() && cfg.service_file(&n).exists()))
    })
    .await?;
    if leftovers {
        return Err(SysError::Conflict(format!(
            "{name}: a unit or deployment of that name exists and is not an installed system container"
        )));
    }
    if deploy::container(ctx, &name).await?.is_some() {
        return Err(SysError::Conflict(format!(
            "a container named {name} exists already"
        )));
    }
    let supervisor = if ctx.cfg.systemd_booted() {
        Supervisor::Systemd
    } else if ctx.zinit.answers().await {
        Supervisor::Zinit
    } else {
        Supervisor::Imagebusd
    };
    let src = Source {
        image: spec.image.clone(),
        rootfs: spec.rootfs.clone(),
        set: spec.values.clone(),
        supervisor,
        uuid: None,
    };
    let mut info = deploy::checkout(ctx, &name, 0, &src).await?;
    let placed = async {
        deploy::apply_host(ctx, &name, &info).await?;
        ctx.container
            .create(deploy::container_spec(&name, &info))
            .await?;
        Ok::<(), SysError>(())
    }
    .await;
    if let Err(e) = placed {
        uninstall::undo_all(ctx, &name).await;
        return Err(e);
    }
    let cfg = ctx.cfg.clone();
    info.deployment.activated_at = Some(store::now());
    let (n, i) = (name.clone(), info.clone());
    blocking(move || {
        store::save_info(&cfg, &n, &i)?;
        store::switch(&cfg, &n, 0)
    })
    .await?;
    if let Err(e) = deploy::start_service(ctx, &name, &info).await {
        tracing::warn!(name, error = %e, "the service did not start; undoing the install");
        if let Err(e2) = uninstall::uncommit(ctx, &name, &info, true).await {
            tracing::warn!(name, error = %e2, "undoing the install");
        }
        return Err(e);
    }
    tracing::info!(name, supervisor = ?supervisor, "system container installed");
    load(ctx, &name)
        .await?
        .ok_or_else(|| SysError::Internal(format!("{name} vanished after its install")))
}
