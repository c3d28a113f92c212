//! `Acquire` and `Release`: the holders of an image (mounts using it).

use crate::engine::{Job, State};
use crate::error::ImageError;
use imagebus_schema::image::ImageInfo;
use imagebus_schema::Holder;

/// Adds `holder` to image `digest` (idempotent).
pub(crate) async fn acquire(
    job: &Job,
    digest: String,
    holder: Holder,
) -> Result<ImageInfo, ImageError> {
    let (info, added) = job
        .step(move |st: &mut State| {
            let rec = st
                .db
                .images
                .get_mut(&digest)
                .ok_or_else(|| ImageError::NotFound(format!("image {digest}")))?;
            let added = rec.holders.insert(holder);
            Ok::<_, ImageError>((rec.info(), added))
        })
        .await??;
    if added {
        job.save().await?;
    }
    Ok(info)
}

/// Drops `holder` from image `digest` (idempotent; an unknown image is fine).
pub(crate) async fn release(job: &Job, digest: String, holder: Holder) -> Result<(), ImageError> {
    let removed = job
        .step(move |st: &mut State| {
            st.db
                .images
                .get_mut(&digest)
                .is_some_and(|r| r.holders.remove(&holder))
        })
        .await?;
    if removed {
        job.save().await?;
    }
    Ok(())
}
