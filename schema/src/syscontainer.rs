//! `syscontainer.syscontainer@1`: system containers, installed the way Project Atomic's
//! `atomic install --system` does it. An image carrying `/exports/` metadata (a runtime
//! configuration template, default values, a service template, a tmpfiles template and a
//! `hostfs/` tree) is checked out into one of two deployment slots, its templates are
//! rendered with variables, its host files are put in place, and a service unit runs it as
//! a container named like the system container. Update checks out into the other slot and
//! switches; rollback switches back.

use imagebus_bus::RemoteError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Module name on the bus. Not `system`: the daemon already serves `imagebus.system@1`.
pub const MODULE: &str = "syscontainer";

/// Variables whose value the node sets; a `values` entry for one is `InvalidArgument`.
pub const FORCED_VARIABLES: [&str; 6] = [
    "DESTDIR",
    "NAME",
    "EXEC_START",
    "EXEC_STOP",
    "HOST_UID",
    "HOST_GID",
];

/// Variables with a node default that `values` may override.
pub const DEFAULTED_VARIABLES: [&str; 3] = ["RUN_DIRECTORY", "STATE_DIRECTORY", "UUID"];

/// The files of `/exports` the installer reads (`hostfs` is a directory).
pub const EXPORT_FILES: [&str; 5] = [
    "config.json.template",
    "manifest.json",
    "service.template",
    "tmpfiles.template",
    "hostfs",
];

/// What to install. Request type: unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallSpec {
    /// The system container's name (the container and the unit get it): 1–48 characters
    /// of `[A-Za-z0-9._-]`, not starting with `.` or `-`, not all digits.
    pub name: String,
    /// An image of the store (`NAME[:TAG]`, a digest), or an import source (`oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]`, an absolute file path),
    /// imported on the way.
    pub image: String,
    /// `--set` values: they win over the image's `manifest.json` defaults.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// An absolute host directory to use as the root filesystem instead of the image's
    /// (bind-mounted read-only); its `/exports` is read instead of the image's.
    #[serde(default)]
    pub rootfs: Option<PathBuf>,
}

/// What to update. Request type: unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// The system container.
    pub name: String,
    /// The new image (as in [`InstallSpec::image`]); `None`: the same image name again
    /// (picking up a re-tagged image).
    #[serde(default)]
    pub image: Option<String>,
    /// Values that override the ones the active deployment was installed with.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// Who keeps the system container's service running (chosen at install: systemd when
/// the host runs it, else zinit when it answers, else imagebusd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Supervisor {
    /// zinit answered on its socket at install: it monitors the unit, whose `exec` runs
    /// `imagebus start --attach NAME` (the container has no restart policy).
    Zinit,
    /// No zinit answered: the container module restarts the container (policy `always`);
    /// the unit is written all the same.
    Imagebusd,
    /// The host runs systemd (`run/systemd/system` exists): `NAME.service`, whose
    /// `ExecStart` runs `imagebus start --attach NAME`, is installed in systemd's unit
    /// directory and enabled (the container has no restart policy).
    Systemd,
}

/// One of the two deployments. Reply type: tolerant of unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// `0` or `1`.
    pub slot: u8,
    /// The deployment directory, `<state-dir>/system/NAME.<slot>` (the `DESTDIR`).
    pub path: PathBuf,
    /// The image as given.
    pub image: String,
    /// Its digest (empty with a `rootfs`).
    pub digest: String,
    /// The rootfs directory used instead of the image, if any.
    #[serde(default)]
    pub rootfs: Option<PathBuf>,
    /// The mount holding the checkout (`sys.NAME.<slot>`).
    pub mount: u64,
    /// The variables it was rendered with (`--set` values and defaults, forced ones
    /// included).
    pub values: BTreeMap<String, String>,
    /// The `--set` values given (kept by updates).
    pub set: BTreeMap<String, String>,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// When it was first made the active one (`None`: never; such an inactive deployment
    /// is a half-done update and is removed at start-up).
    #[serde(default)]
    pub activated_at: Option<u64>,
}

/// A system container. Reply type: tolerant of unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysContainerInfo {
    /// Its name (also its container's and its unit's).
    pub name: String,
    /// The active slot.
    pub active: u8,
    /// The deployments, active first (one or two).
    pub deployments: Vec<Deployment>,
    /// Who keeps it running.
    pub supervisor: Supervisor,
    /// The unit file: `<zinit-dir>/NAME.yaml`, or `<systemd-unit-dir>/NAME.service` on a
    /// systemd host.
    pub unit: PathBuf,
    /// Every host path the system container put in place and will remove on uninstall:
    /// the unit, `hostfs/` files, paths its tmpfiles lines created.
    pub host_paths: Vec<PathBuf>,
    /// The container's id, when it exists.
    #[serde(default)]
    pub container: Option<u64>,
    /// The container's state (`running`, `exited`, …), when it exists.
    #[serde(default)]
    pub state: Option<String>,
}

/// System containers. Served as `syscontainer.syscontainer@1`.
#[imagebus_bus::object(module = "syscontainer", name = "syscontainer", version = "1")]
pub trait SysContainerModule: Send + Sync {
    /// Installs a system container into slot 0 and starts it. Errors: `InvalidArgument`
    /// (a bad name or value, a forced variable in `values`, variables the templates use
    /// with no value, all listed, a template the container module cannot honour),
    /// `Conflict` (the name is installed, a container has it, a host file exists that is
    /// not ours), `NotFound` (the image), plus the image, mount and container modules'.
    /// Nothing is left on the host when it fails.
    async fn install(&self, spec: InstallSpec) -> Result<SysContainerInfo, RemoteError>;

    /// Stops it, checks the image out into the other slot (replacing the older deployment)
    /// with the active deployment's `--set` values overridden by `values`, switches to it
    /// and starts it again. Errors: as `Install`, `NotFound` (not installed).
    async fn update(&self, spec: UpdateSpec) -> Result<SysContainerInfo, RemoteError>;

    /// Switches back to the other deployment and restarts. Errors: `NotFound`, `Conflict`
    /// (there is no other deployment).
    async fn rollback(&self, name: String) -> Result<SysContainerInfo, RemoteError>;

    /// Stops and removes everything: the unit, the tmpfiles entries and host files, the
    /// container, both deployments and their mounts. Errors: `NotFound`.
    async fn uninstall(&self, name: String) -> Result<(), RemoteError>;

    /// One system container. Errors: `NotFound`.
    #[bus(read)]
    async fn get(&self, name: String) -> Result<SysContainerInfo, RemoteError>;

    /// Every system container, by name.
    #[bus(read)]
    async fn list(&self) -> Result<Vec<SysContainerInfo>, RemoteError>;
}
