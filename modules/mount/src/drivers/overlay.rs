//! `overlay`: lower mounts (existing or inline) joined in the given order, with upper and
//! work directories that are ephemeral (`<run_dir>/overlays/<id>`, removed on unmount) or
//! kept under a caller-given `persist_dir`.
//!
//! The options go through mount(2), whose data is one page: `lowerdir=` with our
//! `<run_dir>/mounts/<id>` paths fits about 150 lowers under `/run/imagebus`; beyond
//! 4095 bytes the call is refused with `InvalidArgument` before reaching the kernel.

use super::Built;
use crate::config::MountConfig;
use crate::engine::create::{Build, Undo};
use crate::error::MountError;
use crate::store::{Kind, OverlayDirs};
use imagebus_schema::mount::OverlayMount;
use imagebus_sys::mount::{MountCall, MAX_DATA_LEN};
use imagebus_sys::paths::FileKind;
use std::path::{Path, PathBuf};

/// The overlayfs options for `lowers` (uppermost first) and the upper/work directories.
pub(crate) fn options(lowers: &[PathBuf], dirs: &OverlayDirs) -> Result<String, MountError> {
    let joined: Vec<String> = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        joined.join(":"),
        dirs.upper.to_string_lossy(),
        dirs.work.to_string_lossy()
    );
    if data.len() > MAX_DATA_LEN {
        return Err(MountError::Invalid(format!(
            "{} lowers make {} bytes of overlay options; mount(2) takes at most {MAX_DATA_LEN}",
            lowers.len(),
            data.len()
        )));
    }
    Ok(data)
}

/// Creates the upper and work directories; returns them and whether `root` was created
/// by us (then it is removed on undo).
fn make_dirs(cfg: &MountConfig, id: u64, persist: Option<&Path>) -> (PathBuf, OverlayDirs) {
    match persist {
        None => {
            let root = cfg.overlay_dir(id);
            let dirs = OverlayDirs {
                upper: root.join("upper"),
                work: root.join("work"),
                ephemeral_root: Some(root.clone()),
            };
            (root, dirs)
        }
        Some(dir) => {
            let dirs = OverlayDirs {
                upper: dir.join("upper"),
                work: dir.join("work"),
                ephemeral_root: None,
            };
            (dir.to_path_buf(), dirs)
        }
    }
}

pub(crate) async fn build(
    m: &mut Build<'_>,
    id: u64,
    ov: &OverlayMount,
) -> Result<Built, MountError> {
    let mut children = Vec::with_capacity(ov.lowers.len());
    let mut lowers = Vec::with_capacity(ov.lowers.len());
    for lower in &ov.lowers {
        let (child, mountpoint) = m.child(id, lower).await?;
        if children.contains(&child) {
            return Err(MountError::Invalid(format!(
                "mount {child} is given twice as a lower"
            )));
        }
        children.push(child);
        lowers.push(mountpoint);
    }
    let cfg = &m.job.ctx.cfg;
    let (root, dirs) = make_dirs(cfg, id, ov.persist_dir.as_deref());
    let data = options(&lowers, &dirs)?;

    let ephemeral = dirs.ephemeral_root.is_some();
    let parent = cfg.overlays_dir();
    let target = cfg.mountpoint(id);
    let (r, d) = (root.clone(), dirs.clone());
    let created_root = m
        .job
        .blocking(move |sys| -> Result<bool, MountError> {
            let err = |what: &str, e| MountError::sys(format!("creating {what} {r:?}"), e);
            let existed = match sys.paths.kind(&r).map_err(|e| err("overlay dir", e))? {
                None => false,
                Some(FileKind::Dir) if !ephemeral => true,
                Some(_) if !ephemeral => {
                    return Err(MountError::Invalid(format!(
                        "persist_dir {r:?} is not a directory"
                    )))
                }
                Some(_) => {
                    return Err(MountError::Internal(format!(
                        "stale overlay directory {r:?}"
                    )))
                }
            };
            if ephemeral {
                sys.paths
                    .create_dir_all(&parent, 0o700)
                    .map_err(|e| err("overlays dir", e))?;
            }
            sys.paths
                .create_dir_all(&r, 0o700)
                .map_err(|e| err("overlay dir", e))?;
            sys.paths
                .create_dir_all(&d.upper, 0o755)
                .map_err(|e| err("upper dir", e))?;
            sys.paths
                .create_dir_all(&d.work, 0o700)
                .map_err(|e| err("work dir", e))?;
            Ok(!existed)
        })
        .await??;
    if created_root {
        m.undo.push(Undo::RemoveTree(root));
    }

    let call = MountCall::fs("overlay", &target, "overlay").data(data);
    m.job
        .blocking(move |sys| sys.mounter.mount(&call))
        .await?
        .map_err(|source| MountError::Kernel {
            target: target.clone(),
            source,
        })?;
    m.undo.push(Undo::Unmount(target));
    Ok(Built {
        kind: Kind::Overlay,
        fs_type: "overlay".into(),
        source: PathBuf::from("overlay"),
        read_only: false,
        attachment: None,
        children,
        overlay: Some(dirs),
        image: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_keep_their_order_and_length_is_bounded() {
        let dirs = OverlayDirs {
            upper: "/r/overlays/3/upper".into(),
            work: "/r/overlays/3/work".into(),
            ephemeral_root: Some("/r/overlays/3".into()),
        };
        let data = options(&["/r/mounts/1".into(), "/r/mounts/2".into()], &dirs).unwrap();
        assert_eq!(
            data,
            "lowerdir=/r/mounts/1:/r/mounts/2,upperdir=/r/overlays/3/upper,workdir=/r/overlays/3/work"
        );
        let many: Vec<PathBuf> = (0..400)
            .map(|i| PathBuf::from(format!("/run/imagebus/mounts/{i}")))
            .collect();
        assert!(matches!(options(&many, &dirs), Err(MountError::Invalid(_))));
    }
}
