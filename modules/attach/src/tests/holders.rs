//! `mount:N` holders checked with a fake mount module (`engine/holders.rs`): forged ones
//! are refused on `Attach`, `Acquire` and `Release` and change nothing; the mount's own
//! release (once it no longer stands on the attachment) goes through and collects; a mount
//! module that cannot be asked refuses them (`Unavailable`).

use super::*;
use crate::spawn_with_mounts;
use imagebus_bus::RemoteError;
use imagebus_schema::attach::AttachInfo;
use imagebus_schema::mount::{MountInfo, MountModule, MountSpec};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
struct Mounts {
    /// Mounts whose create is in flight.
    creating: Vec<u64>,
    /// Mounts and the attachment each stands on.
    records: BTreeMap<u64, u64>,
    /// The module cannot be reached.
    down: bool,
}

/// A mount module that only answers `holds`.
#[derive(Debug, Default, Clone)]
struct FakeMounts(Arc<Mutex<Mounts>>);

impl FakeMounts {
    fn with<R>(&self, f: impl FnOnce(&mut Mounts) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

fn unused<T>() -> Result<T, RemoteError> {
    Err(RemoteError::internal("fake: unused"))
}

#[imagebus_bus::async_trait]
impl MountModule for FakeMounts {
    async fn mount(&self, _: MountSpec, _: Option<Holder>) -> Result<MountInfo, RemoteError> {
        unused()
    }
    async fn unmount(&self, _: Selector, _: bool) -> Result<(), RemoteError> {
        unused()
    }
    async fn get(&self, _: Selector) -> Result<MountInfo, RemoteError> {
        unused()
    }
    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError> {
        unused()
    }
    async fn acquire(&self, _: Selector, _: Holder) -> Result<MountInfo, RemoteError> {
        unused()
    }
    async fn release(&self, _: u64, _: Holder) -> Result<(), RemoteError> {
        unused()
    }
    async fn holds(&self, id: u64, attachment: u64) -> Result<bool, RemoteError> {
        self.with(|m| {
            if m.down {
                return Err(RemoteError::unavailable("the mount actor is not running"));
            }
            Ok(m.creating.contains(&id) || m.records.get(&id) == Some(&attachment))
        })
    }
}

async fn start(w: &World, mounts: &FakeMounts) -> Running {
    let stop = CancellationToken::new();
    let s = spawn_with_mounts(
        w.cfg(),
        w.sys(),
        Some(Arc::new(mounts.clone())),
        stop.clone(),
        limits(8),
    )
    .await
    .unwrap();
    Running {
        handle: s.handle,
        report: s.report,
        task: s.task,
        stop,
    }
}

/// Mount 7 creates an attachment (its create in flight), then stands on it.
async fn owned_by_mount_7(a: &AttachHandle, mounts: &FakeMounts) -> AttachInfo {
    mounts.with(|m| m.creating.push(7));
    let info = a
        .attach_typed(loop_spec(None, "/img/a.sqsh"), Some(Holder::Mount(7)))
        .await
        .unwrap();
    mounts.with(|m| {
        m.creating.clear();
        m.records.insert(7, info.id);
    });
    info
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_release_of_a_live_mounts_attachment_is_refused() {
    let w = World::new(FakeRbdBus::default());
    let mounts = FakeMounts::default();
    let r = start(&w, &mounts).await;
    let a = &r.handle;
    let info = owned_by_mount_7(a, &mounts).await;
    let err = a
        .release_typed(info.id, Holder::Mount(7))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AttachError::HeldByOwner { mount: 7, .. }),
        "{err}"
    );
    assert_eq!(err.code(), imagebus_bus::ErrorCode::Conflict);
    assert_eq!(a.get_typed(Selector::Id(info.id)).await.unwrap(), info);
    assert_eq!(w.loops.bound().len(), 1);
    // The mount goes (its record first), then releases: collected.
    mounts.with(|m| m.records.clear());
    a.release_typed(info.id, Holder::Mount(7)).await.unwrap();
    assert!(a.list_typed().await.unwrap().is_empty());
    assert!(w.loops.bound().is_empty());
    r.shut().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_acquire_or_attach_for_a_missing_mount_is_refused() {
    let w = World::new(FakeRbdBus::default());
    let mounts = FakeMounts::default();
    let r = start(&w, &mounts).await;
    let a = &r.handle;
    let info = owned_by_mount_7(a, &mounts).await;
    for holder in [Holder::Mount(424_242), Holder::Mount(8)] {
        mounts.with(|m| m.records.insert(8, info.id + 100));
        let err = a
            .acquire_typed(Selector::Id(info.id), holder.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(err, AttachError::ForgedHolder { .. }),
            "{holder}: {err}"
        );
        assert_eq!(err.code(), imagebus_bus::ErrorCode::InvalidArgument);
    }
    let err = a
        .attach_typed(loop_spec(None, "/img/b.sqsh"), Some(Holder::Mount(424_242)))
        .await
        .unwrap_err();
    assert!(matches!(err, AttachError::ForgedHolder { .. }), "{err}");
    // Nothing changed.
    assert_eq!(a.list_typed().await.unwrap(), vec![info.clone()]);
    assert_eq!(w.loops.bound().len(), 1);
    // The owner re-acquiring is idempotent; `user` stays free.
    a.acquire_typed(Selector::Id(info.id), Holder::Mount(7))
        .await
        .unwrap();
    a.acquire_typed(Selector::Id(info.id), Holder::User)
        .await
        .unwrap();
    a.release_typed(info.id, Holder::User).await.unwrap();
    mounts.with(|m| m.records.clear());
    a.release_typed(info.id, Holder::Mount(7)).await.unwrap();
    assert!(w.loops.bound().is_empty());
    r.shut().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_mount_module_refuses_mount_holders() {
    let w = World::new(FakeRbdBus::default());
    let mounts = FakeMounts::default();
    let r = start(&w, &mounts).await;
    let a = &r.handle;
    let info = owned_by_mount_7(a, &mounts).await;
    mounts.with(|m| {
        m.down = true;
        m.records.clear();
    });
    let err = a
        .release_typed(info.id, Holder::Mount(7))
        .await
        .unwrap_err();
    assert_eq!(err.code(), imagebus_bus::ErrorCode::Unavailable, "{err}");
    let err = a
        .acquire_typed(Selector::Id(info.id), Holder::Mount(9))
        .await
        .unwrap_err();
    assert_eq!(err.code(), imagebus_bus::ErrorCode::Unavailable, "{err}");
    assert_eq!(a.get_typed(Selector::Id(info.id)).await.unwrap(), info);
    // `user` does not depend on the mount module.
    a.acquire_typed(Selector::Id(info.id), Holder::User)
        .await
        .unwrap();
    a.release_typed(info.id, Holder::User).await.unwrap();
    mounts.with(|m| m.down = false);
    a.release_typed(info.id, Holder::Mount(7)).await.unwrap();
    assert!(w.loops.bound().is_empty());
    r.shut().await;
}
