//! [`Runtime`] over an OCI runtime command line: `runc` (1.1.x) or `crun` (1.8.x), which take
//! the same `create/run/start/state/list/kill/delete/exec` verbs. One [`OciCli`] with a
//! [`Flavour`] covers both; the flavour decides the few differences:
//!
//! - how "no such container" reads (runc: `... does not exist`; crun: `error opening file
//!   <root>/<id>/status: No such file or directory`), and the exit code of a failed `exec`
//!   (runc 255, crun 1);
//! - `exec --env`: runc adds to the container's environment, crun replaces it, so for crun
//!   the container's environment (from the bundle's `config.json`) is passed along;
//! - crun refuses to run at all on a hybrid cgroup host whose cgroup2 mount has a controller
//!   ("cgroups in hybrid mode not supported"), so there every crun command runs in a private
//!   mount namespace without that mount (see [`crate::crun`] and `docs/container.md`).
//!
//! Every command gets `--root <dir>` (our private state root, never the system default) and
//! `--log-format json` (both support it), so errors on stderr are JSON lines whose `msg` we
//! report.

use crate::crun::{bundle_env, hybrid_cgroup2, merge_env, HIDE_CGROUP2_SCRIPT};
use crate::runtime::{ExecOutput, ExecRequest, Runtime, RuntimeError, RuntimeState};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Which OCI runtime command line an [`OciCli`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// runc (the default).
    Runc,
    /// crun.
    Crun,
}

impl Flavour {
    /// The flavour of a runtime setting: `runc`, `crun` or a path to either binary; a
    /// binary whose file name starts with `crun` is crun, anything else runc.
    pub fn of_binary(binary: &Path) -> Self {
        match binary.file_name().and_then(|n| n.to_str()) {
            Some(n) if n.starts_with("crun") => Self::Crun,
            _ => Self::Runc,
        }
    }

    /// `runc` or `crun`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::Crun => "crun",
        }
    }

    /// Whether `message` (from [`error_message`]) says that container `id` is unknown
    /// (not that the command to exec is: see [`cannot_exec`]).
    fn is_not_found(self, message: &str) -> bool {
        if cannot_exec(message) {
            return false;
        }
        match self {
            Self::Runc => message.contains("does not exist") || message.contains("not found"),
            Self::Crun => {
                message.contains("/status`") && message.contains("No such file or directory")
            }
        }
    }

    /// Exit code of `exec` when the runtime itself failed (before the process ran).
    fn exec_failure_code(self) -> i32 {
        match self {
            Self::Runc => 255,
            Self::Crun => 1,
        }
    }
}

/// runc or crun with a private state root.
#[derive(Debug, Clone)]
pub struct OciCli {
    flavour: Flavour,
    binary: PathBuf,
    root: PathBuf,
    /// cgroup2 mount to hide from the runtime (crun on hybrid hosts).
    hide_cgroup2: Option<PathBuf>,
}

impl OciCli {
    /// `binary` of `flavour` keeping its state under `root`, run as is.
    pub fn new(flavour: Flavour, binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Self {
            flavour,
            binary: binary.into(),
            root: root.into(),
            hide_cgroup2: None,
        }
    }

    /// runc `binary` (e.g. `runc`) keeping its state under `root`.
    pub fn runc(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Self::new(Flavour::Runc, binary, root)
    }

    /// crun `binary` keeping its state under `root`, wrapped when this host needs it
    /// ([`hybrid_cgroup2`], read now: call once at start).
    pub fn crun(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        let hide = hybrid_cgroup2();
        if let Some(m) = &hide {
            tracing::info!(mount = %m.display(), "hybrid cgroup host: crun runs without the cgroup2 mount");
        }
        Self::new(Flavour::Crun, binary, root).hiding_cgroup2(hide)
    }

    /// The runtime for a runtime setting (`runc`, `crun` or a path; see
    /// [`Flavour::of_binary`]).
    pub fn for_binary(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        let binary = binary.into();
        match Flavour::of_binary(&binary) {
            Flavour::Runc => Self::runc(binary, root),
            Flavour::Crun => Self::crun(binary, root),
        }
    }

    /// Runs every command in a private mount namespace with `mount` unmounted (`None`: run
    /// the binary directly).
    pub fn hiding_cgroup2(mut self, mount: Option<PathBuf>) -> Self {
        self.hide_cgroup2 = mount;
        self
    }

    /// The flavour.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn program(&self) -> String {
        self.binary.display().to_string()
    }

    /// The full argv of runtime command `args`: the wrapper if any, the binary, the global
    /// options (`--log <log>` when given), then `args`.
    pub fn argv(&self, log: Option<&Path>, args: &[String]) -> Vec<String> {
        let mut argv = Vec::with_capacity(args.len() + 12);
        if let Some(mount) = &self.hide_cgroup2 {
            argv.extend(
                [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    HIDE_CGROUP2_SCRIPT,
                ]
                .map(String::from),
            );
            argv.push(self.program());
            argv.push(mount.display().to_string());
        } else {
            argv.push(self.program());
        }
        argv.push("--root".into());
        argv.push(self.root.display().to_string());
        if let Some(log) = log {
            argv.push("--log".into());
            argv.push(log.display().to_string());
        }
        argv.extend(["--log-format".into(), "json".into()]);
        argv.extend(args.iter().cloned());
        argv
    }

    fn command(&self, args: &[String]) -> Command {
        let argv = self.argv(None, args);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null());
        cmd
    }

    /// Runs a short command; `Err(message)` carries the runtime's error text.
    fn run(&self, args: &[String]) -> Result<Result<String, String>, RuntimeError> {
        let out = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| self.spawn_error(source))?;
        if out.status.success() {
            Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
        } else {
            Ok(Err(error_message(&String::from_utf8_lossy(&out.stderr))))
        }
    }

    fn spawn_error(&self, source: std::io::Error) -> RuntimeError {
        let program = match self.hide_cgroup2 {
            Some(_) => format!("unshare (wrapping {})", self.program()),
            None => self.program(),
        };
        RuntimeError::Spawn { program, source }
    }

    fn failed(&self, action: &'static str, id: &str, message: String) -> RuntimeError {
        if self.flavour.is_not_found(&message) {
            return RuntimeError::NotFound(id.to_string());
        }
        RuntimeError::Failed {
            program: self.program(),
            action,
            id: id.to_string(),
            message,
        }
    }

    /// Arguments of `kill`.
    pub fn kill_args(id: &str, signal: i32, all: bool) -> Vec<String> {
        let mut args = vec!["kill".to_string()];
        if all {
            args.push("--all".into());
        }
        args.extend([id.to_string(), signal.to_string()]);
        args
    }

    /// Arguments of `delete`.
    pub fn delete_args(id: &str, force: bool) -> Vec<String> {
        let mut args = vec!["delete".to_string()];
        if force {
            args.push("--force".into());
        }
        args.push(id.to_string());
        args
    }

    /// Arguments of `exec` with the environment `env` (already merged for crun). Neither
    /// runtime wants `--` before the command: crun would run `--`.
    pub fn exec_args(id: &str, req: &ExecRequest, env: &[String], pid_file: &Path) -> Vec<String> {
        let mut args = vec![
            "exec".to_string(),
            "--pid-file".into(),
            pid_file.display().to_string(),
        ];
        for e in env {
            args.extend(["--env".into(), e.clone()]);
        }
        if let Some(cwd) = &req.cwd {
            args.extend(["--cwd".into(), cwd.clone()]);
        }
        if let Some(user) = &req.user {
            args.extend(["--user".into(), user.clone()]);
        }
        args.push(id.to_string());
        args.extend(req.args.iter().cloned());
        args
    }

    /// The `--env` list of an exec: the request's for runc (which adds it to the
    /// container's); for crun, which replaces the environment, the container's own
    /// (`process.env` of its bundle) overridden by the request's.
    fn exec_env(&self, id: &str, req: &ExecRequest) -> Result<Vec<String>, RuntimeError> {
        if self.flavour == Flavour::Runc || req.env.is_empty() {
            return Ok(req.env.clone());
        }
        let state = self
            .state(id)?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        let path = state.bundle.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| RuntimeError::io("read", &path, e))?;
        let base = bundle_env(&text).map_err(|detail| RuntimeError::Parse {
            what: path.display().to_string(),
            detail,
        })?;
        Ok(merge_env(&base, &req.env))
    }
}

/// Whether the runtime's `message` says that the command it was to run cannot be
/// executed: not found in `$PATH` (runc: `exec: "x": executable file not found in $PATH`;
/// crun: ``executable file `x` not found in $PATH``), a missing path
/// (`exec: "/x": stat /x: no such file or directory`), or a file that is no executable
/// (`permission denied`, `exec format error`). The caller's mistake, not a runtime failure.
pub fn cannot_exec(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file") && m.contains("not found") {
        return true;
    }
    let exec_failed = [
        "exec: \"",
        "exec failed",
        "execv",
        "exec `",
        "exec the container process",
    ]
    .iter()
    .any(|p| m.contains(p));
    exec_failed
        && [
            "no such file or directory",
            "permission denied",
            "not a directory",
            "exec format error",
            "is a directory",
        ]
        .iter()
        .any(|why| m.contains(why))
}

/// The most of a runtime's error text kept by [`error_message`], in bytes: its tail,
/// where runc and crun put the cause.
pub const MESSAGE_MAX: usize = 2000;

/// The `msg` of the runtime's JSON error lines (the last one wins), or the trimmed text;
/// at most the last [`MESSAGE_MAX`] bytes of either, cut at a character boundary.
pub fn error_message(stderr: &str) -> String {
    let mut msg = None;
    for line in stderr.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                if v.get("level").and_then(|l| l.as_str()) != Some("warning") {
                    msg = Some(tail(m).to_string());
                }
            }
        }
    }
    msg.unwrap_or_else(|| tail(stderr.trim()).to_string())
}

/// The last [`MESSAGE_MAX`] bytes of `text`, from the first character boundary there.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(MESSAGE_MAX);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Runtime for OciCli {
    fn name(&self) -> &str {
        self.flavour.name()
    }

    fn create_argv(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        runtime_log: &Path,
        start: bool,
    ) -> Vec<String> {
        let mut args = if start {
            strings(&["run", "--detach"])
        } else {
            strings(&["create"])
        };
        args.extend([
            "--bundle".into(),
            bundle.display().to_string(),
            "--pid-file".into(),
            pid_file.display().to_string(),
            id.to_string(),
        ]);
        self.argv(Some(runtime_log), &args)
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&strings(&["start", id]))?
            .map(drop)
            .map_err(|m| self.failed("start", id, m))
    }

    fn state(&self, id: &str) -> Result<Option<RuntimeState>, RuntimeError> {
        match self.run(&strings(&["state", id]))? {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|e| RuntimeError::Parse {
                    what: format!("{} state {id}", self.program()),
                    detail: e.to_string(),
                }),
            Err(m) if self.flavour.is_not_found(&m) => Ok(None),
            Err(m) => Err(self.failed("state", id, m)),
        }
    }

    fn list(&self) -> Result<Vec<RuntimeState>, RuntimeError> {
        let out = self
            .run(&strings(&["list", "--format", "json"]))?
            .map_err(|m| self.failed("list", "", m))?;
        // runc prints `null` for none, crun `[]`.
        let list: Option<Vec<RuntimeState>> =
            serde_json::from_str(out.trim()).map_err(|e| RuntimeError::Parse {
                what: format!("{} list", self.program()),
                detail: e.to_string(),
            })?;
        Ok(list.unwrap_or_default())
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        self.run(&Self::kill_args(id, signal, all))?
            .map(drop)
            .map_err(|m| self.failed("kill", id, m))
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        match self.run(&Self::delete_args(id, force))? {
            Ok(_) => Ok(()),
            Err(m) if self.flavour.is_not_found(&m) => Ok(()),
            Err(m) => Err(self.failed("delete", id, m)),
        }
    }

    fn session_exec_argv(
        &self,
        id: &str,
        req: &ExecRequest,
        console: Option<&Path>,
        pid_file: &Path,
        log: &Path,
    ) -> Result<Vec<String>, RuntimeError> {
        if req.args.is_empty() {
            return Err(RuntimeError::Invalid("exec needs a command".into()));
        }
        let env = self.exec_env(id, req)?;
        let mut args = Self::exec_args(id, req, &env, pid_file);
        if let Some(socket) = console {
            let tty = [
                "--detach".to_string(),
                "--tty".into(),
                "--console-socket".into(),
                socket.display().to_string(),
            ];
            args.splice(1..1, tty);
        }
        Ok(self.argv(Some(log), &args))
    }

    fn exec_failure_code(&self) -> i32 {
        self.flavour.exec_failure_code()
    }

    fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        if req.args.is_empty() {
            return Err(RuntimeError::Invalid("exec needs a command".into()));
        }
        let env = self.exec_env(id, req)?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        // Beside the root, not in it: the runtime treats entries of its root as containers.
        let exec_dir = PathBuf::from(format!("{}.exec", self.root.display()));
        std::fs::create_dir_all(&exec_dir)
            .map_err(|e| RuntimeError::io("create directory", &exec_dir, e))?;
        let pid_file = exec_dir.join(format!(
            "{id}-{}-{}.pid",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = self.command(&Self::exec_args(id, req, &env, &pid_file));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| self.spawn_error(source))?;
        let max = req.max_output;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let mut chunk = [0u8; 8192];
                    while let Ok(n) = p.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        let room = max.saturating_sub(buf.len());
                        buf.extend_from_slice(&chunk[..n.min(room)]);
                    }
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out_t = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err_t = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + req.timeout;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline && !timed_out => {
                    // The runtime cannot forward SIGKILL: kill the process itself, then the runtime.
                    timed_out = true;
                    if let Some(pid) = std::fs::read_to_string(&pid_file)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok())
                    {
                        if let Ok(fd) = crate::signal::Pidfd::open(pid) {
                            let _ = fd.send(crate::signal::SIGKILL);
                        }
                    }
                    let _ = child.kill();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(source) => return Err(RuntimeError::io("waitpid", "", source)),
            }
        };
        let _ = std::fs::remove_file(&pid_file);
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        if timed_out {
            return Err(RuntimeError::Timeout {
                id: id.to_string(),
                timeout: req.timeout,
            });
        }
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(255);
        let failed = exit_code == self.flavour.exec_failure_code() && stdout.is_empty();
        let message = error_message(&stderr);
        // crun reports a command it cannot exec with 255 (its own failures with 1).
        let exec_failed = matches!(exit_code, 1 | 126 | 127 | 255) && stdout.is_empty();
        if exec_failed && cannot_exec(&message) {
            // The runtime's message names the command.
            return Err(RuntimeError::Invalid(format!(
                "the command cannot run in the container: {message}"
            )));
        }
        if failed && self.flavour.is_not_found(&message) {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> (&'static Path, &'static Path, &'static Path) {
        (Path::new("/b"), Path::new("/p"), Path::new("/l"))
    }

    #[test]
    fn json_error_lines_give_the_message() {
        let s = "{\"level\":\"warning\",\"msg\":\"deprecated\"}\n{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"x\"}\n";
        assert_eq!(error_message(s), "container does not exist");
        assert_eq!(error_message("  plain text\n"), "plain text");
    }

    #[test]
    fn error_messages_keep_a_bounded_tail_at_a_character_boundary() {
        // A cut point inside a two-byte character: the whole text used to come back.
        let text = format!("x{}", "é".repeat(MESSAGE_MAX));
        let m = error_message(&text);
        assert!(
            m.len() <= MESSAGE_MAX && m.len() >= MESSAGE_MAX - 1,
            "{}",
            m.len()
        );
        assert!(m.chars().all(|c| c == 'é'));
        let json = format!(
            "{{\"level\":\"error\",\"msg\":\"{}cause\"}}",
            "a".repeat(5000)
        );
        let m = error_message(&json);
        assert!(
            m.len() <= MESSAGE_MAX && m.ends_with("cause"),
            "{}",
            m.len()
        );
    }

    #[test]
    fn runc_create_argv_runs_detached_or_creates() {
        let r = OciCli::runc("runc", "/run/ib/runc");
        let (b, p, l) = paths();
        assert_eq!(
            r.create_argv("c1", b, p, l, true),
            [
                "runc",
                "--root",
                "/run/ib/runc",
                "--log",
                "/l",
                "--log-format",
                "json",
                "run",
                "--detach",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "c1"
            ]
        );
        let argv = r.create_argv("c1", b, p, l, false);
        assert_eq!(argv[7], "create");
        assert_eq!(argv.len(), 13);
    }

    #[test]
    fn crun_without_hybrid_cgroups_is_called_directly() {
        let r = OciCli::new(Flavour::Crun, "/usr/bin/crun", "/run/ib/crun");
        let (b, p, l) = paths();
        assert_eq!(
            r.create_argv("c1", b, p, l, false),
            [
                "/usr/bin/crun",
                "--root",
                "/run/ib/crun",
                "--log",
                "/l",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "c1"
            ]
        );
        assert_eq!(r.name(), "crun");
    }

    #[test]
    fn crun_on_hybrid_cgroups_runs_in_a_mount_namespace_without_cgroup2() {
        let r = OciCli::new(Flavour::Crun, "crun", "/run/ib/crun")
            .hiding_cgroup2(Some("/sys/fs/cgroup/unified".into()));
        let (b, p, l) = paths();
        assert_eq!(
            r.create_argv("c1", b, p, l, true),
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "umount \"$1\" && shift && exec \"$0\" \"$@\"",
                "crun",
                "/sys/fs/cgroup/unified",
                "--root",
                "/run/ib/crun",
                "--log",
                "/l",
                "--log-format",
                "json",
                "run",
                "--detach",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "c1"
            ]
        );
        // Every other verb goes through the same wrapper.
        let argv = r.argv(None, &OciCli::kill_args("c1", 9, true));
        assert_eq!(&argv[..9], &r.create_argv("c1", b, p, l, true)[..9]);
        assert_eq!(
            &argv[9..],
            [
                "--root",
                "/run/ib/crun",
                "--log-format",
                "json",
                "kill",
                "--all",
                "c1",
                "9"
            ]
        );
    }

    #[test]
    fn verbs_take_the_same_arguments_in_both_flavours() {
        assert_eq!(OciCli::kill_args("c1", 15, false), ["kill", "c1", "15"]);
        assert_eq!(OciCli::delete_args("c1", true), ["delete", "--force", "c1"]);
        assert_eq!(OciCli::delete_args("c1", false), ["delete", "c1"]);
        let req = ExecRequest {
            args: vec!["sh".into(), "-c".into(), "echo $A".into()],
            env: vec!["A=1".into()],
            cwd: Some("/tmp".into()),
            user: Some("0:0".into()),
            ..Default::default()
        };
        assert_eq!(
            OciCli::exec_args("c1", &req, &req.env, Path::new("/x.pid")),
            [
                "exec",
                "--pid-file",
                "/x.pid",
                "--env",
                "A=1",
                "--cwd",
                "/tmp",
                "--user",
                "0:0",
                "c1",
                "sh",
                "-c",
                "echo $A"
            ]
        );
        let runc = OciCli::runc("runc", "/r");
        assert_eq!(
            runc.argv(None, &["state".into(), "c1".into()]),
            [
                "runc",
                "--root",
                "/r",
                "--log-format",
                "json",
                "state",
                "c1"
            ]
        );
    }

    #[test]
    fn the_flavour_comes_from_the_binary_name() {
        assert_eq!(Flavour::of_binary(Path::new("runc")), Flavour::Runc);
        assert_eq!(
            Flavour::of_binary(Path::new("/usr/sbin/runc")),
            Flavour::Runc
        );
        assert_eq!(Flavour::of_binary(Path::new("crun")), Flavour::Crun);
        assert_eq!(
            Flavour::of_binary(Path::new("/opt/crun-1.8/bin/crun")),
            Flavour::Crun
        );
        assert_eq!(OciCli::for_binary("runc", "/r").flavour(), Flavour::Runc);
        assert_eq!(OciCli::for_binary("/x/crun", "/r").flavour(), Flavour::Crun);
    }

    #[test]
    fn not_found_messages_per_flavour() {
        let crun = "error opening file `/run/ib/crun/c1/status`: No such file or directory";
        assert!(Flavour::Crun.is_not_found(crun));
        assert!(!Flavour::Crun.is_not_found(
            "executable file `nosuch` not found in $PATH: No such file or directory"
        ));
        assert!(Flavour::Runc.is_not_found("container does not exist"));
    }

    /// Issue 10: runc's "executable file not found in $PATH" was read as "no such
    /// container", and `exec c -- nosuchcmd` answered `Conflict: container is exited`.
    #[test]
    fn a_command_that_cannot_run_is_no_missing_container() {
        for m in [
            "exec failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH",
            "exec failed: unable to start container process: exec: \"/no/cmd\": stat /no/cmd: no such file or directory",
            "exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied",
            "executable file `nosuch` not found in $PATH: No such file or directory",
            "exec `/no/cmd`: No such file or directory",
        ] {
            assert!(cannot_exec(m), "{m}");
            assert!(!Flavour::Runc.is_not_found(m), "{m}");
            assert!(!Flavour::Crun.is_not_found(m), "{m}");
        }
        for m in [
            "container does not exist",
            "container not found",
            "error opening file `/run/ib/crun/c1/status`: No such file or directory",
        ] {
            assert!(!cannot_exec(m), "{m}");
        }
    }

    fn require(binary: &str) {
        let ok = Command::new(binary)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "{binary} is missing: apt-get install {binary}");
    }

    #[test]
    fn unknown_container_state_is_none() {
        require("runc");
        let dir = tempfile::tempdir().unwrap();
        let r = OciCli::runc("runc", dir.path());
        assert!(matches!(r.state("nope"), Ok(None)));
        r.delete("nope", true).unwrap();
        assert!(r.list().unwrap().is_empty());
    }

    #[test]
    fn unknown_container_state_is_none_with_crun() {
        require("crun");
        let dir = tempfile::tempdir().unwrap();
        let r = OciCli::crun("crun", dir.path());
        assert!(matches!(r.state("nope"), Ok(None)), "{:?}", r.state("nope"));
        r.delete("nope", true).unwrap();
        assert!(r.list().unwrap().is_empty());
        assert!(matches!(r.start("nope"), Err(RuntimeError::NotFound(_))));
        assert!(matches!(
            r.kill("nope", 9, false),
            Err(RuntimeError::NotFound(_))
        ));
    }
}
