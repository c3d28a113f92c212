//! `imagebus attach create --spec @FILE` with a Ceph RBD image on a real one-node cluster:
//! the key goes in through a file, is never echoed back nor logged, and the image mounts.
//! (The rbd-fuse fallback opens images read-write, so the test uses the `profile rbd` user.)
//! Needs root and ceph-mon, ceph-osd, ceph-common, rbd-fuse.

use imagebus_tests::ceph::{ceph, rbd_fuse_under};
use imagebus_tests::daemon::Daemon;
use imagebus_tests::image::busybox_squashfs;
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::{loops_under, mounts_under, KernelScratch};

#[test]
fn rbd_attach_from_a_spec_file_never_shows_the_key() {
    let ceph = ceph();
    let image = format!("cli-{}", std::process::id());
    ceph.import(busybox_squashfs(), &image);
    let redis = RedisFixture::start();
    let scratch = KernelScratch::new("ibrbd");
    let d = Daemon::spawn_in(scratch.path(), Some(&redis.url()), &[]);
    d.wait_ready();

    let spec = |secret: &str| {
        serde_json::json!({
            "name": "img",
            "source": {
                "kind": "rbd", "monitors": [ceph.monitor], "pool": ceph.pool, "image": image,
                "user": ceph.rw_user, "secret": secret, "read_only": true,
            }
        })
    };
    let file = scratch.path().join("spec.json");
    std::fs::write(&file, spec(&ceph.rw_secret).to_string()).unwrap();
    let at = format!("@{}", file.display());

    let out = d.cli(&["--timeout", "60s", "attach", "create", "--spec", &at]);
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    assert!(
        !out.stdout.contains(&ceph.rw_secret),
        "the key was echoed back"
    );
    let a: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(a["source"]["secret"], "<redacted>");
    assert!(
        ["krbd", "rbd-fuse"].contains(&a["driver"].as_str().unwrap()),
        "{a}"
    );
    let list = d.cli(&["--json", "attach", "list"]);
    assert!(!list.stdout.contains(&ceph.rw_secret));

    // The device holds the squashfs: mount it and read a file.
    let m = d.cli(&[
        "--json",
        "--timeout",
        "60s",
        "mount",
        "create",
        "--attachment",
        "img",
    ]);
    assert!(m.status.success(), "{m:?}\n{}", d.log());
    let m: serde_json::Value = serde_json::from_str(&m.stdout).unwrap();
    let mp = std::path::PathBuf::from(m["mountpoint"].as_str().unwrap());
    assert!(mp.join("bin/busybox").is_file());

    // A wrong key is a typed error that does not repeat the key.
    std::fs::write(
        &file,
        spec("AQBAd2VyZ3dlcmd3ZXJnd2VyZ3dlcmd3ZXJnd2VyZw==").to_string(),
    )
    .unwrap();
    let bad = d.cli(&["--timeout", "60s", "attach", "create", "--spec", &at]);
    assert!(!bad.status.success(), "{bad:?}");
    assert_eq!(bad.stderr.lines().count(), 1, "{bad:?}");
    assert!(!bad.stderr.contains("AQBAd2Vy"), "{bad:?}");

    assert!(d
        .cli(&["mount", "rm", &m["id"].to_string()])
        .status
        .success());
    assert!(d
        .cli(&["--timeout", "60s", "attach", "rm", "img"])
        .status
        .success());
    assert_eq!(d.cli(&["--json", "attach", "list"]).stdout.trim(), "[]");
    assert!(mounts_under(scratch.path()).is_empty());
    assert!(loops_under(scratch.path()).is_empty());
    assert!(rbd_fuse_under(scratch.path()).is_empty());
    assert!(
        !d.log().contains(&ceph.rw_secret),
        "the daemon logged the key"
    );
}
