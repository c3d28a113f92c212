//! The container actor: an actix actor owning [`Containers`] on its own thread, plus
//! watcher tasks that report exits back to it. [`ContainerHandle`] is the only way in and
//! implements [`ContainerModule`] (and zos's interface, see `zos.rs`); nothing outside
//! this file sees actix.
//!
//! actix because the design card and house style ask for it (style-anchors §7.5). Each
//! trait method is a message; async handlers return an [`AtomicResponse`] that moves the
//! engine into the future and back, so commands still run one at a time (they await the
//! mount module and blocking runtime calls). The actor runs in an actix `System` (a tokio
//! current-thread runtime) on the `container-actor` thread; watchers and the escalation
//! timer keep sending [`Internal`] messages on a channel that thread forwards to the actor.
//! `Stop` does not hold the actor while it waits (the answer comes when the watcher reports
//! the exit), and `Logs`/`Exec` run outside it, in the handle.

use crate::config::{ContainerConfig, ContainerSys};
use crate::engine::{blocking, Containers, StopWaiter};
use crate::error::ContainerError;
use crate::logs;
use crate::watch::Internal;
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, AtomicResponse, Handler, WrapFuture,
};
use futures::StreamExt;
use imagebus_bus::{EventStream, RemoteError};
use imagebus_schema::container::{
    ContainerEvent, ContainerFilter, ContainerInfo, ContainerModule, ContainerSpec, ContainerState,
    ExecResult, ExecSpec, LogChunk, LogsRequest,
};
use imagebus_schema::mount::MountModule;
use imagebus_schema::Selector;
use imagebus_sys::runtime::{ExecRequest, RuntimeError};
use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Default exec deadline.
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 30_000;
const MAX_EXEC_OUTPUT: usize = 1 << 20;
/// Like the channel of the tokio actor this replaced.
const MAILBOX: usize = 64;

#[derive(actix::Message)]
#[rtype(result = "Result<ContainerInfo, ContainerError>")]
struct Create {
    spec: Box<ContainerSpec>,
}

#[derive(actix::Message)]
#[rtype(result = "Result<ContainerInfo, ContainerError>")]
struct Start {
    target: Selector,
}

/// Begins stopping; `waiter` gets the answer once the init has exited.
#[derive(actix::Message)]
#[rtype(result = "Result<(), ContainerError>")]
struct Stop {
    target: Selector,
    timeout_ms: Option<u64>,
    waiter: StopWaiter,
}

#[derive(actix::Message)]
#[rtype(result = "Result<(), ContainerError>")]
struct Delete {
    target: Selector,
}

#[derive(actix::Message)]
#[rtype(result = "Result<ContainerInfo, ContainerError>")]
struct Get {
    target: Selector,
}

#[derive(actix::Message)]
#[rtype(result = "Result<Vec<ContainerInfo>, ContainerError>")]
struct List {
    filter: ContainerFilter,
}

/// Runtime id and state, for `Exec`.
#[derive(actix::Message)]
#[rtype(result = "Result<(u64, String, ContainerState), ContainerError>")]
struct Target {
    target: Selector,
}

/// A watcher's report, forwarded by the actor thread.
#[derive(actix::Message)]
#[rtype(result = "Result<(), ContainerError>")]
struct Watcher(Internal);

/// The stop token was cancelled: stop after the command in progress.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct Shutdown;

struct ContainerActor {
    engine: Option<Containers>,
    span: tracing::Span,
}

impl Actor for ContainerActor {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

type Served<R> = AtomicResponse<ContainerActor, Result<R, ContainerError>>;

impl ContainerActor {
    /// Runs `f` on the engine, moved into the future and back; no other message runs
    /// until it is done.
    fn serve<R, F, Fut>(&mut self, span: tracing::Span, f: F) -> Served<R>
    where
        F: FnOnce(Containers) -> Fut + 'static,
        Fut: Future<Output = (Containers, Result<R, ContainerError>)> + 'static,
        R: 'static,
    {
        let Some(engine) = self.engine.take() else {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(
                ContainerError::Unavailable,
            ))));
        };
        AtomicResponse::new(Box::pin(f(engine).instrument(span).into_actor(self).map(
            |(engine, r), act, _| {
                act.engine = Some(engine);
                r
            },
        )))
    }

    fn engine(&self) -> Result<&Containers, ContainerError> {
        self.engine.as_ref().ok_or(ContainerError::Unavailable)
    }
}

impl Handler<Create> for ContainerActor {
    type Result = Served<ContainerInfo>;
    fn handle(&mut self, msg: Create, _: &mut Self::Context) -> Self::Result {
        let span = tracing::info_span!(parent: &self.span, "create", name = ?msg.spec.name);
        self.serve(span, move |mut c| async move {
            let r = c.create(*msg.spec).await;
            (c, r)
        })
    }
}

impl Handler<Start> for ContainerActor {
    type Result = Served<ContainerInfo>;
    fn handle(&mut self, msg: Start, _: &mut Self::Context) -> Self::Result {
        let span = tracing::info_span!(parent: &self.span, "start", target = %msg.target);
        self.serve(span, move |mut c| async move {
            let r = c.start(&msg.target).await;
            (c, r)
        })
    }
}

impl Handler<Stop> for ContainerActor {
    type Result = Served<()>;
    fn handle(&mut self, msg: Stop, _: &mut Self::Context) -> Self::Result {
        let span = tracing::info_span!(parent: &self.span, "stop", target = %msg.target);
        self.serve(span, move |mut c| async move {
            c.stop(&msg.target, msg.timeout_ms, msg.waiter).await;
            (c, Ok(()))
        })
    }
}

impl Handler<Delete> for ContainerActor {
    type Result = Served<()>;
    fn handle(&mut self, msg: Delete, _: &mut Self::Context) -> Self::Result {
        let span = tracing::info_span!(parent: &self.span, "delete", target = %msg.target);
        self.serve(span, move |mut c| async move {
            let r = c.delete(&msg.target).await;
            (c, r)
        })
    }
}

impl Handler<Watcher> for ContainerActor {
    type Result = Served<()>;
    fn handle(&mut self, msg: Watcher, _: &mut Self::Context) -> Self::Result {
        self.serve(self.span.clone(), move |mut c| async move {
            c.internal(msg.0).await;
            (c, Ok(()))
        })
    }
}

impl Handler<Get> for ContainerActor {
    type Result = Result<ContainerInfo, ContainerError>;
    fn handle(&mut self, msg: Get, _: &mut Self::Context) -> Self::Result {
        self.engine()?.get(&msg.target)
    }
}

impl Handler<List> for ContainerActor {
    type Result = Result<Vec<ContainerInfo>, ContainerError>;
    fn handle(&mut self, msg: List, _: &mut Self::Context) -> Self::Result {
        Ok(self.engine()?.list(&msg.filter))
    }
}

impl Handler<Target> for ContainerActor {
    type Result = Result<(u64, String, ContainerState), ContainerError>;
    fn handle(&mut self, msg: Target, _: &mut Self::Context) -> Self::Result {
        self.engine()?.exec_target(&msg.target)
    }
}

impl Handler<Shutdown> for ContainerActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Cheap to clone; the only way into the container actor.
#[derive(Clone)]
pub struct ContainerHandle {
    addr: actix::Addr<ContainerActor>,
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
    /// Ends when the actor does: `Ok` once `stop` is cancelled (after the command in
    /// progress) or every handle is dropped, a panic if a command panicked. Containers
    /// keep running either way.
    pub task: JoinHandle<()>,
}

/// Loads the state, reconciles it with the runtime (re-attaching to containers that kept
/// running), then starts the actor on its own thread. Fails, starting nothing, on a bad
/// configuration or unreadable state.
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
    let (addr_tx, addr_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("container-actor".into())
        .spawn(move || {
            let ended = actix::System::new().block_on(run(containers, irx, stop, addr_tx));
            let _ = done_tx.send(ended);
        })
        .map_err(|e| ContainerError::state("starting the container actor thread", e))?;
    let addr = addr_rx.await.map_err(|_| ContainerError::Unavailable)?;
    let task = tokio::spawn(async move {
        match done_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => std::panic::resume_unwind(Box::new("the container actor thread died")),
        }
    });
    Ok(Spawned {
        handle: ContainerHandle { addr, events, sys },
        task,
    })
}

/// The actor thread's body: starts the actor, forwards watcher reports to it, and returns
/// once it has stopped, or the panic that killed it.
async fn run(
    containers: Containers,
    mut irx: mpsc::UnboundedReceiver<Internal>,
    stop: CancellationToken,
    addr_tx: oneshot::Sender<actix::Addr<ContainerActor>>,
) -> Result<(), Box<dyn Any + Send>> {
    let ctx = actix::Context::new();
    let addr = ctx.address();
    // Spawned by hand (not `start`) for the JoinHandle: the runtime catches a panicking
    // actor, and only the JoinHandle tells that apart from a normal stop.
    let mut actor = actix::spawn(ctx.into_future(ContainerActor {
        engine: Some(containers),
        span: tracing::info_span!("container"),
    }));
    // Weak, so the actor still stops when every handle is dropped.
    let weak = addr.downgrade();
    let _ = addr_tx.send(addr);
    let mut stopping = false;
    let ended = loop {
        tokio::select! {
            r = &mut actor => break r.or_else(|e| e.try_into_panic().map(Err).unwrap_or(Ok(()))),
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                if let Some(addr) = weak.upgrade() {
                    addr.do_send(Shutdown);
                }
            }
            Some(msg) = irx.recv() => {
                if let Some(addr) = weak.upgrade() {
                    addr.do_send(Watcher(msg));
                }
            }
        }
    };
    match &ended {
        Ok(()) => tracing::info!("container actor stopped; containers keep running"),
        Err(_) => tracing::error!("container actor panicked; containers keep running"),
    }
    ended
}

impl ContainerHandle {
    /// Sends `msg`; a gone actor is [`ContainerError::Unavailable`].
    async fn call<M, T>(&self, msg: M) -> Result<T, ContainerError>
    where
        M: actix::Message<Result = Result<T, ContainerError>> + Send + 'static,
        T: Send + 'static,
        ContainerActor: Handler<M>,
    {
        self.addr
            .send(msg)
            .await
            .map_err(|_| ContainerError::Unavailable)?
    }

    /// Stops `target` and waits until its init has exited.
    async fn stop_wait(
        &self,
        target: Selector,
        timeout_ms: Option<u64>,
    ) -> Result<ContainerInfo, ContainerError> {
        let (waiter, rx) = oneshot::channel();
        self.call(Stop {
            target,
            timeout_ms,
            waiter,
        })
        .await?;
        rx.await.map_err(|_| ContainerError::Unavailable)?
    }

    /// Stops (if needed) and deletes; with `force` a live container is stopped first.
    pub(crate) async fn remove(&self, target: Selector, force: bool) -> Result<(), ContainerError> {
        if force {
            let info = self.call(Get { target }).await?;
            if matches!(
                info.state,
                ContainerState::Created | ContainerState::Running | ContainerState::Stopping
            ) {
                self.stop_wait(Selector::Id(info.id), None).await?;
            }
            return self
                .call(Delete {
                    target: Selector::Id(info.id),
                })
                .await;
        }
        self.call(Delete { target }).await
    }

    pub(crate) async fn read_logs(
        &self,
        target: Selector,
        req: LogsRequest,
    ) -> Result<LogChunk, ContainerError> {
        let info = self.call(Get { target }).await?;
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
                .call(Get {
                    target: Selector::Id(info.id),
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
        let (id, rid, state) = self.call(Target { target }).await?;
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
            .call(Create {
                spec: Box::new(spec),
            })
            .await?)
    }

    async fn start(&self, target: Selector) -> Result<ContainerInfo, RemoteError> {
        Ok(self.call(Start { target }).await?)
    }

    async fn stop(
        &self,
        target: Selector,
        timeout_ms: Option<u64>,
    ) -> Result<ContainerInfo, RemoteError> {
        Ok(self.stop_wait(target, timeout_ms).await?)
    }

    async fn delete(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        Ok(self.remove(target, force).await?)
    }

    async fn get(&self, target: Selector) -> Result<ContainerInfo, RemoteError> {
        Ok(self.call(Get { target }).await?)
    }

    async fn list(&self, filter: ContainerFilter) -> Result<Vec<ContainerInfo>, RemoteError> {
        Ok(self.call(List { filter }).await?)
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
