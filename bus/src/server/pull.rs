//! A puller: one dedicated Redis connection that takes requests off the queues in batches
//! and starts each on a free worker slot.
//!
//! A pull asks for as many requests as there are free slots, so a pulled request always
//! starts at once (its deadline is checked then) and the worker limit holds; what the
//! workers cannot take stays queued in Redis. Each pulled batch runs on one task
//! (`batch.rs`). How it pulls depends on the server:
//! - `BLMPOP <t> <n> <keys…> LEFT COUNT <free>` (Redis ≥ 7.0): up to `free` requests from
//!   the first non-empty queue, in one command;
//! - else `BLPOP <keys…> <t>`, then `LPOP <key> <free - 1>` on the queue it popped from
//!   (Redis ≥ 6.2), while the first request already runs;
//! - else `BLPOP` alone, one request per round trip.
//!
//! A server that refuses `BLMPOP` or `LPOP … COUNT` (an older Redis, or an ACL written
//! before batching) moves this server to the next way for good, once, with a warning.
//! The key order rotates on every pull, so a flooded queue gives up at most one batch
//! before the next queue's turn.

use super::batch::{self, Call, SlotBack};
use super::reply::Replies;
use super::worker::{Caller, Role, Shared, LARGE_PAYLOAD};
use crate::conn::{self, Backoff};
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Seconds a blocking pull waits before the loop comes round again.
const PULL_TIMEOUT_SECS: u64 = 5;
/// Grace beyond the pull timeout before a silent connection is given up.
const HUNG_AFTER: Duration = Duration::from_secs(5);
/// How often a stopping puller re-sends `CLIENT UNBLOCK` for its own blocked pull.
const UNBLOCK_EVERY: Duration = Duration::from_millis(50);

/// How this server pulls batches (see the module docs); shared by its pullers.
#[derive(Debug, Default)]
pub(super) struct PullMode(AtomicU8);

/// The ways of pulling, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// `BLMPOP … COUNT n`.
    Multi,
    /// `BLPOP`, then `LPOP key n`.
    PopCount,
    /// `BLPOP` only.
    Single,
}

impl PullMode {
    fn get(&self) -> Way {
        match self.0.load(Ordering::Acquire) {
            0 => Way::Multi,
            1 => Way::PopCount,
            _ => Way::Single,
        }
    }

    /// Moves from `from` to the next way, once (a second puller seeing the same refusal
    /// does not log it again).
    fn downgrade(&self, from: Way, why: &dyn std::fmt::Display) {
        let (cur, next, what) = match from {
            Way::Multi => (0, 1, "BLMPOP (redis < 7.0 or an ACL without +blmpop); pulling with BLPOP + LPOP COUNT"),
            Way::PopCount => (1, 2, "LPOP with a count (redis < 6.2 or an ACL without +lpop); pulling one request at a time"),
            Way::Single => return,
        };
        if self
            .0
            .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(error = %why, "redis refused {what}");
        }
    }
}

/// Which queues a puller serves.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pulls {
    /// The object queues, for the server's workers.
    Objects,
    /// The reserved `zbus@1.0` queues, on their own puller and slot so that status answers
    /// while every worker is busy.
    Status,
}

/// A popped request: the queue it came from and its payload.
type Popped = (Vec<u8>, Vec<u8>);

/// The puller loop. Returns once `stop` is cancelled and every request it started has
/// handed its reply to `replies`.
pub(super) async fn run(
    shared: Arc<Shared>,
    pulls: Pulls,
    replies: Replies,
    stop: CancellationToken,
) {
    let (name, mut keys, slots) = match pulls {
        Pulls::Objects => {
            let slots = shared.slots.len();
            ("workers", shared.queues.clone(), slots)
        }
        Pulls::Status => (
            "status",
            vec![
                shared.status_queue.clone(),
                shared.status_read_only_queue.clone(),
            ],
            1,
        ),
    };
    if keys.is_empty() {
        // Nothing registered: nothing to pull.
        stop.cancelled().await;
        return;
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<usize>();
    let mut idle: Vec<usize> = (0..slots).rev().collect();
    let mut running = JoinSet::new();
    let mut backoff = Backoff::new(Duration::from_secs(2));
    let mut conn: Option<(MultiplexedConnection, i64)> = None;
    loop {
        while let Ok(slot) = done_rx.try_recv() {
            idle.push(slot);
        }
        while let Some(res) = running.try_join_next() {
            if let Err(e) = res {
                tracing::error!(error = %e, "{name}: a batch task ended abnormally");
            }
        }
        if stop.is_cancelled() {
            break;
        }
        if idle.is_empty() {
            tokio::select! {
                slot = done_rx.recv() => idle.extend(slot),
                _ = stop.cancelled() => {}
            }
            continue;
        }
        let Some((c, client_id)) = conn.as_mut() else {
            match open(&shared).await {
                Ok(c) => {
                    shared.outage.recovered(name);
                    backoff.reset();
                    conn = Some(c);
                }
                Err(e) => {
                    shared.outage.failed(name, &e);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.step()) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
            continue;
        };
        let way = shared.pull_mode.get();
        let free = idle.len();
        let pulled = pull(c, *client_id, &keys, free, way, &shared, &stop).await;
        keys.rotate_left(1);
        // At most `free` requests come back, so a slot is always there.
        let mut take = |items: Vec<Popped>, idle: &mut Vec<usize>| {
            let calls: Vec<Call> = items
                .into_iter()
                .zip(std::iter::from_fn(|| idle.pop()))
                .map(|((key, payload), slot)| Call {
                    role: match pulls {
                        Pulls::Objects => Role::Worker(slot),
                        Pulls::Status => Role::Status,
                    },
                    from: Caller::of_key(&key),
                    payload,
                    slot: SlotBack {
                        slot,
                        done: done_tx.clone(),
                    },
                })
                .collect();
            if !calls.is_empty() {
                running.spawn(batch::run(shared.clone(), replies.clone(), calls));
            }
        };
        match pulled {
            Ok(items) => {
                let large = items.iter().any(|(_, p)| p.len() >= LARGE_PAYLOAD);
                let key = items.first().map(|(k, _)| k.clone());
                let single = items.len() == 1;
                take(items, &mut idle);
                if let (Way::PopCount, true, Some(key)) = (way, single && !idle.is_empty(), key) {
                    match pop_more(c, &key, idle.len()).await {
                        Ok(more) => {
                            let more = more.into_iter().map(|p| (key.clone(), p)).collect();
                            take(more, &mut idle);
                        }
                        Err(PullError::Redis(e)) if conn::is_unsupported(&e) => {
                            shared.pull_mode.downgrade(Way::PopCount, &e);
                        }
                        Err(e) => {
                            shared.outage.failed(name, &e);
                            conn = None;
                            continue;
                        }
                    }
                }
                if large {
                    // Pull on a fresh connection, whose buffers are small.
                    conn = None;
                }
            }
            Err(PullError::Redis(e))
                if conn::is_unsupported(&e) && way == Way::Multi && free > 1 =>
            {
                shared.pull_mode.downgrade(Way::Multi, &e);
            }
            Err(e) if e.is_fatal() => {
                shared.outage.failed(name, &e);
                conn = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "{name}: redis refused a command");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.step()) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
    }
    // Stopping: the requests already taken finish and hand over their replies.
    while let Some(res) = running.join_next().await {
        if let Err(e) = res {
            tracing::error!(error = %e, "{name}: a batch task ended abnormally");
        }
    }
}

/// One blocking pull of at most `free` requests. Ends early with whatever Redis popped
/// when `stop` is cancelled (the blocked pull is ended with `CLIENT UNBLOCK`).
async fn pull(
    c: &mut MultiplexedConnection,
    client_id: i64,
    keys: &[String],
    free: usize,
    way: Way,
    shared: &Shared,
    stop: &CancellationToken,
) -> Result<Vec<Popped>, PullError> {
    let multi = way == Way::Multi && free > 1;
    let cmd = if multi {
        let mut cmd = redis::cmd("BLMPOP");
        cmd.arg(PULL_TIMEOUT_SECS)
            .arg(keys.len())
            .arg(keys)
            .arg("LEFT")
            .arg("COUNT")
            .arg(free);
        cmd
    } else {
        let mut cmd = redis::cmd("BLPOP");
        cmd.arg(keys).arg(PULL_TIMEOUT_SECS);
        cmd
    };
    let fut = cmd.query_async::<Value>(c);
    tokio::pin!(fut);
    // Redis answers a blocking pull within its timeout; silence past that means a dead
    // connection (e.g. a TCP peer that vanished), so give up on it.
    let hung = tokio::time::sleep(Duration::from_secs(PULL_TIMEOUT_SECS) + HUNG_AFTER);
    tokio::pin!(hung);
    let mut unblocking = false;
    let v = loop {
        tokio::select! {
            r = &mut fut => break r.map_err(PullError::Redis)?,
            _ = &mut hung => return Err(PullError::Hung),
            _ = stop.cancelled(), if !unblocking => unblocking = true,
            _ = tokio::time::sleep(UNBLOCK_EVERY), if unblocking => {
                shared.unblock(client_id).await;
            }
        }
    };
    Ok(if multi {
        multi_popped(v)
    } else {
        conn::popped_from(v).into_iter().collect()
    })
}

/// `LPOP <key> <n>`: more requests from the queue a `BLPOP` just popped, without blocking.
async fn pop_more(
    c: &mut MultiplexedConnection,
    key: &[u8],
    n: usize,
) -> Result<Vec<Vec<u8>>, PullError> {
    let mut cmd = redis::cmd("LPOP");
    cmd.arg(key).arg(n);
    match tokio::time::timeout(HUNG_AFTER, cmd.query_async::<Value>(c)).await {
        Err(_) => Err(PullError::Hung),
        Ok(Err(e)) => Err(PullError::Redis(e)),
        Ok(Ok(v)) => Ok(bulk_items(v)),
    }
}

/// A `BLMPOP` result, `[key, [payload…]]` or nil, as (key, payload) pairs.
fn multi_popped(v: Value) -> Vec<Popped> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let mut it = items.into_iter();
    match (it.next(), it.next()) {
        (Some(Value::BulkString(key)), Some(values)) => bulk_items(values)
            .into_iter()
            .map(|p| (key.clone(), p))
            .collect(),
        _ => Vec::new(),
    }
}

/// The strings of an array reply (nil: none).
fn bulk_items(v: Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Why a pull failed.
#[derive(Debug)]
enum PullError {
    Redis(redis::RedisError),
    Hung,
}

impl PullError {
    fn is_fatal(&self) -> bool {
        match self {
            PullError::Redis(e) => conn::is_fatal(e),
            PullError::Hung => true,
        }
    }
}

impl std::fmt::Display for PullError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PullError::Redis(e) => e.fmt(f),
            PullError::Hung => f.write_str("no reply from redis within the pull timeout"),
        }
    }
}

/// A dedicated connection and its Redis client id (for `CLIENT UNBLOCK` at shutdown).
async fn open(shared: &Shared) -> redis::RedisResult<(MultiplexedConnection, i64)> {
    let mut c = conn::connect(&shared.client, shared.connect_timeout).await?;
    let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut c).await?;
    Ok((c, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn blmpop_results_become_key_payload_pairs() {
        let v = Value::Array(vec![bulk("q"), Value::Array(vec![bulk("a"), bulk("b")])]);
        let got = multi_popped(v);
        assert_eq!(
            got,
            vec![
                (b"q".to_vec(), b"a".to_vec()),
                (b"q".to_vec(), b"b".to_vec())
            ]
        );
        assert!(multi_popped(Value::Nil).is_empty());
        assert_eq!(bulk_items(Value::Nil), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn the_pull_mode_only_moves_down() {
        let m = PullMode::default();
        assert_eq!(m.get(), Way::Multi);
        m.downgrade(Way::Multi, &"x");
        m.downgrade(Way::Multi, &"again");
        assert_eq!(m.get(), Way::PopCount);
        m.downgrade(Way::PopCount, &"x");
        assert_eq!(m.get(), Way::Single);
        m.downgrade(Way::Single, &"x");
        assert_eq!(m.get(), Way::Single);
    }
}
