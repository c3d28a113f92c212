//! Admission: how many jobs run at once, who waits, and what happens at shutdown.

use crate::keys::{Held, Key, KeyLocks};
use crate::HostError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How much one actor may do at once, and how long it gets to finish at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Jobs (mutations) running at once; the rest wait in FIFO order. At least 1.
    pub max_mutations: usize,
    /// How long shutdown waits for jobs in flight before stopping the actor anyway.
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_mutations: default_max_mutations(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// The default of [`Limits::max_mutations`]: 8 per core, at least 8. Mutations mostly wait
/// (on runc, mount helpers, Ceph, peer modules), so more of them than cores run usefully;
/// the bound keeps a burst from starting hundreds of external processes at once.
pub fn default_max_mutations() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 8).max(8)
}

/// What a running job holds: its keys and its slot. Dropping it lets the next one in.
#[derive(Debug)]
pub(crate) struct Ticket {
    _keys: Held,
    _permit: OwnedSemaphorePermit,
}

/// Shared by every handle of one actor.
#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) name: &'static str,
    pub(crate) limits: Limits,
    permits: Arc<Semaphore>,
    keys: KeyLocks,
    pub(crate) tracker: TaskTracker,
    closed: AtomicBool,
    /// The daemon's stop token: once cancelled, no new job starts.
    stop: CancellationToken,
    /// Where jobs run: the runtime that started the host (not the actor's thread).
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Gate {
    pub(crate) fn new(
        name: &'static str,
        limits: Limits,
        stop: CancellationToken,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            name,
            limits,
            permits: Arc::new(Semaphore::new(limits.max_mutations.max(1))),
            keys: KeyLocks::default(),
            tracker: TaskTracker::new(),
            closed: AtomicBool::new(false),
            stop,
            runtime,
        }
    }

    /// Waits for the keys, then for a slot, until `deadline`.
    pub(crate) async fn enter(
        &self,
        keys: Vec<Key>,
        deadline: Option<Instant>,
    ) -> Result<Ticket, HostError> {
        self.check_open()?;
        let asked = Instant::now();
        let wait = async {
            let held = self.keys.lock(keys).await;
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| HostError::Stopped(self.name))?;
            Ok(Ticket {
                _keys: held,
                _permit: permit,
            })
        };
        let ticket = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), wait)
                .await
                .map_err(|_| HostError::Timeout {
                    actor: self.name,
                    waited: asked.elapsed(),
                })??,
            None => wait.await?,
        };
        // The turn came, but the caller may have given up in the same instant.
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(HostError::Timeout {
                actor: self.name,
                waited: asked.elapsed(),
            });
        }
        self.check_open()?;
        Ok(ticket)
    }

    pub(crate) fn check_open(&self) -> Result<(), HostError> {
        if self.closed.load(Ordering::Acquire) || self.stop.is_cancelled() {
            return Err(HostError::Stopped(self.name));
        }
        Ok(())
    }

    /// Refuses new jobs and wakes every waiter with `Stopped`.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        self.tracker.close();
    }

    /// Jobs running now.
    pub(crate) fn running(&self) -> usize {
        self.tracker.len()
    }
}
