//! Serving objects on a module: N workers pulling the module's object queues, the reserved
//! `zbus@1.0` status object, and event streams.
//!
//! ```no_run
//! # async fn demo(obj: impl imagebus_bus::Object) -> Result<(), Box<dyn std::error::Error>> {
//! use imagebus_bus::Server;
//! let mut server = Server::builder("unix:///var/run/redis.sock", "attach").workers(4).build().await?;
//! server.register(obj)?;
//! server.run(tokio_util::sync::CancellationToken::new()).await?;
//! # Ok(()) }
//! ```
//!
//! One puller per server owns a Redis connection and takes requests off every object
//! queue in batches of at most the number of free workers (`BLMPOP … COUNT n`, or `BLPOP`
//! then `LPOP … n` on an older Redis; the key order rotates on every pull, so one busy
//! queue cannot starve the others), and starts each at once on a free worker slot, one
//! task per pulled batch. So concurrency is bounded by the worker count and queued work
//! stays in Redis (backpressure). One replier sends the replies of finished calls, as
//! many as are waiting, in one pipeline (`RPUSH` + `EXPIRE` per reply list). See
//! `pull.rs`, `batch.rs` and `reply.rs`.

mod batch;
#[doc(hidden)]
pub mod inspect;
mod pull;
mod reply;
mod worker;

use crate::broker::{Broker, BrokerError};
use crate::conn::{self, Outage};
use crate::object::Object;
use crate::protocol::{ObjectId, STATUS_OBJECT};
use futures::StreamExt;
use pull::Pulls;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use worker::WorkerSlot;

/// Why a server could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The broker URL is unusable.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis did not answer when the server was built.
    #[error("connecting to redis at {broker}")]
    Connect {
        /// The broker, credentials redacted.
        broker: String,
        /// What redis-rs reported.
        #[source]
        source: redis::RedisError,
    },
    /// An object with this id is already registered.
    #[error("object {0} is already registered")]
    Duplicate(ObjectId),
    /// `zbus@1.0` is served by the server itself.
    #[error("object id {0} is reserved for the module status")]
    Reserved(ObjectId),
}

/// Builds a [`Server`]; see [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    url: String,
    module: String,
    workers: usize,
    shutdown_grace: Duration,
    connect_timeout: Duration,
    max_request_bytes: usize,
}

/// Default of [`ServerBuilder::max_request_bytes`]: 16 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 << 20;

impl ServerBuilder {
    /// Largest request payload served (default [`DEFAULT_MAX_REQUEST_BYTES`]). A larger one
    /// is answered with a `Decode` error before anything decodes it.
    pub fn max_request_bytes(mut self, n: usize) -> Self {
        self.max_request_bytes = n.max(64);
        self
    }

    /// Number of workers, i.e. calls served concurrently (default 4, at least 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// How long [`Server::run`] waits for in-flight calls after cancellation (default 10 s).
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }

    /// Bound on each connection attempt (default 2 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Parses the broker URL and checks that Redis answers.
    pub async fn build(self) -> Result<Server, ServerError> {
        let broker = Broker::parse(&self.url)?;
        let client = redis::Client::open(broker.connection_info().clone()).map_err(|source| {
            ServerError::Connect {
                broker: broker.to_string(),
                source,
            }
        })?;
        let connect_err = |source| ServerError::Connect {
            broker: broker.to_string(),
            source,
        };
        let mut conn = conn::connect(&client, self.connect_timeout)
            .await
            .map_err(connect_err)?;
        // One PING at start (as Go does), so bad credentials fail here, clearly.
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(connect_err)?;
        Ok(Server {
            module: self.module,
            broker,
            client,
            control: Some(conn),
            workers: self.workers,
            shutdown_grace: self.shutdown_grace,
            connect_timeout: self.connect_timeout,
            max_request_bytes: self.max_request_bytes,
            objects: HashMap::new(),
        })
    }
}

/// Serves registered [`Object`]s of one module.
pub struct Server {
    module: String,
    broker: Broker,
    client: redis::Client,
    control: Option<MultiplexedConnection>,
    workers: usize,
    shutdown_grace: Duration,
    connect_timeout: Duration,
    max_request_bytes: usize,
    objects: HashMap<ObjectId, Arc<dyn Object>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("module", &self.module)
            .field("broker", &self.broker)
            .field("workers", &self.workers)
            .field("objects", &self.objects.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Server {
    /// A builder for a server of `module` on the broker at `url`.
    pub fn builder(url: impl Into<String>, module: impl Into<String>) -> ServerBuilder {
        ServerBuilder {
            url: url.into(),
            module: module.into(),
            workers: 4,
            shutdown_grace: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }

    /// The module name.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// Adds an object. Errors: the id is taken, or it is the reserved `zbus@1.0`.
    pub fn register(&mut self, object: impl Object) -> Result<(), ServerError> {
        self.register_arc(Arc::new(object))
    }

    /// Adds a shared object (see [`Server::register`]).
    pub fn register_arc(&mut self, object: Arc<dyn Object>) -> Result<(), ServerError> {
        let id = object.id();
        if id.to_string() == STATUS_OBJECT {
            return Err(ServerError::Reserved(id));
        }
        if self.objects.contains_key(&id) {
            return Err(ServerError::Duplicate(id));
        }
        self.objects.insert(id, object);
        Ok(())
    }

    /// Serves until `stop` is cancelled, then stops pulling, lets in-flight calls finish
    /// (up to the shutdown grace) and returns. Redis outages are survived: workers
    /// reconnect with backoff.
    pub async fn run(self, stop: CancellationToken) -> Result<(), ServerError> {
        let mut ids: Vec<ObjectId> = self.objects.keys().cloned().collect();
        ids.sort();
        // Each object's queue, and its read-only queue when it has read methods.
        let mut queues: Vec<String> = ids.iter().map(|id| id.queue(&self.module)).collect();
        queues.extend(
            ids.iter()
                .filter(|id| self.objects.get(*id).is_some_and(|o| !o.reads().is_empty()))
                .map(|id| id.read_only_queue(&self.module)),
        );
        let status = ObjectId::parse(STATUS_OBJECT);
        let shared = Arc::new(worker::Shared {
            objects: self.objects.clone(),
            ids,
            queues,
            status_queue: status.queue(&self.module),
            status_read_only_queue: status.read_only_queue(&self.module),
            client: self.client.clone(),
            connect_timeout: self.connect_timeout,
            slots: (0..self.workers).map(|_| WorkerSlot::default()).collect(),
            control: tokio::sync::Mutex::new(self.control),
            outage: Outage::default(),
            max_request_bytes: self.max_request_bytes,
            pull_mode: pull::PullMode::default(),
        });
        tracing::info!(
            module = %self.module,
            broker = %self.broker,
            workers = self.workers,
            objects = ?shared.ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "serving"
        );

        let mut pullers = JoinSet::new();
        let (replies, replier) = reply::Replies::start(shared.clone());
        // The replier ends after both pullers, once the last reply is out.
        pullers.spawn(replier);
        for pulls in [Pulls::Objects, Pulls::Status] {
            pullers.spawn(pull::run(
                shared.clone(),
                pulls,
                replies.clone(),
                stop.clone(),
            ));
        }
        drop(replies);

        let mut streams = JoinSet::new();
        streams.spawn(announce(shared.clone(), self.module.clone()));
        for (id, object) in &self.objects {
            for source in object.streams() {
                let channel = id.channel(&self.module, source.name);
                streams.spawn(publish(shared.clone(), channel, source.values));
            }
        }

        stop.cancelled().await;
        tracing::info!(module = %self.module, "stopping: finishing in-flight calls");
        streams.abort_all();
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while let Some(res) = pullers.join_next().await {
                if let Err(e) = res {
                    tracing::error!(error = %e, "worker ended abnormally");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(module = %self.module, "in-flight calls did not finish in time; aborting them");
            pullers.abort_all();
        }
        while streams.join_next().await.is_some() {}
        tracing::info!(module = %self.module, "stopped");
        Ok(())
    }
}

/// Keeps the module's presence key alive until the server stops (see [`crate::presence`]).
async fn announce(shared: Arc<worker::Shared>, module: String) {
    let mut tick = tokio::time::interval(crate::presence::REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(mut conn) = shared.control().await else {
            continue;
        };
        let announced = tokio::time::timeout(
            crate::presence::REFRESH,
            crate::presence::announce(&mut conn, &module),
        )
        .await;
        match announced {
            Ok(Ok(())) => shared.outage.recovered("presence"),
            Ok(Err(e)) => {
                shared.outage.failed("presence", &e);
                if conn::is_fatal(&e) {
                    shared.reset_control().await;
                }
            }
            Err(_) => shared.reset_control().await,
        }
    }
}

/// Publishes every value of one event source; values produced while Redis is down are lost
/// (pub/sub is fire-and-forget).
async fn publish(
    shared: Arc<worker::Shared>,
    channel: String,
    mut values: futures::stream::BoxStream<'static, Vec<u8>>,
) {
    while let Some(value) = values.next().await {
        let Some(mut conn) = shared.control().await else {
            continue;
        };
        let res: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(value)
            .query_async(&mut conn)
            .await;
        match res {
            Ok(_) => shared.outage.recovered("publisher"),
            Err(e) => {
                shared.outage.failed("publisher", &e);
                if conn::is_fatal(&e) {
                    shared.reset_control().await;
                }
            }
        }
    }
    tracing::debug!(%channel, "event source ended");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{DispatchError, Reply};
    use serde_bytes::ByteBuf;

    struct Named(&'static str);

    #[async_trait::async_trait]
    impl Object for Named {
        fn id(&self) -> ObjectId {
            ObjectId::parse(self.0)
        }
        fn methods(&self) -> &'static [&'static str] {
            &[]
        }
        async fn dispatch(&self, m: &str, _: Vec<ByteBuf>) -> Result<Reply, DispatchError> {
            Err(DispatchError::UnknownMethod(m.into()))
        }
    }

    fn server() -> Server {
        let broker = Broker::parse("unix:///nonexistent/redis.sock").unwrap();
        Server {
            module: "m".into(),
            client: redis::Client::open(broker.connection_info().clone()).unwrap(),
            broker,
            control: None,
            workers: 1,
            shutdown_grace: Duration::from_secs(1),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            connect_timeout: Duration::from_secs(1),
            objects: HashMap::new(),
        }
    }

    #[test]
    fn register_rejects_duplicates_and_the_status_id() {
        let mut s = server();
        s.register(Named("a@1")).unwrap();
        s.register(Named("a@2")).unwrap();
        assert!(matches!(
            s.register(Named("a@1")),
            Err(ServerError::Duplicate(_))
        ));
        assert!(matches!(
            s.register(Named("zbus@1.0")),
            Err(ServerError::Reserved(_))
        ));
        assert_eq!(s.objects.len(), 2);
    }

    #[tokio::test]
    async fn build_fails_clearly_when_redis_is_absent() {
        let err = Server::builder("unix:///nonexistent/redis.sock", "m")
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, ServerError::Connect { .. }), "{err}");
        let err = Server::builder("http://x", "m").build().await.unwrap_err();
        assert!(matches!(err, ServerError::Broker(_)), "{err}");
    }
}
