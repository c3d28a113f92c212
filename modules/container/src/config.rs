//! Where the container module keeps things, and the seams it uses.

use crate::error::ContainerError;
use imagebus_sys::cgroup::{Cgroups, LinuxCgroups};
use imagebus_sys::monitor::{LinuxMonitorLauncher, MonitorLauncher};
use imagebus_sys::ns::{LinuxNetNamespaces, NetNamespaces};
use imagebus_sys::oci_cli::{Flavour, OciCli};
use imagebus_sys::paths::is_plain_absolute;
use imagebus_sys::proc::{LinuxProcesses, Processes};
use imagebus_sys::runtime::Runtime;
use imagebus_sys::session::{LinuxSessionLauncher, SessionLauncher};
use std::path::PathBuf;
use std::sync::Arc;

/// Name of the monitor binary installed next to `imagebusd`.
pub const MONITOR_BINARY: &str = "imagebus-monitor";

/// Configuration of the container module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    /// Persistent per-container state (`<id>/record.json`, `<id>/bundle/`), e.g.
    /// `/var/lib/imagebus/container`.
    pub state_dir: PathBuf,
    /// Runtime state: `runc/` or `crun/` (the runtime's `--root`) and the files of each
    /// container's current run (`<id>/`: pid file, exit file, runtime and monitor logs),
    /// e.g. `/run/imagebus/container`, a tmpfs: none of it outlives a reboot.
    pub run_dir: PathBuf,
    /// Container logs (`<runtime id>.log`), e.g. `/var/log/imagebus/containers`.
    pub log_dir: PathBuf,
    /// The OCI runtime: `runc` (default), `crun`, or a path to either binary (a file name
    /// starting with `crun` selects crun; see [`Flavour::of_binary`]).
    pub runtime: PathBuf,
    /// The monitor command: program and leading arguments (`-` is appended: the monitor
    /// reads its config from stdin).
    /// Default: `imagebus-monitor` next to the running executable.
    pub monitor: Vec<String>,
    /// Prefix of runtime ids (`<instance>-<id>`) and the cgroup directory
    /// (`/<instance>/<runtime id>`). Two daemons on one host need different instances.
    pub instance: String,
    /// The size past which each container's log file is rotated (`None`: never; a
    /// container's `log.max_bytes` wins). The monitor's log capture is the log's only
    /// writer: it renames the file to `<log>.1` (older ones move up) and starts a new one
    /// (see `imagebus_sys::logfile`). Default [`DEFAULT_LOG_MAX_BYTES`].
    pub log_max_bytes: Option<u64>,
    /// Files each container's log keeps, the current one included (a container's
    /// `log.max_files` wins). Default [`DEFAULT_LOG_MAX_FILES`].
    pub log_max_files: u32,
}

/// Files a container's log keeps by default: the current one and one older.
pub const DEFAULT_LOG_MAX_FILES: u32 = imagebus_sys::monitor::DEFAULT_LOG_FILES;

/// The default rotation size of a container's log file: 64 MiB.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 64 << 20;

impl ContainerConfig {
    /// The usual layout under the three given directories, runtime `runc`, instance
    /// `imagebus`.
    pub fn new(
        state_dir: impl Into<PathBuf>,
        run_dir: impl Into<PathBuf>,
        log_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            state_dir: state_dir.into(),
            run_dir: run_dir.into(),
            log_dir: log_dir.into(),
            runtime: PathBuf::from("runc"),
            monitor: vec![default_monitor().display().to_string()],
            instance: "imagebus".into(),
            log_max_bytes: Some(DEFAULT_LOG_MAX_BYTES),
            log_max_files: DEFAULT_LOG_MAX_FILES,
        }
    }

    /// Checks paths and the instance name.
    pub fn validate(&self) -> Result<(), ContainerError> {
        for (what, dir) in [
            ("state_dir", &self.state_dir),
            ("run_dir", &self.run_dir),
            ("log_dir", &self.log_dir),
        ] {
            if !is_plain_absolute(dir) {
                return Err(ContainerError::Invalid(format!(
                    "{what} {dir:?} must be an absolute path without '..'"
                )));
            }
        }
        if self.monitor.is_empty() {
            return Err(ContainerError::Invalid(
                "the monitor command is empty".into(),
            ));
        }
        let ok = !self.instance.is_empty()
            && self.instance.len() <= 32
            && self
                .instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(ContainerError::Invalid(format!(
                "instance {:?} must be 1-32 characters of A-Z a-z 0-9 - _",
                self.instance
            )));
        }
        Ok(())
    }

    /// Which runtime [`Self::runtime`] selects.
    pub fn runtime_flavour(&self) -> Flavour {
        Flavour::of_binary(&self.runtime)
    }

    /// The runtime's `--root` (`<run_dir>/runc` or `<run_dir>/crun`: their state formats
    /// differ).
    pub fn runtime_root(&self) -> PathBuf {
        self.run_dir.join(self.runtime_flavour().name())
    }

    /// Runtime id of container `id`.
    pub fn runtime_id(&self, id: u64) -> String {
        format!("{}-{id}", self.instance)
    }

    /// The cgroup every container of this instance lives under.
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.instance)
    }

    /// Absolute cgroup path of container `id`.
    pub fn cgroup_path(&self, id: u64) -> String {
        format!("{}/{}", self.cgroup_parent(), self.runtime_id(id))
    }

    /// State directory of container `id`.
    pub fn container_dir(&self, id: u64) -> PathBuf {
        self.state_dir.join(id.to_string())
    }

    /// Directory of the current run's files of container `id` (pid file, exit file,
    /// runtime and monitor logs).
    pub fn run_files_dir(&self, id: u64) -> PathBuf {
        self.run_dir.join(id.to_string())
    }

    /// Where interactive sessions put their stream sockets: `<run_dir>.sessions`, beside
    /// the run directory (which is root-only), so that a caller of another uid can reach
    /// its own session's socket (each in a 0700 directory owned by that uid).
    pub fn session_dir(&self) -> PathBuf {
        PathBuf::from(format!("{}.sessions", self.run_dir.display()))
    }

    /// Root-only files of interactive sessions (console sockets, pid files, runtime logs).
    pub fn session_work_dir(&self) -> PathBuf {
        self.run_dir.join("sessions")
    }

    /// Log file of container `id`.
    pub fn log_file(&self, id: u64) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.runtime_id(id)))
    }

    /// The spool files container `id` writes its stdout and stderr to (read by the
    /// monitor's log capture).
    pub fn spool_files(&self, id: u64) -> (PathBuf, PathBuf) {
        let rid = self.runtime_id(id);
        (
            self.log_dir.join(format!("{rid}.stdout")),
            self.log_dir.join(format!("{rid}.stderr")),
        )
    }

    /// Every file of container `id`'s log: the log, its rotated files, the spools.
    pub fn log_files(&self, id: u64) -> Vec<PathBuf> {
        let mut files = imagebus_sys::logfile::all_files(&self.log_file(id));
        let (out, err) = self.spool_files(id);
        files.extend([out, err]);
        files
    }
}

/// `imagebus-monitor` next to the running executable (or on `PATH`).
pub fn default_monitor() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(MONITOR_BINARY)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(MONITOR_BINARY))
}

/// The syscall and tool seams of the container module.
#[derive(Clone)]
pub struct ContainerSys {
    /// The OCI runtime.
    pub runtime: Arc<dyn Runtime>,
    /// Starts per-container monitors.
    pub monitors: Arc<dyn MonitorLauncher>,
    /// Named network namespaces.
    pub netns: Arc<dyn NetNamespaces>,
    /// Cgroup cleanup.
    pub cgroups: Arc<dyn Cgroups>,
    /// Process start times (telling a pid from its reuse) and exit waits (pidfds).
    pub procs: Arc<dyn Processes>,
    /// Starts interactive session helpers (`Session`).
    pub sessions: Arc<dyn SessionLauncher>,
}

impl std::fmt::Debug for ContainerSys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSys")
            .field("runtime", &self.runtime.name())
            .finish_non_exhaustive()
    }
}

impl ContainerSys {
    /// The real machine: runc or crun (wrapped on hybrid cgroup hosts, detected now) under
    /// `cfg.runtime_root()`, the configured monitor,
    /// `/var/run/netns`, cgroups from the mount table, processes from `/proc` and pidfds.
    pub fn linux(cfg: &ContainerConfig) -> Self {
        let (program, args) = match cfg.monitor.split_first() {
            Some((p, a)) => (PathBuf::from(p), a.to_vec()),
            None => (default_monitor(), Vec::new()),
        };
        Self {
            runtime: Arc::new(OciCli::for_binary(&cfg.runtime, cfg.runtime_root())),
            monitors: Arc::new(LinuxMonitorLauncher::new(program.clone(), args.clone())),
            sessions: Arc::new(LinuxSessionLauncher::new(program, args)),
            netns: Arc::new(LinuxNetNamespaces::default()),
            cgroups: Arc::new(LinuxCgroups),
            procs: Arc::new(LinuxProcesses),
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_runtime_setting_selects_the_flavour_and_its_root() {
        let mut cfg = ContainerConfig::new("/s", "/r", "/l");
        assert_eq!(cfg.runtime_flavour(), Flavour::Runc);
        assert_eq!(cfg.runtime_root(), Path::new("/r/runc"));
        cfg.runtime = "/usr/bin/crun".into();
        assert_eq!(cfg.runtime_flavour(), Flavour::Crun);
        assert_eq!(cfg.runtime_root(), Path::new("/r/crun"));
    }
}
