//! Wires the modules of this process: the built-in system object, the actors (each under
//! a supervisor, behind a [`Slot`]) and one bus server per module; then serves until the
//! cancellation token fires and shuts down in order (servers, then actors), bounded.

use crate::actors::{self, ActorDirs};
use crate::slot::{ContainerActor, Slot};
use crate::system::{Registry, SystemHandle};
use anyhow::{Context, Result};
use imagebus_bus::{Client, Object, Server};
use imagebus_schema::attach::{AttachModule, AttachModuleServer, AttachModuleStub};
use imagebus_schema::container::{ContainerModule, ContainerModuleServer, ContainerModuleStub};
use imagebus_schema::image::{ImageModule, ImageModuleServer, ImageModuleStub};
use imagebus_schema::mount::{MountModule, MountModuleServer, MountModuleStub};
use imagebus_schema::syscontainer::{SysContainerModule, SysContainerModuleServer};
use imagebus_schema::system::{ModuleInfo, ModuleState, SystemModuleServer};
use imagebus_schema::zos::ZosContainerModuleServer;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a module waits for the owner module served elsewhere (the container module
/// for the mount module, the mount module for the attach module) to say whether it holds
/// a reference.
const HOLDS_TIMEOUT: Duration = Duration::from_secs(5);

/// What the daemon needs to serve its modules.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Broker URL in use.
    pub broker: String,
    /// Workers per module.
    pub workers: u32,
    /// Modules to serve; empty = all.
    pub only: Vec<String>,
    /// Interval of the system heartbeat event.
    pub heartbeat: Duration,
    /// Bounded wait for servers, then actors, to stop after cancellation.
    pub shutdown_timeout: Duration,
    /// Where the actors keep their files.
    pub dirs: ActorDirs,
    /// The ImageAPI gateway (`--imageapi`), if on.
    pub imageapi: Option<imagebus_gateway::GatewayConfig>,
}

/// Every module this daemon knows, in start order (peers first). `imagebus` (the system
/// object) is served by every process.
pub const MODULES: &[&str] = &[
    "imagebus",
    "attach",
    "image",
    "mount",
    "container",
    "syscontainer",
];

/// Longest wait for an actor's first start before its module is served anyway.
const FIRST_START_WAIT: Duration = Duration::from_secs(60);

/// Checks `--only` names against [`MODULES`].
pub fn check_only(only: &[String]) -> Result<()> {
    for m in only {
        if !MODULES.contains(&m.as_str()) {
            anyhow::bail!(
                "unknown module {m:?} for --only (known: {})",
                MODULES.join(", ")
            );
        }
    }
    Ok(())
}

struct Wiring<'a> {
    cfg: &'a DaemonConfig,
    registry: Arc<Registry>,
    servers: JoinSet<Result<()>>,
    supervisors: JoinSet<()>,
    server_stop: CancellationToken,
    actor_stop: CancellationToken,
    client: Option<Client>,
    /// This process's handles (slots) of the modules it serves, for the gateway.
    local: LocalHandles,
    gateway_stop: CancellationToken,
    gateway: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct LocalHandles {
    attach: Option<Arc<dyn AttachModule>>,
    mount: Option<Arc<dyn MountModule>>,
    container: Option<Arc<dyn ContainerModule>>,
}

/// Serves until `stop` is cancelled, then stops servers and actors (each bounded).
pub async fn run(cfg: DaemonConfig, stop: CancellationToken) -> Result<()> {
    let mut w = Wiring {
        cfg: &cfg,
        registry: Arc::new(Registry::default()),
        servers: JoinSet::new(),
        supervisors: JoinSet::new(),
        server_stop: CancellationToken::new(),
        actor_stop: CancellationToken::new(),
        client: None,
        local: LocalHandles::default(),
        gateway_stop: CancellationToken::new(),
        gateway: None,
    };
    let wired = tokio::select! {
        r = async { w.wire().await?; w.start_gateway().await } => r,
        () = stop.cancelled() => Ok(()),
    };
    if let Err(e) = wired {
        w.shutdown().await;
        return Err(e);
    }
    if stop.is_cancelled() {
        tracing::info!("stopped while starting");
        w.shutdown().await;
        return Ok(());
    }
    tracing::info!(
        broker = %imagebus_bus::broker::redact(&cfg.broker),
        modules = ?w.registry.list().iter().map(|m| m.module.clone()).collect::<Vec<_>>(),
        "imagebusd ready"
    );
    let outcome = tokio::select! {
        () = stop.cancelled() => Ok(()),
        Some(res) = w.servers.join_next() => {
            // A server ending on its own is fatal: zinit restarts the whole daemon.
            match res {
                Ok(Ok(())) => Err(anyhow::anyhow!("a bus server stopped unexpectedly")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::Error::new(e).context("a bus server task failed")),
            }
        }
    };
    tracing::info!("shutting down");
    w.shutdown().await;
    outcome
}

impl Wiring<'_> {
    fn wanted(&self, module: &str) -> bool {
        module == "imagebus"
            || self.cfg.only.is_empty()
            || self.cfg.only.iter().any(|m| m == module)
    }

    async fn client(&mut self) -> Result<Client> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = Client::connect(self.cfg.broker.clone())
            .await
            .context("connecting the peer stubs")?;
        self.client = Some(c.clone());
        Ok(c)
    }

    async fn wire(&mut self) -> Result<()> {
        let system = SystemHandle::new(self.registry.clone(), self.cfg.heartbeat);
        self.serve(
            "imagebus",
            vec![Arc::new(SystemModuleServer::new(Arc::new(system)))],
        )
        .await?;
        self.registry
            .set_state("imagebus", ModuleState::Running, false);

        let dirs = self.cfg.dirs.clone();
        let need_attach = self.wanted("attach") || self.wanted("mount");
        // The mount slot exists before the attach actor starts: the attach module asks the
        // mount module whether a `mount:N` holder is genuine (`Unavailable` while it
        // cannot, e.g. before the mount actor runs).
        let mount_slot = Arc::new(Slot::<dyn MountModule>::new("mount"));
        let attach: Option<Arc<dyn AttachModule>> = if self.wanted("attach") {
            let mounts: Arc<dyn MountModule> = if self.wanted("mount") {
                mount_slot.clone()
            } else {
                Arc::new(MountModuleStub::new(self.client().await?).with_timeout(HOLDS_TIMEOUT))
            };
            let slot = Arc::new(Slot::<dyn AttachModule>::new("attach"));
            self.supervise(
                "attach",
                actors::attach_starter(dirs.clone(), Some(mounts)),
                slot.clone(),
            )
            .await;
            self.serve(
                "attach",
                vec![Arc::new(AttachModuleServer::new(slot.clone()))],
            )
            .await?;
            self.local.attach = Some(slot.clone());
            Some(slot)
        } else if need_attach {
            Some(Arc::new(AttachModuleStub::new(self.client().await?)))
        } else {
            None
        };

        let image_handle: Option<Arc<dyn ImageModule>> = if self.wanted("image") {
            let slot = Arc::new(Slot::<dyn ImageModule>::new("image"));
            self.supervise("image", actors::image_starter(dirs.clone()), slot.clone())
                .await;
            self.serve(
                "image",
                vec![Arc::new(ImageModuleServer::new(slot.clone()))],
            )
            .await?;
            Some(slot)
        } else if self.wanted("mount") || self.wanted("syscontainer") {
            Some(Arc::new(ImageModuleStub::new(self.client().await?)))
        } else {
            None
        };
        let image = image_handle.clone();

        // The container slot exists before the mount actor starts: the mount module asks
        // the container module whether a `Container(n)` holder is genuine (and refuses,
        // `Unavailable`, while it cannot, e.g. before the container actor runs).
        let container_slot = Arc::new(Slot::<dyn ContainerActor>::new("container"));
        let need_mount =
            self.wanted("mount") || self.wanted("container") || self.wanted("syscontainer");
        let mount: Option<Arc<dyn MountModule>> = match attach {
            Some(attach) if self.wanted("mount") => {
                let containers: Arc<dyn ContainerModule> = if self.wanted("container") {
                    container_slot.clone()
                } else {
                    Arc::new(
                        ContainerModuleStub::new(self.client().await?).with_timeout(HOLDS_TIMEOUT),
                    )
                };
                let slot = mount_slot;
                self.supervise(
                    "mount",
                    actors::mount_starter(dirs.clone(), attach, image, containers),
                    slot.clone(),
                )
                .await;
                self.serve(
                    "mount",
                    vec![Arc::new(MountModuleServer::new(slot.clone()))],
                )
                .await?;
                self.local.mount = Some(slot.clone());
                Some(slot)
            }
            _ if need_mount => Some(Arc::new(MountModuleStub::new(self.client().await?))),
            _ => None,
        };

        if let Some(mount) = mount.clone().filter(|_| self.wanted("container")) {
            let slot = container_slot;
            self.supervise(
                "container",
                actors::container_starter(dirs, mount),
                slot.clone(),
            )
            .await;
            self.serve(
                "container",
                vec![
                    Arc::new(ContainerModuleServer::new(slot.clone())),
                    Arc::new(ZosContainerModuleServer::new(slot.clone())),
                ],
            )
            .await?;
            self.local.container = Some(slot);
        }

        if let (true, Some(image), Some(mount)) = (self.wanted("syscontainer"), image_handle, mount)
        {
            let container: Arc<dyn ContainerModule> = match self.local.container.clone() {
                Some(c) => c,
                None => Arc::new(ContainerModuleStub::new(self.client().await?)),
            };
            let peers = imagebus_syscontainer::Peers {
                image,
                mount,
                container,
            };
            let slot = Arc::new(Slot::<dyn SysContainerModule>::new("syscontainer"));
            self.supervise(
                "syscontainer",
                actors::syscontainer_starter(self.cfg.dirs.clone(), peers),
                slot.clone(),
            )
            .await;
            self.serve(
                "syscontainer",
                vec![Arc::new(SysContainerModuleServer::new(slot))],
            )
            .await?;
        }
        Ok(())
    }

    /// Starts the ImageAPI gateway (`--imageapi`) on this process's modules, reaching the
    /// ones served elsewhere (`--only`) through their bus stubs.
    async fn start_gateway(&mut self) -> Result<()> {
        let Some(cfg) = self.cfg.imageapi.clone() else {
            return Ok(());
        };
        let timeout = cfg.request_timeout;
        let attach: Arc<dyn AttachModule> = match self.local.attach.clone() {
            Some(h) => h,
            None => Arc::new(AttachModuleStub::new(self.client().await?).with_timeout(timeout)),
        };
        let mount: Arc<dyn MountModule> = match self.local.mount.clone() {
            Some(h) => h,
            None => Arc::new(MountModuleStub::new(self.client().await?).with_timeout(timeout)),
        };
        let container: Arc<dyn ContainerModule> = match self.local.container.clone() {
            Some(h) => h,
            None => Arc::new(ContainerModuleStub::new(self.client().await?).with_timeout(timeout)),
        };
        let modules = imagebus_gateway::Modules {
            attach,
            mount,
            container,
        };
        let (task, _) = imagebus_gateway::start(cfg, modules, self.gateway_stop.clone())
            .await
            .context("starting the ImageAPI gateway")?;
        self.gateway = Some(task);
        Ok(())
    }

    /// Starts `module`'s supervisor and waits (bounded) for the actor's first start.
    async fn supervise<T: ?Sized + Send + Sync + 'static>(
        &mut self,
        module: &'static str,
        start: actors::Starter<T>,
        slot: Arc<Slot<T>>,
    ) {
        self.registry.set(ModuleInfo {
            module: module.to_string(),
            objects: Vec::new(),
            workers: self.cfg.workers,
            state: ModuleState::Starting,
            restarts: 0,
        });
        let mut up = slot.watch();
        self.supervisors.spawn(actors::supervise(
            module,
            start,
            slot,
            self.registry.clone(),
            self.actor_stop.clone(),
            self.cfg.shutdown_timeout,
        ));
        let first = tokio::time::timeout(FIRST_START_WAIT, up.wait_for(Option::is_some)).await;
        if first.is_err() {
            tracing::warn!(
                module,
                "actor not up yet; serving its module anyway (calls fail with Unavailable)"
            );
        }
    }

    /// Builds one module's server with `objects`, records it, and runs it.
    async fn serve(&mut self, module: &str, objects: Vec<Arc<dyn Object>>) -> Result<()> {
        let cfg = self.cfg;
        let mut server = Server::builder(&cfg.broker, module)
            .workers(cfg.workers as usize)
            .shutdown_grace(cfg.shutdown_timeout)
            .build()
            .await
            .with_context(|| {
                format!(
                    "connecting module {module} to {}",
                    imagebus_bus::broker::redact(&cfg.broker)
                )
            })?;
        let ids = objects.iter().map(|o| o.id().to_string()).collect();
        for o in objects {
            server.register_arc(o)?;
        }
        let state = self
            .registry
            .list()
            .into_iter()
            .find(|m| m.module == module);
        self.registry.set(ModuleInfo {
            module: module.to_string(),
            objects: ids,
            workers: cfg.workers,
            state: state.as_ref().map_or(ModuleState::Starting, |m| m.state),
            restarts: state.map_or(0, |m| m.restarts),
        });
        let token = self.server_stop.clone();
        let name = module.to_string();
        self.servers.spawn(async move {
            server
                .run(token)
                .await
                .with_context(|| format!("serving module {name}"))
        });
        Ok(())
    }

    /// The gateway and the servers first (no new requests; in-flight ones finish), then
    /// the actors.
    async fn shutdown(&mut self) {
        self.gateway_stop.cancel();
        if let Some(task) = self.gateway.take() {
            let grace = self.cfg.shutdown_timeout;
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("the ImageAPI gateway did not stop in time");
            }
        }
        for m in self.registry.list() {
            self.registry
                .set_state(&m.module, ModuleState::Stopping, false);
        }
        let grace = self.cfg.shutdown_timeout;
        self.server_stop.cancel();
        drain("bus servers", &mut self.servers, grace).await;
        self.actor_stop.cancel();
        drain("actors", &mut self.supervisors, grace).await;
    }
}

async fn drain<T: 'static>(what: &str, set: &mut JoinSet<T>, grace: Duration) {
    let drained = tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!(timeout = ?grace, "{what} did not stop in time; aborting them");
        set.abort_all();
    }
}
