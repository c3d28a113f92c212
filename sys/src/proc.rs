//! Processes: liveness through `/proc/<pid>/stat` (a zombie is dead), command lines,
//! signals, and reaping our own children.
//!
//! On machines whose init reaps orphans slowly, a killed daemon stays a zombie for seconds,
//! so `kill -0` would call it alive; [`Processes::alive`] reads the state letter instead.

use crate::error::{SysError, SysResult};
use nix::sys::signal::{kill, Signal as NixSignal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs;
use std::path::Path;

/// A signal we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM.
    Term,
    /// SIGKILL.
    Kill,
}

/// The result of reaping a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// It is our child and still running.
    Running,
    /// It was our child and has exited (now reaped); `code` is `None` for a signal death.
    Exited {
        /// Exit code.
        code: Option<i32>,
        /// Terminating signal number.
        signal: Option<i32>,
    },
    /// Not our child (never was, or already reaped, or we restarted since).
    NotChild,
}

/// Process inspection and control.
pub trait Processes: Send + Sync + 'static {
    /// Whether `pid` exists and is not a zombie.
    fn alive(&self, pid: u32) -> bool;
    /// The command line of `pid` (`None` if it is gone).
    fn cmdline(&self, pid: u32) -> Option<Vec<String>>;
    /// Sends a signal; a vanished process is not an error.
    fn signal(&self, pid: u32, sig: Signal) -> SysResult<()>;
    /// Reaps `pid` if it is our exited child (non-blocking).
    fn reap(&self, pid: u32) -> Reaped;
    /// Every live process whose `argv[0]` file name is `program`, with its command line.
    fn find(&self, program: &str) -> Vec<(u32, Vec<String>)>;
}

/// [`Processes`] for the real machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxProcesses;

fn nix_pid(pid: u32) -> SysResult<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
        .ok_or_else(|| SysError::Invalid(format!("pid {pid}")))
}

/// The state letter from `/proc/<pid>/stat` (the field after the parenthesised comm).
fn state_letter(stat: &str) -> Option<char> {
    let close = stat.rfind(')')?;
    stat[close + 1..].trim_start().chars().next()
}

impl Processes for LinuxProcesses {
    fn alive(&self, pid: u32) -> bool {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !matches!(state_letter(&stat), Some('Z' | 'X') | None),
            Err(_) => false,
        }
    }

    fn cmdline(&self, pid: u32) -> Option<Vec<String>> {
        let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        if raw.is_empty() {
            return None;
        }
        Some(
            raw.split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        )
    }

    fn signal(&self, pid: u32, sig: Signal) -> SysResult<()> {
        let sig = match sig {
            Signal::Term => NixSignal::SIGTERM,
            Signal::Kill => NixSignal::SIGKILL,
        };
        match kill(nix_pid(pid)?, sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(SysError::Os {
                op: "kill",
                source: e.into(),
            }),
        }
    }

    fn reap(&self, pid: u32) -> Reaped {
        let Ok(p) = nix_pid(pid) else {
            return Reaped::NotChild;
        };
        match waitpid(p, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => Reaped::Running,
            Ok(WaitStatus::Exited(_, code)) => Reaped::Exited {
                code: Some(code),
                signal: None,
            },
            Ok(WaitStatus::Signaled(_, sig, _)) => Reaped::Exited {
                code: None,
                signal: Some(sig as i32),
            },
            Ok(_) => Reaped::Running,
            Err(_) => Reaped::NotChild,
        }
    }

    fn find(&self, program: &str) -> Vec<(u32, Vec<String>)> {
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let cmd = self.cmdline(pid)?;
                let name = Path::new(cmd.first()?).file_name()?.to_str()?.to_string();
                (name == program && self.alive(pid)).then_some((pid, cmd))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_letter_with_odd_comm() {
        assert_eq!(state_letter("12 (a) b) S 1 2"), Some('S'));
        assert_eq!(state_letter("12 (x) Z 1"), Some('Z'));
        assert_eq!(state_letter("garbage"), None);
    }

    #[test]
    fn self_is_alive_and_has_a_cmdline() {
        let me = std::process::id();
        assert!(LinuxProcesses.alive(me));
        assert!(LinuxProcesses.cmdline(me).is_some());
        assert_eq!(LinuxProcesses.reap(me), Reaped::NotChild);
    }
}
