//! Shared by the bus_*.rs integration tests: hand-written `Object`s and a server guard.
#![allow(dead_code)]

use futures::StreamExt;
use imagebus_bus::codec::{decode_arg, encode_reply};
use imagebus_bus::{DispatchError, Object, ObjectId, RemoteError, Reply, Server, StreamSource};
use serde_bytes::ByteBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const MODULE: &str = "test";

pub fn calc_id() -> ObjectId {
    ObjectId::new("calc", "1")
}

fn arity(inputs: &[ByteBuf], expected: usize) -> Result<(), DispatchError> {
    if inputs.len() == expected {
        Ok(())
    } else {
        Err(DispatchError::Arity {
            expected,
            got: inputs.len(),
        })
    }
}

/// `calc@1`: arithmetic plus methods that misbehave on purpose.
#[derive(Default)]
pub struct Calc {
    /// How many calls reached `Count`.
    pub counted: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Object for Calc {
    fn id(&self) -> ObjectId {
        calc_id()
    }

    fn methods(&self) -> &'static [&'static str] {
        &[
            "Add", "Divide", "Echo", "Sleep", "Panic", "Count", "Nothing",
        ]
    }

    async fn dispatch(&self, method: &str, inputs: Vec<ByteBuf>) -> Result<Reply, DispatchError> {
        match method {
            "Add" => {
                arity(&inputs, 2)?;
                let a: f64 = decode_arg(&inputs, 0)?;
                let b: f64 = decode_arg(&inputs, 1)?;
                Ok(encode_reply(Ok(a + b)))
            }
            "Divide" => {
                arity(&inputs, 2)?;
                let a: f64 = decode_arg(&inputs, 0)?;
                let b: f64 = decode_arg(&inputs, 1)?;
                if b == 0.0 {
                    return Ok(encode_reply::<f64>(Err(RemoteError::invalid_argument(
                        "division by zero",
                    ))));
                }
                Ok(encode_reply(Ok(a / b)))
            }
            "Echo" => {
                arity(&inputs, 1)?;
                let s: String = decode_arg(&inputs, 0)?;
                Ok(encode_reply(Ok(s)))
            }
            "Sleep" => {
                arity(&inputs, 1)?;
                let ms: u64 = decode_arg(&inputs, 0)?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(encode_reply(Ok(ms)))
            }
            "Panic" => {
                arity(&inputs, 0)?;
                panic!("deliberate test panic");
            }
            "Count" => {
                let n = self.counted.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(encode_reply(Ok(n as u64)))
            }
            "Nothing" => Ok(encode_reply(Ok(()))),
            other => Err(DispatchError::UnknownMethod(other.to_string())),
        }
    }
}

/// `other@1`: one quick method, to show other objects keep being served.
pub struct Other;

#[async_trait::async_trait]
impl Object for Other {
    fn id(&self) -> ObjectId {
        ObjectId::new("other", "1")
    }

    fn methods(&self) -> &'static [&'static str] {
        &["Ping"]
    }

    async fn dispatch(&self, method: &str, _inputs: Vec<ByteBuf>) -> Result<Reply, DispatchError> {
        match method {
            "Ping" => Ok(encode_reply(Ok("pong"))),
            other => Err(DispatchError::UnknownMethod(other.to_string())),
        }
    }
}

/// `ticker@1`: publishes an increasing counter on event `Tick` every 10 ms.
pub struct Ticker;

#[async_trait::async_trait]
impl Object for Ticker {
    fn id(&self) -> ObjectId {
        ObjectId::new("ticker", "1")
    }

    fn methods(&self) -> &'static [&'static str] {
        &[]
    }

    async fn dispatch(&self, method: &str, _inputs: Vec<ByteBuf>) -> Result<Reply, DispatchError> {
        Err(DispatchError::UnknownMethod(method.to_string()))
    }

    fn streams(&self) -> Vec<StreamSource> {
        let ticks = futures::stream::unfold(0u64, |n| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Some((n, n + 1))
        });
        vec![StreamSource {
            name: "Tick",
            values: ticks
                .map(|n| imagebus_bus::codec::encode_value(&n).unwrap())
                .boxed(),
        }]
    }
}

/// A running server; cancelled when dropped. `stop().await` waits for it to return.
pub struct Serving {
    pub stop: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl Serving {
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn serve(url: &str, workers: usize, objects: Vec<Arc<dyn Object>>) -> Serving {
    let mut server = Server::builder(url, MODULE)
        .workers(workers)
        .build()
        .await
        .unwrap();
    for o in objects {
        server.register_arc(o).unwrap();
    }
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(async move { server.run(token).await.unwrap() });
    Serving {
        stop,
        handle: Some(handle),
    }
}

pub fn args2(a: f64, b: f64) -> Vec<ByteBuf> {
    vec![
        imagebus_bus::codec::encode_arg(&a).unwrap(),
        imagebus_bus::codec::encode_arg(&b).unwrap(),
    ]
}

/// Polls `check` every 10 ms until it returns `Some` or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Calls `Sleep(ms)` on the calc object in the background; it holds one worker meanwhile.
pub fn spawn_sleep(client: &imagebus_bus::Client, ms: u64) -> JoinHandle<Result<u64, RemoteError>> {
    let client = client.clone();
    tokio::spawn(async move {
        client
            .call::<u64>(
                MODULE,
                &calc_id(),
                "Sleep",
                vec![imagebus_bus::codec::encode_arg(&ms).unwrap()],
            )
            .await
    })
}

/// Waits up to 2 s until the module's status shows a busy worker.
pub async fn a_worker_is_busy(client: &imagebus_bus::Client) -> bool {
    eventually(Duration::from_secs(2), || async {
        let st = client.status(MODULE).await.ok()?;
        st.workers.iter().any(|w| w.state == "busy").then_some(())
    })
    .await
    .is_some()
}

/// A plain redis-rs connection to the fixture, for pushing raw bytes and inspecting keys.
pub async fn raw(redis: &imagebus_tests::redis::RedisFixture) -> redis::aio::MultiplexedConnection {
    let info = imagebus_bus::broker::Broker::parse(&redis.url())
        .unwrap()
        .connection_info()
        .clone();
    redis::Client::open(info)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
