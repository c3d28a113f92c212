//! The container actor's handle and its start: [`ContainerHandle`] implements
//! [`ContainerModule`] (and zos's interface, see `zos.rs`) with one small handler per
//! method: a read of the state, or a command from `engine/`. The state is owned by the
//! actor host (`imagebus-host`).

use crate::config::{ContainerConfig, ContainerSys};
use crate::engine::reconcile::{reconcile, ReconcileReport};
use crate::engine::{self, blocking, Containers, Engine};
use crate::error::ContainerError;
use crate::store;
use futures::StreamExt;
use imagebus_bus::{EventStream, RemoteError};
use imagebus_host::Limits;
use imagebus_schema::container::{
    ContainerEvent, ContainerFilter, ContainerInfo, ContainerModule, ContainerSpec, ContainerStats,
    ExecResult, ExecSpec, LogChunk, LogsRequest, SessionInfo, SessionRequest,
};
use imagebus_schema::mount::MountModule;
use imagebus_schema::Selector;
use imagebus_sys::oci;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Events buffered per subscriber.
const EVENTS: usize = 1024;

/// Cheap to clone; the only way into the container actor.
#[derive(Clone)]
pub struct ContainerHandle {
    engine: Arc<Engine>,
    events: broadcast::Sender<ContainerEvent>,
}

impl std::fmt::Debug for ContainerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerHandle").finish_non_exhaustive()
    }
}

/// What [`spawn`] returns.
#[derive(Debug)]
pub struct Spawned {
    /// The handle (implements [`ContainerModule`] and `ZosContainerModule`).
    pub handle: ContainerHandle,
    /// What start-up reconciliation did.
    pub report: ReconcileReport,
    /// Ends when the actor does: `Ok` once `stop` is cancelled (after the commands in
    /// flight, bounded by `limits.shutdown_timeout`) or every handle is dropped, a panic
    /// if a command panicked. Containers keep running either way.
    pub task: JoinHandle<()>,
}

/// Loads the state, reconciles it with the runtime (re-attaching to containers that kept
/// running), then starts the actor. Fails, starting nothing, on a bad configuration or
/// unreadable state.
pub async fn spawn(
    cfg: ContainerConfig,
    sys: ContainerSys,
    mounts: Arc<dyn MountModule>,
    stop: CancellationToken,
    limits: Limits,
) -> Result<Spawned, ContainerError> {
    cfg.validate()?;
    let (events, _) = broadcast::channel(EVENTS);
    let c = cfg.clone();
    let loaded = blocking(move || store::load(&c)).await??;
    let bounding = blocking(oci::bounding_set)
        .await?
        .map_err(|e| ContainerError::runtime("reading CapBnd", e))?;
    let journal = store::start_writer(cfg.clone(), events.clone());
    let mut state = Containers::new(loaded, journal);
    let (report, follow) = reconcile(&cfg, &sys, mounts.as_ref(), &mut state).await?;
    tracing::info!(%report, "container state reconciled");
    let monitors = sys.monitors.clone();
    blocking(move || monitors.prepare()).await?;
    let started = imagebus_host::start("container", state, limits, stop.clone())
        .await
        .map_err(|e| ContainerError::state("starting the container actor", e))?;
    let (cgroups, parent) = (sys.cgroups.clone(), cfg.cgroup_parent());
    let engine = Engine::new(cfg, sys, mounts, bounding, started.host, stop.child_token());
    follow.start(&engine);
    // Once the actor has stopped (no create in flight), the instance's cgroup goes if no
    // container is left in it; running containers keep it (the kernel refuses the rmdir).
    let actor = started.task;
    let task = tokio::spawn(async move {
        let ended = actor.await;
        let _ = blocking(move || cgroups.remove_if_empty(&parent)).await;
        if let Err(e) = ended {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    });
    Ok(Spawned {
        handle: ContainerHandle { engine, events },
        report,
        task,
    })
}

impl ContainerHandle {
    /// Every state change from now on.
    pub fn subscribe(&self) -> EventStream<ContainerEvent> {
        let rx = self.events.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => return Some((ev, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "container event subscriber lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    /// The engine, for `zos.rs`.
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

#[imagebus_bus::async_trait]
impl ContainerModule for ContainerHandle {
    async fn create(&self, spec: ContainerSpec) -> Result<ContainerInfo, RemoteError> {
        let span = tracing::info_span!("create", name = ?spec.name);
        Ok(engine::create::create(&self.engine, spec)
            .instrument(span)
            .await?)
    }

    async fn start(&self, target: Selector) -> Result<ContainerInfo, RemoteError> {
        let span = tracing::info_span!("start", %target);
        Ok(engine::start::start(&self.engine, target)
            .instrument(span)
            .await?)
    }

    async fn stop(
        &self,
        target: Selector,
        timeout_ms: Option<u64>,
    ) -> Result<ContainerInfo, RemoteError> {
        let span = tracing::info_span!("stop", %target);
        Ok(engine::stop::stop(&self.engine, target, timeout_ms)
            .instrument(span)
            .await?)
    }

    async fn delete(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        let span = tracing::info_span!("delete", %target, force);
        Ok(engine::remove::delete(&self.engine, target, force)
            .instrument(span)
            .await?)
    }

    async fn get(&self, target: Selector) -> Result<ContainerInfo, RemoteError> {
        Ok(self
            .engine
            .host
            .read(move |s| s.get(&target))
            .await
            .map_err(ContainerError::from)??)
    }

    async fn holds(&self, id: u64, mount: u64) -> Result<bool, RemoteError> {
        Ok(self
            .engine
            .host
            .read(move |s| s.holds(id, mount))
            .await
            .map_err(ContainerError::from)?)
    }

    async fn list(&self, filter: ContainerFilter) -> Result<Vec<ContainerInfo>, RemoteError> {
        Ok(self
            .engine
            .host
            .read(move |s| s.list(&filter))
            .await
            .map_err(ContainerError::from)?)
    }

    async fn logs(&self, target: Selector, request: LogsRequest) -> Result<LogChunk, RemoteError> {
        Ok(engine::logs::logs(&self.engine, target, request).await?)
    }

    async fn exec(&self, target: Selector, spec: ExecSpec) -> Result<ExecResult, RemoteError> {
        let span = tracing::info_span!("exec", %target);
        Ok(engine::exec::exec(&self.engine, target, spec)
            .instrument(span)
            .await?)
    }

    async fn stats(&self, target: Selector) -> Result<ContainerStats, RemoteError> {
        Ok(engine::stats::stats(&self.engine, target).await?)
    }

    async fn session(
        &self,
        target: Selector,
        request: SessionRequest,
    ) -> Result<SessionInfo, RemoteError> {
        let span = tracing::info_span!("session", %target);
        Ok(engine::session::session(&self.engine, target, request)
            .instrument(span)
            .await?)
    }

    fn events(&self) -> EventStream<ContainerEvent> {
        self.subscribe()
    }
}
