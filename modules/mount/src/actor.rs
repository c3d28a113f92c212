//! The mount actor's handle: [`MountHandle`] implements [`MountModule`] with one small
//! handler per method, and [`spawn`] starts it.
//!
//! The state lives in the shared actor host (`imagebus-host`). `Get` and `List` are reads,
//! answered from the current state even while mutations are in flight. Every other method
//! is a job (`Host::mutate`) running the engine function, with these keys:
//! - `Mount`: `Key::name("mount", n)` for every name in the spec (and its inline
//!   children); fresh ids need no key;
//! - `Unmount`, `Acquire`: `Key::id("mount", id)` of the target, resolved with a read
//!   first and re-checked in the job;
//! - `Release`: `Key::id("mount", id)`.
//!
//! Before `Mount` (with a holder), `Acquire` and `Release`, the holder's owner is asked
//! whether the reference is its own (`engine/holders.rs`): a forged holder changes nothing.
//!
//! Jobs run on the runtime that called [`spawn`] (the daemon's), so the attach module's
//! bus stub keeps its Redis connections there. Host failures map to [`MountError`]:
//! stopped → `Stopped` (`Unavailable`), a deadline passed while waiting for a turn →
//! `Timeout`, a panicking command → `Crashed` (`Unavailable`; the task ends as a panic).

use crate::config::{MountConfig, MountSys};
use crate::engine::holders::{self, Use};
use crate::engine::reconcile::{self, ReconcileReport};
use crate::engine::{acquire, create, remove, Ctx, Job, State};
use crate::error::MountError;
use crate::store::Store;
use crate::validate;
use imagebus_bus::RemoteError;
use imagebus_host::{Host, Key, Limits};
use imagebus_schema::attach::AttachModule;
use imagebus_schema::container::ContainerModule;
use imagebus_schema::image::ImageModule;
use imagebus_schema::mount::{MountInfo, MountModule, MountSpec};
use imagebus_schema::{Holder, Selector};
use std::future::Future;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The host's name for this actor (thread `mount-actor`, error messages).
const ACTOR: &str = "mount";

/// Cheap to clone; the only way into the mount actor.
#[derive(Debug, Clone)]
pub struct MountHandle {
    host: Host<State>,
    ctx: Arc<Ctx>,
}

/// What [`spawn`] returns.
#[derive(Debug)]
pub struct Spawned {
    /// The handle (implements [`MountModule`]).
    pub handle: MountHandle,
    /// What start-up reconciliation cleaned.
    pub report: ReconcileReport,
    /// Ends when the actor does: `Ok` when `stop` was cancelled (after the commands in
    /// flight, within `limits.shutdown_timeout`) or every handle was dropped, a panic
    /// (`JoinError::is_panic`) when a command panicked.
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
    limits: Limits,
) -> Result<Spawned, MountError> {
    spawn_with_images(cfg, sys, attach, None, stop, limits).await
}

/// [`spawn`] with an image store, so `stored` sources can be mounted (without one they
/// answer `Unavailable`). Start-up reconciliation also releases the images held by mounts
/// that no longer exist.
pub async fn spawn_with_images(
    cfg: MountConfig,
    sys: MountSys,
    attach: Arc<dyn AttachModule>,
    image: Option<Arc<dyn ImageModule>>,
    stop: CancellationToken,
    limits: Limits,
) -> Result<Spawned, MountError> {
    let peers = Peers {
        attach,
        image,
        container: None,
    };
    spawn_with_peers(cfg, sys, peers, stop, limits).await
}

/// The modules the mount actor calls.
#[derive(Clone)]
pub struct Peers {
    /// The attach module (image mounts of files and devices).
    pub attach: Arc<dyn AttachModule>,
    /// The image store, for `stored` sources (`None`: they answer `Unavailable`).
    pub image: Option<Arc<dyn ImageModule>>,
    /// The container module, asked whether a `Container(n)` holder named in `Mount`,
    /// `Acquire` or `Release` is genuine (a made-up one is refused, and a container's live
    /// reference can be released only by the container); while it cannot be asked, such
    /// calls answer `Unavailable`. `None` leaves these holders unchecked: only for an
    /// embedding whose callers are all trusted (the daemon always passes one).
    pub container: Option<Arc<dyn ContainerModule>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("image", &self.image.is_some())
            .field("container", &self.container.is_some())
            .finish_non_exhaustive()
    }
}

/// [`spawn`] with every peer module (see [`Peers`]).
pub async fn spawn_with_peers(
    cfg: MountConfig,
    sys: MountSys,
    peers: Peers,
    stop: CancellationToken,
    limits: Limits,
) -> Result<Spawned, MountError> {
    cfg.validate()?;
    let (store, db) = Store::load(&cfg, &sys).await?;
    let ctx = Arc::new(Ctx {
        cfg,
        sys,
        attach: peers.attach,
        image: peers.image,
        container: peers.container,
        store,
    });
    let (state, report) = reconcile::run(ctx.clone(), State::new(db)).await?;
    let started = imagebus_host::start(ACTOR, state, limits, stop)
        .await
        .map_err(|e| MountError::Internal(format!("starting the mount actor: {e}")))?;
    if !report.deferred_attachments.is_empty() {
        tokio::spawn(reconcile::release_later(
            ctx.attach.clone(),
            report.deferred_attachments.clone(),
        ));
    }
    Ok(Spawned {
        handle: MountHandle {
            host: started.host,
            ctx,
        },
        report,
        task: started.task,
    })
}

impl MountHandle {
    /// Answers from the current state.
    async fn read<R, F>(&self, f: F) -> Result<R, MountError>
    where
        R: Send + 'static,
        F: FnOnce(&State) -> R + Send + 'static,
    {
        Ok(self.host.read(f).await?)
    }

    /// Runs `f` as a job holding `keys`.
    async fn job<R, F, Fut>(&self, keys: Vec<Key>, f: F) -> Result<R, MountError>
    where
        R: Send + 'static,
        F: FnOnce(Job) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, MountError>> + Send + 'static,
    {
        let ctx = self.ctx.clone();
        self.host
            .mutate(keys, move |host| f(Job::new(ctx, host)))
            .await?
    }

    /// The id `target` points at now (visible mounts only).
    async fn resolve(&self, target: &Selector) -> Result<u64, MountError> {
        let t = target.clone();
        self.read(move |st| st.find(&t))
            .await?
            .ok_or_else(|| MountError::NotFound(target.clone()))
    }

    /// Refuses `holder` for `what` unless its owner agrees (`engine/holders.rs`).
    async fn check_holder(&self, holder: &Holder, what: Use) -> Result<(), MountError> {
        let id = what.id();
        let holds = match holder {
            Holder::Mount(owner) => {
                let owner = *owner;
                Some(self.read(move |st| st.mount_holds(owner, id)).await?)
            }
            _ => holders::ask_owner(&self.ctx, holder, id).await?,
        };
        holders::judge(holder, what, holds)
    }

    async fn mount(&self, spec: MountSpec, holder: Holder) -> Result<MountInfo, MountError> {
        self.check_holder(&holder, Use::Add(None)).await?;
        let keys = validate::names(&spec)
            .iter()
            .map(|n| Key::name(ACTOR, n))
            .collect();
        self.job(keys, |job| async move {
            create::mount(&job, spec, holder).await
        })
        .await
    }

    async fn unmount(&self, target: Selector, force: bool) -> Result<(), MountError> {
        let id = self.resolve(&target).await?;
        self.job(vec![Key::id(ACTOR, id)], move |job| async move {
            remove::unmount(&job, target, id, force).await
        })
        .await
    }

    async fn acquire(&self, target: Selector, holder: Holder) -> Result<MountInfo, MountError> {
        let id = self.resolve(&target).await?;
        self.check_holder(&holder, Use::Add(Some(id))).await?;
        self.job(vec![Key::id(ACTOR, id)], move |job| async move {
            acquire::acquire(&job, target, id, holder).await
        })
        .await
    }

    async fn release(&self, id: u64, holder: Holder) -> Result<(), MountError> {
        self.check_holder(&holder, Use::Drop(id)).await?;
        self.job(vec![Key::id(ACTOR, id)], move |job| async move {
            remove::release(&job, id, holder).await
        })
        .await
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
        let span = tracing::info_span!("mount", kind = spec.source.kind(), holder = %holder);
        Ok(MountHandle::mount(self, spec, holder)
            .instrument(span)
            .await?)
    }

    async fn unmount(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        let span = tracing::info_span!("unmount", target = %target, force);
        Ok(MountHandle::unmount(self, target, force)
            .instrument(span)
            .await?)
    }

    async fn get(&self, target: Selector) -> Result<MountInfo, RemoteError> {
        Ok(self.read(move |st| st.get(&target)).await??)
    }

    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError> {
        Ok(self.read(State::list).await?)
    }

    async fn acquire(&self, target: Selector, holder: Holder) -> Result<MountInfo, RemoteError> {
        let span = tracing::info_span!("acquire", target = %target, holder = %holder);
        Ok(MountHandle::acquire(self, target, holder)
            .instrument(span)
            .await?)
    }

    async fn holds(&self, id: u64, attachment: u64) -> Result<bool, RemoteError> {
        Ok(self
            .read(move |st| st.holds_attachment(id, attachment))
            .await?)
    }

    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        let span = tracing::info_span!("release", id, holder = %holder);
        Ok(MountHandle::release(self, id, holder)
            .instrument(span)
            .await?)
    }
}
