//! Redis connection helpers shared by client and server: connecting with a bounded wait,
//! capped exponential backoff, and "log once per outage" bookkeeping.

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use redis::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Opens one connection. Connections are used by a single task at a time (a blocking BLPOP
/// must have its own connection), so the response timeout is off: callers bound waits
/// themselves, and the connect itself is bounded by `timeout`.
pub(crate) async fn connect(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Capped exponential backoff: 25 ms, 50 ms, ... up to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) const MIN: Duration = Duration::from_millis(25);

    pub(crate) fn new(max: Duration) -> Self {
        Self {
            next: Self::MIN,
            max,
        }
    }

    /// The delay to wait now; doubles the following one.
    pub(crate) fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// Remembers whether Redis is currently unreachable, so an outage is logged once when it
/// starts and once when it ends, not on every retry.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    down: AtomicBool,
}

impl Outage {
    pub(crate) fn failed(&self, what: &str, err: &dyn std::fmt::Display) {
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(error = %err, "{what}: redis unavailable; retrying with backoff");
        }
    }

    pub(crate) fn recovered(&self, what: &str) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("{what}: redis reachable again");
        }
    }
}

/// `BLPOP` result: `[key, value]` or nil.
pub(crate) fn popped(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::Array(mut items) if items.len() == 2 => match items.pop() {
            Some(Value::BulkString(b)) => Some(b),
            _ => None,
        },
        _ => None,
    }
}

/// The key and the payload of a `BLPOP` reply.
pub(crate) fn popped_from(v: Value) -> Option<(Vec<u8>, Vec<u8>)> {
    match v {
        Value::Array(items) if items.len() == 2 => {
            let mut it = items.into_iter();
            match (it.next(), it.next()) {
                (Some(Value::BulkString(k)), Some(Value::BulkString(b))) => Some((k, b)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The single non-ignored reply of a pipeline.
pub(crate) fn last(v: Value) -> Value {
    match v {
        Value::Array(mut items) => items.pop().unwrap_or(Value::Nil),
        other => other,
    }
}

/// Redis refused the command for the ACL user (`NOPERM`: a key, channel or command the
/// user may not touch), directly or inside a pipeline.
pub(crate) fn is_no_perm(e: &redis::RedisError) -> bool {
    let text = e.to_string();
    text.contains("NOPERM") || text.contains("NoPerm")
}

/// Redis refused the command itself rather than its keys: it does not know it (an older
/// Redis), not in this form (`LPOP key count` before 6.2), or the ACL user may not run it.
pub(crate) fn is_unsupported(e: &redis::RedisError) -> bool {
    let text = e.to_string();
    is_no_perm(e)
        || text.contains("unknown command")
        || text.contains("wrong number of arguments")
        || text.contains("syntax error")
}

/// The connection may have died (Redis restarted or went away) rather than refused a
/// command, so it must not be reused.
pub(crate) fn is_fatal(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}
