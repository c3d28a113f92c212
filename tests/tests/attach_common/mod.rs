//! Shared helpers of the attach integration tests: a scratch directory per test that is
//! swept on drop (loop devices, FUSE mounts, rbd-fuse processes), the real attach actor on
//! it, the actor in a child process to kill (the `attach-crash-child` binary), and
//! kernel-state probes.

#![allow(dead_code)]

use imagebus_attach::{AttachConfig, AttachHandle, AttachSys, ReconcileReport};
use imagebus_schema::attach::{AttachSource, AttachSpec, LocalSource, LoopSource};
use imagebus_tests::ceph::kill_rbd_fuse_under;
use imagebus_tests::rootfs::{loops_under, mounts_under, KernelScratch};
use std::fs;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

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
        let s = imagebus_attach::spawn(
            self.cfg.clone(),
            AttachSys::linux(),
            CancellationToken::new(),
            imagebus_attach::Limits::default(),
        )
        .await
        .expect("starting attach");
        (s.handle, s.report)
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
        // Loop devices first: once a FUSE mount is (lazily) unmounted, sysfs shows the
        // backing file of a loop device on it relative to that mount, and it cannot be found
        // by path any more. Then rbd-fuse, then mounts.
        for (dev, _) in self.loops() {
            let _ = std::process::Command::new("losetup")
                .arg("-d")
                .arg(dev)
                .status();
        }
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

/// A child process running the attach actor; killed with SIGKILL on drop.
pub struct Child(std::process::Child);

impl Child {
    /// Starts the `attach-crash-child` binary with `state_dir` and `specs`, and waits (60 s
    /// at most) until it has attached them all.
    pub fn start(
        state_dir: &Path,
        specs: &[AttachSpec],
    ) -> (Self, Vec<imagebus_schema::attach::AttachInfo>) {
        let work = state_dir.parent().unwrap();
        let specs_path = work.join("child-specs.json");
        let ready = work.join("child-ready.json");
        let _ = fs::remove_file(&ready);
        fs::write(&specs_path, serde_json::to_vec(specs).unwrap()).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_attach-crash-child"))
            .arg(state_dir)
            .arg(&specs_path)
            .arg(&ready)
            .spawn()
            .expect("starting attach-crash-child");
        let mut child = Child(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(bytes) = fs::read(&ready) {
                return (child, serde_json::from_slice(&bytes).unwrap());
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("the actor child exited before it was ready: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the actor child never got ready"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Starts the `attach-crash-child` binary with `state_dir` and `spec`, frozen inside
    /// that attach right after its loop device was bound (see the binary's docs); waits (60
    /// s at most) for that point and returns the device number.
    pub fn start_frozen_after_loop(state_dir: &Path, spec: &AttachSpec) -> (Self, u32) {
        let work = state_dir.parent().unwrap();
        let specs_path = work.join("child-specs.json");
        let ready = work.join("child-ready.json");
        let report = work.join("child-ready.json.loop");
        let _ = fs::remove_file(&report);
        fs::write(&specs_path, serde_json::to_vec(&[spec]).unwrap()).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_attach-crash-child"))
            .arg(state_dir)
            .arg(&specs_path)
            .arg(&ready)
            .arg("freeze-after-loop")
            .spawn()
            .expect("starting attach-crash-child");
        let mut child = Child(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(n) = fs::read_to_string(&report) {
                return (child, n.trim().parse().unwrap());
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("the actor child exited before it bound a loop device: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the actor child never bound a loop device"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
