//! A versioned, atomically written JSON state store, shared by the attach, mount and
//! container actors.
//!
//! On disk a state file is `{"version": N, "data": <T>}`. [`StateFile::save`] writes it
//! through [`write_atomic`], the one atomic writer of the workspace: a temporary file in
//! the same directory (mode 0600), fsynced, renamed over the old file, and an fsync of the
//! directory, so a crash at any point leaves either the old or the new state, never a torn
//! file. The small file helpers below ([`read_optional`], [`remove_file`], ...) are how
//! actors touch the data files of their own state directories. [`StateFile::load`] refuses a file whose version is not the
//! one this build writes ([`StateError::Version`]); a migration, when one is needed, reads
//! the old layout with its own type first.
//!
//! ```no_run
//! # use imagebus_sys::state::StateFile;
//! #[derive(serde::Serialize, serde::Deserialize, Default)]
//! struct Db { next_id: u64 }
//! let file: StateFile<Db> = StateFile::new("/var/lib/imagebus/attach/state.json", 1);
//! let mut db = file.load()?.unwrap_or_default();
//! db.next_id += 1;
//! file.save(&db)?;
//! # Ok::<(), imagebus_sys::state::StateError>(())
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing, renaming or syncing failed.
    #[error("{op} {path:?}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("state file {path:?} is corrupt")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The file was written by another format version.
    #[error("state file {path:?} has format version {found}, this build reads version {expected}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this build reads and writes.
        expected: u32,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A typed state file with a format version. Cheap to construct; holds no handle.
#[derive(Debug, Clone)]
pub struct StateFile<T> {
    path: PathBuf,
    version: u32,
    _data: PhantomData<fn() -> T>,
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    version: u32,
    data: &'a T,
}

#[derive(Deserialize)]
struct Header {
    version: u64,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    data: T,
}

impl<T: Serialize + DeserializeOwned> StateFile<T> {
    /// A state file at `path` in format `version`.
    pub fn new(path: impl Into<PathBuf>, version: u32) -> Self {
        Self {
            path: path.into(),
            version,
            _data: PhantomData,
        }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version this store reads and writes.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Reads the state; `Ok(None)` when the file does not exist yet. Temporary files a
    /// dead process left next to it (a writer killed between create and rename) are
    /// removed first ([`remove_stale_temps`]).
    pub fn load(&self) -> Result<Option<T>, StateError> {
        remove_stale_temps(&self.path);
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &self.path)(e)),
        };
        let corrupt = |source| StateError::Corrupt {
            path: self.path.clone(),
            source,
        };
        let header: Header = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if header.version != u64::from(self.version) {
            return Err(StateError::Version {
                path: self.path.clone(),
                found: header.version,
                expected: self.version,
            });
        }
        let env: EnvelopeIn<T> = serde_json::from_slice(&bytes).map_err(corrupt)?;
        Ok(Some(env.data))
    }

    /// Replaces the state atomically (see the module docs). The file has mode 0600.
    pub fn save(&self, data: &T) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(&EnvelopeOut {
            version: self.version,
            data,
        })
        .map_err(|source| StateError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes, 0o600)
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary files of [`write_atomic_with`] for `path`
/// (`.<name>.tmp.<pid>.<n>`) whose writer process no longer exists: what a writer killed
/// between creating its temporary file and the rename left behind. Those of live
/// processes (this one included) are kept. Best effort; returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> usize {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return 0;
    };
    let prefix = format!(".{name}.tmp.");
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let live = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !live && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// How far [`write_atomic_with`] goes to make a write survive a crash of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it: the new content
    /// survives a power loss once the call returns. What state files need.
    Synced,
    /// Rename only: readers never see a torn file and a crash of the process loses
    /// nothing (the page cache stays), but a crash of the host may keep the old content.
    /// For files that only matter while the host stays up.
    Unsynced,
}

/// Writes `bytes` to `path` atomically and durably with permission `mode`: temp file in
/// the same directory, fsync, rename, fsync of the directory. The one writer of every
/// state file, record, id floor and private config (mode 0600) of imagebus.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    write_atomic_with(path, bytes, mode, Durability::Synced)
}

/// [`write_atomic`] with a choice of [`Durability`]. The temporary file is created fresh
/// (`O_EXCL`, named after the target, the pid and a counter, so concurrent writers never
/// share one), gets exactly `mode` whatever the umask, and is removed when a step fails.
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> Result<(), StateError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let synced = durability == Durability::Synced;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        // The umask may have narrowed the mode; never widened, but set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        if synced {
            f.sync_all().map_err(io_err("fsync", &tmp))?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(io_err("rename", path))?;
        if synced {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("fsync", dir))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole data file; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Removes a file; a missing one is fine (`Ok(false)`).
pub fn remove_file(path: &Path) -> Result<bool, StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Creates `dir` and its missing parents (the umask applies); an existing one is fine.
pub fn create_dir_all(dir: &Path) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io_err("mkdir", dir))
}

/// The names of the entries of `dir` that are valid UTF-8, unsorted.
pub fn list_names(dir: &Path) -> Result<Vec<String>, StateError> {
    let entries = fs::read_dir(dir).map_err(io_err("read directory", dir))?;
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

/// Creates `dir` (and parents) and makes it mode 0700: state directories hold secrets.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err("chmod", dir))
}

/// Removes a directory tree; a missing one is fine.
pub fn remove_tree(dir: &Path) -> Result<(), StateError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
    struct Db {
        next: u64,
        names: Vec<String>,
    }

    #[test]
    fn load_removes_temporaries_of_dead_writers_only() {
        let dir = tempfile::tempdir().unwrap();
        let file: StateFile<Db> = StateFile::new(dir.path().join("s.json"), 3);
        file.save(&Db::default()).unwrap();
        // A writer killed before its rename (pid far above pid_max: never alive), one of
        // this live process, and another file's.
        let dead = dir.path().join(".s.json.tmp.4294967295.7");
        let ours = dir
            .path()
            .join(format!(".s.json.tmp.{}.9", std::process::id()));
        let other = dir.path().join(".t.json.tmp.4294967295.1");
        for f in [&dead, &ours, &other] {
            fs::write(f, b"{\"version\": 3, \"da").unwrap();
        }
        assert_eq!(file.load().unwrap(), Some(Db::default()));
        assert!(!dead.exists(), "a dead writer's temporary is left");
        assert!(ours.exists() && other.exists());
    }

    #[test]
    fn round_trip_mode_and_no_temp_left() {
        let dir = tempfile::tempdir().unwrap();
        let file: StateFile<Db> = StateFile::new(dir.path().join("s.json"), 3);
        assert_eq!(file.load().unwrap(), None);
        let db = Db {
            next: 7,
            names: vec!["a".into()],
        };
        file.save(&db).unwrap();
        file.save(&db).unwrap();
        assert_eq!(file.load().unwrap(), Some(db));
        let meta = fs::metadata(file.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "temp files left behind");
        let raw: serde_json::Value =
            serde_json::from_slice(&fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(raw["version"], 3);
        assert_eq!(raw["data"]["next"], 7);
    }

    #[test]
    fn other_version_and_garbage_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, r#"{"version": 1, "data": {"next": 1, "names": []}}"#).unwrap();
        let v2: StateFile<Db> = StateFile::new(&path, 2);
        assert!(matches!(
            v2.load(),
            Err(StateError::Version {
                found: 1,
                expected: 2,
                ..
            })
        ));
        fs::write(&path, "not json").unwrap();
        assert!(matches!(v2.load(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn unsynced_writes_are_atomic_too_and_helpers_tolerate_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        assert_eq!(read_optional(&p).unwrap(), None);
        write_atomic_with(&p, b"one", 0o640, Durability::Unsynced).unwrap();
        write_atomic_with(&p, b"two", 0o640, Durability::Unsynced).unwrap();
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(list_names(dir.path()).unwrap(), ["r.json"]);
        assert!(remove_file(&p).unwrap());
        assert!(!remove_file(&p).unwrap());
    }

    #[test]
    fn private_dir_is_0700() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        ensure_private_dir(&d).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        remove_tree(&d).unwrap();
        remove_tree(&d).unwrap();
    }
}
