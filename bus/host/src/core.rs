//! The actix actor that owns the state, its thread, and the [`Host`] handle.

use crate::gate::{Gate, Limits};
use crate::keys::Key;
use crate::HostError;
use actix::{Actor, ActorContext, Addr, Context, Handler, Message};
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Messages queued in the actor's mailbox before a sender waits. Steps and reads are
/// short, so the mailbox drains quickly; the bound only stops a runaway producer.
const MAILBOX: usize = 1024;

/// A step or read: runs on the actor's thread with the state; sends its own result.
type Work<S> = Box<dyn FnOnce(&mut S) + Send>;

struct Step<S>(Work<S>);

impl<S: 'static> Message for Step<S> {
    type Result = Result<(), ()>;
}

/// Stop now (shutdown, or a job panicked).
struct Halt;

impl Message for Halt {
    type Result = ();
}

struct Core<S> {
    state: S,
    died: Arc<AtomicBool>,
    gone: Option<oneshot::Sender<()>>,
}

impl<S: Unpin + 'static> Actor for Core<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(gone) = self.gone.take() {
            let _ = gone.send(());
        }
    }
}

impl<S: Unpin + 'static> Handler<Step<S>> for Core<S> {
    type Result = Result<(), ()>;

    fn handle(&mut self, msg: Step<S>, ctx: &mut Self::Context) -> Self::Result {
        let state = &mut self.state;
        if std::panic::catch_unwind(AssertUnwindSafe(|| (msg.0)(state))).is_err() {
            // The state may be half-changed: nothing may see it again.
            self.died.store(true, Ordering::Release);
            ctx.stop();
            return Err(());
        }
        Ok(())
    }
}

impl<S: Unpin + 'static> Handler<Halt> for Core<S> {
    type Result = ();

    fn handle(&mut self, _: Halt, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A cheap, cloneable handle on an actor's state. See the crate documentation.
pub struct Host<S: Unpin + Send + 'static> {
    addr: Addr<Core<S>>,
    gate: Arc<Gate>,
    died: Arc<AtomicBool>,
}

impl<S: Unpin + Send + 'static> Clone for Host<S> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            gate: self.gate.clone(),
            died: self.died.clone(),
        }
    }
}

impl<S: Unpin + Send + 'static> std::fmt::Debug for Host<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("actor", &self.gate.name)
            .field("running", &self.gate.running())
            .finish_non_exhaustive()
    }
}

impl<S: Unpin + Send + 'static> Host<S> {
    /// The actor's name (`attach`, `mount`, ...).
    pub fn name(&self) -> &'static str {
        self.gate.name
    }

    /// This actor's limits.
    pub fn limits(&self) -> Limits {
        self.gate.limits
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.gate.running()
    }

    /// Answers `f` from the current state, without waiting for any job.
    pub async fn read<R, F>(&self, f: F) -> Result<R, HostError>
    where
        R: Send + 'static,
        F: FnOnce(&S) -> R + Send + 'static,
    {
        self.apply(move |s: &mut S| f(s)).await
    }

    /// Runs one short synchronous step on the state. Steps and reads run one at a time,
    /// in the order they reach the actor; never block or wait in one.
    pub async fn apply<R, F>(&self, f: F) -> Result<R, HostError>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let work: Work<S> = Box::new(move |s: &mut S| {
            let _ = tx.send(f(s));
        });
        match self.addr.send(Step(work)).await {
            Ok(Ok(())) => rx.await.map_err(|_| HostError::Stopped(self.gate.name)),
            Ok(Err(())) => Err(HostError::Panicked(self.gate.name)),
            Err(_) => Err(self.gone()),
        }
    }

    /// Runs `job` once every key in `keys` is free and a slot is, unless the caller's
    /// deadline passes first ([`HostError::Timeout`], not started). The job runs on the
    /// runtime that started the host, detached from the caller (a caller that gives up
    /// does not cancel it), inside the caller's deadline scope. Never call `mutate` of
    /// the same host from inside a job: use steps and the engine's own functions.
    pub async fn mutate<R, F, Fut>(&self, keys: Vec<Key>, job: F) -> Result<R, HostError>
    where
        R: Send + 'static,
        F: FnOnce(Host<S>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        let deadline = imagebus_bus::deadline::current();
        let ticket = self.gate.enter(keys, deadline).await?;
        let (tx, rx) = oneshot::channel();
        let host = self.clone();
        let span = tracing::Span::current();
        let run = async move {
            let _ticket = ticket;
            let fut = imagebus_bus::deadline::scope(deadline, job(host.clone()));
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => {
                    let _ = tx.send(Ok(r));
                }
                Err(_) => {
                    tracing::error!(actor = host.gate.name, "a job panicked; stopping the actor");
                    host.died.store(true, Ordering::Release);
                    host.addr.do_send(Halt);
                    let _ = tx.send(Err(HostError::Panicked(host.gate.name)));
                }
            }
        }
        .instrument(span);
        self.gate.tracker.spawn_on(run, &self.gate.runtime);
        rx.await.map_err(|_| HostError::Stopped(self.gate.name))?
    }

    /// Runs `fut` beside the jobs (tracked for shutdown, but taking no slot and no key):
    /// for short follow-ups that must not hold up their caller, such as handling a
    /// process's exit. Shutdown waits for these too, so a long-lived loop must end on the
    /// stop token itself (or run as a plain task holding no `Host`, which would keep the
    /// actor alive).
    pub fn spawn<Fut>(&self, fut: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.gate
            .tracker
            .spawn_on(fut.instrument(tracing::Span::current()), &self.gate.runtime);
    }

    fn gone(&self) -> HostError {
        if self.died.load(Ordering::Acquire) {
            HostError::Panicked(self.gate.name)
        } else {
            HostError::Stopped(self.gate.name)
        }
    }
}

/// What [`start`] returns.
#[derive(Debug)]
pub struct Spawned<S: Unpin + Send + 'static> {
    /// The handle.
    pub host: Host<S>,
    /// Ends when the actor does: normally after `stop` is cancelled (and the jobs in
    /// flight finished or the shutdown timeout passed) or when every handle is dropped;
    /// as a panic (`JoinError::is_panic`) when a step or a job panicked.
    pub task: JoinHandle<()>,
}

/// Starts the actor `name` owning `state` on a thread of its own (`<name>-actor`); jobs
/// run on the calling runtime. Fails only when the thread cannot be started.
pub async fn start<S: Unpin + Send + 'static>(
    name: &'static str,
    state: S,
    limits: Limits,
    stop: CancellationToken,
) -> Result<Spawned<S>, std::io::Error> {
    let gate = Arc::new(Gate::new(
        name,
        limits,
        stop.clone(),
        tokio::runtime::Handle::current(),
    ));
    let died = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = oneshot::channel();
    let (exit_tx, exit_rx) = oneshot::channel::<()>();
    let (g, d) = (gate.clone(), died.clone());
    std::thread::Builder::new()
        .name(format!("{name}-actor"))
        .spawn(move || {
            run(state, g, d, stop, addr_tx);
            let _ = exit_tx.send(());
        })?;
    let addr = addr_rx
        .await
        .map_err(|_| std::io::Error::other(format!("the {name} actor thread ended at start")))?;
    let (g, d) = (gate.clone(), died.clone());
    let task = tokio::spawn(async move {
        // A thread that ended without a word died too.
        let clean = exit_rx.await.is_ok();
        g.close();
        if !clean || d.load(Ordering::Acquire) {
            tracing::error!(actor = g.name, "actor died");
            std::panic::resume_unwind(Box::new(format!("the {} actor died", g.name)));
        }
        tracing::info!(actor = g.name, "actor stopped");
    });
    Ok(Spawned {
        host: Host { addr, gate, died },
        task,
    })
}

/// The actor thread: runs the actor in an actix `System` until it stops.
fn run<S: Unpin + Send + 'static>(
    state: S,
    gate: Arc<Gate>,
    died: Arc<AtomicBool>,
    stop: CancellationToken,
    addr_tx: oneshot::Sender<Addr<Core<S>>>,
) {
    let system = actix::System::new();
    system.block_on(async move {
        let (gone_tx, mut gone) = oneshot::channel();
        let addr = Core {
            state,
            died,
            gone: Some(gone_tx),
        }
        .start();
        // Only a weak address here: the actor stops once every handle is dropped.
        let weak = addr.downgrade();
        if addr_tx.send(addr).is_err() {
            return;
        }
        tokio::select! {
            _ = &mut gone => {}
            () = stop.cancelled() => {
                gate.close();
                let timeout = gate.limits.shutdown_timeout;
                let left = gate.running();
                if left > 0 {
                    tracing::info!(actor = gate.name, jobs = left, ?timeout, "waiting for jobs in flight");
                }
                let drained = tokio::select! {
                    () = gate.tracker.wait() => true,
                    _ = tokio::time::sleep(timeout) => false,
                    _ = &mut gone => return,
                };
                if !drained {
                    tracing::warn!(actor = gate.name, jobs = gate.running(), "shutdown timeout: stopping with jobs in flight (start-up reconciles)");
                }
                if let Some(addr) = weak.upgrade() {
                    addr.do_send(Halt);
                }
                let _ = gone.await;
            }
        }
    });
}
