//! Hostile payloads pushed raw onto a served queue: an oversized request, a structure that
//! would balloon when decoded, replies aimed at queues (the endless reply loop, `EXPIRE` on
//! a queue), and a reply key of the wrong type. Each test fails without its fix.

mod bus_common;

use bus_common::*;
use imagebus_bus::codec::{decode, encode, encode_arg};
use imagebus_bus::protocol::{Request, Response};
use imagebus_bus::{Client, ObjectId};
use imagebus_tests::redis::RedisFixture;
use serde_bytes::ByteBuf;
use std::sync::Arc;

const QUEUE: &str = "test.calc@1";

fn request(id: &str, reply_to: &str, method: &str, inputs: Vec<ByteBuf>) -> Vec<u8> {
    encode(&Request {
        id: id.into(),
        inputs,
        object: calc_id(),
        reply_to: reply_to.into(),
        method: method.into(),
        deadline: None,
    })
    .unwrap()
}

/// A plain connection that waits long enough for multi-megabyte commands on a busy machine.
async fn patient(redis: &RedisFixture) -> redis::aio::MultiplexedConnection {
    let info = imagebus_bus::broker::Broker::parse(&redis.url())
        .unwrap()
        .connection_info()
        .clone();
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(30)));
    redis::Client::open(info)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .unwrap()
}

async fn push(conn: &mut redis::aio::MultiplexedConnection, key: &str, bytes: &[u8]) {
    let _: i64 = redis::cmd("RPUSH")
        .arg(key)
        .arg(bytes)
        .query_async(conn)
        .await
        .unwrap();
}

async fn pop_reply(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Response {
    // Short BLPOPs in a loop: a plain connection gives up on a reply after about a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
            .arg(key)
            .arg(0.2)
            .query_async(conn)
            .await
            .unwrap_or_else(|e| panic!("BLPOP {key}: {e}"));
        if let Some((_, bytes)) = got {
            return decode(&bytes).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reply on {key} within 20 s"
        );
    }
}

/// One round trip through the single worker: everything pushed before it was handled.
async fn handled_so_far(client: &Client) {
    let sum: f64 = client
        .call(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .expect("the server still serves");
    assert_eq!(sum, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_refused_unread_and_the_server_goes_on() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let mut conn = patient(&redis).await;
    // 17 MiB of one string argument: over the 16 MiB default.
    let big = "x".repeat(17 << 20);
    let bytes = request(
        "big-1",
        "big-1-reply",
        "Echo",
        vec![encode_arg(&big).unwrap()],
    );
    push(&mut conn, QUEUE, &bytes).await;
    let resp = pop_reply(&mut conn, "big-1-reply").await;
    assert_eq!(resp.id, "big-1");
    assert_eq!(resp.code.as_deref(), Some("Decode"));
    let msg = resp.error.unwrap();
    assert!(msg.contains("exceeds the limit of 16777216 bytes"), "{msg}");
    handled_so_far(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_of_millions_of_tiny_items_is_refused_before_decoding() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let mut conn = patient(&redis).await;
    // 2 million one-byte Inputs: 6 MB on the wire, ~100 MB once decoded item by item.
    let inputs = vec![ByteBuf::from(vec![0x01]); 2_000_000];
    let bytes = request("many-1", "many-1-reply", "Add", inputs);
    assert!(bytes.len() < 16 << 20);
    push(&mut conn, QUEUE, &bytes).await;
    let resp = pop_reply(&mut conn, "many-1-reply").await;
    assert_eq!(resp.code.as_deref(), Some("Decode"));
    let msg = resp.error.unwrap();
    assert!(msg.contains("more than 1048576 msgpack values"), "{msg}");
    // A single argument holding a huge array is bounded the same way.
    let arg = encode(&vec![0u8; 1_500_000]).unwrap();
    let bytes = request("many-2", "many-2-reply", "Echo", vec![ByteBuf::from(arg)]);
    push(&mut conn, QUEUE, &bytes).await;
    let resp = pop_reply(&mut conn, "many-2-reply").await;
    assert_eq!(resp.code.as_deref(), Some("Decode"));
    assert!(resp.error.unwrap().contains("malformed inputs"));
    handled_so_far(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_a_queue_as_its_reply_key_gets_no_reply_and_no_loop() {
    let redis = RedisFixture::start();
    let s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let mut conn = patient(&redis).await;
    // The 22-byte message of the report: an ID that is the served queue, nothing else.
    #[derive(serde::Serialize)]
    struct OnlyId {
        #[serde(rename = "ID")]
        id: &'static str,
    }
    push(&mut conn, QUEUE, &encode(&OnlyId { id: QUEUE }).unwrap()).await;
    // A well-formed request whose ReplyTo is the queue itself, and one whose ID is the
    // status queue.
    push(&mut conn, QUEUE, &request("r1", QUEUE, "Nothing", vec![])).await;
    push(
        &mut conn,
        QUEUE,
        &request("test.zbus@1.0", "", "Nothing", vec![]),
    )
    .await;
    // A reply pushed onto the queue (as a loop would) is never answered.
    let reply = encode(&Response {
        id: "x-reply".into(),
        output: imagebus_bus::protocol::Output {
            data: ByteBuf::from(vec![0xc0]),
            error: None,
        },
        error: Some("boom".into()),
        code: Some("Internal".into()),
    })
    .unwrap();
    push(&mut conn, QUEUE, &reply).await;
    handled_so_far(&client).await;
    // A worker that stops sends its last reply and pops nothing more: a loop would leave
    // its echo in the queue.
    s.stop().await;
    let len: i64 = redis::cmd("LLEN")
        .arg(QUEUE)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0, "something was pushed back onto the served queue");
    let ttl: i64 = redis::cmd("TTL")
        .arg(QUEUE)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        ttl, -2,
        "the queue key exists no more and carries no EXPIRE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_key_named_like_another_queue_keeps_its_backlog_and_gets_no_expire() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let mut conn = patient(&redis).await;
    let other = ObjectId::new("web", "1").queue("container");
    push(&mut conn, &other, b"a waiting request").await;
    push(&mut conn, QUEUE, &request("r2", &other, "Nothing", vec![])).await;
    handled_so_far(&client).await;
    let len: i64 = redis::cmd("LLEN")
        .arg(&other)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1, "a reply landed on another module's queue");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&other)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "an EXPIRE landed on another module's queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_key_of_the_wrong_type_loses_no_other_request() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let mut conn = patient(&redis).await;
    let _: () = redis::cmd("SET")
        .arg("not-a-list")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    for round in 0..20 {
        // Both queued before the worker pops: the second request is popped in the same
        // round trip as the first one's refused reply.
        let mut pipe = redis::pipe();
        pipe.cmd("RPUSH").arg(QUEUE).arg(request(
            &format!("bad-{round}"),
            "not-a-list",
            "Nothing",
            vec![],
        ));
        pipe.cmd("RPUSH").arg(QUEUE).arg(request(
            &format!("ok-{round}"),
            &format!("ok-{round}-reply"),
            "Add",
            args2(1.0, 1.0),
        ));
        let _: () = pipe.query_async(&mut conn).await.unwrap();
        let resp = pop_reply(&mut conn, &format!("ok-{round}-reply")).await;
        assert_eq!(
            resp.id,
            format!("ok-{round}"),
            "round {round}: request lost"
        );
        assert!(resp.error.is_none() && resp.output.error.is_none());
    }
    let kind: String = redis::cmd("TYPE")
        .arg("not-a-list")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "string");
}

/// Issue 10, defect 10: a request whose `ID` (and `ReplyTo`) can be read but whose body is
/// cut short, nested too deep, or holds an echo of a 1 MB name is answered with a bounded
/// `Decode` (or call) error; none goes unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_short_or_too_deep_are_answered_with_decode() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let mut conn = patient(&redis).await;
    // {"ID": "deep-1", "Inputs": [[[[... 1000 deep ...]]]], "ReplyTo": "deep-1-reply", ...}
    let mut deep = vec![0x84];
    deep.extend(encode("ID").unwrap());
    deep.extend(encode("deep-1").unwrap());
    deep.extend(encode("Inputs").unwrap());
    deep.extend(std::iter::repeat_n(0x91, 1000));
    deep.push(0xc0);
    deep.extend(encode("ReplyTo").unwrap());
    deep.extend(encode("deep-1-reply").unwrap());
    deep.extend(encode("Method").unwrap());
    deep.extend(encode("Add").unwrap());
    push(&mut conn, QUEUE, &deep).await;
    let resp = pop_reply(&mut conn, "deep-1-reply").await;
    assert_eq!(resp.id, "deep-1");
    assert_eq!(resp.code.as_deref(), Some("Decode"), "{resp:?}");
    // Cut short inside its Inputs: ReplyTo (after them) is unreadable, so the reply goes
    // to the ID, where Go zbus callers wait.
    let whole = request("cut-1", "cut-1", "Add", args2(1.0, 2.0));
    push(&mut conn, QUEUE, &whole[..whole.len() - 30]).await;
    let resp = pop_reply(&mut conn, "cut-1").await;
    assert_eq!(resp.id, "cut-1");
    assert_eq!(resp.code.as_deref(), Some("Decode"), "{resp:?}");
    // An unknown method of 1 MB: the error echoes a bounded part of it.
    let bytes = request("long-1", "long-1-reply", &"M".repeat(1 << 20), vec![]);
    push(&mut conn, QUEUE, &bytes).await;
    let resp = pop_reply(&mut conn, "long-1-reply").await;
    assert_eq!(resp.code.as_deref(), Some("UnknownMethod"), "{resp:?}");
    let msg = resp.error.unwrap();
    assert!(
        msg.len() <= imagebus_bus::error::MAX_MESSAGE,
        "{} bytes",
        msg.len()
    );
    handled_so_far(&client).await;
}
