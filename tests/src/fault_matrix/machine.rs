//! Which loop devices, FUSE mounts and rbd-fuse processes on the whole machine are one
//! row's. A loop device on a file in an rbd-fuse mount that went away shows its backing
//! file as `/<image>`, outside the node's directory, so the row's kernel objects are told
//! by their names ([`Names`]: the node's directory and the row's rbd images carry the row
//! and this process's pid), not only by where they are. What appeared during a row and is
//! not the row's (other processes share the machine) is only noted, by number.

use crate::ceph::rbd_fuse_under;
use crate::rootfs::mounts_under;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The names one row gives what it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Prefix of the node's directory name (`/tmp/<dir>XXXXXX`).
    pub dir: String,
    /// Prefix of the rbd images it creates (outside the node's directory).
    pub images: String,
}

impl Names {
    /// The names of row `key` in this process.
    pub fn of(key: &str) -> Self {
        let pid = std::process::id();
        Self {
            dir: format!("ibfm-{pid}-{key}-"),
            images: format!("fm-{pid}-{key}-"),
        }
    }

    /// Whether `path` is the row's: a component of it is the node's directory, or its
    /// file name is one of the row's images (` (deleted)` aside).
    pub fn owns(&self, path: &Path) -> bool {
        let in_dir = path
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with(&self.dir));
        let image = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&self.images));
        in_dir || image
    }

    /// Whether an rbd-fuse command line is the row's (its mountpoint or its image).
    fn owns_command(&self, args: &[String]) -> bool {
        args.iter()
            .any(|a| a.starts_with(&self.images) || self.owns(Path::new(a)))
    }
}

/// Every bound loop device (`/dev/loopN` → backing file as sysfs shows it).
pub fn loops() -> BTreeMap<PathBuf, PathBuf> {
    let mut found = BTreeMap::new();
    for entry in fs::read_dir("/sys/block").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(b) = fs::read_to_string(entry.path().join("loop/backing_file")) {
            let backing = PathBuf::from(b.trim_end_matches('\n'));
            found.insert(PathBuf::from("/dev").join(&name), backing);
        }
    }
    found
}

/// Every live rbd-fuse process and its arguments.
pub fn rbd_fuse() -> BTreeMap<u32, Vec<String>> {
    rbd_fuse_under(Path::new("/"))
        .into_iter()
        .filter_map(|pid| {
            let c = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args = c
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// Every FUSE mount (mountpoint).
pub fn fuse_mounts() -> BTreeSet<PathBuf> {
    mounts_under(Path::new("/"))
        .into_iter()
        .filter(|e| e.fs_type == "fuse" || e.fs_type.starts_with("fuse."))
        .map(|e| e.mount_point)
        .collect()
}

/// What the machine holds of the kinds a row may leak.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    loops: BTreeMap<PathBuf, PathBuf>,
    fuse: BTreeSet<PathBuf>,
    rbd_fuse: BTreeMap<u32, Vec<String>>,
}

impl Machine {
    /// Now.
    pub fn take() -> Self {
        Self {
            loops: loops(),
            fuse: fuse_mounts(),
            rbd_fuse: rbd_fuse(),
        }
    }

    /// What of it is the row's, one line each.
    pub fn of(&self, names: &Names) -> Vec<String> {
        let mut out: Vec<String> = self
            .loops
            .iter()
            .filter(|(_, b)| names.owns(b))
            .map(|(d, b)| format!("loop device {} on {}", d.display(), b.display()))
            .collect();
        out.extend(
            self.fuse
                .iter()
                .filter(|m| names.owns(m))
                .map(|m| format!("FUSE mount {}", m.display())),
        );
        out.extend(
            self.rbd_fuse
                .iter()
                .filter(|(_, args)| names.owns_command(args))
                .map(|(pid, args)| format!("rbd-fuse {pid} ({})", args.join(" "))),
        );
        out
    }

    /// How many loop devices, FUSE mounts and rbd-fuse processes are in `self` and not
    /// in `before`, and are not the row's.
    pub fn others_since(&self, before: &Machine, names: &Names) -> usize {
        let loops = self
            .loops
            .iter()
            .filter(|(d, b)| before.loops.get(*d) != Some(b) && !names.owns(b))
            .count();
        let fuse = self
            .fuse
            .iter()
            .filter(|m| !before.fuse.contains(*m) && !names.owns(m))
            .count();
        let procs = self
            .rbd_fuse
            .iter()
            .filter(|(p, a)| !before.rbd_fuse.contains_key(*p) && !names.owns_command(a))
            .count();
        loops + fuse + procs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rows_files_are_told_by_name_wherever_they_show() {
        let n = Names {
            dir: "ibfm-7-rbd-".into(),
            images: "fm-7-rbd-".into(),
        };
        for p in [
            "/tmp/ibfm-7-rbd-x1/state/attach/rbd/3/mnt/fm-7-rbd-r0-0",
            "/fm-7-rbd-r0-0",
            "/tmp/ibfm-7-rbd-x1/img.sqsh (deleted)",
            "/fm-7-rbd-r0-0 (deleted)",
        ] {
            assert!(n.owns(Path::new(p)), "{p}");
        }
        for p in ["/fm-8-rbd-r0-0", "/tmp/ibfm-8-rbd-x/img", "/img.sqsh"] {
            assert!(!n.owns(Path::new(p)), "{p}");
        }
        assert!(n.owns_command(&["rbd-fuse".into(), "-r".into(), "fm-7-rbd-r1-2".into()]));
    }
}
