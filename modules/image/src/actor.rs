//! The image actor's handle: [`ImageHandle`] implements [`ImageModule`] with one small
//! handler per method, and [`spawn`] starts it.
//!
//! `Get` and `List` are reads. `Import` parses its source, then reads the image's
//! description (index, manifest, config; a plain file is hashed) in a first job that holds
//! no key, so that its second job can hold the keys of the digest and the name:
//! `Key::name("image", digest)` and `Key::name("image-name", name)`. `Tag` holds both too;
//! `Remove`, `Acquire` and `Release` hold the digest's key (resolved with a read first).

use crate::config::{ImageSys, StoreConfig};
use crate::engine::reconcile::{self, ReconcileReport};
use crate::engine::{hold, import, remove, Ctx, Job, State};
use crate::error::ImageError;
use crate::oci::plan::{self, PlanError};
use crate::oci::source::{self, normalize_name, stem_name};
use crate::store::Store;
use imagebus_bus::RemoteError;
use imagebus_host::{Host, Key, Limits};
use imagebus_schema::image::{ImageInfo, ImageModule, ImportSpec};
use imagebus_schema::Holder;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The host's name for this actor.
const ACTOR: &str = "image";

/// Cheap to clone; the only way into the image actor.
#[derive(Debug, Clone)]
pub struct ImageHandle {
    host: Host<State>,
    ctx: Arc<Ctx>,
}

/// What [`spawn`] returns.
#[derive(Debug)]
pub struct Spawned {
    /// The handle (implements [`ImageModule`]).
    pub handle: ImageHandle,
    /// What start-up reconciliation cleaned.
    pub report: ReconcileReport,
    /// Ends when the actor does (a panic when a command panicked).
    pub task: JoinHandle<()>,
}

/// Loads the records, reconciles them with the files, then starts the actor.
pub async fn spawn(
    cfg: StoreConfig,
    sys: ImageSys,
    stop: CancellationToken,
    limits: Limits,
) -> Result<Spawned, ImageError> {
    cfg.validate()?;
    let (store, db) = Store::load(&cfg).await?;
    let ctx = Arc::new(Ctx {
        cfg,
        sys,
        store,
        staging_seq: AtomicU64::new(0),
    });
    let (state, report) = reconcile::run(ctx.clone(), State::new(db)).await?;
    let started = imagebus_host::start(ACTOR, state, limits, stop)
        .await
        .map_err(|e| ImageError::Internal(format!("starting the image actor: {e}")))?;
    Ok(Spawned {
        handle: ImageHandle {
            host: started.host,
            ctx,
        },
        report,
        task: started.task,
    })
}

fn digest_key(digest: &str) -> Key {
    Key::name(ACTOR, digest)
}

fn name_key(name: &str) -> Key {
    Key::name("image-name", name)
}

impl ImageHandle {
    async fn read<R, F>(&self, f: F) -> Result<R, ImageError>
    where
        R: Send + 'static,
        F: FnOnce(&State) -> R + Send + 'static,
    {
        Ok(self.host.read(f).await?)
    }

    async fn job<R, F, Fut>(&self, keys: Vec<Key>, f: F) -> Result<R, ImageError>
    where
        R: Send + 'static,
        F: FnOnce(Job) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, ImageError>> + Send + 'static,
    {
        let ctx = self.ctx.clone();
        self.host
            .mutate(keys, move |host| f(Job::new(ctx, host)))
            .await?
    }

    async fn resolve(&self, target: &str) -> Result<String, ImageError> {
        let t = target.to_string();
        self.read(move |st| st.find(&t)).await?
    }

    async fn import(&self, spec: ImportSpec) -> Result<ImageInfo, ImageError> {
        let src = source::parse(&spec.source).map_err(ImageError::Invalid)?;
        let given = spec
            .name
            .as_deref()
            .map(normalize_name)
            .transpose()
            .map_err(ImageError::Invalid)?;
        // Reading the description is a job of its own (no keys): it takes a mutation slot
        // like any slow work, and the keys of the second job come out of it.
        let s = src.clone();
        let plan = self
            .job(Vec::new(), move |job| async move {
                job.blocking(move || plan::plan(&s))
                    .await?
                    .map_err(|e| match e {
                        PlanError::NotFound(m) => ImageError::NotFound(m),
                        PlanError::Invalid(m) => ImageError::Invalid(m),
                    })
            })
            .await?;
        let name = match given {
            Some(n) => n,
            None => normalize_name(&plan.default_name)
                .or_else(|_| normalize_name(&stem_name(&src.path)))
                .map_err(ImageError::Invalid)?,
        };
        let keys = vec![digest_key(&plan.digest), name_key(&name)];
        self.job(keys, move |job| async move {
            import::import(&job, plan, name).await
        })
        .await
    }

    async fn tag(&self, target: String, name: String) -> Result<ImageInfo, ImageError> {
        let name = normalize_name(&name).map_err(ImageError::Invalid)?;
        let digest = self.resolve(&target).await?;
        let keys = vec![digest_key(&digest), name_key(&name)];
        self.job(keys, move |job| async move {
            remove::tag(&job, digest, name).await
        })
        .await
    }

    async fn remove(&self, target: String) -> Result<(), ImageError> {
        let digest = self.resolve(&target).await?;
        self.job(vec![digest_key(&digest)], move |job| async move {
            remove::remove(&job, target, digest).await
        })
        .await
    }

    async fn acquire(&self, target: String, holder: Holder) -> Result<ImageInfo, ImageError> {
        let digest = self.resolve(&target).await?;
        self.job(vec![digest_key(&digest)], move |job| async move {
            hold::acquire(&job, digest, holder).await
        })
        .await
    }

    async fn release(&self, digest: String, holder: Holder) -> Result<(), ImageError> {
        self.job(vec![digest_key(&digest)], move |job| async move {
            hold::release(&job, digest, holder).await
        })
        .await
    }
}

#[imagebus_bus::async_trait]
impl ImageModule for ImageHandle {
    async fn import(&self, spec: ImportSpec) -> Result<ImageInfo, RemoteError> {
        let span = tracing::info_span!("import", source = %imagebus_bus::echo(&spec.source));
        Ok(ImageHandle::import(self, spec).instrument(span).await?)
    }

    async fn get(&self, target: String) -> Result<ImageInfo, RemoteError> {
        Ok(self.read(move |st| st.get(&target)).await??)
    }

    async fn list(&self) -> Result<Vec<ImageInfo>, RemoteError> {
        Ok(self.read(State::list).await?)
    }

    async fn tag(&self, target: String, name: String) -> Result<ImageInfo, RemoteError> {
        Ok(ImageHandle::tag(self, target, name).await?)
    }

    async fn remove(&self, target: String) -> Result<(), RemoteError> {
        let span = tracing::info_span!("remove", target = %imagebus_bus::echo(&target));
        Ok(ImageHandle::remove(self, target).instrument(span).await?)
    }

    async fn acquire(&self, target: String, holder: Holder) -> Result<ImageInfo, RemoteError> {
        let span = tracing::info_span!("acquire", holder = %holder);
        Ok(ImageHandle::acquire(self, target, holder)
            .instrument(span)
            .await?)
    }

    async fn release(&self, digest: String, holder: Holder) -> Result<(), RemoteError> {
        let span = tracing::info_span!("release", holder = %holder);
        Ok(ImageHandle::release(self, digest, holder)
            .instrument(span)
            .await?)
    }
}
