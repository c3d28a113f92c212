//! `imagebus.system@1`: the daemon's own object: version, liveness and what it serves.
//!
//! Served by every `imagebusd` process on module `imagebus`. Several processes of a
//! one-module-per-process deployment compete on the same queue (as Go zbus workers do), so
//! `Modules` describes the process that answered.

use imagebus_bus::{EventStream, RemoteError};
use serde::{Deserialize, Serialize};

/// Module name on the bus.
pub const MODULE: &str = "imagebus";

/// What `Version` returns. Reply type: tolerant of unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `imagebusd`'s crate version, e.g. `0.1.0`.
    pub daemon: String,
    /// Wire protocol family, `zbus`.
    pub protocol: String,
    /// Wire protocol version, `1` (Go zbus v1 framing).
    pub protocol_version: String,
    /// Process id of the daemon that answered.
    pub pid: u32,
    /// Seconds since that daemon started.
    pub uptime_secs: u64,
}

/// One module served by the answering daemon process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// Bus module name, e.g. `mount`.
    pub module: String,
    /// Object ids it serves (`name@version`), besides the reserved `zbus@1.0`.
    pub objects: Vec<String>,
    /// Server workers of the module.
    pub workers: u32,
    /// Where the module's actor is in its life.
    pub state: ModuleState,
    /// How many times the supervisor restarted the module's actor.
    #[serde(default)]
    pub restarts: u32,
}

/// The life of a module's actor, as `Modules` reports it (lower-case strings on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleState {
    /// Starting (reconciling its state) for the first time; calls get `Unavailable`.
    Starting,
    /// Serving.
    Running,
    /// Its actor failed and waits for a restart (with backoff); calls get `Unavailable`.
    Restarting,
    /// The daemon is shutting down.
    Stopping,
}

impl ModuleState {
    /// Every state, in life order (docs are checked against this list).
    pub const ALL: [ModuleState; 4] = [
        ModuleState::Starting,
        ModuleState::Running,
        ModuleState::Restarting,
        ModuleState::Stopping,
    ];

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleState::Starting => "starting",
            ModuleState::Running => "running",
            ModuleState::Restarting => "restarting",
            ModuleState::Stopping => "stopping",
        }
    }
}

impl std::fmt::Display for ModuleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Published periodically by every daemon process on `imagebus.system@1.Heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Process id of the publishing daemon.
    pub pid: u32,
    /// Counts from 1 for each daemon process.
    pub seq: u64,
    /// Seconds since that daemon started.
    pub uptime_secs: u64,
}

/// The daemon's built-in object. Served as `imagebus.system@1`.
#[imagebus_bus::object(module = "imagebus", name = "system", version = "1")]
pub trait SystemModule: Send + Sync {
    /// The answering daemon's version and wire protocol. Never fails.
    #[bus(read)]
    async fn version(&self) -> Result<VersionInfo, RemoteError>;

    /// Returns `text` unchanged; a liveness probe through the whole bus path.
    /// Errors: `InvalidArgument` when `text` is longer than 64 KiB.
    #[bus(read)]
    async fn ping(&self, text: String) -> Result<String, RemoteError>;

    /// The modules this daemon process serves, `imagebus` itself included.
    #[bus(read)]
    async fn modules(&self) -> Result<Vec<ModuleInfo>, RemoteError>;

    /// A [`Heartbeat`] at the daemon's heartbeat interval (`imagebusd --heartbeat`),
    /// published on `imagebus.system@1.Heartbeat`.
    #[bus(stream)]
    fn heartbeat(&self) -> EventStream<Heartbeat>;
}

/// Longest text `Ping` echoes back.
pub const MAX_PING_LEN: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_info_tolerates_missing_restarts() {
        let m: ModuleInfo = serde_json::from_str(
            r#"{"module":"mount","objects":["mount@1"],"workers":4,"state":"running","x":1}"#,
        )
        .unwrap();
        assert_eq!(m.restarts, 0);
        assert_eq!(m.objects, vec!["mount@1".to_string()]);
    }
}
