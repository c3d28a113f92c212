//! Arguments of the container commands.

use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::time::Duration;

/// `imagebus run`.
#[derive(Debug, ClapArgs)]
#[command(group = clap::ArgGroup::new("rootfs").required(true).multiple(false).args(["image", "mount", "spec", "bundle"]))]
pub struct RunArgs {
    /// Unique name.
    #[arg(long)]
    pub name: Option<String>,
    /// Group (zos tenant namespace).
    #[arg(long)]
    pub group: Option<String>,
    /// Root filesystem image (squashfs, erofs, ext4): loop-attached, mounted and covered
    /// by an ephemeral writable overlay, all inline (removed with the container). A value
    /// that is neither an existing file nor a path starting with `/` or `.` names an image
    /// of the image store (`NAME[:TAG]` or digest).
    #[arg(long, value_name = "FILE|IMAGE")]
    pub image: Option<PathBuf>,
    /// Use an existing mount (id or name) as the root filesystem.
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
    /// With --image: mount it read-only without the writable overlay.
    #[arg(long, requires = "image")]
    pub read_only: bool,
    /// `KEY=VALUE` environment; repeatable.
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long, short = 'w')]
    pub workdir: Option<String>,
    /// Hostname (own UTS namespace).
    #[arg(long)]
    pub hostname: Option<String>,
    /// `UID[:GID]` to run the init as.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// systemd mode (container= env, tmpfs /run and /tmp, SIGRTMIN+3 to stop).
    #[arg(long)]
    pub systemd: bool,
    /// Only create it (state `created`); `imagebus start` runs it.
    #[arg(long)]
    pub created: bool,
    /// Give the init a terminal and attach this one to it (raw mode; the CLI exits with
    /// the init's exit code). With --created, only create it with a terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Send this terminal's input to the init (with -t).
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// `host`, `private` or the name of a namespace under /var/run/netns.
    #[arg(long, default_value = "host")]
    pub net: String,
    /// `SOURCE:TARGET[:ro]` bind mount; repeatable.
    #[arg(long = "bind", value_name = "SRC:DST[:ro]")]
    pub binds: Vec<String>,
    /// CPU limit in millicores (1000 = one CPU).
    #[arg(long, value_name = "MILLIS")]
    pub cpu_millis: Option<u32>,
    /// Memory limit in bytes.
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<u64>,
    /// Task (process and thread) limit.
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// Capability to add (e.g. CAP_NET_ADMIN); repeatable.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Capability to drop; repeatable.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Stop signal (e.g. SIGTERM).
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// `seccomp=unconfined` (no seccomp filter; the default profile otherwise) or
    /// `no-new-privileges[=true|false]`; repeatable.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// How long `stop` waits after the stop signal before SIGKILL (default 10s).
    #[arg(long, value_parser = super::duration, value_name = "DURATION")]
    pub stop_timeout: Option<Duration>,
    /// The whole `ContainerSpec` as JSON; `@FILE` or `-` (stdin).
    #[arg(long = "spec", value_name = "JSON", conflicts_with_all = ["command", "env", "binds", "image", "mount", "oci_config"])]
    pub spec: Option<String>,
    /// An OCI runtime `config.json` merged onto the generated one (the spec's `oci`
    /// field); its `process.args` are the command when none is given.
    #[arg(long = "oci-config", value_name = "FILE", conflicts_with = "bundle")]
    pub oci_config: Option<PathBuf>,
    /// Restart policy: `no` (default), `on-failure[:N]` or `always[:N]` (N: restarts in a
    /// row at most).
    #[arg(long, value_name = "POLICY", value_parser = imagebus_schema::container::RestartSpec::parse)]
    pub restart: Option<imagebus_schema::container::RestartSpec>,
    /// Health check: a command run inside the container every --health-interval (split
    /// like a shell: quotes and backslashes); exit 0 is healthy.
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between two health checks (default 30s).
    #[arg(long, value_parser = super::duration, value_name = "DURATION", requires = "health_cmd")]
    pub health_interval: Option<Duration>,
    /// A health check running longer is killed and counts as failed (default 30s).
    #[arg(long, value_parser = super::duration, value_name = "DURATION", requires = "health_cmd")]
    pub health_timeout: Option<Duration>,
    /// Failed health checks in a row that make the container unhealthy (default 3).
    #[arg(long, value_name = "N", requires = "health_cmd")]
    pub health_retries: Option<u32>,
    /// Failed health checks within this time after the start do not count (default 0s).
    #[arg(long, value_parser = super::duration, value_name = "DURATION", requires = "health_cmd")]
    pub health_start_period: Option<Duration>,
    /// Rotate the container's log file past this many bytes (0: never; default: the
    /// daemon's --log-max-bytes).
    #[arg(long, value_name = "BYTES")]
    pub log_max_bytes: Option<u64>,
    /// Files the container's log keeps, the current one included (default: the daemon's
    /// --log-max-files).
    #[arg(long, value_name = "N")]
    pub log_max_files: Option<u32>,
    /// A runc bundle: `DIR/rootfs` (bind-mounted) is the root filesystem and
    /// `DIR/config.json` is merged like --oci-config.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// The command and its arguments (a `--` before them is optional). With an image of
    /// the store: its Entrypoint, then these arguments (default: its Cmd).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present_any = ["spec", "oci_config", "bundle", "image"]
    )]
    pub command: Vec<String>,
}

/// `imagebus ps`.
#[derive(Debug, ClapArgs)]
pub struct PsArgs {
    /// Only these states; repeatable.
    #[arg(long = "state", value_parser = ["created", "running", "stopping", "exited", "dead"])]
    pub states: Vec<String>,
    /// Only this group.
    #[arg(long)]
    pub group: Option<String>,
}

/// A container by id or name.
#[derive(Debug, ClapArgs)]
pub struct TargetArgs {
    /// Id or name.
    pub target: String,
}

/// `imagebus start`.
#[derive(Debug, ClapArgs)]
pub struct StartArgs {
    /// Id or name.
    pub target: String,
    /// Stay in the foreground: print the container's output until it exits, then exit
    /// with its exit code; SIGTERM or SIGINT stops the container first (what a system
    /// container's unit runs).
    #[arg(long, short = 'a')]
    pub attach: bool,
}

/// `imagebus stop`.
#[derive(Debug, ClapArgs)]
pub struct StopArgs {
    /// Id or name.
    pub target: String,
    /// Wait after the stop signal before SIGKILL (default: the container's
    /// --stop-timeout). `--time` is an old spelling.
    #[arg(
        long = "stop-timeout",
        short = 't',
        alias = "time",
        value_parser = super::duration,
        value_name = "DURATION"
    )]
    pub grace: Option<Duration>,
}

/// `imagebus rm`.
#[derive(Debug, ClapArgs)]
pub struct RmArgs {
    /// Id or name.
    pub target: String,
    /// Kill it first if it is running (SIGKILL at once, no grace period; `stop` is the
    /// graceful way).
    #[arg(long, short = 'f')]
    pub force: bool,
}

/// `imagebus logs`.
#[derive(Debug, ClapArgs)]
pub struct LogsArgs {
    /// Id or name.
    pub target: String,
    /// Keep printing new output until the container stops (or Ctrl-C). With --json each
    /// log line is one JSON line `{"time":"…","stream":"stdout","line":"…"}`.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines (of those the other options keep).
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// Start each line with the time it was read (RFC 3339, UTC, nanoseconds; `-` for a
    /// line from before logs had times).
    #[arg(long, short = 't')]
    pub timestamps: bool,
    /// Only lines read at or after this time: RFC 3339 (`2026-12-02T11:07:29Z`) or a
    /// duration before now (`10m`).
    #[arg(long, value_name = "TIME", value_parser = crate::time::time_or_ago)]
    pub since: Option<u64>,
    /// Only lines read at or before this time (same forms as --since); with -f, following
    /// ends once it has passed.
    #[arg(long, value_name = "TIME", value_parser = crate::time::time_or_ago)]
    pub until: Option<u64>,
    /// Only the container's stdout.
    #[arg(long, conflicts_with = "stderr_only")]
    pub stdout_only: bool,
    /// Only the container's stderr.
    #[arg(long)]
    pub stderr_only: bool,
}

/// `imagebus exec`.
#[derive(Debug, ClapArgs)]
pub struct ExecArgs {
    /// Id or name.
    pub target: String,
    /// `KEY=VALUE` environment; repeatable.
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// Working directory.
    #[arg(long, short = 'w')]
    pub workdir: Option<String>,
    /// `UID[:GID]`.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Kill the process when it runs longer than this (default 30s; not with -i or -t).
    #[arg(long = "kill-after", value_parser = super::duration, value_name = "DURATION")]
    pub kill_after: Option<Duration>,
    /// Give the process a terminal and attach this one to it (raw mode; resizes follow).
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Send stdin to the process (its end closes the process's stdin).
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `imagebus events`.
#[derive(Debug, ClapArgs)]
pub struct EventsArgs {
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

/// `imagebus stats`.
#[derive(Debug, ClapArgs)]
pub struct StatsArgs {
    /// Ids or names (default: every running container).
    pub targets: Vec<String>,
    /// Print once and exit instead of refreshing.
    #[arg(long)]
    pub no_stream: bool,
    /// Time between refreshes.
    #[arg(long, default_value = "1s", value_parser = super::duration, value_name = "DURATION")]
    pub interval: Duration,
}
