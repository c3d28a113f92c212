//! Shared fixture of the container integration tests: the real attach, mount and container
//! actors over the real kernel and the real runc, in a scratch directory. Dropping a
//! [`Node`] force-deletes every runc container of its private runtime root, removes its
//! cgroups, then unmounts and detaches everything under the scratch directory — also when
//! the test failed.

#![allow(dead_code)]

use futures::StreamExt;
use imagebus_attach::{AttachConfig, AttachHandle};
use imagebus_container::{ContainerConfig, ContainerHandle, ContainerSys};
use imagebus_mount::{MountConfig, MountHandle, MountSys};
use imagebus_schema::container::{
    CommandLine, ContainerEvent, ContainerInfo, ContainerModule, ContainerSpec, ContainerState,
    ExecSpec,
};
use imagebus_schema::mount::{BindMount, MountRef, MountSource, MountSpec};
use imagebus_schema::Selector;
use imagebus_sys::cgroup::{Cgroups, LinuxCgroups};
use imagebus_tests::rootfs::KernelScratch;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const BUSYBOX: &str = "/bin/busybox";

/// Busybox applets linked into test root filesystems.
const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "hostname", "ip", "id", "grep", "mount", "kill", "ps",
    "env", "true", "false", "pwd", "touch", "mkdir", "readlink", "wc", "head", "tail", "stat",
];

/// Fails with an install hint unless runc and busybox are there.
pub fn require_tools() {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: apt-get install busybox-static"
    );
    let runc = Command::new("runc").arg("--version").output();
    assert!(
        runc.map(|o| o.status.success()).unwrap_or(false),
        "runc is missing: apt-get install runc"
    );
}

/// The monitor binary (`cargo build -p imagebus-container --bins` once per test process,
/// or `$IMAGEBUS_BIN_DIR/imagebus-monitor`).
pub fn monitor_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("IMAGEBUS_BIN_DIR") {
            return PathBuf::from(dir).join("imagebus-monitor");
        }
        let exe = std::env::current_exe().expect("test executable path");
        let mut dir = exe.parent().expect("test dir").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let out = Command::new(cargo)
            .args(["build", "-p", "imagebus-container", "--bins", "--quiet"])
            .current_dir(workspace)
            .output()
            .expect("running cargo build -p imagebus-container --bins");
        assert!(
            out.status.success(),
            "building imagebus-monitor failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = dir.join("imagebus-monitor");
        assert!(bin.is_file(), "{bin:?} missing after the build");
        bin
    })
    .clone()
}

/// A busybox root filesystem directory at `dir` with `files` (path, contents, mode).
pub fn busybox_rootfs(dir: &Path, files: &[(&str, &str, u32)]) {
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "data",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    for (path, contents, mode) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

/// Packs `dir` into a squashfs image.
pub fn squashfs(dir: &Path, image: &Path) {
    let out = Command::new("mksquashfs")
        .arg(dir)
        .arg(image)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .expect("running mksquashfs (apt-get install squashfs-tools)");
    assert!(
        out.status.success(),
        "mksquashfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bind mount of a host directory (inline).
pub fn bind_root(dir: &Path) -> MountRef {
    MountRef::Inline(Box::new(MountSpec {
        name: None,
        source: MountSource::Bind(BindMount {
            path: dir.into(),
            base: None,
            read_only: false,
            recursive: false,
        }),
    }))
}

/// overlay → squashfs image → loop attachment, all inline.
pub fn overlay_on_image(image: &Path) -> MountRef {
    use imagebus_tests::mount_stack::{image_on_loop, inline, overlay};
    inline(overlay(vec![inline(image_on_loop(image))]))
}

/// A spec with defaults around `mount` and `command`.
pub fn spec(mount: MountRef, command: &str) -> ContainerSpec {
    ContainerSpec::new(mount, CommandLine::Line(command.into()))
}

/// A unique runtime instance name for this test (cgroups and runtime ids never collide
/// between tests running in parallel).
pub fn unique_instance(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ibt-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Directories of a node under `root`.
pub fn configs(root: &Path, instance: &str) -> (AttachConfig, MountConfig, ContainerConfig) {
    let mut ccfg = ContainerConfig::new(
        root.join("state/container"),
        root.join("run/container"),
        root.join("log"),
    );
    ccfg.monitor = vec![monitor_binary().display().to_string()];
    ccfg.instance = instance.to_string();
    (
        AttachConfig {
            state_dir: root.join("state/attach"),
            run_dir: root.join("run/attach"),
        },
        MountConfig {
            state_dir: root.join("state/mount"),
            run_dir: root.join("run"),
        },
        ccfg,
    )
}

/// Removes every runc container and cgroup of `cfg` (synchronously, for Drop).
pub fn purge_runtime(cfg: &ContainerConfig) {
    let root = cfg.runtime_root();
    if let Ok(out) = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
    {
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", id])
                .output();
        }
    }
    let _ = LinuxCgroups.remove(&format!("/{}", cfg.instance));
}

/// Child cgroups (directories) left below `instance` in any hierarchy.
#[allow(unused_imports)] // not every test file that includes this module uses it
pub use imagebus_tests::kernel_probe::cgroup_dirs_of as cgroups_of;

/// attach + mount + container actors on a scratch directory.
pub struct Node {
    pub attach: AttachHandle,
    pub mount: MountHandle,
    pub container: ContainerHandle,
    pub cfg: ContainerConfig,
    pub stop: CancellationToken,
    pub container_stop: CancellationToken,
    // Dropped last (after the runtime purge in Drop).
    pub scratch: KernelScratch,
}

impl Node {
    /// Starts a node in a fresh scratch directory.
    pub async fn start(tag: &str) -> Node {
        require_tools();
        let scratch = KernelScratch::new(&format!("ibc-{tag}-"));
        let instance = unique_instance(tag);
        Self::start_in(scratch, &instance).await
    }

    pub async fn start_in(scratch: KernelScratch, instance: &str) -> Node {
        let (acfg, mcfg, ccfg) = configs(scratch.path(), instance);
        let attach = imagebus_tests::mount_stack::attach_actor(acfg)
            .await
            .expect("attach actor");
        let stop = CancellationToken::new();
        let m = imagebus_mount::spawn(
            mcfg,
            MountSys::linux(),
            Arc::new(attach.clone()),
            stop.clone(),
            imagebus_mount::Limits::default(),
        )
        .await
        .expect("mount actor");
        let container_stop = CancellationToken::new();
        let c = imagebus_container::spawn(
            ccfg.clone(),
            ContainerSys::linux(&ccfg),
            Arc::new(m.handle.clone()),
            container_stop.clone(),
            imagebus_container::Limits::default(),
        )
        .await
        .expect("container actor");
        Node {
            attach,
            mount: m.handle,
            container: c.handle,
            cfg: ccfg,
            stop,
            container_stop,
            scratch,
        }
    }

    /// Stops the container actor (containers keep running) and starts a new one on the
    /// same state.
    pub async fn restart_container_actor(&mut self) {
        self.container_stop.cancel();
        self.container_stop = CancellationToken::new();
        let c = imagebus_container::spawn(
            self.cfg.clone(),
            ContainerSys::linux(&self.cfg),
            Arc::new(self.mount.clone()),
            self.container_stop.clone(),
            imagebus_container::Limits::default(),
        )
        .await
        .expect("container actor restart");
        self.container = c.handle;
    }

    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }

    /// A busybox rootfs directory `name` under the scratch dir.
    pub fn rootfs(&self, name: &str, files: &[(&str, &str, u32)]) -> PathBuf {
        let dir = self.dir().join("roots").join(name);
        busybox_rootfs(&dir, files);
        dir
    }

    /// Polls `Get` until `pred` holds (panics with the last info after `timeout`).
    pub async fn wait_for(
        &self,
        id: u64,
        timeout: Duration,
        pred: impl Fn(&ContainerInfo) -> bool,
    ) -> ContainerInfo {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.container.get(Selector::Id(id)).await.expect("get");
            if pred(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting; last state {info:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the log until it contains `needle`.
    pub async fn wait_log(&self, id: u64, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let chunk = self
                .container
                .logs(Selector::Id(id), Default::default())
                .await
                .expect("logs");
            if chunk.data.contains(needle) {
                return chunk.data;
            }
            assert!(
                Instant::now() < deadline,
                "log of {id} never showed {needle:?}; got {:?}",
                chunk.data
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.container_stop.cancel();
        purge_runtime(&self.cfg);
        self.stop.cancel();
    }
}

/// Collects events until `pred` says stop (or the timeout passes).
pub async fn collect_events(
    mut events: imagebus_bus::EventStream<ContainerEvent>,
    timeout: Duration,
    mut done: impl FnMut(&[ContainerEvent]) -> bool,
) -> Vec<ContainerEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&seen) {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(ev)) => seen.push(ev),
            _ => break,
        }
    }
    seen
}

pub fn is_state(s: ContainerState) -> impl Fn(&ContainerInfo) -> bool {
    move |i| i.state == s
}

static NS_SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new() -> Self {
        let name = format!(
            "ibt-ns-{}-{}",
            std::process::id(),
            NS_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip (apt-get install iproute2)");
        assert!(
            out.status.success(),
            "ip netns add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns(name);
        // A marker only visible inside: an address on the namespace's loopback.
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", "127.0.0.77/8", "dev", "lo"],
        ] {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns.0, "ip"])
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

/// An exec of `cmd` (shell-split) with `X=42` in its environment and `/tmp` as its cwd.
pub fn exec_spec(cmd: &str, timeout_ms: Option<u64>) -> ExecSpec {
    ExecSpec {
        command: CommandLine::Line(cmd.into()),
        env: vec!["X=42".into()],
        working_dir: Some("/tmp".into()),
        user: None,
        timeout_ms,
    }
}

/// An exec that outlives its 300 ms timeout fails with `Timeout` well within 10 s, and the
/// process is gone from the container afterwards.
pub async fn assert_exec_timeout_kills(container: &dyn ContainerModule, id: u64) {
    let t = Instant::now();
    let err = container
        .exec(
            imagebus_schema::Selector::Id(id),
            exec_spec("sleep 30", Some(300)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, imagebus_bus::ErrorCode::Timeout, "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let ps = container
        .exec(imagebus_schema::Selector::Id(id), exec_spec("ps", None))
        .await
        .unwrap();
    assert!(
        !ps.stdout.contains("sleep 30"),
        "the timed-out process was killed: {}",
        ps.stdout
    );
}
