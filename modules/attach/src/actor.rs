//! The attach actor's handle and its start. The state ([`State`]) is owned by the shared
//! actor host (`imagebus-host`); [`AttachHandle`] implements the schema trait with one small
//! handler per method: Get and List are reads of the current state, every other method is a
//! job (`Host::mutate`) on the keys of the attachments it touches, running the engine
//! function of its verb.
//!
//! Keys (`Key::id("attach", id)`): Detach and Release take the attachment's id and, for a
//! shared attachment, the id of the mapping it shares; Acquire the attachment's id; an
//! Attach that shares an existing read-only RBD mapping the mapping's id; any other Attach
//! none (its name, image and id are reserved in a step). A selector by name is resolved
//! with a read first and re-checked by id inside the job.

use crate::config::{AttachConfig, AttachSys};
use crate::engine::holders::{self, Use};
use crate::engine::reconcile::{self, ReconcileReport};
use crate::engine::{reap, shared, Engine, State, KIND};
use crate::error::AttachError;
use imagebus_bus::RemoteError;
use imagebus_host::{Key, Limits};
use imagebus_schema::attach::{
    AttachInfo, AttachModule, AttachSource, AttachSpec, RbdSource, Secret,
};
use imagebus_schema::mount::MountModule;
use imagebus_schema::{Holder, Selector};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, Instrument};

/// Cheap to clone; the only way into the attach actor. The actor stops when its
/// cancellation token is cancelled or the last handle is dropped.
#[derive(Clone)]
pub struct AttachHandle {
    pub(crate) engine: Engine,
    /// Asked about `mount:N` holders (see [`spawn_with_mounts`]).
    mounts: Option<Arc<dyn MountModule>>,
    _life: Arc<Life>,
}

impl std::fmt::Debug for AttachHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachHandle")
            .field("engine", &self.engine)
            .field("mounts", &self.mounts.is_some())
            .finish_non_exhaustive()
    }
}

/// Stops the rbd-fuse reaper (which holds the host too) when the last handle goes, so
/// that the actor stops then.
#[derive(Debug)]
struct Life(CancellationToken);

impl Drop for Life {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// What [`spawn`] returns.
#[derive(Debug)]
pub struct Spawned {
    /// The handle (implements [`AttachModule`]).
    pub handle: AttachHandle,
    /// What start-up reconciliation cleaned.
    pub report: ReconcileReport,
    /// The actor's task; it ends when `stop` is cancelled (after the commands in flight
    /// finished, or `limits.shutdown_timeout` passed) or every handle is dropped, and ends
    /// as a panic (`JoinError::is_panic`) when a command panicked and killed the actor.
    pub task: JoinHandle<()>,
}

/// Opens the state in `config.state_dir`, reconciles it with the kernel, and starts the
/// actor with `limits`. Errors: the state file is unreadable or of another format version.
pub async fn spawn(
    config: AttachConfig,
    sys: AttachSys,
    stop: CancellationToken,
    limits: Limits,
) -> Result<Spawned, AttachError> {
    spawn_with_mounts(config, sys, None, stop, limits).await
}

/// [`spawn`] with the mount module, which is asked whether a `mount:N` holder named in
/// `Attach`, `Acquire` or `Release` is genuine (`engine/holders.rs`); while it cannot be
/// asked, such calls answer `Unavailable`. `None` leaves them unchecked: only for an
/// embedding whose callers are all trusted (the daemon always passes one).
pub async fn spawn_with_mounts(
    config: AttachConfig,
    sys: AttachSys,
    mounts: Option<Arc<dyn MountModule>>,
    stop: CancellationToken,
    limits: Limits,
) -> Result<Spawned, AttachError> {
    config.validate()?;
    let (ctx, db, report) = crate::engine::blocking(move || reconcile::open(config, sys)).await?;
    let started = imagebus_host::start("attach", State::new(db), limits, stop.clone())
        .await
        .map_err(|e| AttachError::Unavailable(format!("starting the attach actor: {e}")))?;
    let engine = Engine {
        host: started.host,
        ctx: Arc::new(ctx),
    };
    let reaper_stop = stop.child_token();
    engine
        .host
        .spawn(reap::reaper(engine.clone(), reaper_stop.clone()));
    Ok(Spawned {
        handle: AttachHandle {
            engine,
            mounts,
            _life: Arc::new(Life(reaper_stop)),
        },
        report,
        task: started.task,
    })
}

impl AttachHandle {
    /// Runs `job` with the engine as a job on `keys`.
    async fn job<R, F, Fut>(&self, keys: Vec<Key>, job: F) -> Result<R, AttachError>
    where
        R: Send + 'static,
        F: FnOnce(Engine) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<R, AttachError>> + Send + 'static,
    {
        let engine = self.engine.clone();
        let result = self
            .engine
            .host
            .mutate(keys, move |_| job(engine))
            .await
            .map_err(AttachError::from)
            .and_then(|r| r);
        if let Err(e) = &result {
            debug!(error = %e, "attach command failed");
        }
        result
    }

    /// The keys of a command on an existing attachment: its own, and that of the mapping
    /// it shares.
    async fn resolve(&self, target: &Selector) -> Result<(u64, Vec<Key>), AttachError> {
        let t = target.clone();
        let (id, of) = self.engine.read(move |s| s.resolve(&t)).await??;
        let keys = std::iter::once(id)
            .chain(of)
            .map(|i| Key::id(KIND, i))
            .collect();
        Ok((id, keys))
    }

    pub(crate) async fn attach_typed(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, AttachError> {
        let base = match &spec.source {
            AttachSource::Rbd(src) => {
                let src = RbdSource {
                    secret: Secret::redacted(),
                    ..src.clone()
                };
                self.engine.read(move |s| shared::base_for(s, &src)).await?
            }
            _ => None,
        };
        if let Some(h) = &holder {
            holders::check(self.mounts.as_ref(), h, Use::Add(None)).await?;
        }
        let keys = base.map(|b| Key::id(KIND, b)).into_iter().collect();
        self.job(
            keys,
            move |e| async move { e.attach(spec, holder, base).await },
        )
        .await
    }

    pub(crate) async fn detach_typed(
        &self,
        target: Selector,
        force: bool,
    ) -> Result<(), AttachError> {
        let (id, keys) = self.resolve(&target).await?;
        self.job(
            keys,
            move |e| async move { e.detach(id, target, force).await },
        )
        .await
    }

    pub(crate) async fn get_typed(&self, target: Selector) -> Result<AttachInfo, AttachError> {
        self.engine.read(move |s| s.get(&target)).await?
    }

    pub(crate) async fn list_typed(&self) -> Result<Vec<AttachInfo>, AttachError> {
        self.engine.read(|s| s.list()).await
    }

    pub(crate) async fn acquire_typed(
        &self,
        target: Selector,
        holder: Holder,
    ) -> Result<AttachInfo, AttachError> {
        let (id, _) = self.resolve(&target).await?;
        holders::check(self.mounts.as_ref(), &holder, Use::Add(Some(id))).await?;
        self.job(vec![Key::id(KIND, id)], move |e| async move {
            e.acquire(id, target, holder).await
        })
        .await
    }

    pub(crate) async fn release_typed(&self, id: u64, holder: Holder) -> Result<(), AttachError> {
        let keys = match self.resolve(&Selector::Id(id)).await {
            Ok((_, keys)) => keys,
            // Unknown (or still being created): already released.
            Err(AttachError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        holders::check(self.mounts.as_ref(), &holder, Use::Drop(id)).await?;
        self.job(keys, move |e| async move { e.release(id, holder).await })
            .await
    }
}

#[imagebus_bus::async_trait]
impl AttachModule for AttachHandle {
    async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, RemoteError> {
        let span = info_span!(
            "attach.attach",
            kind = spec.source.kind(),
            name = spec.name.as_deref()
        );
        Ok(self.attach_typed(spec, holder).instrument(span).await?)
    }

    async fn detach(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        let span = info_span!("attach.detach", %target, force);
        Ok(self.detach_typed(target, force).instrument(span).await?)
    }

    async fn get(&self, target: Selector) -> Result<AttachInfo, RemoteError> {
        Ok(self.get_typed(target).await?)
    }

    async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError> {
        Ok(self.list_typed().await?)
    }

    async fn acquire(&self, target: Selector, holder: Holder) -> Result<AttachInfo, RemoteError> {
        let span = info_span!("attach.acquire", %target, %holder);
        Ok(self.acquire_typed(target, holder).instrument(span).await?)
    }

    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        let span = info_span!("attach.release", id, %holder);
        Ok(self.release_typed(id, holder).instrument(span).await?)
    }
}
