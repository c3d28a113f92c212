//! The attach actor on the real kernel: loop and local devices, names, holders, force.
//! Needs root; every test cleans up its loop devices even when it fails.

mod attach_common;

use attach_common::{local_spec, loop_spec, sys_attr, Env};
use imagebus_schema::attach::AttachModule;
use imagebus_schema::{ErrorCode, Holder, Selector};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

#[tokio::test]
async fn loop_read_only_and_read_write_attach_then_detach() {
    let env = Env::new("ib-attach-loop-");
    let image = env.image("a.sqsh");
    let (attach, report) = env.start().await;
    assert!(report.is_clean(), "{report}");

    let ro = attach
        .attach(loop_spec(Some("ro"), &image, true), None)
        .await
        .unwrap();
    assert_eq!(ro.driver, "loop");
    assert!(std::fs::metadata(&ro.device)
        .unwrap()
        .file_type()
        .is_block_device());
    assert_eq!(
        sys_attr(&ro.device, "loop/backing_file"),
        Some(image.display().to_string())
    );
    assert_eq!(sys_attr(&ro.device, "ro").as_deref(), Some("1"));
    assert_eq!(sys_attr(&ro.device, "loop/autoclear").as_deref(), Some("0"));

    let rw = attach
        .attach(loop_spec(None, &image, false), None)
        .await
        .unwrap();
    assert_ne!(rw.device, ro.device);
    assert!(!rw.read_only);
    assert_eq!(sys_attr(&rw.device, "ro").as_deref(), Some("0"));
    assert_eq!(env.loops().len(), 2);

    let listed = attach.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ro.id, rw.id]
    );
    assert_eq!(attach.get(Selector::Name("ro".into())).await.unwrap(), ro);

    attach
        .detach(Selector::Name("ro".into()), false)
        .await
        .unwrap();
    // The freed device may already serve a parallel test: it must not hold our image.
    assert_ne!(
        sys_attr(&ro.device, "loop/backing_file"),
        Some(image.display().to_string()),
        "device still bound"
    );
    attach.detach(Selector::Id(rw.id), false).await.unwrap();
    let err = attach.get(Selector::Id(rw.id)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    env.assert_clean();
}

#[tokio::test]
async fn bad_sources_are_typed_errors_and_leave_nothing() {
    let env = Env::new("ib-attach-bad-");
    let image = env.image("a.sqsh");
    let (attach, _) = env.start().await;
    let missing = env.path().join("missing.sqsh");
    let mem_link = env.path().join("mem.sqsh");
    std::os::unix::fs::symlink("/proc/self/mem", &mem_link).unwrap();
    let cases = [
        (loop_spec(None, &missing, true), "does not exist"),
        (loop_spec(None, env.path(), true), "not a regular file"),
        (
            loop_spec(None, &PathBuf::from("relative.sqsh"), true),
            "absolute",
        ),
        (loop_spec(Some("-bad"), &image, true), "must not start"),
        (local_spec(&PathBuf::from("/dev/null")), "character device"),
        (local_spec(&image), "not a block device"),
        (local_spec(&env.path().join("nodev")), "does not exist"),
        // Issue 10: these were `Internal` errors from the kernel.
        (
            loop_spec(None, &PathBuf::from("/srv/a\0.sqsh"), true),
            "NUL",
        ),
        (
            loop_spec(None, &PathBuf::from("/proc/self/mem"), true),
            "pseudo filesystem",
        ),
        (loop_spec(None, &mem_link, true), "pseudo filesystem"),
    ];
    for (spec, what) in cases {
        let err = attach.attach(spec, None).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
        assert!(err.message.contains(what), "{err} should say {what:?}");
    }
    assert!(attach.list().await.unwrap().is_empty());
    env.assert_clean();
}

#[tokio::test]
async fn local_block_device_is_validated_and_never_removed() {
    let env = Env::new("ib-attach-local-");
    let image = env.image("a.sqsh");
    let (attach, _) = env.start().await;
    // A real block device that we know exists: a loop attachment's device.
    let base = attach
        .attach(loop_spec(None, &image, true), None)
        .await
        .unwrap();
    let local = attach.attach(local_spec(&base.device), None).await.unwrap();
    assert_eq!(local.driver, "local");
    assert_eq!(local.device, base.device);
    attach.detach(Selector::Id(local.id), false).await.unwrap();
    assert_eq!(
        sys_attr(&base.device, "loop/backing_file"),
        Some(image.display().to_string()),
        "detaching a local attachment must not touch the device"
    );
    attach.detach(Selector::Id(base.id), false).await.unwrap();
    env.assert_clean();
}

#[tokio::test]
async fn name_conflict_binds_nothing() {
    let env = Env::new("ib-attach-name-");
    let image = env.image("a.sqsh");
    let (attach, _) = env.start().await;
    let first = attach
        .attach(loop_spec(Some("web"), &image, true), None)
        .await
        .unwrap();
    let err = attach
        .attach(loop_spec(Some("web"), &image, true), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    assert_eq!(
        env.loops().len(),
        1,
        "the refused attach bound a loop device"
    );
    attach.detach(Selector::Id(first.id), false).await.unwrap();
    // Ids are not reused; the name is free again.
    let again = attach
        .attach(loop_spec(Some("web"), &image, true), None)
        .await
        .unwrap();
    assert!(again.id > first.id);
    attach
        .detach(Selector::Name("web".into()), false)
        .await
        .unwrap();
    env.assert_clean();
}

#[tokio::test]
async fn holders_conflict_unless_forced() {
    let env = Env::new("ib-attach-force-");
    let image = env.image("a.sqsh");
    let (attach, _) = env.start().await;
    let info = attach
        .attach(loop_spec(None, &image, true), None)
        .await
        .unwrap();
    let id = Selector::Id(info.id);
    attach.acquire(id.clone(), Holder::Mount(1)).await.unwrap();
    let held = attach.acquire(id.clone(), Holder::Mount(1)).await.unwrap();
    assert_eq!(held.holders, vec![Holder::User, Holder::Mount(1)]);

    let err = attach.detach(id.clone(), false).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert!(err.message.contains("mount:1"), "{err}");
    assert_eq!(
        env.loops().len(),
        1,
        "a refused detach must leave the device"
    );
    assert_eq!(attach.get(id.clone()).await.unwrap().holders.len(), 2);

    attach.detach(id.clone(), true).await.unwrap();
    assert_eq!(env.loops(), vec![]);
    // The holder's later release of a collected attachment is a no-op.
    attach.release(info.id, Holder::Mount(1)).await.unwrap();

    // Collected when the last holder releases it.
    let owned = attach
        .attach(loop_spec(None, &image, true), Some(Holder::Mount(2)))
        .await
        .unwrap();
    attach.release(owned.id, Holder::Mount(2)).await.unwrap();
    assert_eq!(
        attach.get(Selector::Id(owned.id)).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    env.assert_clean();
}
