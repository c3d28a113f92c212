//! CPU time spent by this process, its children and a cgroup subtree, from the kernel's
//! cgroup accounting: the benchmarks' "CPU ms per create", which other load on the
//! machine does not skew the way wall-clock rates are skewed.
//!
//! [`CpuMeter::enter`] moves this process into a cgroup of its own (cgroup v1 `cpuacct`,
//! or the v2 unified hierarchy), so everything it starts afterwards (redis, monitors,
//! runc, runc's init) is charged there; containers moved by the runtime into their own
//! cgroups are charged to the subtree passed to [`CpuMeter::usage`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cgroup this process runs in, removed (after moving back to the original) on drop.
#[derive(Debug)]
pub struct CpuMeter {
    mount: PathBuf,
    own: PathBuf,
    parent: PathBuf,
    v2: bool,
}

impl CpuMeter {
    /// Moves this process into a new cgroup `<name>` next to its current one; `None` when
    /// no cpu accounting hierarchy is writable (not root, or no cgroup fs).
    pub fn enter(name: &str) -> Option<Self> {
        let v1 = Path::new("/sys/fs/cgroup/cpuacct");
        let (mount, v2) = if v1.join("cpuacct.usage").is_file() {
            (v1.to_path_buf(), false)
        } else if Path::new("/sys/fs/cgroup/cgroup.controllers").is_file() {
            (PathBuf::from("/sys/fs/cgroup"), true)
        } else {
            return None;
        };
        let parent = mount.join(current(v2)?.trim_start_matches('/'));
        let own = parent.join(name);
        std::fs::create_dir_all(&own).ok()?;
        std::fs::write(own.join("cgroup.procs"), std::process::id().to_string()).ok()?;
        Some(Self {
            mount,
            own,
            parent,
            v2,
        })
    }

    /// CPU time charged so far to this process's cgroup plus the subtree `extra` (a
    /// cgroup path such as `/<instance>`, which may not exist yet).
    pub fn usage(&self, extra: &str) -> Duration {
        let extra = self.mount.join(extra.trim_start_matches('/'));
        self.read(&self.own) + self.read(&extra)
    }

    /// Moves process `pid` (and what it starts from then on) into the cgroup `<name>` below
    /// this process's, so that [`CpuMeter::usage_below`] tells its share apart. `false`
    /// when the kernel refused.
    pub fn split_off(&self, name: &str, pid: u32) -> bool {
        let dir = self.own.join(name);
        std::fs::create_dir_all(&dir).is_ok()
            && std::fs::write(dir.join("cgroup.procs"), pid.to_string()).is_ok()
    }

    /// CPU time charged so far to the cgroup `<name>` made by [`CpuMeter::split_off`]
    /// (also part of [`CpuMeter::usage`]).
    pub fn usage_below(&self, name: &str) -> Duration {
        self.read(&self.own.join(name))
    }

    /// CPU time charged so far to the cgroup subtree `path` alone (e.g. `/<instance>`).
    pub fn usage_at(&self, path: &str) -> Duration {
        self.read(&self.mount.join(path.trim_start_matches('/')))
    }

    /// CPU time of this process alone (all its threads), not of its children.
    pub fn own_process() -> Duration {
        let ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| imagebus_sys::proc::parse_stat(&s))
            .map_or(0, |s| s.cpu_ticks);
        // USER_HZ, which /proc reports in, is 100 on every Linux architecture we run on.
        Duration::from_millis(ticks * 10)
    }

    fn read(&self, dir: &Path) -> Duration {
        if self.v2 {
            std::fs::read_to_string(dir.join("cpu.stat"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("usage_usec "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .map(Duration::from_micros)
                .unwrap_or_default()
        } else {
            std::fs::read_to_string(dir.join("cpuacct.usage"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_nanos)
                .unwrap_or_default()
        }
    }
}

impl Drop for CpuMeter {
    fn drop(&mut self) {
        let me = std::process::id().to_string();
        let _ = std::fs::write(self.parent.join("cgroup.procs"), &me);
        // Processes split off below go back to the parent, so the directories can go.
        for sub in std::fs::read_dir(&self.own).into_iter().flatten().flatten() {
            if !sub.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let procs =
                std::fs::read_to_string(sub.path().join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
            let _ = std::fs::remove_dir(sub.path());
        }
        let _ = std::fs::remove_dir(&self.own);
    }
}

/// This process's cgroup path in the cpu accounting hierarchy.
fn current(v2: bool) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if v2 {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == "cpuacct")
        };
        hit.then(|| path.to_string())
    })
}
