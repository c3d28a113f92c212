//! `Remove` and `Tag`.

use crate::engine::{Job, State};
use crate::error::ImageError;
use crate::oci::source::normalize_name;
use imagebus_schema::image::ImageInfo;

/// What a remove decided in its step.
enum Removed {
    /// Only the name went.
    Untagged,
    /// The record went; the file is to be deleted.
    Image(std::path::PathBuf),
}

/// Removes the name `target` if the image has other names, else the image (refused while
/// it has holders).
pub(crate) async fn remove(job: &Job, target: String, digest: String) -> Result<(), ImageError> {
    let name = normalize_name(&target).ok();
    let decided = job
        .step(move |st: &mut State| {
            let rec = st
                .db
                .images
                .get_mut(&digest)
                .ok_or_else(|| ImageError::NotFound(format!("image {digest}")))?;
            if let Some(name) = name.filter(|n| rec.names.contains(n) && rec.names.len() > 1) {
                rec.names.remove(&name);
                return Ok(Removed::Untagged);
            }
            if !rec.holders.is_empty() {
                return Err(ImageError::InUse {
                    digest,
                    holders: rec.holders.iter().cloned().collect(),
                });
            }
            let file = rec.file.clone();
            st.db.images.remove(&digest);
            Ok(Removed::Image(file))
        })
        .await??;
    job.save().await?;
    if let Removed::Image(file) = decided {
        let f = file.clone();
        job.blocking(move || imagebus_sys::state::remove_file(&f))
            .await?
            .map_err(ImageError::State)?;
        tracing::info!(?file, "image removed");
    }
    Ok(())
}

/// Adds the (normalized) `name` to image `digest`.
pub(crate) async fn tag(job: &Job, digest: String, name: String) -> Result<ImageInfo, ImageError> {
    let info = job
        .step(move |st: &mut State| {
            if let Some(owner) = st.owner(&name).filter(|o| *o != digest) {
                return Err(ImageError::NameTaken {
                    name,
                    digest: owner,
                });
            }
            let rec = st
                .db
                .images
                .get_mut(&digest)
                .ok_or_else(|| ImageError::NotFound(format!("image {digest}")))?;
            rec.names.insert(name);
            Ok(rec.info())
        })
        .await??;
    job.save().await?;
    Ok(info)
}
