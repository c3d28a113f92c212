//! What happens when a run ends (watcher messages, exit files) and start-up
//! reconciliation with the monitors and the runtime.

use super::{blocking, Containers};
use crate::error::ContainerError;
use crate::record::Watched;
use crate::watch::{is_alive, spawn_escalation, spawn_watcher, Internal};
use imagebus_schema::container::ContainerState;
use imagebus_sys::monitor::{now_ms, process_start_time, read_exit_file};
use std::time::Duration;

impl Containers {
    /// Handles a message from a watcher task.
    pub async fn internal(&mut self, msg: Internal) {
        match msg {
            Internal::Escalate { id, generation } => {
                let Some(rec) = self.records.get(&id) else {
                    return;
                };
                if rec.generation != generation || rec.info.state != ContainerState::Stopping {
                    return;
                }
                tracing::info!(id, "stop timeout passed; sending SIGKILL");
                let runtime = self.sys.runtime.clone();
                let rid = rec.info.runtime_id.clone();
                if let Ok(Err(e)) =
                    blocking(move || runtime.kill(&rid, imagebus_sys::signal::SIGKILL, true)).await
                {
                    tracing::warn!(id, error = %e, "SIGKILL after the stop timeout");
                }
            }
            Internal::Ended { id, generation } => self.ended(id, generation).await,
        }
    }

    async fn ended(&mut self, id: u64, generation: u64) {
        let Some(rec) = self.records.get(&id) else {
            return;
        };
        if rec.generation != generation || !rec.is_live() {
            return;
        }
        let files = self.files(id);
        let monitor = rec.watched.map(|w| w.monitor).unwrap_or(false);
        if monitor && self.init_outlived_monitor(id).await {
            return;
        }
        let Some(rec) = self.records.get(&id) else {
            return;
        };
        let runtime = self.sys.runtime.clone();
        let cgroups = self.sys.cgroups.clone();
        let rid = rec.info.runtime_id.clone();
        let cgroup = self.cfg.cgroup_path(id);
        let exit = blocking(move || {
            let exit = read_exit_file(&files.exit);
            if let Err(e) = runtime.delete(&rid, true) {
                tracing::warn!(%rid, error = %e, "runtime delete after exit");
            }
            if let Err(e) = cgroups.remove(&cgroup) {
                tracing::warn!(%rid, error = %e, "cgroup cleanup after exit");
            }
            exit
        })
        .await;
        let Some(rec) = self.records.get_mut(&id) else {
            return;
        };
        rec.watched = None;
        rec.info.pid = None;
        match exit {
            Ok(Ok(Some(x))) if x.exit_code.is_some() || x.signal.is_some() => {
                rec.info.state = ContainerState::Exited;
                rec.info.exit_code = x.shell_code();
                rec.info.exit_signal = x.signal;
                rec.info.finished_at_ms = Some(x.exited_at_ms);
            }
            other => {
                rec.info.state = ContainerState::Dead;
                rec.info.finished_at_ms = Some(now_ms());
                rec.info.reason = Some(match other {
                    Ok(Ok(Some(_))) => {
                        "the init was not the monitor's child; exit status unknown".into()
                    }
                    Ok(Err(e)) => format!("reading the exit status: {e}"),
                    _ if monitor => "the monitor ended without recording an exit status".into(),
                    _ => "the monitor was lost; the init ended with an unknown status".into(),
                });
            }
        }
        let info = rec.info.clone();
        tracing::info!(id, state = info.state.as_str(), exit_code = ?info.exit_code, "container ended");
        if let Err(e) = self.save(id).await {
            tracing::error!(id, error = %e, "saving the container record");
        }
        self.emit(&info, false);
        for w in self.waiters.remove(&id).unwrap_or_default() {
            let _ = w.send(Ok(info.clone()));
        }
    }

    /// A monitor ended without an exit file (it was killed): if the init still runs, watch
    /// it directly from now on (its exit status will be unknown) and return true.
    async fn init_outlived_monitor(&mut self, id: u64) -> bool {
        let Some(rec) = self.records.get(&id) else {
            return false;
        };
        let exit_file = self.files(id).exit;
        let (runtime, rid) = (self.sys.runtime.clone(), rec.info.runtime_id.clone());
        let Some(pid) = rec.info.pid else {
            return false;
        };
        let state = blocking(move || {
            // The monitor writes the exit file before it exits: present means a normal end.
            if exit_file.exists() {
                return None;
            }
            runtime.state(&rid).ok().flatten()
        })
        .await
        .ok()
        .flatten();
        let running = state.is_some_and(|st| st.pid == pid && st.status != "stopped");
        let init = process_start_time(pid).map(|start_time| Watched {
            pid,
            start_time,
            monitor: false,
        });
        let (true, Some(w)) = (running, init) else {
            return false;
        };
        tracing::warn!(id, pid, "monitor lost; watching the init directly");
        let generation = rec.generation;
        if let Some(r) = self.records.get_mut(&id) {
            r.watched = Some(w);
        }
        if let Err(e) = self.save(id).await {
            tracing::error!(id, error = %e, "saving the container record");
        }
        spawn_watcher(w, id, generation, self.internal.clone());
        true
    }

    /// Brings the records in line with the runtime after a restart: containers whose
    /// monitor still runs are watched again; the others become exited (exit file) or dead;
    /// runtime containers of this instance without a record are removed.
    pub async fn reconcile(&mut self) -> Result<(), ContainerError> {
        let runtime = self.sys.runtime.clone();
        let listed = blocking(move || runtime.list())
            .await?
            .map_err(|e| ContainerError::runtime("listing runtime containers", e))?;
        let prefix = format!("{}-", self.cfg.instance);
        let known: Vec<String> = self
            .records
            .values()
            .map(|r| r.info.runtime_id.clone())
            .collect();
        for st in listed
            .iter()
            .filter(|s| s.id.starts_with(&prefix) && !known.contains(&s.id))
        {
            tracing::warn!(runtime_id = %st.id, "removing a runtime container without a record");
            let (runtime, cgroups, rid) = (
                self.sys.runtime.clone(),
                self.sys.cgroups.clone(),
                st.id.clone(),
            );
            let cgroup = format!("/{}/{}", self.cfg.instance, st.id);
            let _ = blocking(move || {
                let _ = runtime.delete(&rid, true);
                let _ = cgroups.remove(&cgroup);
            })
            .await;
        }
        let ids: Vec<u64> = self.records.keys().copied().collect();
        for id in ids {
            let rec = self.records[&id].clone();
            if !rec.is_live() {
                continue;
            }
            match rec.watched {
                Some(w) if is_alive(&w) => {
                    tracing::info!(id, pid = w.pid, "re-attached to a live container");
                    spawn_watcher(w, id, rec.generation, self.internal.clone());
                    if rec.info.state == ContainerState::Stopping {
                        spawn_escalation(
                            id,
                            rec.generation,
                            Duration::from_millis(rec.stop_timeout_ms),
                            self.internal.clone(),
                        );
                    }
                }
                _ => {
                    // The monitor is gone: did the init outlive it?
                    let init = rec.info.pid.and_then(|pid| {
                        process_start_time(pid).map(|start_time| Watched {
                            pid,
                            start_time,
                            monitor: false,
                        })
                    });
                    match init {
                        Some(w)
                            if listed
                                .iter()
                                .any(|s| s.id == rec.info.runtime_id && s.pid == w.pid) =>
                        {
                            tracing::warn!(
                                id,
                                pid = w.pid,
                                "monitor lost; watching the init directly"
                            );
                            if let Some(r) = self.records.get_mut(&id) {
                                r.watched = Some(w);
                            }
                            let _ = self.save(id).await;
                            spawn_watcher(w, id, rec.generation, self.internal.clone());
                        }
                        _ => self.ended(id, rec.generation).await,
                    }
                }
            }
        }
        Ok(())
    }
}
