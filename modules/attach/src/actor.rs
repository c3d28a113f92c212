//! The attach actor: one tokio task owning [`Attachments`], fed by an mpsc queue, and the
//! cheap, cloneable [`AttachHandle`] that implements the schema trait. Commands run one at a
//! time on a blocking thread (they do syscalls and wait for rbd-fuse); a 1 s tick reaps
//! rbd-fuse children. See `docs/adr/0001-actors.md` for why this is not actix.

use crate::attachments::Attachments;
use crate::error::AttachError;
use crate::reconcile::ReconcileReport;
use crate::{AttachConfig, AttachSys};
use imagebus_bus::RemoteError;
use imagebus_schema::attach::{AttachInfo, AttachModule, AttachSpec};
use imagebus_schema::{Holder, Selector};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn, Instrument, Span};

type Reply<T> = oneshot::Sender<Result<T, AttachError>>;

enum Command {
    Attach {
        spec: AttachSpec,
        holder: Option<Holder>,
        reply: Reply<AttachInfo>,
    },
    Detach {
        target: Selector,
        force: bool,
        reply: Reply<()>,
    },
    Get {
        target: Selector,
        reply: Reply<AttachInfo>,
    },
    List {
        reply: Reply<Vec<AttachInfo>>,
    },
    Acquire {
        target: Selector,
        holder: Holder,
        reply: Reply<AttachInfo>,
    },
    Release {
        id: u64,
        holder: Holder,
        reply: Reply<()>,
    },
}

/// Cheap to clone; the only way into the attach actor. The actor stops when the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct AttachHandle {
    tx: mpsc::Sender<(Span, Command)>,
}

/// Opens the state in `config.state_dir`, reconciles it with the kernel, and starts the
/// actor. Errors: the state file is unreadable or of another format version.
pub async fn spawn(
    config: AttachConfig,
    sys: AttachSys,
) -> Result<(AttachHandle, ReconcileReport), AttachError> {
    let (core, report) = tokio::task::spawn_blocking(move || Attachments::open(config, sys))
        .await
        .map_err(|_| AttachError::Stopped)??;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run(Arc::new(Mutex::new(core)), rx));
    Ok((AttachHandle { tx }, report))
}

async fn run(core: Arc<Mutex<Attachments>>, mut rx: mpsc::Receiver<(Span, Command)>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                // The caller's span (the bus request's, when served) follows the command.
                Some((span, cmd)) => handle(&core, cmd).instrument(span).await,
                None => break,
            },
            _ = tick.tick() => {
                let core = core.clone();
                let _ = tokio::task::spawn_blocking(move || lock(&core).reap()).await;
            }
        }
    }
    debug!("attach actor stopped");
}

fn lock(core: &Mutex<Attachments>) -> std::sync::MutexGuard<'_, Attachments> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the blocking pool with the core and sends its result.
async fn blocking<T: Send + 'static>(
    core: &Arc<Mutex<Attachments>>,
    reply: Reply<T>,
    f: impl FnOnce(&mut Attachments) -> Result<T, AttachError> + Send + 'static,
) {
    let core = core.clone();
    let span = Span::current();
    let result = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let result = f(&mut lock(&core));
        if let Err(e) = &result {
            debug!(error = %e, "attach command failed");
        }
        result
    })
    .await
    .unwrap_or_else(|e| {
        warn!(error = %e, "attach command panicked");
        Err(AttachError::Stopped)
    });
    let _ = reply.send(result);
}

async fn handle(core: &Arc<Mutex<Attachments>>, cmd: Command) {
    match cmd {
        Command::Attach {
            spec,
            holder,
            reply,
        } => blocking(core, reply, move |c| c.attach(spec, holder)).await,
        Command::Detach {
            target,
            force,
            reply,
        } => blocking(core, reply, move |c| c.detach(&target, force)).await,
        Command::Get { target, reply } => blocking(core, reply, move |c| c.get(&target)).await,
        Command::List { reply } => blocking(core, reply, |c| Ok(c.list())).await,
        Command::Acquire {
            target,
            holder,
            reply,
        } => blocking(core, reply, move |c| c.acquire(&target, holder)).await,
        Command::Release { id, holder, reply } => {
            blocking(core, reply, move |c| c.release(id, &holder)).await
        }
    }
}

impl AttachHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RemoteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((Span::current(), make(reply)))
            .await
            .map_err(|_| AttachError::Stopped)?;
        Ok(rx.await.map_err(|_| AttachError::Stopped)??)
    }
}

#[imagebus_bus::async_trait]
impl AttachModule for AttachHandle {
    async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, RemoteError> {
        self.call(|reply| Command::Attach {
            spec,
            holder,
            reply,
        })
        .await
    }

    async fn detach(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        self.call(|reply| Command::Detach {
            target,
            force,
            reply,
        })
        .await
    }

    async fn get(&self, target: Selector) -> Result<AttachInfo, RemoteError> {
        self.call(|reply| Command::Get { target, reply }).await
    }

    async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError> {
        self.call(|reply| Command::List { reply }).await
    }

    async fn acquire(&self, target: Selector, holder: Holder) -> Result<AttachInfo, RemoteError> {
        self.call(|reply| Command::Acquire {
            target,
            holder,
            reply,
        })
        .await
    }

    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        self.call(|reply| Command::Release { id, holder, reply })
            .await
    }
}
