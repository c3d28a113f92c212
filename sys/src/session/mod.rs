//! Interactive sessions (`container@1.Session`): a process's stdio, or a terminal, relayed
//! between the container and one local client over a unix socket, beside the bus.
//!
//! Each session is one **session helper** process (`<monitor> --session`, [`SESSION_ARG`]),
//! started by the container actor through a [`SessionLauncher`]. It reads its
//! [`SessionConfig`] as one JSON line on stdin, detaches (forks; the first process exits at
//! once, the helper is in a session of its own), creates the stream socket (mode 0600 in a
//! 0700 directory, both owned by the allowed uid), reports the socket's path as one JSON
//! line on stdout ([`SessionReport`]) and waits for the client:
//!
//! - the first connection whose `SO_PEERCRED` uid is root or [`SessionConfig::uid`] is
//!   taken (others are closed and do not count); the socket and its directory are removed
//!   then, or at the deadline ([`SessionConfig::connect_timeout_ms`]), when the session
//!   ends without running anything;
//! - `exec` with a terminal: the helper is the child subreaper and runs `runc exec
//!   --detach --tty --console-socket <its own socket> --pid-file ...`; runc sends the
//!   terminal's master over that socket (`SCM_RIGHTS`, peer checked to be root) and exits,
//!   leaving the process to the helper, which reaps it for its exit status;
//! - `exec` without a terminal: `runc exec` in the foreground with pipes (its exit status is
//!   the process's);
//! - the init's terminal: the master the actor received at create comes as descriptor
//!   [`MASTER_FD`].
//!
//! The relay ([`frame`] on the socket) runs until the process exits (then `exit`, or `ended`
//! for the init's terminal) or the client goes away: then the process is hung up (the
//! master closes) and, for an exec, killed (SIGHUP, SIGKILL a second later). The actor never
//! waits for a session: it only waits (with a deadline) for the report.
//!
//! A helper holds a lock on a file of its work directory for its whole life, so the
//! directories of a helper that was killed are told from a live one's and swept
//! ([`sweep::sweep_stale`], at the container actor's start).

pub mod frame;
mod helper;
mod launcher;
pub mod sock;
pub mod sweep;

pub use helper::run_session;
pub use launcher::LinuxSessionLauncher;

use crate::runtime::RuntimeError;
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

/// The argument that makes the monitor binary a session helper.
pub const SESSION_ARG: &str = "--session";

/// The descriptor on which a terminal session's helper gets the master.
pub const MASTER_FD: i32 = 3;

/// How long a client has to connect (from the moment the socket exists).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a session helper does; sent as one JSON line on its stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Created mode 0700 and owned by [`Self::uid`]; holds `stream.sock`; removed once the
    /// client has connected.
    pub stream_dir: PathBuf,
    /// Root-only (0700): the console socket, the exec's pid file and the runtime's log;
    /// removed at the end.
    pub work_dir: PathBuf,
    /// Who may connect besides root.
    pub uid: u32,
    /// The connect deadline.
    pub connect_timeout_ms: u64,
    /// Whether the client's input reaches the process (without it: `/dev/null`, and for a
    /// terminal, input bytes are dropped).
    pub stdin: bool,
    /// What runs.
    pub kind: SessionKind,
}

/// What a session relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// A process run by `argv` (the runtime's `exec`, built with the paths of
    /// [`SessionConfig::console_socket`], [`SessionConfig::pid_file`] and
    /// [`SessionConfig::runtime_log`]).
    Exec {
        /// The runtime's argv.
        argv: Vec<String>,
        /// With a terminal (`argv` detaches and sends the master to the console socket).
        tty: bool,
        /// The runtime's exit code when it failed itself (runc 255, crun 1).
        failure_code: i32,
    },
    /// The init's terminal, whose master is [`MASTER_FD`].
    Terminal {
        /// The init, watched for its end.
        init_pid: Option<u32>,
    },
}

impl SessionConfig {
    /// The stream socket.
    pub fn stream_socket(&self) -> PathBuf {
        self.stream_dir.join("stream.sock")
    }
    /// The console socket runc sends an exec's master to.
    pub fn console_socket(&self) -> PathBuf {
        self.work_dir.join("console.sock")
    }
    /// The exec'd process's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.work_dir.join("exec.pid")
    }
    /// The runtime's log (its error messages).
    pub fn runtime_log(&self) -> PathBuf {
        self.work_dir.join("runtime.log")
    }
}

/// The helper's one-line answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReport {
    /// The stream socket, once it listens.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Why the session could not be set up.
    #[serde(default)]
    pub error: Option<String>,
}

/// Starts session helpers.
pub trait SessionLauncher: Send + Sync + 'static {
    /// Starts a helper on `config` (with the terminal `master` for
    /// [`SessionKind::Terminal`]) and waits up to `timeout` for its socket.
    fn start(
        &self,
        config: &SessionConfig,
        master: Option<OwnedFd>,
        timeout: Duration,
    ) -> Result<PathBuf, RuntimeError>;
}
