//! The container actor: one tokio task owning [`Containers`], fed by an mpsc channel, plus
//! watcher tasks that report exits back to it. [`ContainerHandle`] is the only way in and
//! implements [`ContainerModule`] (and zos's interface, see `zos.rs`).
//!
//! A plain tokio task rather than actix, like the other actors (see
//! `docs/adr/0001-actors.md`): commands await the mount module and blocking runtime calls.
//! Commands run one at a time; `Stop` does not hold the actor while it waits (the answer
//! comes when the watcher reports the exit), and `Logs`/`Exec` run outside it.

use crate::config::{ContainerConfig, ContainerSys};
use crate::engine::{blocking, Containers, StopWaiter};
use crate::error::ContainerError;
use crate::logs;
use crate::watch::Internal;
use futures::StreamExt;
use imagebus_bus::{EventStream, RemoteError};
use imagebus_schema::container::{
    ContainerEvent, ContainerFilter, ContainerInfo, ContainerModule, ContainerSpec, ContainerState,
    ExecResult, ExecSpec, LogChunk, LogsRequest,
};
use imagebus_schema::mount::MountModule;
use imagebus_schema::Selector;
use imagebus_sys::runtime::{ExecRequest, RuntimeError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

type Reply<T> = oneshot::Sender<Result<T, ContainerError>>;

enum Command {
    Create {
        spec: Box<ContainerSpec>,
        reply: Reply<ContainerInfo>,
    },
    Start {
        target: Selector,
        reply: Reply<ContainerInfo>,
    },
    Stop {
        target: Selector,
        timeout_ms: Option<u64>,
        reply: StopWaiter,
    },
    Delete {
        target: Selector,
        reply: Reply<()>,
    },
    Get {
        target: Selector,
        reply: Reply<ContainerInfo>,
    },
    List {
        filter: ContainerFilter,
        reply: Reply<Vec<ContainerInfo>>,
    },
    Target {
        target: Selector,
        reply: Reply<(u64, String, ContainerState)>,
    },
}

/// Default exec deadline.
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 30_000;
const MAX_EXEC_OUTPUT: usize = 1 << 20;

/// Cheap to clone; the only way into the container actor.
#[derive(Clone)]
pub struct ContainerHandle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<ContainerEvent>,
    sys: ContainerSys,
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
    /// The actor task; it ends when `stop` is cancelled or every handle is dropped.
    /// Containers keep running either way.
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
) -> Result<Spawned, ContainerError> {
    let (events, _) = broadcast::channel(1024);
    let (itx, irx) = mpsc::unbounded_channel();
    let mut containers = Containers::load(cfg, sys.clone(), mounts, events.clone(), itx).await?;
    containers.reconcile().await?;
    sys.monitors.prepare();
    let (tx, rx) = mpsc::channel(64);
    let task =
        tokio::spawn(run(containers, rx, irx, stop).instrument(tracing::info_span!("container")));
    Ok(Spawned {
        handle: ContainerHandle { tx, events, sys },
        task,
    })
}

async fn run(
    mut c: Containers,
    mut rx: mpsc::Receiver<Command>,
    mut irx: mpsc::UnboundedReceiver<Internal>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(msg) = irx.recv() => c.internal(msg).await,
            cmd = rx.recv() => match cmd {
                None => break,
                // A dropped reply means the caller gave up; the command still ran.
                Some(Command::Create { spec, reply }) => {
                    let span = tracing::info_span!("create", name = ?spec.name);
                    let r = c.create(*spec).instrument(span).await;
                    let _ = reply.send(r);
                }
                Some(Command::Start { target, reply }) => {
                    let r = c.start(&target).instrument(tracing::info_span!("start", %target)).await;
                    let _ = reply.send(r);
                }
                Some(Command::Stop { target, timeout_ms, reply }) => {
                    c.stop(&target, timeout_ms, reply).instrument(tracing::info_span!("stop", %target)).await;
                }
                Some(Command::Delete { target, reply }) => {
                    let r = c.delete(&target).instrument(tracing::info_span!("delete", %target)).await;
                    let _ = reply.send(r);
                }
                Some(Command::Get { target, reply }) => {
                    let _ = reply.send(c.get(&target));
                }
                Some(Command::List { filter, reply }) => {
                    let _ = reply.send(Ok(c.list(&filter)));
                }
                Some(Command::Target { target, reply }) => {
                    let _ = reply.send(c.exec_target(&target));
                }
            },
        }
    }
    tracing::info!("container actor stopped; containers keep running");
}

impl ContainerHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ContainerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ContainerError::Unavailable)?;
        rx.await.map_err(|_| ContainerError::Unavailable)?
    }

    /// Stops (if needed) and deletes; with `force` a live container is stopped first.
    pub(crate) async fn remove(&self, target: Selector, force: bool) -> Result<(), ContainerError> {
        if force {
            let info = self
                .ask(|reply| Command::Get {
                    target: target.clone(),
                    reply,
                })
                .await?;
            if matches!(
                info.state,
                ContainerState::Created | ContainerState::Running | ContainerState::Stopping
            ) {
                self.ask(|reply| Command::Stop {
                    target: Selector::Id(info.id),
                    timeout_ms: None,
                    reply,
                })
                .await?;
            }
            return self
                .ask(|reply| Command::Delete {
                    target: Selector::Id(info.id),
                    reply,
                })
                .await;
        }
        self.ask(|reply| Command::Delete { target, reply }).await
    }

    pub(crate) async fn read_logs(
        &self,
        target: Selector,
        req: LogsRequest,
    ) -> Result<LogChunk, ContainerError> {
        let info = self
            .ask(|reply| Command::Get {
                target: target.clone(),
                reply,
            })
            .await?;
        let path = info.log_file.clone();
        let deadline = Instant::now() + Duration::from_millis(req.wait_ms.unwrap_or(0));
        let mut running = is_running(info.state);
        loop {
            let (p, r) = (path.clone(), req.clone());
            let piece = blocking(move || logs::read(&p, &r))
                .await?
                .map_err(|e| ContainerError::state(format!("reading {path:?}"), e))?;
            let waiting = req.wait_ms.is_some() && piece.data.is_empty() && running;
            if !waiting || Instant::now() >= deadline {
                return Ok(LogChunk {
                    data: piece.data,
                    offset: piece.offset,
                    running,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let info = self
                .ask(|reply| Command::Get {
                    target: Selector::Id(info.id),
                    reply,
                })
                .await?;
            running = is_running(info.state);
        }
    }

    pub(crate) async fn run_exec(
        &self,
        target: Selector,
        spec: ExecSpec,
    ) -> Result<ExecResult, ContainerError> {
        let (id, rid, state) = self.ask(|reply| Command::Target { target, reply }).await?;
        if state != ContainerState::Running {
            return Err(ContainerError::WrongState {
                id,
                state,
                what: "exec needs a running container",
            });
        }
        let args = spec.command.argv().map_err(ContainerError::Invalid)?;
        if args.first().is_none_or(|a| a.is_empty()) {
            return Err(ContainerError::Invalid("the exec command is empty".into()));
        }
        if let Some(bad) = spec
            .env
            .iter()
            .find(|e| e.split_once('=').is_none_or(|(k, _)| k.is_empty()))
        {
            return Err(ContainerError::Invalid(format!(
                "environment entry {bad:?} is not KEY=VALUE"
            )));
        }
        let ms = spec.timeout_ms.unwrap_or(DEFAULT_EXEC_TIMEOUT_MS);
        let req = ExecRequest {
            args,
            env: spec.env,
            cwd: spec.working_dir,
            user: spec.user.map(|u| format!("{}:{}", u.uid, u.gid)),
            timeout: Duration::from_millis(ms),
            max_output: MAX_EXEC_OUTPUT,
        };
        let runtime = self.sys.runtime.clone();
        let out = blocking(move || runtime.exec(&rid, &req))
            .await?
            .map_err(|e| match e {
                RuntimeError::Timeout { .. } => ContainerError::ExecTimeout { id, ms },
                RuntimeError::NotFound(_) => ContainerError::WrongState {
                    id,
                    state: ContainerState::Exited,
                    what: "exec needs a running container",
                },
                other => ContainerError::runtime(format!("exec in container {id}"), other),
            })?;
        Ok(ExecResult {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

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
}

fn is_running(s: ContainerState) -> bool {
    matches!(
        s,
        ContainerState::Created | ContainerState::Running | ContainerState::Stopping
    )
}

#[imagebus_bus::async_trait]
impl ContainerModule for ContainerHandle {
    async fn create(&self, spec: ContainerSpec) -> Result<ContainerInfo, RemoteError> {
        Ok(self
            .ask(|reply| Command::Create {
                spec: Box::new(spec),
                reply,
            })
            .await?)
    }

    async fn start(&self, target: Selector) -> Result<ContainerInfo, RemoteError> {
        Ok(self.ask(|reply| Command::Start { target, reply }).await?)
    }

    async fn stop(
        &self,
        target: Selector,
        timeout_ms: Option<u64>,
    ) -> Result<ContainerInfo, RemoteError> {
        Ok(self
            .ask(|reply| Command::Stop {
                target,
                timeout_ms,
                reply,
            })
            .await?)
    }

    async fn delete(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        Ok(self.remove(target, force).await?)
    }

    async fn get(&self, target: Selector) -> Result<ContainerInfo, RemoteError> {
        Ok(self.ask(|reply| Command::Get { target, reply }).await?)
    }

    async fn list(&self, filter: ContainerFilter) -> Result<Vec<ContainerInfo>, RemoteError> {
        Ok(self.ask(|reply| Command::List { filter, reply }).await?)
    }

    async fn logs(&self, target: Selector, request: LogsRequest) -> Result<LogChunk, RemoteError> {
        Ok(self.read_logs(target, request).await?)
    }

    async fn exec(&self, target: Selector, spec: ExecSpec) -> Result<ExecResult, RemoteError> {
        Ok(self.run_exec(target, spec).await?)
    }

    fn events(&self) -> EventStream<ContainerEvent> {
        self.subscribe()
    }
}
