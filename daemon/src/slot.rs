//! Stable stand-ins for actor handles that the supervisor can swap when it restarts an
//! actor. The bus servers and the peer actors hold a slot, never a handle, so a restarted
//! actor is reached without re-registering anything; while an actor is down, calls fail
//! with `Unavailable`.

use futures::StreamExt;
use imagebus_bus::{EventStream, RemoteError};
use imagebus_schema::attach::{AttachModule, AttachModuleForward};
use imagebus_schema::container::{ContainerModule, ContainerModuleForward};
use imagebus_schema::image::{ImageModule, ImageModuleForward};
use imagebus_schema::mount::{MountModule, MountModuleForward};
use imagebus_schema::syscontainer::{SysContainerModule, SysContainerModuleForward};
use imagebus_schema::zos::{ZosContainerModule, ZosContainerModuleForward};
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

// Every schema trait reaches the slot's current handle through its generated `<Trait>Forward`
// (hand-written for zos's): an empty slot answers `Unavailable` (see `Slot::get`), and
// event streams follow the handle across restarts.

#[imagebus_bus::async_trait]
impl<T: AttachModule + ?Sized + 'static> AttachModuleForward for Slot<T> {
    type Target = T;
    async fn forward_target(&self) -> Result<Arc<T>, RemoteError> {
        Slot::get(self)
    }
}

#[imagebus_bus::async_trait]
impl<T: MountModule + ?Sized + 'static> MountModuleForward for Slot<T> {
    type Target = T;
    async fn forward_target(&self) -> Result<Arc<T>, RemoteError> {
        Slot::get(self)
    }
}

#[imagebus_bus::async_trait]
impl<T: ImageModule + ?Sized + 'static> ImageModuleForward for Slot<T> {
    type Target = T;
    async fn forward_target(&self) -> Result<Arc<T>, RemoteError> {
        Slot::get(self)
    }
}

#[imagebus_bus::async_trait]
impl<T: SysContainerModule + ?Sized + 'static> SysContainerModuleForward for Slot<T> {
    type Target = T;
    async fn forward_target(&self) -> Result<Arc<T>, RemoteError> {
        Slot::get(self)
    }
}

#[imagebus_bus::async_trait]
impl<T: ContainerModule + ?Sized + 'static> ContainerModuleForward for Slot<T> {
    type Target = T;
    async fn forward_target(&self) -> Result<Arc<T>, RemoteError> {
        Slot::get(self)
    }
    fn forward_stream<E: Send + 'static>(&self, open: fn(&T) -> EventStream<E>) -> EventStream<E> {
        self.follow(open)
    }
}

#[imagebus_bus::async_trait]
impl<T: ZosContainerModule + ?Sized + 'static> ZosContainerModuleForward for Slot<T> {
    type Target = T;
    async fn forward_target(&self) -> Result<Arc<T>, RemoteError> {
        Slot::get(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_bus::ErrorCode;
    use imagebus_schema::attach::{AttachInfo, AttachSpec};
    use imagebus_schema::container::{
        ContainerEvent, ContainerFilter, ContainerInfo, ContainerSpec, ContainerState,
        ContainerStats, ExecResult, ExecSpec, LogChunk, LogsRequest,
    };
    use imagebus_schema::{Holder, Selector};
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

    /// A container actor that only has events: one per call of `events`, with id `n`.
    struct Events(u64);

    #[imagebus_bus::async_trait]
    impl ContainerModule for Events {
        async fn create(&self, _: ContainerSpec) -> Result<ContainerInfo, RemoteError> {
            Err(RemoteError::internal(format!("events {}", self.0)))
        }
        async fn start(&self, _: Selector) -> Result<ContainerInfo, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn stop(&self, _: Selector, _: Option<u64>) -> Result<ContainerInfo, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn delete(&self, _: Selector, _: bool) -> Result<(), RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn get(&self, _: Selector) -> Result<ContainerInfo, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn list(&self, _: ContainerFilter) -> Result<Vec<ContainerInfo>, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn logs(&self, _: Selector, _: LogsRequest) -> Result<LogChunk, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn exec(&self, _: Selector, _: ExecSpec) -> Result<ExecResult, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn holds(&self, _: u64, _: u64) -> Result<bool, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn stats(&self, _: Selector) -> Result<ContainerStats, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        async fn session(
            &self,
            _: Selector,
            _: imagebus_schema::container::SessionRequest,
        ) -> Result<imagebus_schema::container::SessionInfo, RemoteError> {
            Err(RemoteError::internal("unused"))
        }
        fn events(&self) -> EventStream<ContainerEvent> {
            futures::stream::iter([ContainerEvent {
                id: self.0,
                name: None,
                group: None,
                state: ContainerState::Running,
                exit_code: None,
                reason: None,
                deleted: false,
                at_ms: 0,
                health: None,
            }])
            .boxed()
        }
    }

    #[tokio::test]
    async fn container_calls_and_events_follow_the_handle() {
        let slot: Slot<Events> = Slot::new("container");
        let spec = ContainerSpec::new(
            imagebus_schema::mount::MountRef::Existing(Selector::Id(1)),
            imagebus_schema::container::CommandLine::Line("x".into()),
        );
        let err = slot.create(spec.clone()).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable);
        let mut events = slot.events();
        slot.set(Some(Arc::new(Events(1))));
        assert_eq!(events.next().await.map(|e| e.id), Some(1));
        assert_eq!(slot.create(spec).await.unwrap_err().message, "events 1");
        slot.set(Some(Arc::new(Events(2))));
        assert_eq!(events.next().await.map(|e| e.id), Some(2));
    }
}
