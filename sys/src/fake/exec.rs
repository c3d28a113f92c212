//! Doubles of the process seams: [`Runner`], [`Processes`], [`FuseMounts`].

use super::lock;
use crate::cmd::{CommandCall, CommandOutput, Runner};
use crate::error::SysResult;
use crate::fuse::{FuseMount, FuseMounts};
use crate::proc::{ExitWait, Processes, Reaped, Signal};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What a [`FakeRunner`] does for one program: the command's effect and its answer.
type Effect = Arc<dyn Fn(&CommandCall) -> SysResult<CommandOutput> + Send + Sync>;

/// A runner that records calls and answers every `run` with a scripted output, or, for a
/// program given an effect with [`FakeRunner::on`], with what the effect does (e.g. write
/// the file a `mkfs` would).
#[derive(Clone, Default)]
pub struct FakeRunner {
    state: Arc<Mutex<(Vec<CommandCall>, CommandOutput, u32)>>,
    effects: Arc<Mutex<BTreeMap<String, Effect>>>,
}

impl std::fmt::Debug for FakeRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRunner")
            .field("calls", &lock(&self.state).0.len())
            .field("effects", &lock(&self.effects).keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FakeRunner {
    /// Every call so far (run and spawn).
    pub fn calls(&self) -> Vec<CommandCall> {
        lock(&self.state).0.clone()
    }
    /// What `run` returns from now on (for programs without an effect).
    pub fn respond(&self, out: CommandOutput) {
        lock(&self.state).1 = out;
    }
    /// From now on, `run` of `program` calls `effect` (outside the double's lock, so it may
    /// take its time) and answers what it returns.
    pub fn on(
        &self,
        program: &str,
        effect: impl Fn(&CommandCall) -> SysResult<CommandOutput> + Send + Sync + 'static,
    ) {
        lock(&self.effects).insert(program.to_string(), Arc::new(effect));
    }
}

impl Runner for FakeRunner {
    fn run(&self, call: &CommandCall, _timeout: Duration) -> SysResult<CommandOutput> {
        let scripted = {
            let mut s = lock(&self.state);
            s.0.push(call.clone());
            s.1.clone()
        };
        let effect = lock(&self.effects).get(&call.program).cloned();
        match effect {
            Some(effect) => effect(call),
            None => Ok(scripted),
        }
    }
    fn spawn(&self, call: &CommandCall) -> SysResult<u32> {
        let mut s = lock(&self.state);
        s.0.push(call.clone());
        s.2 += 1;
        Ok(100_000 + s.2)
    }
}

/// Processes in memory: a pid is alive while it is in the table. Each declared process
/// gets a distinct start time; removing one ([`FakeProcesses::exit`], or a signal) wakes
/// every [`Processes::exited`] wait on it.
#[derive(Debug, Clone)]
pub struct FakeProcesses {
    state: Arc<Mutex<ProcTable>>,
    exits: Arc<watch::Sender<u64>>,
}

#[derive(Debug, Default)]
struct ProcTable {
    live: BTreeMap<u32, (Vec<String>, u64)>,
    signals: Vec<(u32, Signal)>,
    started: u64,
    next_pid: u32,
}

impl Default for FakeProcesses {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            exits: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl FakeProcesses {
    /// Declares a live process.
    pub fn add(&self, pid: u32, cmdline: &[&str]) {
        let mut s = lock(&self.state);
        s.started += 1;
        let cmd = cmdline.iter().map(|s| s.to_string()).collect();
        let started = 100 + s.started;
        s.live.insert(pid, (cmd, started));
    }
    /// Starts a new process with an unused pid (from 200000 up) and returns the pid.
    pub fn spawn(&self, cmdline: &[&str]) -> u32 {
        let pid = {
            let mut s = lock(&self.state);
            let mut pid = 200_000 + s.next_pid;
            while s.live.contains_key(&pid) {
                pid += 1;
            }
            s.next_pid = pid - 200_000 + 1;
            pid
        };
        self.add(pid, cmdline);
        pid
    }
    /// Ends a process (it exits on its own).
    pub fn exit(&self, pid: u32) {
        lock(&self.state).live.remove(&pid);
        self.exits.send_modify(|n| *n += 1);
    }
    /// Every signal sent.
    pub fn signals(&self) -> Vec<(u32, Signal)> {
        lock(&self.state).signals.clone()
    }
}

impl Processes for FakeProcesses {
    fn net_dev(&self, pid: u32) -> Option<crate::cgroup_stats::NetCounters> {
        self.alive(pid)
            .then(crate::cgroup_stats::NetCounters::default)
    }

    fn alive(&self, pid: u32) -> bool {
        lock(&self.state).live.contains_key(&pid)
    }
    fn cmdline(&self, pid: u32) -> Option<Vec<String>> {
        lock(&self.state).live.get(&pid).map(|p| p.0.clone())
    }
    fn signal(&self, pid: u32, sig: Signal) -> SysResult<()> {
        lock(&self.state).signals.push((pid, sig));
        self.exit(pid);
        Ok(())
    }
    fn reap(&self, pid: u32) -> Reaped {
        if self.alive(pid) {
            Reaped::Running
        } else {
            Reaped::NotChild
        }
    }
    fn find(&self, program: &str) -> Vec<(u32, Vec<String>)> {
        lock(&self.state)
            .live
            .iter()
            .filter(|(_, (c, _))| c.first().is_some_and(|a| a.ends_with(program)))
            .map(|(p, (c, _))| (*p, c.clone()))
            .collect()
    }
    fn start_time(&self, pid: u32) -> Option<u64> {
        lock(&self.state).live.get(&pid).map(|p| p.1)
    }
    fn exited(&self, pid: u32, start_time: u64) -> ExitWait {
        let me = self.clone();
        Box::pin(async move {
            let mut changes = me.exits.subscribe();
            while me.start_time(pid) == Some(start_time) {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

/// FUSE mounts in memory.
#[derive(Debug, Clone, Default)]
pub struct FakeFuseMounts {
    mounts: Arc<Mutex<Vec<FuseMount>>>,
}

impl FakeFuseMounts {
    /// Adds a mount.
    pub fn add(&self, mountpoint: impl Into<PathBuf>) {
        lock(&self.mounts).push(FuseMount {
            mountpoint: mountpoint.into(),
            fs_type: "fuse.rbd-fuse".into(),
            source: "rbd-fuse".into(),
        });
    }
}

impl FuseMounts for FakeFuseMounts {
    fn list(&self) -> SysResult<Vec<FuseMount>> {
        Ok(lock(&self.mounts).clone())
    }
    fn unmount(&self, mountpoint: &Path, _lazy: bool) -> SysResult<()> {
        lock(&self.mounts).retain(|m| m.mountpoint != mountpoint);
        Ok(())
    }
}
