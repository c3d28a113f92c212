//! Watchers: a task per run that waits for the watched process (the monitor, or the init
//! when the monitor is gone) through [`Processes::exited`](imagebus_sys::proc::Processes)
//! and then hands the end to `exits.rs`.
//!
//! A watcher holds only a weak reference to the engine and ends when the actor stops
//! ([`Engine::quit`]), so it never keeps the actor alive and a new actor re-attaches.

use super::{blocking, exits, Engine};
use crate::config::ContainerSys;
use crate::error::ContainerError;
use crate::store::Watched;

/// Whether `w` is still the process we started (same pid and start time).
pub async fn is_alive(sys: &ContainerSys, w: Watched) -> Result<bool, ContainerError> {
    let procs = sys.procs.clone();
    blocking(move || procs.start_time(w.pid) == Some(w.start_time)).await
}

/// Watches run `generation` of container `id` through `w`.
pub fn watch(e: &Engine, w: Watched, id: u64, generation: u64) {
    let (weak, quit) = (e.weak(), e.quit.clone());
    // Resolves at once if the process is already gone or its pid was reused.
    let ended = e.sys.procs.exited(w.pid, w.start_time);
    tokio::spawn(async move {
        tokio::select! {
            () = ended => {}
            () = quit.cancelled() => return,
        }
        if let Some(e) = weak.upgrade() {
            let engine = e.clone();
            e.host
                .spawn(async move { exits::ended(&engine, id, generation).await });
        }
    });
}
