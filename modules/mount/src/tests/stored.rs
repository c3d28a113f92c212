//! `stored` mounts against an in-memory image store: the image is held while mounted,
//! released on unmount and on every failure, and start-up releases images held by mounts
//! that no longer exist.

use super::*;
use crate::spawn_with_images;
use imagebus_schema::image::{ImageConfig, ImageInfo, ImageModule, ImportSpec};
use imagebus_schema::mount::StoredMount;

/// An image store holding one image per (name, file).
#[derive(Debug, Default, Clone)]
struct FakeImages(Arc<Mutex<BTreeMap<String, ImageInfo>>>);

impl FakeImages {
    fn add(&self, name: &str, file: &str) -> String {
        let digest = format!("sha256:{:0>64}", self.0.lock().unwrap().len() + 1);
        let info = ImageInfo {
            digest: digest.clone(),
            names: vec![name.into()],
            fs_type: "erofs".into(),
            file: file.into(),
            size: 1,
            format: "oci".into(),
            config: ImageConfig::default(),
            holders: vec![],
            created_at: 0,
        };
        self.0.lock().unwrap().insert(digest.clone(), info);
        digest
    }
    fn holders(&self, digest: &str) -> Vec<Holder> {
        self.0.lock().unwrap()[digest].holders.clone()
    }
    fn hold(&self, digest: &str, holder: Holder) {
        self.0
            .lock()
            .unwrap()
            .get_mut(digest)
            .unwrap()
            .holders
            .push(holder);
    }
}

#[imagebus_bus::async_trait]
impl ImageModule for FakeImages {
    async fn import(&self, _: ImportSpec) -> Result<ImageInfo, RemoteError> {
        Err(RemoteError::unsupported("fake"))
    }
    async fn get(&self, _: String) -> Result<ImageInfo, RemoteError> {
        Err(RemoteError::unsupported("fake"))
    }
    async fn list(&self) -> Result<Vec<ImageInfo>, RemoteError> {
        Ok(self.0.lock().unwrap().values().cloned().collect())
    }
    async fn tag(&self, _: String, _: String) -> Result<ImageInfo, RemoteError> {
        Err(RemoteError::unsupported("fake"))
    }
    async fn remove(&self, _: String) -> Result<(), RemoteError> {
        Err(RemoteError::unsupported("fake"))
    }
    async fn acquire(&self, target: String, holder: Holder) -> Result<ImageInfo, RemoteError> {
        let mut s = self.0.lock().unwrap();
        let img = s
            .values_mut()
            .find(|i| i.names.contains(&target) || i.digest == target)
            .ok_or_else(|| RemoteError::not_found(format!("image {target:?}")))?;
        if !img.holders.contains(&holder) {
            img.holders.push(holder);
        }
        Ok(img.clone())
    }
    async fn release(&self, digest: String, holder: Holder) -> Result<(), RemoteError> {
        if let Some(i) = self.0.lock().unwrap().get_mut(&digest) {
            i.holders.retain(|h| *h != holder);
        }
        Ok(())
    }
}

fn stored(image: &str) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Stored(StoredMount {
            image: image.into(),
            options: vec!["noatime".into()],
        }),
    }
}

async fn start(rig: &Rig, images: &FakeImages) -> (MountHandle, ReconcileReport) {
    let s = spawn_with_images(
        rig.cfg.clone(),
        rig.sys(),
        Arc::new(rig.attach.clone()),
        Some(Arc::new(images.clone())),
        rig.stop.clone(),
        rig.limits,
    )
    .await
    .unwrap();
    (s.handle, s.report)
}

#[tokio::test]
async fn a_stored_image_is_held_while_mounted_and_released_after() {
    let rig = Rig::new();
    let images = FakeImages::default();
    let digest = images.add("busybox:1", "/store/images/1.erofs");
    let (h, _) = start(&rig, &images).await;
    let m = h.mount(stored("busybox:1"), None).await.unwrap();
    assert_eq!((m.kind.as_str(), m.fs_type.as_str()), ("image", "erofs"));
    assert!(m.read_only);
    assert_eq!(images.holders(&digest), vec![Holder::Mount(m.id)]);
    let att = m.attachment.unwrap();
    let a = rig.attach.get(Selector::Id(att)).await.unwrap();
    assert_eq!(
        a.source,
        AttachSource::Loop(LoopSource {
            path: "/store/images/1.erofs".into(),
            read_only: true
        })
    );
    h.unmount(Selector::Id(m.id), false).await.unwrap();
    assert!(images.holders(&digest).is_empty());
    rig.assert_nothing_left();
}

#[tokio::test]
async fn failures_leave_no_holder_and_unknown_images_are_not_found() {
    let rig = Rig::new();
    let images = FakeImages::default();
    let bad = images.add("broken:1", "/store/missing.erofs");
    let (h, _) = start(&rig, &images).await;
    let err = h.mount(stored("nope:1"), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{err:?}");
    // The attach module refuses the file: the image is released again.
    let err = h.mount(stored("broken:1"), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err:?}");
    assert!(images.holders(&bad).is_empty());
    let err = h.mount(stored(""), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err:?}");
    rig.assert_nothing_left();
    // Without an image store: Unavailable.
    let mut other = Rig::new();
    let (plain, _) = other.start().await;
    let err = plain.mount(stored("busybox:1"), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    other.assert_nothing_left();
}

#[tokio::test]
async fn start_up_releases_images_held_by_unknown_mounts() {
    let rig = Rig::new();
    let images = FakeImages::default();
    let digest = images.add("busybox:1", "/store/images/1.erofs");
    images.hold(&digest, Holder::Mount(77));
    images.hold(&digest, Holder::Container(3));
    let (_h, report) = start(&rig, &images).await;
    assert_eq!(report.released_images, vec![(digest.clone(), 77)]);
    assert_eq!(images.holders(&digest), vec![Holder::Container(3)]);
}
