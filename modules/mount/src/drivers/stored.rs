//! `stored`: an image of the image store (`image.image@1`). The image is acquired as
//! `Holder::Mount(id)` (so the store refuses to remove it while it is mounted), its file is
//! attached read-only on a loop device (also held as `Holder::Mount(id)`) and mounted like
//! any image mount. Both are released when the mount goes.

use super::Built;
use crate::drivers::image;
use crate::engine::create::{Build, Undo};
use crate::error::MountError;
use imagebus_schema::attach::{AttachRef, AttachSource, AttachSpec, LoopSource};
use imagebus_schema::mount::{ImageMount, StoredMount};
use imagebus_schema::Holder;

pub(crate) async fn build(
    m: &mut Build<'_>,
    id: u64,
    st: &StoredMount,
) -> Result<Built, MountError> {
    let holder = Holder::Mount(id);
    let images = m.job.images()?;
    let info = images
        .acquire(st.image.clone(), holder.clone())
        .await
        .map_err(MountError::Image)?;
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
