//! `Import`: the plan is read by a first job (see `actor.rs`); this one holds the keys of
//! the digest and the name, so it runs alone for this image and this name.
//!
//! 1. A step: if the digest is stored, the name is added (unless it names another image)
//!    and that is all. Otherwise the name is reserved for this digest.
//! 2. Outside the actor, on the blocking pool, bounded by the import timeout: the layers
//!    are applied in a fresh staging directory and packed (`oci/build.rs`), and the file
//!    is renamed into `images/`.
//! 3. A step inserts the record and drops the reservation; the records are written.
//!
//! On any failure the staging directory, the file and the reservation go: nothing of a
//! failed import remains (a crash leaves a staging directory or an unrecorded file, which
//! start-up reconciliation removes).

use crate::engine::{Job, State};
use crate::error::ImageError;
use crate::oci::apply::ApplyError;
use crate::oci::build::{self, BuildError};
use crate::oci::plan::Plan;
use crate::store::{now, ImageRecord};
use imagebus_schema::image::ImageInfo;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What step 1 decided.
enum Start {
    /// The image was there; the name was added.
    Tagged(Box<ImageInfo>),
    /// Build it.
    Build,
}

/// The `Import` command for a plan and a normalized name.
pub(crate) async fn import(job: &Job, plan: Plan, name: String) -> Result<ImageInfo, ImageError> {
    let (digest, n) = (plan.digest.clone(), name.clone());
    let start = job
        .step(move |st: &mut State| -> Result<Start, ImageError> {
            if let Some(owner) = st.owner(&n).filter(|o| *o != digest) {
                return Err(ImageError::NameTaken {
                    name: n,
                    digest: owner,
                });
            }
            if let Some(rec) = st.db.images.get_mut(&digest) {
                rec.names.insert(n);
                return Ok(Start::Tagged(Box::new(rec.info())));
            }
            st.reserved.insert(n, digest);
            Ok(Start::Build)
        })
        .await??;
    if let Start::Tagged(info) = start {
        job.save().await?;
        tracing::info!(digest = %info.digest, name, "image already stored; named");
        return Ok(*info);
    }
    let built = build_file(job, &plan).await;
    let n = name.clone();
    let record = match built {
        Ok((file, fs_type, size)) => ImageRecord {
            digest: plan.digest.clone(),
            names: BTreeSet::from([name.clone()]),
            fs_type,
            file,
            size,
            format: plan.format.as_str().to_string(),
            config: plan.config.clone(),
            holders: BTreeSet::new(),
            created_at: now(),
        },
        Err(e) => {
            job.step(move |st: &mut State| st.reserved.remove(&n))
                .await?;
            tracing::warn!(digest = %plan.digest, error = %e, "import failed; nothing kept");
            return Err(e);
        }
    };
    let rec = record.clone();
    job.step(move |st: &mut State| {
        st.reserved.remove(&n);
        st.db.images.insert(rec.digest.clone(), rec);
    })
    .await?;
    if let Err(e) = job.save().await {
        let (d, file) = (record.digest.clone(), record.file.clone());
        job.step(move |st: &mut State| st.db.images.remove(&d))
            .await?;
        let _ = job.blocking(move || std::fs::remove_file(file)).await;
        return Err(e);
    }
    tracing::info!(digest = %record.digest, name, fs = %record.fs_type, size = record.size, "image imported");
    Ok(record.info())
}

/// Step 2: builds the file in a fresh staging directory and moves it into the store.
/// Returns the file, its filesystem type and size; the staging directory is gone either
/// way.
async fn build_file(job: &Job, plan: &Plan) -> Result<(PathBuf, String, u64), ImageError> {
    let cfg = job.ctx.cfg.clone();
    let n = job.ctx.staging_seq.fetch_add(1, Ordering::Relaxed);
    let hex = plan.digest.trim_start_matches("sha256:").to_string();
    let staging = cfg.staging_dir().join(format!(
        "{}-{}-{n}",
        &hex[..hex.len().min(16)],
        std::process::id()
    ));
    let deadline = Instant::now() + cfg.import_timeout;
    let (plan, runner) = (plan.clone(), job.ctx.sys.runner.clone());
    let digest = plan.digest.clone();
    job.blocking(move || {
        let out = (|| {
            imagebus_sys::state::ensure_private_dir(&cfg.staging_dir())?;
            std::fs::create_dir(&staging)
                .map_err(|e| ImageError::Internal(format!("creating {staging:?}: {e}")))?;
            let built = build::build(&plan, &staging, runner.as_ref(), deadline)
                .map_err(|e| build_error(e, cfg.import_timeout))?;
            let dest = cfg.image_file(&digest, built.fs.as_str());
            std::fs::rename(&built.file, &dest)
                .map_err(|e| ImageError::Internal(format!("storing {dest:?}: {e}")))?;
            let size = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
            Ok((dest, built.fs.as_str().to_string(), size))
        })();
        if let Err(e) = imagebus_sys::state::remove_tree(&staging) {
            tracing::warn!(?staging, error = %e, "removing the staging directory");
        }
        out
    })
    .await?
}

fn build_error(e: BuildError, timeout: std::time::Duration) -> ImageError {
    match e {
        BuildError::Timeout => ImageError::Timeout(format!(
            "the import ran longer than {timeout:?}; nothing was kept"
        )),
        BuildError::Layer {
            source: ApplyError::Io { .. },
            ..
        }
        | BuildError::Io(_) => ImageError::Internal(e.to_string()),
        BuildError::Layer { .. } | BuildError::Blob(_) => ImageError::Invalid(e.to_string()),
        BuildError::Pack(m) => ImageError::Build(m),
    }
}
