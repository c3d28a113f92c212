//! Deadlines, malformed payloads, Redis restarts, silent connections and graceful shutdown,
//! against a real private redis-server.

mod bus_common;

use bus_common::*;
use imagebus_bus::broker::Broker;
use imagebus_bus::codec::{decode, encode, encode_arg};
use imagebus_bus::protocol::{Request, Response};
use imagebus_bus::{Client, ErrorCode};
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::relay::Relay;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_without_server_times_out_at_its_deadline() {
    let redis = RedisFixture::start();
    let client = Client::connect(redis.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = client
        .call::<f64>(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // Nobody took it: the caller withdrew its request, so no server can run it late.
    assert!(err.message.contains("no server took the request"), "{err}");
    assert_eq!(queue_len(&redis, "test.calc@1").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_taken_by_a_server_but_not_answered_in_time_says_so() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let err = client
        .with_timeout(Duration::from_millis(300))
        .call::<u64>(
            MODULE,
            &calc_id(),
            "Sleep",
            vec![encode_arg(&1000u64).unwrap()],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(err.message.contains("a server took the request"), "{err}");
}

/// A request still queued after its deadline (e.g. pushed by a caller that died before it
/// could withdraw it) is skipped by our servers and answered with a `Timeout` error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_whose_deadline_passed_is_not_executed() {
    let redis = RedisFixture::start();
    let client = Client::connect(redis.url()).await.unwrap();
    let stale = Request {
        id: "stale-1".into(),
        inputs: vec![],
        object: calc_id(),
        reply_to: "stale-1".into(),
        method: "Count".into(),
        deadline: Some(imagebus_bus::protocol::unix_ms(std::time::SystemTime::now()) - 1000),
    };
    let mut conn = raw(&redis).await;
    let _: i64 = redis::cmd("RPUSH")
        .arg("test.calc@1")
        .arg(encode(&stale).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();

    let calc = Calc::default();
    let counted = calc.counted.clone();
    let _s = serve(&redis.url(), 1, vec![Arc::new(calc)]).await;
    let n: u64 = client
        .call(MODULE, &calc_id(), "Count", vec![])
        .await
        .unwrap();
    assert_eq!(n, 1, "the stale Count was skipped, only ours ran");
    assert_eq!(counted.load(Ordering::SeqCst), 1);
    let (_, reply): (String, Vec<u8>) = redis::cmd("BLPOP")
        .arg("stale-1")
        .arg(2)
        .query_async(&mut conn)
        .await
        .unwrap();
    let reply: Response = decode(&reply).unwrap();
    assert_eq!(reply.code.as_deref(), Some("Timeout"), "{reply:?}");
}

async fn queue_len(redis: &RedisFixture, queue: &str) -> i64 {
    redis::cmd("LLEN")
        .arg(queue)
        .query_async(&mut raw(redis).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_get_a_protocol_error_and_do_not_stall_the_server() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let mut conn = raw(&redis).await;

    // Not msgpack at all: logged and dropped.
    let _: () = redis::cmd("RPUSH")
        .arg("test.calc@1")
        .arg(&b"\xc1garbage"[..])
        .query_async(&mut conn)
        .await
        .unwrap();
    // A map with a readable ID and ReplyTo but a broken Inputs: answered with Decode.
    #[derive(serde::Serialize)]
    struct Broken {
        #[serde(rename = "ID")]
        id: &'static str,
        #[serde(rename = "ReplyTo")]
        reply_to: &'static str,
        #[serde(rename = "Inputs")]
        inputs: u32,
    }
    let broken = encode(&Broken {
        id: "bad-1",
        reply_to: "bad-1-reply",
        inputs: 5,
    })
    .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("test.calc@1")
        .arg(broken)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, bytes): (String, Vec<u8>) = redis::cmd("BLPOP")
        .arg("bad-1-reply")
        .arg(5)
        .query_async(&mut conn)
        .await
        .unwrap();
    let resp: Response = decode(&bytes).unwrap();
    assert_eq!(resp.id, "bad-1");
    assert_eq!(resp.code.as_deref(), Some("Decode"));
    assert!(resp.error.unwrap().starts_with("malformed request"));
    assert_eq!(
        resp.output.data.as_ref(),
        [0xc0],
        "Data is a bin holding nil"
    );

    let started = Instant::now();
    let sum: f64 = client
        .call(MODULE, &calc_id(), "Add", args2(1.0, 1.0))
        .await
        .unwrap();
    assert_eq!(sum, 2.0);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "no stall: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_traffic_then_calls_succeed_again() {
    let mut redis = RedisFixture::start();
    let _s = serve(&redis.url(), 4, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(2));

    let stop = tokio_util::sync::CancellationToken::new();
    let ok = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (client, stop, ok) = (client.clone(), stop.clone(), ok.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.is_cancelled() {
                    let r = client
                        .call::<u64>(
                            MODULE,
                            &calc_id(),
                            "Sleep",
                            vec![encode_arg(&20u64).unwrap()],
                        )
                        .await;
                    match r {
                        Ok(20) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(other) => panic!("wrong result {other}"),
                        Err(e) => {
                            errors.push(e.code);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                errors
            })
        })
        .collect();
    let traffic = eventually(Duration::from_secs(5), || {
        let ok = ok.clone();
        async move { (ok.load(Ordering::SeqCst) >= 20).then_some(()) }
    })
    .await;
    assert!(traffic.is_some(), "traffic before the restart");

    redis.restart();
    let before = ok.load(Ordering::SeqCst);
    let recovered = eventually(Duration::from_secs(10), || {
        let ok = ok.clone();
        async move { (ok.load(Ordering::SeqCst) >= before + 20).then_some(()) }
    })
    .await;
    stop.cancel();
    let mut codes = Vec::new();
    for c in callers {
        codes.extend(c.await.unwrap());
    }
    assert!(
        recovered.is_some(),
        "calls succeed again after the restart (errors: {codes:?})"
    );
    assert!(!codes.is_empty(), "in-flight callers saw the outage");
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, ErrorCode::Unavailable | ErrorCode::Timeout)),
        "clear transport errors only: {codes:?}"
    );
    // A fresh call and the status object work on the same, never restarted server.
    let sum: f64 = client
        .call(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap();
    assert_eq!(sum, 3.0);
    assert_eq!(client.status(MODULE).await.unwrap().workers.len(), 4);
}

/// A server idle across a Redis restart answers the first call after it: its replier's
/// connection died while no reply was due, and the first reply finds that out. That batch
/// is sent again on a fresh connection, not lost (the call would time out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_reply_after_a_restart_of_an_idle_servers_redis_arrives() {
    let mut redis = RedisFixture::start();
    let _s = serve(&redis.url(), 2, vec![Arc::new(Calc::default())]).await;
    let url = redis.url();
    let call = |timeout: Duration| {
        let url = url.clone();
        async move {
            let client = Client::connect(url).await?.with_timeout(timeout);
            client
                .call::<f64>(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
                .await
        }
    };
    // The replier has a connection: it sent this reply.
    assert_eq!(call(Duration::from_secs(5)).await.unwrap(), 3.0);
    redis.restart();
    // Each attempt is a new client, so a failure is the server's; the pullers take a
    // moment to reconnect, so early attempts may time out unserved (withdrawn).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let answered = loop {
        match call(Duration::from_secs(3)).await {
            Ok(sum) => break Some(sum),
            Err(e) => {
                assert!(
                    !e.message.contains("a server took the request"),
                    "a served call lost its reply: {e}"
                );
                seen.push(e);
            }
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answered, Some(3.0), "errors meanwhile: {seen:?}");
}

/// A connection that goes silent (no FIN, no RST: the peer vanished) is noticed by the
/// worker when its BLPOP is not answered within the pull timeout plus a grace; the worker
/// then reconnects and serves again. Without that, it would wait on the dead socket forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_goes_silent_reconnects_and_serves_again() {
    let redis = RedisFixture::start_with_tcp();
    let relay = Relay::start(redis.tcp_addr().unwrap()).await;
    let _s = serve(&relay.redis_url(), 1, vec![Arc::new(Calc::default())]).await;
    // The caller talks to Redis directly: only the server's connections go silent.
    let client = Client::connect(redis.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let sum: f64 = client
        .call(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap();
    assert_eq!(sum, 3.0);

    let before = relay.accepted();
    relay.freeze();
    // A request popped by the silent BLPOP is lost with it (its caller times out); once
    // the worker has given the connection up, calls are served again. Pull timeout 5 s +
    // grace 5 s, so 25 s is ample.
    let sum = eventually(Duration::from_secs(25), || {
        let client = client.clone();
        async move {
            client
                .call::<f64>(MODULE, &calc_id(), "Add", args2(2.0, 3.0))
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(sum, Some(5.0), "the worker never came back");
    assert!(
        relay.accepted() > before,
        "the server reconnected through the relay"
    );
}

/// A caller whose path to Redis goes silent gets `Timeout` at its deadline; the silence
/// (Redis always ends a BLPOP itself) drops the pool's idle connections too, which share
/// the dead path, so the very next call connects afresh and succeeds. With the shared
/// reply list, the push connection and the reply reader go with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connections_go_silent_loses_one_call_only() {
    for per_call in [true, false] {
        client_goes_silent(per_call).await;
    }
}

async fn client_goes_silent(per_call: bool) {
    let redis = RedisFixture::start_with_tcp();
    let relay = Relay::start(redis.tcp_addr().unwrap()).await;
    // The server talks to Redis directly: only the caller's connections go silent.
    let _s = serve(&redis.url(), 4, vec![Arc::new(Calc::default())]).await;
    let client = Client::builder(relay.redis_url())
        .per_call_replies(per_call)
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    // Four calls at once leave four idle connections in the pool (per call), or use the
    // push connection and the reply reader's (shared list).
    let sleeps: Vec<_> = (0..4).map(|_| spawn_sleep(&client, 100)).collect();
    for s in sleeps {
        assert_eq!(s.await.unwrap().unwrap(), 100);
    }
    let before = relay.accepted();
    let least = if per_call { 4 } else { 2 };
    assert!(
        before >= least,
        "{before} connections (per call: {per_call})"
    );

    relay.freeze();
    let err = client
        .call::<f64>(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    for i in 0..4 {
        let sum: f64 = client
            .call(MODULE, &calc_id(), "Add", args2(i as f64, 1.0))
            .await
            .unwrap_or_else(|e| {
                panic!("call {i} after the silent one (per call: {per_call}): {e}")
            });
        assert_eq!(sum, i as f64 + 1.0);
    }
    assert!(relay.accepted() > before, "the client reconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_redis_is_down() {
    let mut redis = RedisFixture::start();
    let client = Client::connect(redis.url()).await.unwrap();
    redis.stop();
    let started = Instant::now();
    let err = client
        .call::<f64>(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    redis.start_again();
    let _s = serve(&redis.url(), 1, vec![Arc::new(Calc::default())]).await;
    let sum = eventually(Duration::from_secs(5), || {
        let client = client.clone();
        async move {
            client
                .call::<f64>(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(sum, Some(3.0), "the client reconnected by itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_calls_then_stops_pulling() {
    let redis = RedisFixture::start();
    let serving = serve(&redis.url(), 2, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();
    let slow = spawn_sleep(&client, 400);
    assert!(a_worker_is_busy(&client).await);
    let started = Instant::now();
    serving.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "run returned in {:?}",
        started.elapsed()
    );
    assert_eq!(
        slow.await.unwrap().unwrap(),
        400,
        "the in-flight call was answered"
    );
    let err = client
        .with_timeout(Duration::from_millis(200))
        .call::<f64>(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::Timeout,
        "a stopped server pulls nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_callers_leave_no_blocked_connection_behind() {
    let redis = RedisFixture::start();
    let client = Client::connect(redis.url()).await.unwrap();
    // Nobody serves: each call blocks in BLPOP until its future is dropped.
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let id = calc_id();
                let call = client.call::<f64>(MODULE, &id, "Add", args2(1.0, 2.0));
                tokio::time::timeout(Duration::from_millis(200), call).await
            })
        })
        .collect();
    for c in calls {
        assert!(c.await.unwrap().is_err(), "the wrapper timed out first");
    }
    let blocked = eventually(Duration::from_secs(2), || async {
        let info = redis.command(&["INFO", "clients"]).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .filter(|n| n.trim() == "0")
            .map(|_| ())
    })
    .await;
    assert!(
        blocked.is_some(),
        "every abandoned BLPOP connection was closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_acl_user_urls_authenticate() {
    let redis = RedisFixture::start_with_password("s3cret");
    let socket = redis.socket().display().to_string();
    // Without credentials Redis refuses us; the error is clear and immediate.
    let err = Client::connect(redis.url()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    // Go form: the lone URL username is the password.
    let go_url = format!("unix://s3cret@{socket}");
    let _s = serve(&go_url, 1, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(&go_url).await.unwrap();
    let sum: f64 = client
        .call(MODULE, &calc_id(), "Add", args2(1.0, 2.0))
        .await
        .unwrap();
    assert_eq!(sum, 3.0);

    // An ACL user with its own password.
    let info = Broker::parse(&go_url).unwrap().connection_info().clone();
    let mut admin = redis::Client::open(info)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on", ">alicepw", "~*", "&*", "+@all"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    let acl = Client::connect(format!("unix://alice:alicepw@{socket}"))
        .await
        .unwrap();
    let sum: f64 = acl
        .call(MODULE, &calc_id(), "Add", args2(2.0, 2.0))
        .await
        .unwrap();
    assert_eq!(sum, 4.0);
    let err = Client::connect(format!("unix://alice:wrong@{socket}"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(
        !err.message.contains("wrong"),
        "the password is not echoed: {err}"
    );
}

/// A client shared with code on another runtime (an actor thread's) keeps working after
/// that runtime is gone: the connections it opened for that code belong to the client's
/// own runtime, so the next caller does not pick a dead one from the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_opened_from_a_runtime_that_ends_stay_usable() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 4, vec![Arc::new(Calc::default())]).await;
    let client = Client::connect(redis.url()).await.unwrap();

    // Several concurrent calls from a short-lived runtime on its own thread grow the pool
    // with connections opened while running there.
    let other = client.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let id = calc_id();
            let calls = (0..4).map(|_| other.call::<f64>(MODULE, &id, "Add", args2(1.0, 2.0)));
            for r in futures::future::join_all(calls).await {
                assert_eq!(r.unwrap(), 3.0);
            }
        });
        // `rt` is dropped here: every task it ran is gone.
    })
    .join()
    .unwrap();

    // Every pooled connection must still work from here.
    let id = calc_id();
    let calls = (0..8).map(|_| client.call::<f64>(MODULE, &id, "Add", args2(2.0, 2.0)));
    for r in futures::future::join_all(calls).await {
        assert_eq!(
            r.unwrap(),
            4.0,
            "a pooled connection died with the other runtime"
        );
    }
}
