//! `imagebus attach …` and `imagebus mount …` against a real imagebusd (loop devices,
//! squashfs, overlayfs). Root.

use imagebus_tests::daemon::Daemon;
use imagebus_tests::image::busybox_squashfs;
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::{loops_under, mounts_under, KernelScratch};

fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.cli(args);
    assert!(out.status.success(), "{args:?}: {out:?}\nlog:\n{}", d.log());
    out.stdout
}

fn json(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(d, &all)).unwrap()
}

/// The exit status of each error code (docs/operations.md, "Errors and exit status").
fn status_of(prefix: &str) -> i32 {
    match prefix.split(':').nth(1).map(str::trim) {
        Some("NotFound") => 5,
        Some("Conflict") => 6,
        Some("InvalidArgument") => 2,
        _ => 1,
    }
}

fn fails(d: &Daemon, args: &[&str], prefix: &str) {
    let out = d.cli(args);
    assert_eq!(
        out.status.code(),
        Some(status_of(prefix)),
        "{args:?}: {out:?}"
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].starts_with(prefix), "{args:?}: {:?}", lines[0]);
}

#[test]
fn attach_and_mount_create_list_get_rm() {
    let redis = RedisFixture::start();
    let scratch = KernelScratch::new("ibstore");
    let image = scratch.path().join("busybox.sqsh");
    std::fs::copy(busybox_squashfs(), &image).unwrap();
    let d = Daemon::spawn_in(scratch.path(), Some(&redis.url()), &[]);
    d.wait_ready();
    let img = image.to_str().unwrap();

    // attach create from flags.
    let a = json(&d, &["attach", "create", "--name", "base", "--loop", img]);
    assert_eq!(a["driver"], "loop");
    assert_eq!(a["read_only"], true);
    let device = a["device"].as_str().unwrap().to_string();
    assert_eq!(
        loops_under(scratch.path()),
        vec![(device.clone().into(), image.clone())]
    );
    let table = ok(&d, &["attach", "list"]);
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("base") && l.contains(&device)),
        "{table}"
    );
    assert_eq!(json(&d, &["attach", "get", "base"])["id"], a["id"]);

    // mount create: image on the attachment, then an overlay over it, then a bind inside it.
    let m = json(
        &d,
        &["mount", "create", "--name", "img", "--attachment", "base"],
    );
    assert_eq!(m["fs_type"], "squashfs");
    let mp = std::path::PathBuf::from(m["mountpoint"].as_str().unwrap());
    assert!(mp.join("bin/busybox").is_file());
    let ov = json(&d, &["mount", "create", "--name", "ov", "--lower", "img"]);
    assert_eq!(ov["kind"], "overlay");
    let b = json(
        &d,
        &[
            "mount", "create", "--name", "bin", "--bind", "bin", "--base", "img",
        ],
    );
    assert!(std::path::Path::new(b["mountpoint"].as_str().unwrap())
        .join("busybox")
        .is_file());
    assert_eq!(mounts_under(scratch.path()).len(), 3);
    let table = ok(&d, &["mount", "list"]);
    assert_eq!(table.lines().count(), 4, "{table}");

    // Held objects cannot go without --force; holders release in order. The message
    // names the holders in words, not Rust Debug text.
    let held = format!(
        "error: Conflict: mount {} is still held by mount:{}, mount:{}; remove those first",
        m["id"], ov["id"], b["id"]
    );
    fails(&d, &["mount", "rm", "img"], &held);
    fails(&d, &["attach", "rm", "base"], "error: Conflict: ");
    ok(&d, &["mount", "rm", "bin"]);
    ok(&d, &["mount", "rm", "ov"]);
    ok(&d, &["mount", "rm", "img"]);
    ok(&d, &["attach", "rm", "base"]);
    assert_eq!(json(&d, &["mount", "list"]), serde_json::json!([]));
    assert_eq!(json(&d, &["attach", "list"]), serde_json::json!([]));
    assert!(mounts_under(scratch.path()).is_empty());
    assert!(loops_under(scratch.path()).is_empty());

    // Inline nesting from one flag: image file -> loop -> squashfs, removed as one.
    let m = json(&d, &["mount", "create", "--image", img]);
    assert_eq!(json(&d, &["attach", "list"]).as_array().unwrap().len(), 1);
    ok(&d, &["mount", "rm", &m["id"].to_string()]);
    assert_eq!(json(&d, &["attach", "list"]), serde_json::json!([]));

    // Typed errors, nothing created.
    fails(&d, &["attach", "get", "nosuch"], "error: NotFound: ");
    fails(
        &d,
        &["attach", "create", "--loop", "/nonexistent.img"],
        "error: InvalidArgument: ",
    );
    fails(
        &d,
        &[
            "mount",
            "create",
            "--spec",
            "{\"source\":{\"kind\":\"nope\"}}",
        ],
        "error: InvalidArgument: --spec",
    );
    assert_eq!(json(&d, &["attach", "list"]), serde_json::json!([]));
}
