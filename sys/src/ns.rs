//! Named network namespaces (`ip netns` style, bind-mounted under `/var/run/netns`).

use crate::runtime::RuntimeError;
use std::path::{Path, PathBuf};

/// Where `ip netns add` puts named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// `NSFS_MAGIC` from `linux/magic.h`: the filesystem of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Looks up named network namespaces.
pub trait NetNamespaces: Send + Sync + 'static {
    /// The path of namespace `name`, checked to be a namespace file.
    /// Errors: [`RuntimeError::Invalid`] for a bad name, [`RuntimeError::NotFound`] when
    /// there is no such namespace.
    fn resolve(&self, name: &str) -> Result<PathBuf, RuntimeError>;
}

/// [`NetNamespaces`] under a directory (normally [`NETNS_DIR`]).
#[derive(Debug, Clone)]
pub struct LinuxNetNamespaces {
    dir: PathBuf,
}

impl Default for LinuxNetNamespaces {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(NETNS_DIR),
        }
    }
}

impl LinuxNetNamespaces {
    /// Namespaces under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

/// Checks a namespace name: a single path component of `[A-Za-z0-9._-]`.
pub fn validate_netns_name(name: &str) -> Result<(), RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Invalid(format!(
            "network namespace name {name:?} must be one path component of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Whether `path` is on nsfs (a namespace file or a bind mount of one).
pub fn is_namespace_file(path: &Path) -> Result<bool, RuntimeError> {
    let st = nix::sys::statfs::statfs(path)
        .map_err(|e| RuntimeError::io("statfs", path, std::io::Error::from(e)))?;
    Ok(st.filesystem_type().0 == NSFS_MAGIC)
}

impl NetNamespaces for LinuxNetNamespaces {
    fn resolve(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        validate_netns_name(name)?;
        let path = self.dir.join(name);
        if !path.exists() {
            return Err(RuntimeError::NotFound(format!(
                "network namespace {name:?} ({path:?})"
            )));
        }
        if !is_namespace_file(&path)? {
            return Err(RuntimeError::Invalid(format!(
                "{path:?} is not a network namespace (not an nsfs mount)"
            )));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        assert!(validate_netns_name("blue-1").is_ok());
        assert!(validate_netns_name("../x").is_err());
        assert!(validate_netns_name("").is_err());
        assert!(validate_netns_name("..").is_err());
    }

    #[test]
    fn own_netns_is_nsfs_and_plain_files_are_not() {
        assert!(is_namespace_file(Path::new("/proc/self/ns/net")).unwrap());
        assert!(!is_namespace_file(Path::new("/proc/self/status")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fake"), b"").unwrap();
        let ns = LinuxNetNamespaces::new(dir.path());
        assert!(matches!(ns.resolve("fake"), Err(RuntimeError::Invalid(_))));
        assert!(matches!(
            ns.resolve("missing"),
            Err(RuntimeError::NotFound(_))
        ));
    }
}
