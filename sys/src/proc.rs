//! Processes: liveness and start times through `/proc/<pid>/stat` (a zombie is dead), the
//! one parser of that file ([`parse_stat`]), command lines, signals, reaping our own
//! children, and waiting for a process to exit (a pidfd).
//!
//! On machines whose init reaps orphans slowly, a killed daemon stays a zombie for seconds,
//! so `kill -0` would call it alive; [`Processes::alive`] reads the state letter instead.

use crate::error::{SysError, SysResult};
use nix::sys::signal::{kill, Signal as NixSignal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

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

/// What [`Processes::exited`] returns: resolves once the process has exited.
pub type ExitWait = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The fields of `/proc/<pid>/stat` that imagebus reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `Z`, ...; field 3).
    pub state: char,
    /// Start time in clock ticks since boot (field 22); with the pid it identifies a
    /// process across pid reuse.
    pub start_time: u64,
    /// CPU time used, user plus system, in clock ticks (fields 14 and 15).
    pub cpu_ticks: u64,
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields after comm start at field 3 (state): utime and stime are 14 and 15,
    // starttime is 22.
    let utime: u64 = fields.nth(10)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let start_time = fields.nth(6)?.parse().ok()?;
    Some(ProcStat {
        state,
        start_time,
        // Saturating: a corrupt or hostile text must not overflow (the kernel's own
        // counters never come near).
        cpu_ticks: utime.saturating_add(stime),
    })
}

fn read_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
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
    /// The start time of `pid` ([`ProcStat::start_time`]), `None` if it is gone. A zombie
    /// still has one.
    fn start_time(&self, pid: u32) -> Option<u64>;
    /// Resolves once the process `pid` that started at `start_time` has exited; at once if
    /// it is already gone or its pid now belongs to another process. Must be polled inside
    /// a tokio runtime.
    fn exited(&self, pid: u32, start_time: u64) -> ExitWait;
    /// The network counters of the namespace `pid` is in (`/proc/<pid>/net/dev`, without
    /// `lo`); `None` if it is gone.
    fn net_dev(&self, pid: u32) -> Option<crate::cgroup_stats::NetCounters>;
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

/// Whether `pid` still is the process that started at `start_time`.
fn same_process(pid: u32, start_time: u64) -> bool {
    read_stat(pid).map(|s| s.start_time) == Some(start_time)
}

/// Waits for `pid` through a pidfd (falls back to polling `/proc` when the pidfd cannot
/// be registered with the reactor).
async fn wait_exit(pid: u32, start_time: u64) {
    let open = crate::blocking(move || {
        crate::signal::Pidfd::open(pid)
            .ok()
            .filter(|_| same_process(pid, start_time))
    });
    // Checked after opening, so a pid reused before the open is caught.
    let Some(fd) = open.await.ok().flatten() else {
        return;
    };
    // The deprecation is about registering a borrowed fd that may be closed while
    // registered; the pidfd is owned by the AsyncFd here, so it cannot be.
    #[allow(deprecated)]
    let registered = tokio::io::unix::AsyncFd::new(fd);
    match registered {
        Ok(afd) => {
            let _ = afd.readable().await;
        }
        Err(err) => {
            tracing::warn!(pid, error = %err, "cannot poll a pidfd; polling /proc");
            while crate::blocking(move || same_process(pid, start_time))
                .await
                .unwrap_or(false)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

impl Processes for LinuxProcesses {
    fn net_dev(&self, pid: u32) -> Option<crate::cgroup_stats::NetCounters> {
        crate::cgroup_stats::read_net_dev(pid)
    }

    fn alive(&self, pid: u32) -> bool {
        read_stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
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

    fn start_time(&self, pid: u32) -> Option<u64> {
        read_stat(pid).map(|s| s.start_time)
    }

    fn exited(&self, pid: u32, start_time: u64) -> ExitWait {
        Box::pin(wait_exit(pid, start_time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let tail = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 19";
        assert_eq!(
            parse_stat(&format!("12 (a) b) S {tail}")),
            Some(ProcStat {
                state: 'S',
                start_time: 4242,
                cpu_ticks: 11 + 12,
            })
        );
        assert_eq!(
            parse_stat(&format!("12 (x) Z {tail}")).map(|s| s.state),
            Some('Z')
        );
        assert_eq!(parse_stat("12 (x) Z 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    /// Found by the `proc_parsers` fuzz target: huge utime and stime overflowed their sum.
    #[test]
    fn huge_cpu_times_saturate() {
        let max = u64::MAX;
        let stat = format!("1 (x) S 1 2 3 4 5 6 7 8 9 10 {max} {max} 13 14 15 16 17 18 4242 19");
        assert_eq!(parse_stat(&stat).map(|s| s.cpu_ticks), Some(u64::MAX));
    }

    #[test]
    fn start_time_identifies_this_process() {
        let me = std::process::id();
        let t = LinuxProcesses.start_time(me).unwrap();
        assert_eq!(LinuxProcesses.start_time(me), Some(t));
        assert_eq!(LinuxProcesses.start_time(u32::MAX), None);
    }

    #[tokio::test]
    async fn exited_resolves_for_a_gone_or_reused_pid_and_for_an_exiting_child() {
        let me = std::process::id();
        let t = LinuxProcesses.start_time(me).unwrap();
        LinuxProcesses.exited(u32::MAX, 1).await;
        LinuxProcesses.exited(me, t + 1).await;
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let pid = child.id();
        let st = LinuxProcesses.start_time(pid).unwrap();
        tokio::time::timeout(Duration::from_secs(10), LinuxProcesses.exited(pid, st))
            .await
            .expect("the exit of a child is seen");
        child.wait().unwrap();
    }

    #[test]
    fn self_is_alive_and_has_a_cmdline() {
        let me = std::process::id();
        assert!(LinuxProcesses.alive(me));
        assert!(LinuxProcesses.cmdline(me).is_some());
        assert_eq!(LinuxProcesses.reap(me), Reaped::NotChild);
    }
}
