//! The replier: one task per server that sends the replies of finished calls, as many as
//! are waiting, in one pipeline on its own connection. The replies of one pulled batch
//! that are ready together arrive in one hand-over (`batch.rs`); after the first
//! hand-over of each pipeline the replier yields once before it gathers the rest, so that
//! replies of calls still finishing leave in the same pipeline instead of one pipeline
//! each (see docs/protocol.md §5 for the figures).
//!
//! Replies to the same list go out in one `RPUSH <list> <reply>…` and one `EXPIRE`, in the
//! order the calls finished; a client with one reply list for all its calls thus costs
//! two commands per batch, not two per call. Errors are per command: a reply Redis
//! refuses (`WRONGTYPE`: the key is not a list) is logged and dropped and never affects
//! the replies to other keys in the same pipeline.

use super::worker::{Pending, Shared, LARGE_PAYLOAD};
use crate::conn::{self, Backoff};
use crate::protocol::RESPONSE_TTL_SECS;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest a reply pipeline may go unanswered before its connection is given up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// A pipeline takes no more hand-overs once it holds this many replies (one hand-over,
/// a batch's ready replies, may bring it past).
const MAX_BATCH: usize = 256;

/// Where the calls hand their replies. The replier ends once every sender is gone and
/// what they sent is out.
#[derive(Clone)]
pub(super) struct Replies(mpsc::UnboundedSender<Vec<Pending>>);

impl Replies {
    /// A sender and the replier task to spawn.
    pub(super) fn start(shared: Arc<Shared>) -> (Self, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), run(shared, rx))
    }

    /// Hands over replies that are ready together (nothing when `replies` is empty).
    pub(super) fn send_all(&self, replies: Vec<Pending>) {
        if replies.is_empty() {
            return;
        }
        if let Err(e) = self.0.send(replies) {
            for p in e.0 {
                tracing::warn!(reply_to = %p.reply_to, "reply lost: the replier has ended");
            }
        }
    }
}

async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Vec<Pending>>) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = Backoff::new(Duration::from_secs(2));
    let mut batch: Vec<Pending> = Vec::new();
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(p) => batch = p,
                None => return,
            }
            // Let calls still finishing (of this pull or others) hand over theirs
            // first, so that they go out in this pipeline rather than one each: one
            // turn of the scheduler, no timer.
            tokio::task::yield_now().await;
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.extend(p),
                Err(_) => break,
            }
        }
        // A connection that died since the last batch (Redis restarted while no reply
        // was due) is found dead only by this batch: it is sent once more on a fresh
        // connection rather than lost. Redis may have run it before the connection
        // broke, so a caller can get its reply twice; ours drop the second (stray).
        let large = batch.iter().any(|p| p.bytes.len() >= LARGE_PAYLOAD);
        for attempt in 1..=2 {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match conn::connect(&shared.client, shared.connect_timeout).await {
                    Ok(c) => {
                        shared.outage.recovered("replier");
                        backoff.reset();
                        conn.insert(c)
                    }
                    Err(e) => {
                        shared.outage.failed("replier", &e);
                        for p in batch.drain(..) {
                            tracing::warn!(reply_to = %p.reply_to, "reply lost: redis unavailable");
                        }
                        tokio::time::sleep(backoff.step()).await;
                        break;
                    }
                },
            };
            match send(c, &batch).await {
                Sent::Done => break,
                Sent::Dead(e) => {
                    shared.outage.failed("replier", &e);
                    conn = None;
                    if attempt == 2 {
                        tracing::warn!(replies = batch.len(), error = %e, "replies may be lost");
                    }
                }
                Sent::Failed(e) => {
                    tracing::warn!(replies = batch.len(), error = %e, "replies may be lost");
                    break;
                }
                Sent::Silent => {
                    tracing::warn!(
                        replies = batch.len(),
                        "redis went silent while taking replies; they may be lost, reconnecting"
                    );
                    conn = None;
                    break;
                }
            }
        }
        if large {
            // Go on with a fresh connection, whose buffers are small.
            conn = None;
        }
        batch.clear();
    }
}

/// How sending one batch ended.
enum Sent {
    /// Redis answered (each refused reply is logged).
    Done,
    /// The connection is dead (Redis restarted or went away): nothing was answered.
    Dead(redis::RedisError),
    /// Redis refused the pipeline as a whole; the connection is fine.
    Failed(redis::RedisError),
    /// No answer within [`REPLY_TIMEOUT`].
    Silent,
}

/// Sends `batch` in one pipeline on `c`: per reply list one `RPUSH` and one `EXPIRE`.
async fn send(c: &mut MultiplexedConnection, batch: &[Pending]) -> Sent {
    let groups = by_list(batch);
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (list, replies) in &groups {
        pipe.cmd("RPUSH").arg(*list).arg(replies.as_slice());
        pipe.cmd("EXPIRE")
            .arg(*list)
            .arg(RESPONSE_TTL_SECS)
            .ignore();
    }
    match tokio::time::timeout(REPLY_TIMEOUT, pipe.query_async::<redis::Value>(c)).await {
        Ok(Ok(redis::Value::Array(results))) => {
            for ((list, _), r) in groups.iter().zip(results) {
                if let redis::Value::ServerError(e) = r {
                    tracing::warn!(reply_to = %list, error = ?e, "redis refused the reply; dropped");
                }
            }
            Sent::Done
        }
        Ok(Ok(_)) => Sent::Done,
        Ok(Err(e)) if conn::is_fatal(&e) => Sent::Dead(e),
        Ok(Err(e)) => Sent::Failed(e),
        Err(_) => Sent::Silent,
    }
}

/// The replies grouped by list, lists in the order of their first reply, each list's
/// replies in order.
fn by_list(batch: &[Pending]) -> Vec<(&str, Vec<&[u8]>)> {
    let mut groups: Vec<(&str, Vec<&[u8]>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for p in batch {
        let i = *index.entry(p.reply_to.as_str()).or_insert_with(|| {
            groups.push((p.reply_to.as_str(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(p.bytes.as_slice());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(to: &str, b: &str) -> Pending {
        Pending {
            reply_to: to.into(),
            bytes: b.as_bytes().to_vec(),
        }
    }

    #[test]
    fn replies_are_grouped_by_list_in_order() {
        let batch = vec![
            p("a", "1"),
            p("b", "2"),
            p("a", "3"),
            p("c", "4"),
            p("b", "5"),
        ];
        let got: Vec<(&str, Vec<&[u8]>)> = by_list(&batch);
        assert_eq!(
            got,
            vec![
                ("a", vec![&b"1"[..], b"3"]),
                ("b", vec![&b"2"[..], b"5"]),
                ("c", vec![&b"4"[..]]),
            ]
        );
    }
}
