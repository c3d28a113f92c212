//! `<Trait>Forward`: a wrapper that names its target implements the whole trait, calls
//! and event streams, with no code per method; a failed lookup is the call's error.

use futures::StreamExt;
use imagebus_bus::__private::{decode_data, encode_arg};
use imagebus_bus::{ErrorCode, EventStream, Object, RemoteError, Reply};
use std::sync::{Arc, Mutex};

/// The interface the wrapper forwards.
#[imagebus_bus::object(module = "fwd")]
pub trait Counter: Send + Sync {
    /// `n` plus the implementation's base.
    async fn add(&self, n: u32) -> Result<u32, RemoteError>;
    /// The base, renamed on the wire.
    #[bus(name = "BaseValue")]
    async fn base(&self) -> Result<u32, RemoteError>;
    /// Fails with the given message.
    async fn fail(&self, what: String, code: u8) -> Result<(), RemoteError>;
    /// The base, three times.
    #[bus(stream)]
    fn bases(&self) -> EventStream<u32>;
}

/// A concrete implementation, in the same crate as the blanket impl.
struct Base(u32);

#[imagebus_bus::async_trait]
impl Counter for Base {
    async fn add(&self, n: u32) -> Result<u32, RemoteError> {
        Ok(self.0 + n)
    }
    async fn base(&self) -> Result<u32, RemoteError> {
        Ok(self.0)
    }
    async fn fail(&self, what: String, code: u8) -> Result<(), RemoteError> {
        Err(RemoteError::not_found(format!(
            "{what} {code} from {}",
            self.0
        )))
    }
    fn bases(&self) -> EventStream<u32> {
        futures::stream::iter([self.0; 3]).boxed()
    }
}

/// A swappable wrapper: the whole of its `Counter` implementation is `CounterForward`.
#[derive(Default)]
struct Swap {
    current: Mutex<Option<Arc<dyn Counter>>>,
}

impl Swap {
    fn set(&self, to: Option<Arc<dyn Counter>>) {
        *self.current.lock().unwrap() = to;
    }

    fn now(&self) -> Option<Arc<dyn Counter>> {
        self.current.lock().unwrap().clone()
    }
}

#[imagebus_bus::async_trait]
impl CounterForward for Swap {
    type Target = dyn Counter;
    async fn forward_target(&self) -> Result<Arc<dyn Counter>, RemoteError> {
        self.now()
            .ok_or_else(|| RemoteError::unavailable("no counter"))
    }
    fn forward_stream<E: Send + 'static>(
        &self,
        open: fn(&Self::Target) -> EventStream<E>,
    ) -> EventStream<E> {
        match self.now() {
            Some(target) => open(&*target),
            None => futures::stream::empty().boxed(),
        }
    }
}

#[tokio::test]
async fn calls_go_to_the_current_target_with_their_arguments() {
    let swap = Swap::default();
    swap.set(Some(Arc::new(Base(10))));
    assert_eq!(swap.add(5).await, Ok(15));
    assert_eq!(swap.base().await, Ok(10));
    let err = swap.fail("disk".into(), 7).await.unwrap_err();
    assert_eq!(err, RemoteError::not_found("disk 7 from 10"));
    swap.set(Some(Arc::new(Base(20))));
    assert_eq!(swap.add(5).await, Ok(25));
}

#[tokio::test]
async fn a_failed_lookup_is_the_calls_error() {
    let swap = Swap::default();
    assert_eq!(
        swap.add(1).await,
        Err(RemoteError::unavailable("no counter"))
    );
    assert_eq!(
        swap.fail("x".into(), 1).await.unwrap_err().code,
        ErrorCode::Unavailable
    );
}

#[tokio::test]
async fn streams_go_through_forward_stream() {
    let swap = Swap::default();
    assert_eq!(swap.bases().collect::<Vec<_>>().await, Vec::<u32>::new());
    swap.set(Some(Arc::new(Base(4))));
    assert_eq!(swap.bases().collect::<Vec<_>>().await, [4, 4, 4]);
}

#[tokio::test]
async fn a_forwarding_wrapper_is_served_and_used_as_a_trait_object() {
    let swap = Arc::new(Swap::default());
    swap.set(Some(Arc::new(Base(1))));
    let server = CounterServer::new(swap.clone());
    match server.dispatch("BaseValue", vec![]).await {
        Ok(Reply::Value(bytes)) => assert_eq!(decode_data::<u32>(&bytes), Ok(1)),
        other => panic!("expected a value, got {other:?}"),
    }
    swap.set(None);
    let arg = encode_arg(&2u32).expect("encodes");
    assert_eq!(
        server.dispatch("Add", vec![arg]).await,
        Ok(Reply::Error(RemoteError::unavailable("no counter")))
    );
    // A wrapper around a wrapper.
    let outer: Arc<dyn Counter> = swap.clone();
    let wrapped = Swap::default();
    wrapped.set(Some(outer));
    swap.set(Some(Arc::new(Base(30))));
    assert_eq!(wrapped.add(3).await, Ok(33));
}
