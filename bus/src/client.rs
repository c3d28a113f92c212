//! Calling objects: requests with deadlines, module status, event subscriptions.
//!
//! By default a client has **one reply list** (`<prefix><uuid>`): every request names it
//! as `ReplyTo` and carries its own `ID`; one reader task pops the list and hands each
//! reply to its caller by `ID`, and the requests of concurrent callers go out together, one
//! `RPUSH` per queue, on one shared connection (see `client/mux.rs` and `client/push.rs`).
//! Go zbus servers, like ours, reply to
//! `ReplyTo` as it is.
//!
//! With [`ClientBuilder::per_call_replies`] every call instead pipelines
//! `RPUSH <module>.<object> <request>` and `BLPOP <id> <remaining>` in one round trip on a
//! connection of its own, taken from a pool of idle connections that grows on demand (a
//! blocked connection serves nothing else, so a blocking wait never shares one), with
//! `ReplyTo` equal to `ID`: needed for rbus servers, which reply to `ID`.
//!
//! Every call has a deadline (default 30 s, see [`Client::with_timeout`]); it travels in the
//! request's `Deadline` key so that our servers skip calls whose caller gave up, and a request
//! still queued at the deadline is taken back out (`LREM`), so that no server, Go's neither,
//! runs it late; the `Timeout` error says whether a server had taken it. When Redis
//! is down calls fail at once with `Unavailable`; the pool reconnects by itself, with
//! backoff, and later calls succeed.

mod fail_fast;
mod mux;
mod push;
pub use mux::READER_NAME;
#[doc(hidden)]
pub mod reply;
mod subscription;

pub use subscription::Subscription;

use crate::broker::Broker;
use crate::codec;
use crate::conn::{self, Backoff, Outage};
use crate::error::RemoteError;
use crate::protocol::{unix_ms, ObjectId, RequestRef, Response, Status, STATUS_OBJECT};
use redis::aio::MultiplexedConnection;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Default deadline of a call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long taking a timed-out request back out of its queue may take.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(1);

/// How the messages of this client's own Redis failures start (see
/// [`crate::presence::is_broker_failure`]).
pub(crate) const BROKER_PREFIX: &str = "redis at ";
/// How the message of a connect that timed out starts.
pub(crate) const CONNECT_PREFIX: &str = "connecting to ";

/// Longest fail-fast window after a failed connect.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Bytes of an encoded request besides its strings and arguments: the map, its keys, the
/// value headers and the deadline.
const REQUEST_FRAME: usize = 96;

/// A new request id: the client's reply prefix and a UUIDv4, built without `format!`.
fn request_id(prefix: &str) -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    let mut id = String::with_capacity(prefix.len() + uuid.len());
    id.push_str(prefix);
    id.push_str(uuid);
    id
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_idle: usize,
    read_only: bool,
    reply_prefix: Option<String>,
    per_call_replies: bool,
}

impl ClientBuilder {
    /// A builder for the broker at `url` (see [`crate::broker`]).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(2),
            max_idle: 64,
            read_only: false,
            reply_prefix: None,
            per_call_replies: false,
        }
    }

    /// One reply list per call (`ReplyTo` = `ID`, a pooled connection blocked in `BLPOP`
    /// for each waiting call), as before batching, instead of the client's one shared
    /// reply list. Costs about twice the Redis commands per call under load and a
    /// connection per waiting call; needed for servers that reply to `ID` rather than to
    /// `ReplyTo` (rbus). See docs/protocol.md, "Reply lists".
    pub fn per_call_replies(mut self, on: bool) -> Self {
        self.per_call_replies = on;
        self
    }

    /// Calls go to the objects' read-only queues (`<queue>:ro`), where only read methods
    /// are served; see [`ObjectId::read_only_queue`].
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// What the name of every reply list (the client's shared list, or with
    /// [`Self::per_call_replies`] each request's `ID` and `ReplyTo`) and every `ID` starts with.
    /// Default: `reply:<user>:` when the broker URL names an ACL user, so that an ACL can
    /// give each user its own replies (`~reply:<user>:*`); otherwise nothing (a bare
    /// UUID, as Go zbus sends).
    pub fn reply_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.reply_prefix = Some(prefix.into());
        self
    }

    /// Deadline of each call (default 30 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Bound on one connection attempt (default 2 s; a call's deadline bounds it too).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Idle connections kept for reuse (default 64).
    pub fn max_idle(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }

    /// Parses the URL and opens a first connection. Errors: `InvalidArgument` for a bad
    /// URL, `Unavailable` when Redis does not answer.
    pub async fn build(self) -> Result<Client, RemoteError> {
        let broker =
            Broker::parse(&self.url).map_err(|e| RemoteError::invalid_argument(e.to_string()))?;
        let redis = redis::Client::open(broker.connection_info().clone())
            .map_err(|e| RemoteError::invalid_argument(format!("broker {broker}: {e}")))?;
        let reply_prefix = match self.reply_prefix {
            Some(p) => p,
            None => broker
                .user()
                .map(|u| format!("{REPLY_PREFIX}{u}:"))
                .unwrap_or_default(),
        };
        let mux = (!self.per_call_replies).then(|| {
            Arc::new(mux::Mux::new(
                format!("{reply_prefix}{}", uuid::Uuid::new_v4()),
                tokio::runtime::Handle::current(),
            ))
        });
        let inner = Arc::new(Inner {
            mux,
            broker,
            redis,
            home: tokio::runtime::Handle::current(),
            connect_timeout: self.connect_timeout,
            max_idle: self.max_idle,
            pool: Mutex::new(Pool::default()),
            outage: Outage::default(),
        });
        let deadline = Instant::now() + self.connect_timeout;
        let mut conn = inner.checkout(deadline).await?;
        // One PING at connect (never per call) so bad credentials fail here, clearly.
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn.conn).await;
        if let Err(e) = pong {
            return Err(RemoteError::unavailable(format!(
                "{BROKER_PREFIX}{}: {e}",
                inner.broker
            )));
        }
        inner.checkin(conn);
        Ok(Client {
            inner,
            timeout: self.timeout,
            fail_fast: None,
            read_only: self.read_only,
            reply_prefix: reply_prefix.into(),
        })
    }
}

/// A connection to the bus. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    timeout: Duration,
    /// Modules known to be served by imagebus servers; `Some` turns on the presence check
    /// (see [`crate::presence`]).
    fail_fast: Option<Arc<[String]>>,
    /// Calls go to the read-only queues.
    read_only: bool,
    /// What reply list names start with.
    reply_prefix: Arc<str>,
}

/// What reply lists of a client logged in as an ACL user start with: `reply:<user>:`.
pub const REPLY_PREFIX: &str = "reply:";

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.inner.broker)
            .field("timeout", &self.timeout)
            .finish()
    }
}

struct Inner {
    /// The shared reply list; `None` with [`ClientBuilder::per_call_replies`].
    mux: Option<Arc<mux::Mux>>,
    broker: Broker,
    redis: redis::Client,
    /// The runtime the client was built on. Connections are opened there, so that their
    /// driver tasks live as long as the client and not as long as whichever runtime a
    /// caller happens to run on (an actor thread's runtime may end while the pooled
    /// connection is still in use by others).
    home: tokio::runtime::Handle,
    connect_timeout: Duration,
    max_idle: usize,
    pool: Mutex<Pool>,
    outage: Outage,
}

#[derive(Default)]
struct Pool {
    idle: Vec<(MultiplexedConnection, u64)>,
    /// Bumped when a connection dies; older idle connections are then discarded.
    generation: u64,
    /// After a failed connect, calls fail fast until then (capped exponential backoff).
    retry_at: Option<Instant>,
    backoff: Option<Backoff>,
}

/// A checked-out connection; dropping it (e.g. when the caller's future is dropped while
/// waiting) closes it, which also ends its BLPOP inside Redis.
struct Conn {
    conn: MultiplexedConnection,
    generation: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(mux) = &self.mux {
            mux.stop_reader();
        }
    }
}

impl Inner {
    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn checkout(&self, deadline: Instant) -> Result<Conn, RemoteError> {
        let generation = {
            let mut pool = self.pool();
            if let Some((conn, generation)) = pool.idle.pop() {
                return Ok(Conn { conn, generation });
            }
            if pool.retry_at.is_some_and(|t| Instant::now() < t) {
                return Err(RemoteError::unavailable(format!(
                    "{BROKER_PREFIX}{} is unavailable; reconnecting",
                    self.broker
                )));
            }
            pool.generation
        };
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(self.connect_timeout);
        let redis = self.redis.clone();
        let opened = self
            .home
            .spawn(async move { conn::connect(&redis, budget.max(Duration::from_millis(1))).await })
            .await
            .unwrap_or_else(|e| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "connect task did not finish",
                    e.to_string(),
                )))
            });
        match opened {
            Ok(conn) => {
                self.outage.recovered("client");
                let mut pool = self.pool();
                pool.retry_at = None;
                pool.backoff = None;
                Ok(Conn { conn, generation })
            }
            Err(e) => {
                self.outage.failed("client", &e);
                let mut pool = self.pool();
                let step = pool
                    .backoff
                    .get_or_insert_with(|| Backoff::new(MAX_BACKOFF))
                    .step();
                pool.retry_at = Some(Instant::now() + step);
                drop(pool);
                if e.is_timeout() {
                    Err(RemoteError::timeout(format!(
                        "{CONNECT_PREFIX}{}: {e}",
                        self.broker
                    )))
                } else {
                    Err(RemoteError::unavailable(format!(
                        "{BROKER_PREFIX}{}: {e}",
                        self.broker
                    )))
                }
            }
        }
    }

    fn checkin(&self, c: Conn) {
        let mut pool = self.pool();
        if c.generation == pool.generation && pool.idle.len() < self.max_idle {
            pool.idle.push((c.conn, c.generation));
        }
    }

    /// Drops every idle connection opened before a connection failure.
    fn invalidate(&self) {
        let mut pool = self.pool();
        pool.generation += 1;
        pool.idle.clear();
    }
}

impl Client {
    /// Connects with the defaults (30 s call timeout); see [`ClientBuilder`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, RemoteError> {
        ClientBuilder::new(url).build().await
    }

    /// A builder, for non-default timeouts.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// This client with another per-call deadline (shares the connections).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// This client failing fast on modules nobody serves: a call with no reply after
    /// [`crate::presence::GRACE`] to a module without a presence key — one of `known`, or
    /// one an imagebus server has served on this Redis — is taken back and fails with
    /// `Unavailable` ([`crate::presence::is_not_served`]). Modules served only by Go
    /// servers (no presence key, not in `known`) wait for the deadline as before.
    pub fn with_fail_fast(&self, known: &[&str]) -> Self {
        Self {
            fail_fast: Some(known.iter().map(|m| m.to_string()).collect()),
            ..self.clone()
        }
    }

    /// The per-call deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Calls `method` and decodes its result into `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        module: &str,
        object: &ObjectId,
        method: &str,
        inputs: Vec<ByteBuf>,
    ) -> Result<T, RemoteError> {
        let data = self.call_raw(module, object, method, inputs).await?;
        codec::decode_data(&data)
    }

    /// Calls `method` and returns the msgpack bytes of its result (`c0` when there is none).
    ///
    /// Errors: the method's own error (with its code); `UnknownObject`, `UnknownMethod`,
    /// `Decode`, `Internal` for protocol errors; `Timeout` when no reply came before the
    /// deadline; `Unavailable` when Redis cannot be reached or the connection broke.
    pub async fn call_raw(
        &self,
        module: &str,
        object: &ObjectId,
        method: &str,
        inputs: Vec<ByteBuf>,
    ) -> Result<Vec<u8>, RemoteError> {
        let started = Instant::now();
        // A call made while serving another one ends no later than that one's deadline.
        let deadline = match crate::deadline::current() {
            Some(outer) => outer.min(started + self.timeout),
            None => started + self.timeout,
        };
        let timeout = deadline.saturating_duration_since(started);
        let id = request_id(&self.reply_prefix);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let reply_to = match &self.inner.mux {
            Some(mux) => &mux.list,
            None => &id,
        };
        // Encoded by reference: the caller's strings and arguments are not copied into an
        // owned `Request` first, and the buffer is sized for them up front.
        let request = RequestRef {
            id: &id,
            inputs: &inputs,
            object,
            reply_to,
            method,
            deadline: Some(unix_ms(SystemTime::now()).saturating_add(timeout_ms)),
        };
        let sized = inputs.iter().map(|i| i.len() + 5).sum::<usize>()
            + id.len()
            + reply_to.len()
            + object.name.len()
            + object.version.len()
            + method.len();
        let payload = codec::encode_sized(&request, REQUEST_FRAME + sized)?;
        let queue = if self.read_only {
            object.read_only_queue(module)
        } else {
            object.queue(module)
        };
        let bytes = self
            .round_trip_checked(module, &queue, &id, &payload, deadline)
            .await
            .map_err(|e| {
                tracing::debug!(request_id = %id, %queue, %method, error = %e, "call failed");
                e
            })?;
        let response: Response = codec::decode(&bytes)
            .map_err(|e| RemoteError::decode(format!("reply to {queue} {method}: {e}")))?;
        if response.id != id {
            tracing::warn!(request_id = %id, reply_id = %response.id, "reply carries another id");
        }
        reply::into_result(response)
    }

    async fn round_trip(
        &self,
        queue: &str,
        id: &str,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        match &self.inner.mux {
            Some(mux) => {
                self.round_trip_shared(mux, queue, id, payload, deadline)
                    .await
            }
            None => self.round_trip_own(queue, id, payload, deadline).await,
        }
    }

    /// A call on the client's shared reply list (see `client/mux.rs`).
    async fn round_trip_shared(
        &self,
        mux: &Arc<mux::Mux>,
        queue: &str,
        id: &str,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut waiter = mux.register(id);
        mux.ensure_reader(&self.inner);
        let mut conn = self.push_conn(mux, deadline).await?;
        // As in the per-call mode: silence 1 s past the deadline means a dead path.
        let guard = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        let until = Instant::now() + guard;
        let turn = match mux.pushes.turn(&conn, queue, payload, until) {
            push::Turn::Direct(turn) => {
                // The callers woken with this one (the reader hands out a pop's replies
                // at once) take their turns first (one scheduler turn, no timer); those
                // that queued go out with this one, not after it. Without that the calls
                // of one pop split on every round trip, into ever smaller batches.
                tokio::task::yield_now().await;
                match turn.join_queued(queue, payload, until) {
                    Ok(rx) => push::Turn::Queued(rx),
                    Err(turn) => push::Turn::Direct(turn),
                }
            }
            queued => queued,
        };
        let pushed = match turn {
            push::Turn::Direct(_turn) => {
                let mut rpush = redis::cmd("RPUSH");
                rpush.arg(queue).arg(payload);
                match tokio::time::timeout(guard, rpush.query_async::<i64>(&mut conn)).await {
                    Err(_) => push::Pushed::Silent,
                    Ok(Err(e)) => push::Pushed::Failed(e),
                    Ok(Ok(_)) => push::Pushed::Done,
                }
            }
            push::Turn::Queued(rx) => match tokio::time::timeout(guard, rx).await {
                Err(_) => push::Pushed::Silent,
                // The drain ended without sending it (its runtime is shutting down).
                Ok(Err(_)) => {
                    return Err(RemoteError::unavailable(format!(
                        "{BROKER_PREFIX}{}: the request to {queue} was not sent (the client's runtime is shutting down)",
                        self.inner.broker
                    )))
                }
                Ok(Ok(p)) => p,
            },
        };
        match pushed {
            push::Pushed::Silent => {
                self.silent(mux);
                return Err(self.timed_out(queue));
            }
            push::Pushed::Failed(e) => return Err(self.push_failed(queue, e)),
            push::Pushed::Done => {}
        }
        match tokio::time::timeout_at(deadline.into(), &mut waiter.rx).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(_)) => Err(mux::reader_lost(&self.inner)),
            Err(_) => match self.withdraw_on(&mut conn, queue, payload).await {
                Some(e) => Err(e),
                None => {
                    self.silent(mux);
                    Err(self.timed_out(queue))
                }
            },
        }
    }

    /// The shared connection requests are pushed on, opened (or taken from the pool)
    /// when there is none of the pool's current generation.
    async fn push_conn(
        &self,
        mux: &mux::Mux,
        deadline: Instant,
    ) -> Result<MultiplexedConnection, RemoteError> {
        let generation = self.inner.pool().generation;
        if let Some(c) = mux.push_conn(generation) {
            return Ok(c);
        }
        let c = self.inner.checkout(deadline).await?;
        Ok(mux.set_push_conn(c.conn, c.generation))
    }

    /// The path to Redis went silent: drop every connection that shares it (pool, push
    /// connection, reply reader), so the next call connects afresh.
    fn silent(&self, mux: &mux::Mux) {
        tracing::warn!(broker = %self.inner.broker, "redis went silent; reconnecting");
        self.inner.invalidate();
        mux.stop_reader();
    }

    fn timed_out(&self, queue: &str) -> RemoteError {
        RemoteError::timeout(format!("no reply from {queue} within {:?}", self.timeout))
    }

    /// The error of a push Redis refused or that broke the connection.
    fn push_failed(&self, queue: &str, e: redis::RedisError) -> RemoteError {
        if conn::is_fatal(&e) {
            self.inner.invalidate();
            self.inner.outage.failed("client", &e);
        }
        if conn::is_no_perm(&e) {
            // The ACL user may not push to this queue: a refusal, not an outage.
            return RemoteError::new(
                crate::ErrorCode::PermissionDenied,
                format!(
                    "redis refused {queue} to this user (NOPERM: its ACL does not allow this queue)"
                ),
            );
        }
        RemoteError::unavailable(format!("{BROKER_PREFIX}{}: {e}", self.inner.broker))
    }

    /// Replies that arrived on this client's reply list after their caller had given up
    /// (its deadline passed or its future was dropped), dropped since the client was
    /// built. Always 0 with [`ClientBuilder::per_call_replies`].
    pub fn stray_replies(&self) -> u64 {
        self.inner.mux.as_ref().map_or(0, |m| m.stray())
    }

    /// Aborts the task reading the shared reply list, as if it had died; the calls waiting
    /// on it fail with `Unavailable` and the next call starts a new reader. Returns whether
    /// one was running. For tests of that failure; not a stable API.
    #[doc(hidden)]
    pub fn abort_reply_reader(&self) -> bool {
        self.inner.mux.as_ref().is_some_and(|m| m.abort_reader())
    }

    /// A call with a reply list of its own, `BLPOP`ed on a pooled connection.
    async fn round_trip_own(
        &self,
        queue: &str,
        id: &str,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut c = self.inner.checkout(deadline).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        // BLPOP 0 would wait forever: never send it.
        let wait = remaining.max(Duration::from_millis(1)).as_secs_f64();
        let mut pipe = redis::pipe();
        pipe.cmd("RPUSH").arg(queue).arg(payload).ignore();
        pipe.cmd("BLPOP").arg(id).arg(format!("{wait:.3}"));
        // Redis ends the BLPOP itself at the deadline; the local timer only catches a Redis
        // that stopped answering.
        let guard = remaining + Duration::from_secs(1);
        match tokio::time::timeout(guard, pipe.query_async::<redis::Value>(&mut c.conn)).await {
            Err(_) => {
                // Redis always ends a BLPOP by its timeout: silence past it means the path
                // to Redis is dead without having been closed (a vanished peer). The idle
                // connections share that path, so they go too; this one is dropped.
                tracing::warn!(broker = %self.inner.broker, "redis went silent; reconnecting");
                self.inner.invalidate();
                Err(self.timed_out(queue))
            }
            Ok(Err(e)) => {
                if !conn::is_fatal(&e) {
                    self.inner.checkin(c);
                }
                Err(self.push_failed(queue, e))
            }
            Ok(Ok(v)) => match conn::popped(conn::last(v)) {
                Some(bytes) => {
                    self.inner.checkin(c);
                    Ok(bytes)
                }
                None => Err(self.withdraw(c, queue, payload).await),
            },
        }
    }

    /// After Redis ended the reply wait at the deadline: takes the request back out of the
    /// queue when no server has taken it yet, so that no server (Go's neither, which
    /// ignores `Deadline`) runs it after its caller gave up, and says which case it was.
    async fn withdraw(&self, mut c: Conn, queue: &str, payload: &[u8]) -> RemoteError {
        match self.withdraw_on(&mut c.conn, queue, payload).await {
            Some(e) => {
                self.inner.checkin(c);
                e
            }
            // The connection broke or went silent: drop it (not checked in).
            None => self.timed_out(queue),
        }
    }

    /// `LREM` of a timed-out request on `c`, and the `Timeout` saying whether it was still
    /// queued; `None` when the connection broke or stayed silent.
    async fn withdraw_on(
        &self,
        c: &mut MultiplexedConnection,
        queue: &str,
        payload: &[u8],
    ) -> Option<RemoteError> {
        let mut lrem = redis::cmd("LREM");
        lrem.arg(queue).arg(1).arg(payload);
        let lrem = lrem.query_async::<i64>(c);
        match tokio::time::timeout(WITHDRAW_TIMEOUT, lrem).await {
            Ok(Ok(removed)) if removed > 0 => Some(RemoteError::timeout(format!(
                "{}{queue} within {:?} (is its module serving it?); it was withdrawn",
                crate::presence::NOT_TAKEN,
                self.timeout
            ))),
            Ok(Ok(_)) => Some(RemoteError::timeout(format!(
                "no reply from {queue} within {:?} (a server took the request)",
                self.timeout
            ))),
            _ => None,
        }
    }

    /// The module's `zbus@1.0` status: its objects and what each worker is doing.
    pub async fn status(&self, module: &str) -> Result<Status, RemoteError> {
        self.call(module, &ObjectId::parse(STATUS_OBJECT), "", Vec::new())
            .await
    }

    /// Subscribes to event `event` of `object` on `module`. The stream resubscribes by
    /// itself after a Redis restart (events published meanwhile are lost); dropping it
    /// unsubscribes at once. Undecodable events are logged and skipped.
    pub fn subscribe<T: DeserializeOwned>(
        &self,
        module: &str,
        object: &ObjectId,
        event: &str,
    ) -> Subscription<T> {
        Subscription::start(self.inner.redis.clone(), object.channel(module, event))
    }
}
