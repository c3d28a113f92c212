//! `Logs`: reading a container's log (the whole of it, the last N lines, or from a
//! position, across its rotated files; filtered by time and stream), long-polling for new
//! output. Answered from the current state (a read) and the files, never waiting for a
//! command in flight. Lines come back as text (`data`, what older callers read) or, when
//! asked, as entries with their time and stream.

use super::{blocking, Engine};
use crate::error::ContainerError;
use imagebus_schema::container::{ContainerState, LogChunk, LogEntry, LogStream, LogsRequest};
use imagebus_schema::Selector;
use imagebus_sys::logfile::{self, Piece, Stream};
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
    let ms_to_ns = |ms: u64| ms.saturating_mul(1_000_000);
    let mut want = logfile::Want {
        offset: req.offset,
        tail: req.tail,
        max_bytes: req.max_bytes,
        since_ns: req.since_ms.map(ms_to_ns),
        // Through the end of that millisecond.
        until_ns: req.until_ms.map(|ms| ms_to_ns(ms).saturating_add(999_999)),
        stream: req.stream.map(|s| match s {
            LogStream::Stdout => Stream::Stdout,
            LogStream::Stderr => Stream::Stderr,
        }),
    };
    let mut running = is_running(state);
    loop {
        let p = path.clone();
        let piece: Piece = blocking(move || logfile::read(&p, &want))
            .await?
            .map_err(|err| ContainerError::state(format!("reading {path:?}"), err))?;
        let waiting = req.wait_ms.is_some() && piece.entries.is_empty() && running;
        if !waiting || Instant::now() >= deadline {
            return Ok(chunk(piece, running, req.entries));
        }
        // Lines the filters dropped are behind us: go on after them.
        want.offset = Some(piece.offset);
        want.tail = None;
        tokio::time::sleep(POLL).await;
        let state = e
            .host
            .read(move |s| s.get(&Selector::Id(id)).map(|i| i.state))
            .await??;
        running = is_running(state);
    }
}

/// The answer: the lines as text, or as entries.
fn chunk(piece: Piece, running: bool, entries: bool) -> LogChunk {
    if entries {
        let entries = piece
            .entries
            .into_iter()
            .map(|e| LogEntry {
                time_ns: e.time_ns,
                stream: e.stream.map(|s| match s {
                    Stream::Stdout => LogStream::Stdout,
                    Stream::Stderr => LogStream::Stderr,
                }),
                line: e.line,
            })
            .collect();
        return LogChunk {
            data: String::new(),
            offset: piece.offset,
            running,
            entries,
        };
    }
    let mut data = String::new();
    for e in piece.entries {
        data.push_str(&e.line);
        data.push('\n');
    }
    LogChunk {
        data,
        offset: piece.offset,
        running,
        entries: Vec::new(),
    }
}

fn is_running(s: ContainerState) -> bool {
    matches!(
        s,
        ContainerState::Created | ContainerState::Running | ContainerState::Stopping
    )
}
