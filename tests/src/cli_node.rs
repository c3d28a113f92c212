//! [`CliNode`]: the node the CLI tests drive through the real `imagebus` binary: a private
//! redis-server, a scratch directory (swept of mounts and loop devices on drop) holding a
//! copy of the busybox image, and an imagebusd whose directories are inside it.

use crate::daemon::Daemon;
use crate::image::busybox_squashfs;
use crate::redis::RedisFixture;
use crate::rootfs::KernelScratch;
use std::path::PathBuf;

/// Fields drop in order: daemon (containers removed), scratch (mounts and loops swept),
/// redis.
pub struct CliNode {
    /// The imagebusd.
    pub daemon: Daemon,
    /// Where its directories and the image copy are.
    pub scratch: KernelScratch,
    /// The busybox squashfs copy.
    pub image: PathBuf,
    /// Its broker.
    pub redis: RedisFixture,
}

impl std::fmt::Debug for CliNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CliNode")
            .field("scratch", &self.scratch.path())
            .field("broker", &self.redis.url())
            .finish()
    }
}

impl CliNode {
    /// A node whose scratch directory's name starts with `prefix`.
    pub fn start(prefix: &str) -> Self {
        Self::start_with(prefix, &[])
    }

    /// A node whose imagebusd gets `extra` flags.
    pub fn start_with(prefix: &str, extra: &[&str]) -> Self {
        let redis = RedisFixture::start();
        let scratch = KernelScratch::new(prefix);
        let image = scratch.path().join("busybox.sqsh");
        std::fs::copy(busybox_squashfs(), &image).expect("copying the busybox image");
        let daemon = Daemon::spawn_in(scratch.path(), Some(&redis.url()), extra);
        daemon.wait_ready();
        Self {
            daemon,
            scratch,
            image,
            redis,
        }
    }

    /// Runs `imagebus ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.daemon.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {out:?}\nlog:\n{}",
            self.daemon.log()
        );
        out.stdout
    }

    /// Runs `imagebus --json ARGS`, which must succeed; its output as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("JSON output")
    }

    /// No container, mount or attachment is left, and the kernel agrees: no mount or loop
    /// device under the scratch directory.
    pub fn assert_clean(&self) {
        assert_eq!(self.json(&["ps"]), serde_json::json!([]));
        assert_eq!(self.json(&["mount", "list"]), serde_json::json!([]));
        assert_eq!(self.json(&["attach", "list"]), serde_json::json!([]));
        assert!(crate::rootfs::mounts_under(self.scratch.path()).is_empty());
        assert!(crate::rootfs::loops_under(self.scratch.path()).is_empty());
    }

    /// The image copy's path.
    pub fn image(&self) -> &str {
        self.image.to_str().expect("a UTF-8 scratch path")
    }
}
