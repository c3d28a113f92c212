//! The container actor's state and operations: [`Containers`] is owned by the actor task
//! (see `actor.rs`), which runs one command at a time. Blocking work (runc, files, cgroups)
//! goes to `spawn_blocking`; waiting for exits happens in watcher tasks that message back.

use crate::config::{ContainerConfig, ContainerSys};
use crate::error::ContainerError;
use crate::record::{save_record, Record, Watched, RECORD_VERSION};
use crate::watch::{spawn_escalation, spawn_watcher, Internal};
use imagebus_schema::container::{ContainerEvent, ContainerFilter, ContainerInfo, ContainerState};
use imagebus_schema::mount::MountModule;
use imagebus_schema::{Holder, Selector};
use imagebus_sys::monitor::{now_ms, process_start_time, MonitorConfig};
use imagebus_sys::oci;
use imagebus_sys::state::StateFile;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

mod create;
mod exits;

/// Ids reserved per write of `next_id.json`.
const ID_BLOCK: u64 = 64;

/// How long a monitor may take to create (and start) a container.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A pending `Stop` caller.
pub type StopWaiter = oneshot::Sender<Result<ContainerInfo, ContainerError>>;

/// Runs blocking work off the runtime threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ContainerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ContainerError::state("blocking task", std::io::Error::other(e.to_string())))
}

/// Paths of one container's files.
struct Files {
    dir: PathBuf,
    bundle: PathBuf,
    monitor_config: PathBuf,
    pid: PathBuf,
    exit: PathBuf,
    runtime_log: PathBuf,
    monitor_log: PathBuf,
    log: PathBuf,
}

/// The actor's state.
pub struct Containers {
    cfg: ContainerConfig,
    sys: ContainerSys,
    mounts: Arc<dyn MountModule>,
    records: BTreeMap<u64, Record>,
    counter: StateFile<u64>,
    next_id: u64,
    /// Ids below this are reserved on disk.
    reserved: u64,
    bounding: u64,
    events: broadcast::Sender<ContainerEvent>,
    internal: mpsc::UnboundedSender<Internal>,
    waiters: HashMap<u64, Vec<StopWaiter>>,
}

impl Containers {
    /// Loads records (no reconciliation yet).
    pub async fn load(
        cfg: ContainerConfig,
        sys: ContainerSys,
        mounts: Arc<dyn MountModule>,
        events: broadcast::Sender<ContainerEvent>,
        internal: mpsc::UnboundedSender<Internal>,
    ) -> Result<Self, ContainerError> {
        cfg.validate()?;
        let dirs = [
            cfg.state_dir.clone(),
            cfg.run_dir.clone(),
            cfg.log_dir.clone(),
            cfg.runtime_root(),
        ];
        let state_dir = cfg.state_dir.clone();
        let (records, counter, next) = blocking(move || -> Result<_, ContainerError> {
            for d in &dirs {
                std::fs::create_dir_all(d)
                    .map_err(|e| ContainerError::state(format!("creating {d:?}"), e))?;
            }
            let mut records = BTreeMap::new();
            let entries = std::fs::read_dir(&state_dir)
                .map_err(|e| ContainerError::state(format!("reading {state_dir:?}"), e))?;
            for entry in entries.flatten() {
                let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                let file: StateFile<Record> =
                    StateFile::new(entry.path().join("record.json"), RECORD_VERSION);
                match file.load() {
                    Ok(Some(r)) if r.info.id == id => {
                        records.insert(id, r);
                    }
                    Ok(_) => tracing::warn!(id, "container directory without a record; ignored"),
                    Err(e) => {
                        tracing::warn!(id, error = %e, "unreadable container record; ignored")
                    }
                }
            }
            let counter: StateFile<u64> = StateFile::new(state_dir.join("next_id.json"), 1);
            let next = counter
                .load()
                .map_err(|e| ContainerError::Store {
                    what: "reading next_id.json".into(),
                    source: e,
                })?
                .unwrap_or(1);
            Ok((records, counter, next))
        })
        .await??;
        let next_id = next.max(records.keys().next_back().map_or(1, |k| k + 1));
        let bounding =
            oci::bounding_set().map_err(|e| ContainerError::runtime("reading CapBnd", e))?;
        Ok(Self {
            cfg,
            sys,
            mounts,
            records,
            counter,
            next_id,
            reserved: next_id,
            bounding,
            events,
            internal,
            waiters: HashMap::new(),
        })
    }

    fn files(&self, id: u64) -> Files {
        let dir = self.cfg.container_dir(id);
        Files {
            bundle: dir.join("bundle"),
            monitor_config: dir.join("monitor.json"),
            pid: dir.join("init.pid"),
            exit: dir.join("exit.json"),
            runtime_log: dir.join("runtime.log"),
            monitor_log: dir.join("monitor.log"),
            log: self.cfg.log_file(id),
            dir,
        }
    }

    fn emit(&self, info: &ContainerInfo, deleted: bool) {
        let _ = self.events.send(ContainerEvent {
            id: info.id,
            name: info.name.clone(),
            group: info.group.clone(),
            state: info.state,
            exit_code: info.exit_code,
            reason: info.reason.clone(),
            deleted,
            at_ms: now_ms(),
        });
    }

    async fn save(&self, id: u64) -> Result<(), ContainerError> {
        let Some(rec) = self.records.get(&id).cloned() else {
            return Ok(());
        };
        let path = self.files(id).dir.join("record.json");
        blocking(move || save_record(&path, &rec))
            .await?
            .map_err(|e| ContainerError::state(format!("saving container {id}"), e))
    }

    /// Resolves a selector to an id.
    pub fn find(&self, target: &Selector) -> Result<u64, ContainerError> {
        let found = match target {
            Selector::Id(id) => self.records.contains_key(id).then_some(*id),
            Selector::Name(n) => self
                .records
                .values()
                .find(|r| r.info.name.as_deref() == Some(n))
                .map(|r| r.info.id),
        };
        found.ok_or_else(|| ContainerError::NotFound(target.clone()))
    }

    /// One container.
    pub fn get(&self, target: &Selector) -> Result<ContainerInfo, ContainerError> {
        let id = self.find(target)?;
        Ok(self.records[&id].info.clone())
    }

    /// Containers matching `filter`.
    pub fn list(&self, filter: &ContainerFilter) -> Vec<ContainerInfo> {
        self.records
            .values()
            .filter(|r| filter.states.is_empty() || filter.states.contains(&r.info.state))
            .filter(|r| filter.group.is_none() || r.info.group == filter.group)
            .map(|r| r.info.clone())
            .collect()
    }

    /// A fresh id. Ids are reserved on disk in blocks of [`ID_BLOCK`], so most creates
    /// skip a synchronous write; after a crash the rest of a block is simply never used.
    async fn alloc_id(&mut self) -> Result<u64, ContainerError> {
        let id = self.next_id;
        self.next_id += 1;
        if id >= self.reserved {
            let reserved = id + ID_BLOCK;
            let counter = StateFile::<u64>::new(self.counter.path().to_path_buf(), 1);
            blocking(move || counter.save(&reserved))
                .await?
                .map_err(|e| ContainerError::Store {
                    what: "saving next_id.json".into(),
                    source: e,
                })?;
            self.reserved = reserved;
        }
        Ok(id)
    }

    /// Runs the monitor for a new run of `record` (create, or run with `start`).
    async fn launch(&self, record: &mut Record, start: bool) -> Result<(), ContainerError> {
        let id = record.info.id;
        let files = self.files(id);
        let rid = record.info.runtime_id.clone();
        let runtime = self.sys.runtime.clone();
        let cgroups = self.sys.cgroups.clone();
        let monitors = self.sys.monitors.clone();
        let cgroup = self.cfg.cgroup_path(id);
        let argv = runtime.create_argv(&rid, &files.bundle, &files.pid, &files.runtime_log, start);
        let mcfg = MonitorConfig {
            id: rid.clone(),
            argv,
            log_file: files.log.clone(),
            pid_file: files.pid.clone(),
            runtime_log: files.runtime_log.clone(),
            exit_file: files.exit.clone(),
            monitor_log: files.monitor_log.clone(),
        };
        let mpath = files.monitor_config.clone();
        let rerun = record.generation > 0;
        let report = blocking(move || -> Result<_, ContainerError> {
            // Leftovers of a previous run. A new container's runtime id was never used:
            // ids are never reused, and start-up removes runtime containers without a record.
            if rerun {
                runtime
                    .delete(&rid, true)
                    .map_err(|e| ContainerError::runtime(format!("cleaning {rid}"), e))?;
                let _ = cgroups.remove(&cgroup);
                for f in [&mcfg.exit_file, &mcfg.pid_file, &mcfg.runtime_log] {
                    let _ = std::fs::remove_file(f);
                }
            }
            let text = serde_json::to_vec_pretty(&mcfg).map_err(|e| {
                ContainerError::state("encoding the monitor config", std::io::Error::other(e))
            })?;
            std::fs::write(&mpath, text)
                .map_err(|e| ContainerError::state(format!("writing {mpath:?}"), e))?;
            monitors
                .launch(&mpath, LAUNCH_TIMEOUT)
                .map_err(|e| ContainerError::runtime(format!("starting the monitor of {rid}"), e))
        })
        .await??;
        if let Some(err) = report.error {
            return Err(ContainerError::runtime(
                format!(
                    "{} failed to {} container {id}",
                    self.sys.runtime.name(),
                    if start { "run" } else { "create" }
                ),
                imagebus_sys::runtime::RuntimeError::Failed {
                    program: self.sys.runtime.name().to_string(),
                    action: if start { "run" } else { "create" },
                    id: record.info.runtime_id.clone(),
                    message: err,
                },
            ));
        }
        let start_time = process_start_time(report.monitor_pid).unwrap_or(0);
        let watched = Watched {
            pid: report.monitor_pid,
            start_time,
            monitor: true,
        };
        record.generation += 1;
        record.watched = Some(watched);
        record.info.pid = report.init_pid;
        record.info.exit_code = None;
        record.info.exit_signal = None;
        record.info.reason = None;
        record.info.finished_at_ms = None;
        if start {
            record.info.state = ContainerState::Running;
            record.info.started_at_ms = Some(now_ms());
        } else {
            record.info.state = ContainerState::Created;
        }
        spawn_watcher(watched, id, record.generation, self.internal.clone());
        Ok(())
    }

    /// Removes everything of container `id` (runtime state, cgroups, mount reference, files).
    async fn undo(&mut self, id: u64, mount: Option<u64>) {
        let rid = self.cfg.runtime_id(id);
        let runtime = self.sys.runtime.clone();
        let cgroups = self.sys.cgroups.clone();
        let cgroup = self.cfg.cgroup_path(id);
        let files = self.files(id);
        let (dir, log) = (files.dir, files.log);
        let _ = blocking(move || {
            if let Err(e) = runtime.delete(&rid, true) {
                tracing::warn!(id, error = %e, "runtime delete during cleanup");
            }
            if let Err(e) = cgroups.remove(&cgroup) {
                tracing::warn!(id, error = %e, "cgroup cleanup");
            }
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&log);
        })
        .await;
        if let Some(m) = mount {
            if let Err(e) = self.mounts.release(m, Holder::Container(id)).await {
                tracing::warn!(id, mount = m, error = %e, "releasing the mount during cleanup");
            }
        }
    }

    /// Starts a created container, or re-runs an exited or dead one.
    pub async fn start(&mut self, target: &Selector) -> Result<ContainerInfo, ContainerError> {
        let id = self.find(target)?;
        let mut rec = self.records[&id].clone();
        match rec.info.state {
            ContainerState::Running => return Ok(rec.info),
            ContainerState::Stopping => {
                return Err(ContainerError::WrongState {
                    id,
                    state: rec.info.state,
                    what: "cannot start while stopping",
                })
            }
            ContainerState::Created => {
                let runtime = self.sys.runtime.clone();
                let rid = rec.info.runtime_id.clone();
                blocking(move || runtime.start(&rid))
                    .await?
                    .map_err(|e| ContainerError::runtime(format!("starting container {id}"), e))?;
                rec.info.state = ContainerState::Running;
                rec.info.started_at_ms = Some(now_ms());
            }
            ContainerState::Exited | ContainerState::Dead => self.launch(&mut rec, true).await?,
        }
        self.records.insert(id, rec);
        self.save(id).await?;
        let info = self.records[&id].info.clone();
        self.emit(&info, false);
        Ok(info)
    }

    /// Begins stopping; the waiter is answered when the init has exited.
    pub async fn stop(&mut self, target: &Selector, timeout_ms: Option<u64>, waiter: StopWaiter) {
        let id = match self.find(target) {
            Ok(id) => id,
            Err(e) => {
                let _ = waiter.send(Err(e));
                return;
            }
        };
        let rec = self.records[&id].clone();
        let runtime = self.sys.runtime.clone();
        let rid = rec.info.runtime_id.clone();
        match rec.info.state {
            ContainerState::Exited | ContainerState::Dead => {
                let _ = waiter.send(Ok(rec.info));
                return;
            }
            ContainerState::Stopping => {}
            ContainerState::Created => {
                // Never ran: kill the waiting runtime init.
                if let Ok(Err(e)) =
                    blocking(move || runtime.kill(&rid, imagebus_sys::signal::SIGKILL, true)).await
                {
                    tracing::warn!(id, error = %e, "killing a created container");
                }
            }
            ContainerState::Running => {
                let sig = rec.stop_signal;
                let r = blocking(move || runtime.kill(&rid, sig, false)).await;
                if let Ok(Err(e)) = r {
                    tracing::warn!(id, error = %e, "sending the stop signal");
                }
                if let Some(r) = self.records.get_mut(&id) {
                    r.info.state = ContainerState::Stopping;
                }
                let _ = self.save(id).await;
                self.emit(&self.records[&id].info.clone(), false);
                let after = Duration::from_millis(timeout_ms.unwrap_or(rec.stop_timeout_ms));
                spawn_escalation(id, rec.generation, after, self.internal.clone());
            }
        }
        self.waiters.entry(id).or_default().push(waiter);
    }

    /// Deletes an exited or dead container.
    pub async fn delete(&mut self, target: &Selector) -> Result<(), ContainerError> {
        let id = self.find(target)?;
        let info = self.records[&id].info.clone();
        if self.records[&id].is_live() {
            return Err(ContainerError::WrongState {
                id,
                state: info.state,
                what: "stop it first or delete with force",
            });
        }
        self.mounts
            .release(info.mount, Holder::Container(id))
            .await
            .map_err(ContainerError::Mount)?;
        self.undo(id, None).await;
        self.records.remove(&id);
        tracing::info!(id, "container deleted");
        self.emit(&info, true);
        Ok(())
    }

    /// Runtime id and log file of a container, and whether it is running.
    pub fn exec_target(
        &self,
        target: &Selector,
    ) -> Result<(u64, String, ContainerState), ContainerError> {
        let id = self.find(target)?;
        let r = &self.records[&id];
        Ok((id, r.info.runtime_id.clone(), r.info.state))
    }
}
