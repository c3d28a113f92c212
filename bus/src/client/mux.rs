//! One reply list per client: every request names it as `ReplyTo`, one reader task pops
//! it and hands each reply to its caller by `ID`, and requests go out on one shared
//! connection, those of concurrent callers coalesced (`push.rs`).
//!
//! The reader sleeps while no call waits (after one more pop once replies came, so that
//! back-to-back calls find it waiting in Redis). While calls wait it runs
//! `BLMPOP 1 1 <list> LEFT COUNT 256` (or `BLPOP <list> 1` on a Redis before 7.0 or an
//! ACL without `+blmpop`), so one round trip takes every reply waiting. A reply whose
//! caller gave up (its deadline passed, its future was dropped) is dropped and counted
//! ([`super::Client::stray_replies`]). When the reader loses its connection the calls
//! waiting on it fail at once with `Unavailable`, as a call whose own connection broke
//! does in the per-call mode; the reader reconnects with backoff, and a reader that died
//! is started again by the next call.

use super::{Inner, BROKER_PREFIX, MAX_BACKOFF};
use crate::codec::scan;
use crate::conn::{self, Backoff};
use crate::error::RemoteError;
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::task::AbortHandle;

/// Seconds a reader's pop blocks in Redis before it looks again (and sleeps when no call
/// waits any more).
const READ_WAIT_SECS: u64 = 1;
/// Silence beyond the pop's own timeout after which the reader's connection is given up.
const SILENT_AFTER: Duration = Duration::from_secs(2);
/// Most replies taken in one pop.
const MAX_POP: usize = 256;
/// Longest `ID` read from a reply (ours are a prefix and a UUID).
const MAX_ID: usize = 512;
/// The reader's connection name (`CLIENT LIST`), so an operator can tell it apart.
pub const READER_NAME: &str = "imagebus-replies";

/// The shared reply list of one client and the calls waiting on it.
pub(super) struct Mux {
    /// The list every request names as `ReplyTo`.
    pub(super) list: String,
    waiters: Mutex<HashMap<Arc<str>, oneshot::Sender<Vec<u8>>>>,
    /// A call started waiting (wakes a sleeping reader).
    wake: Notify,
    reader: Mutex<Reader>,
    /// The connection requests are pushed on, and the pool generation it belongs to.
    push: Mutex<Option<(MultiplexedConnection, u64)>>,
    stray: AtomicU64,
    /// Coalesces the pushes of concurrent callers (see `push.rs`).
    pub(super) pushes: Arc<super::push::Pushes>,
}

#[derive(Default)]
struct Reader {
    alive: bool,
    /// Bumped when a reader is replaced, so that the old one's end changes nothing.
    generation: u64,
    task: Option<AbortHandle>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mux {
    pub(super) fn new(list: String, home: tokio::runtime::Handle) -> Self {
        Self {
            pushes: Arc::new(super::push::Pushes::new(home)),
            list,
            waiters: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            reader: Mutex::new(Reader::default()),
            push: Mutex::new(None),
            stray: AtomicU64::new(0),
        }
    }

    /// Replies that arrived for calls that had given up.
    pub(super) fn stray(&self) -> u64 {
        self.stray.load(Ordering::Relaxed)
    }

    /// Registers a call waiting for the reply with this `ID`; dropping the [`Waiter`]
    /// unregisters it.
    pub(super) fn register(self: &Arc<Self>, id: &str) -> Waiter {
        let (tx, rx) = oneshot::channel();
        // One copy of the id, shared by the map's key and the waiter that removes it.
        let id: Arc<str> = Arc::from(id);
        lock(&self.waiters).insert(Arc::clone(&id), tx);
        Waiter {
            mux: self.clone(),
            id,
            rx,
        }
    }

    /// Starts the reader when none runs (first call, or the last one died) and wakes it.
    pub(super) fn ensure_reader(self: &Arc<Self>, inner: &Arc<Inner>) {
        let mut r = lock(&self.reader);
        if !r.alive {
            r.alive = true;
            r.generation += 1;
            let task = inner.home.spawn(read(
                self.clone(),
                r.generation,
                inner.redis.clone(),
                inner.connect_timeout,
                Arc::downgrade(inner),
            ));
            r.task = Some(task.abort_handle());
        }
        drop(r);
        self.wake.notify_one();
    }

    /// Ends the reader (its connection is dead or the client is gone); the next call
    /// starts a new one. Calls waiting meanwhile stay registered for the new reader.
    pub(super) fn stop_reader(&self) {
        let mut r = lock(&self.reader);
        if let Some(task) = r.task.take() {
            task.abort();
        }
        r.alive = false;
        r.generation += 1;
    }

    /// Aborts the reader as if it had died (tests only); returns whether one ran.
    pub(super) fn abort_reader(&self) -> bool {
        let r = lock(&self.reader);
        match &r.task {
            Some(task) if r.alive => {
                task.abort();
                true
            }
            _ => false,
        }
    }

    /// The shared push connection when it is still of pool generation `generation`.
    pub(super) fn push_conn(&self, generation: u64) -> Option<MultiplexedConnection> {
        match &*lock(&self.push) {
            Some((c, g)) if *g == generation => Some(c.clone()),
            _ => None,
        }
    }

    /// Makes `c` the shared push connection, unless another caller set a current one
    /// first; returns the one to use.
    pub(super) fn set_push_conn(
        &self,
        c: MultiplexedConnection,
        generation: u64,
    ) -> MultiplexedConnection {
        let mut slot = lock(&self.push);
        match &*slot {
            Some((current, g)) if *g == generation => current.clone(),
            _ => {
                *slot = Some((c.clone(), generation));
                c
            }
        }
    }

    fn idle(&self) -> bool {
        lock(&self.waiters).is_empty()
    }

    /// Hands a reply to its caller, or counts it as stray.
    fn deliver(&self, reply: Vec<u8>) {
        let waiter = scan::top_level_text(&reply, "ID", MAX_ID)
            .and_then(|id| lock(&self.waiters).remove(id));
        let stray = match waiter {
            Some(tx) => match tx.send(reply) {
                Ok(()) => return,
                Err(reply) => reply,
            },
            None => reply,
        };
        self.stray.fetch_add(1, Ordering::Relaxed);
        let id = scan::top_level_text(&stray, "ID", MAX_ID);
        tracing::debug!(reply_id = ?id, list = %self.list, "a reply for a call that gave up; dropped");
    }

    /// Fails every waiting call with `Unavailable` (their senders are dropped).
    fn fail_all(&self) {
        let failed = std::mem::take(&mut *lock(&self.waiters));
        if !failed.is_empty() {
            tracing::debug!(
                calls = failed.len(),
                "reply reader lost its connection; failing the waiting calls"
            );
        }
    }
}

/// A call waiting for its reply.
pub(super) struct Waiter {
    mux: Arc<Mux>,
    id: Arc<str>,
    pub(super) rx: oneshot::Receiver<Vec<u8>>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        lock(&self.mux.waiters).remove(&*self.id);
    }
}

/// The message of a call whose reply reader failed.
pub(super) fn reader_lost(inner: &Inner) -> RemoteError {
    RemoteError::unavailable(format!(
        "{BROKER_PREFIX}{}: the reply reader lost its connection",
        inner.broker
    ))
}

/// Marks the reader dead and fails the calls waiting on it, however its task ends
/// (returned, panicked or aborted), unless a newer reader replaced it.
struct ReaderEnd {
    mux: Arc<Mux>,
    generation: u64,
}

impl Drop for ReaderEnd {
    fn drop(&mut self) {
        let mut r = lock(&self.mux.reader);
        if r.generation != self.generation {
            return;
        }
        r.alive = false;
        r.task = None;
        // Under the reader lock: a call registering after this sees `alive == false` and
        // starts a new reader; one registered before is failed here.
        self.mux.fail_all();
    }
}

/// The reader task.
async fn read(
    mux: Arc<Mux>,
    generation: u64,
    redis: redis::Client,
    connect_timeout: Duration,
    inner: Weak<Inner>,
) {
    let _end = ReaderEnd {
        mux: mux.clone(),
        generation,
    };
    let outage = |e: &dyn std::fmt::Display| {
        if let Some(i) = inner.upgrade() {
            i.outage.failed("client replies", e);
        }
    };
    let mut backoff = Backoff::new(MAX_BACKOFF);
    let mut conn: Option<MultiplexedConnection> = None;
    let mut multi = true;
    // The last pop brought replies: the next one is sent even if no call waits yet, so
    // that a caller making one call after another finds the pop already waiting in Redis
    // (no wake-up and no extra write before its reply can come). One empty pop (1 s)
    // ends that.
    let mut warm = false;
    loop {
        if mux.idle() && !warm {
            mux.wake.notified().await;
            continue;
        }
        warm = false;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match open(&redis, connect_timeout).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    outage(&e);
                    mux.fail_all();
                    tokio::time::sleep(backoff.step()).await;
                    continue;
                }
            },
        };
        let mut cmd = if multi {
            redis::cmd("BLMPOP")
        } else {
            redis::cmd("BLPOP")
        };
        if multi {
            cmd.arg(READ_WAIT_SECS)
                .arg(1)
                .arg(&mux.list)
                .arg("LEFT")
                .arg("COUNT")
                .arg(MAX_POP);
        } else {
            cmd.arg(&mux.list).arg(READ_WAIT_SECS);
        }
        let popped = tokio::time::timeout(
            Duration::from_secs(READ_WAIT_SECS) + SILENT_AFTER,
            cmd.query_async::<Value>(c),
        )
        .await;
        match popped {
            Ok(Ok(v)) => {
                backoff.reset();
                for reply in replies(v, multi) {
                    warm = true;
                    mux.deliver(reply);
                }
            }
            Ok(Err(e)) if multi && conn::is_unsupported(&e) => {
                tracing::debug!(error = %e, "redis refused BLMPOP; reading replies with BLPOP");
                multi = false;
            }
            Ok(Err(e)) => {
                outage(&e);
                if conn::is_fatal(&e) {
                    conn = None;
                }
                mux.fail_all();
                tokio::time::sleep(backoff.step()).await;
            }
            Err(_) => {
                // Redis always ends a pop by its timeout: the path to it is dead without
                // having been closed. The pool and the push connection share that path.
                tracing::warn!(list = %mux.list, "redis went silent on the reply reader; reconnecting");
                conn = None;
                mux.fail_all();
                if let Some(i) = inner.upgrade() {
                    i.invalidate();
                }
            }
        }
    }
}

/// The reader's connection, named [`READER_NAME`].
async fn open(
    redis: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let mut c = conn::connect(redis, timeout).await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(READER_NAME)
        .query_async::<()>(&mut c)
        .await?;
    Ok(c)
}

/// The payloads of a `BLMPOP` (`[key, [reply…]]`) or `BLPOP` (`[key, reply]`) result.
fn replies(v: Value, multi: bool) -> Vec<Vec<u8>> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let Some(second) = items.into_iter().nth(1) else {
        return Vec::new();
    };
    match (second, multi) {
        (Value::Array(values), true) => values
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect(),
        (Value::BulkString(b), false) => vec![b],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::protocol::{Output, Response};
    use serde_bytes::ByteBuf;

    fn reply(id: &str) -> Vec<u8> {
        codec::encode(&Response {
            id: id.into(),
            output: Output {
                data: ByteBuf::from(vec![0xc0]),
                error: None,
            },
            error: None,
            code: None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn replies_reach_their_callers_and_late_ones_are_counted() {
        let mux = Arc::new(Mux::new("l".into(), tokio::runtime::Handle::current()));
        let mut a = mux.register("a");
        let mut b = mux.register("b");
        mux.deliver(reply("b"));
        mux.deliver(reply("a"));
        assert_eq!((&mut b.rx).await.unwrap(), reply("b"));
        assert_eq!((&mut a.rx).await.unwrap(), reply("a"));
        // A caller that gave up: its waiter is gone, the reply is stray.
        drop(mux.register("c"));
        mux.deliver(reply("c"));
        mux.deliver(b"not msgpack".to_vec());
        assert_eq!(mux.stray(), 2);
        assert!(mux.idle());
    }

    #[tokio::test]
    async fn failing_all_ends_every_wait() {
        let mux = Arc::new(Mux::new("l".into(), tokio::runtime::Handle::current()));
        let mut w = mux.register("a");
        mux.fail_all();
        assert!((&mut w.rx).await.is_err());
    }

    #[test]
    fn pop_results_become_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let m = Value::Array(vec![bulk("l"), Value::Array(vec![bulk("1"), bulk("2")])]);
        assert_eq!(replies(m, true), vec![b"1".to_vec(), b"2".to_vec()]);
        assert_eq!(
            replies(Value::Array(vec![bulk("l"), bulk("1")]), false),
            vec![b"1".to_vec()]
        );
        assert!(replies(Value::Nil, true).is_empty());
    }
}
