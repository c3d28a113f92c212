//! Checks a whole (possibly nested) mount spec before anything is created, so that bad
//! input fails without side effects. Runs in a step of the create (it reads the state);
//! the same step reserves the names and persistent overlay directories it found
//! ([`Plan`]). Checks that need the kernel (does the file exist, what filesystem is on the
//! device, does a path escape its base) happen later and are undone on failure.

use crate::config::has_overlay_unsafe_chars;
use crate::engine::State;
use crate::error::MountError;
use imagebus_schema::attach::{AttachRef, AttachSource};
use imagebus_schema::common::{no_nul, no_nul_path, validate_name};
use imagebus_schema::mount::{MountRef, MountSource, MountSpec};
use imagebus_sys::fsdetect::FsType;
use imagebus_sys::mount::MountFlag;
use imagebus_sys::paths::{is_plain_absolute, is_plain_relative};
use std::collections::HashSet;
use std::path::PathBuf;

/// overlayfs refuses more lower layers than this (`OVL_MAX_STACK`).
pub const MAX_LOWERS: usize = 500;

/// How deeply inline specs may nest.
pub const MAX_DEPTH: usize = 16;

/// Image mount options passed to the filesystem as data (besides the flag options of
/// `MountFlag::from_option`).
const DATA_OPTIONS: &[&str] = &[
    "norecovery",
    "noload",
    "nouuid",
    "discard",
    "nodiscard",
    "errors=remount-ro",
    "errors=continue",
    "acl",
    "noacl",
    "user_xattr",
    "nouser_xattr",
];

/// Whether an image mount option is on the safe list.
pub fn option_allowed(option: &str) -> bool {
    MountFlag::from_option(option).is_some() || DATA_OPTIONS.contains(&option)
}

/// What a valid spec will create: to be reserved in the step that checked it.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Mounts the call creates (the spec and its inline children).
    pub(crate) mounts: usize,
    /// Names of the mounts it creates.
    pub(crate) names: HashSet<String>,
    /// Persistent overlay directories it uses.
    pub(crate) persist_dirs: HashSet<PathBuf>,
}

/// Validates `spec` against the current state.
pub(crate) fn check(spec: &MountSpec, db: &State) -> Result<Plan, MountError> {
    let mut walk = Plan::default();
    spec_ok(spec, db, &mut walk, 0)?;
    Ok(walk)
}

/// The names in `spec` and its inline children (the keys a create locks), without
/// validating anything; stops below [`MAX_DEPTH`].
pub(crate) fn names(spec: &MountSpec) -> Vec<String> {
    fn walk(spec: &MountSpec, depth: usize, out: &mut Vec<String>) {
        if depth > MAX_DEPTH {
            return;
        }
        out.extend(spec.name.iter().cloned());
        let refs: Vec<&MountRef> = match &spec.source {
            MountSource::Image(_) | MountSource::Stored(_) => Vec::new(),
            MountSource::Overlay(ov) => ov.lowers.iter().collect(),
            MountSource::Bind(b) => b.base.iter().map(|b| &**b).collect(),
        };
        for r in refs {
            if let MountRef::Inline(child) = r {
                walk(child, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(spec, 0, &mut out);
    out
}

fn spec_ok(spec: &MountSpec, db: &State, walk: &mut Plan, depth: usize) -> Result<(), MountError> {
    if depth > MAX_DEPTH {
        return Err(MountError::Invalid(format!(
            "specs nest deeper than {MAX_DEPTH} levels"
        )));
    }
    walk.mounts += 1;
    if let Some(name) = &spec.name {
        validate_name(name).map_err(MountError::Invalid)?;
        if db.name_taken(name) || !walk.names.insert(name.clone()) {
            return Err(MountError::NameTaken(name.clone()));
        }
    }
    match &spec.source {
        MountSource::Image(img) => {
            if let Some(fs) = &img.fs_type {
                FsType::parse(fs).ok_or_else(|| MountError::UnknownFsType(fs.clone()))?;
            }
            if let Some(bad) = img.options.iter().find(|o| !option_allowed(o)) {
                return Err(MountError::Invalid(format!(
                    "mount option {bad:?} is not allowed"
                )));
            }
            if let AttachRef::Inline(att) = &img.attach {
                if let Some(name) = &att.name {
                    validate_name(name).map_err(MountError::Invalid)?;
                }
                // The attach module checks the rest; a NUL byte fails here, before
                // anything of the chain is made.
                match &att.source {
                    AttachSource::Loop(l) => no_nul_path("image file", &l.path),
                    AttachSource::Local(l) => no_nul_path("device", &l.path),
                    AttachSource::Rbd(_) => Ok(()),
                }
                .map_err(MountError::Invalid)?;
            }
        }
        MountSource::Stored(st) => {
            if st.image.is_empty() || st.image.len() > 512 {
                return Err(MountError::Invalid(
                    "a stored image reference must be 1 to 512 characters long".into(),
                ));
            }
            no_nul("image", &st.image).map_err(MountError::Invalid)?;
            if let Some(bad) = st.options.iter().find(|o| !option_allowed(o)) {
                return Err(MountError::Invalid(format!(
                    "mount option {bad:?} is not allowed"
                )));
            }
        }
        MountSource::Overlay(ov) => {
            if ov.lowers.is_empty() {
                return Err(MountError::Invalid(
                    "an overlay needs at least one lower".into(),
                ));
            }
            if ov.lowers.len() > MAX_LOWERS {
                return Err(MountError::Invalid(format!(
                    "an overlay takes at most {MAX_LOWERS} lowers, got {}",
                    ov.lowers.len()
                )));
            }
            if let Some(dir) = &ov.persist_dir {
                no_nul_path("persist_dir", dir).map_err(MountError::Invalid)?;
                if !is_plain_absolute(dir) || has_overlay_unsafe_chars(dir) {
                    return Err(MountError::Invalid(format!(
                        "persist_dir {dir:?} must be absolute, without '..', ',', ':' or '\\'"
                    )));
                }
                if db.persist_dir_in_use(dir) || !walk.persist_dirs.insert(dir.clone()) {
                    return Err(MountError::PersistDirBusy(dir.clone()));
                }
            }
            for lower in &ov.lowers {
                ref_ok(lower, db, walk, depth)?;
            }
        }
        MountSource::Bind(bind) => match &bind.base {
            _ if bind.path.as_os_str().as_encoded_bytes().contains(&0) => {
                no_nul_path("bind path", &bind.path).map_err(MountError::Invalid)?;
            }
            None if !is_plain_absolute(&bind.path) => {
                return Err(MountError::Invalid(format!(
                    "bind path {:?} must be absolute without '..' (or give a base mount)",
                    bind.path
                )));
            }
            None => {}
            Some(base) => {
                if !is_plain_relative(&bind.path) {
                    return Err(MountError::Invalid(format!(
                        "bind path {:?} must be relative to its base, without '..'",
                        bind.path
                    )));
                }
                ref_ok(base, db, walk, depth)?;
            }
        },
    }
    Ok(())
}

fn ref_ok(r: &MountRef, db: &State, walk: &mut Plan, depth: usize) -> Result<(), MountError> {
    match r {
        MountRef::Existing(sel) => {
            db.find(sel)
                .ok_or_else(|| MountError::NotFound(sel.clone()))?;
            Ok(())
        }
        MountRef::Inline(spec) => spec_ok(spec, db, walk, depth + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_schema::attach::{AttachSource, AttachSpec, LoopSource};
    use imagebus_schema::mount::{BindMount, ImageMount, OverlayMount};
    use imagebus_schema::Selector;

    fn image(name: Option<&str>) -> MountSpec {
        MountSpec {
            name: name.map(str::to_string),
            source: MountSource::Image(ImageMount {
                attach: AttachRef::Inline(Box::new(AttachSpec {
                    name: None,
                    source: AttachSource::Loop(LoopSource {
                        path: "/a.sqsh".into(),
                        read_only: true,
                    }),
                })),
                fs_type: None,
                options: vec![],
                read_only: true,
            }),
        }
    }

    fn overlay(lowers: Vec<MountRef>) -> MountSpec {
        MountSpec {
            name: None,
            source: MountSource::Overlay(OverlayMount {
                lowers,
                persist_dir: None,
            }),
        }
    }

    fn inline(s: MountSpec) -> MountRef {
        MountRef::Inline(Box::new(s))
    }

    /// Issue 10: a NUL byte in a path (a zos RootFS is a bind path) was an internal
    /// error from the syscall; it is invalid input, refused before anything is made.
    #[test]
    fn nul_bytes_in_paths_are_invalid() {
        let bind = |path: &str| MountSpec {
            name: None,
            source: MountSource::Bind(BindMount {
                path: path.into(),
                base: None,
                read_only: false,
                recursive: true,
            }),
        };
        let mut img = image(None);
        if let MountSource::Image(i) = &mut img.source {
            if let AttachRef::Inline(a) = &mut i.attach {
                a.source = AttachSource::Loop(LoopSource {
                    path: "/a\0.sqsh".into(),
                    read_only: true,
                });
            }
        }
        let mut persist = overlay(vec![inline(image(None))]);
        if let MountSource::Overlay(o) = &mut persist.source {
            o.persist_dir = Some("/var/p\0".into());
        }
        for spec in [bind("/srv/root\0fs"), overlay(vec![inline(img)]), persist] {
            let err = check(&spec, &State::default()).unwrap_err();
            assert!(matches!(err, MountError::Invalid(_)), "{err}");
            assert!(err.to_string().contains("NUL"), "{err}");
        }
    }

    #[test]
    fn nested_specs_are_counted() {
        let spec = overlay(vec![inline(image(Some("a"))), inline(image(Some("b")))]);
        assert_eq!(check(&spec, &State::default()).unwrap().mounts, 3);
        assert_eq!(names(&spec), ["a", "b"]);
    }

    #[test]
    fn bad_specs_are_refused() {
        let db = State::default();
        assert!(matches!(
            check(&overlay(vec![]), &db),
            Err(MountError::Invalid(_))
        ));
        let dup = overlay(vec![inline(image(Some("a"))), inline(image(Some("a")))]);
        assert!(matches!(check(&dup, &db), Err(MountError::NameTaken(_))));
        let unknown = overlay(vec![MountRef::Existing(Selector::Id(4))]);
        assert!(matches!(check(&unknown, &db), Err(MountError::NotFound(_))));
        let mut fs = image(None);
        if let MountSource::Image(i) = &mut fs.source {
            i.fs_type = Some("vfat".into());
        }
        assert!(matches!(check(&fs, &db), Err(MountError::UnknownFsType(_))));
        let mut opt = image(None);
        if let MountSource::Image(i) = &mut opt.source {
            i.options = vec!["noatime".into(), "suid".into()];
        }
        assert!(matches!(check(&opt, &db), Err(MountError::Invalid(_))));
        let bind = |path: &str, base: Option<MountRef>| MountSpec {
            name: None,
            source: MountSource::Bind(BindMount {
                path: path.into(),
                base: base.map(Box::new),
                read_only: false,
                recursive: false,
            }),
        };
        assert!(check(&bind("/srv", None), &db).is_ok());
        assert!(check(&bind("srv", None), &db).is_err());
        assert!(check(&bind("/srv/../etc", None), &db).is_err());
        assert!(check(&bind("a/../../x", Some(inline(image(None)))), &db).is_err());
        assert!(check(&bind("/x", Some(inline(image(None)))), &db).is_err());
        assert_eq!(
            check(&bind("etc", Some(inline(image(None)))), &db)
                .unwrap()
                .mounts,
            2
        );
        let persist = |dir: &str| MountSpec {
            name: None,
            source: MountSource::Overlay(OverlayMount {
                lowers: vec![inline(image(None))],
                persist_dir: Some(dir.into()),
            }),
        };
        assert!(check(&persist("/var/keep"), &db).is_ok());
        assert!(check(&persist("/var/a:b"), &db).is_err());
        assert!(check(&persist("keep"), &db).is_err());
        let mut deep = image(None);
        for _ in 0..=MAX_DEPTH {
            deep = overlay(vec![inline(deep)]);
        }
        assert!(matches!(check(&deep, &db), Err(MountError::Invalid(_))));
    }

    #[test]
    fn reserved_names_and_directories_are_taken() {
        let mut db = State::default();
        db.names.insert("a".into());
        db.persist_dirs.insert("/var/keep".into());
        assert!(matches!(
            check(&image(Some("a")), &db),
            Err(MountError::NameTaken(_))
        ));
        let persist = MountSpec {
            name: None,
            source: MountSource::Overlay(OverlayMount {
                lowers: vec![inline(image(None))],
                persist_dir: Some("/var/keep".into()),
            }),
        };
        assert!(matches!(
            check(&persist, &db),
            Err(MountError::PersistDirBusy(_))
        ));
        let plan = check(&image(Some("b")), &db).unwrap();
        assert!(plan.names.contains("b"));
    }
}
