//! The container engine: the state the actor owns ([`Containers`]), the context every
//! command works with ([`Engine`]), and one file per verb or concern.
//!
//! Concurrency: the state lives in the actor host. Reads (`Get`, `List`, `Logs`, the target
//! of `Exec`) answer from it at once. Every command that changes it is a job
//! (`Host::mutate`) keyed by the container (`Key::id("container", id)`; a create by its
//! name, `Key::name("container", name)`): commands on one container run in order, commands
//! on different containers side by side. A job does its slow work (runc, the monitor,
//! files, the mount module) outside the actor and changes the state in short steps
//! (`Host::apply`), each of which queues what must become durable on the ordered writer
//! (`store.rs`); the reply waits for it. Exits reported by watchers are handled with steps
//! only (no key), so a command holding a container's key may wait for its exit.

use crate::config::{ContainerConfig, ContainerSys};
use crate::error::ContainerError;
use crate::store::{Durable, Journal, Loaded, Op, Record, ID_BLOCK};
use imagebus_host::{Host, Key};
use imagebus_schema::container::{ContainerEvent, ContainerFilter, ContainerInfo};
use imagebus_schema::mount::MountModule;
use imagebus_schema::Selector;
use imagebus_sys::monitor::now_ms;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub mod create;
pub mod exec;
pub mod exits;
pub mod health;
pub mod launch;
pub mod logs;
pub mod nul;
pub mod prepare;
pub mod reconcile;
pub mod remove;
pub mod restart;
pub mod session;
pub mod start;
pub mod stats;
pub mod stop;
pub mod watch;

/// The kind in this module's job keys.
pub const KIND: &str = "container";

/// The key of container `id`.
pub fn key(id: u64) -> Key {
    Key::id(KIND, id)
}

/// A command answers its caller this long before the caller's deadline (when it has one),
/// so that the reply arrives in time: no command holds a bus worker for a caller that gave
/// up. What the command started goes on (jobs are detached from their callers).
pub const REPLY_MARGIN: Duration = Duration::from_millis(250);

/// When the command being served must answer: [`REPLY_MARGIN`] before the caller's
/// deadline (`None`: the caller gave none, e.g. a Go zbus client).
pub fn reply_by() -> Option<Instant> {
    imagebus_bus::deadline::current().map(|d| d.checked_sub(REPLY_MARGIN).unwrap_or(d))
}

/// Awaits `fut` until [`reply_by`]; then answers [`ContainerError::InProgress`] with
/// `what()` and lets `fut`'s work go on (a job runs to its end without its caller).
pub async fn answer_in_time<T>(
    fut: impl std::future::Future<Output = Result<T, ContainerError>>,
    what: impl FnOnce() -> String,
) -> Result<T, ContainerError> {
    let Some(by) = reply_by() else {
        return fut.await;
    };
    match tokio::time::timeout_at(by.into(), fut).await {
        Ok(answer) => answer,
        Err(_) => Err(ContainerError::InProgress(what())),
    }
}

/// A pending `Stop` caller: answered with the container once its init has exited.
pub type StopWaiter = oneshot::Sender<Result<ContainerInfo, ContainerError>>;

/// Runs blocking work (runc, files, `/proc`) on the blocking pool
/// ([`imagebus_sys::blocking`]); a failed task is a state error.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ContainerError> {
    imagebus_sys::blocking(f)
        .await
        .map_err(|e| ContainerError::state("blocking task", std::io::Error::other(e.to_string())))
}

/// Paths of one container's files.
#[derive(Debug, Clone)]
pub struct Files {
    /// `<state_dir>/<id>`: the record and the bundle.
    pub dir: PathBuf,
    /// The OCI bundle.
    pub bundle: PathBuf,
    /// `<run_dir>/<id>`: the current run's files, below.
    pub run: PathBuf,
    /// The init's pid file.
    pub pid: PathBuf,
    /// The monitor's exit file.
    pub exit: PathBuf,
    /// The runtime's log.
    pub runtime_log: PathBuf,
    /// The monitor's log.
    pub monitor_log: PathBuf,
    /// The container's log (records written by the monitor's capture).
    pub log: PathBuf,
    /// The spool of the container's stdout.
    pub stdout_spool: PathBuf,
    /// The spool of its stderr.
    pub stderr_spool: PathBuf,
}

impl Files {
    /// The files of container `id`.
    pub fn of(cfg: &ContainerConfig, id: u64) -> Self {
        let (dir, run) = (cfg.container_dir(id), cfg.run_files_dir(id));
        let (stdout_spool, stderr_spool) = cfg.spool_files(id);
        Self {
            stdout_spool,
            stderr_spool,
            bundle: dir.join("bundle"),
            pid: run.join("init.pid"),
            exit: run.join("exit.json"),
            runtime_log: run.join("runtime.log"),
            monitor_log: run.join("monitor.log"),
            log: cfg.log_file(id),
            dir,
            run,
        }
    }
}

/// The event telling that `info` is what it is now.
pub fn event(info: &ContainerInfo, deleted: bool) -> ContainerEvent {
    ContainerEvent {
        id: info.id,
        name: info.name.clone(),
        group: info.group.clone(),
        state: info.state,
        exit_code: info.exit_code,
        reason: info.reason.clone(),
        deleted,
        at_ms: now_ms(),
        health: info.health.as_ref().map(|h| h.status),
    }
}

/// The actor's state. Only steps change it.
#[derive(Debug)]
pub struct Containers {
    /// The containers `Get` and `List` see.
    records: BTreeMap<u64, Record>,
    /// Creates in flight: their ids and names are taken, but nothing shows them.
    creating: BTreeMap<u64, Option<String>>,
    /// Containers being deleted: no command but the delete in progress touches them.
    removing: BTreeSet<u64>,
    next_id: u64,
    /// Ids below this are reserved on disk (possibly still being written).
    reserved: u64,
    waiters: HashMap<u64, Vec<StopWaiter>>,
    /// When a stopping container's SIGKILL is due (per run generation; `None`: never, the
    /// grace period being too long to represent): the earliest any `Stop` asked for.
    kill_at: HashMap<u64, (u64, Option<Instant>)>,
    journal: Journal,
}

impl Containers {
    /// The state found on disk; new ids continue after the floor and every known id.
    pub fn new(loaded: Loaded, journal: Journal) -> Self {
        let next_id = loaded
            .floor
            .max(loaded.records.keys().next_back().map_or(1, |k| k + 1));
        Self {
            records: loaded.records,
            creating: BTreeMap::new(),
            removing: BTreeSet::new(),
            next_id,
            reserved: next_id,
            waiters: HashMap::new(),
            kill_at: HashMap::new(),
            journal,
        }
    }

    /// Resolves a selector to the id of a visible container.
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
        self.record(id).map(|r| r.info.clone())
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

    /// Container `id`, if it exists.
    pub fn record(&self, id: u64) -> Result<&Record, ContainerError> {
        self.records
            .get(&id)
            .ok_or(ContainerError::NotFound(Selector::Id(id)))
    }

    /// Container `id` for a command: not found while it is being deleted.
    pub fn target(&self, id: u64) -> Result<&Record, ContainerError> {
        if self.removing.contains(&id) {
            return Err(ContainerError::NotFound(Selector::Id(id)));
        }
        self.record(id)
    }

    /// Container `id` to change, if it exists.
    pub fn record_mut(&mut self, id: u64) -> Option<&mut Record> {
        self.records.get_mut(&id)
    }

    /// Queues the current record of `id` and `events` for the writer.
    pub fn save(&self, id: u64, events: Vec<ContainerEvent>) -> Durable {
        let ops = self
            .records
            .get(&id)
            .map(|r| vec![Op::Save(Box::new(r.clone()))])
            .unwrap_or_default();
        self.journal.commit(ops, events)
    }

    /// Queues the record of `id` with one event for its current state.
    pub fn save_and_tell(&self, id: u64) -> Durable {
        let events = self
            .records
            .get(&id)
            .map(|r| vec![event(&r.info, false)])
            .unwrap_or_default();
        self.save(id, events)
    }

    /// Resolves once everything queued so far is written.
    pub fn barrier(&self) -> Durable {
        self.journal.barrier()
    }

    /// Takes `name` (if any) and a fresh id for a create. Ids are reserved on disk in blocks
    /// of [`ID_BLOCK`]; the returned [`Durable`] resolves once the id's block is on disk
    /// (raised by this create or by an earlier one still being written).
    pub fn reserve(&mut self, name: Option<String>) -> Result<(u64, Durable), ContainerError> {
        if let Some(n) = &name {
            let taken = self
                .records
                .values()
                .any(|r| r.info.name.as_deref() == Some(n))
                || self.creating.values().any(|c| c.as_deref() == Some(n));
            if taken {
                return Err(ContainerError::NameTaken(n.clone()));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let ops = if id >= self.reserved {
            self.reserved = id + ID_BLOCK;
            vec![Op::Floor(self.reserved)]
        } else {
            Vec::new()
        };
        self.creating.insert(id, name);
        Ok((id, self.journal.commit(ops, Vec::new())))
    }

    /// Whether container `id` holds a reference to mount `mount` (see
    /// `ContainerModule::holds`): a create in flight does (its mount is not recorded yet),
    /// a record standing on `mount` does until it is marked removing.
    pub fn holds(&self, id: u64, mount: u64) -> bool {
        self.creating.contains_key(&id)
            || (!self.removing.contains(&id)
                && self.records.get(&id).is_some_and(|r| r.info.mount == mount))
    }

    /// Gives up the reservation of a create that failed.
    pub fn unreserve(&mut self, id: u64) {
        self.creating.remove(&id);
    }

    /// Turns a reservation into a visible container and queues its record and events.
    pub fn register(&mut self, record: Record, events: Vec<ContainerEvent>) -> Durable {
        let id = record.info.id;
        self.creating.remove(&id);
        self.records.insert(id, record);
        self.save(id, events)
    }

    /// Removes a registered container again (its record could not be written).
    pub fn unregister(&mut self, id: u64) {
        self.records.remove(&id);
    }

    /// Marks `id` as being deleted; false if it already is or is gone.
    pub fn mark_removing(&mut self, id: u64) -> bool {
        self.records.contains_key(&id) && self.removing.insert(id)
    }

    /// Clears the mark of a delete that failed.
    pub fn unmark_removing(&mut self, id: u64) {
        self.removing.remove(&id);
    }

    /// Forgets a deleted container and queues its final event.
    pub fn forget(&mut self, id: u64) -> Option<Durable> {
        self.removing.remove(&id);
        let rec = self.records.remove(&id)?;
        Some(
            self.journal
                .commit(Vec::new(), vec![event(&rec.info, true)]),
        )
    }

    /// Adds a `Stop` caller to answer when `id`'s init exits (and drops those that gave
    /// up waiting).
    pub fn add_waiter(&mut self, id: u64, waiter: StopWaiter) {
        let w = self.waiters.entry(id).or_default();
        w.retain(|w| !w.is_closed());
        w.push(waiter);
    }

    /// The `Stop` callers of `id` (its end is recorded: no SIGKILL is due any more).
    pub fn take_waiters(&mut self, id: u64) -> Vec<StopWaiter> {
        self.kill_at.remove(&id);
        self.waiters.remove(&id).unwrap_or_default()
    }

    /// Brings the SIGKILL of run `generation` of `id` forward to `at` (`None`: never);
    /// true if `at` is earlier than what was due (the caller then arms a timer for it).
    /// Returns the time now due either way.
    pub fn kill_by(
        &mut self,
        id: u64,
        generation: u64,
        at: Option<Instant>,
    ) -> (bool, Option<Instant>) {
        let due = match self.kill_at.get(&id) {
            Some((g, due)) if *g == generation => *due,
            _ => {
                self.kill_at.insert(id, (generation, at));
                return (true, at);
            }
        };
        let earlier = match (at, due) {
            (Some(at), Some(due)) => at < due,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            self.kill_at.insert(id, (generation, at));
            (true, at)
        } else {
            (false, due)
        }
    }

    /// Ids of every container.
    pub fn ids(&self) -> Vec<u64> {
        self.records.keys().copied().collect()
    }

    /// Runtime ids of every container.
    pub fn runtime_ids(&self) -> Vec<String> {
        self.records
            .values()
            .map(|r| r.info.runtime_id.clone())
            .collect()
    }
}

/// What every command works with: the configuration, the seams, the mount module, and the
/// host that owns the state.
pub struct Engine {
    /// Configuration.
    pub cfg: ContainerConfig,
    /// Syscall and tool seams.
    pub sys: ContainerSys,
    /// The mount module (in process or over the bus).
    pub mounts: Arc<dyn MountModule>,
    /// The daemon's capability bounding set.
    pub bounding: u64,
    /// The actor host owning [`Containers`].
    pub host: Host<Containers>,
    /// Cancelled when the actor is told to stop or the engine is dropped: ends watchers
    /// and timers (they hold only a weak reference, so they never keep the actor alive).
    pub quit: CancellationToken,
    /// The terminal masters of `tty` containers (received from the runtime at create),
    /// until a `Session` takes one (see `session.rs`).
    pub terminals: std::sync::Mutex<HashMap<u64, std::os::fd::OwnedFd>>,
    me: Weak<Engine>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("instance", &self.cfg.instance)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.quit.cancel();
    }
}

impl Engine {
    /// The engine of a started host.
    pub fn new(
        cfg: ContainerConfig,
        sys: ContainerSys,
        mounts: Arc<dyn MountModule>,
        bounding: u64,
        host: Host<Containers>,
        quit: CancellationToken,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            terminals: std::sync::Mutex::default(),
            cfg,
            sys,
            mounts,
            bounding,
            host,
            quit,
            me: me.clone(),
        })
    }

    /// A reference for tasks that must not keep the actor alive.
    pub fn weak(&self) -> Weak<Engine> {
        self.me.clone()
    }

    /// The files of container `id`.
    pub fn files(&self, id: u64) -> Files {
        Files::of(&self.cfg, id)
    }

    /// Resolves `target` from the current state.
    pub async fn resolve(&self, target: Selector) -> Result<u64, ContainerError> {
        self.host.read(move |s| s.find(&target)).await?
    }

    /// Runs `f` as a job holding container `id`'s key. The caller gets its answer, or
    /// [`ContainerError::InProgress`] at [`reply_by`] while the job goes on.
    pub async fn job<R, F, Fut>(self: &Arc<Self>, id: u64, f: F) -> Result<R, ContainerError>
    where
        R: Send + 'static,
        F: FnOnce(Arc<Engine>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<R, ContainerError>> + Send + 'static,
    {
        let me = self.clone();
        answer_in_time(
            async { self.host.mutate(vec![key(id)], move |_| f(me)).await? },
            || format!("container {id}: the caller's deadline came before the command finished; a command that started goes on"),
        )
        .await
    }
}
