//! Shared helpers of the attach integration tests: a scratch directory per test that is
//! swept on drop (loop devices, FUSE mounts, rbd-fuse processes), the real attach actor on
//! it, and kernel-state probes.

#![allow(dead_code)]

use imagebus_attach::{AttachConfig, AttachHandle, AttachSys, ReconcileReport};
use imagebus_schema::attach::{AttachSource, AttachSpec, LocalSource, LoopSource};
use imagebus_tests::ceph::kill_rbd_fuse_under;
use imagebus_tests::rootfs::{loops_under, mounts_under, KernelScratch};
use std::fs;
use std::path::{Path, PathBuf};

/// One test's directory, state and cleanup.
pub struct Env {
    pub scratch: KernelScratch,
    pub cfg: AttachConfig,
}

impl Env {
    pub fn new(prefix: &str) -> Self {
        let scratch = KernelScratch::new(prefix);
        let cfg = AttachConfig {
            state_dir: scratch.path().join("state"),
            run_dir: scratch.path().join("run"),
        };
        Self { scratch, cfg }
    }

    pub fn path(&self) -> &Path {
        self.scratch.path()
    }

    /// Starts the real attach actor on this test's state directory.
    pub async fn start(&self) -> (AttachHandle, ReconcileReport) {
        imagebus_attach::spawn(self.cfg.clone(), AttachSys::linux())
            .await
            .expect("starting attach")
    }

    /// A copy of the shared busybox image inside the scratch dir (so leaks are attributable).
    pub fn image(&self, name: &str) -> PathBuf {
        let dst = self.path().join(name);
        fs::copy(imagebus_tests::image::busybox_squashfs(), &dst).expect("copying the image");
        dst
    }

    /// Loop devices backed by files under the scratch dir.
    pub fn loops(&self) -> Vec<(PathBuf, PathBuf)> {
        loops_under(self.path())
    }

    /// Asserts that nothing of this test is left in the kernel.
    pub fn assert_clean(&self) {
        assert_eq!(self.loops(), vec![], "leaked loop devices");
        let mounts: Vec<_> = mounts_under(self.path())
            .into_iter()
            .map(|m| m.mount_point)
            .collect();
        assert!(mounts.is_empty(), "leaked mounts: {mounts:?}");
        let procs = imagebus_tests::ceph::rbd_fuse_under(self.path());
        assert!(procs.is_empty(), "leaked rbd-fuse processes: {procs:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.scratch.sweep();
        kill_rbd_fuse_under(self.scratch.path());
        self.scratch.sweep();
    }
}

pub fn loop_spec(name: Option<&str>, path: &Path, read_only: bool) -> AttachSpec {
    AttachSpec {
        name: name.map(String::from),
        source: AttachSource::Loop(LoopSource {
            path: path.to_path_buf(),
            read_only,
        }),
    }
}

pub fn local_spec(path: &Path) -> AttachSpec {
    AttachSpec {
        name: None,
        source: AttachSource::Local(LocalSource {
            path: path.to_path_buf(),
            read_only: true,
        }),
    }
}

/// `/sys/block/<dev>/<attr>` of a `/dev/<dev>` path.
pub fn sys_attr(device: &Path, attr: &str) -> Option<String> {
    let name = device.file_name()?.to_str()?;
    fs::read_to_string(format!("/sys/block/{name}/{attr}"))
        .ok()
        .map(|s| s.trim().to_string())
}
