//! The attach actor against a real one-node Ceph cluster (scripts/ceph-micro.sh), on a
//! kernel without rbd: the userspace fallback (rbd-fuse + loop) is chosen automatically.
//! Needs root and ceph-mon, ceph-osd, ceph-common, rbd-fuse.

mod attach_common;

use attach_common::{sys_attr, Child, Env};
use imagebus_schema::attach::{AttachModule, AttachSource, AttachSpec, RbdSource, Secret};
use imagebus_schema::{ErrorCode, Holder, Selector};
use imagebus_sys::loopdev::LoopDevices;
use imagebus_tests::ceph::{ceph, CephEnv};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

fn unique_image(ceph: &CephEnv) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "busybox-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    ceph.import(imagebus_tests::image::busybox_squashfs(), &name);
    name
}

fn rbd(ceph: &CephEnv, image: &str, user: &str, secret: &str, shared: bool) -> AttachSpec {
    AttachSpec {
        name: None,
        source: AttachSource::Rbd(RbdSource {
            monitors: vec![ceph.monitor.clone()],
            pool: ceph.pool.clone(),
            image: image.into(),
            snapshot: None,
            namespace: None,
            user: user.into(),
            secret: Secret::new(secret),
            read_only: true,
            shared,
        }),
    }
}

fn assert_device_holds_image(device: &Path) {
    let want = std::fs::read(imagebus_tests::image::busybox_squashfs()).unwrap();
    let mut got = vec![0u8; want.len()];
    std::fs::File::open(device)
        .unwrap()
        .read_exact(&mut got)
        .unwrap();
    assert!(got == want, "{device:?} does not hold the imported image");
}

/// A squashfs mounted read-only from a device for the length of a test (unmounted on drop,
/// pass or fail).
struct SquashfsMount(std::path::PathBuf);

impl SquashfsMount {
    fn new(device: &Path, at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "squashfs", "-o", "ro"])
            .arg(device)
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mounting {device:?}");
        Self(at.to_path_buf())
    }

    /// Reads the busybox binary through the mount, from the device (the page cache is
    /// dropped first, so the reads reach the loop device and rbd-fuse behind it).
    fn assert_reads_busybox(&self) {
        std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
        let got = std::fs::read(self.0.join("bin/busybox"))
            .unwrap_or_else(|e| panic!("reading through the mount on {:?}: {e}", self.0));
        assert!(got == std::fs::read(imagebus_tests::image::BUSYBOX).unwrap());
    }
}

impl Drop for SquashfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn rbd_dir_entries(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.cfg.rbd_dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn rbd_fallback_attach_reads_the_image_back() {
    let ceph = ceph();
    let env = Env::new("ib-attach-ceph-");
    let image = unique_image(&ceph);
    let (attach, _) = env.start().await;

    let spec = rbd(&ceph, &image, &ceph.rw_user, &ceph.rw_secret, false);
    let info = attach.attach(spec.clone(), None).await.unwrap();
    assert_eq!(info.driver, "rbd-fuse");
    assert!(info.read_only);
    assert_eq!(sys_attr(&info.device, "ro").as_deref(), Some("1"));
    let backing = sys_attr(&info.device, "loop/backing_file").unwrap();
    assert!(
        backing.starts_with(&env.cfg.rbd_dir().display().to_string()),
        "{backing}"
    );
    assert_device_holds_image(&info.device);
    // And through the kernel's squashfs: mount it and read a file back.
    let mnt = env.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "squashfs", "-o", "ro"])
        .arg(&info.device)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mounting {:?}", info.device);
    let hostname = std::fs::read_to_string(mnt.join("etc/hostname"));
    let busybox = std::fs::read(mnt.join("bin/busybox"));
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    assert_eq!(hostname.unwrap(), "imagebus-test\n");
    assert!(busybox.unwrap() == std::fs::read(imagebus_tests::image::BUSYBOX).unwrap());

    // The secret: redacted in replies, absent from the state file, only in a 0600 file
    // inside 0700 directories.
    let AttachSource::Rbd(shown) = &info.source else {
        panic!("not rbd")
    };
    assert_eq!(shown.secret.expose(), Secret::REDACTED);
    assert!(!format!("{:?}", attach.list().await.unwrap()).contains(&ceph.rw_secret));
    let state = std::fs::read_to_string(env.cfg.state_dir.join("attach.json")).unwrap();
    assert!(!state.contains(&ceph.rw_secret), "secret in the state file");
    let conf = env
        .cfg
        .rbd_dir()
        .join(info.id.to_string())
        .join("ceph.conf");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&conf), 0o600);
    assert_eq!(mode(&env.cfg.state_dir), 0o700);
    assert_eq!(mode(conf.parent().unwrap()), 0o700);
    for pid in imagebus_tests::ceph::rbd_fuse_under(env.path()) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(&ceph.rw_secret));
    }

    // The same image again: Conflict, unless shared read-only use is asked for.
    let err = attach.attach(spec, None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    let shared = attach
        .attach(
            rbd(&ceph, &image, &ceph.rw_user, &ceph.rw_secret, true),
            None,
        )
        .await
        .unwrap();
    assert_eq!(shared.device, info.device);
    assert_eq!(env.loops().len(), 1);
    let err = attach
        .detach(Selector::Id(info.id), false)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    attach.detach(Selector::Id(shared.id), false).await.unwrap();
    attach.detach(Selector::Id(info.id), false).await.unwrap();

    env.assert_clean();
    assert_eq!(rbd_dir_entries(&env), Vec::<String>::new());
}

#[tokio::test]
async fn rbd_errors_are_typed_and_leave_nothing() {
    let ceph = ceph();
    let env = Env::new("ib-attach-ceph-err-");
    let image = unique_image(&ceph);
    let (attach, _) = env.start().await;
    // A well-formed key of the right length that the cluster does not know.
    let wrong = "AQBKjwZrAAAAAAAAvbTI81uQSAgxZmzSLX8jOg==";
    let mut unreachable = rbd(&ceph, &image, &ceph.rw_user, &ceph.rw_secret, false);
    if let AttachSource::Rbd(r) = &mut unreachable.source {
        r.monitors = vec!["127.0.0.1:1".into()];
    }
    let cases = [
        (
            rbd(
                &ceph,
                "no-such-image",
                &ceph.rw_user,
                &ceph.rw_secret,
                false,
            ),
            ErrorCode::NotFound,
        ),
        (
            rbd(&ceph, &image, &ceph.rw_user, wrong, false),
            ErrorCode::InvalidArgument,
        ),
        (
            rbd(&ceph, &image, &ceph.rw_user, "not base64!", false),
            ErrorCode::InvalidArgument,
        ),
        // rbd-fuse opens images read-write: a read-only user cannot use the fallback.
        (
            rbd(&ceph, &image, &ceph.ro_user, &ceph.ro_secret, false),
            ErrorCode::InvalidArgument,
        ),
        (unreachable, ErrorCode::Unavailable),
    ];
    for (spec, code) in cases {
        let err = attach.attach(spec, None).await.unwrap_err();
        assert_eq!(err.code, code, "{err}");
        assert!(!err.message.contains(&ceph.rw_secret) && !err.message.contains(wrong));
        assert!(attach.list().await.unwrap().is_empty());
        assert_eq!(rbd_dir_entries(&env), Vec::<String>::new(), "after {err}");
        env.assert_clean();
    }
}

#[tokio::test]
async fn rbd_fuse_outlives_an_actor_crash_and_is_restarted_when_dead() {
    let ceph = ceph();
    let env = Env::new("ib-attach-ceph-crash-");
    let image = unique_image(&ceph);
    let spec = rbd(&ceph, &image, &ceph.rw_user, &ceph.rw_secret, false);
    let (child, infos) = Child::start(&env.cfg.state_dir, &[spec]);
    child.kill9();
    let pids = imagebus_tests::ceph::rbd_fuse_under(env.path());
    assert_eq!(pids.len(), 1, "rbd-fuse must survive the actor");

    // Restart: the live rbd-fuse is found again (pid + cmdline), nothing is mapped twice.
    let (attach, report) = env.start().await;
    assert_eq!(report.kept, vec![infos[0].id], "{report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!(imagebus_tests::ceph::rbd_fuse_under(env.path()), pids);
    assert_eq!(env.loops().len(), 1);
    assert_device_holds_image(&infos[0].device);
    drop(attach);
    // A filesystem in use on the device, as the mount actor would have it.
    let mounted = SquashfsMount::new(&infos[0].device, &env.path().join("mnt"));
    mounted.assert_reads_busybox();

    // rbd-fuse dies while the actor is down: the next start restarts it, and the read-only
    // attachment keeps its device, moved onto the new FUSE file: the mount reads on.
    imagebus_tests::ceph::kill_rbd_fuse_under(env.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !imagebus_tests::ceph::rbd_fuse_under(env.path()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "rbd-fuse did not die");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (attach, report) = env.start().await;
    assert_eq!(report.restarted, vec![infos[0].id], "{report}");
    let info = attach.get(Selector::Id(infos[0].id)).await.unwrap();
    assert_eq!(info.device, infos[0].device, "the device changed");
    assert_device_holds_image(&info.device);
    mounted.assert_reads_busybox();
    assert_eq!(env.loops().len(), 1, "one loop device, no stale one");
    let pids = imagebus_tests::ceph::rbd_fuse_under(env.path());
    assert_eq!(pids.len(), 1);

    // rbd-fuse dies while the actor runs: the actor reaps its child and restarts it.
    imagebus_tests::ceph::kill_rbd_fuse_under(env.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = imagebus_tests::ceph::rbd_fuse_under(env.path());
        if now.len() == 1 && now != pids {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rbd-fuse was not restarted: {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The restart runs as a job on the attachment's key: another command on the same
    // attachment (an Acquire by a holder it already has, which changes nothing) is ordered
    // after it, so once it answers the device has been moved onto the new rbd-fuse.
    let info = attach
        .acquire(Selector::Id(infos[0].id), Holder::User)
        .await
        .unwrap();
    assert_eq!(info.device, infos[0].device, "the device changed");
    assert_device_holds_image(&info.device);
    mounted.assert_reads_busybox();
    assert_eq!(env.loops().len(), 1);

    drop(mounted);
    attach.detach(Selector::Id(info.id), false).await.unwrap();
    env.assert_clean();
    assert_eq!(rbd_dir_entries(&env), Vec::<String>::new());
}

#[tokio::test]
async fn orphan_rbd_fuse_mount_and_loop_are_cleaned_and_reported() {
    let ceph = ceph();
    let env = Env::new("ib-attach-ceph-orphan-");
    let image = unique_image(&ceph);
    let (attach, _) = env.start().await;
    let info = attach
        .attach(
            rbd(&ceph, &image, &ceph.rw_user, &ceph.rw_secret, false),
            None,
        )
        .await
        .unwrap();
    drop(attach);

    // What a crash in the middle of an rbd attach leaves: a directory with a config, an
    // rbd-fuse serving it, and an untagged loop device on its file, none of them recorded.
    let orphan = env.cfg.rbd_dir().join("999");
    std::fs::create_dir_all(orphan.join("mnt")).unwrap();
    let conf = env
        .cfg
        .rbd_dir()
        .join(info.id.to_string())
        .join("ceph.conf");
    std::fs::copy(&conf, orphan.join("ceph.conf")).unwrap();
    let mut fuse = std::process::Command::new("rbd-fuse")
        .args(["-f", "-c"])
        .arg(orphan.join("ceph.conf"))
        .args(["-p", &ceph.pool, "-r", &image, "-o", "ro"])
        .arg(orphan.join("mnt"))
        .env("CEPH_ARGS", format!("--id {}", ceph.rw_user))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting rbd-fuse (install rbd-fuse)");
    let file = orphan.join("mnt").join(&image);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !file.is_file() {
        assert!(
            std::time::Instant::now() < deadline,
            "orphan rbd-fuse never exposed the image"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = std::process::Command::new("losetup")
        .args(["-r", "-f", "--show"])
        .arg(&file)
        .output();
    let orphan_loop = String::from_utf8_lossy(&out.unwrap().stdout)
        .trim()
        .to_string();
    assert!(orphan_loop.starts_with("/dev/loop"), "losetup failed");
    assert_eq!(env.loops().len(), 2);

    let (attach, report) = env.start().await;
    let _ = fuse.wait();
    assert_eq!(report.kept, vec![info.id], "{report}");
    let cleaned = report.cleaned.join("\n");
    for what in [
        orphan_loop.as_str(),
        "rbd-fuse process",
        "FUSE mount",
        "directory",
    ] {
        assert!(cleaned.contains(what), "{what} not reported: {report}");
    }
    assert!(!orphan.exists());
    assert_eq!(
        env.loops().len(),
        1,
        "only the recorded attachment's loop device remains"
    );
    assert_eq!(imagebus_tests::ceph::rbd_fuse_under(env.path()).len(), 1);
    assert_device_holds_image(&info.device);

    attach.detach(Selector::Id(info.id), false).await.unwrap();
    env.assert_clean();
}

/// An image in a RADOS namespace, read by a user whose caps name only that namespace: the
/// namespace reaches the cluster (rbd info and rbd-fuse), and the same name outside it is
/// another image.
#[tokio::test]
async fn rbd_namespace_is_honoured_with_a_namespace_scoped_user() {
    let ceph = ceph();
    let env = Env::new("ib-attach-ceph-ns-");
    let (attach, _) = env.start().await;
    let ns = format!("tenant{}", std::process::id());
    let image = format!("ns-busybox-{}", std::process::id());
    ceph.rbd(&[
        "namespace",
        "create",
        "--pool",
        &ceph.pool,
        "--namespace",
        &ns,
    ]);
    let file = imagebus_tests::image::busybox_squashfs()
        .display()
        .to_string();
    ceph.rbd(&[
        "import",
        "--no-progress",
        "--image-feature",
        "layering",
        &file,
        &format!("{}/{ns}/{image}", ceph.pool),
    ]);
    let user = format!("imagebus-{ns}");
    let secret = ceph.user(
        &user,
        &[
            "mon",
            "profile rbd",
            "osd",
            &format!("profile rbd pool={} namespace={ns}", ceph.pool),
        ],
    );
    let in_ns = |namespace: Option<&str>| {
        let mut spec = rbd(&ceph, &image, &user, &secret, false);
        if let AttachSource::Rbd(r) = &mut spec.source {
            r.namespace = namespace.map(str::to_string);
        }
        spec
    };

    // Outside the namespace: the scoped user may not look (refused access), and a user of
    // the whole pool finds no image of that name.
    let err = attach.attach(in_ns(None), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    assert!(err.message.contains("refused access"), "{err}");
    assert!(!err.message.contains(&secret));
    let mut pool_wide = rbd(&ceph, &image, &ceph.rw_user, &ceph.rw_secret, false);
    let err = attach.attach(pool_wide.clone(), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{err}");
    assert!(attach.list().await.unwrap().is_empty());
    assert_eq!(rbd_dir_entries(&env), Vec::<String>::new());
    // ...but does with the namespace named.
    if let AttachSource::Rbd(r) = &mut pool_wide.source {
        r.namespace = Some(ns.clone());
    }
    let wide = attach.attach(pool_wide, None).await.unwrap();
    assert_device_holds_image(&wide.device);
    attach.detach(Selector::Id(wide.id), false).await.unwrap();

    let info = attach.attach(in_ns(Some(&ns)), None).await.unwrap();
    assert_eq!(info.driver, "rbd-fuse");
    let AttachSource::Rbd(shown) = &info.source else {
        panic!("not rbd")
    };
    assert_eq!(shown.namespace.as_deref(), Some(ns.as_str()));
    assert_device_holds_image(&info.device);
    // The same image in the same namespace is the same attachment (Conflict when exclusive).
    let err = attach.attach(in_ns(Some(&ns)), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");

    attach.detach(Selector::Id(info.id), false).await.unwrap();
    env.assert_clean();
    assert_eq!(rbd_dir_entries(&env), Vec::<String>::new());
    ceph.rbd(&[
        "rm",
        "--no-progress",
        &format!("{}/{ns}/{image}", ceph.pool),
    ]);
    ceph.rbd(&[
        "namespace",
        "remove",
        "--pool",
        &ceph.pool,
        "--namespace",
        &ns,
    ]);
}

/// Loop devices anywhere on the machine whose backing file is `image` (in a FUSE mount, or
/// `/<image>` once that mount is gone).
fn loops_on_image(image: &str) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    imagebus_tests::fault_matrix::machine::loops()
        .into_iter()
        .filter(|(_, b)| {
            b.file_name()
                .is_some_and(|n| n.to_string_lossy().trim_end_matches(" (deleted)") == image)
        })
        .collect()
}

/// Detaches the loop devices on an image when dropped (a failing test included: once the
/// FUSE mount is gone, `Env`'s sweep cannot find them by path).
struct ImageLoops(String);

impl Drop for ImageLoops {
    fn drop(&mut self) {
        for (dev, _) in loops_on_image(&self.0) {
            let _ = std::process::Command::new("losetup")
                .arg("-d")
                .arg(dev)
                .status();
        }
    }
}

/// Regression (fault matrix, kill -9 during an rbd-fuse attach): the actor is killed
/// between binding the loop device on the rbd-fuse file and recording the attachment.
/// Then its rbd-fuse is stopped (SIGTERM: it unmounts its FUSE mount on the way out, so
/// the loop device's backing file shows as `/<image>` and, the server being gone, the
/// kernel no longer reads back its tag) — or left running. The restart must leave no loop
/// device, FUSE mount or rbd-fuse process of that attach, and the image attaches again.
#[tokio::test]
async fn kill_9_between_loop_and_record_of_an_rbd_fuse_attach_leaks_nothing() {
    let ceph = ceph();
    for (read_only, stop_rbd_fuse) in [(false, true), (true, true), (true, false)] {
        let case = format!("read_only {read_only}, rbd-fuse stopped {stop_rbd_fuse}");
        let env = Env::new("ib-attach-ceph-frozen-");
        let image = unique_image(&ceph);
        let _sweep = ImageLoops(image.clone());
        let mut spec = rbd(&ceph, &image, &ceph.rw_user, &ceph.rw_secret, false);
        if let AttachSource::Rbd(r) = &mut spec.source {
            r.read_only = read_only;
        }
        let (child, number) = Child::start_frozen_after_loop(&env.cfg.state_dir, &spec);
        let device = std::path::PathBuf::from(format!("/dev/loop{number}"));
        let backing = sys_attr(&device, "loop/backing_file").unwrap_or_default();
        assert!(
            backing.starts_with(&env.cfg.rbd_dir().display().to_string()),
            "{case}: {backing}"
        );
        assert_eq!(imagebus_tests::ceph::rbd_fuse_under(env.path()).len(), 1);
        child.kill9();

        if stop_rbd_fuse {
            assert_eq!(imagebus_tests::ceph::term_rbd_fuse_under(env.path()), 1);
            assert!(
                imagebus_tests::ceph::rbd_fuse_under(env.path()).is_empty(),
                "{case}: rbd-fuse did not stop"
            );
        }
        // Wait until the loop device is gone, or until the kernel cannot stat its file any
        // more (no tag read back: a writable image's attributes expire after a second).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let status = imagebus_sys::loopdev::LinuxLoopDevices.status(number);
            let settled = match status {
                Ok(Some(d)) => !stop_rbd_fuse || read_only || d.tag.is_empty(),
                _ => true,
            };
            if settled || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }

        let (attach, report) = env.start().await;
        assert!(attach.list().await.unwrap().is_empty(), "{case}: {report}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !loops_on_image(&image).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(loops_on_image(&image), vec![], "{case}: {report}");
        let fuse: Vec<_> = imagebus_tests::rootfs::mounts_under(env.path())
            .into_iter()
            .filter(|m| m.fs_type.starts_with("fuse"))
            .map(|m| m.mount_point)
            .collect();
        assert!(fuse.is_empty(), "{case}: FUSE mounts left: {fuse:?}");
        assert!(
            imagebus_tests::ceph::rbd_fuse_under(env.path()).is_empty(),
            "{case}: rbd-fuse left"
        );
        assert_eq!(rbd_dir_entries(&env), Vec::<String>::new(), "{case}");

        // The image is free again.
        let info = attach.attach(spec, None).await.unwrap();
        assert_device_holds_image(&info.device);
        attach.detach(Selector::Id(info.id), false).await.unwrap();
        env.assert_clean();
        assert_eq!(loops_on_image(&image), vec![], "{case}");
    }
}
