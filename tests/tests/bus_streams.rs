//! Event streams over a real private redis-server: delivery, cancellation on drop,
//! resubscription after a Redis restart, undecodable events skipped.

mod bus_common;

use bus_common::*;
use futures::StreamExt;
use imagebus_bus::broker::Broker;
use imagebus_bus::codec::encode;
use imagebus_bus::{Client, ObjectId};
use imagebus_tests::redis::RedisFixture;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

async fn numsub(conn: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .unwrap();
    n
}

fn ticker() -> ObjectId {
    ObjectId::new("ticker", "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_receives_events_and_drop_unsubscribes_at_once() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Ticker)]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let mut sub = client.subscribe::<u64>(MODULE, &ticker(), "Tick");
    assert_eq!(sub.channel(), "test.ticker@1.Tick");
    tokio::time::timeout(WAIT, sub.ready())
        .await
        .unwrap()
        .unwrap();
    let a = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    let b = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert!(b > a, "{a} then {b}");

    let mut conn = raw(&redis).await;
    assert_eq!(numsub(&mut conn, "test.ticker@1.Tick").await, 1);
    drop(sub);
    let gone = eventually(Duration::from_secs(1), || {
        let mut conn = conn.clone();
        async move { (numsub(&mut conn, "test.ticker@1.Tick").await == 0).then_some(()) }
    })
    .await;
    assert!(
        gone.is_some(),
        "dropping the subscription unsubscribed within 1 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_resubscribes_after_a_redis_restart() {
    let mut redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Ticker)]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let mut sub = client.subscribe::<u64>(MODULE, &ticker(), "Tick");
    tokio::time::timeout(WAIT, sub.ready())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();

    redis.restart();
    // Events that were buffered before the restart may still arrive; after them the
    // subscription goes quiet until it has resubscribed and the server republishes.
    let resubscribed = eventually(Duration::from_secs(10), || {
        let redis_url = redis.url();
        async move {
            let info = Broker::parse(&redis_url).unwrap().connection_info().clone();
            let mut conn = redis::Client::open(info)
                .ok()?
                .get_multiplexed_async_connection()
                .await
                .ok()?;
            (numsub(&mut conn, "test.ticker@1.Tick").await == 1).then_some(())
        }
    })
    .await;
    assert!(
        resubscribed.is_some(),
        "the subscriber is back on the new server"
    );
    let mut conn = raw(&redis).await;
    // Make sure a post-restart event arrives: publish a marker ourselves.
    let _: i64 = redis::cmd("PUBLISH")
        .arg("test.ticker@1.Tick")
        .arg(encode(&u64::MAX).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        while let Some(v) = sub.next().await {
            if v == u64::MAX {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "events flow again after the restart");
    assert!(sub.is_subscribed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_events_are_skipped() {
    let redis = RedisFixture::start();
    let client = Client::connect(redis.url()).await.unwrap();
    let mut sub = client.subscribe::<u64>(MODULE, &ObjectId::new("raw", "1"), "Ev");
    tokio::time::timeout(WAIT, sub.ready())
        .await
        .unwrap()
        .unwrap();
    let mut conn = raw(&redis).await;
    for payload in [vec![0xc1], encode("text").unwrap(), encode(&7u64).unwrap()] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("test.raw@1.Ev")
            .arg(payload)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let v = tokio::time::timeout(WAIT, sub.next()).await.unwrap();
    assert_eq!(v, Some(7));
}
