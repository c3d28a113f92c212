//! Per-test busybox squashfs layers (on top of [`crate::image`]), kernel-state probes
//! (mounts and loop devices below a directory) and a cleanup guard for everything a
//! kernel test leaves under its directory.
//!
//! Needs `busybox-static` and `squashfs-tools`; a missing tool is a failure naming the
//! package, never a skip.

use crate::image::{busybox_rootfs, mksquashfs};
use imagebus_sys::mountinfo::{MountEntry, MountTable, ProcMountTable};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds a busybox rootfs (see [`crate::image::busybox_rootfs`]) in `work/<name>.d`
/// with `extra` files (`path`, contents) and `links` (`path`, symlink target), and packs
/// it into `work/<name>.sqsh`: distinct layers for overlay tests.
pub fn busybox_squashfs(
    work: &Path,
    name: &str,
    extra: &[(&str, &str)],
    links: &[(&str, &str)],
) -> PathBuf {
    let root = work.join(format!("{name}.d"));
    busybox_rootfs(&root);
    for (path, contents) in extra {
        let p = root.join(path);
        fs::create_dir_all(p.parent().expect("a relative path has a parent")).unwrap();
        fs::write(p, contents).unwrap();
    }
    for (path, target) in links {
        symlink(target, root.join(path)).unwrap();
    }
    let image = work.join(format!("{name}.sqsh"));
    mksquashfs(&root, &image);
    image
}

/// Mounts whose mountpoint is at or below `dir`, in mount-table order.
pub fn mounts_under(dir: &Path) -> Vec<MountEntry> {
    ProcMountTable
        .mounts()
        .expect("reading /proc/self/mountinfo")
        .into_iter()
        .filter(|e| e.mount_point.starts_with(dir))
        .collect()
}

/// Loop devices (`/dev/loopN`, backing file) whose backing file is below `dir`, from
/// `/sys/block/loop*/loop/backing_file`.
pub fn loops_under(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return found;
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = PathBuf::from(backing.trim_end_matches('\n'));
        if backing.starts_with(dir) {
            found.push((PathBuf::from("/dev").join(&name), backing));
        }
    }
    found.sort();
    found
}

/// A temporary directory for one kernel test. Dropping it lazily unmounts everything
/// below it, detaches loop devices backed by files below it, then removes it — also
/// when the test failed.
#[derive(Debug)]
pub struct KernelScratch {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl KernelScratch {
    /// A fresh directory under `/tmp` (name starts with `prefix`). Panics unless root.
    pub fn new(prefix: &str) -> Self {
        Self::new_in(Path::new("/tmp"), prefix)
    }

    /// Like [`KernelScratch::new`], under `parent` (e.g. `/dev/shm` for a tmpfs).
    pub fn new_in(parent: &Path, prefix: &str) -> Self {
        // Effective uid is the third field of the Uid: line.
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
        assert!(
            root,
            "kernel tests need root (loop devices, mount(2)): run them as root"
        );
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .unwrap();
        let path = dir.path().to_path_buf();
        Self {
            dir: Some(dir),
            path,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts and detaches everything below the directory; returns what it had to clean.
    /// Loop devices go first, and again after the unmounts: once a (FUSE) mount below
    /// the directory is unmounted, a loop device on a file in it shows its backing file
    /// relative to that mount (`/<file>`), and can no longer be found by path. A device
    /// still mounted is freed by the kernel on its last close.
    pub fn sweep(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let detach = || -> Vec<PathBuf> {
            let loops: Vec<PathBuf> = loops_under(&self.path)
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            for dev in &loops {
                let _ = Command::new("losetup").arg("-d").arg(dev).status();
            }
            loops
        };
        let mut loops = detach();
        let mounts: Vec<PathBuf> = mounts_under(&self.path)
            .into_iter()
            .map(|e| e.mount_point)
            .collect();
        for mp in mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(mp).status();
        }
        loops.extend(detach());
        (mounts, loops)
    }
}

impl Drop for KernelScratch {
    fn drop(&mut self) {
        self.sweep();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}
