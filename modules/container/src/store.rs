//! Persistence: the per-container record (`<state_dir>/<id>/record.json`), the id floor
//! (`<state_dir>/next_id.json`), loading them at start-up, and the ordered writer.
//!
//! Every change of the state that must be durable is queued, *inside the step that made
//! it*, as a [`Commit`] on the [`Journal`]. One writer task takes commits in queue order
//! (which is step order), writes them, then publishes their events and answers
//! [`Durable::wait`]. So a newer record is never overwritten by an older one, a reply
//! waits until the state it reports is on disk, and events come out in the order of the
//! changes. Commits queued together are written in one blocking batch, keeping only the
//! last version of each record.

use crate::config::ContainerConfig;
use crate::error::ContainerError;
use imagebus_schema::container::{ContainerEvent, ContainerInfo, ContainerState};
use imagebus_sys::state::{self, Durability, StateError, StateFile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Format version of record files.
pub const RECORD_VERSION: u32 = 1;

/// Ids reserved per write of `next_id.json`; after a crash the rest of a block is skipped.
pub const ID_BLOCK: u64 = 64;

/// Commits written in one blocking batch at most.
const BATCH: usize = 256;

/// The process whose exit ends a run: the monitor (normally), or the init itself when the
/// monitor was lost. `start_time` (clock ticks since boot) guards against pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    /// Pid.
    pub pid: u32,
    /// Start time from `/proc/<pid>/stat`.
    pub start_time: u64,
    /// Whether this is the monitor (so an exit file is expected).
    pub monitor: bool,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What `Get` returns.
    pub info: ContainerInfo,
    /// Stop signal number.
    pub stop_signal: i32,
    /// Grace period before SIGKILL.
    pub stop_timeout_ms: u64,
    /// Incremented at every run, so stale watcher and timer reports are ignored.
    pub generation: u64,
    /// What is being watched while the container is created, running or stopping.
    #[serde(default)]
    pub watched: Option<Watched>,
    /// When the restart policy runs the container again (ms since the Unix epoch); `None`:
    /// no restart pending.
    #[serde(default)]
    pub restart_due_ms: Option<u64>,
    /// Restarts in a row of runs shorter than the stable period: the backoff's exponent
    /// and what `max_retries` counts.
    #[serde(default)]
    pub restart_streak: u32,
    /// The module is ending this run because its health check found it unhealthy (the
    /// restart policy restarts it): its end is a failure with the reason `unhealthy`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub health_kill: bool,
}

impl Record {
    /// `created` → `running` for run `generation` (the step after `runc start`); false
    /// when the record is of another run or no longer `created`.
    pub fn mark_started(&mut self, generation: u64) -> bool {
        if self.generation != generation || self.info.state != ContainerState::Created {
            return false;
        }
        self.info.state = ContainerState::Running;
        self.info.started_at_ms = Some(imagebus_sys::monitor::now_ms());
        true
    }

    /// Whether the init may still be alive.
    pub fn is_live(&self) -> bool {
        matches!(
            self.info.state,
            ContainerState::Created | ContainerState::Running | ContainerState::Stopping
        )
    }
}

/// Writes a record in the [`imagebus_sys::state::StateFile`] layout (`{"version", "data"}`)
/// through the one atomic writer, mode 0600, but without fsync
/// ([`Durability::Unsynced`]): records only matter while the host
/// stays up (a crash of the host ends its containers too, and start-up then finds them
/// dead either way), and a daemon crash does not lose the page cache. This keeps two
/// disk flushes off every create, start and stop.
pub fn save_record(path: &Path, record: &Record) -> Result<(), StateError> {
    let body = serde_json::to_vec(&serde_json::json!({"version": RECORD_VERSION, "data": record}))
        .map_err(|source| StateError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
    state::write_atomic_with(path, &body, 0o600, Durability::Unsynced)
}

/// Path of container `id`'s record.
pub fn record_path(cfg: &ContainerConfig, id: u64) -> PathBuf {
    cfg.container_dir(id).join("record.json")
}

fn counter(cfg: &ContainerConfig) -> StateFile<u64> {
    StateFile::new(cfg.state_dir.join("next_id.json"), 1)
}

/// What start-up finds on disk.
#[derive(Debug)]
pub struct Loaded {
    /// The records, by id.
    pub records: BTreeMap<u64, Record>,
    /// The id floor on disk: ids below it were handed out (or skipped).
    pub floor: u64,
}

/// Creates the module's directories and reads every record and the id floor (blocking).
pub fn load(cfg: &ContainerConfig) -> Result<Loaded, ContainerError> {
    // State and run directories hold specs and environments: 0700. The log directory
    // keeps the operator's mode (its files are 0640).
    for d in [&cfg.state_dir, &cfg.run_dir, &cfg.runtime_root()] {
        state::ensure_private_dir(d).map_err(|source| ContainerError::Store {
            what: format!("creating {d:?}"),
            source,
        })?;
    }
    let logs = &cfg.log_dir;
    state::create_dir_all(logs).map_err(|source| ContainerError::Store {
        what: format!("creating {logs:?}"),
        source,
    })?;
    let state_dir = &cfg.state_dir;
    let names = state::list_names(state_dir).map_err(|source| ContainerError::Store {
        what: format!("reading {state_dir:?}"),
        source,
    })?;
    let mut records = BTreeMap::new();
    for name in names {
        let Ok(id) = name.parse::<u64>() else {
            continue;
        };
        let file: StateFile<Record> = StateFile::new(record_path(cfg, id), RECORD_VERSION);
        match file.load() {
            Ok(Some(mut r)) if r.info.id == id => {
                // Records written before keys were redacted: purge the key from the disk.
                let redacted = r.info.spec.redacted();
                if redacted != r.info.spec {
                    r.info.spec = redacted;
                    if let Err(e) = save_record(&record_path(cfg, id), &r) {
                        tracing::warn!(id, error = %e, "rewriting a record without its key");
                    }
                }
                records.insert(id, r);
            }
            Ok(_) => tracing::warn!(id, "container directory without a record; ignored"),
            Err(e) => tracing::warn!(id, error = %e, "unreadable container record; ignored"),
        }
    }
    let floor = counter(cfg)
        .load()
        .map_err(|e| ContainerError::Store {
            what: "reading next_id.json".into(),
            source: e,
        })?
        .unwrap_or(1);
    Ok(Loaded { records, floor })
}

/// One write.
#[derive(Debug)]
pub enum Op {
    /// Write this version of a record.
    Save(Box<Record>),
    /// Raise the id floor on disk to this value.
    Floor(u64),
}

/// What one step made durable: its writes, and the events to publish once written.
#[derive(Debug)]
pub struct Commit {
    ops: Vec<Op>,
    events: Vec<ContainerEvent>,
    done: oneshot::Sender<Result<(), Failure>>,
}

/// The writer's queue; held by the state, fed inside steps.
#[derive(Debug, Clone)]
pub struct Journal(mpsc::UnboundedSender<Commit>);

/// Resolves once a commit (and every commit queued before it) is written.
#[derive(Debug)]
#[must_use = "a reply waits until its change is durable"]
pub struct Durable(oneshot::Receiver<Result<(), Failure>>);

impl Journal {
    /// Queues `ops` and `events`; call it in the step that made the change.
    pub fn commit(&self, ops: Vec<Op>, events: Vec<ContainerEvent>) -> Durable {
        let (done, rx) = oneshot::channel();
        // A closed queue drops `done`: the waiter then sees Unavailable.
        let _ = self.0.send(Commit { ops, events, done });
        Durable(rx)
    }

    /// A commit with nothing to write: resolves once everything queued before it is written.
    pub fn barrier(&self) -> Durable {
        self.commit(Vec::new(), Vec::new())
    }
}

impl Durable {
    /// Waits until the commit is on disk.
    pub async fn wait(self) -> Result<(), ContainerError> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => Err(match f.errno {
                Some(n) => ContainerError::state(
                    format!("saving the container state: {}: {}", f.what, f.cause),
                    std::io::Error::from_raw_os_error(n),
                ),
                None => ContainerError::state(
                    format!("saving the container state: {}", f.what),
                    std::io::Error::other(f.cause),
                ),
            }),
            Err(_) => Err(ContainerError::Unavailable),
        }
    }
}

/// Starts the writer task on the current runtime. It ends once every [`Journal`] clone
/// is dropped (the state is gone) and the queue is drained.
pub fn start_writer(cfg: ContainerConfig, events: broadcast::Sender<ContainerEvent>) -> Journal {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(writer(cfg, rx, events));
    Journal(tx)
}

async fn writer(
    cfg: ContainerConfig,
    mut rx: mpsc::UnboundedReceiver<Commit>,
    events: broadcast::Sender<ContainerEvent>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let writes = Writes::of(&batch);
        let failed = if writes.is_empty() {
            Failed::default()
        } else {
            let cfg = cfg.clone();
            imagebus_sys::blocking(move || writes.run(&cfg))
                .await
                .unwrap_or_else(|e| Failed::all(format!("the writer failed: {e}")))
        };
        for c in batch {
            let result = failed.of(&c.ops);
            if result.is_ok() {
                for ev in c.events {
                    let _ = events.send(ev);
                }
            }
            let _ = c.done.send(result);
        }
    }
}

/// The writes of one batch: the last version of each record, the highest floor.
struct Writes {
    records: BTreeMap<u64, Box<Record>>,
    floor: Option<u64>,
}

impl Writes {
    fn of(batch: &[Commit]) -> Self {
        let mut w = Writes {
            records: BTreeMap::new(),
            floor: None,
        };
        for op in batch.iter().flat_map(|c| &c.ops) {
            match op {
                Op::Save(r) => {
                    w.records.insert(r.info.id, r.clone());
                }
                Op::Floor(f) => w.floor = Some(w.floor.map_or(*f, |g| g.max(*f))),
            }
        }
        w
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.floor.is_none()
    }

    /// Writes the floor first (ids must be reserved before anything uses them).
    fn run(self, cfg: &ContainerConfig) -> Failed {
        let mut failed = Failed::default();
        if let Some(floor) = self.floor {
            if let Err(e) = counter(cfg).save(&floor) {
                failed.floor = Some(Failure::of("saving next_id.json".into(), &e));
            }
        }
        for (id, rec) in self.records {
            if let Err(e) = save_record(&record_path(cfg, id), &rec) {
                let f = Failure::of(format!("saving container {id}"), &e);
                tracing::error!(id, error = %f.what, cause = %f.cause, "saving the container record");
                failed.records.insert(id, f);
            }
        }
        failed
    }
}

/// Why a commit was not written: what was being written, the cause's text, and its OS
/// error (a full file system must reach the caller as such, see `ContainerError::code`).
#[derive(Debug, Clone)]
struct Failure {
    what: String,
    cause: String,
    errno: Option<i32>,
}

impl Failure {
    fn of(what: String, e: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = e.to_string();
        let mut errno = None;
        let mut next = Some(e);
        while let Some(x) = next {
            if let Some(io) = x.downcast_ref::<std::io::Error>() {
                errno = errno.or(io.raw_os_error());
            }
            if !std::ptr::eq(x, e) {
                cause.push_str(": ");
                cause.push_str(&x.to_string());
            }
            next = x.source();
        }
        Self { what, cause, errno }
    }

    fn other(what: String) -> Self {
        Self {
            cause: what.clone(),
            what,
            errno: None,
        }
    }
}

/// What failed in a batch.
#[derive(Default)]
struct Failed {
    all: Option<Failure>,
    floor: Option<Failure>,
    records: BTreeMap<u64, Failure>,
}

impl Failed {
    fn all(msg: String) -> Self {
        Self {
            all: Some(Failure::other(msg)),
            ..Self::default()
        }
    }

    /// The result of a commit with `ops`.
    fn of(&self, ops: &[Op]) -> Result<(), Failure> {
        if ops.is_empty() {
            return Ok(());
        }
        if let Some(m) = &self.all {
            return Err(m.clone());
        }
        for op in ops {
            let err = match op {
                Op::Save(r) => self.records.get(&r.info.id),
                Op::Floor(_) => self.floor.as_ref(),
            };
            if let Some(m) = err {
                return Err(m.clone());
            }
        }
        Ok(())
    }
}
