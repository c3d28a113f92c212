//! `image`: a filesystem (squashfs, erofs, ext4, xfs) on an attachment from the attach
//! module, which we hold as `Holder::Mount(id)`.

use super::Built;
use crate::engine::create::{Build, Undo};
use crate::engine::Job;
use crate::error::MountError;
use crate::store::Kind;
use imagebus_bus::ErrorCode;
use imagebus_schema::attach::AttachRef;
use imagebus_schema::mount::ImageMount;
use imagebus_schema::Holder;
use imagebus_sys::fsdetect::FsType;
use imagebus_sys::mount::{MountCall, MountFlag};

/// The mount(2) call for `img` on `device`. Read-only when asked, when the device is
/// read-only, or when the filesystem only mounts read-only.
pub(crate) fn call(
    img: &ImageMount,
    fs: FsType,
    device_read_only: bool,
    device: &std::path::Path,
    target: &std::path::Path,
) -> MountCall {
    let mut call = MountCall::fs(device, target, fs.as_str());
    let mut data = Vec::new();
    for option in &img.options {
        match MountFlag::from_option(option) {
            Some(flag) => call = call.flag(flag),
            None => data.push(option.as_str()),
        }
    }
    if img.read_only || device_read_only || fs.is_read_only() {
        call = call.flag(MountFlag::ReadOnly);
    }
    call.data(data.join(","))
}

/// After an attach call that got no answer (timeout, peer gone), the attach module may
/// still have done it: release whatever it holds for `holder` (best effort; start-up
/// reconciliation catches what this misses).
async fn release_unanswered(job: &Job, holder: &Holder) {
    let Ok(atts) = job.cleanup(|a| async move { a.list().await }).await else {
        return;
    };
    for att in atts.into_iter().filter(|a| a.holders.contains(holder)) {
        let (id, h) = (att.id, holder.clone());
        if let Err(e) = job
            .cleanup(move |a| async move { a.release(id, h).await })
            .await
        {
            tracing::warn!(attachment = id, error = %e, "releasing an unanswered attachment");
        }
    }
}

pub(crate) async fn build(
    m: &mut Build<'_>,
    id: u64,
    img: &ImageMount,
) -> Result<Built, MountError> {
    let holder = Holder::Mount(id);
    let attach = &m.job.ctx.attach;
    let att = match &img.attach {
        AttachRef::Existing(sel) => attach.acquire(sel.clone(), holder.clone()).await,
        AttachRef::Inline(spec) => attach.attach((**spec).clone(), Some(holder.clone())).await,
    };
    let att = match att {
        Ok(att) => att,
        Err(e) => {
            if matches!(e.code, ErrorCode::Timeout | ErrorCode::Unavailable) {
                release_unanswered(m.job, &holder).await;
            }
            return Err(MountError::Attach(e));
        }
    };
    m.undo.push(Undo::ReleaseAttach(att.id, holder));

    let device = att.device.clone();
    let fs = match &img.fs_type {
        Some(name) => FsType::parse(name).ok_or_else(|| MountError::UnknownFsType(name.clone()))?,
        None => {
            let dev = device.clone();
            m.job
                .blocking(move |sys| sys.probe.probe(&dev))
                .await?
                .map_err(|e| MountError::sys(format!("probing {device:?}"), e))?
                .ok_or_else(|| MountError::UndetectedFs(device.clone()))?
        }
    };
    let target = m.job.ctx.cfg.mountpoint(id);
    let call = call(img, fs, att.read_only, &device, &target);
    let read_only = call.is_read_only();
    m.job
        .blocking(move |sys| sys.mounter.mount(&call))
        .await?
        .map_err(|source| MountError::Kernel {
            target: target.clone(),
            source,
        })?;
    m.undo.push(Undo::Unmount(target));
    Ok(Built {
        kind: Kind::Image,
        fs_type: fs.as_str().to_string(),
        source: device,
        read_only,
        attachment: Some(att.id),
        children: Vec::new(),
        overlay: None,
        image: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_schema::Selector;
    use std::path::Path;

    fn img(options: &[&str], read_only: bool) -> ImageMount {
        ImageMount {
            attach: AttachRef::Existing(Selector::Id(1)),
            fs_type: None,
            options: options.iter().map(|s| s.to_string()).collect(),
            read_only,
        }
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let c = call(
            &img(&["noatime", "nouuid", "nodev"], false),
            FsType::Xfs,
            false,
            Path::new("/dev/loop1"),
            Path::new("/m/1"),
        );
        let expected = MountCall::fs("/dev/loop1", "/m/1", "xfs")
            .flag(MountFlag::NoAtime)
            .flag(MountFlag::NoDev)
            .data("nouuid");
        assert_eq!(c, expected);
    }

    #[test]
    fn read_only_is_forced_by_device_and_filesystem() {
        let dev = Path::new("/dev/loop1");
        let t = Path::new("/m/1");
        assert!(!call(&img(&[], false), FsType::Ext4, false, dev, t).is_read_only());
        assert!(call(&img(&[], true), FsType::Ext4, false, dev, t).is_read_only());
        assert!(call(&img(&[], false), FsType::Ext4, true, dev, t).is_read_only());
        assert!(call(&img(&[], false), FsType::Squashfs, false, dev, t).is_read_only());
        assert!(call(&img(&["ro"], false), FsType::Ext4, false, dev, t).is_read_only());
    }
}
