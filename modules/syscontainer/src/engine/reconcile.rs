//! Start-up: make every system container whole again after a crash or a reboot. The
//! `NAME` link decides: without one, whatever is there is an install that never
//! committed (or an uninstall that did) and is removed; with one, the active slot is
//! kept, its mount is made again when it is gone (a reboot), its host side re-applied,
//! its container re-created when missing or standing on another slot, and started. The
//! other slot is kept only when it is complete and was once active (a previous
//! deployment); otherwise it is a half-done update and goes.

use crate::config::SysConfig;
use crate::engine::{blocking, deploy, load, uninstall, Ctx, Record, State};
use crate::error::SysError;
use crate::store::{self, Info};
use imagebus_bus::ErrorCode;
use imagebus_schema::container::ContainerState;
use imagebus_schema::mount::{BindMount, MountSource, MountSpec, StoredMount};
use imagebus_schema::syscontainer::Supervisor;
use imagebus_schema::Selector;

/// What reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// System containers kept.
    pub kept: Vec<String>,
    /// Uncommitted ones removed.
    pub removed: Vec<String>,
    /// Half-done updates dropped (`NAME.<slot>`).
    pub dropped_slots: Vec<String>,
}

pub(crate) async fn run(ctx: &Ctx) -> Result<(State, ReconcileReport), SysError> {
    let cfg = ctx.cfg.clone();
    let names = blocking(move || {
        imagebus_sys::state::ensure_private_dir(&cfg.state_dir)?;
        store::names(&cfg)
    })
    .await?;
    let mut state = State::default();
    let mut report = ReconcileReport::default();
    for name in names {
        match load(ctx, &name).await? {
            None => {
                tracing::info!(name, "removing an uncommitted system container");
                uninstall::undo_all(ctx, &name).await;
                report.removed.push(name);
            }
            Some(rec) => match repair(ctx, &name, rec, &mut report).await {
                Ok(rec) => {
                    report.kept.push(name.clone());
                    state.records.insert(name, rec);
                }
                Err(e) => {
                    tracing::error!(name, error = %e, "system container not repaired");
                    if let Some(rec) = load(ctx, &name).await? {
                        state.records.insert(name, rec);
                    }
                }
            },
        }
    }
    Ok((state, report))
}

async fn repair(
    ctx: &Ctx,
    name: &str,
    rec: Record,
    report: &mut ReconcileReport,
) -> Result<Record, SysError> {
    let mut current = rec.current.clone();
    ensure_mount(ctx, name, &mut current).await?;
    deploy::apply_host(ctx, name, &current).await?;
    let mount_id = current.deployment.mount;
    let c = deploy::container(ctx, name).await?;
    match c.map(|c| (c.mount == mount_id, c.state)) {
        Some((true, ContainerState::Running)) => {}
        // A stop cut short (an update or rollback was switching): it ends, then runs again.
        Some((
            true,
            state @ (ContainerState::Stopping | ContainerState::Exited | ContainerState::Dead),
        )) => {
            if state == ContainerState::Stopping {
                deploy::stop_service(ctx, name, &current).await?;
            }
            if current.supervisor == Supervisor::Imagebusd {
                deploy::start_service(ctx, name, &current).await?;
            }
        }
        // Missing, on another slot, or `created` (a start cut short: the runtime may run
        // it already without its record saying so): made again from the record.
        _ => {
            deploy::remove_container(ctx, name).await?;
            ctx.container
                .create(deploy::container_spec(name, &current))
                .await?;
            deploy::start_service(ctx, name, &current).await?;
        }
    }
    if current.deployment.activated_at.is_none() {
        current.deployment.activated_at = Some(store::now());
    }
    let cfg = ctx.cfg.clone();
    let (n, i) = (name.to_string(), current.clone());
    blocking(move || store::save_info(&cfg, &n, &i)).await?;
    // The other slot.
    let other = 1 - rec.active;
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    let present = blocking(move || Ok(cfg.slot_dir(&n, other).exists())).await?;
    let keep = rec
        .other
        .as_ref()
        .is_some_and(|o| o.deployment.activated_at.is_some());
    if present && !keep {
        deploy::remove_slot(ctx, name, other).await?;
        report.dropped_slots.push(format!("{name}.{other}"));
    } else if keep {
        if let Some(mut o) = rec.other.clone() {
            if let Err(e) = ensure_mount(ctx, name, &mut o).await {
                tracing::warn!(name, error = %e, "the previous deployment's mount is gone; dropping it");
                deploy::remove_slot(ctx, name, other).await?;
            }
        }
    }
    load(ctx, name)
        .await?
        .ok_or_else(|| SysError::Internal(format!("{name} vanished")))
}

/// Mounts the slot's checkout again when its mount is gone (after a reboot), and points
/// its `rootfs` link and record at the new mount.
async fn ensure_mount(ctx: &Ctx, name: &str, info: &mut Info) -> Result<(), SysError> {
    let slot = info.deployment.slot;
    let mname = SysConfig::mount_name(name, slot);
    match ctx.mount.get(Selector::Name(mname.clone())).await {
        Ok(m) if m.id == info.deployment.mount => return Ok(()),
        Ok(m) => {
            info.deployment.mount = m.id;
        }
        Err(e) if e.code == ErrorCode::NotFound => {
            let source = match &info.deployment.rootfs {
                Some(dir) => MountSource::Bind(BindMount {
                    path: dir.clone(),
                    base: None,
                    read_only: true,
                    recursive: false,
                }),
                None => MountSource::Stored(StoredMount {
                    image: info.deployment.digest.clone(),
                    options: Vec::new(),
                }),
            };
            let spec = MountSpec {
                name: Some(mname),
                source,
            };
            let m = ctx.mount.mount(spec, None).await?;
            info.deployment.mount = m.id;
        }
        Err(e) => return Err(SysError::Peer(e)),
    }
    let m = ctx.mount.get(Selector::Id(info.deployment.mount)).await?;
    let cfg = ctx.cfg.clone();
    let (n, i) = (name.to_string(), info.clone());
    blocking(move || {
        let link = deploy::rootfs(&cfg, &n, slot);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&m.mountpoint, &link)
            .map_err(|e| SysError::io("symlink", &link, e))?;
        store::save_info(&cfg, &n, &i)
    })
    .await
}
