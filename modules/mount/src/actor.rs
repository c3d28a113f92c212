//! The mount actor: an actix actor owning the state ([`Mounts`]) on a thread of its own
//! (`mount-actor`, running an actix `System`, i.e. a tokio current-thread runtime);
//! [`MountHandle`] is the only way in and implements [`MountModule`], so the bus server,
//! the daemon and other modules never see actix (nothing else in this crate uses it).
//!
//! One message type per trait method. Commands that await (the attach module, over Redis
//! when split, and blocking syscalls on `spawn_blocking`) answer with an
//! [`AtomicResponse`]: the engine moves into the command's future and back, and no other
//! message is handled until that future completes, so commands are served one at a time
//! and a nested mount is never interleaved with an unmount of the same objects.
//!
//! The actor stops when `stop` is cancelled (after the command in progress), when every
//! handle is dropped, or when a command panics (the runtime drops the actor's task); the
//! [`Spawned::task`] then completes — as a panic in the last case, so the supervisor can
//! tell — and calls fail with [`MountError::Stopped`] (`Unavailable`).
//!
//! Calls to the attach module run on the runtime that called [`spawn`], not on the actor
//! thread's: a bus stub's Redis client keeps the connections it opens in a pool shared
//! with its other users, and a connection opened on the actor's runtime would die with
//! that runtime (when the supervisor restarts the actor), failing a later call.

use crate::config::{MountConfig, MountSys};
use crate::engine::Mounts;
use crate::error::MountError;
use crate::reconcile::ReconcileReport;
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AtomicResponse, Context, Handler, Message,
    WrapFuture,
};
use imagebus_bus::RemoteError;
use imagebus_schema::attach::{AttachInfo, AttachModule, AttachSpec};
use imagebus_schema::mount::{MountInfo, MountModule, MountSpec};
use imagebus_schema::{Holder, Selector};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

/// Messages queued before the sender waits (like the former channel's bound).
const MAILBOX: usize = 64;

#[derive(Message)]
#[rtype(result = "Result<MountInfo, MountError>")]
struct Mount {
    spec: MountSpec,
    holder: Holder,
}

#[derive(Message)]
#[rtype(result = "Result<(), MountError>")]
struct Unmount {
    target: Selector,
    force: bool,
}

#[derive(Message)]
#[rtype(result = "Result<MountInfo, MountError>")]
struct Get {
    target: Selector,
}

#[derive(Message)]
#[rtype(result = "Result<Vec<MountInfo>, MountError>")]
struct List;

#[derive(Message)]
#[rtype(result = "Result<MountInfo, MountError>")]
struct Acquire {
    target: Selector,
    holder: Holder,
}

#[derive(Message)]
#[rtype(result = "Result<(), MountError>")]
struct Release {
    id: u64,
    holder: Holder,
}

/// Sent by the actor thread when `stop` is cancelled; handled after the current command.
#[derive(Message)]
#[rtype(result = "()")]
struct Shutdown;

/// How the actor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Stopped,
    Panicked,
}

struct MountActor {
    /// `None` only while a command's future owns it.
    engine: Option<Mounts>,
    /// Tells the actor thread how the actor ended (from `stopped`).
    alive: Option<oneshot::Sender<Exit>>,
    span: tracing::Span,
}

impl Actor for MountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // When a handler panics, the runtime drops the actor's task while unwinding, and
        // actix still calls `stopped` from that drop.
        let exit = if std::thread::panicking() {
            Exit::Panicked
        } else {
            Exit::Stopped
        };
        if let Some(alive) = self.alive.take() {
            let _ = alive.send(exit);
        }
    }
}

impl MountActor {
    /// Runs `f` with the engine moved into it, blocking every other message until it
    /// completes, then puts the engine back.
    fn serve<R, F, Fut>(&mut self, f: F) -> AtomicResponse<Self, Result<R, MountError>>
    where
        F: FnOnce(Mounts) -> Fut + 'static,
        Fut: Future<Output = (Mounts, Result<R, MountError>)> + 'static,
        R: 'static,
    {
        let Some(engine) = self.engine.take() else {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(MountError::Stopped))));
        };
        AtomicResponse::new(Box::pin(f(engine).into_actor(self).map(
            |(engine, r), act, _| {
                act.engine = Some(engine);
                r
            },
        )))
    }
}

impl Handler<Mount> for MountActor {
    type Result = AtomicResponse<Self, Result<MountInfo, MountError>>;

    fn handle(&mut self, msg: Mount, _: &mut Self::Context) -> Self::Result {
        let span = tracing::info_span!(parent: &self.span, "mount", kind = msg.spec.source.kind(), holder = %msg.holder);
        self.serve(move |mut engine| async move {
            let r = engine.mount(msg.spec, msg.holder).instrument(span).await;
            (engine, r)
        })
    }
}

impl Handler<Unmount> for MountActor {
    type Result = AtomicResponse<Self, Result<(), MountError>>;

    fn handle(&mut self, msg: Unmount, _: &mut Self::Context) -> Self::Result {
        let span = tracing::info_span!(parent: &self.span, "unmount", target = %msg.target, force = msg.force);
        self.serve(move |mut engine| async move {
            let r = engine
                .unmount(&msg.target, msg.force)
                .instrument(span)
                .await;
            (engine, r)
        })
    }
}

impl Handler<Get> for MountActor {
    type Result = Result<MountInfo, MountError>;

    fn handle(&mut self, msg: Get, _: &mut Self::Context) -> Self::Result {
        self.engine
            .as_ref()
            .ok_or(MountError::Stopped)?
            .get(&msg.target)
    }
}

impl Handler<List> for MountActor {
    type Result = Result<Vec<MountInfo>, MountError>;

    fn handle(&mut self, _: List, _: &mut Self::Context) -> Self::Result {
        Ok(self.engine.as_ref().ok_or(MountError::Stopped)?.list())
    }
}

impl Handler<Acquire> for MountActor {
    type Result = AtomicResponse<Self, Result<MountInfo, MountError>>;

    fn handle(&mut self, msg: Acquire, _: &mut Self::Context) -> Self::Result {
        let span = tracing::info_span!(parent: &self.span, "acquire", target = %msg.target, holder = %msg.holder);
        self.serve(move |mut engine| async move {
            let r = engine
                .acquire(&msg.target, msg.holder)
                .instrument(span)
                .await;
            (engine, r)
        })
    }
}

impl Handler<Release> for MountActor {
    type Result = AtomicResponse<Self, Result<(), MountError>>;

    fn handle(&mut self, msg: Release, _: &mut Self::Context) -> Self::Result {
        let span =
            tracing::info_span!(parent: &self.span, "release", id = msg.id, holder = %msg.holder);
        self.serve(move |mut engine| async move {
            let r = engine.release(msg.id, msg.holder).instrument(span).await;
            (engine, r)
        })
    }
}

impl Handler<Shutdown> for MountActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Cheap to clone; the only way into the mount actor.
#[derive(Debug, Clone)]
pub struct MountHandle {
    addr: Addr<MountActor>,
}

/// What [`spawn`] returns.
#[derive(Debug)]
pub struct Spawned {
    /// The handle (implements [`MountModule`]).
    pub handle: MountHandle,
    /// What start-up reconciliation cleaned.
    pub report: ReconcileReport,
    /// Ends when the actor does: `Ok` when `stop` was cancelled or every handle was
    /// dropped, a panic (`JoinError::is_panic`) when a command panicked.
    pub task: JoinHandle<()>,
}

/// Loads the state, reconciles it with the kernel and the attach module, then starts the
/// actor. Fails (starting nothing) if the configuration is invalid or the state file
/// cannot be read.
pub async fn spawn(
    cfg: MountConfig,
    sys: MountSys,
    attach: Arc<dyn AttachModule>,
    stop: CancellationToken,
) -> Result<Spawned, MountError> {
    let attach = Arc::new(OnCallerRuntime {
        inner: attach,
        rt: tokio::runtime::Handle::current(),
    });
    let mut mounts = Mounts::load(cfg, sys, attach).await?;
    let report = mounts.reconcile().await?;
    let (addr_tx, addr_rx) = oneshot::channel();
    let (exit_tx, exit_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("mount-actor".into())
        .spawn(move || {
            let exit = run(mounts, stop, addr_tx);
            let _ = exit_tx.send(exit);
        })
        .map_err(|e| MountError::Internal(format!("starting the mount actor thread: {e}")))?;
    let addr = addr_rx
        .await
        .map_err(|_| MountError::Internal("the mount actor thread ended at start".into()))?;
    // Awaits the thread without holding a blocking-pool thread (a runtime waits for those
    // when it shuts down). A thread that died without reporting panicked too.
    let task = tokio::spawn(async move {
        if exit_rx.await.unwrap_or(Exit::Panicked) == Exit::Panicked {
            tracing::error!("mount actor panicked");
            std::panic::resume_unwind(Box::new("the mount actor panicked"));
        }
        tracing::info!("mount actor stopped");
    });
    Ok(Spawned {
        handle: MountHandle { addr },
        report,
        task,
    })
}

/// The actor thread: starts the actor in an actix `System` and returns when it is gone.
fn run(
    mounts: Mounts,
    stop: CancellationToken,
    addr_tx: oneshot::Sender<Addr<MountActor>>,
) -> Exit {
    let system = actix::System::new();
    system.block_on(async move {
        let (alive, mut gone) = oneshot::channel();
        let addr = MountActor {
            engine: Some(mounts),
            alive: Some(alive),
            span: tracing::info_span!("mount"),
        }
        .start();
        // Keep only a weak address: the actor stops once every handle is dropped.
        let weak = addr.downgrade();
        if addr_tx.send(addr).is_err() {
            return Exit::Stopped;
        }
        let ended = tokio::select! {
            ended = &mut gone => ended,
            () = stop.cancelled() => {
                if let Some(addr) = weak.upgrade() {
                    addr.do_send(Shutdown);
                }
                gone.await
            }
        };
        // Dropped without a word: the actor was torn down some other way.
        ended.unwrap_or(Exit::Panicked)
    })
}

impl MountHandle {
    async fn ask<M>(&self, msg: M) -> Result<M::Result, RemoteError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        MountActor: Handler<M>,
    {
        self.addr
            .send(msg)
            .await
            .map_err(|_| RemoteError::from(MountError::Stopped))
    }
}

#[imagebus_bus::async_trait]
impl MountModule for MountHandle {
    async fn mount(
        &self,
        spec: MountSpec,
        holder: Option<Holder>,
    ) -> Result<MountInfo, RemoteError> {
        let holder = holder.unwrap_or(Holder::User);
        Ok(self.ask(Mount { spec, holder }).await??)
    }

    async fn unmount(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        Ok(self.ask(Unmount { target, force }).await??)
    }

    async fn get(&self, target: Selector) -> Result<MountInfo, RemoteError> {
        Ok(self.ask(Get { target }).await??)
    }

    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError> {
        Ok(self.ask(List).await??)
    }

    async fn acquire(&self, target: Selector, holder: Holder) -> Result<MountInfo, RemoteError> {
        Ok(self.ask(Acquire { target, holder }).await??)
    }

    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        Ok(self.ask(Release { id, holder }).await??)
    }
}

/// The attach module, called on another runtime (the one that called [`spawn`]). A call
/// dropped half-way is aborted there; a call that panics panics the caller, as in-process.
struct OnCallerRuntime {
    inner: Arc<dyn AttachModule>,
    rt: tokio::runtime::Handle,
}

impl OnCallerRuntime {
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, RemoteError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn AttachModule>) -> Fut,
        Fut: Future<Output = Result<T, RemoteError>> + Send + 'static,
    {
        match AbortOnDropHandle::new(self.rt.spawn(f(self.inner.clone()))).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(RemoteError::unavailable(format!("attach call: {e}"))),
        }
    }
}

#[imagebus_bus::async_trait]
impl AttachModule for OnCallerRuntime {
    async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, RemoteError> {
        self.call(|a| async move { a.attach(spec, holder).await })
            .await
    }

    async fn detach(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        self.call(|a| async move { a.detach(target, force).await })
            .await
    }

    async fn get(&self, target: Selector) -> Result<AttachInfo, RemoteError> {
        self.call(|a| async move { a.get(target).await }).await
    }

    async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError> {
        self.call(|a| async move { a.list().await }).await
    }

    async fn acquire(&self, target: Selector, holder: Holder) -> Result<AttachInfo, RemoteError> {
        self.call(|a| async move { a.acquire(target, holder).await })
            .await
    }

    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        self.call(|a| async move { a.release(id, holder).await })
            .await
    }
}
