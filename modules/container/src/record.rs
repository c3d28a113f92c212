//! What the module persists per container (`<state_dir>/<id>/record.json`).

use imagebus_schema::container::{ContainerInfo, ContainerState};
use serde::{Deserialize, Serialize};

/// Format version of record files.
pub const RECORD_VERSION: u32 = 1;

/// The process whose exit ends a run: the monitor (normally), or the init itself when the
/// monitor was lost. `start_time` (clock ticks since boot) guards against pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    /// Pid.
    pub pid: u32,
    /// Start time from `/proc/<pid>/stat`.
    pub start_time: u64,
    /// Whether this is the monitor (so an exit file is expected).
    pub monitor: bool,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What `Get` returns.
    pub info: ContainerInfo,
    /// Stop signal number.
    pub stop_signal: i32,
    /// Grace period before SIGKILL.
    pub stop_timeout_ms: u64,
    /// Incremented at every run, so stale watcher and timer messages are ignored.
    pub generation: u64,
    /// What is being watched while the container is created, running or stopping.
    #[serde(default)]
    pub watched: Option<Watched>,
}

impl Record {
    /// Whether the init may still be alive.
    pub fn is_live(&self) -> bool {
        matches!(
            self.info.state,
            ContainerState::Created | ContainerState::Running | ContainerState::Stopping
        )
    }
}

/// Writes a record in the [`imagebus_sys::state::StateFile`] layout (`{"version", "data"}`)
/// atomically (temp file + rename) but without fsync: records only matter while the host
/// stays up (a crash of the host ends its containers too, and start-up then finds them
/// dead either way), and a daemon crash does not lose the page cache. This keeps two
/// disk flushes off every create, start and stop.
pub fn save_record(path: &std::path::Path, record: &Record) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let body = serde_json::to_vec(&serde_json::json!({"version": RECORD_VERSION, "data": record}))
        .map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&body)?;
    drop(f);
    std::fs::rename(&tmp, path)
}
