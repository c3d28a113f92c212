//! [`ZosContainerModuleForward`]: what `#[object]` generates as `<Trait>Forward` for the other
//! interfaces, written by hand because [`ZosContainerModule`] is not an `#[object]` (see the
//! parent module). Keep it in step with the trait.

use super::{ZosContainer, ZosContainerModule};
use imagebus_bus::RemoteError;
use std::sync::Arc;

/// Implements [`ZosContainerModule`] by forwarding every call to another implementation:
/// implement this and the blanket `impl<F: ZosContainerModuleForward + ?Sized>
/// ZosContainerModule for F` does the rest; a failed
/// [`ZosContainerModuleForward::forward_target`] is the call's error.
#[imagebus_bus::async_trait]
pub trait ZosContainerModuleForward: Send + Sync {
    /// The implementation of [`ZosContainerModule`] that calls go to.
    type Target: ZosContainerModule + ?Sized;

    /// The implementation to call now, or the error to answer the call with.
    async fn forward_target(&self) -> Result<Arc<Self::Target>, RemoteError>;
}

#[imagebus_bus::async_trait]
impl<F: ZosContainerModuleForward + ?Sized> ZosContainerModule for F {
    async fn run(&self, ns: String, data: ZosContainer) -> Result<String, RemoteError> {
        self.forward_target().await?.run(ns, data).await
    }
    async fn inspect(&self, ns: String, id: String) -> Result<ZosContainer, RemoteError> {
        self.forward_target().await?.inspect(ns, id).await
    }
    async fn delete(&self, ns: String, id: String) -> Result<(), RemoteError> {
        self.forward_target().await?.delete(ns, id).await
    }
    async fn list(&self, ns: String) -> Result<Vec<String>, RemoteError> {
        self.forward_target().await?.list(ns).await
    }
    async fn list_ns(&self) -> Result<Vec<String>, RemoteError> {
        self.forward_target().await?.list_ns().await
    }
    async fn exec(
        &self,
        ns: String,
        id: String,
        timeout_ns: i64,
        args: Vec<String>,
    ) -> Result<(), RemoteError> {
        let target = self.forward_target().await?;
        target.exec(ns, id, timeout_ns, args).await
    }
    async fn logs(&self, ns: String, id: String) -> Result<String, RemoteError> {
        self.forward_target().await?.logs(ns, id).await
    }
    async fn signal_delete(&self, ns: String, id: String) -> Result<(), RemoteError> {
        self.forward_target().await?.signal_delete(ns, id).await
    }
}
