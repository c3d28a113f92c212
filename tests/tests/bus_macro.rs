//! `#[object]` end to end over a real private redis-server: the generated server serves a
//! trait implementation, the generated stub calls it (also as `Arc<dyn Trait>`), errors keep
//! their codes, deadlines hold, and event streams arrive through the stub.

use futures::StreamExt;
use imagebus_bus::{Client, ErrorCode, EventStream, ObjectId, RemoteError, Server};
use imagebus_tests::redis::RedisFixture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    name: String,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    name: String,
    total: u32,
}

/// The interface under test.
#[imagebus_bus::object(module = "shop", name = "inventory", version = "1")]
pub trait Inventory: Send + Sync {
    /// Adds `count` of `item`; returns the new total. Errors: `InvalidArgument` for an
    /// empty name.
    async fn add(&self, item: Item, count: u32) -> Result<u32, RemoteError>;
    /// Errors: `NotFound`.
    async fn get(&self, name: String) -> Result<(Item, u32), RemoteError>;
    /// Errors: `NotFound`.
    async fn remove(&self, name: String) -> Result<(), RemoteError>;
    /// Items with `tag`, or all of them.
    #[bus(name = "FindByTag")]
    async fn find_by_tag(&self, tag: Option<String>) -> Result<Vec<String>, RemoteError>;
    /// Waits until the test releases it.
    async fn hold(&self) -> Result<(), RemoteError>;
    /// One event per `add`.
    #[bus(stream)]
    fn changes(&self) -> EventStream<Change>;
}

/// What a newer (or confused) client believes `inventory@1` looks like.
#[imagebus_bus::object(module = "shop", name = "inventory", version = "1")]
pub trait SkewedInventory: Send + Sync {
    /// `Add` with the wrong argument type.
    async fn add(&self, item: String, count: u32) -> Result<u32, RemoteError>;
    /// A method the server does not have.
    async fn audit(&self) -> Result<(), RemoteError>;
}

/// The same object at a version nobody serves.
#[imagebus_bus::object(module = "shop", name = "inventory", version = "2")]
pub trait InventoryV2: Send + Sync {
    /// Like v1's.
    async fn find_by_tag(&self, tag: Option<String>) -> Result<Vec<String>, RemoteError>;
}

struct Shop {
    stock: Mutex<BTreeMap<String, (Item, u32)>>,
    changes: broadcast::Sender<Change>,
    release: Notify,
}

impl Shop {
    fn new() -> Self {
        Self {
            stock: Mutex::new(BTreeMap::new()),
            changes: broadcast::channel(64).0,
            release: Notify::new(),
        }
    }

    fn stock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Item, u32)>> {
        self.stock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[imagebus_bus::async_trait]
impl Inventory for Shop {
    async fn add(&self, item: Item, count: u32) -> Result<u32, RemoteError> {
        if item.name.is_empty() {
            return Err(RemoteError::invalid_argument("item name is empty"));
        }
        let total = {
            let mut stock = self.stock();
            let entry = stock.entry(item.name.clone()).or_insert((item.clone(), 0));
            entry.0 = item.clone();
            entry.1 += count;
            entry.1
        };
        // No subscriber is fine.
        let _ = self.changes.send(Change {
            name: item.name,
            total,
        });
        Ok(total)
    }

    async fn get(&self, name: String) -> Result<(Item, u32), RemoteError> {
        self.stock()
            .get(&name)
            .cloned()
            .ok_or_else(|| RemoteError::not_found(format!("no item {name:?}")))
    }

    async fn remove(&self, name: String) -> Result<(), RemoteError> {
        match self.stock().remove(&name) {
            Some(_) => Ok(()),
            None => Err(RemoteError::not_found(format!("no item {name:?}"))),
        }
    }

    async fn find_by_tag(&self, tag: Option<String>) -> Result<Vec<String>, RemoteError> {
        Ok(self
            .stock()
            .values()
            .filter(|(item, _)| tag.as_ref().is_none_or(|t| item.tags.contains(t)))
            .map(|(item, _)| item.name.clone())
            .collect())
    }

    async fn hold(&self) -> Result<(), RemoteError> {
        self.release.notified().await;
        Ok(())
    }

    fn changes(&self) -> EventStream<Change> {
        let rx = self.changes.subscribe();
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(change) => return Some((change, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }
}

/// A served `Shop`, stopped when dropped.
struct Serving {
    shop: Arc<Shop>,
    stop: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shop.release.notify_waiters();
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

async fn serve(redis: &RedisFixture) -> Serving {
    let shop = Arc::new(Shop::new());
    let mut server = Server::builder(redis.url(), InventoryStub::MODULE)
        .workers(4)
        .build()
        .await
        .expect("server connects to the fixture");
    server
        .register(InventoryServer::new(shop.clone()))
        .expect("first registration");
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(async move {
        if let Err(e) = server.run(token).await {
            panic!("server failed: {e}");
        }
    });
    Serving {
        shop,
        stop,
        handle: Some(handle),
    }
}

async fn client(redis: &RedisFixture) -> Client {
    Client::connect(redis.url())
        .await
        .expect("client connects to the fixture")
}

fn item(name: &str, tags: &[&str]) -> Item {
    Item {
        name: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

/// One scenario, written against the trait only: it must behave the same in-process and
/// over the bus.
async fn scenario(inv: &dyn Inventory) -> Vec<String> {
    let mut log = Vec::new();
    log.push(format!("{:?}", inv.add(item("bolt", &["metal"]), 3).await));
    log.push(format!("{:?}", inv.add(item("bolt", &["metal"]), 2).await));
    log.push(format!("{:?}", inv.add(item("rope", &["fiber"]), 1).await));
    log.push(format!("{:?}", inv.add(item("", &[]), 1).await));
    log.push(format!("{:?}", inv.get("bolt".into()).await));
    log.push(format!("{:?}", inv.get("nail".into()).await));
    log.push(format!("{:?}", inv.find_by_tag(Some("metal".into())).await));
    log.push(format!("{:?}", inv.find_by_tag(None).await));
    log.push(format!("{:?}", inv.remove("rope".into()).await));
    log.push(format!("{:?}", inv.remove("rope".into()).await));
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_as_trait_object_behaves_like_the_local_implementation() {
    let redis = RedisFixture::start();
    let _serving = serve(&redis).await;
    let remote: Arc<dyn Inventory> = Arc::new(InventoryStub::new(client(&redis).await));
    let local: Arc<dyn Inventory> = Arc::new(Shop::new());

    let over_bus = scenario(remote.as_ref()).await;
    let in_process = scenario(local.as_ref()).await;
    assert_eq!(over_bus, in_process);
    // And the scenario really did what it says.
    assert_eq!(over_bus[1], "Ok(5)");
    assert_eq!(
        over_bus[4],
        format!("Ok(({:?}, 5))", item("bolt", &["metal"]))
    );
    assert_eq!(over_bus[7], r#"Ok(["bolt", "rope"])"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_their_codes_and_messages() {
    let redis = RedisFixture::start();
    let _serving = serve(&redis).await;
    let stub = InventoryStub::new(client(&redis).await);

    let err = stub.get("nail".into()).await.expect_err("nothing stocked");
    assert_eq!(err, RemoteError::not_found("no item \"nail\""));
    let err = stub.add(item("", &[]), 1).await.expect_err("empty name");
    assert_eq!(err, RemoteError::invalid_argument("item name is empty"));
    // Nothing was changed by the rejected call.
    assert_eq!(stub.find_by_tag(None).await, Ok(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_reach_the_stub_with_bus_codes() {
    let redis = RedisFixture::start();
    let serving = serve(&redis).await;
    let client = client(&redis).await;
    let skewed = SkewedInventoryStub::new(client.clone());

    let err = skewed.audit().await.expect_err("server has no Audit");
    assert_eq!(err.code, ErrorCode::UnknownMethod, "{err}");
    let err = skewed
        .add("bolt".into(), 1)
        .await
        .expect_err("String is not an Item");
    assert_eq!(err.code, ErrorCode::Decode, "{err}");
    assert!(
        serving.shop.stock().is_empty(),
        "a call that did not decode changed state"
    );

    // Servers only wait on the queues of objects they registered (as Go zbus does), so a
    // version nobody serves is a deadline, not a hang.
    let v2 = InventoryV2Stub::new(client).with_timeout(Duration::from_millis(300));
    let err = v2.find_by_tag(None).await.expect_err("no @2");
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_names_and_module_choice() {
    let redis = RedisFixture::start();
    let _serving = serve(&redis).await;
    let client = client(&redis).await;
    assert_eq!(InventoryStub::object_id(), ObjectId::new("inventory", "1"));

    let stub = InventoryStub::new(client.clone());
    stub.add(item("bolt", &["metal"]), 1).await.expect("add");
    // A hand-written call with the wire name reaches the renamed method.
    let inputs = vec![imagebus_bus::__private::encode_arg(&Some("metal")).expect("encodes")];
    let names: Vec<String> = client
        .call("shop", &InventoryStub::object_id(), "FindByTag", inputs)
        .await
        .expect("FindByTag by its wire name");
    assert_eq!(names, ["bolt"]);

    // The same object on a module nobody serves: the call times out, it does not hang.
    let elsewhere =
        InventoryStub::with_module(client, "nowhere").with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = elsewhere
        .find_by_tag(None)
        .await
        .expect_err("no server on module nowhere");
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_timeout_bounds_a_slow_call_and_the_stub_stays_usable() {
    let redis = RedisFixture::start();
    let serving = serve(&redis).await;
    let stub = InventoryStub::new(client(&redis).await);

    let started = Instant::now();
    let err = stub
        .with_timeout(Duration::from_millis(300))
        .hold()
        .await
        .expect_err("held");
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    // The original stub keeps its own deadline and other workers still answer.
    serving.shop.release.notify_waiters();
    assert_eq!(stub.add(item("bolt", &[]), 4).await, Ok(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_through_the_stub_stream() {
    let redis = RedisFixture::start();
    let _serving = serve(&redis).await;
    let remote: Arc<dyn Inventory> = Arc::new(InventoryStub::new(client(&redis).await));
    let mut changes = remote.changes();

    // Pub/sub drops events published before the subscription is active: add until the
    // first one arrives (bounded by WAIT), then every add is seen, in order.
    let deadline = Instant::now() + WAIT;
    let first = loop {
        assert!(Instant::now() < deadline, "no event within {WAIT:?}");
        remote.add(item("tick", &[]), 1).await.expect("add");
        if let Ok(Some(change)) =
            tokio::time::timeout(Duration::from_millis(200), changes.next()).await
        {
            break change;
        }
    };
    assert_eq!(first.name, "tick");
    let mut expected = first.total;
    for name in ["a", "tick", "b", "tick"] {
        let total = remote.add(item(name, &[]), 1).await.expect("add");
        let change = tokio::time::timeout(WAIT, changes.next())
            .await
            .expect("event within deadline")
            .expect("stream still open");
        if name == "tick" {
            expected += 1;
            assert_eq!(total, expected);
        }
        assert_eq!(
            change,
            Change {
                name: name.into(),
                total
            }
        );
    }
}
