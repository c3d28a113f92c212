//! The host side of a deployment: its unit (`<zinit-dir>/NAME.yaml`, or
//! `<systemd-unit-dir>/NAME.service` on a systemd host), its `hostfs/` files and its tmpfiles
//! lines. Every path made is journaled first (`store::journal_add`); applying a
//! deployment removes the journaled paths it does not want (those of the other
//! deployment) and makes the ones it does, so it is idempotent and is what start-up
//! reconciliation re-runs. A `hostfs/` file that exists and is not journaled is not ours:
//! `Conflict`, checked for every file before anything is written.

use crate::config::SysConfig;
use crate::engine::tmpfiles::{self, Line};
use crate::error::SysError;
use crate::store::{self, Entry, Info, Kind};
use imagebus_schema::syscontainer::Supervisor;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Makes the host match `info` (slot checkout at `rootfs`).
pub fn apply(cfg: &SysConfig, name: &str, info: &Info, rootfs: &Path) -> Result<(), SysError> {
    let lines = tmpfiles::parse(&info.tmpfiles.join("\n")).map_err(SysError::Invalid)?;
    let journal = store::journal(cfg, name)?;
    let owned: BTreeSet<PathBuf> = journal.iter().map(|e| e.path.clone()).collect();
    let unit = cfg.unit_path(name, info.supervisor);
    let unit_text = match info.supervisor {
        Supervisor::Systemd => info.service.clone().ok_or_else(|| {
            SysError::Internal(format!("{name}: a systemd deployment without its unit"))
        })?,
        Supervisor::Zinit | Supervisor::Imagebusd => info.unit.clone(),
    };
    let src_root = rootfs.join("exports/hostfs");
    let targets: Vec<(PathBuf, PathBuf)> = info
        .hostfs
        .iter()
        .map(|rel| (src_root.join(rel), cfg.host_root.join(rel)))
        .collect();

    // 1. Nothing of anyone else's is in the way.
    if exists(&unit) && !owned.contains(&unit) {
        return Err(SysError::Conflict(format!(
            "unit {} exists and is not this system container's",
            unit.display()
        )));
    }
    for (src, dst) in &targets {
        let src_dir = meta(src)?.is_dir();
        match std::fs::symlink_metadata(dst) {
            Ok(m) if src_dir && m.is_dir() => {}
            Ok(_) if owned.contains(dst) => {}
            Ok(_) => {
                return Err(SysError::Conflict(format!(
                    "host file {} exists and is not this system container's",
                    dst.display()
                )))
            }
            Err(_) => {}
        }
    }
    for l in &lines {
        if !store::inside(&cfg.host_root, &l.path) {
            return Err(SysError::Invalid(format!(
                "tmpfiles path {} is outside the host root {}",
                l.path.display(),
                cfg.host_root.display()
            )));
        }
    }

    // 2. What this deployment does not want goes (the other deployment's).
    let mut wanted: BTreeSet<PathBuf> = BTreeSet::from([unit.clone()]);
    wanted.extend(targets.iter().map(|(_, d)| d.clone()));
    for l in &lines {
        wanted.extend(ancestors_in(&cfg.host_root, &l.path));
    }
    let mut kept = Vec::new();
    for e in journal.iter().rev() {
        if wanted.contains(&e.path) {
            kept.push(e.clone());
        } else {
            remove_entry(e);
        }
    }
    kept.reverse();
    store::journal_set(cfg, name, &kept)?;
    let mut owned: BTreeSet<PathBuf> = kept.iter().map(|e| e.path.clone()).collect();
    let mut add = |kind: Kind, path: &Path| -> Result<bool, SysError> {
        if owned.contains(path) {
            return Ok(false);
        }
        store::journal_add(
            cfg,
            name,
            &Entry {
                kind,
                path: path.to_path_buf(),
            },
        )?;
        owned.insert(path.to_path_buf());
        Ok(true)
    };

    // 3. Make what it wants.
    if let Some(dir) = unit.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SysError::io("mkdir", dir, e))?;
    }
    add(Kind::File, &unit)?;
    imagebus_sys::state::write_atomic(&unit, unit_text.as_bytes(), 0o644)?;
    for (src, dst) in &targets {
        copy_one(src, dst, &mut add)?;
    }
    for l in &lines {
        apply_line(cfg, l, &mut add)?;
    }
    Ok(())
}

/// Removes every journaled path of `name`, newest first, and the journal.
pub fn remove_all(cfg: &SysConfig, name: &str) -> Result<(), SysError> {
    for e in store::journal(cfg, name)?.iter().rev() {
        remove_entry(e);
    }
    store::journal_set(cfg, name, &[])
}

fn remove_entry(e: &Entry) {
    let r = match e.kind {
        Kind::File => std::fs::remove_file(&e.path),
        Kind::Dir => std::fs::remove_dir(&e.path),
        Kind::Tree => std::fs::remove_dir_all(&e.path),
    };
    if let Err(err) = r {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %e.path.display(), error = %err, "host path not removed");
        }
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

fn meta(p: &Path) -> Result<std::fs::Metadata, SysError> {
    std::fs::symlink_metadata(p).map_err(|e| SysError::io("stat", p, e))
}

/// `path` and its parents below `root`, outermost first.
fn ancestors_in(root: &Path, path: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = path
        .ancestors()
        .take_while(|a| a.starts_with(root) && *a != root)
        .map(Path::to_path_buf)
        .collect();
    v.reverse();
    v
}

type Add<'a> = dyn FnMut(Kind, &Path) -> Result<bool, SysError> + 'a;

/// Copies one `hostfs/` entry (a directory, a file or a symlink, never followed).
fn copy_one(src: &Path, dst: &Path, add: &mut Add<'_>) -> Result<(), SysError> {
    let m = meta(src)?;
    let mode = m.permissions().mode() & 0o7777;
    if m.is_dir() {
        if !exists(dst) {
            add(Kind::Dir, dst)?;
            std::fs::create_dir(dst).map_err(|e| SysError::io("mkdir", dst, e))?;
            set_mode(dst, mode)?;
        }
    } else if m.file_type().is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| SysError::io("readlink", src, e))?;
        add(Kind::File, dst)?;
        let _ = std::fs::remove_file(dst);
        std::os::unix::fs::symlink(&target, dst).map_err(|e| SysError::io("symlink", dst, e))?;
    } else if m.is_file() {
        let bytes = std::fs::read(src).map_err(|e| SysError::io("read", src, e))?;
        add(Kind::File, dst)?;
        imagebus_sys::state::write_atomic(dst, &bytes, mode)?;
    } else {
        return Err(SysError::Invalid(format!(
            "hostfs entry {} is not a file, directory or symlink",
            src.display()
        )));
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<(), SysError> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| SysError::io("chmod", p, e))
}

fn chown(p: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), SysError> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    std::os::unix::fs::lchown(p, uid, gid).map_err(|e| SysError::io("chown", p, e))
}

fn apply_line(cfg: &SysConfig, l: &Line, add: &mut Add<'_>) -> Result<(), SysError> {
    let p = &l.path;
    match l.kind {
        'd' | 'D' => {
            for a in ancestors_in(&cfg.host_root, p) {
                if exists(&a) {
                    continue;
                }
                let kind = if a == *p && l.kind == 'D' {
                    Kind::Tree
                } else {
                    Kind::Dir
                };
                add(kind, &a)?;
                std::fs::create_dir(&a).map_err(|e| SysError::io("mkdir", &a, e))?;
            }
            set_mode(p, l.mode.unwrap_or(0o755))?;
            chown(p, l.uid, l.gid)?;
        }
        'f' => {
            make_parents(cfg, p, add)?;
            if !exists(p) {
                add(Kind::File, p)?;
                let text = l.arg.clone().unwrap_or_default();
                imagebus_sys::state::write_atomic(p, text.as_bytes(), l.mode.unwrap_or(0o644))?;
                chown(p, l.uid, l.gid)?;
            }
        }
        'L' => {
            make_parents(cfg, p, add)?;
            if !exists(p) {
                add(Kind::File, p)?;
                let target = l.arg.clone().unwrap_or_default();
                std::os::unix::fs::symlink(&target, p)
                    .map_err(|e| SysError::io("symlink", p, e))?;
            }
        }
        'Z' => {
            if exists(p) {
                walk(p, &mut |q: &Path| {
                    let m = meta(q)?;
                    if !m.file_type().is_symlink() {
                        if let Some(mode) = l.mode {
                            set_mode(q, mode)?;
                        }
                    }
                    chown(q, l.uid, l.gid)
                })?;
            }
        }
        other => {
            return Err(SysError::Invalid(format!(
                "tmpfiles type {other:?} is not supported"
            )))
        }
    }
    Ok(())
}

/// The missing directories between the host root and `p`'s parent, journaled.
fn make_parents(cfg: &SysConfig, p: &Path, add: &mut Add<'_>) -> Result<(), SysError> {
    let Some(parent) = p.parent() else {
        return Ok(());
    };
    for a in ancestors_in(&cfg.host_root, parent) {
        if !exists(&a) {
            add(Kind::Dir, &a)?;
            std::fs::create_dir(&a).map_err(|e| SysError::io("mkdir", &a, e))?;
        }
    }
    Ok(())
}

fn walk(p: &Path, f: &mut dyn FnMut(&Path) -> Result<(), SysError>) -> Result<(), SysError> {
    f(p)?;
    if meta(p)?.is_dir() {
        let rd = std::fs::read_dir(p).map_err(|e| SysError::io("read directory", p, e))?;
        for e in rd.flatten() {
            walk(&e.path(), f)?;
        }
    }
    Ok(())
}

/// The entries of `dir` (an image's `exports/hostfs`), relative, parents first; symlinks
/// are entries, never followed.
pub fn list_tree(dir: &Path) -> Result<Vec<PathBuf>, SysError> {
    let mut out = Vec::new();
    fn rec(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SysError> {
        let rd = std::fs::read_dir(dir).map_err(|e| SysError::io("read directory", dir, e))?;
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let rel = p
                .strip_prefix(root)
                .map_err(|e| SysError::Internal(e.to_string()))?
                .to_path_buf();
            out.push(rel);
            if meta(&p)?.is_dir() {
                rec(root, &p, out)?;
            }
        }
        Ok(())
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => rec(dir, dir, &mut out)?,
        Ok(_) => {
            return Err(SysError::Invalid(
                "/exports/hostfs is not a directory".to_string(),
            ))
        }
        Err(_) => {}
    }
    Ok(out)
}
