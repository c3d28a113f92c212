//! Directory housekeeping and safe path resolution for the mount module: mountpoints,
//! overlay upper/work directories, and paths inside other mounts that must not escape
//! them.

use crate::error::{SysError, SysResult};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Component, Path, PathBuf};

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A block device.
    BlockDevice,
    /// Anything else (char device, socket, fifo).
    Other,
}

/// Whether `rel` is a plain relative path: not absolute, no `..`, no root or prefix.
pub fn is_plain_relative(rel: &Path) -> bool {
    !rel.as_os_str().is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Whether `path` is absolute and has no `..` component.
pub fn is_plain_absolute(path: &Path) -> bool {
    path.is_absolute() && !path.components().any(|c| matches!(c, Component::ParentDir))
}

/// Whether something exists at `path` (following symlinks). For actors' checks of their
/// own files and of caller-given paths that need no [`PathOps`] double.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Why [`PathOps::resolve_beneath`] failed, from its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveFailure {
    /// `EXDEV`: the path (through `..` or a symlink) leaves the base.
    Escapes,
    /// `ENOENT` / `ENOTDIR`: a component does not exist or is not a directory.
    Missing,
    /// `ELOOP` or a refused input: the path is unusable as given.
    Invalid,
    /// Anything else (permissions, I/O).
    Other,
}

impl ResolveFailure {
    /// Classifies a [`PathOps::resolve_beneath`] error.
    pub fn of(err: &SysError) -> Self {
        match err.errno() {
            Some(libc::EXDEV) => ResolveFailure::Escapes,
            Some(libc::ENOENT | libc::ENOTDIR) => ResolveFailure::Missing,
            Some(libc::ELOOP) => ResolveFailure::Invalid,
            _ if matches!(err, SysError::Invalid(_)) => ResolveFailure::Invalid,
            _ => ResolveFailure::Other,
        }
    }
}

/// Directory operations. One concern: "the files we manage and the paths we are given".
pub trait PathOps: Send + Sync + fmt::Debug {
    /// Creates `path` and any missing parents, each new one with `mode`; an existing
    /// directory is fine.
    fn create_dir_all(&self, path: &Path, mode: u32) -> SysResult<()>;

    /// Creates the directory `path` (its parent must exist) with `mode`, failing with
    /// `EEXIST` if it exists: a fresh directory is guaranteed to be ours.
    fn create_dir(&self, path: &Path, mode: u32) -> SysResult<()>;

    /// Removes an empty directory; `false` if it did not exist.
    fn remove_dir(&self, path: &Path) -> SysResult<bool>;

    /// Removes a directory tree without following symlinks; `false` if it did not exist.
    fn remove_tree(&self, path: &Path) -> SysResult<bool>;

    /// Names in a directory, sorted; a missing directory is empty.
    fn list_dir(&self, path: &Path) -> SysResult<Vec<String>>;

    /// What `path` is (following symlinks), or `None` if it does not exist.
    fn kind(&self, path: &Path) -> SysResult<Option<FileKind>>;

    /// Resolves `rel` inside the directory `base` with openat2(RESOLVE_BENEATH |
    /// RESOLVE_NO_MAGICLINKS): symlinks are followed, but any step that would leave
    /// `base` (`..` above it, an absolute or escaping symlink) fails with `EXDEV`.
    /// Returns the real path of what was found (always below `base`'s real path).
    fn resolve_beneath(&self, base: &Path, rel: &Path) -> SysResult<PathBuf>;
}

/// [`PathOps`] on the real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxPaths;

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl PathOps for LinuxPaths {
    fn create_dir_all(&self, path: &Path, mode: u32) -> SysResult<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|e| SysError::io("mkdir -p", path, e))
    }

    fn create_dir(&self, path: &Path, mode: u32) -> SysResult<()> {
        DirBuilder::new()
            .mode(mode)
            .create(path)
            .map_err(|e| SysError::io("mkdir", path, e))
    }

    fn remove_dir(&self, path: &Path) -> SysResult<bool> {
        match fs::remove_dir(path) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(SysError::io("rmdir", path, e)),
        }
    }

    fn remove_tree(&self, path: &Path) -> SysResult<bool> {
        match fs::symlink_metadata(path) {
            Err(e) if not_found(&e) => return Ok(false),
            Err(e) => return Err(SysError::io("lstat", path, e)),
            Ok(_) => {}
        }
        // std's remove_dir_all does not follow symlinks (openat/unlinkat based).
        match fs::remove_dir_all(path) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(SysError::io("rm -r", path, e)),
        }
    }

    fn list_dir(&self, path: &Path) -> SysResult<Vec<String>> {
        let rd = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(SysError::io("readdir", path, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| SysError::io("readdir", path, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn kind(&self, path: &Path) -> SysResult<Option<FileKind>> {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(SysError::io("stat", path, e)),
        };
        let ft = meta.file_type();
        Ok(Some(if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else if ft.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Other
        }))
    }

    fn resolve_beneath(&self, base: &Path, rel: &Path) -> SysResult<PathBuf> {
        if !is_plain_relative(rel) {
            return Err(SysError::Invalid(format!(
                "{rel:?} must be a relative path without '..'"
            )));
        }
        let dir = fs::File::open(base).map_err(|e| SysError::io("open", base, e))?;
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = nix::fcntl::openat2(&dir, rel, how)
            .map_err(|errno| SysError::io("openat2 beneath", base.join(rel), errno.into()))?;
        let link = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ));
        let real = fs::read_link(&link).map_err(|e| SysError::io("readlink", &link, e))?;
        let real_base = fs::canonicalize(base).map_err(|e| SysError::io("realpath", base, e))?;
        // Belt and braces: the kernel already refused escapes.
        if !real.starts_with(&real_base) {
            return Err(SysError::io(
                "resolve beneath",
                base.join(rel),
                io::Error::from_raw_os_error(libc::EXDEV),
            ));
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn plain_paths() {
        assert!(is_plain_relative(Path::new("etc/passwd")));
        assert!(is_plain_relative(Path::new("./etc")));
        assert!(!is_plain_relative(Path::new("")));
        assert!(!is_plain_relative(Path::new("/etc")));
        assert!(!is_plain_relative(Path::new("etc/../..")));
        assert!(is_plain_absolute(Path::new("/srv/data")));
        assert!(!is_plain_absolute(Path::new("/srv/../etc")));
        assert!(!is_plain_absolute(Path::new("srv")));
    }

    #[test]
    fn directories_are_created_listed_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let p = LinuxPaths;
        let m = t.path().join("mounts");
        p.create_dir_all(&m, 0o755).unwrap();
        p.create_dir(&m.join("1"), 0o755).unwrap();
        let again = p.create_dir(&m.join("1"), 0o755).unwrap_err();
        assert_eq!(again.errno(), Some(libc::EEXIST));
        let mode = fs::metadata(m.join("1")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o700, 0o700);
        p.create_dir_all(&m.join("2/upper/x"), 0o755).unwrap();
        fs::write(m.join("2/upper/x/f"), "data").unwrap();
        assert_eq!(p.list_dir(&m).unwrap(), vec!["1", "2"]);
        assert_eq!(p.kind(&m.join("1")).unwrap(), Some(FileKind::Dir));
        assert_eq!(
            p.kind(&m.join("2/upper/x/f")).unwrap(),
            Some(FileKind::File)
        );
        assert_eq!(p.kind(&m.join("nope")).unwrap(), None);
        assert!(p.remove_dir(&m.join("1")).unwrap());
        assert!(!p.remove_dir(&m.join("1")).unwrap());
        assert!(p.remove_tree(&m.join("2")).unwrap());
        assert!(!p.remove_tree(&m.join("2")).unwrap());
        assert!(p.list_dir(&t.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        symlink(&outside, tree.join("link")).unwrap();
        LinuxPaths.remove_tree(&tree).unwrap();
        assert!(outside.join("keep").exists());
    }

    #[test]
    fn resolve_beneath_follows_inner_links_and_refuses_escapes() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("root");
        fs::create_dir_all(base.join("usr/share")).unwrap();
        fs::write(base.join("usr/share/f"), "x").unwrap();
        symlink("usr/share", base.join("share")).unwrap();
        symlink("/etc", base.join("abs")).unwrap();
        symlink("../..", base.join("up")).unwrap();
        let p = LinuxPaths;
        let real_base = fs::canonicalize(&base).unwrap();
        assert_eq!(
            p.resolve_beneath(&base, Path::new("share/f")).unwrap(),
            real_base.join("usr/share/f")
        );
        for bad in ["abs", "up", "abs/passwd", "up/etc"] {
            let err = p.resolve_beneath(&base, Path::new(bad)).unwrap_err();
            assert_eq!(
                ResolveFailure::of(&err),
                ResolveFailure::Escapes,
                "{bad}: {err}"
            );
        }
        let missing = p
            .resolve_beneath(&base, Path::new("usr/share/f/x"))
            .unwrap_err();
        assert_eq!(ResolveFailure::of(&missing), ResolveFailure::Missing);
        assert!(matches!(
            p.resolve_beneath(&base, Path::new("../x")),
            Err(SysError::Invalid(_))
        ));
        assert!(p
            .resolve_beneath(&base, Path::new("missing"))
            .unwrap_err()
            .is_not_found());
    }
}
