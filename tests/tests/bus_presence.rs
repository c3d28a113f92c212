//! Module presence over a real private redis-server (docs/protocol.md, "Presence"): servers
//! announce their module; a fail-fast client gives up after about a second on a module
//! nobody serves, but never on one a server is working on, nor on a Go-only module.

mod bus_common;

use bus_common::*;
use imagebus_bus::presence::{is_not_served, presence_key, served_key};
use imagebus_bus::protocol::{Output, Request, Response};
use imagebus_bus::{Client, ErrorCode, ObjectId};
use imagebus_tests::redis::RedisFixture;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn exists(redis: &RedisFixture, key: &str) -> bool {
    redis.command(&["EXISTS", key]).unwrap() == ":1\r\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_whose_server_stopped_fails_fast_even_if_unknown_to_the_client() {
    let redis = RedisFixture::start();
    let s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let announced = eventually(Duration::from_secs(3), || async {
        exists(&redis, &presence_key(MODULE)).await.then_some(())
    })
    .await;
    assert!(announced.is_some(), "the server announces its module");
    assert!(exists(&redis, &served_key(MODULE)).await);
    let client = Client::connect(redis.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(20))
        .with_fail_fast(&[]);
    // Served: calls answer, also ones slower than the 1 s grace.
    let slept: u64 = client
        .call(
            MODULE,
            &calc_id(),
            "Sleep",
            vec![imagebus_bus::codec::encode_arg(&1500u64).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(slept, 1500);
    s.stop().await;
    let gone = eventually(Duration::from_secs(5), || async {
        (!exists(&redis, &presence_key(MODULE)).await).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the presence key expires");
    // The served marker says an imagebus server should be there: fail fast.
    let started = Instant::now();
    let err = client
        .call_raw(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    assert!(is_not_served(&err), "{err}");
    assert_eq!(redis.command(&["LLEN", "test.calc@1"]).unwrap(), ":0\r\n");
}

/// A peer that announces nothing (as Go servers): it takes each request at once and
/// answers `"late"` after `delay`.
fn silent_peer(
    redis: &RedisFixture,
    queue: &'static str,
    delay: Duration,
) -> std::thread::JoinHandle<()> {
    let url = format!("unix://{}", redis.socket().display());
    std::thread::spawn(move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let (_, bytes): (String, Vec<u8>) = redis::cmd("BLPOP")
            .arg(queue)
            .arg(10)
            .query(&mut conn)
            .unwrap();
        let req: Request = imagebus_bus::codec::decode(&bytes).unwrap();
        std::thread::sleep(delay);
        let resp = Response {
            id: req.id.clone(),
            output: Output {
                data: serde_bytes::ByteBuf::from(
                    imagebus_bus::codec::encode_value(&"late").unwrap(),
                ),
                error: None,
            },
            error: None,
            code: None,
        };
        let _: () = redis::cmd("RPUSH")
            .arg(&req.reply_to)
            .arg(imagebus_bus::codec::encode(&resp).unwrap())
            .query(&mut conn)
            .unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_a_server_took_is_waited_for_and_go_only_modules_wait_for_the_deadline() {
    let redis = RedisFixture::start();
    let client = Client::connect(redis.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(10))
        .with_fail_fast(&["known"]);
    // A module the client knows, no presence key, but a server took the request: the
    // take-back finds nothing queued and the client waits for the reply.
    let peer = silent_peer(&redis, "known.obj@1", Duration::from_millis(1800));
    let late: String = client
        .call("known", &ObjectId::new("obj", "1"), "Do", Vec::new())
        .await
        .unwrap();
    assert_eq!(late, "late");
    peer.join().unwrap();
    // A module nobody announces and the client does not know (a Go peer's): no fail-fast.
    let peer = silent_peer(&redis, "gopeer.obj@1", Duration::from_millis(1800));
    let late: String = client
        .call("gopeer", &ObjectId::new("obj", "1"), "Do", Vec::new())
        .await
        .unwrap();
    assert_eq!(late, "late");
    peer.join().unwrap();
    let started = Instant::now();
    let err = client
        .with_timeout(Duration::from_millis(2500))
        .call_raw("gopeer", &ObjectId::new("obj", "1"), "Do", Vec::new())
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(2400));
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    // A known module with no server at all: fails fast.
    let started = Instant::now();
    let err = client
        .call_raw("known", &ObjectId::new("obj", "1"), "Do", Vec::new())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(is_not_served(&err), "{err}");
}
