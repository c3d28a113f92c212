//! `container.container@1`: long-lived inits in their own namespaces, on mounts from the
//! mount module, run by an OCI runtime (runc).

use crate::common::Selector;
use crate::mount::MountRef;
use imagebus_bus::{EventStream, RemoteError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Module name on the bus.
pub const MODULE: &str = "container";

/// Default `PATH` when the spec's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

mod health;
mod logs;
mod options;
mod stream;
pub use health::{
    Health, HealthSpec, HealthStatus, DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_RETRIES,
    DEFAULT_HEALTH_TIMEOUT_MS, MIN_HEALTH_PERIOD_MS,
};
pub use logs::{LogEntry, LogSpec, LogStream, MAX_LOG_FILES, MIN_LOG_BYTES};
pub use options::{OciConfig, RestartPolicy, RestartSpec, SeccompMode, SecuritySpec};
pub use stream::{SessionInfo, SessionRequest};

/// Default grace period between the stop signal and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT_MS: u64 = 10_000;

/// A command line: an argv array, or one string split like a shell does (quotes and
/// backslashes; no variables, globs or operators).
///
/// msgpack/JSON form: `["sh", "-c", "echo hi"]` or `"sh -c 'echo hi'"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// Exact argv.
    Argv(Vec<String>),
    /// Shell-style words.
    Line(String),
}

impl CommandLine {
    /// The argv. Errors: unbalanced quotes or a trailing backslash, with the reason.
    pub fn argv(&self) -> Result<Vec<String>, String> {
        match self {
            CommandLine::Argv(v) => Ok(v.clone()),
            CommandLine::Line(s) => shell_split(s),
        }
    }
}

/// Splits `s` into words like a POSIX shell (single quotes, double quotes with `\"` `\\`
/// `\$` `` \` `` escapes, backslash outside quotes). The error says what is unbalanced.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unbalanced single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unbalanced double quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unbalanced double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => return Err(format!("trailing backslash in {s:?}")),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The state a container is created in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialState {
    /// Created but not started (`Start` runs it).
    #[default]
    Created,
    /// Started by the create call; the call fails (and leaves nothing) if the start fails.
    Running,
}

/// Where the container's network comes from.
///
/// msgpack/JSON form: `"host"`, `"private"` or `{"namespace": "blue"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// The host's network namespace (ImageAPI's behaviour).
    #[default]
    Host,
    /// A new network namespace with only loopback.
    Private,
    /// Join the named namespace under `/var/run/netns` (created by `ip netns add`).
    Namespace(String),
}

/// A host path bind-mounted into the container (recursively, private propagation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindSpec {
    /// Absolute host path (file or directory); must exist.
    pub source: PathBuf,
    /// Absolute path inside the container (created if missing).
    pub target: PathBuf,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Numeric user and group the init runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl UserSpec {
    /// Parses `uid[:gid]` (gid defaults to uid).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (u, g) = s.split_once(':').unwrap_or((s, s));
        let uid = u.parse().map_err(|_| format!("bad uid in {s:?}"))?;
        let gid = g.parse().map_err(|_| format!("bad gid in {s:?}"))?;
        Ok(Self { uid, gid })
    }
}

/// Resource limits (cgroup).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU limit in thousandths of a CPU (1000 = one CPU), as a CFS quota; at least 10.
    #[serde(default)]
    pub cpu_millis: Option<u32>,
    /// Memory limit in bytes; at least 4 MiB.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Task (process and thread) limit, as the pids controller's `pids.max`; at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

/// Changes to the default capability set (containerd's 14; systemd mode adds
/// CAP_SYS_ADMIN). Names with or without `CAP_`; `ALL` is allowed. The result is always
/// intersected with what the daemon itself holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityChanges {
    /// Added.
    #[serde(default)]
    pub add: Vec<String>,
    /// Removed (after adding).
    #[serde(default)]
    pub drop: Vec<String>,
}

/// What to run. Request type: unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Optional unique name (see `common::validate_name`).
    #[serde(default)]
    pub name: Option<String>,
    /// A grouping label (zos's tenant namespace); `None` is the default group.
    #[serde(default)]
    pub group: Option<String>,
    /// The root filesystem: a mount defined inline (owned by the container and collected
    /// with it, with everything under it) or an existing mount (referenced).
    pub mount: MountRef,
    /// The init's command line; `argv[0]` must be an executable inside the root.
    pub command: CommandLine,
    /// `KEY=VALUE` environment; `PATH` defaults to [`DEFAULT_PATH`].
    #[serde(default)]
    pub env: Vec<String>,
    /// Absolute working directory inside the container (default `/`).
    #[serde(default)]
    pub working_dir: Option<String>,
    /// UTS hostname (default: the name, else `c<id>`).
    #[serde(default)]
    pub hostname: Option<String>,
    /// User and group (default root).
    #[serde(default)]
    pub user: Option<UserSpec>,
    /// Run systemd (or another init that expects it) as PID 1: `container=imagebus` in the
    /// environment, tmpfs `/run` and `/tmp`, a writable cgroup view, CAP_SYS_ADMIN, and
    /// SIGRTMIN+3 as the default stop signal.
    #[serde(default)]
    pub systemd: bool,
    /// `created` (default) or `running`.
    #[serde(default)]
    pub state: InitialState,
    /// Network (default host).
    #[serde(default)]
    pub network: Network,
    /// Extra bind mounts.
    #[serde(default)]
    pub binds: Vec<BindSpec>,
    /// Limits.
    #[serde(default)]
    pub resources: Resources,
    /// Capability changes.
    #[serde(default)]
    pub capabilities: CapabilityChanges,
    /// Stop signal: a name (`TERM`, `SIGRTMIN+3`) or number. Default SIGTERM, or SIGRTMIN+3
    /// in systemd mode.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Milliseconds between the stop signal and SIGKILL (default 10 000).
    #[serde(default)]
    pub stop_timeout_ms: Option<u64>,
    /// An OCI runtime-spec `config.json` document merged onto the generated one (see
    /// [`OciConfig`]). Absent on the wire when `None`, so older peers see no new field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciConfig>,
    /// What happens when the init exits on its own (default: nothing). Absent on the wire
    /// when it is the default.
    #[serde(default, skip_serializing_if = "RestartSpec::is_default")]
    pub restart: RestartSpec,
    /// The seccomp filter and `noNewPrivileges` (default: the default profile, and no new
    /// privileges outside systemd mode). Absent on the wire when it is the default.
    #[serde(default, skip_serializing_if = "SecuritySpec::is_default")]
    pub security: SecuritySpec,
    /// The init gets a terminal (`run -t`): its output goes to the terminal, not to the
    /// log, and the terminal is handed to one `Session` (`run -it`). Absent on the wire
    /// when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// A health check run inside the container while it runs (see [`HealthSpec`]).
    /// Absent on the wire when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// The rotation of this container's log (default: the daemon's). Absent on the wire
    /// when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogSpec>,
}

impl ContainerSpec {
    /// The same spec with the secret of every inline RBD attachment of its root chain
    /// redacted: what a container's record stores and what replies carry. The key is
    /// needed once, by the attach module, which keeps its own private copy.
    pub fn redacted(&self) -> Self {
        Self {
            mount: self.mount.redacted(),
            ..self.clone()
        }
    }

    /// A spec with the two fields the wire requires and every other field at the default
    /// it takes when absent on the wire. Set the rest with struct update syntax:
    /// `ContainerSpec { name: Some("web".into()), ..ContainerSpec::new(mount, command) }`.
    pub fn new(mount: MountRef, command: CommandLine) -> Self {
        Self {
            name: None,
            group: None,
            mount,
            command,
            env: Vec::new(),
            working_dir: None,
            hostname: None,
            user: None,
            systemd: false,
            state: InitialState::default(),
            network: Network::default(),
            binds: Vec::new(),
            resources: Resources::default(),
            capabilities: CapabilityChanges::default(),
            stop_signal: None,
            stop_timeout_ms: None,
            oci: None,
            restart: RestartSpec::default(),
            security: SecuritySpec::default(),
            tty: false,
            health: None,
            log: None,
        }
    }
}

/// Container states: created → running → stopping → exited, or dead when the init could
/// not be watched or started (with a reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created; the init has not run yet.
    Created,
    /// The init is running.
    Running,
    /// The stop signal was sent; waiting for the init to exit.
    Stopping,
    /// The init exited; `exit_code` says how.
    Exited,
    /// The container is gone for another reason (start failed after create, the runtime
    /// lost it, the host rebooted); `reason` says why.
    Dead,
}

impl ContainerState {
    /// `created`, `running`, `stopping`, `exited` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Stopping => "stopping",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
        }
    }
}

/// A container as the module reports it. Reply type: tolerant of unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Never reused.
    pub id: u64,
    /// Unique name, if one was given.
    #[serde(default)]
    pub name: Option<String>,
    /// Grouping label.
    #[serde(default)]
    pub group: Option<String>,
    /// Current state.
    pub state: ContainerState,
    /// The mount the root filesystem is on.
    pub mount: u64,
    /// The root filesystem (the mount's mountpoint).
    pub rootfs: PathBuf,
    /// The init's argv.
    pub command: Vec<String>,
    /// The init's pid on the host while created/running/stopping.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Exit code once exited (128 + n for death by signal n).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Terminating signal, if the init was killed by one.
    #[serde(default)]
    pub exit_signal: Option<i32>,
    /// Why the container is dead; for an exited one, `oom` when the OOM killer killed a
    /// process of its last run (the cgroup hit its memory limit).
    #[serde(default)]
    pub reason: Option<String>,
    /// The stdout/stderr log file on the host.
    pub log_file: PathBuf,
    /// The OCI runtime's container id.
    pub runtime_id: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Last start time.
    #[serde(default)]
    pub started_at_ms: Option<u64>,
    /// Last exit time.
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    /// How many times the restart policy has run the container again.
    #[serde(default)]
    pub restart_count: u32,
    /// The health of the current (or, once it ended, the last) run, for a container with
    /// a health check (`None` otherwise). Absent on the wire when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The spec it was created from (with inline mounts as given).
    pub spec: ContainerSpec,
}

/// Which containers `List` returns. Request type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerFilter {
    /// Only these states (empty: all).
    #[serde(default)]
    pub states: Vec<ContainerState>,
    /// Only this group (`None`: every group).
    #[serde(default)]
    pub group: Option<String>,
}

/// What part of the log `Logs` returns. Request type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsRequest {
    /// Start at this byte offset (from a previous [`LogChunk::offset`]); wins over `tail`.
    #[serde(default)]
    pub offset: Option<u64>,
    /// The last N lines (`None` with no offset: the whole log, up to `max_bytes`).
    #[serde(default)]
    pub tail: Option<u32>,
    /// At most this many bytes (default and maximum 1 MiB).
    #[serde(default)]
    pub max_bytes: Option<u32>,
    /// Follow: when there is nothing new at `offset`, wait up to this long for output
    /// (or for the container to stop) before answering.
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// Only lines read at or after this time (ms since the Unix epoch). Lines written
    /// before the log had times have none and are left out by `since_ms` and `until_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Only lines read at or before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Only this stream (lines without one count as stdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<LogStream>,
    /// Return the lines as [`LogChunk::entries`] (with time and stream) instead of text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub entries: bool,
}

/// A piece of a container's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The text (invalid UTF-8 replaced).
    pub data: String,
    /// Position just past what was read (a byte offset in the whole log, across its
    /// rotated files): pass it as `offset` to follow.
    pub offset: u64,
    /// Whether more output may come (the container is created, running or stopping).
    pub running: bool,
    /// The lines, when the request asked for entries (`data` is then empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<LogEntry>,
}

/// A process to run in a running container. Request type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// The command (`argv[0]` looked up in the container's `PATH`).
    pub command: CommandLine,
    /// Extra `KEY=VALUE` environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory (default: the container's).
    #[serde(default)]
    pub working_dir: Option<String>,
    /// User (default: the container's).
    #[serde(default)]
    pub user: Option<UserSpec>,
    /// Kill it after this many milliseconds (default 30 000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// What an exec'd process did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Exit code (128 + n for death by signal n).
    pub exit_code: i32,
    /// Standard output (up to 1 MiB).
    pub stdout: String,
    /// Standard error (up to 1 MiB).
    pub stderr: String,
}

/// Resource use of a container, from its cgroup and network namespace (`Stats`). A field
/// is `None` when the host does not report it (controller missing) or the container is
/// not running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Container id.
    pub id: u64,
    /// Container name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its state when read.
    pub state: ContainerState,
    /// When read, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// CPU time used, nanoseconds.
    #[serde(default)]
    pub cpu_usage_ns: Option<u64>,
    /// Memory in use, bytes.
    #[serde(default)]
    pub memory_usage_bytes: Option<u64>,
    /// Memory limit, bytes (`None`: unlimited).
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// Highest memory use, bytes.
    #[serde(default)]
    pub memory_peak_bytes: Option<u64>,
    /// Processes killed by the OOM killer in this run.
    #[serde(default)]
    pub oom_kills: Option<u64>,
    /// Tasks (processes and threads).
    #[serde(default)]
    pub pids_current: Option<u64>,
    /// Task limit (`None`: unlimited).
    #[serde(default)]
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices.
    #[serde(default)]
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices.
    #[serde(default)]
    pub io_write_bytes: Option<u64>,
    /// Bytes received on the network namespace's interfaces other than `lo`.
    #[serde(default)]
    pub net_rx_bytes: Option<u64>,
    /// Bytes sent on the network namespace's interfaces other than `lo`.
    #[serde(default)]
    pub net_tx_bytes: Option<u64>,
}

/// A state change, published on `container.container@1.Events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerEvent {
    /// Container id.
    pub id: u64,
    /// Container name.
    #[serde(default)]
    pub name: Option<String>,
    /// Group.
    #[serde(default)]
    pub group: Option<String>,
    /// The new state.
    pub state: ContainerState,
    /// Exit code (for `exited`).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why (for `dead`, `oom` for an `exited` run the OOM killer hit, and for `deleted`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Whether the container was deleted (the last event of a container).
    #[serde(default)]
    pub deleted: bool,
    /// The health status, on the events of a container with a health check: a `running`
    /// event whose health changed (`starting` → `healthy` → `unhealthy` ...) tells of a
    /// transition. Absent on the wire when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Runs containers. Served as `container.container@1`.
#[imagebus_bus::object(module = "container", name = "container", version = "1")]
pub trait ContainerModule: Send + Sync {
    /// Creates a container (and its inline mount), in state `created`, or `running` when
    /// `spec.state` says so. All or nothing: on any failure nothing is left behind.
    /// Errors: `InvalidArgument` (bad spec, missing or non-executable init, bad bind, bad
    /// limits), `NotFound` (referenced mount, network namespace), `Conflict` (name taken),
    /// `Internal` (the runtime failed), plus the mount and attach modules' errors.
    async fn create(&self, spec: ContainerSpec) -> Result<ContainerInfo, RemoteError>;

    /// Starts a created container, or re-runs an exited or dead one. A running one is left
    /// alone. Errors: `NotFound`; `Conflict` while stopping; `Internal`.
    async fn start(&self, target: Selector) -> Result<ContainerInfo, RemoteError>;

    /// Sends the stop signal, waits up to `timeout_ms` (default: the spec's) and then
    /// SIGKILLs; returns once the init has exited. Not running: a no-op.
    /// Errors: `NotFound`; `Internal`.
    async fn stop(
        &self,
        target: Selector,
        timeout_ms: Option<u64>,
    ) -> Result<ContainerInfo, RemoteError>;

    /// Deletes a container and releases its mount (inline mounts and attachments cascade
    /// away). Errors: `NotFound`; `Conflict` while created, running or stopping, unless
    /// `force`, which stops it first.
    async fn delete(&self, target: Selector, force: bool) -> Result<(), RemoteError>;

    /// One container. Errors: `NotFound`.
    #[bus(read)]
    async fn get(&self, target: Selector) -> Result<ContainerInfo, RemoteError>;

    /// Containers matching `filter`, by id.
    #[bus(read)]
    async fn list(&self, filter: ContainerFilter) -> Result<Vec<ContainerInfo>, RemoteError>;

    /// A piece of the log (see [`LogsRequest`]). Errors: `NotFound`.
    #[bus(read)]
    async fn logs(&self, target: Selector, request: LogsRequest) -> Result<LogChunk, RemoteError>;

    /// Runs a process in the container's namespaces and returns its exit code and output.
    /// Errors: `NotFound`; `Conflict` when not running; `InvalidArgument`; `Timeout`.
    async fn exec(&self, target: Selector, spec: ExecSpec) -> Result<ExecResult, RemoteError>;

    /// Whether container `id` holds a reference to mount `mount`: its create is in flight
    /// (the mount is not recorded yet), or its record exists, stands on `mount` and is not
    /// being deleted. The mount module asks this before it lets anyone add or drop a
    /// `Container(id)` holder (forged holders are refused). A read: answered from the
    /// current state while commands are in flight, so a delete that releases its own mount
    /// (after marking the container deleted) is never blocked by it.
    #[bus(read)]
    async fn holds(&self, id: u64, mount: u64) -> Result<bool, RemoteError>;
    /// Resource use now (see [`ContainerStats`]); a container that is not running gives
    /// only its id, name and state. Never waits for a command in flight.
    /// Errors: `NotFound`.
    #[bus(read)]
    async fn stats(&self, target: Selector) -> Result<ContainerStats, RemoteError>;

    /// Opens an interactive session: a process run in the running container with its
    /// stdio (and terminal, with `tty`) relayed over a unix socket, or (`exec: None`) the
    /// terminal of a container created with `tty`, once. Returns the socket's path; the
    /// bytes never travel over the bus.
    /// Errors: `NotFound`; `Conflict` (not running, or no terminal to hand out);
    /// `InvalidArgument`.
    async fn session(
        &self,
        target: Selector,
        request: SessionRequest,
    ) -> Result<SessionInfo, RemoteError>;

    /// State changes of every container.
    #[bus(stream)]
    fn events(&self) -> EventStream<ContainerEvent>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_split_handles_quotes() {
        assert_eq!(
            shell_split("sh -c 'echo hi; exit 3'").unwrap(),
            ["sh", "-c", "echo hi; exit 3"]
        );
        assert_eq!(
            shell_split(r#"a "b \"c\" d" e\ f"#).unwrap(),
            ["a", r#"b "c" d"#, "e f"]
        );
        assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_split("''").unwrap(), [""]);
        assert!(shell_split("'open").is_err());
        assert!(shell_split("x\\").is_err());
    }

    #[test]
    fn spec_json_forms_and_strictness() {
        let spec: ContainerSpec = serde_json::from_str(
            r#"{"mount":{"existing":{"name":"root"}},"command":"sleep 10",
                "network":{"namespace":"blue"},"state":"running"}"#,
        )
        .unwrap();
        assert_eq!(spec.command.argv().unwrap(), ["sleep", "10"]);
        assert_eq!(spec.network, Network::Namespace("blue".into()));
        assert_eq!(spec.state, InitialState::Running);
        let argv: ContainerSpec =
            serde_json::from_str(r#"{"mount":{"existing":{"id":1}},"command":["sh","-c","x y"]}"#)
                .unwrap();
        assert_eq!(
            argv.command,
            CommandLine::Argv(vec!["sh".into(), "-c".into(), "x y".into()])
        );
        assert_eq!(argv.network, Network::Host);
        assert!(serde_json::from_str::<ContainerSpec>(
            r#"{"mount":{"existing":{"id":1}},"command":"x","comand":"y"}"#
        )
        .is_err());
        let packed = rmp_serde::to_vec_named(&spec).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<ContainerSpec>(&packed).unwrap(),
            spec
        );
        assert_eq!(
            UserSpec::parse("1000:100").unwrap(),
            UserSpec {
                uid: 1000,
                gid: 100
            }
        );
        assert_eq!(UserSpec::parse("7").unwrap(), UserSpec { uid: 7, gid: 7 });
        assert!(UserSpec::parse("x").is_err());
    }

    #[test]
    fn new_is_the_wire_defaults_and_mount_and_command_stay_required() {
        let wire: ContainerSpec =
            serde_json::from_str(r#"{"mount":{"existing":{"id":1}},"command":"x"}"#).unwrap();
        let built = ContainerSpec::new(
            MountRef::Existing(Selector::Id(1)),
            CommandLine::Line("x".into()),
        );
        assert_eq!(built, wire);
        assert!(serde_json::from_str::<ContainerSpec>(r#"{"command":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<ContainerSpec>(r#"{"mount":{"existing":{"id":1}}}"#).is_err()
        );
    }

    #[test]
    fn the_oci_field_is_optional_on_the_wire_and_round_trips() {
        // A payload without the field (an older client, a zos caller) still decodes,
        // and a spec without it is encoded without it (an older daemon accepts it).
        let plain = ContainerSpec::new(
            MountRef::Existing(Selector::Id(1)),
            CommandLine::Line("x".into()),
        );
        let packed = rmp_serde::to_vec_named(&plain).unwrap();
        let keys: rmpv::Value = rmp_serde::from_slice(&packed).unwrap();
        let keys: Vec<String> = keys
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect();
        assert!(!keys.contains(&"oci".to_string()), "{keys:?}");
        assert_eq!(
            rmp_serde::from_slice::<ContainerSpec>(&packed).unwrap(),
            plain
        );
        let with: ContainerSpec = serde_json::from_str(
            r#"{"mount":{"existing":{"id":1}},"command":"x",
                "oci":{"process":{"env":["A=1"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":5,"soft":5}]},
                       "linux":{"sysctl":{"kernel.msgmax":"9"}}}}"#,
        )
        .unwrap();
        assert_eq!(with.oci.as_ref().unwrap().args(), None);
        let packed = rmp_serde::to_vec_named(&with).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<ContainerSpec>(&packed).unwrap(),
            with
        );
        assert!(serde_json::from_str::<ContainerSpec>(
            r#"{"mount":{"existing":{"id":1}},"command":"x","oci":[1]}"#
        )
        .is_err());
    }

    /// Older peers see no new field unless it is used: a default `LogsRequest` and a
    /// text `LogChunk` carry the keys they always had, a plain spec no `health` or `log`.
    #[test]
    fn new_log_and_health_fields_stay_off_the_wire_by_default() {
        let keys = |v: serde_json::Value| -> Vec<String> {
            v.as_object().unwrap().keys().cloned().collect()
        };
        let req = serde_json::to_value(LogsRequest::default()).unwrap();
        assert_eq!(keys(req), ["max_bytes", "offset", "tail", "wait_ms"]);
        let chunk = LogChunk {
            data: "x\n".into(),
            offset: 2,
            running: true,
            entries: Vec::new(),
        };
        assert_eq!(
            keys(serde_json::to_value(chunk).unwrap()),
            ["data", "offset", "running"]
        );
        let spec = serde_json::to_value(ContainerSpec::new(
            MountRef::Existing(Selector::Id(1)),
            CommandLine::Line("x".into()),
        ))
        .unwrap();
        assert!(
            spec.get("health").is_none() && spec.get("log").is_none(),
            "{spec}"
        );
        // An old reply (no entries) still decodes.
        let old: LogChunk =
            serde_json::from_str(r#"{"data":"a\n","offset":2,"running":false}"#).unwrap();
        assert!(old.entries.is_empty());
        assert!(LogSpec {
            max_bytes: Some(10),
            max_files: None
        }
        .check()
        .is_err());
        assert!(LogSpec {
            max_bytes: Some(0),
            max_files: Some(100)
        }
        .check()
        .is_ok());
        assert!(LogSpec {
            max_bytes: None,
            max_files: Some(0)
        }
        .check()
        .is_err());
    }

    #[test]
    fn restart_specs_parse_and_stay_off_the_wire_by_default() {
        let p = |s: &str| RestartSpec::parse(s);
        assert_eq!(p("no").unwrap(), RestartSpec::default());
        assert_eq!(
            p("on-failure:2").unwrap(),
            RestartSpec {
                policy: RestartPolicy::OnFailure,
                max_retries: Some(2)
            }
        );
        assert_eq!(p("always").unwrap().policy, RestartPolicy::Always);
        for bad in ["sometimes", "no:3", "on-failure:x", "always:-1"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let wire: ContainerSpec = serde_json::from_str(
            r#"{"mount":{"existing":{"id":1}},"command":"x",
                "restart":{"policy":"on-failure","max_retries":2}}"#,
        )
        .unwrap();
        assert_eq!(wire.restart, p("on-failure:2").unwrap());
        let json = serde_json::to_value(ContainerSpec::new(
            MountRef::Existing(Selector::Id(1)),
            CommandLine::Line("x".into()),
        ))
        .unwrap();
        assert!(json.get("restart").is_none(), "{json}");
        assert!(serde_json::from_str::<ContainerSpec>(
            r#"{"mount":{"existing":{"id":1}},"command":"x","restart":{"policy":"sometimes"}}"#
        )
        .is_err());
    }

    #[test]
    fn security_options_parse_and_stay_off_the_wire_by_default() {
        let mut s = SecuritySpec::default();
        s.apply_opt("seccomp=unconfined").unwrap();
        s.apply_opt("no-new-privileges=false").unwrap();
        assert_eq!(
            s,
            SecuritySpec {
                seccomp: SeccompMode::Unconfined,
                no_new_privileges: Some(false)
            }
        );
        s.apply_opt("no-new-privileges").unwrap();
        assert_eq!(s.no_new_privileges, Some(true));
        for bad in [
            "seccomp=/etc/profile.json",
            "apparmor=x",
            "no-new-privileges=maybe",
            "",
        ] {
            let before = s;
            assert!(s.apply_opt(bad).is_err(), "{bad}");
            assert_eq!(s, before, "a bad option changes nothing");
        }
        let wire: ContainerSpec = serde_json::from_str(
            r#"{"mount":{"existing":{"id":1}},"command":"x","security":{"seccomp":"unconfined"}}"#,
        )
        .unwrap();
        assert_eq!(wire.security.seccomp, SeccompMode::Unconfined);
        let json = serde_json::to_value(ContainerSpec::new(
            MountRef::Existing(Selector::Id(1)),
            CommandLine::Line("x".into()),
        ))
        .unwrap();
        assert!(json.get("security").is_none(), "{json}");
    }
}
