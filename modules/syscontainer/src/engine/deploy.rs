//! The pieces every verb is made of: resolving the image, checking a slot out (a mount of
//! the mount module, then the rendered files), the container on a slot, and starting and
//! stopping the service (through zinit or the container module).

use crate::config::SysConfig;
use crate::engine::exports::{self, Vars};
use crate::engine::{blocking, Ctx};
use crate::error::SysError;
use crate::store::{self, Info};
use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_schema::container::{
    CommandLine, ContainerInfo, ContainerSpec, RestartPolicy, RestartSpec,
};
use imagebus_schema::image::{ImageInfo, ImportSpec};
use imagebus_schema::mount::{BindMount, MountRef, MountSource, MountSpec, StoredMount};
use imagebus_schema::syscontainer::{Deployment, Supervisor};
use imagebus_schema::Selector;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Whether `image` is an import source rather than an image of the store.
pub(crate) fn is_source(image: &str) -> bool {
    image.starts_with('/')
        || ["oci:", "oci-archive:", "docker-archive:"]
            .iter()
            .any(|p| image.starts_with(p))
}

/// The image `image` names, imported first when it is a source.
pub(crate) async fn resolve_image(ctx: &Ctx, image: &str) -> Result<ImageInfo, SysError> {
    if is_source(image) {
        let spec = ImportSpec {
            source: image.to_string(),
            name: None,
        };
        return Ok(ctx.image.import(spec).await?);
    }
    Ok(ctx.image.get(image.to_string()).await?)
}

fn not_found_ok(r: Result<(), RemoteError>) -> Result<(), SysError> {
    match r {
        Err(e) if e.code != ErrorCode::NotFound => Err(SysError::Peer(e)),
        _ => Ok(()),
    }
}

/// What a checkout is made from.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) image: String,
    pub(crate) rootfs: Option<PathBuf>,
    pub(crate) set: BTreeMap<String, String>,
    pub(crate) supervisor: Supervisor,
    pub(crate) uuid: Option<String>,
}

/// Checks `src` out into `slot` of `name`: the mount `sys.NAME.<slot>` (the image read-only,
/// or a read-only bind of `rootfs`), then the rendered files, `info.json` last. On failure
/// the slot is removed again.
pub(crate) async fn checkout(
    ctx: &Ctx,
    name: &str,
    slot: u8,
    src: &Source,
) -> Result<Info, SysError> {
    let image = resolve_image(ctx, &src.image).await?;
    remove_slot(ctx, name, slot).await?;
    let source = match &src.rootfs {
        Some(dir) => MountSource::Bind(BindMount {
            path: dir.clone(),
            base: None,
            read_only: true,
            recursive: false,
        }),
        None => MountSource::Stored(StoredMount {
            image: image.digest.clone(),
            options: Vec::new(),
        }),
    };
    let spec = MountSpec {
        name: Some(SysConfig::mount_name(name, slot)),
        source,
    };
    let m = ctx.mount.mount(spec, None).await?;
    let cfg = ctx.cfg.clone();
    let (n, s) = (name.to_string(), src.clone());
    let made = blocking(move || {
        let dir = cfg.slot_dir(&n, slot);
        let ex = exports::read(&m.mountpoint)?;
        let vars = exports::variables(
            &cfg,
            &Vars {
                name: &n,
                destdir: &dir,
                set: &s.set,
                uuid: s.uuid.clone(),
            },
            &ex,
        );
        let r = exports::render_all(&ex, &vars, &image.config)?;
        let service = match (&r.systemd, s.supervisor) {
            (Ok(sd), Supervisor::Systemd) => Some(sd.clone()),
            (Err(e), Supervisor::Systemd) => {
                return Err(SysError::Invalid(format!(
                    "the host runs systemd and the service template gives no systemd unit: {e}"
                )))
            }
            _ => None,
        };
        imagebus_sys::state::create_dir_all(&dir)?;
        std::os::unix::fs::symlink(&m.mountpoint, dir.join("rootfs"))
            .map_err(|e| SysError::io("symlink", &dir, e))?;
        let json = serde_json::to_vec_pretty(&r.oci.0)
            .map_err(|e| SysError::Internal(format!("config.json: {e}")))?;
        let write = |file: String, bytes: &[u8]| {
            imagebus_sys::state::write_atomic(&dir.join(file), bytes, 0o644)
        };
        write("config.json".into(), &json)?;
        write(format!("{n}.yaml"), r.unit.as_bytes())?;
        if let Ok(sd) = &r.systemd {
            write(format!("{n}.service"), sd.as_bytes())?;
        }
        write(
            format!("tmpfiles-{n}.conf"),
            r.tmpfiles.join("\n").as_bytes(),
        )?;
        let info = Info {
            deployment: Deployment {
                slot,
                path: dir.clone(),
                image: s.image.clone(),
                digest: if s.rootfs.is_some() {
                    String::new()
                } else {
                    image.digest.clone()
                },
                rootfs: s.rootfs.clone(),
                mount: m.id,
                values: vars,
                set: s.set.clone(),
                created_at: store::now(),
                activated_at: None,
            },
            supervisor: s.supervisor,
            oci: r.oci,
            unit: r.unit,
            service,
            tmpfiles: r.tmpfiles,
            hostfs: ex.hostfs,
        };
        store::save_info(&cfg, &n, &info)?;
        Ok(info)
    })
    .await;
    if made.is_err() {
        if let Err(e) = remove_slot(ctx, name, slot).await {
            tracing::warn!(name, slot, error = %e, "slot not removed after a failed checkout");
        }
    }
    made
}

/// Removes slot `slot` of `name`: its mount (if any) and its directory.
pub(crate) async fn remove_slot(ctx: &Ctx, name: &str, slot: u8) -> Result<(), SysError> {
    let sel = Selector::Name(SysConfig::mount_name(name, slot));
    not_found_ok(ctx.mount.unmount(sel, false).await)?;
    let cfg = ctx.cfg.clone();
    let n = name.to_string();
    blocking(move || store::remove_slot(&cfg, &n, slot)).await
}

/// The checkout directory of a slot (the mount's mountpoint).
pub(crate) fn rootfs(cfg: &SysConfig, name: &str, slot: u8) -> PathBuf {
    cfg.slot_dir(name, slot).join("rootfs")
}

/// Applies the host side of `info` (on the blocking pool).
pub(crate) async fn apply_host(ctx: &Ctx, name: &str, info: &Info) -> Result<(), SysError> {
    let cfg = ctx.cfg.clone();
    let (n, i) = (name.to_string(), info.clone());
    blocking(move || {
        let root = rootfs(&cfg, &n, i.deployment.slot);
        crate::engine::host::apply(&cfg, &n, &i, &root)
    })
    .await
}

/// The container of a deployment: named like the system container, on the slot's
/// mount, running the rendered configuration; restarted by policy `always` when
/// imagebusd supervises it.
pub(crate) fn container_spec(name: &str, info: &Info) -> ContainerSpec {
    let args = info.oci.args().unwrap_or_default();
    let restart = match info.supervisor {
        Supervisor::Imagebusd => RestartSpec {
            policy: RestartPolicy::Always,
            max_retries: None,
        },
        Supervisor::Zinit | Supervisor::Systemd => RestartSpec::default(),
    };
    ContainerSpec {
        name: Some(name.to_string()),
        oci: Some(info.oci.clone()),
        restart,
        ..ContainerSpec::new(
            MountRef::Existing(Selector::Name(SysConfig::mount_name(
                name,
                info.deployment.slot,
            ))),
            CommandLine::Argv(args),
        )
    }
}

/// The container named `name`, if any.
pub(crate) async fn container(ctx: &Ctx, name: &str) -> Result<Option<ContainerInfo>, SysError> {
    match ctx.container.get(Selector::Name(name.to_string())).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(SysError::Peer(e)),
    }
}

/// Removes the container named `name` (killing it), if any.
pub(crate) async fn remove_container(ctx: &Ctx, name: &str) -> Result<(), SysError> {
    not_found_ok(
        ctx.container
            .delete(Selector::Name(name.to_string()), true)
            .await,
    )
}

/// Starts the service: systemd reloads its units and enables and starts `NAME.service`
/// (its `ExecStart`, `imagebus start --attach NAME`, starts the container), zinit
/// monitors the unit (its `exec` does the same), or the container module starts the
/// container.
pub(crate) async fn start_service(ctx: &Ctx, name: &str, info: &Info) -> Result<(), SysError> {
    match info.supervisor {
        Supervisor::Systemd => {
            ctx.systemd.daemon_reload().await?;
            return ctx.systemd.enable_now(name).await;
        }
        Supervisor::Zinit => {
            // The unit may have changed: forget (a no-op when unknown), then monitor.
            if let Err(e) = ctx.zinit.forget(name).await {
                tracing::debug!(name, error = %e, "zinit forget before monitor");
            }
            match ctx.zinit.monitor(name).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(name, error = %e, "zinit did not take the unit; starting the container directly");
                }
            }
        }
        Supervisor::Imagebusd => {}
    }
    ctx.container
        .start(Selector::Name(name.to_string()))
        .await?;
    Ok(())
}

/// Starts the service again after an update or rollback switched deployments: systemd
/// reloads the changed unit and restarts it; otherwise as [`start_service`].
pub(crate) async fn restart_service(ctx: &Ctx, name: &str, info: &Info) -> Result<(), SysError> {
    if info.supervisor == Supervisor::Systemd {
        ctx.systemd.daemon_reload().await?;
        return ctx.systemd.restart(name).await;
    }
    start_service(ctx, name, info).await
}

/// Stops the service and waits (bounded) for its container to be stopped.
pub(crate) async fn stop_service(ctx: &Ctx, name: &str, info: &Info) -> Result<(), SysError> {
    match info.supervisor {
        Supervisor::Systemd => {
            if let Err(e) = ctx.systemd.stop(name).await {
                tracing::warn!(name, error = %e, "systemctl stop failed; stopping the container directly");
            }
        }
        Supervisor::Zinit => {
            if let Err(e) = ctx.zinit.stop(name).await {
                tracing::warn!(name, error = %e, "zinit stop failed; stopping the container directly");
            }
        }
        Supervisor::Imagebusd => {}
    }
    let sel = Selector::Name(name.to_string());
    match ctx.container.stop(sel, None).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == ErrorCode::NotFound => Ok(()),
        Err(e) if e.code == ErrorCode::Conflict => {
            // Still stopping after its timeout: the delete that follows kills it.
            tracing::warn!(name, error = %e.message, "container did not stop in time");
            Ok(())
        }
        Err(e) => Err(SysError::Peer(e)),
    }
}
