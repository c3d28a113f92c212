//! Container cgroups on v1, v2 and hybrid hosts: where the hierarchies are mounted, and the
//! recursive depth-first removal that runc's `delete` does not do (systemd payloads create
//! child cgroups, and crun leaves `init.scope` behind).

use crate::cgroup_stats::{read_stats, CgroupStats};
use crate::runtime::RuntimeError;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Cgroup operations for container cleanup.
pub trait Cgroups: Send + Sync + 'static {
    /// Mount points of every cgroup hierarchy (v1 controllers, named v1, and cgroup2).
    fn hierarchies(&self) -> Vec<PathBuf>;

    /// Removes the absolute cgroup path `rel` (e.g. `/imagebus/c-7`) and everything below it
    /// in every hierarchy, deepest first. Missing directories are fine. Returns what was
    /// removed.
    fn remove(&self, rel: &str) -> Result<Vec<PathBuf>, RuntimeError>;

    /// The names of the child cgroups of `rel`, in any hierarchy.
    fn children(&self, rel: &str) -> std::collections::BTreeSet<String> {
        let rel = rel.trim_start_matches('/');
        self.hierarchies()
            .into_iter()
            .filter_map(|h| std::fs::read_dir(h.join(rel)).ok())
            .flat_map(|d| d.flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// SIGKILLs every process of cgroup `rel` and the cgroups below it, in every
    /// hierarchy: for a cgroup that no runtime knows any more (a `runc init` left by a
    /// create that was cut short). Returns how many processes were signalled.
    fn kill_all(&self, rel: &str) -> usize {
        let Ok(rel) = validate_cgroup_path(rel) else {
            return 0;
        };
        let mut pids = std::collections::BTreeSet::new();
        for h in self.hierarchies() {
            collect_procs(&h.join(&rel), &mut pids);
        }
        pids.into_iter()
            .filter(|p| {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*p),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok()
            })
            .count()
    }

    /// Removes the directory of cgroup `rel` in every hierarchy where it is empty (no child
    /// cgroup, no task: the kernel refuses `rmdir` otherwise, so a cgroup in use is never
    /// touched). For an instance's parent cgroup once its last container is gone. Returns
    /// how many directories went.
    fn remove_if_empty(&self, rel: &str) -> usize {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            return 0;
        }
        self.hierarchies()
            .into_iter()
            .filter(|h| std::fs::remove_dir(h.join(rel)).is_ok())
            .count()
    }

    /// The resource counters of cgroup `rel` (see [`CgroupStats`]); missing files give
    /// `None` fields. Must be read before [`Cgroups::remove`] for the OOM count of a run.
    fn stats(&self, rel: &str) -> CgroupStats {
        read_stats(&self.hierarchies(), rel)
    }
}

/// [`Cgroups`] from `/proc/self/mountinfo`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxCgroups;

/// Cgroup mount points in a `/proc/self/mountinfo` text (fields after ` - ` give the type).
pub fn parse_hierarchies(mountinfo: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = post.split_whitespace().next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        if let Some(mp) = pre.split_whitespace().nth(4) {
            out.push(PathBuf::from(unescape(mp)));
        }
    }
    out
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).ok();
            if let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks that `rel` is an absolute cgroup path without `..` and not the root.
pub fn validate_cgroup_path(rel: &str) -> Result<PathBuf, RuntimeError> {
    let p = Path::new(rel);
    let ok = p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && p.components().count() >= 2;
    if ok {
        Ok(p.strip_prefix("/").unwrap_or(p).to_path_buf())
    } else {
        Err(RuntimeError::Invalid(format!(
            "cgroup path {rel:?} must be absolute, not /, no .."
        )))
    }
}

/// The pids in `dir/cgroup.procs` and below.
fn collect_procs(dir: &Path, pids: &mut std::collections::BTreeSet<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(
            text.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .filter(|p| *p > 0),
        );
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&e.path(), pids);
        }
    }
}

fn remove_tree(dir: &Path, removed: &mut Vec<PathBuf>) -> Result<(), RuntimeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RuntimeError::io("read cgroup", dir, e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path(), removed)?;
        }
    }
    // A cgroup whose last task is still exiting is busy for a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => {
                removed.push(dir.to_path_buf());
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(RuntimeError::io("rmdir cgroup", dir, e)),
        }
    }
}

impl Cgroups for LinuxCgroups {
    fn hierarchies(&self) -> Vec<PathBuf> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| parse_hierarchies(&m))
            .unwrap_or_default()
    }

    fn remove(&self, rel: &str) -> Result<Vec<PathBuf>, RuntimeError> {
        let rel = validate_cgroup_path(rel)?;
        let mut removed = Vec::new();
        let mut first_err = None;
        for h in self.hierarchies() {
            if let Err(e) = remove_tree(&h.join(&rel), &mut removed) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v1_and_v2_hierarchies() {
        let mi = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 30 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 25 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,pids
";
        assert_eq!(
            parse_hierarchies(mi),
            [
                PathBuf::from("/sys/fs/cgroup/memory"),
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/sys/fs/cgroup/systemd"),
                PathBuf::from("/mnt/with space"),
            ]
        );
    }

    #[test]
    fn cgroup_paths_are_checked() {
        assert_eq!(
            validate_cgroup_path("/imagebus/c1").unwrap(),
            PathBuf::from("imagebus/c1")
        );
        assert!(validate_cgroup_path("imagebus/c1").is_err());
        assert!(validate_cgroup_path("/").is_err());
        assert!(validate_cgroup_path("/imagebus/../x").is_err());
    }

    #[test]
    fn removes_nested_directories_deepest_first() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("a");
        std::fs::create_dir_all(top.join("b/c")).unwrap();
        std::fs::create_dir_all(top.join("d")).unwrap();
        let mut removed = Vec::new();
        remove_tree(&top, &mut removed).unwrap();
        assert!(!top.exists());
        assert_eq!(removed.last(), Some(&top));
        assert_eq!(removed.len(), 4);
    }
}
