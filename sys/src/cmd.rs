//! External commands: run to completion with a deadline, or spawn a long-lived child.
//!
//! Calls are values ([`CommandCall`]) so fakes can record and compare them. Never put a
//! secret in `args` or `env` values other than those documented by the caller: command lines
//! are visible to every user through `/proc/<pid>/cmdline`.

use crate::error::{SysError, SysResult};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One external command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandCall {
    /// Program name or path.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// For [`Runner::spawn`]: file that receives stdout and stderr (appended).
    pub log: Option<PathBuf>,
}

impl CommandCall {
    /// A call of `program` with `args`.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sends output of a spawned child to `path`.
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }
}

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CommandOutput {
    /// Whether the command exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs external tools.
pub trait Runner: Send + Sync + 'static {
    /// Runs `call` to completion; kills it and fails with [`SysError::Timeout`] after `timeout`.
    /// A non-zero exit is not an error here: inspect [`CommandOutput::code`].
    fn run(&self, call: &CommandCall, timeout: Duration) -> SysResult<CommandOutput>;

    /// Starts `call` in its own session (it survives our death) with output to `call.log`,
    /// and returns its pid. The caller reaps it through [`crate::proc::Processes::reap`].
    fn spawn(&self, call: &CommandCall) -> SysResult<u32>;
}

/// [`Runner`] for the real machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxRunner;

impl Runner for LinuxRunner {
    fn run(&self, call: &CommandCall, timeout: Duration) -> SysResult<CommandOutput> {
        let mut cmd = call.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let spawn_err = |source| SysError::Spawn {
            program: call.program.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // Drain both pipes on threads so a chatty child cannot block on a full pipe.
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SysError::Timeout {
                        program: call.program.clone(),
                        secs: timeout.as_secs(),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(source) => {
                    return Err(SysError::Os {
                        op: "waitpid",
                        source,
                    })
                }
            }
        };
        Ok(CommandOutput {
            code: status.code(),
            stdout: out_t.join().unwrap_or_default(),
            stderr: err_t.join().unwrap_or_default(),
        })
    }

    fn spawn(&self, call: &CommandCall) -> SysResult<u32> {
        let mut cmd = call.command();
        match &call.log {
            Some(path) => {
                let open = || {
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| SysError::io("open log", path, e))
                };
                cmd.stdout(Stdio::from(open()?))
                    .stderr(Stdio::from(open()?));
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        // A new process group, so signals aimed at our group (Ctrl-C) do not reach it.
        cmd.process_group(0);
        let child = cmd.spawn().map_err(|source| SysError::Spawn {
            program: call.program.clone(),
            source,
        })?;
        // Dropping `Child` neither kills nor waits; the pid is reaped with waitpid later.
        Ok(child.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_code() {
        let out = LinuxRunner
            .run(
                &CommandCall::new("sh", ["-c", "echo hi; echo err >&2; exit 3"]),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn run_times_out() {
        let err = LinuxRunner
            .run(
                &CommandCall::new("sleep", ["5"]),
                Duration::from_millis(100),
            )
            .unwrap_err();
        assert!(matches!(err, SysError::Timeout { .. }), "{err}");
    }
}
