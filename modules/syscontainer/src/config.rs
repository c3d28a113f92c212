//! Directories and seams of the system container actor.

use imagebus_schema::syscontainer::Supervisor;
use std::path::PathBuf;

/// Where the actor keeps its files and puts the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysConfig {
    /// The deployments: `<state-dir>/system` (`NAME.0`, `NAME.1`, the `NAME` symlink and
    /// the `NAME.host` journal).
    pub state_dir: PathBuf,
    /// The daemon's `--run-dir`: `EXEC_START` passes it to the CLI, which finds the
    /// broker there.
    pub run_dir: PathBuf,
    /// The host root that `hostfs/` is copied onto and that tmpfiles paths must stay in
    /// (`/`; tests point it at a scratch directory).
    pub host_root: PathBuf,
    /// zinit's unit directory (`/etc/zinit`).
    pub zinit_dir: PathBuf,
    /// zinit's control socket (`/var/run/zinit.sock`).
    pub zinit_socket: PathBuf,
    /// The root under which `run/systemd/system` says the host runs systemd (`/`;
    /// tests point it at a systemd they started, e.g. `/proc/PID/root`).
    pub systemd_root: PathBuf,
    /// systemd's unit directory (`/etc/systemd/system`): `NAME.service` goes there on a
    /// systemd host.
    pub systemd_unit_dir: PathBuf,
    /// The command that reaches the host's systemd (`systemctl`; a prefix such as
    /// `nsenter -t PID -m -p systemctl` for a systemd in another namespace).
    pub systemctl: Vec<String>,
    /// The `imagebus` CLI that `EXEC_START` and `EXEC_STOP` run.
    pub imagebus_bin: PathBuf,
}

impl SysConfig {
    /// Defaults for a node, deployments under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            run_dir: run_dir.into(),
            host_root: PathBuf::from("/"),
            zinit_dir: PathBuf::from("/etc/zinit"),
            zinit_socket: PathBuf::from("/var/run/zinit.sock"),
            systemd_root: PathBuf::from("/"),
            systemd_unit_dir: PathBuf::from("/etc/systemd/system"),
            systemctl: vec!["systemctl".to_string()],
            imagebus_bin: PathBuf::from("imagebus"),
        }
    }

    /// Deployment slot `slot` of `name`: `<state>/NAME.<slot>`.
    pub fn slot_dir(&self, name: &str, slot: u8) -> PathBuf {
        self.state_dir.join(format!("{name}.{slot}"))
    }

    /// The active-slot symlink of `name`.
    pub fn link(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    /// The journal of host paths `name` put in place.
    pub fn journal(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.host"))
    }

    /// The zinit unit of `name`.
    pub fn unit_file(&self, name: &str) -> PathBuf {
        self.zinit_dir.join(format!("{name}.yaml"))
    }

    /// The unit file of `name` under `supervisor`: `NAME.service` for systemd, else the
    /// zinit unit (written for imagebusd too, ready for a zinit).
    pub fn unit_path(&self, name: &str, supervisor: Supervisor) -> PathBuf {
        match supervisor {
            Supervisor::Systemd => self.service_file(name),
            Supervisor::Zinit | Supervisor::Imagebusd => self.unit_file(name),
        }
    }

    /// The systemd unit of `name`: `NAME.service`.
    pub fn service_name(name: &str) -> String {
        format!("{name}.service")
    }

    /// The systemd unit file of `name`.
    pub fn service_file(&self, name: &str) -> PathBuf {
        self.systemd_unit_dir.join(Self::service_name(name))
    }

    /// Whether the host runs systemd: `<systemd-root>/run/systemd/system` is a
    /// directory (systemd's own test, `sd_booted(3)`).
    pub fn systemd_booted(&self) -> bool {
        self.systemd_root.join("run/systemd/system").is_dir()
    }

    /// The mount name of slot `slot` of `name`.
    pub fn mount_name(name: &str, slot: u8) -> String {
        format!("sys.{name}.{slot}")
    }

    /// Checks that the directories are absolute.
    pub fn validate(&self) -> Result<(), String> {
        for (what, p) in [
            ("state_dir", &self.state_dir),
            ("host_root", &self.host_root),
            ("zinit_dir", &self.zinit_dir),
            ("systemd_root", &self.systemd_root),
            ("systemd_unit_dir", &self.systemd_unit_dir),
        ] {
            if !p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(format!(
                    "{what} {p:?} must be an absolute path without '..'"
                ));
            }
        }
        if self.systemctl.first().is_none_or(|p| p.is_empty()) {
            return Err("systemctl must name a command".to_string());
        }
        Ok(())
    }
}
