//! Doubles of the mount seams: [`Mounter`] and [`MountTable`] ([`FakeMounter`], one
//! double for both so the table follows the calls), [`FsProbe`] and [`PathOps`].

use super::lock;
use crate::error::{SysError, SysResult};
use crate::fsdetect::{FsProbe, FsType};
use crate::mount::{MountCall, MountFlag, Mounter, Unmounted};
use crate::mountinfo::{MountEntry, MountTable};
use crate::paths::FileKind;
use crate::paths::PathOps;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Everything the fake saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountCallRecord {
    /// A mount.
    Mount(MountCall),
    /// An unmount of a target, lazy or not.
    Unmount(PathBuf, bool),
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<MountCallRecord>,
    table: Vec<MountEntry>,
    next_id: u64,
    fail_fs_type: Option<(String, i32)>,
}

/// A recording [`Mounter`] that also keeps a mount table ([`MountTable`]) consistent
/// with the calls it accepted, so reconciliation logic can be unit-tested.
#[derive(Debug, Default, Clone)]
pub struct FakeMounter {
    inner: Arc<Mutex<Inner>>,
}

impl FakeMounter {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<MountCallRecord> {
        self.with(|i| i.calls.clone())
    }

    /// Only the mount calls.
    pub fn mount_calls(&self) -> Vec<MountCall> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                MountCallRecord::Mount(m) => Some(m),
                MountCallRecord::Unmount(..) => None,
            })
            .collect()
    }

    /// Targets currently mounted, in mount order.
    pub fn mounted(&self) -> Vec<PathBuf> {
        self.with(|i| i.table.iter().map(|e| e.mount_point.clone()).collect())
    }

    /// Makes mounts of `fs_type` fail with `errno` from now on.
    pub fn fail_fs_type(&self, fs_type: &str, errno: i32) {
        self.with(|i| i.fail_fs_type = Some((fs_type.to_string(), errno)));
    }

    /// Simulates a mount made by someone else (or left behind by a crash).
    pub fn add_foreign(&self, target: impl Into<PathBuf>, fs_type: &str) {
        let target = target.into();
        self.with(|i| push_entry(i, target, fs_type, "foreign", false));
    }

    /// Simulates a mount that vanished under us (someone unmounted it).
    pub fn remove_foreign(&self, target: &Path) {
        self.with(|i| {
            if let Some(pos) = i.table.iter().rposition(|e| e.mount_point == target) {
                i.table.remove(pos);
            }
        });
    }
}

fn push_entry(i: &mut Inner, target: PathBuf, fs_type: &str, source: &str, ro: bool) {
    i.next_id += 1;
    i.table.push(MountEntry {
        mount_id: 1000 + i.next_id,
        parent_id: 1,
        dev: "0:0".into(),
        root: PathBuf::from("/"),
        mount_point: target,
        options: vec![if ro { "ro" } else { "rw" }.to_string()],
        fs_type: fs_type.to_string(),
        source: source.to_string(),
        super_options: String::new(),
    });
}

impl Mounter for FakeMounter {
    fn mount(&self, call: &MountCall) -> SysResult<()> {
        self.with(|i| {
            i.calls.push(MountCallRecord::Mount(call.clone()));
            if let (Some((fs, errno)), Some(want)) = (&i.fail_fs_type, &call.fs_type) {
                if fs == want {
                    return Err(SysError::io(
                        "mount",
                        &call.target,
                        std::io::Error::from_raw_os_error(*errno),
                    ));
                }
            }
            if call.flags.contains(&MountFlag::Remount) {
                return Ok(());
            }
            let fs = call.fs_type.clone().unwrap_or_else(|| "none".into());
            let source = call.source.to_string_lossy().into_owned();
            push_entry(i, call.target.clone(), &fs, &source, call.is_read_only());
            Ok(())
        })
    }

    fn unmount(&self, target: &Path, lazy: bool) -> SysResult<Unmounted> {
        self.with(|i| {
            i.calls
                .push(MountCallRecord::Unmount(target.to_path_buf(), lazy));
            match i.table.iter().rposition(|e| e.mount_point == target) {
                Some(pos) => {
                    i.table.remove(pos);
                    Ok(Unmounted::Done)
                }
                None => Ok(Unmounted::NotMounted),
            }
        })
    }
}

impl MountTable for FakeMounter {
    fn mounts(&self) -> SysResult<Vec<MountEntry>> {
        Ok(self.with(|i| i.table.clone()))
    }
}

/// [`FsProbe`] answering from a table; devices not in it have no known filesystem.
#[derive(Debug, Default, Clone)]
pub struct FakeFsProbe {
    table: Arc<Mutex<HashMap<PathBuf, FsType>>>,
}

impl FakeFsProbe {
    /// Declares what `device` holds.
    pub fn set(&self, device: impl Into<PathBuf>, fs: FsType) {
        if let Ok(mut t) = self.table.lock() {
            t.insert(device.into(), fs);
        }
    }
}

impl FsProbe for FakeFsProbe {
    fn probe(&self, device: &Path) -> SysResult<Option<FsType>> {
        let t = self
            .table
            .lock()
            .map_err(|_| SysError::Invalid("poisoned".into()))?;
        Ok(t.get(device).copied())
    }
}

/// Directories and files in memory, for [`PathOps`]. Paths are taken as given (no
/// symlinks): [`PathOps::resolve_beneath`] refuses an absolute `rel` or one with `..`
/// (`EXDEV`, as an escape) and otherwise finds `base/rel` in the table.
#[derive(Debug, Clone, Default)]
pub struct FakePaths {
    entries: Arc<Mutex<BTreeMap<PathBuf, FileKind>>>,
}

fn errno(op: &'static str, path: &Path, errno: i32) -> SysError {
    SysError::io(op, path, std::io::Error::from_raw_os_error(errno))
}

impl FakePaths {
    /// Declares a file of `kind` at `path` (and its parents as directories).
    pub fn add(&self, path: impl Into<PathBuf>, kind: FileKind) {
        let path = path.into();
        let mut e = lock(&self.entries);
        for a in path.ancestors().skip(1) {
            e.entry(a.to_path_buf()).or_insert(FileKind::Dir);
        }
        e.insert(path, kind);
    }
    /// Every declared path, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        lock(&self.entries).keys().cloned().collect()
    }
}

impl PathOps for FakePaths {
    fn create_dir_all(&self, path: &Path, _mode: u32) -> SysResult<()> {
        match self.kind(path)? {
            Some(FileKind::Dir) | None => {
                self.add(path, FileKind::Dir);
                Ok(())
            }
            Some(_) => Err(errno("mkdir -p", path, libc::EEXIST)),
        }
    }
    fn create_dir(&self, path: &Path, _mode: u32) -> SysResult<()> {
        let mut e = lock(&self.entries);
        let parent = path.parent().unwrap_or(Path::new("/"));
        if e.get(parent) != Some(&FileKind::Dir) {
            return Err(errno("mkdir", path, libc::ENOENT));
        }
        if e.contains_key(path) {
            return Err(errno("mkdir", path, libc::EEXIST));
        }
        e.insert(path.to_path_buf(), FileKind::Dir);
        Ok(())
    }
    fn remove_dir(&self, path: &Path) -> SysResult<bool> {
        let mut e = lock(&self.entries);
        if !e.contains_key(path) {
            return Ok(false);
        }
        if e.keys().any(|k| k != path && k.starts_with(path)) {
            return Err(errno("rmdir", path, libc::ENOTEMPTY));
        }
        e.remove(path);
        Ok(true)
    }
    fn remove_tree(&self, path: &Path) -> SysResult<bool> {
        let mut e = lock(&self.entries);
        let found = e.contains_key(path);
        e.retain(|k, _| !k.starts_with(path));
        Ok(found)
    }
    fn list_dir(&self, path: &Path) -> SysResult<Vec<String>> {
        Ok(lock(&self.entries)
            .keys()
            .filter(|k| k.parent() == Some(path))
            .filter_map(|k| k.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn kind(&self, path: &Path) -> SysResult<Option<FileKind>> {
        Ok(lock(&self.entries).get(path).copied())
    }
    fn resolve_beneath(&self, base: &Path, rel: &Path) -> SysResult<PathBuf> {
        let escapes = rel
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir));
        if escapes {
            return Err(errno("openat2", rel, libc::EXDEV));
        }
        let full = base.join(rel);
        match self.kind(&full)? {
            Some(_) => Ok(full),
            None => Err(errno("openat2", &full, libc::ENOENT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_paths_behave_like_directories() {
        let p = FakePaths::default();
        p.create_dir_all(Path::new("/m/1"), 0o755).unwrap();
        assert_eq!(
            p.create_dir(Path::new("/m/1"), 0o755).unwrap_err().errno(),
            Some(libc::EEXIST)
        );
        p.add("/m/1/f", FileKind::File);
        assert_eq!(p.list_dir(Path::new("/m")).unwrap(), ["1"]);
        assert!(p.remove_dir(Path::new("/m/1")).is_err());
        let base = Path::new("/m");
        assert_eq!(
            p.resolve_beneath(base, Path::new("1/f")).unwrap(),
            Path::new("/m/1/f")
        );
        assert_eq!(
            p.resolve_beneath(base, Path::new("../x"))
                .unwrap_err()
                .errno(),
            Some(libc::EXDEV)
        );
        assert!(p.remove_tree(Path::new("/m/1")).unwrap());
        assert_eq!(p.kind(Path::new("/m/1/f")).unwrap(), None);
    }
}
