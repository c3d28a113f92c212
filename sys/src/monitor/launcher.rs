//! [`LinuxMonitorLauncher`]: starts monitors through one monitor zygote (see the module
//! docs) and hands each launch the report of its own monitor.

use super::{MonitorConfig, MonitorLauncher, MonitorReport, ZYGOTE_ARG};
use crate::runtime::RuntimeError;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Launches monitors: `program args... -` is started once as the zygote, and each launch
/// writes its config line to it and waits for the report naming its container. A zygote
/// that is gone (its pipe broken) is replaced by the next launch; launches that wrote to it
/// just before it died wait until their timeout.
#[derive(Debug, Clone)]
pub struct LinuxMonitorLauncher {
    program: PathBuf,
    args: Vec<String>,
    zygote: Arc<Mutex<Option<Arc<Zygote>>>>,
}

/// Reports waited for, by container id.
type Waiters = Arc<Mutex<HashMap<String, SyncSender<MonitorReport>>>>;

/// A running zygote: its config pipe and the launches waiting for their reports.
#[derive(Debug)]
struct Zygote {
    stdin: Mutex<ChildStdin>,
    waiters: Waiters,
}

impl Zygote {
    /// Writes one config line; false when the zygote is gone.
    fn send(&self, line: &[u8]) -> bool {
        self.stdin
            .lock()
            .is_ok_and(|mut w| w.write_all(line).and_then(|()| w.flush()).is_ok())
    }
}

/// Hands each report line to the launch waiting for its id, until every writer of the
/// pipe (the zygote and the monitors that have not reported yet) is gone.
fn route_reports(out: ChildStdout, waiters: &Waiters) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let report: MonitorReport = match serde_json::from_str(line.trim()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, line = %line, "unreadable monitor report");
                continue;
            }
        };
        let waiter = report
            .id
            .as_ref()
            .and_then(|id| waiters.lock().ok()?.remove(id));
        match waiter {
            Some(tx) => {
                let _ = tx.send(report);
            }
            None => tracing::warn!(
                id = ?report.id,
                error = ?report.error,
                "a monitor report nobody waits for (a launch that timed out, or a bad config line)"
            ),
        }
    }
    // End of file: nobody can report any more; the waiting launches fail at once.
    if let Ok(mut w) = waiters.lock() {
        w.clear();
    }
}

impl LinuxMonitorLauncher {
    /// `program` followed by `args` and [`ZYGOTE_ARG`].
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            program: program.into(),
            args,
            zygote: Arc::default(),
        }
    }

    /// Starts a zygote and the thread that routes its reports.
    fn start(&self) -> Result<Arc<Zygote>, RuntimeError> {
        let program = self.program.display().to_string();
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(ZYGOTE_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                program: program.clone(),
                source,
            })?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        // The first process exits right after forking; reap it.
        let _ = child.wait();
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            return Err(RuntimeError::Invalid("monitor pipes missing".into()));
        };
        let zygote = Arc::new(Zygote {
            stdin: Mutex::new(stdin),
            waiters: Waiters::default(),
        });
        let waiters = zygote.waiters.clone();
        std::thread::Builder::new()
            .name("monitor-reports".into())
            .spawn(move || route_reports(stdout, &waiters))
            .map_err(|source| RuntimeError::Spawn { program, source })?;
        Ok(zygote)
    }

    /// The running zygote, started if there is none (or `stale` is the one there is).
    fn zygote(&self, stale: Option<&Arc<Zygote>>) -> Result<Arc<Zygote>, RuntimeError> {
        let mut slot = self
            .zygote
            .lock()
            .map_err(|_| RuntimeError::Invalid("monitor launcher lock poisoned".into()))?;
        match slot.as_ref() {
            Some(z) if stale.is_none_or(|s| !Arc::ptr_eq(s, z)) => Ok(z.clone()),
            _ => {
                let z = self.start()?;
                *slot = Some(z.clone());
                Ok(z)
            }
        }
    }
}

impl MonitorLauncher for LinuxMonitorLauncher {
    fn launch(
        &self,
        config: &MonitorConfig,
        timeout: Duration,
    ) -> Result<MonitorReport, RuntimeError> {
        let mut line =
            serde_json::to_vec(config).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        line.push(b'\n');
        let (tx, rx) = sync_channel(1);
        let mut zygote = self.zygote(None)?;
        let mut attempts = 0;
        loop {
            {
                let mut w = zygote
                    .waiters
                    .lock()
                    .map_err(|_| RuntimeError::Invalid("monitor waiters lock poisoned".into()))?;
                if w.contains_key(&config.id) {
                    return Err(RuntimeError::Invalid(format!(
                        "a monitor for {} is already being launched",
                        config.id
                    )));
                }
                w.insert(config.id.clone(), tx.clone());
            }
            if zygote.send(&line) {
                break;
            }
            // The zygote is gone: forget this launch there and start a new one, once.
            if let Ok(mut w) = zygote.waiters.lock() {
                w.remove(&config.id);
            }
            attempts += 1;
            if attempts > 1 {
                return Err(RuntimeError::io(
                    "writing the monitor config",
                    &config.monitor_log,
                    std::io::Error::from(std::io::ErrorKind::BrokenPipe),
                ));
            }
            zygote = self.zygote(Some(&zygote))?;
        }
        drop(tx);
        match rx.recv_timeout(timeout) {
            Ok(report) => Ok(report),
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(mut w) = zygote.waiters.lock() {
                    w.remove(&config.id);
                }
                Err(RuntimeError::Timeout {
                    id: config.monitor_log.display().to_string(),
                    timeout,
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(RuntimeError::Invalid(format!(
                "the monitor exited without a report (see {:?})",
                config.monitor_log
            ))),
        }
    }

    fn prepare(&self) {
        if let Err(e) = self.zygote(None) {
            tracing::warn!(error = %e, "starting the monitor zygote");
        }
    }
}
