//! The per-container monitor (conmon-like): a small detached process that runs the
//! runtime's `create`/`run` with the container's stdout and stderr on an `O_APPEND` log
//! file, becomes the init's reaper (`PR_SET_CHILD_SUBREAPER`), and writes the exit status to
//! a file when the init dies. It lives in its own session, so the container keeps running,
//! logging and having its exit code recorded while the daemon restarts or is killed.
//!
//! Protocol (`launcher.rs`): the launcher starts one **monitor zygote**, `<monitor binary> -`
//! ([`ZYGOTE_ARG`]); it forks (the first process exits at once and is reaped by the
//! launcher), and the detached grandchild, still single-threaded, reads [`MonitorConfig`]s
//! from its stdin, one JSON line per container. For each it forks a monitor (in a session
//! of its own; the zygote ignores SIGCHLD, so the kernel reaps its monitors, and they are
//! re-parented when it exits) and reads the next line: a launch costs a pipe write and
//! one fork of a small process, not an exec of a new binary (the dynamic loader and libc's
//! start-up made up most of a monitor's CPU time). A line not starting with `{` is read as
//! the path of a JSON config file, and a path given instead of `-` runs one monitor
//! directly, for running one by hand.
//!
//! Each monitor (`process.rs`) runs the runtime and prints one JSON [`MonitorReport`] line,
//! naming its container, on the stdout pipe it shares with the zygote (one `write` of less
//! than `PIPE_BUF` bytes, so lines never interleave); the launcher's reader hands it to the
//! launch waiting for that id. When the init exits the monitor writes an [`ExitRecord`] to
//! `exit_file` (temp file + rename) and exits; watchers see that through a pidfd on the
//! monitor. A zygote whose launcher is gone sees end-of-file and exits; the monitors it
//! started are not affected. No config file is written: a launch creates no file besides
//! the logs, the pid file and (at the end) the exit file.

mod capture;
mod launcher;
pub(crate) mod process;

pub use capture::{now_ns, open_spools, CAPTURE_POLL};
pub use launcher::LinuxMonitorLauncher;
pub use process::run_monitor;

use crate::runtime::RuntimeError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the monitor does; sent by the launcher as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// Runtime container id.
    pub id: String,
    /// The runtime's create or run argv ([`crate::runtime::Runtime::create_argv`]).
    pub argv: Vec<String>,
    /// The container's log: records written by the monitor's log capture (see
    /// [`crate::logfile`]).
    pub log_file: PathBuf,
    /// Where the runtime writes the init pid.
    pub pid_file: PathBuf,
    /// The runtime's own JSON log (its error messages).
    pub runtime_log: PathBuf,
    /// Where the exit status is written.
    pub exit_file: PathBuf,
    /// The monitor's own diagnostics.
    pub monitor_log: PathBuf,
    /// The spool file the container's stdout goes to (O_APPEND; emptied at the start of
    /// the run, read and freed by the capture).
    pub stdout_spool: PathBuf,
    /// The same for its stderr.
    pub stderr_spool: PathBuf,
    /// The size past which the log's current file is rotated. `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max_bytes: Option<u64>,
    /// Files the log keeps, the current one included (at least 1).
    #[serde(default = "default_log_files")]
    pub log_max_files: u32,
}

fn default_log_files() -> u32 {
    DEFAULT_LOG_FILES
}

/// Files a container's log keeps by default (the current one and one older).
pub const DEFAULT_LOG_FILES: u32 = 2;

/// The monitor's one-line answer on its stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorReport {
    /// The container ([`MonitorConfig::id`]) the report is about; the launcher routes
    /// reports by it (`None` only for a config line that could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The monitor's pid (the process that stays).
    pub monitor_pid: u32,
    /// The container init's pid, when the runtime succeeded.
    #[serde(default)]
    pub init_pid: Option<u32>,
    /// The runtime's error message, when it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// How the init ended; the monitor writes it to [`MonitorConfig::exit_file`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Init pid.
    pub pid: u32,
    /// Exit code, or `None` when killed by a signal or when the status was not observable.
    pub exit_code: Option<i32>,
    /// Terminating signal.
    pub signal: Option<i32>,
    /// Milliseconds since the Unix epoch.
    pub exited_at_ms: u64,
}

impl ExitRecord {
    /// Exit code as shells report it: the code, or 128 + signal.
    pub fn shell_code(&self) -> Option<i32> {
        self.exit_code.or(self.signal.map(|s| 128 + s))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads an exit file; `Ok(None)` if there is none yet.
pub fn read_exit_file(path: &Path) -> Result<Option<ExitRecord>, RuntimeError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| RuntimeError::Parse {
                what: path.display().to_string(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io("read", path, e)),
    }
}

/// Writes an exit file through the one atomic writer ([`crate::state::write_atomic`]),
/// mode 0644; the monitor does this when the init dies, test doubles when they end a run.
pub fn write_exit_file(path: &Path, rec: &ExitRecord) -> Result<(), RuntimeError> {
    let bytes = serde_json::to_vec(rec).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    crate::state::write_atomic(path, &bytes, 0o644).map_err(RuntimeError::from)
}

/// Starts monitors.
pub trait MonitorLauncher: Send + Sync + 'static {
    /// Runs a monitor on `config` and waits (up to `timeout`) for its report.
    fn launch(
        &self,
        config: &MonitorConfig,
        timeout: Duration,
    ) -> Result<MonitorReport, RuntimeError>;

    /// Gets ready for the next launch (e.g. starts the monitor zygote); never fails.
    fn prepare(&self) {}
}

/// The argument that starts a monitor zygote reading configs from its stdin: it detaches at
/// once and then forks a monitor per line.
pub const ZYGOTE_ARG: &str = "-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("exit.json");
        assert_eq!(read_exit_file(&p).unwrap(), None);
        let rec = ExitRecord {
            pid: 7,
            exit_code: None,
            signal: Some(9),
            exited_at_ms: 1,
        };
        write_exit_file(&p, &rec).unwrap();
        assert_eq!(read_exit_file(&p).unwrap(), Some(rec.clone()));
        assert_eq!(rec.shell_code(), Some(137));
    }
}
