//! `stored`: an image of the image store (`image.image@1`). The image is acquired as
//! `Holder::Mount(id)` (so the store refuses to remove it while it is mounted), its file is
//! attached read-only on a loop device (also held as `Holder::Mount(id)`) and mounted like
//! any image mount. Both are released when the mount goes.

use super::Built;
use crate::drivers::image;
use crate::engine::create::{Build, Undo};
use crate::engine::Job;
use crate::error::MountError;
use imagebus_bus::ErrorCode;
use imagebus_schema::attach::{AttachRef, AttachSource, AttachSpec, LoopSource};
use imagebus_schema::mount::{ImageMount, StoredMount};
use imagebus_schema::Holder;

/// After an acquire that got no answer, the image store may still have done it: drop
/// `holder` from every image that has it (best effort; start-up reconciliation catches
/// what this misses).
async fn release_unanswered(job: &Job, holder: &Holder) {
    let Ok(images) = job.images() else { return };
    let listed = imagebus_bus::deadline::unbounded(images.list()).await;
    let Ok(list) = listed else { return };
    for img in list.into_iter().filter(|i| i.holders.contains(holder)) {
        let released = job.release_image(img.digest.clone(), holder.clone()).await;
        if let Err(e) = released {
            tracing::warn!(image = %img.digest, error = %e, "releasing an unanswered image");
        }
    }
}

pub(crate) async fn build(
    m: &mut Build<'_>,
    id: u64,
    st: &StoredMount,
) -> Result<Built, MountError> {
    let holder = Holder::Mount(id);
    let images = m.job.images()?;
    let info = match images.acquire(st.image.clone(), holder.clone()).await {
        Ok(info) => info,
        Err(e) => {
            if matches!(e.code, ErrorCode::Timeout | ErrorCode::Unavailable) {
                release_unanswered(m.job, &holder).await;
            }
            return Err(MountError::Image(e));
        }
    };
    m.undo.push(Undo::ReleaseImage(info.digest.clone(), holder));
    let img = ImageMount {
        attach: AttachRef::Inline(Box::new(AttachSpec {
            name: None,
            source: AttachSource::Loop(LoopSource {
                path: info.file.clone(),
                read_only: true,
            }),
        })),
        fs_type: Some(info.fs_type.clone()),
        options: st.options.clone(),
        read_only: true,
    };
    let mut built = image::build(m, id, &img).await?;
    built.image = Some(info.digest);
    Ok(built)
}
