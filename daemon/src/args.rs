//! Command-line flags of `imagebusd` (clap derive). Execution lives elsewhere.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// zos's broker address (the bus's default); probed when no broker is configured.
pub const ZOS_BROKER: &str = imagebus_bus::broker::DEFAULT_BROKER;

/// Default of `--workers`: room for every mutation slot of a small host plus as many
/// concurrent reads.
pub const DEFAULT_WORKERS: u32 = 32;

/// `argv` with Go-style flags rewritten for clap: Go's flag package takes `-name` as well
/// as `--name` (zos units write `contd -broker unix:///var/run/redis.sock -root …`), so a
/// single-dash argument naming one of our long flags or aliases (`-broker`,
/// `-broker=URL`) becomes `--broker`. Short flags (`-h`, `-V`) and values are left alone.
pub fn go_style(argv: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let cmd = Args::command();
    let longs: std::collections::BTreeSet<String> = cmd
        .get_arguments()
        .flat_map(|a| {
            a.get_long()
                .into_iter()
                .chain(a.get_all_aliases().into_iter().flatten())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .chain(["help".to_string(), "version".to_string()])
        .collect();
    argv.into_iter()
        .map(|arg| {
            let Some(s) = arg.to_str() else {
                return arg;
            };
            let Some(rest) = s.strip_prefix('-').filter(|r| !r.starts_with('-')) else {
                return arg;
            };
            let name = rest.split('=').next().unwrap_or(rest);
            if name.len() > 1 && longs.contains(name) {
                format!("-{s}").into()
            } else {
                arg
            }
        })
        .collect()
}

/// imagebusd: serves the imagebus actors (attach, mount, container) on a Redis bus.
#[derive(Debug, Parser)]
#[command(name = "imagebusd", version, about)]
pub struct Args {
    /// Redis broker URL (`unix:///path` or `redis://[user:password@]host:port`). When unset,
    /// the zos default is used if it answers, else a private redis-server is started on a
    /// unix socket under --run-dir.
    #[arg(long, env = "IMAGEBUS_BROKER")]
    pub broker: Option<String>,

    /// Broker probed when --broker is not given (testing seam; zos's default).
    #[arg(long, env = "IMAGEBUS_DEFAULT_BROKER", default_value = ZOS_BROKER, hide = true)]
    pub default_broker: String,

    /// Group (name or number) that may use the private broker: its socket becomes 0770
    /// root:GROUP and the run directory group-traversable (default: root only, 0700).
    #[arg(long, env = "IMAGEBUS_SOCKET_GROUP", value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// redis-server executable for the private broker.
    #[arg(long, env = "IMAGEBUS_REDIS_SERVER", default_value = "redis-server")]
    pub redis_server: PathBuf,

    /// Server workers per module: requests each module has in hand at once (running,
    /// waiting for a mutation slot, or reading). Keep it above --max-mutations so reads
    /// find a free worker while every mutation slot is taken.
    #[arg(long, env = "IMAGEBUS_WORKERS", default_value_t = DEFAULT_WORKERS, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: u32,

    /// Mutations each actor runs at once (creates, deletes, ...); the rest wait in FIFO
    /// order, and one whose caller's deadline passes while it waits is never started.
    /// Default: 8 per core, at least 8.
    #[arg(long, env = "IMAGEBUS_MAX_MUTATIONS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_mutations: Option<u32>,

    /// Persistent state of the actors (one subdirectory per module). zos's `--root` is
    /// accepted as another name for it.
    #[arg(
        long,
        alias = "root",
        env = "IMAGEBUS_STATE_DIR",
        default_value = "/var/lib/imagebus"
    )]
    pub state_dir: PathBuf,

    /// Runtime files: mountpoints, sockets, the `broker` file the CLI reads.
    #[arg(long, env = "IMAGEBUS_RUN_DIR", default_value = "/run/imagebus")]
    pub run_dir: PathBuf,

    /// Container logs go to `<log-dir>/containers`.
    #[arg(long, env = "IMAGEBUS_LOG_DIR", default_value = "/var/log/imagebus")]
    pub log_dir: PathBuf,

    /// OCI runtime of the container actor: `runc`, `crun` or a path to either binary (a
    /// file name starting with `crun` selects crun, which is wrapped on hybrid cgroup hosts).
    #[arg(long, env = "IMAGEBUS_RUNTIME", default_value = "runc")]
    pub runtime: PathBuf,

    /// Size in bytes past which a container's log file is rotated (renamed to `<log>.1`,
    /// older ones moving up; a container's own setting wins). 0: never rotate.
    #[arg(long, env = "IMAGEBUS_LOG_MAX_BYTES", default_value_t = imagebus_container::DEFAULT_LOG_MAX_BYTES)]
    pub log_max_bytes: u64,

    /// Files each container's log keeps, the current one included (1 to 100; a
    /// container's own setting wins).
    #[arg(long, env = "IMAGEBUS_LOG_MAX_FILES", default_value_t = imagebus_container::DEFAULT_LOG_MAX_FILES,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub log_max_files: u32,

    /// Prefix of container runtime ids and cgroups; two daemons on one host need
    /// different instances.
    #[arg(long, default_value = "imagebus")]
    pub instance: String,

    /// Log format on stdout. The filter comes from IMAGEBUS_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve only this module (one-module-per-process deployments); its peers are reached
    /// over the bus. Repeat to serve several. Default: all modules in this process.
    #[arg(long = "only", value_name = "MODULE")]
    pub only: Vec<String>,

    /// Interval of the `imagebus.system@1.Heartbeat` event.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat: std::time::Duration,

    /// Serve ImageAPI's REST API (v0.1 and v0.2 paths under /imageapi/v1) on `HOST:PORT`
    /// or `unix:/path`. Off by default.
    #[arg(long, env = "IMAGEBUS_IMAGEAPI", value_name = "ADDR")]
    pub imageapi: Option<String>,

    /// PEM certificate (chain) of the ImageAPI server: turns on TLS (with --tls-key).
    #[arg(
        long,
        env = "IMAGEBUS_TLS_CERTIFICATE",
        requires = "tls_key",
        requires = "imageapi"
    )]
    pub tls_certificate: Option<PathBuf>,

    /// PEM private key of the ImageAPI server's certificate.
    #[arg(long, env = "IMAGEBUS_TLS_KEY", requires = "tls_certificate")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates: ImageAPI clients must present a certificate signed by one.
    #[arg(long, env = "IMAGEBUS_TLS_CA", requires = "tls_certificate")]
    pub tls_ca: Option<PathBuf>,

    /// Longest time one ImageAPI request may take (then 500).
    #[arg(long, env = "IMAGEBUS_IMAGEAPI_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub imageapi_timeout: std::time::Duration,

    /// Largest ImageAPI request body in bytes (then 413).
    #[arg(long, env = "IMAGEBUS_IMAGEAPI_BODY_LIMIT", default_value_t = imagebus_gateway::config::DEFAULT_BODY_LIMIT)]
    pub imageapi_body_limit: usize,

    /// Where system containers' zinit units are written (`NAME.yaml`).
    #[arg(long, env = "IMAGEBUS_ZINIT_DIR", default_value = "/etc/zinit")]
    pub zinit_dir: PathBuf,

    /// zinit's control socket: when zinit answers there, it monitors system containers'
    /// units; otherwise imagebusd keeps them running itself.
    #[arg(
        long,
        env = "IMAGEBUS_ZINIT_SOCKET",
        default_value = "/var/run/zinit.sock"
    )]
    pub zinit_socket: PathBuf,

    /// The root under which `run/systemd/system` says the host runs systemd: then system
    /// containers' units are systemd's `NAME.service` instead of zinit's.
    #[arg(long, env = "IMAGEBUS_SYSTEMD_ROOT", default_value = "/")]
    pub systemd_root: PathBuf,

    /// Where system containers' systemd units (`NAME.service`) are installed on a systemd
    /// host.
    #[arg(
        long,
        env = "IMAGEBUS_SYSTEMD_UNIT_DIR",
        default_value = "/etc/systemd/system"
    )]
    pub systemd_unit_dir: PathBuf,

    /// The command reaching the host's systemd, split like a shell line (a prefix such as
    /// `nsenter -t PID -m -p systemctl` for a systemd in another namespace).
    #[arg(long, env = "IMAGEBUS_SYSTEMCTL", default_value = "systemctl", value_parser = CommandLine::parse)]
    pub systemctl: CommandLine,

    /// The root that system containers' `hostfs/` files are copied onto and that their
    /// tmpfiles paths must stay in.
    #[arg(long, env = "IMAGEBUS_SYSTEM_HOST_ROOT", default_value = "/")]
    pub system_host_root: PathBuf,

    /// Longest wait for modules to stop after SIGTERM/SIGINT before exiting anyway.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: std::time::Duration,

    /// zos contd's containerd socket flag (also under its misspelling `congainerd`):
    /// accepted so contd's unit runs unchanged, and ignored (we run runc directly).
    #[arg(long, alias = "congainerd", hide = true, value_name = "SOCKET")]
    pub containerd: Option<String>,
}

/// A command line given as one string, split like a shell line (quotes, no expansion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(pub Vec<String>);

impl CommandLine {
    /// Splits `s`; an empty line or an unbalanced quote is an error.
    pub fn parse(s: &str) -> Result<Self, String> {
        let words = shell_words::split(s).map_err(|e| format!("{s:?}: {e}"))?;
        if words.is_empty() {
            return Err("an empty command".to_string());
        }
        Ok(Self(words))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Issue 10: zos's contd unit (`contd -broker URL -root DIR`) runs unchanged.
    #[test]
    fn go_style_single_dash_flags_of_the_contd_unit_parse() {
        let argv = [
            "imagebusd",
            "-broker",
            "unix:///var/run/redis.sock",
            "-root=/var/cache/modules/contd",
            "-workers",
            "3",
            "-congainerd",
            "/run/containerd/containerd.sock",
            "-h2",
        ];
        let fixed = go_style(argv.iter().map(std::ffi::OsString::from));
        assert_eq!(
            fixed,
            [
                "imagebusd",
                "--broker",
                "unix:///var/run/redis.sock",
                "--root=/var/cache/modules/contd",
                "--workers",
                "3",
                "--congainerd",
                "/run/containerd/containerd.sock",
                "-h2",
            ]
            .map(std::ffi::OsString::from)
        );
        let a = Args::try_parse_from(&fixed[..fixed.len() - 1]).unwrap();
        assert_eq!(a.broker.as_deref(), Some("unix:///var/run/redis.sock"));
        assert_eq!(a.state_dir, PathBuf::from("/var/cache/modules/contd"));
        assert_eq!(a.workers, 3);
        // A value that looks like a flag is a value, and unknown names are left for clap
        // to refuse.
        let v = go_style(["imagebusd", "--instance", "-x"].map(std::ffi::OsString::from));
        assert_eq!(v[2], "-x");
    }

    #[test]
    fn flags_parse() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "imagebusd",
            "--broker",
            "unix:///x.sock",
            "--workers",
            "2",
            "--only",
            "mount",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(a.broker.as_deref(), Some("unix:///x.sock"));
        assert_eq!(a.workers, 2);
        assert_eq!(a.only, vec!["mount".to_string()]);
        assert_eq!(a.log_format, LogFormat::Json);
        assert!(Args::try_parse_from(["imagebusd", "--workers", "0"]).is_err());
        assert_eq!(a.max_mutations, None);
        let b = Args::try_parse_from(["imagebusd", "--max-mutations", "3"]).unwrap();
        assert_eq!(b.max_mutations, Some(3));
        assert_eq!(b.workers, DEFAULT_WORKERS);
        assert!(Args::try_parse_from(["imagebusd", "--max-mutations", "0"]).is_err());
    }

    #[test]
    fn system_container_flags_parse() {
        let a = Args::try_parse_from(["imagebusd"]).unwrap();
        assert_eq!(a.systemctl.0, ["systemctl"]);
        assert_eq!(a.systemd_root, std::path::Path::new("/"));
        let a = Args::try_parse_from([
            "imagebusd",
            "--systemctl",
            "nsenter -t 7 -m -p 'sys ctl'",
            "--systemd-unit-dir",
            "/u",
        ])
        .unwrap();
        assert_eq!(a.systemctl.0, ["nsenter", "-t", "7", "-m", "-p", "sys ctl"]);
        assert_eq!(a.systemd_unit_dir, std::path::Path::new("/u"));
        assert!(Args::try_parse_from(["imagebusd", "--systemctl", ""]).is_err());
        assert!(Args::try_parse_from(["imagebusd", "--systemctl", "a 'b"]).is_err());
    }

    #[test]
    fn imageapi_flags_parse() {
        let a = Args::try_parse_from(["imagebusd"]).unwrap();
        assert_eq!(a.imageapi, None);
        assert_eq!(a.imageapi_timeout, std::time::Duration::from_secs(120));
        let a = Args::try_parse_from([
            "imagebusd",
            "--imageapi",
            "127.0.0.1:8080",
            "--tls-certificate",
            "/c.pem",
            "--tls-key",
            "/k.pem",
            "--tls-ca",
            "/ca.pem",
            "--imageapi-timeout",
            "5s",
        ])
        .unwrap();
        assert_eq!(a.imageapi.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(a.tls_ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(a.imageapi_timeout, std::time::Duration::from_secs(5));
        // A certificate needs its key, and TLS needs the gateway.
        assert!(Args::try_parse_from([
            "imagebusd",
            "--imageapi",
            "x:1",
            "--tls-certificate",
            "/c"
        ])
        .is_err());
        assert!(
            Args::try_parse_from(["imagebusd", "--tls-certificate", "/c", "--tls-key", "/k"])
                .is_err()
        );
    }
}
