//! The attach actor: an actix actor owning [`Attachments`] (the engine) on its own thread,
//! and the cheap, cloneable [`AttachHandle`] that implements the schema trait. actix stays
//! in this file (house style, `docs/adr/0001-actors.md`); the bus, the daemon and the tests
//! only see the handle.
//!
//! One message per trait method. Commands that touch the kernel run on the blocking pool
//! (they do syscalls and wait for rbd-fuse): their handlers move the engine into an
//! [`AtomicResponse`] future and get it back when it completes, so commands run one at a
//! time and never borrow the actor across an await. A ticker sends `Reap` every second to
//! reap and restart rbd-fuse children, serialised with the commands.
//!
//! The actor runs in an actix `System` (a tokio current-thread runtime) on the thread
//! `attach-actor`. It stops when the [`CancellationToken`] given to [`spawn`] is cancelled
//! or the last handle is dropped; a panicking command kills it. The task in [`Spawned`]
//! ends then — as a panic in the last case — so the daemon can restart it.

use crate::attachments::Attachments;
use crate::error::AttachError;
use crate::reconcile::ReconcileReport;
use crate::{AttachConfig, AttachSys};
use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler, Message, WeakAddr,
    WrapFuture,
};
use imagebus_bus::RemoteError;
use imagebus_schema::attach::{AttachInfo, AttachModule, AttachSpec};
use imagebus_schema::{Holder, Selector};
use std::future::Future;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, Span};

/// Mailbox capacity (as the mpsc channel had before the port).
const MAILBOX: usize = 64;
/// How often rbd-fuse children are reaped.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// [`AttachModule::attach`].
#[derive(actix::Message)]
#[rtype(result = "Result<AttachInfo, AttachError>")]
struct Attach {
    spec: AttachSpec,
    holder: Option<Holder>,
    span: Span,
}

/// [`AttachModule::detach`].
#[derive(actix::Message)]
#[rtype(result = "Result<(), AttachError>")]
struct Detach {
    target: Selector,
    force: bool,
    span: Span,
}

/// [`AttachModule::get`].
#[derive(actix::Message)]
#[rtype(result = "Result<AttachInfo, AttachError>")]
struct Get {
    target: Selector,
}

/// [`AttachModule::list`].
#[derive(actix::Message)]
#[rtype(result = "Result<Vec<AttachInfo>, AttachError>")]
struct List;

/// [`AttachModule::acquire`].
#[derive(actix::Message)]
#[rtype(result = "Result<AttachInfo, AttachError>")]
struct Acquire {
    target: Selector,
    holder: Holder,
    span: Span,
}

/// [`AttachModule::release`].
#[derive(actix::Message)]
#[rtype(result = "Result<(), AttachError>")]
struct Release {
    id: u64,
    holder: Holder,
    span: Span,
}

/// Reap exited rbd-fuse children and restart them (sent by the ticker).
#[derive(actix::Message)]
#[rtype(result = "Result<(), AttachError>")]
struct Reap;

/// Cheap to clone; the only way into the attach actor. The actor stops when the last
/// handle is dropped (or its cancellation token is cancelled).
#[derive(Debug, Clone)]
pub struct AttachHandle {
    addr: Addr<AttachActor>,
}

/// What [`spawn`] returns.
#[derive(Debug)]
pub struct Spawned {
    /// The handle (implements [`AttachModule`]).
    pub handle: AttachHandle,
    /// What start-up reconciliation cleaned.
    pub report: ReconcileReport,
    /// The actor's task; it ends when `stop` is cancelled or every handle is dropped, and
    /// ends as a panic (`JoinError::is_panic`) when a command panicked and killed the actor.
    pub task: JoinHandle<()>,
}

/// Opens the state in `config.state_dir`, reconciles it with the kernel, and starts the
/// actor. Errors: the state file is unreadable or of another format version.
pub async fn spawn(
    config: AttachConfig,
    sys: AttachSys,
    stop: CancellationToken,
) -> Result<Spawned, AttachError> {
    let (engine, report) = tokio::task::spawn_blocking(move || Attachments::open(config, sys))
        .await
        .map_err(|_| AttachError::Stopped)??;
    let (addr_tx, addr_rx) = oneshot::channel();
    let (end_tx, end_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("attach-actor".into())
        .spawn(move || {
            let _ = end_tx.send(run(engine, stop, addr_tx));
        })
        .map_err(|e| AttachError::Unavailable(format!("starting the attach actor: {e}")))?;
    let addr = addr_rx.await.map_err(|_| AttachError::Stopped)?;
    // Awaits the thread's end without holding a blocking-pool thread (a runtime waits for
    // those when it shuts down). A thread that ended without reporting panicked.
    let task = tokio::spawn(async move {
        match end_rx.await {
            Ok(End::Stopped) => debug!("attach actor stopped"),
            Ok(End::Died) | Err(_) => {
                error!("attach actor died (a command panicked)");
                std::panic::resume_unwind(Box::new("the attach actor panicked"))
            }
        }
    });
    Ok(Spawned {
        handle: AttachHandle { addr },
        report,
        task,
    })
}

/// How the actor's thread ended.
enum End {
    /// Cancelled, or stopped after the last handle was dropped.
    Stopped,
    /// Dropped without stopping: a handler panicked.
    Died,
}

/// The actor thread: an actix System running the actor until `stop` or its end.
fn run(
    engine: Attachments,
    stop: CancellationToken,
    addr_tx: oneshot::Sender<Addr<AttachActor>>,
) -> End {
    actix::System::new().block_on(async move {
        let (exit_tx, exit_rx) = oneshot::channel();
        let addr = AttachActor {
            engine: Some(engine),
            exit: Some(exit_tx),
        }
        .start();
        if addr_tx.send(addr).is_err() {
            // spawn's caller is gone; the dropped address stops the actor.
            return End::Stopped;
        }
        tokio::select! {
            () = stop.cancelled() => End::Stopped,
            // `stopped` sends on a normal stop only; a panic drops the sender unsent.
            res = exit_rx => if res.is_ok() { End::Stopped } else { End::Died },
        }
    })
}

/// The actor. `engine` is `None` only while a command has it (no other message runs then).
struct AttachActor {
    engine: Option<Attachments>,
    /// Told when the actor stops normally; dropped unsent when it dies.
    exit: Option<oneshot::Sender<()>>,
}

impl Actor for AttachActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        actix::spawn(tick(ctx.address().downgrade()));
    }

    /// Also called when a handler panicked: the runtime drops the actor's task while
    /// unwinding and actix calls `stopped` from that drop. A normal stop (the last handle
    /// went away) has the engine at home.
    fn stopped(&mut self, _: &mut Self::Context) {
        let normal = !std::thread::panicking() && self.engine.is_some();
        if let Some(exit) = self.exit.take().filter(|_| normal) {
            let _ = exit.send(());
        }
    }
}

/// Sends [`Reap`] every [`REAP_EVERY`] (at once first) while the actor lives. Holds only a
/// weak address between ticks, so dropping the last handle still stops the actor.
async fn tick(actor: WeakAddr<AttachActor>) {
    let mut every = tokio::time::interval(REAP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(addr) = actor.upgrade() else { break };
        let reaped = addr.send(Reap);
        drop(addr);
        if reaped.await.is_err() {
            break;
        }
    }
}

impl AttachActor {
    /// Moves the engine into `f`'s future and back into the actor when it completes; no
    /// other message runs meanwhile.
    fn serve<R, F, Fut>(&mut self, f: F) -> AtomicResponse<Self, Result<R, AttachError>>
    where
        F: FnOnce(Attachments) -> Fut + 'static,
        Fut: Future<Output = (Attachments, Result<R, AttachError>)> + 'static,
        R: 'static,
    {
        let Some(engine) = self.engine.take() else {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(AttachError::Stopped))));
        };
        AtomicResponse::new(Box::pin(f(engine).into_actor(self).map(
            |(engine, r), act, _ctx| {
                act.engine = Some(engine);
                r
            },
        )))
    }

    fn engine(&self) -> Result<&Attachments, AttachError> {
        self.engine.as_ref().ok_or(AttachError::Stopped)
    }
}

/// Runs `f` with the engine on the blocking pool, in the caller's `span`, and gives the
/// engine back. A panic in `f` is resumed here: it kills the actor (the engine is lost).
async fn blocking<R: Send + 'static>(
    mut engine: Attachments,
    span: Span,
    f: impl FnOnce(&mut Attachments) -> Result<R, AttachError> + Send + 'static,
) -> (Attachments, Result<R, AttachError>) {
    let joined = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let result = f(&mut engine);
        if let Err(e) = &result {
            debug!(error = %e, "attach command failed");
        }
        (engine, result)
    })
    .await;
    match joined {
        Ok(done) => done,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => std::panic::resume_unwind(Box::new(format!("attach command lost: {e}"))),
        },
    }
}

impl Handler<Attach> for AttachActor {
    type Result = AtomicResponse<Self, Result<AttachInfo, AttachError>>;

    fn handle(&mut self, msg: Attach, _: &mut Self::Context) -> Self::Result {
        let Attach { spec, holder, span } = msg;
        self.serve(move |engine| blocking(engine, span, move |c| c.attach(spec, holder)))
    }
}

impl Handler<Detach> for AttachActor {
    type Result = AtomicResponse<Self, Result<(), AttachError>>;

    fn handle(&mut self, msg: Detach, _: &mut Self::Context) -> Self::Result {
        let Detach {
            target,
            force,
            span,
        } = msg;
        self.serve(move |engine| blocking(engine, span, move |c| c.detach(&target, force)))
    }
}

impl Handler<Get> for AttachActor {
    type Result = Result<AttachInfo, AttachError>;

    fn handle(&mut self, msg: Get, _: &mut Self::Context) -> Self::Result {
        self.engine()?.get(&msg.target)
    }
}

impl Handler<List> for AttachActor {
    type Result = Result<Vec<AttachInfo>, AttachError>;

    fn handle(&mut self, _: List, _: &mut Self::Context) -> Self::Result {
        Ok(self.engine()?.list())
    }
}

impl Handler<Acquire> for AttachActor {
    type Result = AtomicResponse<Self, Result<AttachInfo, AttachError>>;

    fn handle(&mut self, msg: Acquire, _: &mut Self::Context) -> Self::Result {
        let Acquire {
            target,
            holder,
            span,
        } = msg;
        self.serve(move |engine| blocking(engine, span, move |c| c.acquire(&target, holder)))
    }
}

impl Handler<Release> for AttachActor {
    type Result = AtomicResponse<Self, Result<(), AttachError>>;

    fn handle(&mut self, msg: Release, _: &mut Self::Context) -> Self::Result {
        let Release { id, holder, span } = msg;
        self.serve(move |engine| blocking(engine, span, move |c| c.release(id, &holder)))
    }
}

impl Handler<Reap> for AttachActor {
    type Result = AtomicResponse<Self, Result<(), AttachError>>;

    fn handle(&mut self, _: Reap, _: &mut Self::Context) -> Self::Result {
        self.serve(|engine| {
            blocking(engine, Span::current(), |c| {
                c.reap();
                Ok(())
            })
        })
    }
}

impl AttachHandle {
    /// Sends `msg`; a stopped or dead actor is [`AttachError::Stopped`] (Unavailable).
    async fn ask<M, T>(&self, msg: M) -> Result<T, RemoteError>
    where
        M: Message<Result = Result<T, AttachError>> + Send + 'static,
        T: Send + 'static,
        AttachActor: Handler<M>,
    {
        let result = self
            .addr
            .send(msg)
            .await
            .map_err(|_| AttachError::Stopped)?;
        Ok(result?)
    }
}

#[imagebus_bus::async_trait]
impl AttachModule for AttachHandle {
    async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, RemoteError> {
        // The caller's span (the bus request's, when served) follows the command.
        self.ask(Attach {
            spec,
            holder,
            span: Span::current(),
        })
        .await
    }

    async fn detach(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        self.ask(Detach {
            target,
            force,
            span: Span::current(),
        })
        .await
    }

    async fn get(&self, target: Selector) -> Result<AttachInfo, RemoteError> {
        self.ask(Get { target }).await
    }

    async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError> {
        self.ask(List).await
    }

    async fn acquire(&self, target: Selector, holder: Holder) -> Result<AttachInfo, RemoteError> {
        self.ask(Acquire {
            target,
            holder,
            span: Span::current(),
        })
        .await
    }

    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        self.ask(Release {
            id,
            holder,
            span: Span::current(),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_bus::ErrorCode;
    use imagebus_schema::attach::{AttachSource, LoopSource};
    use imagebus_sys::blockdev::{FileKind, FileStat, Files};
    use imagebus_sys::fake::*;
    use imagebus_sys::SysResult;
    use std::path::Path;
    use std::sync::Arc;

    const WAIT: Duration = Duration::from_secs(10);

    /// [`FakeFiles`] that panics when asked about `/img/boom`.
    struct PanickingFiles(FakeFiles);

    impl Files for PanickingFiles {
        fn stat(&self, path: &Path) -> SysResult<Option<FileStat>> {
            assert_ne!(path, Path::new("/img/boom"), "stat of /img/boom panics");
            self.0.stat(path)
        }
    }

    fn start(dir: &Path, stop: CancellationToken) -> impl Future<Output = Spawned> {
        let files = FakeFiles::default();
        files.add("/img/a.sqsh", FileKind::Regular, 11);
        files.add("/img/boom", FileKind::Regular, 12);
        let sys = AttachSys {
            loops: Arc::new(FakeLoopDevices::default()),
            rbd: Arc::new(FakeRbdBus::default()),
            files: Arc::new(PanickingFiles(files)),
            runner: Arc::new(FakeRunner::default()),
            procs: Arc::new(FakeProcesses::default()),
            fuse: Arc::new(FakeFuseMounts::default()),
        };
        let cfg = AttachConfig {
            state_dir: dir.join("state"),
            run_dir: dir.join("run"),
        };
        async move { spawn(cfg, sys, stop).await.expect("spawn") }
    }

    fn loop_spec(path: &str) -> AttachSpec {
        AttachSpec {
            name: None,
            source: AttachSource::Loop(LoopSource {
                path: path.into(),
                read_only: true,
            }),
        }
    }

    async fn ended(task: JoinHandle<()>) -> Result<(), tokio::task::JoinError> {
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the actor task did not end")
    }

    #[tokio::test]
    async fn a_panicking_command_fails_calls_and_ends_the_task_as_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let s = start(dir.path(), CancellationToken::new()).await;
        let info = s
            .handle
            .attach(loop_spec("/img/a.sqsh"), None)
            .await
            .unwrap();
        assert_eq!(s.handle.list().await.unwrap(), vec![info]);
        let err = tokio::time::timeout(WAIT, s.handle.attach(loop_spec("/img/boom"), None))
            .await
            .expect("the call hung")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
        let err = tokio::time::timeout(WAIT, s.handle.list())
            .await
            .expect("the call hung")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
        let end = ended(s.task).await;
        assert!(
            end.is_err_and(|e| e.is_panic()),
            "the task must end as a panic"
        );
    }

    #[tokio::test]
    async fn cancelling_stops_the_actor_and_ends_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let stop = CancellationToken::new();
        let s = start(dir.path(), stop.clone()).await;
        s.handle
            .attach(loop_spec("/img/a.sqsh"), None)
            .await
            .unwrap();
        stop.cancel();
        ended(s.task)
            .await
            .expect("a cancelled actor ends normally");
        let err = s.handle.list().await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    }

    #[tokio::test]
    async fn dropping_every_handle_stops_the_actor() {
        let dir = tempfile::tempdir().unwrap();
        let s = start(dir.path(), CancellationToken::new()).await;
        let other = s.handle.clone();
        assert!(other.list().await.unwrap().is_empty());
        drop(s.handle);
        drop(other);
        ended(s.task).await.expect("the actor ends normally");
    }
}
