//! Shared fixture of the mount integration tests: the real attach actor and the real
//! mount actor over the real kernel, in a scratch directory that is swept (mounts
//! unmounted, loop devices detached) when the test ends, passed or failed.

#![allow(dead_code)]

use imagebus_mount::MountConfig;
pub use imagebus_tests::mount_stack::*;
use imagebus_tests::rootfs::{loops_under, mounts_under, KernelScratch};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Polls `f` until it returns true or `within` passes (then panics with `what`).
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that nothing of ours is left in the kernel or under the run directory.
pub fn assert_no_leaks(scratch: &KernelScratch, cfg: &MountConfig) {
    let root = scratch.path();
    assert!(
        mounts_under(root).is_empty(),
        "mounts left: {:?}",
        mounts_under(root)
    );
    wait_for(
        "loop devices to be released",
        Duration::from_secs(5),
        || loops_under(root).is_empty(),
    );
    for sub in ["mounts", "overlays"] {
        let dir = cfg.run_dir.join(sub);
        let left: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "directories left in {dir:?}: {left:?}");
    }
}
