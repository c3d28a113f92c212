//! Starting a run: the monitor (and through it `runc create` or `runc run`) for a new
//! container or a re-run of an exited one, and cleaning up after a failed create.

use super::{blocking, Engine, Files};
use crate::error::ContainerError;
use crate::store::{Record, Watched};
use imagebus_schema::container::ContainerState;
use imagebus_schema::Holder;
use imagebus_sys::monitor::{now_ms, MonitorConfig, MonitorReport};
use imagebus_sys::runtime::RuntimeError;
use imagebus_sys::session::sock::{accept_from, listen_private, recv_fd};
use imagebus_sys::state;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// How long a monitor may take to create (and start) a container.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A started run, to apply to the record with [`Launched::apply`].
#[derive(Debug, Clone, Copy)]
pub struct Launched {
    /// The monitor.
    pub watched: Watched,
    /// The init, if the runtime created it.
    pub init_pid: Option<u32>,
    /// Whether the init was started (`runc run`) rather than only created.
    pub started: bool,
}

impl Launched {
    /// The record of the new run: generation + 1, state created or running.
    pub fn apply(&self, record: &mut Record) {
        record.generation += 1;
        record.watched = Some(self.watched);
        record.restart_due_ms = None;
        record.health_kill = false;
        record.info.health = record
            .info
            .spec
            .health
            .as_ref()
            .map(|_| imagebus_schema::container::Health::starting());
        record.info.pid = self.init_pid;
        record.info.exit_code = None;
        record.info.exit_signal = None;
        record.info.reason = None;
        record.info.finished_at_ms = None;
        if self.started {
            record.info.state = ContainerState::Running;
            record.info.started_at_ms = Some(now_ms());
        } else {
            record.info.state = ContainerState::Created;
        }
    }
}

/// Runs the monitor for a new run of `record` (with `start`: `runc run`, else `runc
/// create`), bounded by [`LAUNCH_TIMEOUT`]. Changes nothing in the state.
pub async fn launch(e: &Engine, record: &Record, start: bool) -> Result<Launched, ContainerError> {
    let id = record.info.id;
    let files = e.files(id);
    let rid = record.info.runtime_id.clone();
    let (runtime, cgroups, monitors, procs) = (
        e.sys.runtime.clone(),
        e.sys.cgroups.clone(),
        e.sys.monitors.clone(),
        e.sys.procs.clone(),
    );
    let cgroup = e.cfg.cgroup_path(id);
    let mut argv = runtime.create_argv(&rid, &files.bundle, &files.pid, &files.runtime_log, start);
    // A terminal: the runtime sends its master to a socket of ours in the run directory.
    let console = record.info.spec.tty.then(|| files.run.join("console.sock"));
    if let Some(socket) = &console {
        argv = imagebus_sys::runtime::console_argv(&argv, socket);
    }
    let mcfg = MonitorConfig {
        id: rid.clone(),
        argv,
        log_file: files.log.clone(),
        pid_file: files.pid.clone(),
        runtime_log: files.runtime_log.clone(),
        exit_file: files.exit.clone(),
        monitor_log: files.monitor_log.clone(),
        stdout_spool: files.stdout_spool.clone(),
        stderr_spool: files.stderr_spool.clone(),
        log_max_bytes: match record.info.spec.log.and_then(|l| l.max_bytes) {
            Some(0) => None,
            Some(b) => Some(b),
            None => e.cfg.log_max_bytes,
        },
        log_max_files: record
            .info
            .spec
            .log
            .and_then(|l| l.max_files)
            .unwrap_or(e.cfg.log_max_files),
    };
    let run_dir = files.run.clone();
    let rerun = record.generation > 0;
    let (report, start_time, master) = blocking(move || -> Result<_, ContainerError> {
        // Leftovers of a previous run. A new container's runtime id was never used:
        // ids are never reused, and start-up removes runtime containers without a record.
        if rerun {
            runtime
                .delete(&rid, true)
                .map_err(|err| ContainerError::runtime(format!("cleaning {rid}"), err))?;
            let _ = cgroups.remove(&cgroup);
            for f in [&mcfg.exit_file, &mcfg.pid_file, &mcfg.runtime_log] {
                let _ = state::remove_file(f);
            }
        }
        state::ensure_private_dir(&run_dir).map_err(|err| {
            ContainerError::state(format!("creating {run_dir:?}"), std::io::Error::other(err))
        })?;
        let listener =
            match &console {
                Some(path) => Some(listen_private(path, 0).map_err(|err| {
                    ContainerError::state(format!("console socket {path:?}"), err)
                })?),
                None => None,
            };
        // The config goes over the monitor's stdin: no file to write, sync or remove.
        let report: MonitorReport = monitors.launch(&mcfg, LAUNCH_TIMEOUT).map_err(|err| {
            ContainerError::runtime(format!("starting the monitor of {rid}"), err)
        })?;
        let start_time = procs.start_time(report.monitor_pid).unwrap_or(0);
        // The runtime has sent the master before it exited (or failed: no connection).
        let master = match (&listener, &report.error) {
            (Some(l), None) => Some(receive_master(l).map_err(|err| {
                ContainerError::state(format!("receiving the terminal of {rid}"), err)
            })?),
            _ => None,
        };
        if let Some(path) = &console {
            let _ = state::remove_file(path);
        }
        Ok((report, start_time, master))
    })
    .await??;
    if let Some(err) = report.error {
        let (program, action) = (e.sys.runtime.name(), if start { "run" } else { "create" });
        return Err(ContainerError::runtime(
            format!("{program} failed to {action} container {id}"),
            RuntimeError::Failed {
                program: program.to_string(),
                action,
                id: record.info.runtime_id.clone(),
                message: err,
            },
        ));
    }
    if let Some(m) = master {
        if let Ok(mut t) = e.terminals.lock() {
            t.insert(id, m);
        }
    }
    Ok(Launched {
        watched: Watched {
            pid: report.monitor_pid,
            start_time,
            monitor: true,
        },
        init_pid: report.init_pid,
        started: start,
    })
}

/// How long the runtime's console connection may take to show up once it has exited.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The master the runtime sent to the console socket `l` (the peer must be root).
fn receive_master(l: &std::os::unix::net::UnixListener) -> std::io::Result<OwnedFd> {
    let deadline = std::time::Instant::now() + CONSOLE_TIMEOUT;
    let conn = accept_from(l, 0, deadline, &mut |uid| {
        tracing::warn!(uid, "a console connection from a non-root peer was refused");
    })?;
    recv_fd(&conn)
}

/// Removes everything of container `id` (runtime state, cgroups, files) and releases its
/// mount reference if `mount` is given. Errors are logged: this is the cleanup path.
pub async fn undo(e: &Engine, id: u64, mount: Option<u64>) {
    remove_traces(e, id).await;
    if let Some(m) = mount {
        if let Err(err) = e.mounts.release(m, Holder::Container(id)).await {
            tracing::warn!(id, mount = m, error = %err, "releasing the mount during cleanup");
        }
    }
}

/// Runtime state, cgroups, the state and run directories and the log of container `id`.
pub async fn remove_traces(e: &Engine, id: u64) {
    if let Ok(mut t) = e.terminals.lock() {
        t.remove(&id);
    }
    let rid = e.cfg.runtime_id(id);
    let (runtime, cgroups) = (e.sys.runtime.clone(), e.sys.cgroups.clone());
    let cgroup = e.cfg.cgroup_path(id);
    let Files { dir, run, .. } = e.files(id);
    let logs = e.cfg.log_files(id);
    let _ = blocking(move || {
        if let Err(err) = runtime.delete(&rid, true) {
            tracing::warn!(id, error = %err, "runtime delete during cleanup");
        }
        if let Err(err) = cgroups.remove(&cgroup) {
            tracing::warn!(id, error = %err, "cgroup cleanup");
        }
        let _ = state::remove_tree(&dir);
        let _ = state::remove_tree(&run);
        for f in &logs {
            let _ = state::remove_file(f);
        }
    })
    .await;
}
