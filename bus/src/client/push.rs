//! Coalesced pushes of the shared-reply-list mode: the requests of concurrent callers go
//! out as one `RPUSH <queue> <request>…` per queue instead of one `RPUSH` each.
//!
//! Why: Redis serves a blocked `BLMPOP` right after the command that made its list
//! non-empty, so `k` separate `RPUSH`es, even pipelined in one write, wake a batching server
//! `k` times with one request each. One `RPUSH` of `k` values wakes it once with all `k`,
//! and costs Redis one command instead of `k`.
//!
//! How: a caller that finds no push in flight takes the turn and yields once; callers
//! woken with it (the reader hands out a pop's replies at once) then queue behind it, and
//! it joins them, first ([`DirectGuard::join_queued`]), so that all go out together. With
//! nobody queued it pushes its own request, as a lone caller always does, so one caller
//! pays one scheduler turn and no extra hop. Callers that arrive while a push is in flight
//! queue their requests; when the push ends (or its caller's future is dropped), a drain
//! task sends everything queued in one pipeline, grouped by queue in arrival order, and
//! repeats until nothing is queued. Each queued caller learns its own outcome:
//! pushed, refused by Redis for its queue (`NOPERM`, `WRONGTYPE`: per command, never
//! affecting the other queues), the connection failed, or Redis stayed silent.

use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::oneshot;

/// Most requests sent in one drain pipeline.
const MAX_BATCH: usize = 256;

/// How a queued push ended.
#[derive(Debug)]
pub(super) enum Pushed {
    /// In its queue.
    Done,
    /// Redis refused it, or the connection failed.
    Failed(RedisError),
    /// Redis did not answer before the latest deadline of the batch.
    Silent,
}

/// A caller's turn: push now, or wait for the drain task.
pub(super) enum Turn {
    /// No push was in flight: push directly; dropping the guard hands over to the drain.
    Direct(DirectGuard),
    /// Queued behind a push in flight.
    Queued(oneshot::Receiver<Pushed>),
}

struct Job {
    queue: String,
    payload: Vec<u8>,
    /// When the caller gives up waiting for the push.
    until: Instant,
    done: oneshot::Sender<Pushed>,
}

impl Job {
    /// A queued push and the receiver of its outcome.
    fn new(queue: &str, payload: &[u8], until: Instant) -> (Self, oneshot::Receiver<Pushed>) {
        let (done, rx) = oneshot::channel();
        let job = Self {
            queue: queue.to_string(),
            payload: payload.to_vec(),
            until,
            done,
        };
        (job, rx)
    }
}

#[derive(Default)]
struct State {
    /// A direct push or a drain task is in flight.
    busy: bool,
    queued: Vec<Job>,
    /// The connection the latest caller pushes on (the pool's current generation).
    conn: Option<MultiplexedConnection>,
}

/// The push coalescer of one client.
#[derive(Default)]
pub(super) struct Pushes {
    state: Mutex<State>,
    /// Where drain tasks run (the client's runtime).
    home: Option<tokio::runtime::Handle>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pushes {
    pub(super) fn new(home: tokio::runtime::Handle) -> Self {
        Self {
            state: Mutex::default(),
            home: Some(home),
        }
    }

    /// Takes a turn to push `payload` to `queue` on `conn`, giving up at `until`.
    pub(super) fn turn(
        self: &Arc<Self>,
        conn: &MultiplexedConnection,
        queue: &str,
        payload: &[u8],
        until: Instant,
    ) -> Turn {
        let mut s = lock(&self.state);
        s.conn = Some(conn.clone());
        if !s.busy {
            s.busy = true;
            return Turn::Direct(DirectGuard(self.clone()));
        }
        let (job, rx) = Job::new(queue, payload, until);
        s.queued.push(job);
        Turn::Queued(rx)
    }

    /// The push in flight ended: start the drain when requests are queued, else idle.
    fn hand_over(self: &Arc<Self>) {
        let mut s = lock(&self.state);
        if s.queued.is_empty() {
            s.busy = false;
            return;
        }
        drop(s);
        match &self.home {
            Some(home) => {
                // The end guard exists before the task: a task dropped unpolled (its
                // runtime shutting down) still fails what is queued and idles.
                let end = DrainEnd(self.clone(), false);
                home.spawn(drain(end));
            }
            None => self.abandon(),
        }
    }

    /// Fails every queued push (their senders are dropped) and goes idle.
    fn abandon(&self) {
        let mut s = lock(&self.state);
        s.queued.clear();
        s.busy = false;
    }

    /// The next batch and the connection to send it on, or `None` (and idle) when
    /// nothing is queued.
    fn next_batch(&self) -> Option<(Vec<Job>, MultiplexedConnection)> {
        let mut s = lock(&self.state);
        let conn = match (&s.conn, s.queued.is_empty()) {
            (Some(c), false) => c.clone(),
            _ => {
                s.queued.clear();
                s.busy = false;
                return None;
            }
        };
        let take = s.queued.len().min(MAX_BATCH);
        let rest = s.queued.split_off(take);
        let batch = std::mem::replace(&mut s.queued, rest);
        Some((batch, conn))
    }
}

/// Held by the caller pushing directly; its drop (push done, or the caller's future
/// dropped) hands over to the drain.
pub(super) struct DirectGuard(Arc<Pushes>);

impl DirectGuard {
    /// When callers queued behind this one since it took its turn, queues this request
    /// first and hands over to the drain, so that all go out in one `RPUSH` per queue;
    /// the receiver learns this one's outcome. Else the turn stays direct.
    pub(super) fn join_queued(
        self,
        queue: &str,
        payload: &[u8],
        until: Instant,
    ) -> Result<oneshot::Receiver<Pushed>, Self> {
        let mut s = lock(&self.0.state);
        if s.queued.is_empty() {
            drop(s);
            return Err(self);
        }
        let (job, rx) = Job::new(queue, payload, until);
        s.queued.insert(0, job);
        drop(s);
        drop(self);
        Ok(rx)
    }
}

impl Drop for DirectGuard {
    fn drop(&mut self) {
        self.0.hand_over();
    }
}

/// Ends a drain task however it ends (a panic included): queued pushes fail, idle again.
struct DrainEnd(Arc<Pushes>, bool);

impl Drop for DrainEnd {
    fn drop(&mut self) {
        if !self.1 {
            self.0.abandon();
        }
    }
}

/// Sends the queued pushes, a batch per pipeline, until none is queued.
async fn drain(mut end: DrainEnd) {
    while let Some((batch, mut conn)) = end.0.next_batch() {
        send(&mut conn, batch).await;
    }
    end.1 = true;
}

/// One pipeline: an `RPUSH` per queue with its requests in arrival order.
async fn send(conn: &mut MultiplexedConnection, batch: Vec<Job>) {
    let groups = by_queue(&batch);
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (queue, jobs) in &groups {
        let payloads: Vec<&[u8]> = jobs.iter().map(|&i| batch[i].payload.as_slice()).collect();
        pipe.cmd("RPUSH").arg(*queue).arg(payloads);
    }
    let until = batch
        .iter()
        .map(|j| j.until)
        .max()
        .unwrap_or_else(Instant::now);
    let answer = tokio::time::timeout_at(until.into(), pipe.query_async::<Value>(conn)).await;
    let mut outcomes: Vec<Option<Pushed>> = Vec::with_capacity(batch.len());
    outcomes.resize_with(batch.len(), || None);
    match answer {
        Ok(Ok(Value::Array(results))) => {
            for ((_, jobs), r) in groups.iter().zip(results) {
                for &i in jobs {
                    outcomes[i] = Some(match &r {
                        Value::ServerError(e) => Pushed::Failed(RedisError::from(e.clone())),
                        _ => Pushed::Done,
                    });
                }
            }
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            for o in outcomes.iter_mut() {
                *o = Some(Pushed::Failed(e.clone()));
            }
        }
        Err(_) => {
            for o in outcomes.iter_mut() {
                *o = Some(Pushed::Silent);
            }
        }
    }
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        let _ = job.done.send(outcome.unwrap_or(Pushed::Done));
    }
}

/// The indexes of the batch's jobs grouped by queue, queues in order of first arrival.
fn by_queue(batch: &[Job]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, j) in batch.iter().enumerate() {
        let g = *index.entry(j.queue.as_str()).or_insert_with(|| {
            groups.push((j.queue.as_str(), Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(queue: &str) -> Job {
        Job {
            queue: queue.into(),
            payload: Vec::new(),
            until: Instant::now(),
            done: oneshot::channel().0,
        }
    }

    #[test]
    fn jobs_are_grouped_by_queue_in_arrival_order() {
        let batch = vec![job("a"), job("b"), job("a"), job("c"), job("b")];
        assert_eq!(
            by_queue(&batch),
            vec![("a", vec![0, 2]), ("b", vec![1, 4]), ("c", vec![3])]
        );
    }

    #[test]
    fn with_no_push_in_flight_a_caller_goes_direct_and_idles_after() {
        let p = Arc::new(Pushes::default());
        let s = lock(&p.state);
        assert!(!s.busy);
        drop(s);
        // No connection is needed to take and end a turn when nothing is queued.
        let guard = DirectGuard({
            lock(&p.state).busy = true;
            p.clone()
        });
        drop(guard);
        assert!(!lock(&p.state).busy);
    }

    #[test]
    fn an_ended_drain_fails_what_is_queued_and_idles() {
        let p = Arc::new(Pushes::default());
        let (done, mut rx) = oneshot::channel();
        {
            let mut s = lock(&p.state);
            s.busy = true;
            s.queued.push(Job {
                queue: "q".into(),
                payload: Vec::new(),
                until: Instant::now(),
                done,
            });
        }
        // Without a runtime to drain on, the hand-over abandons the queued push.
        drop(DirectGuard(p.clone()));
        assert!(rx.try_recv().is_err());
        assert!(!lock(&p.state).busy);
    }
}
