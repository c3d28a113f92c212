//! Command-line arguments of `imagebus` (clap derive). Execution is in `commands/`.

mod container;
mod image;
mod store;
mod system;

pub use container::{
    EventsArgs, ExecArgs, LogsArgs, PsArgs, RmArgs, RunArgs, StartArgs, StatsArgs, StopArgs,
    TargetArgs,
};
pub use image::{ImageCommand, ImageImport};
pub use store::{AttachCommand, AttachCreate, MountCommand, MountCreate};
pub use system::SystemCommand;

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// zos's broker address, tried first when --broker is not given.
pub const ZOS_BROKER: &str = imagebus_bus::broker::DEFAULT_BROKER;

/// The longest duration a flag takes (`--timeout`, `--stop-timeout`, `--kill-after`): a
/// week. Longer ones are refused as a usage error rather than overflowing a deadline.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration flag: a bare number is seconds (`10`, as docker's `stop -t 10`), else
/// humantime units (`30s`, `500ms`, `1h 30m`); at most [`MAX_DURATION`].
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = t.parse().map_err(|_| format!("{t} seconds is too long"))?;
        Duration::from_secs(secs)
    } else {
        humantime::parse_duration(t).map_err(|e| e.to_string())?
    };
    if d > MAX_DURATION {
        return Err(format!(
            "{} is longer than the limit of {}",
            humantime::format_duration(d),
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// What each subcommand's help says instead of repeating the global options.
const GLOBALS_NOTE: &str =
    "Global options (--broker, --run-dir, --timeout, --json, --reader) go before or after the command; \
     see `imagebus --help`.";

/// The clap command: [`Cli`] with the global options shown in the top-level help only.
///
/// Global options are accepted anywhere (`imagebus --json ps` and `imagebus ps --json`), so
/// clap copies them into every subcommand, and into its help. Each direct subcommand gets a
/// hidden copy first (clap skips an id a subcommand already has), which its own
/// subcommands then inherit.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |sc| {
            let sc = sc.args(globals.clone()).after_help(GLOBALS_NOTE);
            let nested: Vec<String> = sc
                .get_subcommands()
                .map(|s| s.get_name().to_string())
                .collect();
            nested.into_iter().fold(sc, |sc, n| {
                sc.mut_subcommand(n, |c| c.after_help(GLOBALS_NOTE))
            })
        });
    }
    cmd
}

/// Parses the process's arguments (exits with status 2 on a usage error).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let matches = command()
        .try_get_matches()
        .unwrap_or_else(|e| crate::output::usage_error(&e));
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| crate::output::usage_error(&e))
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
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Redis broker URL (`redis://HOST[:PORT]`, `unix:///PATH`). When unset: the zos
    /// default if it answers, else the URL imagebusd wrote to `<run-dir>/broker`.
    #[arg(long, global = true, env = "IMAGEBUS_BROKER", hide_env_values = true)]
    pub broker: Option<String>,

    /// Broker tried first when --broker is not given (testing seam).
    #[arg(long, global = true, env = "IMAGEBUS_DEFAULT_BROKER", default_value = ZOS_BROKER, hide = true)]
    pub default_broker: String,

    /// imagebusd's run directory, where it records the broker it uses.
    #[arg(
        long,
        global = true,
        env = "IMAGEBUS_RUN_DIR",
        hide_env_values = true,
        default_value = "/run/imagebus"
    )]
    pub run_dir: PathBuf,

    /// Deadline of each call to a module: seconds (`30`) or with a unit (`500ms`, `2m`).
    #[arg(long, global = true, default_value = "30s", value_parser = duration)]
    pub timeout: Duration,

    /// Machine output: one compact JSON document on stdout (one per line for streams),
    /// errors included (`{"error":{"code":…,"message":…}}`).
    #[arg(long, global = true)]
    pub json: bool,

    /// Call as a read-only caller: through the modules' read-only queues (`<queue>:ro`),
    /// where only read methods are served. A Redis user made by `imagebus acl reader` must.
    #[arg(long, global = true, env = "IMAGEBUS_READER", hide_env_values = true)]
    pub reader: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call any method of any object and print its result as JSON.
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
    /// System containers (`syscontainer.syscontainer@1`), atomic style: install, update,
    /// rollback, uninstall, ls, inspect.
    #[command(subcommand)]
    System(SystemCommand),
    /// Create and start a container in one call, rootfs nested inline (image file → loop →
    /// squashfs → overlay) or an existing mount.
    Run(Box<RunArgs>),
    /// List containers as a table (or JSON with --json).
    Ps(PsArgs),
    /// Print one container as JSON.
    Inspect(TargetArgs),
    /// Start a created or exited container; --attach stays until it exits.
    Start(StartArgs),
    /// Stop a container: its stop signal, then SIGKILL after the stop timeout.
    Stop(StopArgs),
    /// Delete a stopped container with its inline mounts and attachments; -f kills a
    /// running one first (SIGKILL at once).
    Rm(RmArgs),
    /// Print a container's log; -f follows it.
    Logs(LogsArgs),
    /// Run a command in a running container; exits with its exit code.
    Exec(ExecArgs),
    /// Follow container state changes, one line each.
    Events(EventsArgs),
    /// Resource use (CPU, memory, tasks, block I/O, network) as a refreshing table until
    /// Ctrl-C; --no-stream prints once; --json gives one JSON line per container and round.
    Stats(StatsArgs),
    /// Print the Redis ACL rules of a bus user: a module user (pops only its modules'
    /// queues) or a read-only caller (calls with `--reader` only). Give them to
    /// `ACL SETUSER <user> on >PASSWORD <rules>`.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Print a shell completion script (e.g. `imagebus completions bash > /etc/bash_completion.d/imagebus`).
    Completions(CompletionsArgs),
    /// Write man pages (imagebus.1 and one per subcommand) into a directory, or print
    /// imagebus.1 on stdout.
    Man(ManArgs),
}

/// `imagebus acl`.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// The rules of a user that serves MODULE... (imagebusd's modules: imagebus, attach,
    /// mount, container, image, syscontainer).
    Module {
        /// The Redis user (its replies are `reply:<user>:*`).
        #[arg(long)]
        user: String,
        /// The modules it serves.
        #[arg(required = true)]
        modules: Vec<String>,
    },
    /// The rules of a read-only caller (Get, List, Logs, Stats... with `--reader`).
    Reader {
        /// The Redis user.
        #[arg(long)]
        user: String,
    },
}

/// `imagebus completions`.
#[derive(Debug, ClapArgs)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `imagebus man`.
#[derive(Debug, ClapArgs)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing); without it, imagebus.1 goes
    /// to stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
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
    /// Arguments, one JSON document each (quote strings: '"hi"'). Typed forms for
    /// foreign (Go) peers: `{"$f32": 1.5}`, `{"$f64": 1}`, `{"$bytes": [1, 2]}`,
    /// `{"$bytes": "base64…"}`, `{"$i64": 1}`, `{"$u64": 1}`.
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
        command().debug_assert();
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

    /// docs/operations.md's table of duration flags lists every flag that takes a
    /// duration, and no other.
    #[test]
    fn operations_md_lists_every_duration_flag() {
        fn walk(cmd: &clap::Command, found: &mut std::collections::BTreeSet<String>) {
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let names = a.get_value_names().unwrap_or_default();
                if names.iter().any(|n| n == "DURATION") || a.get_id() == "timeout" {
                    if let Some(long) = a.get_long() {
                        found.insert(format!("--{long}"));
                    }
                }
            }
            for sc in cmd.get_subcommands() {
                walk(sc, found);
            }
        }
        let mut flags = std::collections::BTreeSet::new();
        walk(&command(), &mut flags);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let start = doc.find("| flag | meaning | default |").expect("the table");
        let documented: std::collections::BTreeSet<String> = doc[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .flat_map(|l| {
                let cell = l.trim_matches('|').split('|').next().unwrap_or_default();
                cell.split('`')
                    .filter_map(|w| w.split_whitespace().find(|t| t.starts_with("--")))
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(documented, flags, "docs/operations.md's duration flags");
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
