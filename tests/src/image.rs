//! A busybox-static test image, built once per test process and shared by every test in
//! it: `/bin/busybox` plus applet symlinks ([`APPLETS`]) packed with `mksquashfs`.
//!
//! The image lives in `/tmp/imagebus-test-image-<pid>/`; directories of test processes that
//! have exited are removed the next time an image is built. Needs `busybox-static` and
//! `squashfs-tools`: a missing tool fails the test with the package to install.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Applets linked in `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "true", "id", "hostname", "ps", "mount", "kill", "env",
    "grep", "mkdir",
];

/// Where busybox-static installs its binary on Debian.
pub const BUSYBOX: &str = "/bin/busybox";

/// Builds a busybox root filesystem directory at `root` (created; must not exist yet).
pub fn busybox_rootfs(root: &Path) {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install busybox-static (apt-get install busybox-static)"
    );
    for dir in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        fs::create_dir_all(root.join(dir)).expect("creating rootfs directories");
    }
    fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copying busybox");
    for applet in APPLETS {
        symlink("busybox", root.join("bin").join(applet)).expect("linking applet");
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    fs::write(root.join("etc/hostname"), "imagebus-test\n").expect("hostname");
}

/// Packs `root` into the squashfs `image` (replacing it).
pub fn mksquashfs(root: &Path, image: &Path) {
    let out = Command::new("mksquashfs")
        .arg(root)
        .arg(image)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .unwrap_or_else(|e| panic!("running mksquashfs ({e}): install squashfs-tools"));
    assert!(
        out.status.success(),
        "mksquashfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pid_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        })
        .is_some_and(|zombie| !zombie)
}

fn sweep_stale() {
    let Ok(rd) = fs::read_dir("/tmp") else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("imagebus-test-image-")
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        if !pid_alive(pid) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// The shared busybox squashfs of this test process (built on first use).
pub fn busybox_squashfs() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        sweep_stale();
        let dir = PathBuf::from(format!("/tmp/imagebus-test-image-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("creating the image directory");
        let root = dir.join("rootfs");
        busybox_rootfs(&root);
        let image = dir.join("busybox.sqsh");
        mksquashfs(&root, &image);
        image
    })
}
