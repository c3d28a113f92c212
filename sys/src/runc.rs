//! [`Runtime`] over the `runc` binary (1.1.x); `crun` takes the same command line but needs a
//! mount-namespace wrapper on hybrid cgroup hosts (see `docs/container.md`).
//!
//! Every command gets `--root <dir>` (our private state root, never the system default) and
//! `--log-format json`, so errors on stderr are JSON lines whose `msg` we report.

use crate::runtime::{ExecOutput, ExecRequest, Runtime, RuntimeError, RuntimeState};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// runc (or a compatible binary) with a private state root.
#[derive(Debug, Clone)]
pub struct Runc {
    binary: PathBuf,
    root: PathBuf,
}

impl Runc {
    /// `binary` (e.g. `runc`) keeping its state under `root`.
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            root: root.into(),
        }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn program(&self) -> String {
        self.binary.display().to_string()
    }

    fn base(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log-format")
            .arg("json");
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs a short command; `Err(message)` carries runc's error text.
    fn run(&self, cmd: &mut Command) -> Result<Result<String, String>, RuntimeError> {
        let out = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                program: self.program(),
                source,
            })?;
        if out.status.success() {
            Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
        } else {
            Ok(Err(error_message(&String::from_utf8_lossy(&out.stderr))))
        }
    }

    fn failed(&self, action: &'static str, id: &str, message: String) -> RuntimeError {
        if is_not_found(&message) {
            return RuntimeError::NotFound(id.to_string());
        }
        RuntimeError::Failed {
            program: self.program(),
            action,
            id: id.to_string(),
            message,
        }
    }
}

/// The `msg` of runc's JSON error lines (the last one wins), or the trimmed text.
pub fn error_message(stderr: &str) -> String {
    let mut msg = None;
    for line in stderr.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                if v.get("level").and_then(|l| l.as_str()) != Some("warning") {
                    msg = Some(m.to_string());
                }
            }
        }
    }
    msg.unwrap_or_else(|| {
        let t = stderr.trim();
        let start = t.len().saturating_sub(2000);
        t.get(start..).unwrap_or(t).to_string()
    })
}

fn is_not_found(message: &str) -> bool {
    message.contains("does not exist") || message.contains("not found")
}

impl Runtime for Runc {
    fn name(&self) -> &str {
        self.binary
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("runc")
    }

    fn create_argv(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        runtime_log: &Path,
        start: bool,
    ) -> Vec<String> {
        let mut argv = vec![
            self.program(),
            "--root".into(),
            self.root.display().to_string(),
            "--log".into(),
            runtime_log.display().to_string(),
            "--log-format".into(),
            "json".into(),
        ];
        if start {
            argv.extend(["run".into(), "--detach".into()]);
        } else {
            argv.push("create".into());
        }
        argv.extend([
            "--bundle".into(),
            bundle.display().to_string(),
            "--pid-file".into(),
            pid_file.display().to_string(),
            id.to_string(),
        ]);
        argv
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(self.base().arg("start").arg(id))?
            .map(drop)
            .map_err(|m| self.failed("start", id, m))
    }

    fn state(&self, id: &str) -> Result<Option<RuntimeState>, RuntimeError> {
        match self.run(self.base().arg("state").arg(id))? {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|e| RuntimeError::Parse {
                    what: format!("{} state {id}", self.program()),
                    detail: e.to_string(),
                }),
            Err(m) if is_not_found(&m) => Ok(None),
            Err(m) => Err(self.failed("state", id, m)),
        }
    }

    fn list(&self) -> Result<Vec<RuntimeState>, RuntimeError> {
        let out = self
            .run(self.base().args(["list", "--format", "json"]))?
            .map_err(|m| self.failed("list", "", m))?;
        let list: Option<Vec<RuntimeState>> =
            serde_json::from_str(out.trim()).map_err(|e| RuntimeError::Parse {
                what: format!("{} list", self.program()),
                detail: e.to_string(),
            })?;
        Ok(list.unwrap_or_default())
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let mut cmd = self.base();
        cmd.arg("kill");
        if all {
            cmd.arg("--all");
        }
        cmd.arg(id).arg(signal.to_string());
        self.run(&mut cmd)?
            .map(drop)
            .map_err(|m| self.failed("kill", id, m))
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut cmd = self.base();
        cmd.arg("delete");
        if force {
            cmd.arg("--force");
        }
        match self.run(cmd.arg(id))? {
            Ok(_) => Ok(()),
            Err(m) if is_not_found(&m) => Ok(()),
            Err(m) => Err(self.failed("delete", id, m)),
        }
    }

    fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        if req.args.is_empty() {
            return Err(RuntimeError::Invalid("exec needs a command".into()));
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        // Beside the root, not in it: runc treats entries of its root as containers.
        let exec_dir = PathBuf::from(format!("{}.exec", self.root.display()));
        std::fs::create_dir_all(&exec_dir)
            .map_err(|e| RuntimeError::io("create directory", &exec_dir, e))?;
        let pid_file = exec_dir.join(format!(
            "{id}-{}-{}.pid",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = self.base();
        cmd.arg("exec").arg("--pid-file").arg(&pid_file);
        for e in &req.env {
            cmd.arg("--env").arg(e);
        }
        if let Some(cwd) = &req.cwd {
            cmd.arg("--cwd").arg(cwd);
        }
        if let Some(user) = &req.user {
            cmd.arg("--user").arg(user);
        }
        cmd.arg(id).args(&req.args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn {
            program: self.program(),
            source,
        })?;
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
                    // runc cannot forward SIGKILL: kill the exec'd process itself, then runc.
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
        if exit_code == 255 && is_not_found(&error_message(&stderr)) && stdout.is_empty() {
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

    #[test]
    fn json_error_lines_give_the_message() {
        let s = "{\"level\":\"warning\",\"msg\":\"deprecated\"}\n{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"x\"}\n";
        assert_eq!(error_message(s), "container does not exist");
        assert_eq!(error_message("  plain text\n"), "plain text");
    }

    #[test]
    fn create_argv_runs_detached_or_creates() {
        let r = Runc::new("runc", "/run/ib/runc");
        let argv = r.create_argv(
            "c1",
            Path::new("/b"),
            Path::new("/p"),
            Path::new("/l"),
            true,
        );
        assert_eq!(
            argv,
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
        let argv = r.create_argv(
            "c1",
            Path::new("/b"),
            Path::new("/p"),
            Path::new("/l"),
            false,
        );
        assert_eq!(argv[7], "create");
    }

    #[test]
    fn unknown_container_state_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let r = Runc::new("runc", dir.path());
        assert!(matches!(r.state("nope"), Ok(None)));
        r.delete("nope", true).unwrap();
        assert!(r.list().unwrap().is_empty());
    }
}
