//! Command-line arguments of `imagebus` (clap derive). Execution is in `commands/`.

mod container;
mod image;
mod store;

pub use container::{
    EventsArgs, ExecArgs, LogsArgs, PsArgs, RmArgs, RunArgs, StopArgs, TargetArgs,
};
pub use image::{ImageCommand, ImageImport};
pub use store::{AttachCommand, AttachCreate, MountCommand, MountCreate};

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// zos's broker address, tried first when --broker is not given.
pub const ZOS_BROKER: &str = imagebus_bus::broker::DEFAULT_BROKER;

/// The longest duration a flag takes (`--timeout`, `stop -t`, `--kill-after`, ...): a week.
/// Longer ones are refused as a usage error rather than overflowing a deadline.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration flag (`30s`, `500ms`, `1h 30m`) of at most [`MAX_DURATION`].
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > MAX_DURATION {
        return Err(format!(
            "{d:?} is longer than the limit of {}",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// imagebus: operate an imagebus node over its Redis bus.
#[derive(Debug, Parser)]
#[command(name = "imagebus", version, about)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, ClapArgs)]
pub struct Global {
    /// Redis broker URL. When unset: the zos default if it answers, else the URL imagebusd
    /// wrote to `<run-dir>/broker` (a private broker it started).
    #[arg(long, global = true, env = "IMAGEBUS_BROKER")]
    pub broker: Option<String>,

    /// Broker tried first when --broker is not given (testing seam).
    #[arg(long, global = true, env = "IMAGEBUS_DEFAULT_BROKER", default_value = ZOS_BROKER, hide = true)]
    pub default_broker: String,

    /// imagebusd's run directory, where it records the broker it uses.
    #[arg(
        long,
        global = true,
        env = "IMAGEBUS_RUN_DIR",
        default_value = "/run/imagebus"
    )]
    pub run_dir: PathBuf,

    /// Deadline of each call, e.g. `30s`, `500ms`.
    #[arg(long, global = true, default_value = "30s", value_parser = duration)]
    pub timeout: Duration,

    /// Machine output: one compact JSON document (or one per line for streams).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call a method and print its JSON result.
    Call(CallArgs),
    /// Ask a module's `zbus@1.0` status object for its objects and workers. Exits 0 only
    /// if the module answered (the zinit readiness test).
    Status(StatusArgs),
    /// Print each event of a stream as one JSON line until Ctrl-C.
    Watch(WatchArgs),
    /// Round-trip `imagebus.system@1.Ping` and print the daemon's version.
    Ping,
    /// Block devices (`attach.attach@1`): create, get, list, rm.
    #[command(subcommand)]
    Attach(AttachCommand),
    /// Filesystems (`mount.mount@1`): create, get, list, rm.
    #[command(subcommand)]
    Mount(MountCommand),
    /// The image store (`image.image@1`): import, ls, inspect, tag, rm.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Create and start a container in one call, rootfs nested inline (image file → loop →
    /// squashfs → overlay) or an existing mount.
    Run(Box<RunArgs>),
    /// List containers as a table (or JSON with --json).
    Ps(PsArgs),
    /// One container as JSON.
    Inspect(TargetArgs),
    /// Start a created or exited container.
    Start(TargetArgs),
    /// Stop a container (its stop signal, then SIGKILL after the timeout).
    Stop(StopArgs),
    /// Delete a container (and its inline mounts and attachments).
    Rm(RmArgs),
    /// Print a container's log; -f follows it.
    Logs(LogsArgs),
    /// Run a command in a running container; exits with its exit code.
    Exec(ExecArgs),
    /// Follow container state changes, one line each.
    Events(EventsArgs),
}

/// `imagebus call`.
#[derive(Debug, ClapArgs)]
pub struct CallArgs {
    /// Bus module, e.g. `mount`.
    pub module: String,
    /// Object id `name@version`, e.g. `mount@1`.
    pub object: String,
    /// Wire method name, e.g. `List`.
    pub method: String,
    /// Arguments, one JSON document each (quote strings: '"hi"').
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
}

/// `imagebus status`.
#[derive(Debug, ClapArgs)]
pub struct StatusArgs {
    /// Bus module, e.g. `container`.
    #[arg(
        required_unless_present = "module_flag",
        conflicts_with = "module_flag"
    )]
    pub module: Option<String>,
    /// Same as the positional module (zbusdebug's `--module` spelling).
    #[arg(long = "module", value_name = "MODULE")]
    pub module_flag: Option<String>,
}

impl StatusArgs {
    /// The module, however it was given.
    pub fn module(&self) -> &str {
        self.module
            .as_deref()
            .or(self.module_flag.as_deref())
            .unwrap_or_default()
    }
}

/// `imagebus watch`.
#[derive(Debug, ClapArgs)]
pub struct WatchArgs {
    /// Bus module.
    pub module: String,
    /// Object id `name@version`.
    pub object: String,
    /// Event name, e.g. `Heartbeat`.
    pub event: String,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_parses() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "imagebus",
            "call",
            "imagebus",
            "system@1",
            "Ping",
            "\"hi\"",
            "--timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(c.global.timeout, Duration::from_secs(2));
        let Command::Call(a) = c.command else {
            panic!("not call")
        };
        assert_eq!(a.args, vec!["\"hi\"".to_string()]);
        let c = Cli::try_parse_from(["imagebus", "call", "m", "o@1", "M", "-1"]).unwrap();
        let Command::Call(a) = c.command else {
            panic!("not call")
        };
        assert_eq!(a.args, vec!["-1".to_string()]);
    }

    #[test]
    fn durations_are_bounded_and_never_overflow() {
        // Once a panic (exit 101): `Duration` overflowed when the CLI added its timeout.
        for argv in [
            &["imagebus", "stop", "c", "-t", "18446744073709551615s"][..],
            &["imagebus", "stop", "c", "-t", "8days"],
            &["imagebus", "--timeout", "18446744073709551615s", "ps"],
            &[
                "imagebus",
                "exec",
                "--kill-after",
                "99999999999h",
                "c",
                "--",
                "true",
            ],
            &[
                "imagebus",
                "run",
                "--stop-timeout",
                "1000y",
                "--image",
                "x",
                "sh",
            ],
        ] {
            let err = Cli::try_parse_from(argv).expect_err("a usage error");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{argv:?}"
            );
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
        let c = Cli::try_parse_from(["imagebus", "stop", "c", "-t", "7days"]).unwrap();
        let Command::Stop(s) = c.command else {
            panic!("not stop")
        };
        assert_eq!(s.grace, Some(MAX_DURATION));
    }

    #[test]
    fn status_takes_the_module_either_way() {
        for argv in [
            &["imagebus", "status", "mount"][..],
            &["imagebus", "status", "--module", "mount"],
        ] {
            let c = Cli::try_parse_from(argv).unwrap();
            let Command::Status(s) = c.command else {
                panic!("not status")
            };
            assert_eq!(s.module(), "mount");
        }
        assert!(Cli::try_parse_from(["imagebus", "status"]).is_err());
    }
}
