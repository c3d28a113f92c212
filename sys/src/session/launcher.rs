//! [`LinuxSessionLauncher`]: runs `<monitor> --session` per session and waits, with a
//! deadline, for the line naming its socket.

use super::{SessionConfig, SessionLauncher, SessionReport, MASTER_FD, SESSION_ARG};
use crate::runtime::RuntimeError;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts session helpers: `program args... --session`.
#[derive(Debug, Clone)]
pub struct LinuxSessionLauncher {
    program: PathBuf,
    args: Vec<String>,
}

impl LinuxSessionLauncher {
    /// `program` followed by `args` and [`SESSION_ARG`].
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            program: program.into(),
            args,
        }
    }
}

fn io_err(op: &'static str, e: std::io::Error) -> RuntimeError {
    RuntimeError::io(op, "", e)
}

impl SessionLauncher for LinuxSessionLauncher {
    fn start(
        &self,
        config: &SessionConfig,
        master: Option<OwnedFd>,
        timeout: Duration,
    ) -> Result<PathBuf, RuntimeError> {
        let deadline = Instant::now() + timeout;
        let mut line =
            serde_json::to_vec(config).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        line.push(b'\n');
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .arg(SESSION_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(m) = &master {
            let raw = m.as_raw_fd();
            // SAFETY: dup2 and fcntl are async-signal-safe; `raw` stays open (owned by
            // `master`) until after the spawn.
            unsafe {
                cmd.pre_exec(move || {
                    if raw == MASTER_FD {
                        if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(raw, MASTER_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        drop(master);
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let (Some(mut stdin), Some(mut stdout)) = (stdin, stdout) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RuntimeError::Invalid("session helper pipes missing".into()));
        };
        let wrote = stdin.write_all(&line);
        drop(stdin);
        // The first process forks the helper and exits at once; reap it.
        let _ = child.wait();
        wrote.map_err(|e| io_err("writing the session config", e))?;
        let mut buf = Vec::new();
        while !buf.contains(&b'\n') {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RuntimeError::Timeout {
                    id: "session helper".into(),
                    timeout,
                });
            }
            if !super::sock::wait_readable(&stdout, left)
                .map_err(|e| io_err("waiting for the session helper", e))?
            {
                continue;
            }
            let mut chunk = [0u8; 1024];
            let n = stdout
                .read(&mut chunk)
                .map_err(|e| io_err("reading the session helper's report", e))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        let report: SessionReport =
            serde_json::from_str(text.trim()).map_err(|e| RuntimeError::Parse {
                what: "the session helper's report".into(),
                detail: format!("{e}: {:?}", text.trim()),
            })?;
        match (report.socket, report.error) {
            (Some(s), None) => Ok(s),
            (_, Some(e)) => Err(RuntimeError::Invalid(e)),
            (None, None) => Err(RuntimeError::Invalid(
                "the session helper reported nothing".into(),
            )),
        }
    }
}
