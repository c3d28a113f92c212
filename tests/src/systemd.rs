//! Real systemd for the tests: the Debian 12 root filesystem with systemd that
//! `scripts/systemd-rootfs.sh` builds once per machine (mmdebstrap; cached in
//! /var/cache/imagebus), and waiting for a container booted from it to finish booting.

use crate::daemon::{wait_until, Daemon};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The cached systemd image (built on first use), copied into `dir`.
pub fn systemd_image(dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/systemd-rootfs.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("running scripts/systemd-rootfs.sh");
    assert!(
        out.status.success(),
        "scripts/systemd-rootfs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cached = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let copy = dir.join("systemd.sqsh");
    std::fs::copy(&cached, &copy).expect("copying the systemd image");
    copy
}

/// Waits until systemd, PID 1 of container `name`, answers `systemctl` and has finished
/// booting; its state (`running` or `degraded`, asserted; the failed units are printed
/// when degraded).
pub fn wait_booted(daemon: &Daemon, name: &str) -> String {
    // Until PID 1 answers on its socket (`offline` before), then wait for the boot's end.
    let answering = wait_until(Duration::from_secs(60), || {
        let o = daemon.cli(&["exec", name, "--", "systemctl", "is-system-running"]);
        !o.stdout.trim().is_empty() && o.stdout.trim() != "offline"
    });
    assert!(answering, "systemd never answered systemctl");
    let out = daemon.cli(&[
        "--timeout",
        "120s",
        "exec",
        name,
        "--kill-after",
        "90s",
        "--",
        "systemctl",
        "is-system-running",
        "--wait",
    ]);
    let state = out.stdout.trim().to_string();
    assert!(
        state == "running" || state == "degraded",
        "systemctl is-system-running: {out:?}"
    );
    if state == "degraded" {
        let failed = daemon.cli(&["exec", name, "--", "systemctl", "--failed", "--no-pager"]);
        eprintln!("degraded: {}", failed.stdout);
    }
    state
}
