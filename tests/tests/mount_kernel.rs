//! Mount actor on the real kernel with the real attach actor: busybox squashfs images on
//! loop devices, image mounts and a two-lower overlay created in ONE call; kernel state
//! (mountinfo, loop devices) is asserted after every step and nothing is left behind.

mod mount_common;

use imagebus_schema::attach::AttachModule;
use imagebus_schema::mount::{MountModule, MountRef};
use imagebus_schema::{Holder, Selector};
use imagebus_tests::rootfs::{busybox_squashfs, loops_under, mounts_under, KernelScratch};
use mount_common::*;
use std::fs;
use std::path::Path;

fn two_images(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let a = busybox_squashfs(
        dir,
        "a",
        &[("etc/layer", "a\n"), ("only-a", "from a\n")],
        &[],
    );
    let b = busybox_squashfs(
        dir,
        "b",
        &[("etc/layer", "b\n"), ("only-b", "from b\n")],
        &[],
    );
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_overlay_on_two_loops_in_one_call_then_cascade() {
    let scratch = KernelScratch::new("ib-mount-nested-");
    let (a, b) = two_images(scratch.path());
    let stack = Stack::start(scratch.path()).await.unwrap();
    assert!(stack.report.is_clean(), "{:?}", stack.report);
    let m = stack.mount.clone();

    // One call: overlay(image(loop a), image(loop b)).
    let top = m.mount(nested(&a, &b), None).await.unwrap();
    assert_eq!(top.kind, "overlay");
    assert_eq!(top.children.len(), 2);
    let lower_a = m.get(Selector::Id(top.children[0])).await.unwrap();
    let lower_b = m.get(Selector::Id(top.children[1])).await.unwrap();
    assert_eq!(lower_a.holders, vec![Holder::Mount(top.id)]);

    // Kernel: two loop devices on our files, matching the attachments.
    let loops = loops_under(scratch.path());
    assert_eq!(loops.len(), 2, "{loops:?}");
    let att_a = stack
        .attach
        .get(Selector::Id(lower_a.attachment.unwrap()))
        .await
        .unwrap();
    let att_b = stack
        .attach
        .get(Selector::Id(lower_b.attachment.unwrap()))
        .await
        .unwrap();
    assert!(
        loops.contains(&(att_a.device.clone(), a.clone())),
        "{loops:?} {att_a:?}"
    );
    assert!(
        loops.contains(&(att_b.device.clone(), b.clone())),
        "{loops:?} {att_b:?}"
    );
    assert_eq!(att_a.holders, vec![Holder::Mount(lower_a.id)]);

    // Kernel: three mounts, squashfs ro on the loop devices, overlay with lowers in order.
    let mounts = mounts_under(scratch.path());
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    let entry = |mp: &Path| mounts.iter().find(|e| e.mount_point == mp).unwrap().clone();
    let ea = entry(&lower_a.mountpoint);
    assert_eq!(
        (ea.fs_type.as_str(), ea.source.as_str()),
        ("squashfs", att_a.device.to_str().unwrap())
    );
    assert!(ea.is_read_only());
    assert_eq!(
        entry(&lower_b.mountpoint).source,
        att_b.device.to_str().unwrap()
    );
    let eo = entry(&top.mountpoint);
    assert_eq!(eo.fs_type, "overlay");
    let want = format!(
        "lowerdir={}:{}",
        lower_a.mountpoint.display(),
        lower_b.mountpoint.display()
    );
    assert!(
        eo.super_options.contains(&want),
        "{} lacks {want}",
        eo.super_options
    );

    // Read through the overlay: the first lower wins, both contribute.
    assert_eq!(
        fs::read_to_string(top.mountpoint.join("etc/layer")).unwrap(),
        "a\n"
    );
    assert_eq!(
        fs::read_to_string(top.mountpoint.join("only-a")).unwrap(),
        "from a\n"
    );
    assert_eq!(
        fs::read_to_string(top.mountpoint.join("only-b")).unwrap(),
        "from b\n"
    );
    assert!(top.mountpoint.join("bin/busybox").is_file());

    // Write to the overlay: lands in the upper directory, not in the lowers.
    fs::write(top.mountpoint.join("etc/layer"), "written\n").unwrap();
    fs::write(top.mountpoint.join("new-file"), "new\n").unwrap();
    let upper = stack.cfg.overlay_dir(top.id).join("upper");
    assert_eq!(fs::read_to_string(upper.join("new-file")).unwrap(), "new\n");
    assert_eq!(
        fs::read_to_string(upper.join("etc/layer")).unwrap(),
        "written\n"
    );
    assert_eq!(
        fs::read_to_string(lower_a.mountpoint.join("etc/layer")).unwrap(),
        "a\n"
    );

    // A lower is owned by the overlay: no unmounting it alone.
    let err = m
        .unmount(Selector::Id(lower_a.id), false)
        .await
        .unwrap_err();
    assert_eq!(err.code, imagebus_bus::ErrorCode::Conflict);
    assert_eq!(mounts_under(scratch.path()).len(), 3);

    // Delete cascades: overlay, both image mounts, both loop devices, every directory.
    m.unmount(Selector::Id(top.id), false).await.unwrap();
    assert!(m.list().await.unwrap().is_empty());
    assert!(stack.attach.list().await.unwrap().is_empty());
    assert_no_leaks(&scratch, &stack.cfg);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referenced_image_survives_its_overlay_and_binds_read_inside() {
    let scratch = KernelScratch::new("ib-mount-ref-");
    let (a, _) = two_images(scratch.path());
    let stack = Stack::start(scratch.path()).await.unwrap();
    let m = stack.mount.clone();

    let mut base_spec = image_on_loop(&a);
    base_spec.name = Some(format!("base-{}", std::process::id()));
    let base = m.mount(base_spec, None).await.unwrap();
    let over = m
        .mount(
            overlay(vec![MountRef::Existing(Selector::Id(base.id))]),
            None,
        )
        .await
        .unwrap();
    let etc = m
        .mount(
            bind("etc", Some(MountRef::Existing(Selector::Id(base.id)))),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        fs::read_to_string(etc.mountpoint.join("layer")).unwrap(),
        "a\n"
    );
    assert_eq!(mounts_under(scratch.path()).len(), 3);
    let holders = m.get(Selector::Id(base.id)).await.unwrap().holders;
    assert_eq!(
        holders,
        vec![Holder::User, Holder::Mount(over.id), Holder::Mount(etc.id)]
    );

    m.unmount(Selector::Id(over.id), false).await.unwrap();
    m.unmount(Selector::Id(etc.id), false).await.unwrap();
    // The referenced image is still mounted (the user's reference remains).
    let left = mounts_under(scratch.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].mount_point, base.mountpoint);
    assert_eq!(loops_under(scratch.path()).len(), 1);
    m.unmount(Selector::Id(base.id), false).await.unwrap();
    assert_no_leaks(&scratch, &stack.cfg);
    stack.stop().await;
}

fn mkfs(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("running {program} ({e}): install erofs-utils/e2fsprogs/xfsprogs")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sparse(path: &Path, size: u64) {
    fs::File::create(path).unwrap().set_len(size).unwrap();
}

fn image_rw(path: &Path, loop_read_only: bool) -> imagebus_schema::mount::MountSpec {
    use imagebus_schema::attach::{AttachSource, LoopSource};
    use imagebus_schema::mount::MountSource;
    let mut spec = image_on_loop(path);
    if let MountSource::Image(i) = &mut spec.source {
        i.read_only = false;
        if let imagebus_schema::attach::AttachRef::Inline(a) = &mut i.attach {
            a.source = AttachSource::Loop(LoopSource {
                path: path.into(),
                read_only: loop_read_only,
            });
        }
    }
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erofs_ext4_and_xfs_are_detected_and_read_only_devices_force_ro() {
    let scratch = KernelScratch::new("ib-mount-fstypes-");
    let dir = scratch.path();
    let content = dir.join("content");
    fs::create_dir_all(content.join("etc")).unwrap();
    fs::write(content.join("etc/layer"), "fs\n").unwrap();
    let erofs = dir.join("img.erofs");
    mkfs(
        "mkfs.erofs",
        &["-d0", erofs.to_str().unwrap(), content.to_str().unwrap()],
    );
    let ext4 = dir.join("img.ext4");
    sparse(&ext4, 32 << 20);
    mkfs(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            content.to_str().unwrap(),
            ext4.to_str().unwrap(),
        ],
    );
    let xfs = dir.join("img.xfs");
    sparse(&xfs, 320 << 20);
    mkfs("mkfs.xfs", &["-q", "-f", xfs.to_str().unwrap()]);
    let stack = Stack::start(dir).await.unwrap();
    let m = stack.mount.clone();

    for (image, fs_type, read_only, writable) in [
        (&erofs, "erofs", false, false),
        (&ext4, "ext4", false, true),
        (&ext4, "ext4", true, false),
        (&xfs, "xfs", false, true),
    ] {
        let what = format!("{fs_type} (loop read_only={read_only})");
        let info = m
            .mount(image_rw(image, read_only), None)
            .await
            .expect(&what);
        assert_eq!(info.fs_type, fs_type, "{what}");
        assert_eq!(info.read_only, !writable, "{what}");
        let entries = mounts_under(dir);
        let e = entries
            .iter()
            .find(|e| e.mount_point == info.mountpoint)
            .expect(&what);
        assert_eq!(e.fs_type, fs_type, "{what}");
        assert_eq!(e.is_read_only(), !writable, "{what}: {:?}", e.options);
        if fs_type != "xfs" {
            assert_eq!(
                fs::read_to_string(info.mountpoint.join("etc/layer")).unwrap(),
                "fs\n"
            );
        }
        let wrote = fs::write(info.mountpoint.join("written"), "x").is_ok();
        assert_eq!(wrote, writable, "{what}");
        m.unmount(Selector::Id(info.id), false).await.unwrap();
        assert_no_leaks(&scratch, &stack.cfg);
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_overlay_keeps_writes_and_read_only_binds_refuse_them() {
    use imagebus_schema::mount::{MountSource, OverlayMount};
    let scratch = KernelScratch::new("ib-mount-persist-");
    let (a, _) = two_images(scratch.path());
    let keep = scratch.path().join("keep");
    let stack = Stack::start(scratch.path()).await.unwrap();
    let m = stack.mount.clone();
    let spec = imagebus_schema::mount::MountSpec {
        name: None,
        source: MountSource::Overlay(OverlayMount {
            lowers: vec![inline(image_on_loop(&a))],
            persist_dir: Some(keep.clone()),
        }),
    };
    let first = m.mount(spec.clone(), None).await.unwrap();
    fs::write(first.mountpoint.join("kept"), "across mounts\n").unwrap();
    m.unmount(Selector::Id(first.id), false).await.unwrap();
    assert!(mounts_under(scratch.path()).is_empty());
    assert_eq!(
        fs::read_to_string(keep.join("upper/kept")).unwrap(),
        "across mounts\n"
    );
    let second = m.mount(spec, None).await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(
        fs::read_to_string(second.mountpoint.join("kept")).unwrap(),
        "across mounts\n"
    );

    // A read-only bind of a directory inside the (writable) overlay.
    let mut ro = bind("etc", Some(MountRef::Existing(Selector::Id(second.id))));
    if let MountSource::Bind(b) = &mut ro.source {
        b.read_only = true;
    }
    let ro = m.mount(ro, None).await.unwrap();
    let entry = mounts_under(scratch.path())
        .into_iter()
        .find(|e| e.mount_point == ro.mountpoint)
        .unwrap();
    assert!(entry.is_read_only(), "{:?}", entry.options);
    assert_eq!(
        fs::read_to_string(ro.mountpoint.join("layer")).unwrap(),
        "a\n"
    );
    let err = fs::write(ro.mountpoint.join("nope"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(30), "EROFS expected: {err}");
    fs::write(second.mountpoint.join("etc/yes"), "x").unwrap();

    m.unmount(Selector::Id(ro.id), false).await.unwrap();
    m.unmount(Selector::Id(second.id), false).await.unwrap();
    assert_no_leaks(&scratch, &stack.cfg);
    assert!(
        keep.join("upper/etc/yes").exists(),
        "persist_dir is never deleted"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_attachment_is_referenced_not_owned() {
    use imagebus_schema::attach::AttachRef;
    use imagebus_schema::mount::MountSource;
    let scratch = KernelScratch::new("ib-mount-attref-");
    let (a, _) = two_images(scratch.path());
    let stack = Stack::start(scratch.path()).await.unwrap();
    let att = stack.attach.attach(loop_spec(&a), None).await.unwrap();
    let mut spec = image_on_loop(&a);
    if let MountSource::Image(i) = &mut spec.source {
        i.attach = AttachRef::Existing(Selector::Id(att.id));
    }
    let img = stack.mount.mount(spec, None).await.unwrap();
    assert_eq!(img.attachment, Some(att.id));
    let held = stack.attach.get(Selector::Id(att.id)).await.unwrap();
    assert_eq!(held.holders, vec![Holder::User, Holder::Mount(img.id)]);
    let e = mounts_under(scratch.path());
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].source, att.device.to_str().unwrap());
    // The attachment is in use: detaching it without force is refused.
    let err = stack
        .attach
        .detach(Selector::Id(att.id), false)
        .await
        .unwrap_err();
    assert_eq!(err.code, imagebus_bus::ErrorCode::Conflict);
    stack
        .mount
        .unmount(Selector::Id(img.id), false)
        .await
        .unwrap();
    // The referenced attachment outlives the mount, with the user's reference only.
    let held = stack.attach.get(Selector::Id(att.id)).await.unwrap();
    assert_eq!(held.holders, vec![Holder::User]);
    assert_eq!(loops_under(scratch.path()).len(), 1);
    stack
        .attach
        .detach(Selector::Id(att.id), false)
        .await
        .unwrap();
    assert_no_leaks(&scratch, &stack.cfg);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_binds_carry_submounts_and_plain_binds_do_not() {
    use imagebus_schema::mount::MountSource;
    let scratch = KernelScratch::new("ib-mount-rbind-");
    let host = scratch.path().join("host");
    fs::create_dir_all(host.join("sub")).unwrap();
    fs::write(host.join("top-file"), "top\n").unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(host.join("sub"))
        .status()
        .unwrap();
    assert!(status.success(), "mounting a tmpfs for the test");
    fs::write(host.join("sub/inner"), "inner\n").unwrap();
    let stack = Stack::start(scratch.path()).await.unwrap();
    let m = stack.mount.clone();
    let mut specs = Vec::new();
    for recursive in [false, true] {
        let mut spec = bind(host.to_str().unwrap(), None);
        if let MountSource::Bind(b) = &mut spec.source {
            b.recursive = recursive;
        }
        specs.push(m.mount(spec, None).await.unwrap());
    }
    let (plain, rec) = (&specs[0], &specs[1]);
    assert_eq!(
        fs::read_to_string(plain.mountpoint.join("top-file")).unwrap(),
        "top\n"
    );
    assert!(!plain.mountpoint.join("sub/inner").exists());
    assert_eq!(
        fs::read_to_string(rec.mountpoint.join("sub/inner")).unwrap(),
        "inner\n"
    );
    for info in &specs {
        m.unmount(Selector::Id(info.id), false).await.unwrap();
    }
    let status = std::process::Command::new("umount")
        .arg(host.join("sub"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_no_leaks(&scratch, &stack.cfg);
    stack.stop().await;
}
