//! Applies OCI layer tars, in order, onto a staging root directory.
//!
//! Every entry path is checked before anything is written: it must be relative (a
//! leading `./` is fine) and free of `..`; an absolute path is refused. Its parent directory is then resolved inside the
//! root with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) (`imagebus_sys::paths`), so
//! a symlink planted by an earlier entry or layer that points outside the root (absolute,
//! or climbing with `..`) makes the entry fail with [`ApplyError::Escapes`] instead of
//! being followed. The last component is never followed: whatever is there is removed
//! first (a directory over a directory is kept), and files are created with `O_EXCL`.
//! Hard link targets are checked the same way.
//!
//! Whiteouts: `DIR/.wh.NAME` removes `DIR/NAME` of lower layers; `DIR/.wh..wh..opq`
//! empties `DIR` of everything lower layers put there (entries of the same layer stay,
//! wherever they come in the tar).
//!
//! Ownership, modes and modification times are kept; device nodes and fifos are made
//! with mknod. Extended attributes are not carried over.

use imagebus_sys::paths::{is_plain_relative, LinuxPaths, PathOps, ResolveFailure};
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// The whiteout prefix.
pub const WHITEOUT: &str = ".wh.";
/// The opaque-directory marker.
pub const OPAQUE: &str = ".wh..wh..opq";

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An entry (or a hard link target) would land outside the root.
    #[error("layer entry {0:?} escapes the image root")]
    Escapes(String),
    /// The layer is not a valid tar, or an entry is malformed.
    #[error("malformed layer: {0}")]
    Malformed(String),
    /// The import ran past its deadline.
    #[error("the import ran past its deadline")]
    Timeout,
    /// Writing the staging tree failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Copies an entry's data into `f`. A failure to read the layer (a corrupt compressed
/// stream, a truncated tar) is `Malformed`; only a failure to write is `Io`.
fn copy_entry(
    entry: &mut impl Read,
    f: &mut fs::File,
    target: &Path,
    shown: &str,
) -> Result<(), ApplyError> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ApplyError::Malformed(format!("{shown}: {e}"))),
        };
        f.write_all(&buf[..n]).map_err(io_err("writing", target))?;
    }
}

/// An entry path, checked: its relative form (`None` for the root itself).
pub fn clean(raw: &Path) -> Result<Option<PathBuf>, ApplyError> {
    let shown = raw.to_string_lossy().into_owned();
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ApplyError::Escapes(shown));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Applies layers onto one root, remembering nothing between layers but the tree.
#[derive(Debug)]
pub struct Applier {
    root: PathBuf,
    deadline: Instant,
    /// Paths written by the current layer (whiteouts leave them alone).
    this_layer: HashSet<PathBuf>,
}

impl Applier {
    /// An applier onto `root` (an existing, empty directory of ours).
    pub fn new(root: &Path, deadline: Instant) -> Result<Self, ApplyError> {
        let root = fs::canonicalize(root).map_err(io_err("resolving", root))?;
        Ok(Self {
            root,
            deadline,
            this_layer: HashSet::new(),
        })
    }

    /// Applies one (uncompressed) layer tar read from `layer`, then reads it to its end.
    pub fn apply<R: Read>(&mut self, layer: R) -> Result<(), ApplyError> {
        self.this_layer.clear();
        let mut archive = tar::Archive::new(layer);
        let entries = archive
            .entries()
            .map_err(|e| ApplyError::Malformed(e.to_string()))?;
        for entry in entries {
            if Instant::now() > self.deadline {
                return Err(ApplyError::Timeout);
            }
            let mut entry = entry.map_err(|e| ApplyError::Malformed(e.to_string()))?;
            let raw = entry
                .path()
                .map_err(|e| ApplyError::Malformed(e.to_string()))?
                .into_owned();
            self.entry(&raw, &mut entry)?;
        }
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| ApplyError::Malformed(e.to_string()))?;
        Ok(())
    }

    /// The real path of directory `rel` inside the root (the root for `None`), creating
    /// missing directories (0755, root-owned) on the way. Escapes are refused.
    fn dir(&self, rel: Option<&Path>, shown: &str) -> Result<PathBuf, ApplyError> {
        let Some(rel) = rel else {
            return Ok(self.root.clone());
        };
        let mut done = PathBuf::new();
        let mut real = self.root.clone();
        for c in rel.components() {
            done.push(c);
            match LinuxPaths.resolve_beneath(&self.root, &done) {
                Ok(p) => real = p,
                Err(e) => match ResolveFailure::of(&e) {
                    ResolveFailure::Missing => {
                        let p = real.join(c);
                        fs::create_dir(&p).map_err(io_err("creating", &p))?;
                        real = p;
                    }
                    ResolveFailure::Escapes | ResolveFailure::Invalid => {
                        return Err(ApplyError::Escapes(shown.to_string()))
                    }
                    ResolveFailure::Other => {
                        return Err(ApplyError::Malformed(format!("{shown}: {e}")))
                    }
                },
            }
        }
        let meta = fs::symlink_metadata(&real).map_err(io_err("inspecting", &real))?;
        if !meta.is_dir() {
            return Err(ApplyError::Malformed(format!(
                "{shown}: a parent is not a directory"
            )));
        }
        Ok(real)
    }

    fn entry<R: Read>(&mut self, raw: &Path, entry: &mut tar::Entry<R>) -> Result<(), ApplyError> {
        let shown = raw.to_string_lossy().into_owned();
        let Some(rel) = clean(raw)? else {
            // The root directory itself: keep ours.
            return Ok(());
        };
        if !is_plain_relative(&rel) {
            return Err(ApplyError::Escapes(shown));
        }
        let name = rel
            .file_name()
            .ok_or_else(|| ApplyError::Malformed(shown.clone()))?
            .to_string_lossy()
            .into_owned();
        let parent_rel = rel.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = self.dir(parent_rel, &shown)?;
        if name == OPAQUE {
            let dir_rel = parent_rel.map(Path::to_path_buf).unwrap_or_default();
            return self.opaque(&parent, &dir_rel);
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(ApplyError::Malformed(shown));
            }
            let rel_hidden = parent_rel.map_or_else(|| PathBuf::from(hidden), |p| p.join(hidden));
            if !self.this_layer.contains(&rel_hidden) {
                remove_any(&parent.join(hidden))?;
            }
            return Ok(());
        }
        let target = parent.join(&name);
        self.this_layer.insert(rel.clone());
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let existing = fs::symlink_metadata(&target).ok();
        if kind.is_dir() {
            if !existing.as_ref().is_some_and(fs::Metadata::is_dir) {
                remove_any(&target)?;
                fs::create_dir(&target).map_err(io_err("creating", &target))?;
            }
        } else {
            remove_any(&target)?;
        }
        match kind {
            tar::EntryType::Directory => {}
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&target)
                    .map_err(io_err("creating", &target))?;
                copy_entry(entry, &mut f, &target, &shown)?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| ApplyError::Malformed(e.to_string()))?
                    .ok_or_else(|| ApplyError::Malformed(format!("{shown}: no link target")))?;
                // Stored as given: only ever followed later through resolve_beneath.
                symlink(&*link, &target).map_err(io_err("symlinking", &target))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| ApplyError::Malformed(e.to_string()))?
                    .ok_or_else(|| ApplyError::Malformed(format!("{shown}: no link target")))?;
                let shown_link = link.to_string_lossy().into_owned();
                let Some(src_rel) = clean(&link)? else {
                    return Err(ApplyError::Escapes(shown_link));
                };
                let src_name = src_rel
                    .file_name()
                    .ok_or_else(|| ApplyError::Malformed(shown_link.clone()))?
                    .to_os_string();
                let src_parent = self.dir(
                    src_rel.parent().filter(|p| !p.as_os_str().is_empty()),
                    &shown_link,
                )?;
                let src = src_parent.join(src_name);
                // linkat without AT_SYMLINK_FOLLOW: a symlink is linked, not followed.
                fs::hard_link(&src, &target).map_err(|e| {
                    ApplyError::Malformed(format!("{shown}: hard link to {shown_link:?}: {e}"))
                })?;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let kind_bits = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let dev = libc::makedev(major, minor);
                nix::sys::stat::mknod(
                    &target,
                    nix::sys::stat::SFlag::from_bits_truncate(kind_bits),
                    nix::sys::stat::Mode::from_bits_truncate(0o600),
                    dev,
                )
                .map_err(|e| io_err("mknod", &target)(e.into()))?;
            }
            // PAX and GNU long-name headers are consumed by the tar reader.
            other => {
                return Err(ApplyError::Malformed(format!(
                    "{shown}: unsupported entry type {other:?}"
                )))
            }
        }
        let (uid, gid) = (
            u32::try_from(uid).unwrap_or(0),
            u32::try_from(gid).unwrap_or(0),
        );
        std::os::unix::fs::lchown(&target, Some(uid), Some(gid))
            .map_err(io_err("chown", &target))?;
        if kind != tar::EntryType::Symlink {
            // After chown, which clears set-id bits.
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", &target))?;
        }
        if let Ok(mtime) = header.mtime() {
            let t = nix::sys::time::TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
            // Best effort, like tar itself.
            let _ = nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &target,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
        Ok(())
    }

    /// `DIR/.wh..wh..opq`: removes what lower layers put in `dir` (`rel` inside the root).
    fn opaque(&self, dir: &Path, rel: &Path) -> Result<(), ApplyError> {
        prune(dir, rel, &self.this_layer)
    }
}

/// Removes every entry below `dir` (relative path `rel`) that the current layer did not
/// write, keeping directories that hold something it wrote.
fn prune(dir: &Path, rel: &Path, keep: &HashSet<PathBuf>) -> Result<(), ApplyError> {
    let rd = fs::read_dir(dir).map_err(io_err("listing", dir))?;
    for entry in rd {
        let entry = entry.map_err(io_err("listing", dir))?;
        let path = entry.path();
        let child_rel = rel.join(entry.file_name());
        if !keep.contains(&child_rel) {
            remove_any(&path)?;
            continue;
        }
        let ft = entry.file_type().map_err(io_err("inspecting", &path))?;
        if ft.is_dir() {
            prune(&path, &child_rel, keep)?;
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (never following a symlink); nothing there is fine.
fn remove_any(path: &Path) -> Result<(), ApplyError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspecting", path)(e)),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("removing", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("removing", path)),
    }
}
