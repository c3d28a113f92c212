//! The mount module over a real Redis bus, split as in a two-daemon deployment: the attach
//! actor and the mount actor each served as their own module, the mount actor reaching
//! attach through `AttachModuleStub`, and the test calling `MountModuleStub`. Error codes
//! survive the wire; the nested call and its cascade behave as in-process.

mod mount_common;

use imagebus_bus::{Client, ErrorCode, Server};
use imagebus_mount::MountSys;
use imagebus_schema::attach::{AttachModule, AttachModuleServer, AttachModuleStub};
use imagebus_schema::mount::{MountModule, MountModuleServer, MountModuleStub, MountRef};
use imagebus_schema::{Holder, Selector};
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::{busybox_squashfs, loops_under, mounts_under, KernelScratch};
use mount_common::*;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_mount_over_the_bus_with_attach_over_the_bus() {
    let scratch = KernelScratch::new("ib-mount-bus-");
    let root = scratch.path().to_path_buf();
    let a = busybox_squashfs(&root, "a", &[("etc/layer", "a\n")], &[]);
    let b = busybox_squashfs(&root, "b", &[("etc/layer", "b\n")], &[]);
    let redis = RedisFixture::start();
    let url = redis.url();
    let stop = CancellationToken::new();

    let (acfg, mcfg) = configs(&root);
    let attach = imagebus_attach::spawn(
        acfg,
        imagebus_attach::AttachSys::linux(),
        CancellationToken::new(),
        imagebus_attach::Limits::default(),
    )
    .await
    .unwrap()
    .handle;
    let mut attach_server = Server::builder(url.as_str(), "attach")
        .workers(2)
        .build()
        .await
        .unwrap();
    attach_server
        .register(AttachModuleServer::new(Arc::new(attach)))
        .unwrap();
    let attach_serving = tokio::spawn(attach_server.run(stop.clone()));
    let attach_stub: Arc<dyn AttachModule> = Arc::new(AttachModuleStub::new(
        Client::connect(url.as_str()).await.unwrap(),
    ));
    let spawned = imagebus_mount::spawn(
        mcfg.clone(),
        MountSys::linux(),
        attach_stub.clone(),
        stop.clone(),
        imagebus_mount::Limits::default(),
    )
    .await
    .unwrap();
    assert!(spawned.report.is_clean(), "{:?}", spawned.report);
    let mut mount_server = Server::builder(url.as_str(), "mount")
        .workers(2)
        .build()
        .await
        .unwrap();
    mount_server
        .register(MountModuleServer::new(Arc::new(spawned.handle)))
        .unwrap();
    let mount_serving = tokio::spawn(mount_server.run(stop.clone()));
    let m = MountModuleStub::new(Client::connect(url.as_str()).await.unwrap());

    let top = m.mount(nested(&a, &b), None).await.unwrap();
    assert_eq!(top.children.len(), 2);
    assert_eq!(mounts_under(&root).len(), 3);
    assert_eq!(loops_under(&root).len(), 2);
    assert_eq!(
        std::fs::read_to_string(top.mountpoint.join("etc/layer")).unwrap(),
        "a\n"
    );
    let lower = m.get(Selector::Id(top.children[1])).await.unwrap();
    assert_eq!(lower.holders, vec![Holder::Mount(top.id)]);
    let att = attach_stub
        .get(Selector::Id(lower.attachment.unwrap()))
        .await
        .unwrap();
    assert_eq!(att.holders, vec![Holder::Mount(lower.id)]);

    // Typed errors cross the wire with their codes.
    let err = m.unmount(Selector::Id(lower.id), false).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    let err = m.get(Selector::Name("nope".into())).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{err}");
    let err = m
        .mount(overlay(vec![MountRef::Existing(Selector::Id(999))]), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{err}");
    let err = m
        .mount(image_on_loop(&root.join("missing.sqsh")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    assert_eq!(m.list().await.unwrap().len(), 3);

    m.unmount(Selector::Id(top.id), false).await.unwrap();
    assert!(m.list().await.unwrap().is_empty());
    assert!(attach_stub.list().await.unwrap().is_empty());
    assert_no_leaks(&scratch, &mcfg);
    stop.cancel();
    let _ = mount_serving.await;
    let _ = attach_serving.await;
}
