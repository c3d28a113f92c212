//! The image store (`image.image@1`) through the CLI against a real imagebusd: images
//! written by hand (OCI layout, oci-archive, docker-archive, a plain squashfs) are
//! imported into erofs files, mounted by name through the mount module, run as
//! containers with real runc, held while in use, and kept across a daemon restart.
//! Malicious layers are refused and leave nothing. Root.

use imagebus_tests::cli_node::CliNode;
use imagebus_tests::daemon::wait_until;
use imagebus_tests::image::busybox_squashfs;
use imagebus_tests::oci_image::{
    busybox_layer, config, docker_archive, layer, names_in, oci_layout, tar_dir, two_layers, Entry,
};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The node of these tests: [`CliNode`] (redis, scratch directory, imagebusd).
type Node = CliNode;

fn node() -> Node {
    CliNode::start("ibimg")
}

/// `imagebus --json --timeout 60s ARGS` (imports may take a while), which must succeed.
fn json(n: &Node, args: &[&str]) -> Value {
    let mut all = vec!["--timeout", "60s"];
    all.extend_from_slice(args);
    n.json(&all)
}

/// Runs a command that must fail; returns its stderr.
fn fails(n: &Node, args: &[&str]) -> String {
    let out = n.daemon.cli(args);
    assert!(!out.status.success(), "{args:?} succeeded: {out:?}");
    out.stderr
}

/// The store's directory.
fn store(n: &Node) -> PathBuf {
    n.daemon.dir().join("state/image")
}

fn images(n: &Node) -> Vec<Value> {
    json(n, &["image", "ls"]).as_array().unwrap().clone()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn busybox_config() -> Value {
    config(
        &["PATH=/bin", "FOO=bar"],
        &["sh"],
        &[("atomic.type", "system"), ("org.example", "x")],
    )
}

#[test]
fn an_oci_layout_is_stored_once_mounted_run_by_name_and_held_while_used() {
    let n = node();
    let layout = n.scratch.path().join("bb-oci");
    let digest = oci_layout(&layout, &two_layers(), &busybox_config(), "1");
    let src = format!("oci:{}:1", s(&layout));

    let info = json(&n, &["image", "import", &src, "--name", "busybox:1"]);
    assert_eq!(info["digest"], digest.as_str(), "{info}");
    assert_eq!(info["names"], serde_json::json!(["busybox:1"]));
    assert_eq!(info["fs_type"], "erofs");
    assert_eq!(info["format"], "oci");
    assert_eq!(
        info["config"]["env"],
        serde_json::json!(["PATH=/bin", "FOO=bar"])
    );
    assert_eq!(info["config"]["cmd"], serde_json::json!(["sh"]));
    assert_eq!(info["config"]["working_dir"], "/");
    assert_eq!(info["config"]["user"], "0:0");
    assert_eq!(info["config"]["labels"]["atomic.type"], "system");
    let file = PathBuf::from(info["file"].as_str().unwrap());
    assert_eq!(
        file,
        store(&n).join(format!(
            "images/{}.erofs",
            digest.trim_start_matches("sha256:")
        ))
    );
    assert!(file.is_file());

    // Twice: stored once, the new name tags it.
    let again = json(&n, &["image", "import", &src, "--name", "bb:2"]);
    assert_eq!(again["digest"], digest.as_str());
    let list = images(&n);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["names"], serde_json::json!(["bb:2", "busybox:1"]));
    assert_eq!(names_in(&store(&n).join("images")), vec![file.clone()]);
    let table = n.ok(&["image", "ls"]);
    let hex = digest.trim_start_matches("sha256:");
    assert!(table.starts_with("DIGEST"), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&hex[..12])
                && l.contains("bb:2,busybox:1")
                && l.contains("erofs")),
        "{table}"
    );

    // Mounted by name: the layers were applied with their whiteouts and opaque dir.
    let m = json(
        &n,
        &[
            "mount",
            "create",
            "--spec",
            r#"{"source": {"kind": "stored", "image": "busybox:1"}}"#,
        ],
    );
    let mp = PathBuf::from(m["mountpoint"].as_str().unwrap());
    assert_eq!(m["fs_type"], "erofs");
    assert!(m["read_only"].as_bool().unwrap());
    for present in [
        "bin/busybox",
        "hello.txt",
        "old/b",
        "data/upper",
        "etc/passwd",
    ] {
        assert!(mp.join(present).exists(), "{present} missing");
    }
    for gone in ["etc/motd", "old/a", "data/lower"] {
        assert!(!mp.join(gone).exists(), "{gone} should be whited out");
    }
    let held = json(&n, &["image", "inspect", "busybox:1"]);
    assert_eq!(held["holders"], serde_json::json!([{"mount": m["id"]}]));
    n.ok(&["mount", "rm", &m["id"].to_string()]);
    assert_eq!(
        json(&n, &["image", "inspect", &digest])["holders"],
        serde_json::json!([])
    );

    // A container from the image by name, through the CLI.
    n.ok(&[
        "run",
        "--name",
        "c1",
        "--image",
        "busybox:1",
        "--",
        "sh",
        "-c",
        "cat /hello.txt; sleep 1000",
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || n
            .ok(&["logs", "c1"])
            .contains("hello from the image")),
        "logs: {}",
        n.ok(&["logs", "c1"])
    );
    let holders = json(&n, &["image", "inspect", "bb:2"])["holders"].clone();
    assert_eq!(holders.as_array().unwrap().len(), 1, "{holders}");

    // Remove is refused while the container's mount holds the image.
    let err = fails(&n, &["image", "rm", &digest]);
    assert!(err.contains("Conflict:"), "{err}");
    assert!(file.is_file());
    n.ok(&["--timeout", "30s", "rm", "--force", "c1"]);
    // Without a command, the image's config fills in the spec (Cmd, Env, WorkingDir, User);
    // -e overrides an Env entry by name.
    let c2 = json(
        &n,
        &[
            "run",
            "--name",
            "c2",
            "--created",
            "--image",
            "bb:2",
            "-e",
            "FOO=cli",
        ],
    );
    assert_eq!(c2["command"], serde_json::json!(["sh"]), "{c2}");
    assert_eq!(
        c2["spec"]["env"],
        serde_json::json!(["PATH=/bin", "FOO=cli"]),
        "{c2}"
    );
    assert_eq!(
        c2["spec"]["user"],
        serde_json::json!({"uid": 0, "gid": 0}),
        "{c2}"
    );
    n.ok(&["rm", "-f", "c2"]);
    assert_eq!(
        json(&n, &["image", "inspect", &digest])["holders"],
        serde_json::json!([])
    );

    // By one of two names: only the name goes; by the last one: the image goes.
    n.ok(&["image", "rm", "busybox:1"]);
    assert_eq!(images(&n)[0]["names"], serde_json::json!(["bb:2"]));
    n.ok(&["image", "rm", "bb:2"]);
    assert!(images(&n).is_empty());
    assert!(!file.exists());
    let err = fails(&n, &["image", "rm", "bb:2"]);
    assert!(err.contains("NotFound:"), "{err}");
    n.assert_clean();
}

#[test]
fn malicious_layers_are_refused_and_leave_nothing() {
    let n = node();
    let outside = n.scratch.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let out = s(&outside);
    let evil: Vec<(&str, Vec<Entry>)> = vec![
        (
            "dot-dot",
            vec![Entry::file("../../../../outside/pwned", "x")],
        ),
        ("absolute", vec![Entry::file(&format!("{out}/pwned"), "x")]),
        (
            "symlink parent",
            vec![Entry::symlink("evil", &out), Entry::file("evil/pwned", "x")],
        ),
        (
            "hard link",
            vec![Entry::hardlink("passwd", "../../../../../../etc/passwd")],
        ),
    ];
    for (what, entries) in evil {
        let layout = n
            .scratch
            .path()
            .join(format!("evil-{}", what.replace(' ', "-")));
        // The evil layer comes after a good one: the first is applied, then all is dropped.
        oci_layout(
            &layout,
            &[busybox_layer(), layer(&entries)],
            &busybox_config(),
            "1",
        );
        let err = fails(
            &n,
            &[
                "--timeout",
                "60s",
                "image",
                "import",
                &format!("oci:{}", s(&layout)),
            ],
        );
        assert!(err.contains("InvalidArgument:"), "{what}: {err}");
        assert!(err.contains("escapes"), "{what}: {err}");
        assert!(images(&n).is_empty(), "{what}");
        assert!(names_in(&outside).is_empty(), "{what}: wrote outside");
        assert!(names_in(&store(&n).join("images")).is_empty(), "{what}");
        assert!(names_in(&store(&n).join("staging")).is_empty(), "{what}");
    }
    // A corrupt blob is refused the same way.
    let layout = n.scratch.path().join("corrupt");
    oci_layout(&layout, &[busybox_layer()], &busybox_config(), "1");
    let blobs = layout.join("blobs/sha256");
    for f in names_in(&blobs) {
        if std::fs::metadata(&f).unwrap().len() > 10_000 {
            let mut bytes = std::fs::read(&f).unwrap();
            let last = bytes.len() - 100;
            bytes[last] ^= 0xff;
            std::fs::write(&f, bytes).unwrap();
        }
    }
    let err = fails(
        &n,
        &[
            "--timeout",
            "60s",
            "image",
            "import",
            &format!("oci:{}", s(&layout)),
        ],
    );
    assert!(err.contains("InvalidArgument:"), "{err}");
    assert!(names_in(&store(&n).join("images")).is_empty());
    // Bad sources and names.
    for args in [
        &["image", "import", "docker://busybox"][..],
        &["image", "import", "oci:/nonexistent/x"],
        &[
            "image",
            "import",
            &format!("oci:{}", s(&layout)),
            "--name",
            "Bad Name",
        ],
    ] {
        let err = fails(&n, args);
        assert!(
            err.contains("InvalidArgument:") || err.contains("NotFound:"),
            "{args:?}: {err}"
        );
    }
    n.assert_clean();
}

#[test]
fn archives_and_plain_files_import_with_default_names() {
    let n = node();
    // oci-archive: a tar of a layout; the default name is the file's stem and the tag.
    let layout = n.scratch.path().join("layout");
    let digest = oci_layout(&layout, &two_layers(), &busybox_config(), "2.0");
    let archive = n.scratch.path().join("bb.tar");
    tar_dir(&layout, &archive);
    let a = json(
        &n,
        &["image", "import", &format!("oci-archive:{}", s(&archive))],
    );
    assert_eq!(
        (&a["digest"], &a["names"], &a["format"]),
        (
            &Value::from(digest.as_str()),
            &serde_json::json!(["bb:2.0"]),
            &Value::from("oci-archive")
        ),
        "{a}"
    );
    // Same image as an OCI layout: stored once.
    let same = json(
        &n,
        &[
            "image",
            "import",
            &format!("oci:{}:2.0", s(&layout)),
            "--name",
            "x",
        ],
    );
    assert_eq!(same["digest"], digest.as_str());

    // docker-archive: the repository tag names it; its digest is the config's.
    let darch = n.scratch.path().join("docker.tar");
    let cdigest = docker_archive(
        &darch,
        &two_layers(),
        &busybox_config(),
        "docker.io/library/busybox:d1",
    );
    let d = json(
        &n,
        &["image", "import", &format!("docker-archive:{}", s(&darch))],
    );
    assert_eq!(d["digest"], cdigest.as_str(), "{d}");
    assert_eq!(
        d["names"],
        serde_json::json!(["docker.io/library/busybox:d1"])
    );
    assert_eq!(d["config"]["labels"]["atomic.type"], "system");
    // By its repository tag: the same image; an unknown tag is not found.
    let src = format!("docker-archive:{}:docker.io/library/busybox:d1", s(&darch));
    assert_eq!(
        json(&n, &["image", "import", &src])["digest"],
        cdigest.as_str()
    );
    let err = fails(
        &n,
        &[
            "image",
            "import",
            &format!("docker-archive:{}:nope:1", s(&darch)),
        ],
    );
    assert!(err.contains("NotFound:"), "{err}");

    // A plain squashfs file, stored as it is.
    let plain = n.scratch.path().join("plain.sqsh");
    std::fs::copy(busybox_squashfs(), &plain).unwrap();
    let p = json(&n, &["image", "import", &s(&plain)]);
    assert_eq!(
        (&p["fs_type"], &p["names"]),
        (
            &Value::from("squashfs"),
            &serde_json::json!(["plain:latest"])
        )
    );
    assert_eq!(images(&n).len(), 3);
    // A name of another image is refused.
    let err = fails(&n, &["image", "tag", &digest, "plain"]);
    assert!(err.contains("Conflict:"), "{err}");

    // Two concurrent imports of one image under two names: one image, both names.
    let layout2 = n.scratch.path().join("conc");
    let d2 = oci_layout(&layout2, &[busybox_layer()], &busybox_config(), "1");
    let src = format!("oci:{}", s(&layout2));
    let outs: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = ["c:1", "c:2"]
            .iter()
            .map(|name| {
                let (d, src) = (&n.daemon, src.clone());
                sc.spawn(move || {
                    d.cli(&["--timeout", "60s", "image", "import", &src, "--name", name])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert!(o.status.success(), "{o:?}");
    }
    let conc = json(&n, &["image", "inspect", &d2]);
    assert_eq!(conc["names"], serde_json::json!(["c:1", "c:2"]));
    assert_eq!(names_in(&store(&n).join("images")).len(), 4);

    // A container from the docker-archive image by name and from the plain file by name.
    for (name, image) in [("d", "docker.io/library/busybox:d1"), ("p", "plain")] {
        n.ok(&[
            "run",
            "--name",
            name,
            "--image",
            image,
            "--",
            "sh",
            "-c",
            "echo ran-$0; sleep 1000",
        ]);
        assert!(
            wait_until(Duration::from_secs(10), || n
                .ok(&["logs", name])
                .contains("ran-sh")),
            "{name}: {}",
            n.ok(&["logs", name])
        );
        n.ok(&["--timeout", "30s", "rm", "--force", name]);
    }
    n.assert_clean();
}

#[test]
fn images_and_their_holders_survive_a_daemon_restart() {
    let mut n = node();
    let layout = n.scratch.path().join("img");
    let digest = oci_layout(&layout, &two_layers(), &busybox_config(), "1");
    json(
        &n,
        &[
            "image",
            "import",
            &format!("oci:{}", s(&layout)),
            "--name",
            "keep:1",
        ],
    );
    let m = json(
        &n,
        &[
            "mount",
            "create",
            "--spec",
            r#"{"source": {"kind": "stored", "image": "keep:1"}}"#,
        ],
    );
    n.daemon.kill9();
    // A staging directory of a cut-short import is swept at start-up.
    let staging = store(&n).join("staging/leftover");
    std::fs::create_dir_all(staging.join("rootfs")).unwrap();
    n.daemon.restart();
    let list = images(&n);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], digest.as_str());
    assert_eq!(list[0]["names"], serde_json::json!(["keep:1"]));
    assert_eq!(list[0]["holders"], serde_json::json!([{"mount": m["id"]}]));
    assert!(!staging.exists());
    assert!(fails(&n, &["image", "rm", "keep:1"]).contains("Conflict:"));
    n.ok(&["mount", "rm", &m["id"].to_string()]);
    n.ok(&["image", "rm", "keep:1"]);
    assert!(images(&n).is_empty());
    n.assert_clean();
}
