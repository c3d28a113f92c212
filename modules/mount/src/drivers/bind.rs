//! `bind`: a host directory, or a directory inside another mount (its `base`, held as
//! `Holder::Mount(id)`), resolved with openat2(RESOLVE_BENEATH) so neither `..` nor a
//! symlink can lead outside the base. Read-only binds are a bind followed by a bind
//! remount with `MS_RDONLY` (for recursive binds only the top mount becomes read-only).

use super::Built;
use crate::engine::create::{Build, Undo};
use crate::error::MountError;
use crate::store::Kind;
use imagebus_schema::mount::BindMount;
use imagebus_sys::mount::MountCall;
use imagebus_sys::paths::{FileKind, ResolveFailure};
use std::path::PathBuf;

/// The calls for a bind of `source` on `target`.
pub(crate) fn calls(b: &BindMount, source: PathBuf, target: PathBuf) -> Vec<MountCall> {
    let mut calls = vec![MountCall::bind(source, &target, b.recursive)];
    if b.read_only {
        calls.push(MountCall::remount_bind_read_only(target));
    }
    calls
}

pub(crate) async fn build(m: &mut Build<'_>, id: u64, b: &BindMount) -> Result<Built, MountError> {
    let (source, children) = match &b.base {
        None => (b.path.clone(), Vec::new()),
        Some(base) => {
            let (child, base_mp) = m.child(id, base).await?;
            let (bm, rel) = (base_mp.clone(), b.path.clone());
            let real = m
                .job
                .blocking(move |sys| sys.paths.resolve_beneath(&bm, &rel))
                .await?
                .map_err(|e| match ResolveFailure::of(&e) {
                    ResolveFailure::Escapes => MountError::Escapes {
                        base: base_mp.clone(),
                        path: b.path.clone(),
                    },
                    ResolveFailure::Missing => MountError::MissingPath(base_mp.join(&b.path)),
                    ResolveFailure::Invalid => {
                        MountError::Invalid(format!("bind path {:?}: {e}", b.path))
                    }
                    ResolveFailure::Other => {
                        MountError::sys(format!("resolving {:?} in {base_mp:?}", b.path), e)
                    }
                })?;
            (real, vec![child])
        }
    };
    let src = source.clone();
    match m.job.blocking(move |sys| sys.paths.kind(&src)).await? {
        Ok(Some(FileKind::Dir)) => {}
        Ok(None) => return Err(MountError::MissingPath(source)),
        Ok(Some(_)) => {
            return Err(MountError::Invalid(format!(
                "bind source {source:?} is not a directory"
            )))
        }
        Err(e) => return Err(MountError::sys(format!("inspecting {source:?}"), e)),
    }

    let target = m.job.ctx.cfg.mountpoint(id);
    for (i, call) in calls(b, source.clone(), target.clone())
        .into_iter()
        .enumerate()
    {
        let t = target.clone();
        m.job
            .blocking(move |sys| sys.mounter.mount(&call))
            .await?
            .map_err(|source| MountError::Kernel { target: t, source })?;
        if i == 0 {
            m.undo.push(Undo::Unmount(target.clone()));
        }
    }
    Ok(Built {
        kind: Kind::Bind,
        fs_type: "none".into(),
        source,
        read_only: b.read_only,
        attachment: None,
        children,
        overlay: None,
        image: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_sys::mount::MountFlag;

    #[test]
    fn read_only_binds_remount() {
        let b = BindMount {
            path: "/srv".into(),
            base: None,
            read_only: true,
            recursive: true,
        };
        let c = calls(&b, "/srv".into(), "/m/4".into());
        assert_eq!(
            c,
            vec![
                MountCall::bind("/srv", "/m/4", true),
                MountCall::remount_bind_read_only("/m/4"),
            ]
        );
        assert!(c[0].flags.contains(&MountFlag::Recursive));
        let rw = BindMount {
            read_only: false,
            recursive: false,
            ..b
        };
        assert_eq!(calls(&rw, "/srv".into(), "/m/4".into()).len(), 1);
    }
}
