//! Tasks that report back to the actor: the end of a run (a pidfd on the monitor, or on
//! the init when the monitor is gone) and the stop-escalation timer.

use crate::record::Watched;
use imagebus_sys::monitor::process_start_time;
use imagebus_sys::signal::Pidfd;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// Messages from watcher tasks to the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    /// The watched process of run `generation` of container `id` has ended.
    Ended {
        /// Container id.
        id: u64,
        /// Run.
        generation: u64,
    },
    /// The stop grace period of run `generation` is over.
    Escalate {
        /// Container id.
        id: u64,
        /// Run.
        generation: u64,
    },
}

/// Whether `w` is still the process we started (same pid and start time).
pub fn is_alive(w: &Watched) -> bool {
    process_start_time(w.pid) == Some(w.start_time)
}

/// Opens a pidfd on `w` and reports [`Internal::Ended`] once it exits (at once if it is
/// already gone or was replaced by another process with the same pid).
pub fn spawn_watcher(w: Watched, id: u64, generation: u64, tx: mpsc::UnboundedSender<Internal>) {
    tokio::spawn(async move {
        let fd = Pidfd::open(w.pid).ok();
        // Checked after opening, so a pid reused before the open is caught.
        if let Some(fd) = fd.filter(|_| is_alive(&w)) {
            // The deprecation is about registering a borrowed fd that may be closed while
            // registered; the pidfd is owned by the AsyncFd here, so it cannot be.
            #[allow(deprecated)]
            let registered = AsyncFd::new(fd);
            match registered {
                Ok(afd) => {
                    let _ = afd.readable().await;
                }
                Err(e) => {
                    tracing::warn!(id, pid = w.pid, error = %e, "cannot poll pidfd; polling /proc");
                    while is_alive(&w) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        let _ = tx.send(Internal::Ended { id, generation });
    });
}

/// Reports [`Internal::Escalate`] after `after`.
pub fn spawn_escalation(
    id: u64,
    generation: u64,
    after: Duration,
    tx: mpsc::UnboundedSender<Internal>,
) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = tx.send(Internal::Escalate { id, generation });
    });
}
