//! `Logs`: reading a container's log file (the whole of it, the last N lines, or from an
//! offset), long-polling for new output. Answered from the current state (a read) and the
//! file, never waiting for a command in flight.

use super::{blocking, Engine};
use crate::error::ContainerError;
use imagebus_schema::container::{ContainerState, LogChunk, LogsRequest};
use imagebus_schema::Selector;
use imagebus_sys::logfile::{self, Piece};
use std::time::{Duration, Instant};

/// The longest a long poll waits, whatever `wait_ms` says: a caller without a deadline
/// (a Go zbus client sends none) holds a bus worker no longer than this.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// How often a long poll looks for new output.
const POLL: Duration = Duration::from_millis(50);

/// The output `req` asks for; with `wait_ms`, waits up to that long for new output while
/// the container runs.
pub async fn logs(
    e: &Engine,
    target: Selector,
    req: LogsRequest,
) -> Result<LogChunk, ContainerError> {
    let (id, path, state) = e
        .host
        .read(move |s| s.get(&target).map(|i| (i.id, i.log_file, i.state)))
        .await??;
    // Never wait past the caller's deadline: a long poll must not hold a bus worker after
    // its caller gave up.
    let wanted = Instant::now() + Duration::from_millis(req.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    let deadline = super::reply_by().map_or(wanted, |by| wanted.min(by));
    let want = logfile::Want {
        offset: req.offset,
        tail: req.tail,
        max_bytes: req.max_bytes,
    };
    let mut running = is_running(state);
    loop {
        let p = path.clone();
        let piece: Piece = blocking(move || logfile::read(&p, &want))
            .await?
            .map_err(|err| ContainerError::state(format!("reading {path:?}"), err))?;
        let waiting = req.wait_ms.is_some() && piece.data.is_empty() && running;
        if !waiting || Instant::now() >= deadline {
            return Ok(LogChunk {
                data: piece.data,
                offset: piece.offset,
                running,
            });
        }
        tokio::time::sleep(POLL).await;
        let state = e
            .host
            .read(move |s| s.get(&Selector::Id(id)).map(|i| i.state))
            .await??;
        running = is_running(state);
    }
}

fn is_running(s: ContainerState) -> bool {
    matches!(
        s,
        ContainerState::Created | ContainerState::Running | ContainerState::Stopping
    )
}
