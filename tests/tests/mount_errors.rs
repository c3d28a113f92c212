//! Bad inputs to the mount actor on the real kernel: each is a typed error and leaves
//! nothing behind (no mounts, no loop devices, no directories, no objects).

mod mount_common;

use imagebus_bus::ErrorCode;
use imagebus_schema::attach::AttachModule;
use imagebus_schema::mount::{MountModule, MountRef, MountSource, MountSpec};
use imagebus_schema::Selector;
use imagebus_tests::rootfs::{busybox_squashfs, KernelScratch};
use mount_common::*;

fn with_fs_type(mut spec: MountSpec, fs: &str) -> MountSpec {
    if let MountSource::Image(i) = &mut spec.source {
        i.fs_type = Some(fs.to_string());
    }
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_typed_errors_and_leave_nothing() {
    let scratch = KernelScratch::new("ib-mount-errors-");
    let dir = scratch.path();
    let img = busybox_squashfs(
        dir,
        "img",
        &[("etc/layer", "img\n")],
        &[("esc", "/etc"), ("up", "../../../../.."), ("inner", "etc")],
    );
    let junk = dir.join("junk.img");
    std::fs::write(&junk, vec![0x5au8; 1 << 20]).unwrap();
    let stack = Stack::start(dir).await.unwrap();
    let m = stack.mount.clone();

    let on_img = |path: &str| bind(path, Some(inline(image_on_loop(&img))));
    let cases: Vec<(&str, MountSpec, ErrorCode, &str)> = vec![
        (
            "unknown fs type",
            with_fs_type(image_on_loop(&img), "vfat"),
            ErrorCode::InvalidArgument,
            "unsupported filesystem type",
        ),
        (
            "wrong fs type",
            with_fs_type(image_on_loop(&img), "ext4"),
            ErrorCode::InvalidArgument,
            "mounting",
        ),
        (
            "no filesystem",
            image_on_loop(&junk),
            ErrorCode::InvalidArgument,
            "no supported filesystem",
        ),
        (
            "missing file",
            image_on_loop(&dir.join("missing.sqsh")),
            ErrorCode::InvalidArgument,
            "does not exist",
        ),
        (
            "dot-dot",
            on_img("etc/../../x"),
            ErrorCode::InvalidArgument,
            "without '..'",
        ),
        (
            "absolute symlink escape",
            on_img("esc"),
            ErrorCode::InvalidArgument,
            "escapes",
        ),
        (
            "relative symlink escape",
            on_img("up/etc"),
            ErrorCode::InvalidArgument,
            "escapes",
        ),
        (
            "missing inside base",
            on_img("nothere"),
            ErrorCode::InvalidArgument,
            "does not exist",
        ),
        (
            "zero lowers",
            overlay(vec![]),
            ErrorCode::InvalidArgument,
            "at least one lower",
        ),
        (
            "unknown id",
            overlay(vec![MountRef::Existing(Selector::Id(4242))]),
            ErrorCode::NotFound,
            "4242",
        ),
        (
            "second lower fails",
            overlay(vec![
                inline(image_on_loop(&img)),
                inline(image_on_loop(&dir.join("gone.sqsh"))),
            ]),
            ErrorCode::InvalidArgument,
            "does not exist",
        ),
    ];
    for (what, spec, code, text) in cases {
        let err = m.mount(spec, None).await.expect_err(what);
        assert_eq!(err.code, code, "{what}: {err}");
        assert!(err.message.contains(text), "{what}: {err:?} lacks {text:?}");
        assert!(m.list().await.unwrap().is_empty(), "{what}: objects left");
        assert!(
            stack.attach.list().await.unwrap().is_empty(),
            "{what}: attachments left"
        );
        assert_no_leaks(&scratch, &stack.cfg);
    }
    // A symlink that stays inside the image is fine.
    let ok = m.mount(on_img("inner"), None).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(ok.mountpoint.join("layer")).unwrap(),
        "img\n"
    );
    let err = m.unmount(Selector::Id(4242), false).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    m.unmount(Selector::Id(ok.id), false).await.unwrap();
    assert_no_leaks(&scratch, &stack.cfg);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_option_length_is_bounded_and_overflow_undoes_every_lower() {
    let scratch = KernelScratch::new("ib-mount-lowers-");
    let dir = scratch.path();
    let stack = Stack::start(dir).await.unwrap();
    let m = stack.mount.clone();
    let lowers = |n: usize| -> Vec<MountRef> {
        (0..n)
            .map(|i| {
                let d = dir.join(format!("layers/{i}"));
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join(format!("f{i}")), "x").unwrap();
                inline(bind(d.to_str().unwrap(), None))
            })
            .collect()
    };
    // Many layers that fit in one page of mount options work.
    let ok = m.mount(overlay(lowers(40)), None).await.unwrap();
    assert!(ok.mountpoint.join("f0").exists() && ok.mountpoint.join("f39").exists());
    assert_eq!(imagebus_tests::rootfs::mounts_under(dir).len(), 41);
    m.unmount(Selector::Id(ok.id), false).await.unwrap();
    assert_no_leaks(&scratch, &stack.cfg);
    // Too many for mount(2)'s page: refused, and the 150 lower binds made on the way are
    // all undone.
    let err = m.mount(overlay(lowers(150)), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    assert!(err.message.contains("mount(2) takes at most 4095"), "{err}");
    assert!(m.list().await.unwrap().is_empty());
    assert_no_leaks(&scratch, &stack.cfg);
    stack.stop().await;
}
