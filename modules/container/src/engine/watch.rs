//! Watchers: a task per run that waits for the watched process (a pidfd on the monitor,
//! or on the init when the monitor is gone) and then hands the end to `exits.rs`.
//!
//! A watcher holds only a weak reference to the engine and ends when the actor stops
//! ([`Engine::quit`]), so it never keeps the actor alive and a new actor re-attaches.

use super::{exits, Engine};
use crate::store::Watched;
use imagebus_sys::monitor::process_start_time;
use imagebus_sys::signal::Pidfd;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// Whether `w` is still the process we started (same pid and start time).
pub fn is_alive(w: &Watched) -> bool {
    process_start_time(w.pid) == Some(w.start_time)
}

/// Watches run `generation` of container `id` through `w`.
pub fn watch(e: &Engine, w: Watched, id: u64, generation: u64) {
    let (weak, quit) = (e.weak(), e.quit.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = ended(w, id) => {}
            () = quit.cancelled() => return,
        }
        if let Some(e) = weak.upgrade() {
            let engine = e.clone();
            e.host
                .spawn(async move { exits::ended(&engine, id, generation).await });
        }
    });
}

/// Resolves once `w` has exited (at once if it is already gone or its pid was reused).
async fn ended(w: Watched, id: u64) {
    let fd = tokio::task::spawn_blocking(move || Pidfd::open(w.pid).ok().filter(|_| is_alive(&w)))
        .await
        .ok()
        .flatten();
    // Checked after opening, so a pid reused before the open is caught.
    let Some(fd) = fd else {
        return;
    };
    // The deprecation is about registering a borrowed fd that may be closed while
    // registered; the pidfd is owned by the AsyncFd here, so it cannot be.
    #[allow(deprecated)]
    let registered = AsyncFd::new(fd);
    match registered {
        Ok(afd) => {
            let _ = afd.readable().await;
        }
        Err(err) => {
            tracing::warn!(id, pid = w.pid, error = %err, "cannot poll pidfd; polling /proc");
            while tokio::task::spawn_blocking(move || is_alive(&w))
                .await
                .unwrap_or(false)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
