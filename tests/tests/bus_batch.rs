//! Batching over a real private redis-server (docs/protocol.md, "Batching" and "Reply
//! lists"): Go-style peers on both sides of a batching server and a shared-list client, a
//! server killed in the middle of a batch, a slow call inside a batch, the reply reader
//! dying, and servers whose Redis refuses `BLMPOP` or `LPOP … COUNT`.

mod bus_common;

use bus_common::*;
use imagebus_bus::codec::{decode, decode_data, encode, encode_arg, encode_go};
use imagebus_bus::protocol::{Output, Request, Response};
use imagebus_bus::{Client, DispatchError, ErrorCode, Object, ObjectId, Reply, Server};
use imagebus_tests::redis::RedisFixture;
use serde_bytes::ByteBuf;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often Redis ran `command` so far (`INFO commandstats`).
fn calls_of(redis: &RedisFixture, command: &str) -> u64 {
    let info = redis.command(&["INFO", "commandstats"]).unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn push(conn: &mut redis::aio::MultiplexedConnection, queue: &str, bytes: Vec<u8>) {
    let _: () = redis::cmd("RPUSH")
        .arg(queue)
        .arg(bytes)
        .query_async(conn)
        .await
        .unwrap();
}

/// A Go zbus client's `Add(i, 1)` request, Go-encoded, replying to its own UUID list.
fn go_add(i: i64) -> Request {
    let args = vec![encode_go(&i).unwrap(), encode_go(&1i64).unwrap()];
    go_request(i.unsigned_abs(), "Add", args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_style_callers_get_their_replies_from_a_batching_server() {
    let redis = RedisFixture::start();
    let mut conn = raw(&redis).await;
    // Queued before the server starts, so that its pulls find batches waiting.
    let requests: Vec<Request> = (0..48).map(go_add).collect();
    for r in &requests {
        push(&mut conn, "test.calc@1", encode_go(r).unwrap()).await;
    }
    let _s = serve(&redis.url(), 8, vec![Arc::new(Calc::default())]).await;
    for (i, r) in requests.iter().enumerate() {
        let (_, reply): (String, Vec<u8>) = redis::cmd("BLPOP")
            .arg(&r.reply_to)
            .arg(5)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("reply {i}: {e}"));
        let resp: Response = decode(&reply).unwrap();
        assert_eq!(resp.id, r.id);
        assert_eq!(
            decode_data::<f64>(&resp.output.data).unwrap(),
            i as f64 + 1.0
        );
        let ttl: i64 = redis::cmd("TTL")
            .arg(&r.reply_to)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl == -2 || (0..=300).contains(&ttl), "{ttl}");
    }
    // The test's own 48 BLPOPs and the status puller's one aside, the server pulled the
    // 48 requests in batches of up to 8.
    let multi = calls_of(&redis, "blmpop");
    let single = calls_of(&redis, "blpop").saturating_sub(48 + 1);
    assert!(
        multi > 0 && multi + single <= 24,
        "48 requests in {multi} BLMPOPs and {single} BLPOPs: batched"
    );
}

/// The (ID, ReplyTo) of every request a Go-style server saw.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A server of the old shape, as Go zbus v1 is: one `BLPOP` per request, the reply pushed
/// to `ReplyTo` as it is (to `ID` instead when `by_id`, as rbus does). Records every
/// `ReplyTo` it saw.
fn go_style_server(
    url: &str,
    by_id: bool,
    stop: CancellationToken,
) -> (tokio::task::JoinHandle<()>, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let info = imagebus_bus::broker::Broker::parse(url)
        .unwrap()
        .connection_info()
        .clone();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut conn = redis::Client::open(info)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        while !stop.is_cancelled() {
            let popped: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
                .arg("test.calc@1")
                .arg(0.2)
                .query_async(&mut conn)
                .await
                .unwrap();
            let Some((_, bytes)) = popped else { continue };
            let req: Request = decode(&bytes).unwrap();
            record
                .lock()
                .unwrap()
                .push((req.id.clone(), req.reply_to.clone()));
            let a: f64 = decode_data(&req.inputs[0]).unwrap();
            let b: f64 = decode_data(&req.inputs[1]).unwrap();
            let resp = Response {
                id: req.id.clone(),
                output: Output {
                    data: ByteBuf::from(encode_go(&(a + b)).unwrap()),
                    error: None,
                },
                error: None,
                code: None,
            };
            let to = if by_id { &req.id } else { &req.reply_to };
            let mut pipe = redis::pipe();
            pipe.cmd("RPUSH")
                .arg(to)
                .arg(encode_go(&resp).unwrap())
                .ignore();
            pipe.cmd("EXPIRE").arg(to).arg(300).ignore();
            let _: () = pipe.query_async(&mut conn).await.unwrap();
        }
    });
    (task, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_list_client_calls_a_go_style_server_that_replies_to_reply_to() {
    let redis = RedisFixture::start();
    let stop = CancellationToken::new();
    let (server, seen) = go_style_server(&redis.url(), false, stop.clone());
    let client = Client::builder(redis.url())
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let calls = (0..16).map(|i| {
        let client = client.clone();
        async move {
            client
                .call::<f64>(MODULE, &calc_id(), "Add", args2(i as f64, 1.0))
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as f64 + 1.0, "call {i}");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 16);
    let lists: HashSet<&String> = seen.iter().map(|(_, to)| to).collect();
    assert_eq!(lists.len(), 1, "one reply list for the client: {lists:?}");
    let ids: HashSet<&String> = seen.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 16, "an ID per call");
    assert!(seen.iter().all(|(id, to)| id != to));
    assert_eq!(client.stray_replies(), 0);
    stop.cancel();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_replying_to_id_needs_per_call_replies() {
    let redis = RedisFixture::start();
    let stop = CancellationToken::new();
    let (server, _) = go_style_server(&redis.url(), true, stop.clone());
    let per_call = Client::builder(redis.url())
        .per_call_replies(true)
        .build()
        .await
        .unwrap();
    let sum: f64 = per_call
        .call(MODULE, &calc_id(), "Add", args2(2.0, 3.0))
        .await
        .unwrap();
    assert_eq!(sum, 5.0, "rbus-style servers answer a per-call client");
    // The shared list never sees a reply sent to the ID: the documented trade-off.
    let shared = Client::builder(redis.url())
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let err = shared
        .call::<f64>(MODULE, &calc_id(), "Add", args2(2.0, 3.0))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    stop.cancel();
    server.await.unwrap();
}

/// Records every request it starts; each takes 300 ms.
#[derive(Default)]
struct Ledger {
    started: Mutex<HashMap<u64, usize>>,
}

#[async_trait::async_trait]
impl Object for Ledger {
    fn id(&self) -> ObjectId {
        ObjectId::new("ledger", "1")
    }
    fn methods(&self) -> &'static [&'static str] {
        &["Work"]
    }
    async fn dispatch(&self, _m: &str, inputs: Vec<ByteBuf>) -> Result<Reply, DispatchError> {
        let n: u64 = imagebus_bus::codec::decode_arg(&inputs, 0)?;
        *self.started.lock().unwrap().entry(n).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(imagebus_bus::codec::encode_reply(Ok(n)))
    }
}

async fn serve_ledger(url: &str, ledger: Arc<Ledger>) -> tokio::task::JoinHandle<()> {
    let mut server = Server::builder(url, MODULE)
        .workers(4)
        .build()
        .await
        .unwrap();
    server.register_arc(ledger).unwrap();
    tokio::spawn(async move {
        server.run(CancellationToken::new()).await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_batch_runs_no_request_twice() {
    let redis = RedisFixture::start();
    let ledger = Arc::new(Ledger::default());
    let client = Client::builder(redis.url())
        .timeout(Duration::from_secs(4))
        .build()
        .await
        .unwrap();
    let id = ObjectId::new("ledger", "1");
    let calls: Vec<_> = (0..24u64)
        .map(|n| {
            let (client, id) = (client.clone(), id.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let r = client
                    .call::<u64>(MODULE, &id, "Work", vec![encode_arg(&n).unwrap()])
                    .await;
                (n, r, started.elapsed())
            })
        })
        .collect();
    let queued = eventually(Duration::from_secs(2), || async {
        (redis.command(&["LLEN", "test.ledger@1"]).ok()? == ":24\r\n").then_some(())
    })
    .await;
    assert!(queued.is_some(), "24 requests queued");
    // The first server pulls a batch of 4 (its free workers) and is killed while they run:
    // the task is aborted, its connections close, nothing more is sent.
    let first = serve_ledger(&redis.url(), ledger.clone()).await;
    let running = eventually(Duration::from_secs(2), || async {
        (ledger.started.lock().unwrap().len() >= 4).then_some(())
    })
    .await;
    assert!(running.is_some(), "the first batch started");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let pulled_by_first = ledger.started.lock().unwrap().len();
    assert!(
        pulled_by_first <= 4,
        "no more than the free workers: {pulled_by_first}"
    );
    // Everything not pulled is still queued, for the next server.
    let left = redis.command(&["LLEN", "test.ledger@1"]).unwrap();
    assert_eq!(left, format!(":{}\r\n", 24 - pulled_by_first));
    let second = serve_ledger(&redis.url(), ledger.clone()).await;
    let mut ok = 0;
    for c in calls {
        let (n, r, took) = c.await.unwrap();
        assert!(
            took < Duration::from_millis(5500),
            "call {n} returned in {took:?}"
        );
        match r {
            Ok(v) => {
                assert_eq!(v, n);
                ok += 1;
            }
            Err(e) => {
                assert_eq!(e.code, ErrorCode::Timeout, "call {n}: {e}");
                assert!(e.message.contains("a server took the request"), "{e}");
            }
        }
    }
    let started = ledger.started.lock().unwrap().clone();
    assert!(
        started.values().all(|&times| times == 1),
        "a request ran twice: {started:?}"
    );
    assert_eq!(started.len(), 24, "every request ran once");
    assert_eq!(
        ok,
        24 - pulled_by_first,
        "the killed batch's callers timed out"
    );
    second.abort();
}

/// The id of the client connection named `name` (`CLIENT LIST`).
fn client_named(redis: &RedisFixture, name: &str) -> Option<String> {
    let list = redis.command(&["CLIENT", "LIST"]).ok()?;
    list.lines()
        .find(|l| l.contains(&format!(" name={name} ")))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_reader_dying_fails_waiting_calls_at_once_and_the_next_call_recovers() {
    let redis = RedisFixture::start();
    let _s = serve(&redis.url(), 4, vec![Arc::new(Calc::default())]).await;
    let client = Client::builder(redis.url())
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    assert_eq!(
        client
            .call::<f64>(MODULE, &calc_id(), "Add", args2(1.0, 1.0))
            .await
            .unwrap(),
        2.0
    );

    // The task dies (as a panic would end it).
    let slow: Vec<_> = (0..3).map(|_| spawn_sleep(&client, 600)).collect();
    assert!(a_worker_is_busy(&client).await);
    let started = Instant::now();
    assert!(client.abort_reply_reader(), "a reader was running");
    for s in slow {
        let err = s.await.unwrap().unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "failed at once, not at the end of the call: {:?}",
        started.elapsed()
    );
    assert_eq!(
        client
            .call::<f64>(MODULE, &calc_id(), "Add", args2(2.0, 2.0))
            .await
            .unwrap(),
        4.0,
        "the next call starts a new reader"
    );
    // The three abandoned calls' replies reached the list after their callers gave up.
    let strays = eventually(Duration::from_secs(3), || {
        let client = client.clone();
        async move {
            client
                .call::<f64>(MODULE, &calc_id(), "Add", args2(0.0, 0.0))
                .await
                .ok()?;
            (client.stray_replies() >= 3).then_some(())
        }
    })
    .await;
    assert!(strays.is_some(), "strays: {}", client.stray_replies());

    // Its connection is killed: the calls waiting fail cleanly, the reader reconnects.
    let slow: Vec<_> = (0..3).map(|_| spawn_sleep(&client, 600)).collect();
    assert!(a_worker_is_busy(&client).await);
    let reader =
        client_named(&redis, imagebus_bus::client::READER_NAME).expect("reader connection");
    let killed = redis.command(&["CLIENT", "KILL", "ID", &reader]).unwrap();
    assert_eq!(killed, ":1\r\n");
    for s in slow {
        match s.await.unwrap() {
            Ok(v) => assert_eq!(v, 600),
            Err(e) => assert_eq!(e.code, ErrorCode::Unavailable, "{e}"),
        }
    }
    let sum = eventually(Duration::from_secs(3), || {
        let client = client.clone();
        async move {
            client
                .call::<f64>(MODULE, &calc_id(), "Add", args2(3.0, 3.0))
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(sum, Some(6.0));
}

/// `ACL SETUSER` for a module user of `test` without the `minus` commands.
fn module_user_without(redis: &RedisFixture, user: &str, minus: &[&str]) -> String {
    let mut rules = imagebus_bus::acl::module_rules(user, &["test"]).unwrap();
    rules.extend(minus.iter().map(|c| format!("-{c}")));
    let mut args = vec!["ACL", "SETUSER", user, "on", ">pw"];
    args.extend(rules.iter().map(String::as_str));
    let r = redis.command(&args).unwrap();
    assert_eq!(r, "+OK\r\n", "{args:?}");
    format!("unix://{user}:pw@{}", redis.socket().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_whose_redis_refuses_blmpop_or_lpop_count_still_serve() {
    for (user, minus, batches_with) in [
        ("nomulti", &["blmpop"][..], Some("lpop")),
        ("nobatch", &["blmpop", "lpop"][..], None),
    ] {
        let redis = RedisFixture::start();
        let url = module_user_without(&redis, user, minus);
        let mut conn = raw(&redis).await;
        let requests: Vec<Request> = (0..24).map(go_add).collect();
        for r in &requests {
            push(&mut conn, "test.calc@1", encode(r).unwrap()).await;
        }
        let _s = serve(&url, 8, vec![Arc::new(Calc::default())]).await;
        for (i, r) in requests.iter().enumerate() {
            let (_, reply): (String, Vec<u8>) = redis::cmd("BLPOP")
                .arg(&r.reply_to)
                .arg(5)
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{user}: reply {i}: {e}"));
            let resp: Response = decode(&reply).unwrap();
            assert_eq!(
                decode_data::<f64>(&resp.output.data).unwrap(),
                i as f64 + 1.0
            );
        }
        assert_eq!(calls_of(&redis, "blmpop"), 0, "{user}");
        match batches_with {
            Some(cmd) => assert!(calls_of(&redis, cmd) > 0, "{user}: batches with {cmd}"),
            None => assert!(
                calls_of(&redis, "blpop") >= 24,
                "{user}: one BLPOP per request"
            ),
        }
    }
}

/// The requests waiting in `queue`, decoded.
async fn queued(conn: &mut redis::aio::MultiplexedConnection, queue: &str) -> Vec<Request> {
    let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(queue)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    items.iter().map(|b| decode(b).unwrap()).collect()
}

// One runtime thread: the 64 callers all take their turn before the first push's answer
// is read, so all but the first queue behind it and go out together.
#[tokio::test]
async fn concurrent_callers_pushes_go_out_as_one_rpush_per_queue() {
    let redis = RedisFixture::start();
    let mut conn = raw(&redis).await;
    // A key of the wrong type: pushes to it are refused, per queue.
    let _: () = redis::cmd("SET")
        .arg("test.wrong@1")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let client = Client::builder(redis.url())
        .timeout(Duration::from_millis(1500))
        .build()
        .await
        .unwrap();
    let before = calls_of(&redis, "rpush");
    // No server: the requests stay queued until their callers withdraw them.
    let calls: Vec<_> = (0..72)
        .map(|i| {
            let client = client.clone();
            let object = if i % 9 == 8 {
                ObjectId::parse("wrong@1")
            } else {
                calc_id()
            };
            tokio::spawn(async move {
                let r = client
                    .call::<f64>(MODULE, &object, "Add", args2(i as f64, 1.0))
                    .await;
                (i, r)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut waiting = queued(&mut conn, "test.calc@1").await;
    while waiting.len() < 64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        waiting = queued(&mut conn, "test.calc@1").await;
    }
    let pushes = calls_of(&redis, "rpush") - before;
    assert_eq!(
        waiting.len(),
        64,
        "every request to the good queue is queued once"
    );
    let ids: HashSet<&String> = waiting.iter().map(|r| &r.id).collect();
    assert_eq!(ids.len(), 64, "no request queued twice");
    assert!(
        pushes <= 8,
        "72 requests from concurrent callers took {pushes} RPUSHes: coalesced"
    );
    for c in calls {
        let (i, r) = c.await.unwrap();
        let err = r.expect_err("no server answers");
        if i % 9 == 8 {
            assert_eq!(err.code, ErrorCode::Unavailable, "call {i}: {err}");
            assert!(err.message.contains("WRONGTYPE"), "call {i}: {err}");
        } else {
            assert_eq!(err.code, ErrorCode::Timeout, "call {i}: {err}");
            assert!(err.message.contains("withdrawn"), "call {i}: {err}");
        }
    }
    assert!(queued(&mut conn, "test.calc@1").await.is_empty());
}

/// A Go-style request for `method` on `calc@1` with Go-encoded `inputs`, replying to its
/// own list.
fn go_request(n: u64, method: &str, inputs: Vec<Vec<u8>>) -> Request {
    let id = format!("5b0e7a14-3c2d-4e6f-8a9b-{n:012}");
    Request {
        id: id.clone(),
        inputs: inputs.into_iter().map(ByteBuf::from).collect(),
        object: calc_id(),
        reply_to: id,
        method: method.into(),
        deadline: None,
    }
}

/// The reply on `list` within `secs` seconds (BLPOPs of at most 250 ms, within the
/// connection's response timeout), decoded; `None` on timeout.
async fn reply_on(
    conn: &mut redis::aio::MultiplexedConnection,
    list: &str,
    secs: f64,
) -> Option<Response> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let popped: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
            .arg(list)
            .arg(left.as_secs_f64().clamp(0.01, 0.25))
            .query_async(conn)
            .await
            .unwrap();
        if let Some((_, bytes)) = popped {
            return Some(decode(&bytes).unwrap());
        }
    }
}

// The calls of one pulled batch run on one task (docs/protocol.md, "Batching"): a slow
// call must not hold back the replies of the quick ones pulled with it, and a handler
// that panics must cost only its own call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_does_not_hold_back_the_quick_ones_of_its_batch() {
    let redis = RedisFixture::start();
    let mut conn = raw(&redis).await;
    // Queued before the server starts: its first pull takes all nine as one batch.
    let slow = go_request(0, "Sleep", vec![encode_go(&6000u64).unwrap()]);
    let panics = go_request(1, "Panic", vec![]);
    let quick: Vec<Request> = (2..9)
        .map(|n| {
            let args = vec![encode_go(&(n as f64)).unwrap(), encode_go(&1.0f64).unwrap()];
            go_request(n, "Add", args)
        })
        .collect();
    for r in std::iter::once(&slow).chain([&panics]).chain(&quick) {
        push(&mut conn, "test.calc@1", encode_go(r).unwrap()).await;
    }
    let _s = serve(&redis.url(), 9, vec![Arc::new(Calc::default())]).await;
    let started = Instant::now();
    for (n, r) in (2..9).zip(&quick) {
        let resp = reply_on(&mut conn, &r.reply_to, 4.0)
            .await
            .unwrap_or_else(|| panic!("no reply to the quick call {n} within 4 s"));
        assert_eq!(resp.id, r.id);
        assert_eq!(
            decode_data::<f64>(&resp.output.data).unwrap(),
            n as f64 + 1.0
        );
    }
    let resp = reply_on(&mut conn, &panics.reply_to, 4.0)
        .await
        .expect("the panicking call is answered");
    assert_eq!(resp.code.as_deref(), Some("Internal"), "{resp:?}");
    assert!(
        resp.error
            .as_deref()
            .unwrap_or("")
            .contains("deliberate test panic"),
        "{resp:?}"
    );
    let quick_took = started.elapsed();
    assert!(
        quick_took < Duration::from_secs(5),
        "the quick calls waited for the slow one: {quick_took:?}"
    );
    let len: i64 = redis::cmd("LLEN")
        .arg(&slow.reply_to)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0, "the slow call is still running");
    let resp = reply_on(&mut conn, &slow.reply_to, 10.0)
        .await
        .expect("the slow call is answered once it ends");
    assert_eq!(decode_data::<u64>(&resp.output.data).unwrap(), 6000);
    assert!(
        calls_of(&redis, "blmpop") >= 1,
        "the server pulled with BLMPOP"
    );
}

// One runtime thread, as when the reader hands a pop's replies to their callers at once:
// the first caller to take a turn finds no push in flight, yet waits one scheduler turn
// for the others and sends theirs with its own, first, in one RPUSH; not its own alone
// and the rest after it, which would split every batch in two on each round trip.
#[tokio::test]
async fn callers_woken_together_push_together_the_first_one_first() {
    let redis = RedisFixture::start();
    let mut conn = raw(&redis).await;
    let client = Client::builder(redis.url())
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    // A served call first, so the push connection and the reader are up: the callers
    // below then take their turns without waiting for a connection.
    let _s = serve(&redis.url(), 2, vec![Arc::new(Calc::default())]).await;
    let warm: f64 = client
        .call(MODULE, &calc_id(), "Add", args2(1.0, 1.0))
        .await
        .unwrap();
    assert_eq!(warm, 2.0);
    // No server serves `idle@1`: its requests stay queued until withdrawn.
    let idle = ObjectId::parse("idle@1");
    let before = calls_of(&redis, "rpush");
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let (client, idle) = (client.clone(), idle.clone());
            tokio::spawn(async move {
                client
                    .call::<f64>(MODULE, &idle, "Add", args2(i as f64, 1.0))
                    .await
            })
        })
        .collect();
    let waiting = eventually(Duration::from_secs(3), || {
        let mut conn = conn.clone();
        async move {
            let q = queued(&mut conn, "test.idle@1").await;
            (q.len() == 8).then_some(q)
        }
    })
    .await
    .expect("all eight requests queued");
    assert_eq!(
        calls_of(&redis, "rpush") - before,
        1,
        "eight callers that took their turns together pushed in one RPUSH"
    );
    let first: f64 = imagebus_bus::codec::decode_arg(&waiting[0].inputs, 0).unwrap();
    assert_eq!(first, 0.0, "the caller that took the first turn goes first");
    for c in calls {
        let err = c.await.unwrap().expect_err("no server answers");
        assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    }
    assert!(
        queued(&mut conn, "test.idle@1").await.is_empty(),
        "withdrawn"
    );
}
