//! Stable stand-ins for actor handles that the supervisor can swap when it restarts an
//! actor. The bus servers and the peer actors hold a slot, never a handle, so a restarted
//! actor is reached without re-registering anything; while an actor is down, calls fail
//! with `Unavailable`.

use futures::StreamExt;
use imagebus_bus::{EventStream, RemoteError};
use imagebus_schema::attach::{AttachInfo, AttachModule, AttachSpec};
use imagebus_schema::container::{
    ContainerEvent, ContainerFilter, ContainerInfo, ContainerModule, ContainerSpec, ExecResult,
    ExecSpec, LogChunk, LogsRequest,
};
use imagebus_schema::mount::{MountInfo, MountModule, MountSpec};
use imagebus_schema::zos::{ZosContainer, ZosContainerModule};
use imagebus_schema::{Holder, Selector};
use std::sync::Arc;
use tokio::sync::watch;

/// The container actor's handle serves both our interface and zos's.
pub trait ContainerActor: ContainerModule + ZosContainerModule {}

impl<T: ContainerModule + ZosContainerModule + ?Sized> ContainerActor for T {}

/// The current handle of one actor, or none while it is (re)starting.
pub struct Slot<T: ?Sized> {
    module: &'static str,
    current: watch::Sender<Option<Arc<T>>>,
}

impl<T: ?Sized> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("module", &self.module)
            .field("up", &self.current.borrow().is_some())
            .finish()
    }
}

impl<T: ?Sized + Send + Sync + 'static> Slot<T> {
    /// An empty slot for `module`.
    pub fn new(module: &'static str) -> Self {
        Self {
            module,
            current: watch::Sender::new(None),
        }
    }

    /// Installs a handle (Some) or marks the actor down (None).
    pub fn set(&self, handle: Option<Arc<T>>) {
        self.current.send_replace(handle);
    }

    /// The current handle, or `Unavailable`.
    pub fn get(&self) -> Result<Arc<T>, RemoteError> {
        self.current.borrow().clone().ok_or_else(|| {
            RemoteError::unavailable(format!("the {} actor is not running", self.module))
        })
    }

    /// Watches the slot's contents.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<T>>> {
        self.current.subscribe()
    }

    /// Follows every handle the slot will hold: `open` on each, switching when the handle
    /// is replaced. Ends only when the slot is dropped.
    fn follow<E: Send + 'static>(
        &self,
        open: impl Fn(&T) -> EventStream<E> + Send + Sync + 'static,
    ) -> EventStream<E> {
        let rx = self.current.subscribe();
        let open = Arc::new(open);
        futures::stream::unfold((rx, None::<EventStream<E>>), move |(mut rx, mut inner)| {
            let open = open.clone();
            async move {
                loop {
                    if inner.is_none() {
                        inner = rx.borrow_and_update().as_deref().map(|h| open(h));
                    }
                    match inner.as_mut() {
                        Some(stream) => tokio::select! {
                            biased;
                            changed = rx.changed() => {
                                changed.ok()?;
                                inner = None;
                            }
                            ev = stream.next() => match ev {
                                Some(ev) => return Some((ev, (rx, inner))),
                                // The actor's stream ended: wait for its successor.
                                None => {
                                    inner = None;
                                    rx.changed().await.ok()?;
                                }
                            },
                        },
                        None => rx.changed().await.ok()?,
                    }
                }
            }
        })
        .boxed()
    }
}

#[imagebus_bus::async_trait]
impl AttachModule for Slot<dyn AttachModule> {
    async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, RemoteError> {
        self.get()?.attach(spec, holder).await
    }
    async fn detach(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        self.get()?.detach(target, force).await
    }
    async fn get(&self, target: Selector) -> Result<AttachInfo, RemoteError> {
        Slot::get(self)?.get(target).await
    }
    async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError> {
        self.get()?.list().await
    }
    async fn acquire(&self, target: Selector, holder: Holder) -> Result<AttachInfo, RemoteError> {
        self.get()?.acquire(target, holder).await
    }
    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        self.get()?.release(id, holder).await
    }
}

#[imagebus_bus::async_trait]
impl MountModule for Slot<dyn MountModule> {
    async fn mount(
        &self,
        spec: MountSpec,
        holder: Option<Holder>,
    ) -> Result<MountInfo, RemoteError> {
        self.get()?.mount(spec, holder).await
    }
    async fn unmount(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        self.get()?.unmount(target, force).await
    }
    async fn get(&self, target: Selector) -> Result<MountInfo, RemoteError> {
        Slot::get(self)?.get(target).await
    }
    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError> {
        self.get()?.list().await
    }
    async fn acquire(&self, target: Selector, holder: Holder) -> Result<MountInfo, RemoteError> {
        self.get()?.acquire(target, holder).await
    }
    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        self.get()?.release(id, holder).await
    }
}

#[imagebus_bus::async_trait]
impl ContainerModule for Slot<dyn ContainerActor> {
    async fn create(&self, spec: ContainerSpec) -> Result<ContainerInfo, RemoteError> {
        self.get()?.create(spec).await
    }
    async fn start(&self, target: Selector) -> Result<ContainerInfo, RemoteError> {
        self.get()?.start(target).await
    }
    async fn stop(
        &self,
        target: Selector,
        timeout_ms: Option<u64>,
    ) -> Result<ContainerInfo, RemoteError> {
        self.get()?.stop(target, timeout_ms).await
    }
    async fn delete(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        ContainerModule::delete(&*self.get()?, target, force).await
    }
    async fn get(&self, target: Selector) -> Result<ContainerInfo, RemoteError> {
        ContainerModule::get(&*Slot::get(self)?, target).await
    }
    async fn list(&self, filter: ContainerFilter) -> Result<Vec<ContainerInfo>, RemoteError> {
        ContainerModule::list(&*self.get()?, filter).await
    }
    async fn logs(&self, target: Selector, request: LogsRequest) -> Result<LogChunk, RemoteError> {
        ContainerModule::logs(&*self.get()?, target, request).await
    }
    async fn exec(&self, target: Selector, spec: ExecSpec) -> Result<ExecResult, RemoteError> {
        ContainerModule::exec(&*self.get()?, target, spec).await
    }
    fn events(&self) -> EventStream<ContainerEvent> {
        self.follow(|h| h.events())
    }
}

#[imagebus_bus::async_trait]
impl ZosContainerModule for Slot<dyn ContainerActor> {
    async fn run(&self, ns: String, data: ZosContainer) -> Result<String, RemoteError> {
        self.get()?.run(ns, data).await
    }
    async fn inspect(&self, ns: String, id: String) -> Result<ZosContainer, RemoteError> {
        self.get()?.inspect(ns, id).await
    }
    async fn delete(&self, ns: String, id: String) -> Result<(), RemoteError> {
        ZosContainerModule::delete(&*self.get()?, ns, id).await
    }
    async fn list(&self, ns: String) -> Result<Vec<String>, RemoteError> {
        ZosContainerModule::list(&*self.get()?, ns).await
    }
    async fn list_ns(&self) -> Result<Vec<String>, RemoteError> {
        self.get()?.list_ns().await
    }
    async fn exec(
        &self,
        ns: String,
        id: String,
        timeout_ns: i64,
        args: Vec<String>,
    ) -> Result<(), RemoteError> {
        ZosContainerModule::exec(&*self.get()?, ns, id, timeout_ns, args).await
    }
    async fn logs(&self, ns: String, id: String) -> Result<String, RemoteError> {
        ZosContainerModule::logs(&*self.get()?, ns, id).await
    }
    async fn signal_delete(&self, ns: String, id: String) -> Result<(), RemoteError> {
        self.get()?.signal_delete(ns, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_bus::ErrorCode;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        n: usize,
        calls: AtomicUsize,
    }

    #[imagebus_bus::async_trait]
    impl AttachModule for Fake {
        async fn attach(
            &self,
            _: AttachSpec,
            _: Option<Holder>,
        ) -> Result<AttachInfo, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn detach(&self, _: Selector, _: bool) -> Result<(), RemoteError> {
            Ok(())
        }
        async fn get(&self, _: Selector) -> Result<AttachInfo, RemoteError> {
            Err(RemoteError::not_found(format!("fake {}", self.n)))
        }
        async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
        async fn acquire(&self, _: Selector, _: Holder) -> Result<AttachInfo, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn release(&self, _: u64, _: Holder) -> Result<(), RemoteError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn calls_go_to_the_current_handle_and_fail_while_down() {
        let slot: Slot<dyn AttachModule> = Slot::new("attach");
        let err = slot.list().await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert!(err.message.contains("attach"), "{}", err.message);

        slot.set(Some(Arc::new(Fake {
            n: 1,
            calls: AtomicUsize::new(0),
        })));
        assert_eq!(
            AttachModule::get(&slot, Selector::Id(1))
                .await
                .unwrap_err()
                .message,
            "fake 1"
        );
        slot.set(Some(Arc::new(Fake {
            n: 2,
            calls: AtomicUsize::new(0),
        })));
        assert_eq!(
            AttachModule::get(&slot, Selector::Id(1))
                .await
                .unwrap_err()
                .message,
            "fake 2"
        );
        slot.set(None);
        assert_eq!(slot.list().await.unwrap_err().code, ErrorCode::Unavailable);
    }

    #[tokio::test]
    async fn follow_switches_to_the_new_handle() {
        let slot: Slot<Fake> = Slot::new("attach");
        let mut s = slot.follow(|h: &Fake| futures::stream::repeat(h.n).boxed());
        slot.set(Some(Arc::new(Fake {
            n: 1,
            calls: AtomicUsize::new(0),
        })));
        assert_eq!(s.next().await, Some(1));
        assert_eq!(s.next().await, Some(1));
        slot.set(None);
        slot.set(Some(Arc::new(Fake {
            n: 2,
            calls: AtomicUsize::new(0),
        })));
        assert_eq!(s.next().await, Some(2));
        // A handle whose stream ends: the follower waits for the next handle.
        let ended: Slot<Fake> = Slot::new("x");
        let mut e = ended.follow(|h: &Fake| futures::stream::iter(vec![h.n]).boxed());
        ended.set(Some(Arc::new(Fake {
            n: 3,
            calls: AtomicUsize::new(0),
        })));
        assert_eq!(e.next().await, Some(3));
        ended.set(Some(Arc::new(Fake {
            n: 4,
            calls: AtomicUsize::new(0),
        })));
        assert_eq!(e.next().await, Some(4));
        drop(ended);
        assert_eq!(e.next().await, None);
    }
}
