//! The OCI runtime seam: what the container actor asks of runc or crun (both in
//! [`crate::oci_cli`]), or a future in-process runtime. Calls are blocking; callers run them
//! in `spawn_blocking`.
//!
//! Creating a container is not here: a per-container monitor process runs the runtime's
//! `create`/`run` with the container's stdio on its log file and reaps the init (see
//! [`crate::monitor`]); [`Runtime::create_argv`] tells it what to exec.

use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime binary could not be started.
    #[error("starting {program}")]
    Spawn {
        /// The binary.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The runtime ran and reported a failure.
    #[error("{program} {action} {id}: {message}")]
    Failed {
        /// The binary.
        program: String,
        /// `start`, `kill`, `delete`, `exec`, ...
        action: &'static str,
        /// Runtime container id.
        id: String,
        /// The runtime's error text.
        message: String,
    },
    /// The runtime does not know this container.
    #[error("container {0} does not exist in the runtime")]
    NotFound(String),
    /// An exec'd process did not finish in time (it was killed).
    #[error("exec in {id} did not finish within {timeout:?}")]
    Timeout {
        /// Runtime container id.
        id: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The runtime printed something we could not parse.
    #[error("unexpected output from {what}: {detail}")]
    Parse {
        /// Which command.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A file or syscall operation failed.
    #[error("{op} {path:?}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path involved (empty for pathless syscalls).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Input that the runtime layer refuses, with the reason.
    #[error("{0}")]
    Invalid(String),
}

impl RuntimeError {
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// The runtime's view of a container (`runc state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeState {
    /// Runtime container id.
    pub id: String,
    /// Init pid (0 once stopped).
    #[serde(default)]
    pub pid: u32,
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// The bundle directory.
    #[serde(default)]
    pub bundle: PathBuf,
}

/// A process to run inside a running container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecRequest {
    /// argv; `args[0]` is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs added to the container's environment.
    pub env: Vec<String>,
    /// Working directory inside the container (`None`: the container's).
    pub cwd: Option<String>,
    /// `uid:gid` (`None`: the container's user).
    pub user: Option<String>,
    /// Kill the process after this long.
    pub timeout: Duration,
    /// Keep at most this many bytes of each of stdout and stderr (the tail is dropped).
    pub max_output: usize,
}

/// What an exec'd process did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Exit code; 128+n for death by signal n, as shells report it.
    pub exit_code: i32,
    /// Captured standard output (lossy UTF-8).
    pub stdout: String,
    /// Captured standard error (lossy UTF-8).
    pub stderr: String,
}

/// An OCI runtime.
pub trait Runtime: Send + Sync + 'static {
    /// `runc`, `crun`, ...
    fn name(&self) -> &str;

    /// The argv that creates container `id` from `bundle`, writing the init pid to
    /// `pid_file` and the runtime's own log to `runtime_log`; with `start`, it also starts
    /// it (`run --detach`). Executed by the monitor with the container's stdio.
    fn create_argv(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        runtime_log: &Path,
        start: bool,
    ) -> Vec<String>;

    /// Starts a created container (runs its process).
    ///
    /// (With a terminal, [`Self::create_argv`]'s caller adds the console socket through
    /// [`console_argv`].)
    fn start(&self, id: &str) -> Result<(), RuntimeError>;

    /// The container's state; `Ok(None)` when the runtime does not know it.
    fn state(&self, id: &str) -> Result<Option<RuntimeState>, RuntimeError>;

    /// Every container under this runtime root.
    fn list(&self) -> Result<Vec<RuntimeState>, RuntimeError>;

    /// Sends `signal` to the init, or with `all` to every process of the container.
    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError>;

    /// Deletes the container's runtime state (with `force`, kills it first). Unknown ids
    /// succeed.
    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError>;

    /// Runs a process in the namespaces of a running container and waits for it.
    fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput, RuntimeError>;

    /// The argv of an interactive exec run by a session helper (`req.timeout` and
    /// `max_output` do not apply): with `console` (a terminal), detached, sending the
    /// terminal's master to that socket; else in the foreground with the helper's pipes.
    /// The process's pid goes to `pid_file`, the runtime's errors to `log`.
    fn session_exec_argv(
        &self,
        id: &str,
        req: &ExecRequest,
        console: Option<&Path>,
        pid_file: &Path,
        log: &Path,
    ) -> Result<Vec<String>, RuntimeError>;

    /// The exit code of the runtime's `exec` when it failed itself.
    fn exec_failure_code(&self) -> i32 {
        255
    }
}

/// `argv` (a create or run argv of [`Runtime::create_argv`]) with `--console-socket
/// <socket>` after its verb: the runtime sends the init's terminal there.
pub fn console_argv(argv: &[String], socket: &Path) -> Vec<String> {
    let verb = argv
        .iter()
        .position(|a| a == "create" || a == "run")
        .map_or(argv.len(), |i| i + 1);
    let mut out = argv[..verb].to_vec();
    out.extend(["--console-socket".to_string(), socket.display().to_string()]);
    out.extend(argv[verb..].iter().cloned());
    out
}
