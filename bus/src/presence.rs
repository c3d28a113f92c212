//! Module presence: whether any server serves a module right now, so that a call to a
//! module nobody serves fails in about a second instead of waiting out its deadline.
//!
//! Every [`crate::Server`] keeps `imagebus:presence:<module>` alive (refreshed every
//! [`REFRESH`], expiring after [`TTL`]) and sets `imagebus:served:<module>` once, without
//! expiry (this Redis has seen an imagebus server of the module). Both are keys of their
//! own, beside the zbus queues: requests and replies are unchanged, and Go servers, which
//! never write them, are not affected.
//!
//! A client with [`crate::Client::with_fail_fast`] that got no reply within [`GRACE`]
//! looks at the keys: when the presence key is absent and the module is either one the
//! caller knows imagebus serves or one with the served marker, it takes its request back
//! out of the queue and fails with `Unavailable` "no imagebusd serves module X"
//! ([`is_not_served`]). Otherwise it keeps waiting for the deadline, as before.

use crate::error::RemoteError;
use redis::aio::MultiplexedConnection;
use std::time::Duration;

/// How long a call waits for its reply before the client looks at the presence key.
pub const GRACE: Duration = Duration::from_secs(1);

/// How often a server refreshes its presence key.
pub const REFRESH: Duration = Duration::from_secs(1);

/// How long a presence key outlives its last refresh.
pub const TTL: Duration = Duration::from_secs(3);

/// The presence key of `module` (expires [`TTL`] after the last refresh).
pub fn presence_key(module: &str) -> String {
    format!("imagebus:presence:{module}")
}

/// The marker saying an imagebus server served `module` on this Redis (never expires).
pub fn served_key(module: &str) -> String {
    format!("imagebus:served:{module}")
}

/// The start of the message of a fail-fast error.
const NOT_SERVED: &str = "no imagebusd serves module ";

/// The start of the message of a timeout no server took the request of.
pub(crate) const NOT_TAKEN: &str = "no server took the request from ";

/// The error of a call to `module` that no server serves.
pub fn not_served(module: &str) -> RemoteError {
    RemoteError::unavailable(format!(
        "{NOT_SERVED}{} (no server has announced it for {}s; is imagebusd running?)",
        crate::echo(module),
        TTL.as_secs()
    ))
}

/// Whether `e` says that no server serves the module: a fail-fast error, or a timeout
/// whose request no server had taken. (Errors a module returns never start so: modules
/// prefix errors of their own calls with the peer's name.)
pub fn is_not_served(e: &RemoteError) -> bool {
    e.message.starts_with(NOT_SERVED) || e.message.starts_with(NOT_TAKEN)
}

/// Whether `e` is this client's own failure to reach Redis (not an error a module sent).
pub fn is_broker_failure(e: &RemoteError) -> bool {
    e.message.starts_with(crate::client::BROKER_PREFIX)
        || e.message.starts_with(crate::client::CONNECT_PREFIX)
}

/// Refreshes `module`'s presence; called by the server every [`REFRESH`].
pub(crate) async fn announce(
    conn: &mut MultiplexedConnection,
    module: &str,
) -> redis::RedisResult<()> {
    let ttl_ms = u64::try_from(TTL.as_millis()).unwrap_or(u64::MAX);
    redis::pipe()
        .cmd("SET")
        .arg(presence_key(module))
        .arg(std::process::id())
        .arg("PX")
        .arg(ttl_ms)
        .ignore()
        .cmd("SET")
        .arg(served_key(module))
        .arg(1)
        .ignore()
        .query_async::<()>(conn)
        .await
}

/// `Some(true)` when `module` is known absent: no presence key, and `known` or the served
/// marker says an imagebus server should serve it. `None` when unsure.
pub(crate) async fn absent(
    conn: &mut MultiplexedConnection,
    module: &str,
    known: bool,
) -> redis::RedisResult<bool> {
    let (present, served): (bool, bool) = redis::pipe()
        .cmd("EXISTS")
        .arg(presence_key(module))
        .cmd("EXISTS")
        .arg(served_key(module))
        .query_async(conn)
        .await?;
    Ok(!present && (known || served))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_recognised() {
        assert!(is_not_served(&not_served("mount")));
        assert!(not_served("mount").message.contains("module mount"));
        assert!(!is_not_served(&RemoteError::unavailable("mount module: x")));
        assert!(is_not_served(&RemoteError::timeout(format!(
            "{NOT_TAKEN}mount.mount@1 within 1s"
        ))));
    }
}
