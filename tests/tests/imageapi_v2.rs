//! ImageAPI v0.2's paths against `imagebusd --imageapi` with the real `curl`: loopback
//! and local attachments, `attach`/`overlay`/`bind` mounts, a loopback file inside a
//! mount, nested container definitions and their cascade, `PATCH` state changes, `force`,
//! 409 on in-use deletes, every error status (400/404/409/413/500/501) with requests that
//! fail changing nothing, a unix-socket listener, and the gateway of a split deployment
//! (`--only`) reaching every module over the bus. The kernel is checked after the
//! deletes. Needs root, runc, busybox-static and squashfs-tools.

use imagebus_tests::blackhole::{cephx_key, require_rbd_tools, BlackHole};
use imagebus_tests::bus_node::require_container_tools;
use imagebus_tests::daemon::{wait_until, Daemon};
use imagebus_tests::imageapi::{assert_error, free_port, Endpoint, ImageApiNode};
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::KernelScratch;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// An init that exits at once on SIGTERM.
const INIT: &str =
    "/bin/sh -c 'trap \"exit 0\" TERM; echo up; while :; do sleep 1 & wait $!; done'";

fn loopback(path: &Path) -> Value {
    json!({"kind": "loopback", "loopback": {"path": path.display().to_string(), "base": "root"}})
}

fn squashfs_on(attach: Value) -> Value {
    json!({"kind": "attach", "attach": {"fs_type": "squashfs", "attach": attach,
        "mount_options": ["ro"]}})
}

fn wait_file(path: &str, needle: &str) {
    let ok = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
    });
    assert!(ok, "{needle:?} never appeared in {path}");
}

/// The whole v0.2 flow on one API: separate objects by reference, then a nested container.
fn v02_flow(api: &Endpoint, image: &Path, host_dir: &Path) {
    // attach (loopback) → mount (attach, by reference) → overlay → bind into the overlay.
    let a = api.expect("POST", "/attach", Some(&loopback(image)), 201);
    assert_eq!(a["kind"], "loopback", "{a}");
    assert_eq!(a["refs"], 1);
    let aid = a["id"].as_i64().unwrap();
    let dev = a["device_file"].as_str().unwrap().to_string();
    assert!(dev.starts_with("/dev/loop"), "{a}");
    assert_eq!(
        api.expect("GET", &format!("/attach?id={aid}"), None, 200)[0]["id"],
        aid
    );
    assert_eq!(api.expect("GET", "/attach?kind=rbd", None, 200), json!([]));

    let m = api.expect(
        "POST",
        "/mount",
        Some(&squashfs_on(json!({"id": aid}))),
        201,
    );
    assert_eq!(m["kind"], "attach", "{m}");
    assert_eq!(m["attach"]["attach"]["id"], aid);
    let mid = m["id"].as_i64().unwrap();
    assert!(Path::new(m["mountpoint"].as_str().unwrap())
        .join("bin/busybox")
        .is_file());
    assert_eq!(
        api.expect("GET", &format!("/attach?id={aid}"), None, 200)[0]["refs"],
        2
    );

    let o = api.expect(
        "POST",
        "/mount",
        Some(&json!({"kind": "overlay", "overlay": {"lower": [{"id": mid}]}})),
        201,
    );
    assert_eq!(o["kind"], "overlay", "{o}");
    assert_eq!(
        o["overlay"]["lower"],
        json!([{"id": mid, "kind": "attach"}])
    );
    assert!(Path::new(o["overlay"]["upperdir"].as_str().unwrap()).is_dir());
    let oid = o["id"].as_i64().unwrap();

    std::fs::write(host_dir.join("hello"), "from the host").unwrap();
    let b = api.expect(
        "POST",
        "/mount",
        Some(
            &json!({"kind": "bind", "bind": {"path": host_dir.display().to_string(),
            "base": "root", "ro": true}}),
        ),
        201,
    );
    assert_eq!(b["kind"], "bind", "{b}");
    assert_eq!(b["bind"]["path"], host_dir.display().to_string());
    let bmp = Path::new(b["mountpoint"].as_str().unwrap()).to_path_buf();
    assert_eq!(
        std::fs::read_to_string(bmp.join("hello")).unwrap(),
        "from the host"
    );
    assert!(
        std::fs::write(bmp.join("nope"), "x").is_err(),
        "the bind is read-only"
    );
    let bid = b["id"].as_i64().unwrap();
    // A bind inside another mount.
    let bi = api.expect(
        "POST",
        "/mount",
        Some(
            &json!({"kind": "bind", "bind": {"path": "bin", "base": "mount",
            "mount": {"id": mid, "kind": "attach"}}}),
        ),
        201,
    );
    assert_eq!(bi["bind"]["base"], "mount", "{bi}");
    assert!(Path::new(bi["mountpoint"].as_str().unwrap())
        .join("busybox")
        .is_file());
    let biid = bi["id"].as_i64().unwrap();

    let kinds = api.expect("GET", "/mount?kind=bind", None, 200);
    assert_eq!(kinds.as_array().map(Vec::len), Some(2), "{kinds}");
    // GET reports the paths as given: the host path, and the path inside the base mount.
    let got = api.expect("GET", &format!("/mount?id={bid}"), None, 200);
    assert_eq!(
        got[0]["bind"]["path"],
        host_dir.display().to_string(),
        "{got}"
    );
    let got = api.expect("GET", &format!("/mount?id={biid}"), None, 200);
    assert_eq!(got[0]["bind"]["path"], "bin", "{got}");

    // A container on the overlay (by reference), created, then PATCHed.
    let c = api.expect(
        "POST",
        "/container",
        Some(
            &json!({"name": "web", "mount": {"id": oid, "kind": "overlay"}, "command": INIT,
            "namespaces": ["mnt", "pid"]}),
        ),
        201,
    );
    assert_eq!(c["state"], "created", "{c}");
    assert_eq!(c["namespaces"], json!(["mnt", "pid"]));
    let cid = c["id"].as_i64().unwrap();
    let r = api.expect("PATCH", "/container?name=web&state=running", None, 200);
    assert_eq!(r["state"], "running");
    wait_file(c["logfile"].as_str().unwrap(), "up");
    assert_eq!(
        api.expect("GET", "/container?state=running", None, 200)[0]["id"],
        cid
    );
    assert_eq!(
        api.expect("GET", "/container?state=exited", None, 200),
        json!([])
    );
    assert_eq!(
        api.expect("GET", "/container?name=web", None, 200)[0]["id"],
        cid
    );
    assert_error(&api.delete("/container?name=web"), 409, "running");
    assert_error(&api.delete(&format!("/mount?id={oid}")), 409, "in use");
    assert_error(&api.delete(&format!("/mount?id={mid}")), 409, "in use");
    assert_error(&api.delete(&format!("/attach?id={aid}")), 409, "in use");
    let p = api.expect(
        "PATCH",
        &format!("/container?id={cid}&state=paused"),
        None,
        400,
    );
    assert!(p["message"].as_str().unwrap().contains("paused"), "{p}");
    let s = api.expect(
        "PATCH",
        &format!("/container?id={cid}&state=exited"),
        None,
        200,
    );
    assert_eq!(s["state"], "exited");
    let d = api.expect("DELETE", &format!("/container?id={cid}"), None, 200);
    assert_eq!(d["id"], cid);
    // Referenced children survive their parent; delete them top-down.
    for (p, id) in [
        ("mount", biid),
        ("mount", bid),
        ("mount", oid),
        ("mount", mid),
        ("attach", aid),
    ] {
        let r = api.expect("DELETE", &format!("/{p}?id={id}"), None, 200);
        assert_eq!(r["id"], id);
    }
    assert!(
        !Path::new(&dev).exists() || {
            let l = std::process::Command::new("losetup")
                .arg(&dev)
                .output()
                .unwrap();
            !l.status.success()
        }
    );

    // Nested: container → overlay → attach mount → loopback, running at once; force
    // deletes it while it runs (ImageAPI answers 501 there), and everything cascades.
    let nested = json!({
        "name": "nested",
        "state": "running",
        "command": INIT,
        "mount": {"kind": "overlay", "overlay": {"lower": [squashfs_on(loopback(image))]}}
    });
    let c = api.expect("POST", "/container", Some(&nested), 201);
    assert_eq!(c["state"], "running", "{c}");
    assert_eq!(
        api.expect("GET", "/mount", None, 200)
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        api.expect("GET", "/attach", None, 200)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let d = api.expect("DELETE", "/container?name=nested&force=true", None, 200);
    assert_eq!(d["name"], "nested");
    for p in ["/attach", "/mount", "/container"] {
        assert_eq!(
            api.expect("GET", p, None, 200),
            json!([]),
            "{p} after the cascade"
        );
    }
}

#[test]
fn v02_paths_loopback_overlay_bind_nested_and_cascade() {
    require_container_tools();
    let node = ImageApiNode::start("iav2", &[]);
    let image = node.busybox_image("bb.sqsh");
    let host = node.dir().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    v02_flow(&node.api, &image, &host);
    node.assert_kernel_clean();
    assert!(
        node.daemon.log().contains("imageapi: request method=PATCH"),
        "request log"
    );
}

#[test]
fn local_attachments_and_a_loopback_file_inside_a_mount() {
    require_container_tools();
    let node = ImageApiNode::start("ialocal", &[]);
    let api = &node.api;
    let image = node.busybox_image("bb.sqsh");

    // A block device the test made: attach it as `local`, mount it, delete: the device stays.
    let out = std::process::Command::new("losetup")
        .args(["-f", "--show", "-r"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let a = api.expect(
        "POST",
        "/attach",
        Some(&json!({"kind": "local", "local": {"path": dev}})),
        201,
    );
    assert_eq!(a["kind"], "local", "{a}");
    assert_eq!(a["device_file"], dev.as_str());
    let m = api.expect(
        "POST",
        "/mount",
        Some(&squashfs_on(json!({"id": a["id"]}))),
        201,
    );
    assert!(Path::new(m["mountpoint"].as_str().unwrap())
        .join("bin/busybox")
        .is_file());
    // A char device or a plain file is not a block device.
    assert_error(
        &api.post(
            "/attach",
            &json!({"kind": "local", "local": {"path": "/dev/null"}}),
        ),
        400,
        "",
    );
    api.expect("DELETE", &format!("/mount?id={}", m["id"]), None, 200);
    api.expect("DELETE", &format!("/attach?id={}", a["id"]), None, 200);
    assert!(Path::new(&dev).exists());
    let _ = std::process::Command::new("losetup")
        .args(["-d", &dev])
        .status();

    // A loopback of a file inside a mount: copy the image into a writable overlay (over
    // a squashfs), attach it from there, mount it. The overlay is held by the attachment.
    let base = api.expect(
        "POST",
        "/mount",
        Some(&json!({"kind": "overlay", "overlay": {"lower": [squashfs_on(loopback(&image))]}})),
        201,
    );
    let bmp = Path::new(base["mountpoint"].as_str().unwrap()).to_path_buf();
    std::fs::copy(&image, bmp.join("inner.sqsh")).unwrap();
    let inner = api.expect(
        "POST",
        "/mount",
        Some(&squashfs_on(
            json!({"kind": "loopback", "loopback": {"path": "inner.sqsh",
            "base": "mount", "mount": {"id": base["id"]}}}),
        )),
        201,
    );
    assert!(Path::new(inner["mountpoint"].as_str().unwrap())
        .join("bin/busybox")
        .is_file());
    let b = api.expect("GET", &format!("/mount?id={}", base["id"]), None, 200);
    assert_eq!(b[0]["refs"], 2, "the loopback holds its base mount: {b}");
    assert_error(
        &api.delete(&format!("/mount?id={}", base["id"])),
        409,
        "in use",
    );
    // Deleting the inner mount cascades to its loopback, which releases the base.
    api.expect("DELETE", &format!("/mount?id={}", inner["id"]), None, 200);
    let b = api.expect("GET", &format!("/mount?id={}", base["id"]), None, 200);
    assert_eq!(b[0]["refs"], 1, "{b}");
    api.expect("DELETE", &format!("/mount?id={}", base["id"]), None, 200);
    node.assert_empty();
    node.assert_kernel_clean();
}

#[test]
fn every_error_status_and_failed_requests_change_nothing() {
    require_container_tools();
    require_rbd_tools();
    let node = ImageApiNode::start(
        "iaerr",
        &["--imageapi-timeout", "3s", "--imageapi-body-limit", "4096"],
    );
    let api = &node.api;
    let image = node.busybox_image("bb.sqsh");
    let a = api.expect("POST", "/attach", Some(&loopback(&image)), 201);
    let aid = a["id"].as_i64().unwrap();
    let c = api.expect(
        "POST",
        "/container",
        Some(&json!({"name": "c1", "command": INIT,
            "mount": {"kind": "overlay", "overlay": {"lower": [squashfs_on(json!({"id": aid}))]}}})),
        201,
    );
    let snapshot =
        || ["/attach", "/mount", "/container"].map(|p| api.expect("GET", p, None, 200).to_string());
    let before = snapshot();

    // 400: malformed JSON, unknown fields, wrong types, missing fields, bad values.
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "POST",
            "/container",
            r#"{"name": "x", "mount": {"id": 0}, "command": "sh""#,
            "body",
        ),
        (
            "POST",
            "/container",
            r#"{"mount": {"id": 0}, "command": "sh", "cmd": 1}"#,
            "cmd",
        ),
        (
            "POST",
            "/container",
            r#"{"mount": {"id": "zero"}, "command": "sh"}"#,
            "mount.id",
        ),
        ("POST", "/container", r#"{"mount": {"id": 0}}"#, "command"),
        (
            "POST",
            "/container",
            r#"{"mount": {"id": 0}, "command": "sh", "state": "paused"}"#,
            "state",
        ),
        (
            "POST",
            "/container",
            r#"{"mount": {"id": 0}, "command": "sh", "name": "a/b"}"#,
            "name",
        ),
        (
            "POST",
            "/container",
            r#"{"mount": {"id": 0}, "command": "sh 'open"}"#,
            "command",
        ),
        (
            "POST",
            "/mount",
            r#"{"kind": "overlay", "overlay": {"lower": []}}"#,
            "lower",
        ),
        (
            "POST",
            "/mount",
            r#"{"kind": "overlay", "overlay": {"lower": [{"kind": "attach", "attach": {"fs_type": 7}}]}}"#,
            "lower[0]",
        ),
        ("POST", "/mount", r#"{"kind": "attach"}"#, "mount.attach"),
        (
            "POST",
            "/attach",
            r#"{"kind": "rbd", "rbd": {"monitors": ["127.0.0.1"], "pool": "p", "image": "i"}}"#,
            "options",
        ),
        (
            "POST",
            "/attach",
            r#"{"kind": "loopback", "loopback": {"path": "/x", "base": "attic"}}"#,
            "loopback.base",
        ),
        (
            "POST",
            "/attach",
            r#"{"id": 5, "kind": "local", "local": {"path": "/dev/null"}}"#,
            "id",
        ),
        ("POST", "/attach", "", "empty"),
        ("GET", "/attach?id=abc", "", "id"),
        ("GET", "/container?color=red", "", "color"),
        ("PATCH", "/container?state=running", "", "id or name"),
        ("PATCH", "/container?name=c1&state=paused", "", "paused"),
        ("GET", "/container/0/sleeping", "", "state"),
        ("GET", "/container/abc", "", "path"),
    ];
    for (method, path, body, needle) in cases {
        let r = api.call(
            method,
            path,
            (!body.is_empty() || *method == "POST").then_some(*body),
        );
        assert_error(&r, 400, needle);
    }
    assert_eq!(snapshot(), before, "a 400 changed something");

    // 404.
    for (method, path) in [
        ("GET", "/attach?id=99"),
        ("GET", "/mount?id=99"),
        ("GET", "/container?id=99"),
        ("GET", "/container/byname/nobody"),
        ("DELETE", "/container/99"),
        ("DELETE", "/attach/rbd/99"),
        ("GET", "/mount/overlay/99"),
        ("GET", "/nothing/here"),
    ] {
        assert_error(&api.call(method, path, None), 404, "");
    }
    assert_error(
        &api.post(
            "/container",
            &json!({"command": "sh", "mount": {"id": 0, "kind": "bind"}}),
        ),
        404,
        "no bind mount with id 0",
    );
    assert_error(
        &api.post(
            "/mount",
            &json!({"kind": "overlay", "overlay": {"lower": [42]}}),
        ),
        404,
        "no mount with id 42",
    );

    // 409: in use, and a name taken.
    assert_error(&api.delete(&format!("/attach?id={aid}")), 409, "in use");
    assert_error(
        &api.post(
            "/container",
            &json!({"name": "c1", "command": INIT, "mount": {"id": c["mount"]["id"]}}),
        ),
        409,
        "",
    );

    // 501: kinds without a driver.
    assert_error(
        &api.post("/attach", &json!({"kind": "iscsi", "iscsi": {"host": "h"}})),
        501,
        "iscsi",
    );
    assert_error(
        &api.post(
            "/mount",
            &json!({"kind": "nfs", "nfs": {"host": "h", "path": "/"}}),
        ),
        501,
        "nfs",
    );
    assert_error(&api.post("/mount", &json!({"kind": "uri"})), 501, "uri");

    // 413: a body over --imageapi-body-limit.
    let big = json!({"command": "x".repeat(8192), "mount": {"id": 0}});
    let r = api.post("/container", &big);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json["code"], 413);
    assert_eq!(snapshot(), before, "a failed request changed something");

    // 500: a Ceph monitor that never answers runs past --imageapi-timeout.
    let hole = BlackHole::start();
    let r = api.post(
        "/attach",
        &json!({"kind": "rbd", "rbd": {"monitors": [hole.monitor()], "pool": "rbd",
            "image": "never", "options": {"ro": true, "name": "hang", "secret": cephx_key()}}}),
    );
    assert_error(&r, 500, "did not finish within 3s");
    assert!(!r.text.contains(&cephx_key()), "the key was echoed");

    // Clean up through REST.
    api.expect("DELETE", "/container?name=c1", None, 200);
    api.expect("DELETE", &format!("/attach?id={aid}"), None, 200);
    let gone = wait_until(Duration::from_secs(60), || {
        api.get("/attach").json == json!([])
    });
    assert!(
        gone,
        "the timed-out attach left something: {:?}",
        api.get("/attach")
    );
    node.assert_empty();
    node.assert_kernel_clean();
    assert!(
        !node.daemon.log().contains(&cephx_key()),
        "the key was logged"
    );
}

#[test]
fn a_unix_socket_listener() {
    require_container_tools();
    let scratch = KernelScratch::new("iaunix");
    let sock = scratch.path().join("imageapi.sock");
    let api = Endpoint {
        base: "http://localhost/imageapi/v1".into(),
        args: vec!["--unix-socket".into(), sock.display().to_string()],
    };
    let listen = format!("unix:{}", sock.display());
    let node = ImageApiNode::start_in(scratch, &listen, &[], api);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let image = node.busybox_image("bb.sqsh");
    let a = node
        .api
        .expect("POST", "/attach", Some(&loopback(&image)), 201);
    node.api
        .expect("DELETE", &format!("/attach?id={}", a["id"]), None, 200);
    node.assert_kernel_clean();
}

#[test]
fn the_gateway_of_a_split_deployment_reaches_every_module_over_the_bus() {
    require_container_tools();
    let scratch = KernelScratch::new("iasplit");
    let redis = RedisFixture::start();
    let url = redis.url();
    let mut daemons = Vec::new();
    for m in ["attach", "mount", "container"] {
        let d = Daemon::spawn_in(scratch.path(), Some(&url), &["--only", m]);
        d.wait_ready();
        daemons.push(d);
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let gw = Daemon::spawn_in(
        scratch.path(),
        Some(&url),
        &["--only", "imagebus", "--imageapi", &addr],
    );
    gw.wait_ready();
    let api = Endpoint {
        base: format!("http://{addr}/imageapi/v1"),
        args: vec![],
    };
    assert!(wait_until(Duration::from_secs(20), || api
        .get("/swagger.json")
        .status
        == 200));
    let image = scratch.path().join("bb.sqsh");
    std::fs::copy(imagebus_tests::image::busybox_squashfs(), &image).unwrap();
    let host = scratch.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    v02_flow(&api, &image, &host);
    let mounts = imagebus_tests::rootfs::mounts_under(scratch.path());
    assert!(mounts.is_empty(), "{mounts:?}");
    drop(gw);
    while let Some(d) = daemons.pop() {
        drop(d);
    }
}
