//! The server half of `#[object]`, without Redis: `XServer::dispatch` and `streams` called
//! directly with arguments encoded as a client would.

use futures::StreamExt;
use imagebus_bus::__private::{decode_data, encode_arg, encode_value, ByteBuf};
use imagebus_bus::{DispatchError, ErrorCode, EventStream, Object, ObjectId, RemoteError, Reply};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    x: i64,
    y: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    n: u32,
}

/// A sample interface exercising every supported method shape.
#[imagebus_bus::object(module = "sample", version = "1")]
pub trait SampleModule: Send + Sync {
    /// Sum.
    async fn add(&self, a: i64, b: i64) -> Result<i64, RemoteError>;
    /// Unit result.
    async fn reset(&self) -> Result<(), RemoteError>;
    /// Tuple result: Go's multi-value return.
    async fn div_mod(&self, a: i64, b: i64) -> Result<(i64, i64), imagebus_bus::RemoteError>;
    /// Renamed on the wire.
    #[bus(name = "FarmID")]
    async fn farm_id(&self) -> Result<u32, RemoteError>;
    /// Option argument.
    async fn greet(&self, name: Option<String>) -> Result<String, RemoteError>;
    /// Struct arguments and result.
    async fn translate(&self, p: Point, by: Point) -> Result<Point, RemoteError>;
    /// Always fails with the given code.
    async fn fail(&self, what: String) -> Result<Vec<u8>, RemoteError>;
    /// Three ticks.
    #[bus(stream)]
    fn ticks(&self) -> EventStream<Tick>;
    /// Renamed event.
    #[bus(stream, name = "Other")]
    fn other_events(&self) -> futures::stream::BoxStream<'static, String>;
}

#[derive(Default)]
struct Sample {
    resets: AtomicU32,
}

#[imagebus_bus::async_trait]
impl SampleModule for Sample {
    async fn add(&self, a: i64, b: i64) -> Result<i64, RemoteError> {
        Ok(a + b)
    }
    async fn reset(&self) -> Result<(), RemoteError> {
        self.resets.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn div_mod(&self, a: i64, b: i64) -> Result<(i64, i64), RemoteError> {
        if b == 0 {
            return Err(RemoteError::invalid_argument("division by zero"));
        }
        Ok((a / b, a % b))
    }
    async fn farm_id(&self) -> Result<u32, RemoteError> {
        Ok(42)
    }
    async fn greet(&self, name: Option<String>) -> Result<String, RemoteError> {
        Ok(format!("hello {}", name.as_deref().unwrap_or("nobody")))
    }
    async fn translate(&self, p: Point, by: Point) -> Result<Point, RemoteError> {
        Ok(Point {
            x: p.x + by.x,
            y: p.y + by.y,
        })
    }
    async fn fail(&self, what: String) -> Result<Vec<u8>, RemoteError> {
        Err(RemoteError::not_found(format!("no {what}")))
    }
    fn ticks(&self) -> EventStream<Tick> {
        Box::pin(futures::stream::iter((1..=3).map(|n| Tick { n })))
    }
    fn other_events(&self) -> futures::stream::BoxStream<'static, String> {
        Box::pin(futures::stream::iter(vec!["a".to_string()]))
    }
}

fn server() -> (Arc<Sample>, SampleModuleServer<Sample>) {
    let imp = Arc::new(Sample::default());
    (imp.clone(), SampleModuleServer::new(imp))
}

fn arg<T: Serialize>(v: T) -> ByteBuf {
    encode_arg(&v).expect("test values encode")
}

/// Dispatches and decodes a successful reply.
async fn call<T: DeserializeOwned>(obj: &dyn Object, method: &str, inputs: Vec<ByteBuf>) -> T {
    match obj.dispatch(method, inputs).await {
        Ok(Reply::Value(bytes)) => decode_data(&bytes).expect("reply decodes"),
        other => panic!("{method}: expected a value, got {other:?}"),
    }
}

#[test]
fn id_and_methods_follow_the_declaration() {
    let (_, s) = server();
    assert_eq!(s.id(), ObjectId::new("sample_module", "1"));
    assert_eq!(
        s.methods(),
        &[
            "Add",
            "Reset",
            "DivMod",
            "FarmID",
            "Greet",
            "Translate",
            "Fail"
        ]
    );
    assert_eq!(SampleModuleStub::MODULE, "sample");
    assert_eq!(SampleModuleStub::NAME, "sample_module");
    assert_eq!(SampleModuleStub::VERSION, "1");
    assert_eq!(
        SampleModuleStub::object_id(),
        ObjectId::new("sample_module", "1")
    );
}

#[tokio::test]
async fn scalar_arguments_and_result() {
    let (_, s) = server();
    let sum: i64 = call(&s, "Add", vec![arg(40i64), arg(2i64)]).await;
    assert_eq!(sum, 42);
    // The reply bytes are exactly the codec's encoding of the value.
    assert_eq!(
        s.dispatch("Add", vec![arg(1i64), arg(2i64)]).await,
        Ok(Reply::Value(encode_value(&3i64).expect("encodes")))
    );
}

#[tokio::test]
async fn unit_result_calls_the_method() {
    let (imp, s) = server();
    let reply = s.dispatch("Reset", vec![]).await;
    assert_eq!(reply, Ok(Reply::Value(encode_value(&()).expect("encodes"))));
    let () = call(&s, "Reset", vec![]).await;
    assert_eq!(imp.resets.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn tuple_result_is_an_array() {
    let (_, s) = server();
    let pair: (i64, i64) = call(&s, "DivMod", vec![arg(17i64), arg(5i64)]).await;
    assert_eq!(pair, (3, 2));
    let as_array: Vec<i64> = call(&s, "DivMod", vec![arg(17i64), arg(5i64)]).await;
    assert_eq!(as_array, vec![3, 2]);
}

#[tokio::test]
async fn renamed_method_answers_only_to_its_wire_name() {
    let (_, s) = server();
    let id: u32 = call(&s, "FarmID", vec![]).await;
    assert_eq!(id, 42);
    assert_eq!(
        s.dispatch("FarmId", vec![]).await,
        Err(DispatchError::UnknownMethod("FarmId".into()))
    );
}

#[tokio::test]
async fn option_and_struct_arguments() {
    let (_, s) = server();
    let none: String = call(&s, "Greet", vec![arg(None::<String>)]).await;
    assert_eq!(none, "hello nobody");
    let some: String = call(&s, "Greet", vec![arg(Some("bob"))]).await;
    assert_eq!(some, "hello bob");
    let p: Point = call(
        &s,
        "Translate",
        vec![arg(Point { x: 1, y: 2 }), arg(Point { x: 10, y: 20 })],
    )
    .await;
    assert_eq!(p, Point { x: 11, y: 22 });
}

#[tokio::test]
async fn method_errors_become_error_replies() {
    let (_, s) = server();
    assert_eq!(
        s.dispatch("Fail", vec![arg("disk")]).await,
        Ok(Reply::Error(RemoteError::new(
            ErrorCode::NotFound,
            "no disk"
        )))
    );
    assert_eq!(
        s.dispatch("DivMod", vec![arg(1i64), arg(0i64)]).await,
        Ok(Reply::Error(RemoteError::invalid_argument(
            "division by zero"
        )))
    );
}

#[tokio::test]
async fn wrong_arity_is_a_protocol_error_with_go_text() {
    let (_, s) = server();
    let err = s
        .dispatch("Add", vec![arg(1i64)])
        .await
        .expect_err("one input for two");
    assert_eq!(
        err,
        DispatchError::Arity {
            expected: 2,
            got: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "invalid number of arguments expecting 2 got 1"
    );
    assert_eq!(err.code(), ErrorCode::Decode);
    let err = s
        .dispatch("Reset", vec![arg(1i64)])
        .await
        .expect_err("input for none");
    assert_eq!(
        err,
        DispatchError::Arity {
            expected: 0,
            got: 1
        }
    );
}

#[tokio::test]
async fn undecodable_argument_names_its_index() {
    let (imp, s) = server();
    match s.dispatch("Add", vec![arg(1i64), arg("two")]).await {
        Err(DispatchError::Decode { index, .. }) => assert_eq!(index, 1),
        other => panic!("expected a decode error, got {other:?}"),
    }
    match s
        .dispatch("Translate", vec![arg(Point { x: 1, y: 2 }), arg(vec![1u8])])
        .await
    {
        Err(DispatchError::Decode { index, .. }) => assert_eq!(index, 1),
        other => panic!("expected a decode error, got {other:?}"),
    }
    // Nothing ran.
    assert_eq!(imp.resets.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unknown_method_and_stream_names_are_not_callable() {
    let (_, s) = server();
    let err = s.dispatch("Nope", vec![]).await.expect_err("unknown");
    assert_eq!(err, DispatchError::UnknownMethod("Nope".into()));
    assert_eq!(err.code(), ErrorCode::UnknownMethod);
    // Event sources are published, not called; the Rust name is not a wire name either.
    for name in ["Ticks", "add"] {
        assert_eq!(
            s.dispatch(name, vec![]).await,
            Err(DispatchError::UnknownMethod(name.into()))
        );
    }
}

#[tokio::test]
async fn streams_publish_encoded_values() {
    let (_, s) = server();
    let sources = s.streams();
    let names: Vec<_> = sources.iter().map(|s| s.name).collect();
    assert_eq!(names, ["Ticks", "Other"]);
    let mut sources = sources.into_iter();
    let ticks = sources.next().expect("ticks source");
    let values: Vec<Vec<u8>> = ticks.values.collect().await;
    let decoded: Vec<Tick> = values
        .iter()
        .map(|v| decode_data(v).expect("decodes"))
        .collect();
    assert_eq!(decoded, vec![Tick { n: 1 }, Tick { n: 2 }, Tick { n: 3 }]);
    let other = sources.next().expect("other source");
    let values: Vec<Vec<u8>> = other.values.collect().await;
    assert_eq!(values, vec![encode_value("a").expect("encodes")]);
}

#[tokio::test]
async fn a_trait_object_can_be_served() {
    let imp: Arc<dyn SampleModule> = Arc::new(Sample::default());
    let s = SampleModuleServer::new(imp);
    let boxed: Box<dyn Object> = Box::new(s.clone());
    let sum: i64 = call(boxed.as_ref(), "Add", vec![arg(2i64), arg(3i64)]).await;
    assert_eq!(sum, 5);
    assert!(format!("{s:?}").contains("sample_module@1"));
}

/// Defaults: name is the snake_case trait name, version "1.0", no module (stub has only
/// `with_module`). A user-written `#[async_trait]` is tolerated.
#[imagebus_bus::object]
#[imagebus_bus::async_trait]
pub trait BareThing: Send + Sync {
    /// Echo.
    async fn echo(&self, v: Vec<String>) -> Result<Vec<String>, RemoteError>;
}

struct Bare;

#[imagebus_bus::async_trait]
impl BareThing for Bare {
    async fn echo(&self, v: Vec<String>) -> Result<Vec<String>, RemoteError> {
        Ok(v)
    }
}

#[tokio::test]
async fn defaults_without_arguments() {
    let s = BareThingServer::new(Arc::new(Bare));
    assert_eq!(s.id(), ObjectId::new("bare_thing", "1.0"));
    assert_eq!(BareThingStub::NAME, "bare_thing");
    assert_eq!(BareThingStub::VERSION, "1.0");
    assert!(s.streams().is_empty());
    let v: Vec<String> = call(&s, "Echo", vec![arg(vec!["x", "y"])]).await;
    assert_eq!(v, ["x", "y"]);
}

/// An event whose encoding fails when `ok` is false.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flaky {
    ok: bool,
}

impl Serialize for Flaky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.ok {
            s.serialize_bool(true)
        } else {
            Err(serde::ser::Error::custom("refuses to encode"))
        }
    }
}

/// Events that do not all encode.
#[imagebus_bus::object(module = "sample")]
pub trait FlakyEvents: Send + Sync {
    /// ok, bad, ok.
    #[bus(stream)]
    fn events(&self) -> EventStream<Flaky>;
}

struct FlakySource;

impl FlakyEvents for FlakySource {
    fn events(&self) -> EventStream<Flaky> {
        let items = [true, false, true].map(|ok| Flaky { ok });
        Box::pin(futures::stream::iter(items))
    }
}

#[tokio::test]
async fn events_that_do_not_encode_are_skipped_not_fatal() {
    let s = FlakyEventsServer::new(Arc::new(FlakySource));
    assert!(s.methods().is_empty());
    let mut sources = s.streams();
    assert_eq!(sources.len(), 1);
    let values: Vec<Vec<u8>> = sources.remove(0).values.collect().await;
    let t = encode_value(&true).expect("encodes");
    assert_eq!(values, vec![t.clone(), t]);
}
