//! What a daemon's containers left in the kernel and the process table, seen without the
//! daemon: runc's containers under its `--root`, cgroup directories of an instance,
//! `imagebus-monitor` processes, plus [`RuntimePurge`], a guard that removes all of it
//! (also when a test failed). Used to compare the kernel with the daemon's lists.

use imagebus_sys::cgroup::{Cgroups, LinuxCgroups};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// runc's containers under `root`: (id, status, pid), from `runc list --format json`.
pub fn runc_list(root: &Path) -> Vec<(String, String, u32)> {
    if !root.is_dir() {
        return Vec::new();
    }
    let out = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["list", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("running runc ({e}): apt-get install runc"));
    assert!(
        out.status.success(),
        "runc list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
                c["pid"].as_u64().unwrap_or(0) as u32,
            )
        })
        .collect()
}

/// Names of the cgroup directories below `/<instance>` in any hierarchy (`<instance>-<id>`).
pub fn cgroups_of(instance: &str) -> BTreeSet<String> {
    cgroup_dirs_of(instance)
        .into_iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// The child cgroups (directories) below `/<instance>` in any hierarchy.
pub fn cgroup_dirs_of(instance: &str) -> Vec<std::path::PathBuf> {
    LinuxCgroups
        .hierarchies()
        .into_iter()
        .map(|h| h.join(instance))
        .filter_map(|p| std::fs::read_dir(p).ok())
        .flat_map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
        })
        .collect()
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn fd_targets(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live `imagebus-monitor` processes of containers of the daemon whose directories are
/// below `dir`: (pid, the paths below `dir` it holds open).
pub fn monitors_under(dir: &Path) -> Vec<(u32, Vec<PathBuf>)> {
    pids()
        .into_iter()
        .filter(|p| alive(*p))
        .filter(|p| {
            cmdline(*p)
                .first()
                .is_some_and(|a| a.ends_with("imagebus-monitor"))
        })
        .filter_map(|p| {
            let ours: Vec<PathBuf> = fd_targets(p)
                .into_iter()
                .filter(|t| t.starts_with(dir))
                .collect();
            (!ours.is_empty()).then_some((p, ours))
        })
        .collect()
}

/// Monitor zygotes (`imagebus-monitor -`, reading configs from a pipe) started by the
/// process `daemon`: those whose stdin is a pipe the daemon holds the other end of (the
/// monitors they fork point their stdin at `/dev/null`).
pub fn monitor_zygotes_of(daemon: u32) -> Vec<u32> {
    let pipes: BTreeSet<PathBuf> = fd_targets(daemon)
        .into_iter()
        .filter(|t| t.to_string_lossy().starts_with("pipe:"))
        .collect();
    if pipes.is_empty() {
        return Vec::new();
    }
    pids()
        .into_iter()
        .filter(|p| alive(*p))
        .filter(|p| {
            let c = cmdline(*p);
            c.first().is_some_and(|a| a.ends_with("imagebus-monitor"))
                && c.last().is_some_and(|a| a == "-")
        })
        .filter(|p| std::fs::read_link(format!("/proc/{p}/fd/0")).is_ok_and(|t| pipes.contains(&t)))
        .collect()
}

/// Whether process `pid` exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    alive(pid)
}

/// On drop: force-deletes every runc container under `root`, kills monitors holding files
/// below `dir`, and removes the cgroups of `instance` — whatever a failed test left.
#[derive(Debug)]
pub struct RuntimePurge {
    /// runc `--root`.
    pub root: PathBuf,
    /// Cgroup prefix.
    pub instance: String,
    /// The daemon's directory.
    pub dir: PathBuf,
}

impl RuntimePurge {
    /// Removes everything now (idempotent).
    pub fn purge(&self) {
        if self.root.is_dir() {
            for (id, _, _) in runc_list(&self.root) {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&self.root)
                    .args(["delete", "--force", &id])
                    .output();
            }
        }
        for (pid, _) in monitors_under(&self.dir) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        crate::daemon::wait_until(Duration::from_secs(5), || {
            monitors_under(&self.dir).is_empty()
        });
        let _ = LinuxCgroups.remove(&format!("/{}", self.instance));
    }
}

impl Drop for RuntimePurge {
    fn drop(&mut self) {
        self.purge();
    }
}
