//! The system container engine: the state the actor owns ([`State`]: the records of the
//! installed system containers, rebuilt from the slot directories at start-up), the
//! context every command shares ([`Ctx`]: configuration and peers), and one file per verb
//! or concern: `install.rs`, `update.rs` (update and rollback), `uninstall.rs`,
//! `reconcile.rs`, `deploy.rs` (checking out a slot, the container, the service),
//! `exports.rs` (reading and rendering `/exports`), `template.rs`, `unit.rs`,
//! `tmpfiles.rs`, `host.rs` (the host files), `zinit.rs` and `systemd.rs` (the service
//! managers).
//!
//! Every mutating command holds the key of its name, so commands on one system container
//! run in arrival order and those on different ones side by side.

pub(crate) mod deploy;
pub(crate) mod exports;
pub(crate) mod host;
pub(crate) mod install;
pub(crate) mod reconcile;
pub(crate) mod systemd;
pub(crate) mod template;
pub(crate) mod tmpfiles;
pub(crate) mod uninstall;
pub(crate) mod unit;
pub(crate) mod update;
pub(crate) mod zinit;

use crate::config::SysConfig;
use crate::error::SysError;
use crate::store::Info;
use imagebus_schema::container::ContainerModule;
use imagebus_schema::image::ImageModule;
use imagebus_schema::mount::MountModule;
use imagebus_schema::syscontainer::SysContainerInfo;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// One installed system container.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The active slot.
    pub(crate) active: u8,
    /// The active deployment.
    pub(crate) current: Info,
    /// The other one, if kept.
    pub(crate) other: Option<Info>,
    /// The host paths it put in place.
    pub(crate) host_paths: Vec<PathBuf>,
}

impl Record {
    /// The reply form (without the live container fields).
    pub(crate) fn info(&self, cfg: &SysConfig, name: &str) -> SysContainerInfo {
        let mut deployments = vec![self.current.deployment.clone()];
        deployments.extend(self.other.iter().map(|o| o.deployment.clone()));
        SysContainerInfo {
            name: name.to_string(),
            active: self.active,
            deployments,
            supervisor: self.current.supervisor,
            unit: cfg.unit_path(name, self.current.supervisor),
            host_paths: self.host_paths.clone(),
            container: None,
            state: None,
        }
    }
}

/// The actor's state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) records: BTreeMap<String, Record>,
}

/// What every command shares.
pub(crate) struct Ctx {
    pub(crate) cfg: SysConfig,
    pub(crate) image: Arc<dyn ImageModule>,
    pub(crate) mount: Arc<dyn MountModule>,
    pub(crate) container: Arc<dyn ContainerModule>,
    pub(crate) zinit: zinit::Zinit,
    pub(crate) systemd: systemd::Systemd,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<R, F>(f: F) -> Result<R, SysError>
where
    R: Send + 'static,
    F: FnOnce() -> Result<R, SysError> + Send + 'static,
{
    imagebus_sys::blocking(f)
        .await
        .map_err(|e| SysError::Internal(format!("blocking task: {e}")))?
}

/// The record of `name` as the files say (`None`: not installed).
pub(crate) async fn load(ctx: &Ctx, name: &str) -> Result<Option<Record>, SysError> {
    let cfg = ctx.cfg.clone();
    let name = name.to_string();
    blocking(move || {
        let Some(active) = crate::store::active(&cfg, &name) else {
            return Ok(None);
        };
        let Some(current) = crate::store::load_info(&cfg, &name, active)? else {
            return Ok(None);
        };
        let other = crate::store::load_info(&cfg, &name, 1 - active)?;
        let host_paths = crate::store::journal(&cfg, &name)?
            .into_iter()
            .map(|e| e.path)
            .collect();
        Ok(Some(Record {
            active,
            current,
            other,
            host_paths,
        }))
    })
    .await
}
