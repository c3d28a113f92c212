//! [`BusNode`]: a private redis-server, a kernel scratch directory with a copy of the
//! busybox squashfs, and a real `imagebusd` inside it, reached through the generated bus
//! stubs. It compares the daemon's lists with the kernel (mountinfo, loop devices, runc,
//! cgroups, monitors) and cleans everything up on drop, also after a failure: the daemon
//! force-deletes its containers, then [`RuntimePurge`] removes what is left of runc,
//! monitors and cgroups, then the scratch sweep unmounts and detaches.

use crate::daemon::{wait_until, CliOutput, Daemon};
use crate::kernel_probe::{cgroups_of, monitors_under, runc_list, RuntimePurge};
use crate::redis::RedisFixture;
use crate::rootfs::{loops_under, mounts_under, KernelScratch};
use imagebus_bus::Client;
use imagebus_schema::attach::{AttachInfo, AttachModule, AttachModuleStub};
use imagebus_schema::container::{
    ContainerFilter, ContainerInfo, ContainerModule, ContainerModuleStub, ContainerState,
};
use imagebus_schema::mount::{MountInfo, MountModule, MountModuleStub};
use imagebus_schema::{Holder, Selector};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The three modules' stubs on one client.
#[derive(Clone)]
pub struct Stubs {
    /// `attach.attach@1`.
    pub attach: AttachModuleStub,
    /// `mount.mount@1`.
    pub mount: MountModuleStub,
    /// `container.container@1`.
    pub container: ContainerModuleStub,
}

impl std::fmt::Debug for Stubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stubs")
    }
}

/// Everything the daemon reports.
#[derive(Debug, Clone)]
pub struct Lists {
    /// `attach.List`.
    pub attachments: Vec<AttachInfo>,
    /// `mount.List`.
    pub mounts: Vec<MountInfo>,
    /// `container.List`.
    pub containers: Vec<ContainerInfo>,
}

/// See the module docs. Fields drop in order: daemon, purge, scratch, redis.
#[derive(Debug)]
pub struct BusNode {
    /// The daemon.
    pub daemon: Daemon,
    purge: RuntimePurge,
    /// Its scratch directory (the daemon's directories and the images are inside).
    pub scratch: KernelScratch,
    /// A copy of the busybox squashfs inside the scratch directory.
    pub image: PathBuf,
    /// The broker.
    pub redis: RedisFixture,
}

impl BusNode {
    /// Starts a node whose daemon serves `workers` requests per module at once.
    pub fn start(prefix: &str, workers: u32) -> Self {
        Self::start_prepared(prefix, workers, |_| {})
    }

    /// [`BusNode::start`], calling `prepare` with the daemon's (empty) state directory
    /// before the daemon starts (e.g. to mount a small tmpfs there).
    pub fn start_prepared(prefix: &str, workers: u32, prepare: impl FnOnce(&Path)) -> Self {
        require_container_tools();
        let redis = RedisFixture::start();
        let scratch = KernelScratch::new(prefix);
        let image = scratch.path().join("busybox.sqsh");
        std::fs::copy(crate::image::busybox_squashfs(), &image).expect("copying the image");
        let workers = workers.to_string();
        let mut flags = vec!["--workers", workers.as_str()];
        // As many mutation slots per actor as workers, where the daemon has the setting
        // (ADR 0002), so the bounds under test are the actors', not a small host's default.
        if supports_max_mutations() {
            flags.extend(["--max-mutations", workers.as_str()]);
        }
        let daemon = Daemon::spawn_prepared(scratch.path(), Some(&redis.url()), &flags, prepare);
        let purge = RuntimePurge {
            root: daemon.runtime_root(),
            instance: daemon.instance().to_string(),
            dir: daemon.dir().to_path_buf(),
        };
        daemon.wait_ready();
        Self {
            daemon,
            purge,
            scratch,
            image,
            redis,
        }
    }

    /// A copy of the busybox image named `name` inside the scratch directory (distinct
    /// files give distinct loop devices).
    pub fn image_copy(&self, name: &str) -> PathBuf {
        let p = self.scratch.path().join(name);
        std::fs::copy(&self.image, &p).expect("copying the image");
        p
    }

    /// Stubs of the three modules on a fresh client whose calls wait up to `timeout`.
    pub async fn stubs(&self, timeout: Duration) -> Stubs {
        let client = Client::connect(self.redis.url())
            .await
            .expect("connecting to the broker")
            .with_timeout(timeout);
        Stubs {
            attach: AttachModuleStub::new(client.clone()),
            mount: MountModuleStub::new(client.clone()),
            container: ContainerModuleStub::new(client),
        }
    }

    /// Runs the CLI against the daemon and asserts success.
    pub fn ok(&self, args: &[&str]) -> CliOutput {
        let out = self.daemon.cli(args);
        assert!(
            out.status.success(),
            "imagebus {args:?}: {out:?}\ndaemon log:\n{}",
            self.daemon.log()
        );
        out
    }

    /// The daemon's three lists.
    pub async fn lists(&self, s: &Stubs) -> Lists {
        Lists {
            attachments: s.attach.list().await.expect("attach List"),
            mounts: s.mount.list().await.expect("mount List"),
            containers: s
                .container
                .list(ContainerFilter::default())
                .await
                .expect("container List"),
        }
    }

    /// Asserts that the kernel holds exactly what the lists say, and no more: every mount
    /// once in mountinfo (and no other below the scratch directory), every attachment's
    /// loop device (and no other backed by a file below it), a runc container, a monitor
    /// and cgroups only for known containers, every running container alive in runc with
    /// its pid, names unique in each list. Loop devices are given a few seconds to go
    /// (the kernel releases an autoclear device after its last close).
    pub fn assert_kernel_matches(&self, l: &Lists) {
        let root = self.scratch.path();
        unique_names("attachment", l.attachments.iter().map(|a| a.name.clone()));
        unique_names("mount", l.mounts.iter().map(|m| m.name.clone()));
        unique_names("container", l.containers.iter().map(|c| c.name.clone()));

        let mut kernel: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for e in mounts_under(root) {
            *kernel.entry(e.mount_point).or_default() += 1;
        }
        let listed: BTreeMap<PathBuf, usize> =
            l.mounts.iter().map(|m| (m.mountpoint.clone(), 1)).collect();
        assert_eq!(kernel, listed, "mountinfo vs mount List: {:#?}", l.mounts);

        let devices: BTreeSet<PathBuf> = l
            .attachments
            .iter()
            .filter(|a| a.driver == "loop")
            .map(|a| a.device.clone())
            .collect();
        let loops =
            || -> BTreeSet<PathBuf> { loops_under(root).into_iter().map(|x| x.0).collect() };
        // An orphan loop device that a half-created container's mount namespace still pins
        // is detached by the kernel (autoclear) only once the container module's
        // reconciliation has deleted that container; on a loaded machine that takes seconds.
        wait_until(Duration::from_secs(20), || loops() == devices);
        assert_eq!(loops(), devices, "loop devices vs attach List");

        let by_rid: BTreeMap<&str, &ContainerInfo> = l
            .containers
            .iter()
            .map(|c| (c.runtime_id.as_str(), c))
            .collect();
        for (rid, status, pid) in runc_list(&self.daemon.runtime_root()) {
            let c = by_rid
                .get(rid.as_str())
                .unwrap_or_else(|| panic!("runc container {rid} ({status}) is not in List"));
            if c.state == ContainerState::Running {
                assert_eq!(status, "running", "runc state of {rid}");
                assert_eq!(Some(pid), c.pid, "pid of {rid}");
            }
        }
        for c in l
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
        {
            let pid = c.pid.expect("a running container has a pid");
            assert!(
                crate::kernel_probe::pid_alive(pid),
                "init of running container {} is gone",
                c.id
            );
        }
        for cg in cgroups_of(self.daemon.instance()) {
            assert!(
                by_rid.contains_key(cg.as_str()),
                "cgroup {cg} belongs to no listed container"
            );
        }
        let ids: BTreeSet<String> = l.containers.iter().map(|c| c.id.to_string()).collect();
        let state = self.daemon.dir().join("state/container");
        let run = self.daemon.run_dir().join("container");
        let of_listed = |f: &std::path::Path, dir: &std::path::Path| {
            f.strip_prefix(dir)
                .ok()
                .and_then(|r| r.iter().next())
                .is_some_and(|id| ids.contains(id.to_string_lossy().as_ref()))
        };
        for (pid, files) in monitors_under(self.daemon.dir()) {
            let known = files.iter().any(|f| {
                of_listed(f, &state)
                    || of_listed(f, &run)
                    || by_rid
                        .keys()
                        .any(|rid| f.to_string_lossy().contains(&format!("{rid}.log")))
            });
            assert!(
                known,
                "monitor {pid} ({files:?}) belongs to no listed container"
            );
        }
        // Per-container directories (record and bundle; the run's files): only listed ids.
        for dir in [&state, &run] {
            let left: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<u64>().is_ok() && !ids.contains(n))
                .collect();
            assert!(
                left.is_empty(),
                "{dir:?}: directories of unlisted ids {left:?}"
            );
        }
    }

    /// Deletes every container (force), then every user-held mount and attachment.
    pub async fn delete_all(&self, s: &Stubs) {
        for c in s
            .container
            .list(ContainerFilter::default())
            .await
            .expect("List")
        {
            s.container
                .delete(Selector::Id(c.id), true)
                .await
                .unwrap_or_else(|e| panic!("deleting container {}: {e:?}", c.id));
        }
        for m in s.mount.list().await.expect("List") {
            if m.holders.contains(&Holder::User) {
                let r = s.mount.unmount(Selector::Id(m.id), true).await;
                assert!(r.is_ok() || gone(&r), "unmounting {}: {r:?}", m.id);
            }
        }
        for a in s.attach.list().await.expect("List") {
            if a.holders.contains(&Holder::User) {
                let r = s.attach.detach(Selector::Id(a.id), true).await;
                assert!(r.is_ok() || gone(&r), "detaching {}: {r:?}", a.id);
            }
        }
    }

    /// Asserts the daemon lists nothing and nothing of ours is left in the kernel.
    pub async fn assert_clean(&self, s: &Stubs) {
        let l = self.lists(s).await;
        assert!(
            l.containers.is_empty(),
            "containers left: {:#?}",
            l.containers
        );
        assert!(l.mounts.is_empty(), "mounts left: {:#?}", l.mounts);
        assert!(
            l.attachments.is_empty(),
            "attachments left: {:#?}",
            l.attachments
        );
        self.assert_kernel_clean();
    }

    /// Nothing below the scratch directory, no runc container, cgroup or monitor.
    pub fn assert_kernel_clean(&self) {
        let root = self.scratch.path();
        assert!(mounts_under(root).is_empty(), "{:?}", mounts_under(root));
        assert!(
            wait_until(Duration::from_secs(5), || loops_under(root).is_empty()),
            "loop devices left: {:?}",
            loops_under(root)
        );
        assert!(runc_list(&self.daemon.runtime_root()).is_empty());
        assert!(cgroups_of(self.daemon.instance()).is_empty());
        assert!(
            wait_until(Duration::from_secs(5), || monitors_under(self.daemon.dir())
                .is_empty()),
            "monitors left: {:?}",
            monitors_under(self.daemon.dir())
        );
    }

    /// The purge guard (e.g. to purge by hand between phases).
    pub fn purge(&self) -> &RuntimePurge {
        &self.purge
    }

    /// The scratch directory.
    pub fn root(&self) -> &Path {
        self.scratch.path()
    }
}

fn gone<T>(r: &Result<T, imagebus_bus::RemoteError>) -> bool {
    matches!(r, Err(e) if e.code == imagebus_bus::ErrorCode::NotFound)
}

fn unique_names(what: &str, names: impl Iterator<Item = Option<String>>) {
    let mut seen = BTreeSet::new();
    for n in names.flatten() {
        assert!(seen.insert(n.clone()), "{what} name {n:?} listed twice");
    }
}

/// Fails with an install hint unless runc, busybox-static and squashfs-tools are there.
pub fn require_container_tools() {
    let runc = std::process::Command::new("runc").arg("--version").output();
    assert!(
        runc.is_ok_and(|o| o.status.success()),
        "runc is missing: apt-get install runc"
    );
    assert!(
        Path::new(crate::image::BUSYBOX).exists(),
        "busybox is missing: apt-get install busybox-static"
    );
}

/// Whether this imagebusd has `--max-mutations`.
fn supports_max_mutations() -> bool {
    static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *YES.get_or_init(|| {
        std::process::Command::new(crate::daemon::bin("imagebusd"))
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--max-mutations"))
    })
}
