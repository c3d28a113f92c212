//! Containers (both generations use the same object).

use crate::model::Mount;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Container states. `paused` and `restarting` exist in v0.1's enum and are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = container_state)]
pub enum ContainerState {
    Created,
    Running,
    Stopping,
    Exited,
    Dead,
    Paused,
    Restarting,
}

impl ContainerState {
    /// ImageAPI's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Stopping => "stopping",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
        }
    }
}

/// Linux namespaces (accepted and ignored, as in ImageAPI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = container_namespace)]
pub enum Namespace {
    Cgroup,
    Ipc,
    Net,
    Mnt,
    Pid,
    Time,
    User,
    Uts,
}

/// A container: an init command on a mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = container)]
pub struct Container {
    /// Read-only: the container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Optional unique name (1-64 of `A-Z a-z 0-9 . _ -`, not all digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The root filesystem: a mount definition (owned) or `{"id": N, "kind": K}`.
    pub mount: Mount,
    /// The init's command line, split like a shell does.
    pub command: String,
    /// On create: `created` (default) or `running`. In replies: the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
    /// Run systemd as the init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<bool>,
    /// Read-only: the log file of the init's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logfile: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub namespaces: Option<Vec<Namespace>>,
    /// Read-only: references held on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<i64>,
}
