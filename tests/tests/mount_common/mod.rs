//! Shared fixture of the mount integration tests: the real attach actor and the real
//! mount actor over the real kernel, in a scratch directory that is swept (mounts
//! unmounted, loop devices detached) when the test ends, passed or failed.

#![allow(dead_code)]

use imagebus_attach::{AttachConfig, AttachHandle, AttachSys};
use imagebus_mount::{MountConfig, MountHandle, MountSys, ReconcileReport};
use imagebus_schema::attach::{AttachRef, AttachSource, AttachSpec, LoopSource};
use imagebus_schema::mount::{BindMount, ImageMount, MountRef, MountSource, MountSpec, OverlayMount};
use imagebus_tests::rootfs::{loops_under, mounts_under, KernelScratch};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Directories of one stack (attach + mount) inside a scratch dir.
pub fn configs(root: &Path) -> (AttachConfig, MountConfig) {
    (
        AttachConfig { state_dir: root.join("state/attach"), run_dir: root.join("run/attach") },
        MountConfig { state_dir: root.join("state/mount"), run_dir: root.join("run") },
    )
}

/// A running attach + mount pair.
pub struct Stack {
    pub attach: AttachHandle,
    pub mount: MountHandle,
    pub report: ReconcileReport,
    pub stop: CancellationToken,
    pub cfg: MountConfig,
}

impl Stack {
    /// Starts both actors on `root` (state survives between starts).
    pub async fn start(root: &Path) -> Stack {
        let (acfg, mcfg) = configs(root);
        let (attach, _areport) =
            imagebus_attach::spawn(acfg, AttachSys::linux()).await.expect("starting attach");
        let stop = CancellationToken::new();
        let spawned = imagebus_mount::spawn(
            mcfg.clone(),
            MountSys::linux(),
            Arc::new(attach.clone()),
            stop.clone(),
        )
        .await
        .expect("starting mount");
        Stack { attach, mount: spawned.handle, report: spawned.report, stop, cfg: mcfg }
    }

    /// Stops the mount actor and waits until it is gone.
    pub fn stop(self) {
        self.stop.cancel();
    }
}

pub fn loop_spec(path: &Path) -> AttachSpec {
    AttachSpec { name: None, source: AttachSource::Loop(LoopSource { path: path.into(), read_only: true }) }
}

pub fn image_on_loop(path: &Path) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Image(ImageMount {
            attach: AttachRef::Inline(Box::new(loop_spec(path))),
            fs_type: None,
            options: vec![],
            read_only: true,
        }),
    }
}

pub fn overlay(lowers: Vec<MountRef>) -> MountSpec {
    MountSpec { name: None, source: MountSource::Overlay(OverlayMount { lowers, persist_dir: None }) }
}

pub fn inline(spec: MountSpec) -> MountRef {
    MountRef::Inline(Box::new(spec))
}

pub fn bind(path: &str, base: Option<MountRef>) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Bind(BindMount {
            path: path.into(),
            base: base.map(Box::new),
            read_only: false,
            recursive: false,
        }),
    }
}

/// The two-lower overlay of the issue, nested in one spec.
pub fn nested(a: &Path, b: &Path) -> MountSpec {
    overlay(vec![inline(image_on_loop(a)), inline(image_on_loop(b))])
}

/// Polls `f` until it returns true or `within` passes (then panics with `what`).
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that nothing of ours is left in the kernel or under the run directory.
pub fn assert_no_leaks(scratch: &KernelScratch, cfg: &MountConfig) {
    let root = scratch.path();
    assert!(mounts_under(root).is_empty(), "mounts left: {:?}", mounts_under(root));
    wait_for("loop devices to be released", Duration::from_secs(5), || loops_under(root).is_empty());
    for sub in ["mounts", "overlays"] {
        let dir = cfg.run_dir.join(sub);
        let left: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "directories left in {dir:?}: {left:?}");
    }
}
