//! Calls over a real private redis-server: results, call errors, protocol errors, panics,
//! concurrency, status, and a Go-encoded request pushed raw.

mod bus_common;

use bus_common::*;
use imagebus_bus::codec::{decode, decode_data, encode, encode_arg, encode_go};
use imagebus_bus::protocol::{Request, Response};
use imagebus_bus::{Client, ErrorCode, ObjectId};
use imagebus_tests::redis::RedisFixture;
use serde_bytes::ByteBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_returns_the_methods_result() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 2, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let sum: f64 = client
        .call(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap();
    assert_eq!(sum, 3.0);
    let echo: String = client
        .call(MODULE, &calc_id(), "Echo", vec![encode_arg("hé").unwrap()])
        .await
        .unwrap();
    assert_eq!(echo, "hé");
    let raw = client
        .call_raw(MODULE, &calc_id(), "Nothing", vec![])
        .await
        .unwrap();
    assert_eq!(raw, [0xc0], "unit result is msgpack nil");
    client
        .call::<()>(MODULE, &calc_id(), "Nothing", vec![])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_error_keeps_its_code_and_message() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let err = client
        .call::<f64>(MODULE, &calc_id(), "Divide", args2(1.0, 0.0))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert_eq!(err.message, "division by zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_have_codes() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();

    // A request on calc@1's queue addressed to another object is answered "unknown object".
    let mut conn = raw(&redis).await;
    let req = Request {
        id: "u-1".into(),
        inputs: vec![],
        object: ObjectId::new("nope", "1"),
        reply_to: "u-1-reply".into(),
        method: "Add".into(),
        deadline: None,
    };
    let _: () = redis::cmd("RPUSH")
        .arg("test.calc@1")
        .arg(encode(&req).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, bytes): (String, Vec<u8>) = redis::cmd("BLPOP")
        .arg("u-1-reply")
        .arg(5)
        .query_async(&mut conn)
        .await
        .unwrap();
    let resp: Response = decode(&bytes).unwrap();
    assert_eq!(resp.error.as_deref(), Some("unknown object 'nope@1'"));
    assert_eq!(resp.code.as_deref(), Some("UnknownObject"));

    let err = client
        .call::<f64>(MODULE, &calc_id(), "Nope", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownMethod, "{err}");
    let err = client
        .call::<f64>(MODULE, &calc_id(), "Add", args2(1.0, 2.0)[..1].to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Decode);
    assert_eq!(err.message, "invalid number of arguments expecting 2 got 1");
    let bad = vec![encode_arg("one").unwrap(), encode_arg(&2.0).unwrap()];
    let err = client
        .call::<f64>(MODULE, &calc_id(), "Add", bad)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Decode);
    assert!(err.message.starts_with("argument 0"), "{err}");
    let err = client
        .call::<String>(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::Decode,
        "a result of the wrong type is a Decode error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_replies_and_the_worker_lives_on() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let err = client
        .call::<()>(MODULE, &calc_id(), "Panic", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert_eq!(
        err.message,
        "remote method call calc@1.Panic() paniced: deliberate test panic"
    );
    for _ in 0..3 {
        let sum: f64 = client
            .call(MODULE, &calc_id(), "Add", args2(2.0, 2.0))
            .await
            .unwrap();
        assert_eq!(sum, 4.0, "the only worker still serves");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_callers() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 8, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                for j in 0..10 {
                    let sum: f64 = client
                        .call(MODULE, &calc_id(), "Add", args2(f64::from(i), f64::from(j)))
                        .await
                        .unwrap();
                    assert_eq!(sum, f64::from(i + j));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_method_does_not_block_other_objects() {
    let redis = RedisFixture::start();
    let _s = serve(
        &redis.url(),
        2,
        vec![Arc::new(Calc::default()), Arc::new(Other)],
    )
    .await;
    let client = Client::connect(redis.url()).await.unwrap();
    let slow = spawn_sleep(&client, 3000);
    // Wait until the slow call occupies a worker.
    assert!(
        a_worker_is_busy(&client).await,
        "the slow call never started"
    );
    let started = Instant::now();
    for _ in 0..20 {
        let pong: String = client
            .call(MODULE, &ObjectId::new("other", "1"), "Ping", vec![])
            .await
            .unwrap();
        assert_eq!(pong, "pong");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !slow.is_finished(),
        "the slow call is still running meanwhile"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_every_worker_is_busy() {
    let redis = RedisFixture::start();
    let _s = serve(
        &redis.url(),
        1,
        vec![Arc::new(Calc::default()), Arc::new(Other)],
    )
    .await;
    let client = Client::connect(redis.url()).await.unwrap();
    let st = client.status(MODULE).await.unwrap();
    let names: Vec<String> = st.objects.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["calc@1", "other@1"]);
    assert_eq!(st.workers.len(), 1);
    assert_eq!(st.workers[0].state, "free");
    // As Go zbus v1.0.1, a free worker reports when it became free, not the zero time.
    let free_since = st.workers[0].start_time.to_system().unwrap();
    assert!(free_since.elapsed().unwrap() < Duration::from_secs(60));

    let slow = spawn_sleep(&client, 1500);
    let busy = eventually(Duration::from_secs(2), || async {
        let st = client
            .with_timeout(Duration::from_millis(300))
            .status(MODULE)
            .await
            .ok()?;
        (st.workers[0].state == "busy").then_some(st)
    })
    .await
    .expect("status reports the busy worker while it is busy");
    assert_eq!(busy.workers[0].action, "[calc@1].Sleep()");
    let started = busy.workers[0].start_time.to_system().unwrap();
    assert!(started.elapsed().unwrap() < Duration::from_secs(5));
    slow.await.unwrap().unwrap();
    let st = client.status(MODULE).await.unwrap();
    assert_eq!(st.workers[0].state, "free");
    let freed = st.workers[0].start_time.to_system().unwrap();
    assert!(
        freed >= started,
        "free since the end of the call, after it started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_encoded_request_gets_a_go_decodable_reply_on_reply_to() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let mut conn = raw(&redis).await;
    // What Go's `client.Request("test", calc@1, "Add", 1, 2)` sends: ints as d3, no Deadline.
    let req = Request {
        id: "8f1d0c36-9a51-4f4e-bc5c-0b7f3c2a9e01".into(),
        inputs: vec![
            ByteBuf::from(encode_go(&1i64).unwrap()),
            ByteBuf::from(encode_go(&2i64).unwrap()),
        ],
        object: calc_id(),
        reply_to: "go-reply-queue".into(),
        method: "Add".into(),
        deadline: None,
    };
    let bytes = encode_go(&req).unwrap();
    assert_eq!(&bytes[..1], &[0x85], "five keys, no Deadline");
    let _: () = redis::cmd("RPUSH")
        .arg("test.calc@1")
        .arg(bytes)
        .query_async(&mut conn)
        .await
        .unwrap();
    // The reply lands on ReplyTo (not on ID) with a TTL of 300 s.
    let ttl = eventually(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move {
            let ttl: i64 = redis::cmd("TTL")
                .arg("go-reply-queue")
                .query_async(&mut conn)
                .await
                .ok()?;
            (ttl > 0).then_some(ttl)
        }
    })
    .await
    .expect("a reply on ReplyTo");
    assert!(ttl <= 300, "{ttl}");
    let on_id: i64 = redis::cmd("EXISTS")
        .arg(&req.id)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(on_id, 0);
    let (_, reply): (String, Vec<u8>) = redis::cmd("BLPOP")
        .arg("go-reply-queue")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Exactly Go's Response layout: 3 keys, Data a bin, both errors nil, no Code key.
    let expected = [
        &[0x83, 0xa2][..],
        b"ID",
        &[0xd9, 36],
        req.id.as_bytes(),
        &[0xa6],
        b"Output",
        &[0x82, 0xa4],
        b"Data",
        &[0xc4, 0x09],
        &encode(&3.0f64).unwrap(),
        &[0xa5],
        b"Error",
        &[0xc0, 0xa5],
        b"Error",
        &[0xc0],
    ]
    .concat();
    assert_eq!(reply, expected);
    let resp: Response = decode(&reply).unwrap();
    assert_eq!(decode_data::<f64>(&resp.output.data).unwrap(), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_queue_does_not_starve_the_other_objects() {
    let redis = RedisFixture::start();
    let mut conn = raw(&redis).await;
    // 100 queued 20 ms calls on calc@1, the first key in BLPOP order.
    for i in 0..100 {
        let req = Request {
            id: format!("flood-{i}"),
            inputs: vec![encode_arg(&20u64).unwrap()],
            object: calc_id(),
            reply_to: "flood-replies".into(),
            method: "Sleep".into(),
            deadline: None,
        };
        let _: () = redis::cmd("RPUSH")
            .arg("test.calc@1")
            .arg(encode(&req).unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _s = serve(
        &redis.url(),
        1,
        vec![Arc::new(Calc::default()), Arc::new(Other)],
    )
    .await;
    let client = Client::connect(redis.url()).await.unwrap();
    let started = Instant::now();
    let pong: String = client
        .call(MODULE, &ObjectId::new("other", "1"), "Ping", vec![])
        .await
        .unwrap();
    assert_eq!(pong, "pong");
    // Draining the flood first would take 2 s; rotating the key order serves Ping within
    // a couple of pops.
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "took {:?}",
        started.elapsed()
    );
    let left: i64 = redis::cmd("LLEN")
        .arg("test.calc@1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left > 50, "the flood was not drained first ({left} left)");
}
