//! Holder checks (`engine/holders.rs`) against a fake container module: forged
//! `Container(n)` and `Mount(m)` holders are refused on `Mount`, `Acquire` and `Release`
//! and change nothing; the owner's own release (after it stopped claiming the mount) goes
//! through and cascades; an owner that cannot be asked refuses the call (`Unavailable`).

use super::*;
use crate::{spawn_with_peers, Peers};
use imagebus_schema::container::{
    ContainerEvent, ContainerFilter, ContainerInfo, ContainerModule, ContainerSpec, ContainerStats,
    ExecResult, ExecSpec, LogChunk, LogsRequest,
};

#[derive(Debug, Default)]
struct Owners {
    /// Containers whose create is in flight.
    creating: Vec<u64>,
    /// Containers and the mount each stands on.
    records: BTreeMap<u64, u64>,
    /// The module cannot be reached.
    down: bool,
    /// Calls of `holds`.
    asked: usize,
}

/// A container module that only answers `holds`.
#[derive(Debug, Default, Clone)]
struct FakeContainers(Arc<Mutex<Owners>>);

impl FakeContainers {
    fn with<R>(&self, f: impl FnOnce(&mut Owners) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

fn unused<T>() -> Result<T, RemoteError> {
    Err(RemoteError::internal("fake: unused"))
}

#[imagebus_bus::async_trait]
impl ContainerModule for FakeContainers {
    async fn create(&self, _: ContainerSpec) -> Result<ContainerInfo, RemoteError> {
        unused()
    }
    async fn start(&self, _: Selector) -> Result<ContainerInfo, RemoteError> {
        unused()
    }
    async fn stop(&self, _: Selector, _: Option<u64>) -> Result<ContainerInfo, RemoteError> {
        unused()
    }
    async fn delete(&self, _: Selector, _: bool) -> Result<(), RemoteError> {
        unused()
    }
    async fn get(&self, _: Selector) -> Result<ContainerInfo, RemoteError> {
        unused()
    }
    async fn list(&self, _: ContainerFilter) -> Result<Vec<ContainerInfo>, RemoteError> {
        unused()
    }
    async fn logs(&self, _: Selector, _: LogsRequest) -> Result<LogChunk, RemoteError> {
        unused()
    }
    async fn exec(&self, _: Selector, _: ExecSpec) -> Result<ExecResult, RemoteError> {
        unused()
    }
    async fn stats(&self, _: Selector) -> Result<ContainerStats, RemoteError> {
        unused()
    }
    async fn session(
        &self,
        _: Selector,
        _: imagebus_schema::container::SessionRequest,
    ) -> Result<imagebus_schema::container::SessionInfo, RemoteError> {
        unused()
    }
    async fn holds(&self, id: u64, mount: u64) -> Result<bool, RemoteError> {
        self.with(|o| {
            o.asked += 1;
            if o.down {
                return Err(RemoteError::unavailable(
                    "the container actor is not running",
                ));
            }
            Ok(o.creating.contains(&id) || o.records.get(&id) == Some(&mount))
        })
    }
    fn events(&self) -> imagebus_bus::EventStream<ContainerEvent> {
        Box::pin(futures::stream::empty())
    }
}

async fn start(rig: &Rig, containers: &FakeContainers) -> MountHandle {
    let peers = Peers {
        attach: Arc::new(rig.attach.clone()),
        image: None,
        container: Some(Arc::new(containers.clone())),
    };
    spawn_with_peers(
        rig.cfg.clone(),
        rig.sys(),
        peers,
        rig.stop.clone(),
        rig.limits,
    )
    .await
    .unwrap()
    .handle
}

/// Container 7 is created on a fresh image mount (its create in flight), then registered.
async fn container_on_a_mount(h: &MountHandle, containers: &FakeContainers) -> MountInfo {
    containers.with(|o| o.creating.push(7));
    let m = h
        .mount(image("/a.sqsh"), Some(Holder::Container(7)))
        .await
        .unwrap();
    containers.with(|o| {
        o.creating.clear();
        o.records.insert(7, m.id);
    });
    m
}

#[tokio::test]
async fn a_forged_release_of_a_live_containers_mount_is_refused() {
    let rig = Rig::new();
    let containers = FakeContainers::default();
    let h = start(&rig, &containers).await;
    let m = container_on_a_mount(&h, &containers).await;
    assert_eq!(m.holders, vec![Holder::Container(7)]);

    let err = h.release(m.id, Holder::Container(7)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    assert!(err.message.contains("container 7"), "{}", err.message);
    // Nothing changed: still mounted and held.
    assert_eq!(h.get(Selector::Id(m.id)).await.unwrap(), m);
    assert_eq!(rig.mounter.mounted().len(), 1);
    assert_eq!(rig.attach.ids().len(), 1);

    // The owner's own delete: it stops claiming the mount, then releases; the mount and
    // its attachment cascade away.
    containers.with(|o| o.records.remove(&7));
    h.release(m.id, Holder::Container(7)).await.unwrap();
    rig.assert_nothing_left();
}

#[tokio::test]
async fn a_forged_acquire_or_mount_for_a_missing_owner_is_refused() {
    let rig = Rig::new();
    let containers = FakeContainers::default();
    let h = start(&rig, &containers).await;
    let m = container_on_a_mount(&h, &containers).await;
    let other = h.mount(image("/b.sqsh"), None).await.unwrap();

    for (target, holder) in [
        (m.id, Holder::Container(999_999)),
        // Container 7 stands on `m`, not on `other`.
        (other.id, Holder::Container(7)),
        (m.id, Holder::Mount(424_242)),
        // `other` exists but does not stand on `m`.
        (m.id, Holder::Mount(other.id)),
    ] {
        let err = h
            .acquire(Selector::Id(target), holder.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{holder}: {err:?}");
    }
    let err = h
        .mount(image("/c.sqsh"), Some(Holder::Container(999_999)))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err:?}");
    assert!(err.message.contains("container 999999"), "{}", err.message);
    // Nothing changed.
    assert_eq!(h.get(Selector::Id(m.id)).await.unwrap(), m);
    assert_eq!(h.get(Selector::Id(other.id)).await.unwrap(), other);
    assert_eq!(rig.mounter.mounted().len(), 2);
    // The genuine owner re-acquiring its own mount is idempotent; `User` stays free.
    h.acquire(Selector::Id(m.id), Holder::Container(7))
        .await
        .unwrap();
    h.acquire(Selector::Id(m.id), Holder::User).await.unwrap();
    h.release(m.id, Holder::User).await.unwrap();

    containers.with(|o| o.records.clear());
    h.release(m.id, Holder::Container(7)).await.unwrap();
    h.unmount(Selector::Id(other.id), false).await.unwrap();
    rig.assert_nothing_left();
}

#[tokio::test]
async fn a_parent_mounts_reference_is_dropped_only_by_its_cascade() {
    let rig = Rig::new();
    let containers = FakeContainers::default();
    let h = start(&rig, &containers).await;
    let base = h
        .mount(named("base", image("/a.sqsh")), None)
        .await
        .unwrap();
    let top = h
        .mount(
            overlay(vec![MountRef::Existing(Selector::Id(base.id))]),
            None,
        )
        .await
        .unwrap();
    let err = h.release(base.id, Holder::Mount(top.id)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    assert!(
        err.message.contains(&format!("mount {}", top.id)),
        "{}",
        err.message
    );
    assert_eq!(
        h.get(Selector::Id(base.id)).await.unwrap().holders,
        vec![Holder::User, Holder::Mount(top.id)]
    );
    // A mount holder whose mount is gone may be released (a leftover).
    h.release(base.id, Holder::Mount(424_242)).await.unwrap();
    // The parent's unmount cascades: the base loses the parent's reference.
    h.unmount(Selector::Id(top.id), false).await.unwrap();
    assert_eq!(
        h.get(Selector::Id(base.id)).await.unwrap().holders,
        vec![Holder::User]
    );
    h.unmount(Selector::Id(base.id), false).await.unwrap();
    rig.assert_nothing_left();
    // Container holders were never asked about here.
    assert_eq!(containers.with(|o| o.asked), 0);
}

#[tokio::test]
async fn an_unreachable_owner_refuses_container_holders() {
    let rig = Rig::new();
    let containers = FakeContainers::default();
    let h = start(&rig, &containers).await;
    let m = container_on_a_mount(&h, &containers).await;
    containers.with(|o| {
        o.down = true;
        // Even a container that no longer claims the mount: it cannot be asked.
        o.records.clear();
    });
    let err = h.release(m.id, Holder::Container(7)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    assert!(err.message.contains("container:7"), "{}", err.message);
    let err = h
        .acquire(Selector::Id(m.id), Holder::Container(8))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    assert_eq!(h.get(Selector::Id(m.id)).await.unwrap(), m);
    // The operator's own reference does not depend on the container module.
    h.acquire(Selector::Id(m.id), Holder::User).await.unwrap();
    h.release(m.id, Holder::User).await.unwrap();
    // Back up: the release goes through.
    containers.with(|o| o.down = false);
    h.release(m.id, Holder::Container(7)).await.unwrap();
    rig.assert_nothing_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_answers_for_attachments_of_live_and_in_flight_mounts() {
    let rig = Rig::new();
    let containers = FakeContainers::default();
    let h = start(&rig, &containers).await;
    let m = h.mount(image("/a.sqsh"), None).await.unwrap();
    let att = m
        .attachment
        .expect("an image mount stands on an attachment");
    assert!(h.holds(m.id, att).await.unwrap());
    assert!(!h.holds(m.id, att + 1).await.unwrap());
    assert!(!h.holds(424_242, att).await.unwrap());
    // A create held in the kernel: its id claims its attachment (answered while it waits).
    rig.gated.hold_mounts();
    let slow = tokio::spawn({
        let h = h.clone();
        async move { h.mount(image("/b.sqsh"), None).await }
    });
    rig.gated.wait_entered(1).await;
    let pending = m.id + 1;
    assert!(h.holds(pending, att + 1).await.unwrap());
    // It fails and is undone: it claims nothing any more.
    rig.gated.open(true);
    let err = tokio::time::timeout(WAIT, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_ne!(err.code, ErrorCode::Conflict, "{err:?}");
    assert!(!h.holds(pending, att + 1).await.unwrap());
    // Once the mount is gone, it holds nothing.
    h.unmount(Selector::Id(m.id), false).await.unwrap();
    assert!(!h.holds(m.id, att).await.unwrap());
    rig.assert_nothing_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_of_vanished_mounts_refused_at_start_are_released_once_it_runs() {
    let mut rig = Rig::new();
    let leaked = rig.attach.insert_held_by(Holder::Mount(8));
    rig.attach.0.lock().unwrap().refuse_releases = true;
    let (_h, report) = rig.start().await;
    assert_eq!(report.deferred_attachments, vec![(leaked, 8)]);
    assert!(report.released_attachments.is_empty(), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(rig.attach.ids(), vec![leaked]);
    // The attach module can ask now (the daemon put this actor in its slot).
    rig.attach.0.lock().unwrap().refuse_releases = false;
    let deadline = Instant::now() + WAIT;
    while !rig.attach.ids().is_empty() {
        assert!(Instant::now() < deadline, "the deferred release never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
