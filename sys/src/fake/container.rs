//! Doubles of the container seams: [`FakeRuntime`] (the [`Runtime`] and the
//! [`MonitorLauncher`] at once, since a launch creates a runtime container), [`Cgroups`]
//! and [`NetNamespaces`].

use super::{lock, FakeProcesses};
use crate::cgroup::Cgroups;
use crate::cgroup_stats::CgroupStats;
use crate::monitor::{write_exit_file, ExitRecord, MonitorConfig, MonitorLauncher, MonitorReport};
use crate::ns::{NetNamespaces, NETNS_DIR};
use crate::runtime::{ExecOutput, ExecRequest, Runtime, RuntimeError, RuntimeState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest a [`Gate`] holds a call.
pub const GATE_LIMIT: Duration = Duration::from_secs(10);

/// Holds the calls that pass it (on the blocking pool) while closed, at most
/// [`GATE_LIMIT`]: keeps a command in flight "in the kernel".
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<(bool, usize)>,
    cv: Condvar,
}

impl Gate {
    /// Holds the calls from now on.
    pub fn close(&self) {
        lock(&self.state).0 = true;
    }
    /// Lets every held call go, and the later ones pass.
    pub fn open(&self) {
        lock(&self.state).0 = false;
        self.cv.notify_all();
    }
    /// How many calls it holds now.
    pub fn waiting(&self) -> usize {
        lock(&self.state).1
    }
    /// Passes the gate: returns at once when open, else when opened (or after the limit).
    pub fn pass(&self) {
        let mut st = lock(&self.state);
        st.1 += 1;
        let deadline = Instant::now() + GATE_LIMIT;
        while st.0 && Instant::now() < deadline {
            st = match self.cv.wait_timeout(st, GATE_LIMIT) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        st.1 -= 1;
    }
}

#[derive(Debug, Default)]
struct RuntimeTable {
    listed: Vec<RuntimeState>,
    fail: bool,
    /// Live runs: runtime id to (pid, exit file).
    runs: BTreeMap<String, (u32, PathBuf)>,
    deleted: Vec<String>,
    calls: Vec<String>,
    launches: usize,
    /// Signals the inits ignore (recorded, but the run goes on).
    ignored: BTreeSet<i32>,
}

/// An OCI runtime and monitor launcher in memory. A launch takes the monitor config,
/// starts a process in its [`FakeProcesses`] standing in for both the monitor and the
/// init, and reports it; `kill` and `delete` end the run as the monitor would see it
/// (the exit file first, then the process exits). Calls are recorded as `launch <id>`,
/// `start <id>` and `kill <id> <signal>`.
#[derive(Debug, Clone, Default)]
pub struct FakeRuntime {
    table: Arc<Mutex<RuntimeTable>>,
    procs: FakeProcesses,
    launch_gate: Arc<Gate>,
    start_gate: Arc<Gate>,
}

impl FakeRuntime {
    /// The processes its runs live in (to watch them, or to declare others).
    pub fn processes(&self) -> FakeProcesses {
        self.procs.clone()
    }
    /// What `list` answers from now on.
    pub fn set_listed(&self, listed: Vec<RuntimeState>) {
        lock(&self.table).listed = listed;
    }
    /// Makes every launch report the runtime error "exec failed: boom".
    pub fn fail_launches(&self, fail: bool) {
        lock(&self.table).fail = fail;
    }
    /// Makes every init ignore `sig` (like an init that traps TERM and does nothing):
    /// `kill` with it is recorded, and the run goes on.
    pub fn ignore_signal(&self, sig: i32) {
        lock(&self.table).ignored.insert(sig);
    }
    /// Holds `launch` while closed.
    pub fn launch_gate(&self) -> &Gate {
        &self.launch_gate
    }
    /// Holds `start` while closed.
    pub fn start_gate(&self) -> &Gate {
        &self.start_gate
    }
    /// Runtime ids of the live runs.
    pub fn live(&self) -> BTreeSet<String> {
        lock(&self.table).runs.keys().cloned().collect()
    }
    /// Every recorded call.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.table).calls.clone()
    }
    /// Every deleted runtime id.
    pub fn deleted(&self) -> Vec<String> {
        lock(&self.table).deleted.clone()
    }
    /// How many launches there were.
    pub fn launches(&self) -> usize {
        lock(&self.table).launches
    }
    /// Ends run `rid` as the monitor would see it killed by `sig`.
    pub fn end(&self, rid: &str, sig: i32) {
        let run = lock(&self.table).runs.remove(rid);
        if let Some((pid, exit_file)) = run {
            // Like the monitor: the exit file is written before the watched process ends.
            let exit = ExitRecord {
                pid,
                exit_code: None,
                signal: Some(sig),
                exited_at_ms: 1,
            };
            if let Err(e) = write_exit_file(&exit_file, &exit) {
                tracing::warn!(error = %e, "fake runtime: writing the exit file");
            }
            self.procs.exit(pid);
        }
    }
}

impl MonitorLauncher for FakeRuntime {
    fn launch(&self, config: &MonitorConfig, _: Duration) -> Result<MonitorReport, RuntimeError> {
        let cfg = config.clone();
        let fail = {
            let mut t = lock(&self.table);
            t.launches += 1;
            t.calls.push(format!("launch {}", cfg.id));
            t.fail
        };
        self.launch_gate.pass();
        if fail {
            return Ok(MonitorReport {
                id: Some(config.id.clone()),
                monitor_pid: 1,
                init_pid: None,
                error: Some("exec failed: boom".into()),
            });
        }
        let pid = self.procs.spawn(&["imagebus-monitor", &cfg.id]);
        lock(&self.table).runs.insert(cfg.id, (pid, cfg.exit_file));
        Ok(MonitorReport {
            id: Some(config.id.clone()),
            monitor_pid: pid,
            init_pid: Some(pid),
            error: None,
        })
    }
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &str {
        "fake"
    }
    fn create_argv(&self, id: &str, _: &Path, _: &Path, _: &Path, _: bool) -> Vec<String> {
        vec!["fake".into(), id.into()]
    }
    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        lock(&self.table).calls.push(format!("start {id}"));
        self.start_gate.pass();
        Ok(())
    }
    fn state(&self, _: &str) -> Result<Option<RuntimeState>, RuntimeError> {
        Ok(None)
    }
    fn list(&self) -> Result<Vec<RuntimeState>, RuntimeError> {
        Ok(lock(&self.table).listed.clone())
    }
    fn kill(&self, id: &str, sig: i32, _: bool) -> Result<(), RuntimeError> {
        let ignored = {
            let mut t = lock(&self.table);
            t.calls.push(format!("kill {id} {sig}"));
            t.ignored.contains(&sig)
        };
        if !ignored {
            self.end(id, sig);
        }
        Ok(())
    }
    fn delete(&self, id: &str, _: bool) -> Result<(), RuntimeError> {
        self.end(id, 9);
        lock(&self.table).deleted.push(id.into());
        Ok(())
    }
    fn exec(&self, _: &str, _: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        Ok(ExecOutput::default())
    }
    fn session_exec_argv(
        &self,
        id: &str,
        req: &ExecRequest,
        _: Option<&Path>,
        _: &Path,
        _: &Path,
    ) -> Result<Vec<String>, RuntimeError> {
        let mut argv = vec!["fake-exec".to_string(), id.to_string()];
        argv.extend(req.args.iter().cloned());
        Ok(argv)
    }
}

/// Cgroups in memory: no hierarchies; removals are recorded; stats are what the test set
/// (a removed cgroup's stats are gone).
#[derive(Debug, Clone, Default)]
pub struct FakeCgroups {
    removed: Arc<Mutex<Vec<String>>>,
    stats: Arc<Mutex<std::collections::BTreeMap<String, CgroupStats>>>,
}

impl FakeCgroups {
    /// Sets what `stats(rel)` returns until `rel` is removed.
    pub fn set_stats(&self, rel: &str, stats: CgroupStats) {
        lock(&self.stats).insert(rel.into(), stats);
    }

    /// Every cgroup path passed to `remove`.
    pub fn removed(&self) -> Vec<String> {
        lock(&self.removed).clone()
    }
}

impl Cgroups for FakeCgroups {
    fn hierarchies(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    fn remove(&self, rel: &str) -> Result<Vec<PathBuf>, RuntimeError> {
        lock(&self.removed).push(rel.into());
        lock(&self.stats).remove(rel);
        Ok(Vec::new())
    }
    fn stats(&self, rel: &str) -> CgroupStats {
        lock(&self.stats).get(rel).cloned().unwrap_or_default()
    }
}

/// Named network namespaces in memory; declared names resolve under [`NETNS_DIR`].
#[derive(Debug, Clone, Default)]
pub struct FakeNetNamespaces {
    names: Arc<Mutex<BTreeSet<String>>>,
}

impl FakeNetNamespaces {
    /// Declares namespace `name`.
    pub fn add(&self, name: &str) {
        lock(&self.names).insert(name.into());
    }
}

impl NetNamespaces for FakeNetNamespaces {
    fn resolve(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        if lock(&self.names).contains(name) {
            Ok(Path::new(NETNS_DIR).join(name))
        } else {
            Err(RuntimeError::NotFound(format!(
                "network namespace {name:?}"
            )))
        }
    }
}

/// Session helpers that are never started: each start is recorded (with whether a master
/// came along) and answered with the config's stream socket path.
#[derive(Debug, Clone, Default)]
pub struct FakeSessions {
    started: Arc<Mutex<Vec<(crate::session::SessionConfig, bool)>>>,
}

impl FakeSessions {
    /// The configs started so far, with whether each got a master.
    pub fn started(&self) -> Vec<(crate::session::SessionConfig, bool)> {
        lock(&self.started).clone()
    }
}

impl crate::session::SessionLauncher for FakeSessions {
    fn start(
        &self,
        config: &crate::session::SessionConfig,
        master: Option<std::os::fd::OwnedFd>,
        _: Duration,
    ) -> Result<PathBuf, RuntimeError> {
        lock(&self.started).push((config.clone(), master.is_some()));
        Ok(config.stream_socket())
    }
}
