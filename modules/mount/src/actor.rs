//! The mount actor: one tokio task owning the state ([`Mounts`]), fed by an mpsc channel;
//! [`MountHandle`] is the only way in and implements [`MountModule`], so the bus server,
//! the daemon and other modules never see the task.
//!
//! A plain tokio task rather than actix (see `docs/adr/0001-actors.md`): every command
//! awaits the attach module (over Redis when split) and blocking syscalls, which actix
//! would force into `AtomicResponse` combinators. Commands are served one at a time, so
//! a nested mount is never interleaved with an unmount of the same objects.

use crate::config::{MountConfig, MountSys};
use crate::engine::Mounts;
use crate::error::MountError;
use crate::reconcile::ReconcileReport;
use imagebus_bus::RemoteError;
use imagebus_schema::attach::AttachModule;
use imagebus_schema::mount::{MountInfo, MountModule, MountSpec};
use imagebus_schema::{Holder, Selector};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

type Reply<T> = oneshot::Sender<Result<T, MountError>>;

enum Command {
    Mount {
        spec: MountSpec,
        holder: Holder,
        reply: Reply<MountInfo>,
    },
    Unmount {
        target: Selector,
        force: bool,
        reply: Reply<()>,
    },
    Get {
        target: Selector,
        reply: Reply<MountInfo>,
    },
    List {
        reply: Reply<Vec<MountInfo>>,
    },
    Acquire {
        target: Selector,
        holder: Holder,
        reply: Reply<MountInfo>,
    },
    Release {
        id: u64,
        holder: Holder,
        reply: Reply<()>,
    },
}

/// Cheap to clone; the only way into the mount actor.
#[derive(Debug, Clone)]
pub struct MountHandle {
    tx: mpsc::Sender<Command>,
}

/// What [`spawn`] returns.
#[derive(Debug)]
pub struct Spawned {
    /// The handle (implements [`MountModule`]).
    pub handle: MountHandle,
    /// What start-up reconciliation cleaned.
    pub report: ReconcileReport,
    /// The actor task; it ends when `stop` is cancelled or every handle is dropped.
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
    let mut mounts = Mounts::load(cfg, sys, attach).await?;
    let report = mounts.reconcile().await?;
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(run(mounts, rx, stop).instrument(tracing::info_span!("mount")));
    Ok(Spawned {
        handle: MountHandle { tx },
        report,
        task,
    })
}

async fn run(mut mounts: Mounts, mut rx: mpsc::Receiver<Command>, stop: CancellationToken) {
    loop {
        let cmd = tokio::select! {
            _ = stop.cancelled() => break,
            cmd = rx.recv() => match cmd {
                Some(cmd) => cmd,
                None => break,
            },
        };
        // A dropped reply means the caller gave up; the command still ran to completion.
        match cmd {
            Command::Mount {
                spec,
                holder,
                reply,
            } => {
                let span = tracing::info_span!("mount", kind = spec.source.kind(), %holder);
                let _ = reply.send(mounts.mount(spec, holder).instrument(span).await);
            }
            Command::Unmount {
                target,
                force,
                reply,
            } => {
                let span = tracing::info_span!("unmount", %target, force);
                let _ = reply.send(mounts.unmount(&target, force).instrument(span).await);
            }
            Command::Get { target, reply } => {
                let _ = reply.send(mounts.get(&target));
            }
            Command::List { reply } => {
                let _ = reply.send(Ok(mounts.list()));
            }
            Command::Acquire {
                target,
                holder,
                reply,
            } => {
                let span = tracing::info_span!("acquire", %target, %holder);
                let _ = reply.send(mounts.acquire(&target, holder).instrument(span).await);
            }
            Command::Release { id, holder, reply } => {
                let span = tracing::info_span!("release", id, %holder);
                let _ = reply.send(mounts.release(id, holder).instrument(span).await);
            }
        }
    }
    tracing::info!("mount actor stopped");
}

impl MountHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RemoteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| RemoteError::from(MountError::Stopped))?;
        rx.await
            .map_err(|_| RemoteError::from(MountError::Stopped))?
            .map_err(RemoteError::from)
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
        self.ask(|reply| Command::Mount {
            spec,
            holder,
            reply,
        })
        .await
    }

    async fn unmount(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        self.ask(|reply| Command::Unmount {
            target,
            force,
            reply,
        })
        .await
    }

    async fn get(&self, target: Selector) -> Result<MountInfo, RemoteError> {
        self.ask(|reply| Command::Get { target, reply }).await
    }

    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError> {
        self.ask(|reply| Command::List { reply }).await
    }

    async fn acquire(&self, target: Selector, holder: Holder) -> Result<MountInfo, RemoteError> {
        self.ask(|reply| Command::Acquire {
            target,
            holder,
            reply,
        })
        .await
    }

    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        self.ask(|reply| Command::Release { id, holder, reply })
            .await
    }
}
