//! The system container actor's handle: [`SysHandle`] implements [`SysContainerModule`]
//! with one small handler per method, and [`spawn`] reconciles, then starts it.
//!
//! `Get` and `List` are reads (the container's live state is asked of the container
//! module afterwards, outside the actor). `Install`, `Update`, `Rollback` and `Uninstall`
//! are jobs holding `Key::name("syscontainer", NAME)`; each ends with a step that stores
//! the new record (or drops it).

use crate::config::SysConfig;
use crate::engine::reconcile::{self, ReconcileReport};
use crate::engine::systemd::Systemd;
use crate::engine::{install, uninstall, update, zinit::Zinit, Ctx, Record, State};
use crate::error::SysError;
use imagebus_bus::RemoteError;
use imagebus_host::{Host, Key, Limits};
use imagebus_schema::container::ContainerModule;
use imagebus_schema::image::ImageModule;
use imagebus_schema::mount::MountModule;
use imagebus_schema::syscontainer::{
    InstallSpec, SysContainerInfo, SysContainerModule, UpdateSpec,
};
use imagebus_schema::Selector;
use std::future::Future;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const ACTOR: &str = "syscontainer";

/// The modules the actor calls, through their schema traits.
#[derive(Clone)]
pub struct Peers {
    /// The image store.
    pub image: Arc<dyn ImageModule>,
    /// The mount module.
    pub mount: Arc<dyn MountModule>,
    /// The container module.
    pub container: Arc<dyn ContainerModule>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

/// Cheap to clone; the only way into the actor.
#[derive(Debug, Clone)]
pub struct SysHandle {
    host: Host<State>,
    ctx: Arc<Ctx>,
}

/// What [`spawn`] returns.
#[derive(Debug)]
pub struct Spawned {
    /// The handle.
    pub handle: SysHandle,
    /// What start-up reconciliation did.
    pub report: ReconcileReport,
    /// Ends when the actor does.
    pub task: JoinHandle<()>,
}

/// Reconciles the deployments with the host and the peers, then starts the actor.
pub async fn spawn(
    cfg: SysConfig,
    peers: Peers,
    stop: CancellationToken,
    limits: Limits,
) -> Result<Spawned, SysError> {
    cfg.validate().map_err(SysError::Invalid)?;
    let ctx = Arc::new(Ctx {
        zinit: Zinit::new(cfg.zinit_socket.clone()),
        systemd: Systemd::new(&cfg, Arc::new(imagebus_sys::cmd::LinuxRunner)),
        cfg,
        image: peers.image,
        mount: peers.mount,
        container: peers.container,
    });
    let (state, report) = reconcile::run(&ctx).await?;
    let started = imagebus_host::start(ACTOR, state, limits, stop)
        .await
        .map_err(|e| SysError::Internal(format!("starting the syscontainer actor: {e}")))?;
    Ok(Spawned {
        handle: SysHandle {
            host: started.host,
            ctx,
        },
        report,
        task: started.task,
    })
}

impl SysHandle {
    async fn job<F, Fut>(&self, name: &str, f: F) -> Result<Option<Record>, SysError>
    where
        F: FnOnce(Arc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Record>, SysError>> + Send + 'static,
    {
        let ctx = self.ctx.clone();
        let n = name.to_string();
        self.host
            .mutate(vec![Key::name(ACTOR, name)], move |host| async move {
                let r = f(ctx).await;
                // The record follows the files, whatever happened.
                if let Ok(rec) = &r {
                    let rec = rec.clone();
                    host.apply(move |st: &mut State| match rec {
                        Some(rec) => st.records.insert(n, rec),
                        None => st.records.remove(&n),
                    })
                    .await?;
                }
                r
            })
            .await?
    }

    /// The reply form with the container's live fields.
    async fn reply(&self, name: &str, rec: &Record) -> SysContainerInfo {
        let mut info = rec.info(&self.ctx.cfg, name);
        if let Ok(c) = self
            .ctx
            .container
            .get(Selector::Name(name.to_string()))
            .await
        {
            info.container = Some(c.id);
            info.state = Some(c.state.as_str().to_string());
        }
        info
    }

    async fn done(&self, name: &str, rec: Option<Record>) -> Result<SysContainerInfo, SysError> {
        let rec = rec.ok_or_else(|| SysError::Internal(format!("{name}: no record")))?;
        Ok(self.reply(name, &rec).await)
    }
}

#[imagebus_bus::async_trait]
impl SysContainerModule for SysHandle {
    async fn install(&self, spec: InstallSpec) -> Result<SysContainerInfo, RemoteError> {
        let name = spec.name.clone();
        let span = tracing::info_span!("install", name = %imagebus_bus::echo(&name));
        let rec = self
            .job(&name, move |ctx| async move {
                install::install(&ctx, spec).await.map(Some)
            })
            .instrument(span)
            .await?;
        Ok(self.done(&name, rec).await?)
    }

    async fn update(&self, spec: UpdateSpec) -> Result<SysContainerInfo, RemoteError> {
        let name = spec.name.clone();
        let span = tracing::info_span!("update", name = %imagebus_bus::echo(&name));
        let rec = self
            .job(&name, move |ctx| async move {
                update::update(&ctx, spec).await.map(Some)
            })
            .instrument(span)
            .await?;
        Ok(self.done(&name, rec).await?)
    }

    async fn rollback(&self, name: String) -> Result<SysContainerInfo, RemoteError> {
        let span = tracing::info_span!("rollback", name = %imagebus_bus::echo(&name));
        let n = name.clone();
        let rec = self
            .job(&name, move |ctx| async move {
                update::rollback(&ctx, &n).await.map(Some)
            })
            .instrument(span)
            .await?;
        Ok(self.done(&name, rec).await?)
    }

    async fn uninstall(&self, name: String) -> Result<(), RemoteError> {
        let span = tracing::info_span!("uninstall", name = %imagebus_bus::echo(&name));
        let n = name.clone();
        self.job(&name, move |ctx| async move {
            uninstall::uninstall(&ctx, &n).await.map(|()| None)
        })
        .instrument(span)
        .await?;
        Ok(())
    }

    async fn get(&self, name: String) -> Result<SysContainerInfo, RemoteError> {
        let n = name.clone();
        let rec = self
            .host
            .read(move |st: &State| st.records.get(&n).cloned())
            .await
            .map_err(SysError::from)?
            .ok_or_else(|| {
                SysError::NotFound(format!("system container {:?}", imagebus_bus::echo(&name)))
            })?;
        Ok(self.reply(&name, &rec).await)
    }

    async fn list(&self) -> Result<Vec<SysContainerInfo>, RemoteError> {
        let all: Vec<(String, Record)> = self
            .host
            .read(|st: &State| {
                st.records
                    .iter()
                    .map(|(n, r)| (n.clone(), r.clone()))
                    .collect()
            })
            .await
            .map_err(SysError::from)?;
        let mut out = Vec::with_capacity(all.len());
        for (n, r) in &all {
            out.push(self.reply(n, r).await);
        }
        Ok(out)
    }
}
