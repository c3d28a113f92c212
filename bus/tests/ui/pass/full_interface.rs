//! Everything a user writes: no imports beyond the trait's own types.
#![deny(missing_docs, missing_debug_implementations)]

use imagebus_bus::{EventStream, RemoteError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A request.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    /// A value.
    pub value: u32,
}

/// An interface.
#[imagebus_bus::object(module = "m", name = "thing", version = "2")]
pub trait ThingModule: Send + Sync {
    /// Creates.
    async fn create(&self, spec: Spec, tag: Option<String>) -> Result<Spec, RemoteError>;
    /// Deletes.
    #[bus(name = "Remove")]
    async fn delete(&self, id: u64) -> Result<(), imagebus_bus::RemoteError>;
    /// Pair.
    async fn pair(&self) -> Result<(u32, String), RemoteError>;
    /// Events.
    #[bus(stream)]
    fn events(&self) -> EventStream<Spec>;
}

struct Local;

#[imagebus_bus::async_trait]
impl ThingModule for Local {
    async fn create(&self, spec: Spec, _tag: Option<String>) -> Result<Spec, RemoteError> {
        Ok(spec)
    }
    async fn delete(&self, _id: u64) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn pair(&self) -> Result<(u32, String), RemoteError> {
        Ok((1, "one".into()))
    }
    fn events(&self) -> EventStream<Spec> {
        Box::pin(futures::stream::empty())
    }
}

/// Forwards every call and event stream to `inner`.
struct Wrapper {
    inner: Arc<Local>,
}

#[imagebus_bus::async_trait]
impl ThingModuleForward for Wrapper {
    type Target = Local;
    async fn forward_target(&self) -> Result<Arc<Local>, RemoteError> {
        Ok(self.inner.clone())
    }
    fn forward_stream<E: Send + 'static>(&self, open: fn(&Local) -> EventStream<E>) -> EventStream<E> {
        open(&self.inner)
    }
}

fn assert_object<O: imagebus_bus::Object>(_: &O) {}

fn main() {
    let local: Arc<dyn ThingModule> = Arc::new(Local);
    let server = ThingModuleServer::new(local);
    assert_object(&server);
    let wrapper: Arc<dyn ThingModule> = Arc::new(Wrapper { inner: Arc::new(Local) });
    assert_object(&ThingModuleServer::new(wrapper));
    let _: &Arc<dyn ThingModule> = server.inner();
    let _: &str = ThingModuleStub::MODULE;
    let _ = |client: imagebus_bus::Client| -> Arc<dyn ThingModule> {
        let stub =
            ThingModuleStub::new(client.clone()).with_timeout(std::time::Duration::from_secs(1));
        let _other = ThingModuleStub::with_module(client, "elsewhere");
        Arc::new(stub)
    };
}
