//! The ImageAPI v0.1 tutorial replayed with the real `curl` against `imagebusd
//! --imageapi`, step by step and unchanged except for host, image and user names: an RBD
//! image on the one-node Ceph cluster (a busybox squashfs whose
//! `/usr/lib/systemd/systemd` is a stand-in init), its squashfs mounted, an overlay, a
//! `systemd: true` container started, stopped by name and torn down. Then the tutorial's
//! nested definition (container → overlay → rbd mount → rbd attachment in one body),
//! deleted in one call. After the deletes nothing is left: no mount, no loop or rbd
//! device, no rbd-fuse, no Ceph watcher. Needs root, runc, busybox-static,
//! squashfs-tools and the Ceph packages (see tests/src/ceph.rs).

use imagebus_tests::bus_node::require_container_tools;
use imagebus_tests::ceph::{ceph, rbd_fuse_under, CephEnv};
use imagebus_tests::daemon::wait_until;
use imagebus_tests::imageapi::{assert_error, stand_in_systemd_image, ImageApiNode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn watchers(ceph: &CephEnv, image: &str) -> Vec<Value> {
    let out = ceph.rbd(&[
        "status",
        "--format",
        "json",
        &format!("{}/{image}", ceph.pool),
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v["watchers"].as_array().cloned().unwrap_or_default()
}

fn wait_log(path: &str, needle: &str) -> String {
    let mut text = String::new();
    let ok = wait_until(Duration::from_secs(20), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.contains(needle)
    });
    assert!(ok, "{needle:?} never appeared in {path}: {text}");
    text
}

fn rbd_options(ceph: &CephEnv) -> Value {
    json!({"ro": true, "name": ceph.rw_user, "secret": ceph.rw_secret})
}

#[test]
fn the_v01_tutorial_replays_with_curl() {
    require_container_tools();
    let ceph = ceph();
    let node = ImageApiNode::start("iatut", &[]);
    let image = format!("systemd-{}.sqsh", std::process::id());
    ceph.import(&stand_in_systemd_image(node.dir(), "sysd"), &image);
    let api = &node.api;

    // Attach the RBD image (read-only).
    let body = json!({"monitors": [ceph.monitor], "pool": ceph.pool, "image": image,
        "options": rbd_options(&ceph)});
    let a = api.expect("POST", "/attach/rbd", Some(&body), 201);
    assert_eq!(a["id"], 0, "{a}");
    assert_eq!(a["image"], image.as_str());
    assert_eq!(a["pool"], ceph.pool.as_str());
    assert_eq!(a["monitors"], json!([ceph.monitor]));
    assert_eq!(a["options"]["name"], ceph.rw_user.as_str());
    assert_eq!(a["options"]["ro"], true);
    assert_eq!(a["options"]["secret"], "<redacted>");
    assert!(
        !a.to_string().contains(&ceph.rw_secret),
        "the key was echoed"
    );
    let device = a["device_file"].as_str().expect("device_file").to_string();
    assert!(Path::new(&device).exists(), "{device}");
    assert_eq!(watchers(&ceph, &image).len(), 1, "one mapping, one watcher");

    // Mount it (the tutorial names the attachment by "id").
    let m = api.expect(
        "POST",
        "/mount/rbd",
        Some(&json!({"id": 0, "fs_type": "squashfs", "mount_options": ["ro"]})),
        201,
    );
    assert_eq!(m["id"], 0, "{m}");
    assert_eq!(m["fs_type"], "squashfs");
    assert_eq!(m["mount_options"], json!(["ro"]));
    let mp = Path::new(m["mountpoint"].as_str().expect("mountpoint")).to_path_buf();
    assert!(mp.join("bin/busybox").is_file());
    assert!(mp.join("usr/lib/systemd/systemd").is_file());

    // An overlay over it.
    let o = api.expect("POST", "/mount/overlay", Some(&json!({"lower": [0]})), 201);
    assert_eq!(o["id"], 1, "{o}");
    assert_eq!(o["lower"], json!([0]));
    for k in ["upperdir", "workdir", "mountpoint"] {
        let d = o[k].as_str().unwrap_or_default();
        assert!(Path::new(d).is_dir(), "{k} {d:?} is not a directory");
    }
    let omp = Path::new(o["mountpoint"].as_str().unwrap_or_default()).to_path_buf();
    std::fs::write(omp.join("written"), "rw").expect("the overlay is read-write");

    // The container, defined on the overlay, not started.
    let c = api.expect(
        "POST",
        "/container",
        Some(
            &json!({"name": "test-container", "mount": {"id": 1, "kind": "overlay"},
            "command": "/usr/lib/systemd/systemd", "state": "created", "systemd": true}),
        ),
        201,
    );
    assert_eq!(c["id"], 0, "{c}");
    assert_eq!(c["name"], "test-container");
    assert_eq!(c["mount"], json!({"id": 1, "kind": "overlay"}));
    assert_eq!(c["command"], "/usr/lib/systemd/systemd");
    assert_eq!(c["state"], "created");
    assert_eq!(c["systemd"], true);
    assert_eq!(c["namespaces"], Value::Null);
    assert!(c.as_object().unwrap().contains_key("namespaces"));
    let logfile = c["logfile"].as_str().expect("logfile").to_string();

    // Start it (a GET in v0.1).
    let r = api.expect("GET", "/container/0/running", None, 200);
    assert_eq!(r["state"], "running", "{r}");
    let log = wait_log(&logfile, "booted");
    assert!(!log.contains("no-"), "{log}");
    let l = api.expect("GET", "/container", None, 200);
    assert_eq!(l.as_array().map(Vec::len), Some(1), "{l}");
    assert_eq!(l[0]["state"], "running");
    assert_eq!(l[0]["name"], "test-container");
    assert_eq!(
        api.expect("GET", "/container/byname/test-container", None, 200)["id"],
        0
    );

    // Everything is in use: ImageAPI refuses (409).
    assert_error(&api.delete("/container/0"), 409, "running");
    assert_error(&api.delete("/mount/overlay/1"), 409, "in use");
    assert_error(&api.delete("/mount/rbd/0"), 409, "in use");
    assert_error(&api.delete("/attach/rbd/0"), 409, "in use");

    // Stop it by name: systemd's SIGRTMIN+3, no SIGKILL needed.
    let t = Instant::now();
    let s = api.expect("GET", "/container/byname/test-container/exited", None, 200);
    assert_eq!(s["state"], "exited", "{s}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "stopped by SIGRTMIN+3, not SIGKILL"
    );
    wait_log(&logfile, "got-rtmin3");

    // Tear it all down, in the tutorial's order.
    for p in [
        "/container/0",
        "/mount/overlay/1",
        "/mount/rbd/0",
        "/attach/rbd/0",
    ] {
        let r = api.delete(p);
        assert_eq!(r.status, 204, "DELETE {p}: {r:?}");
    }
    assert!(!Path::new(&device).exists() || device.starts_with("/dev/loop"));
    node.assert_empty();
    node.assert_kernel_clean();
    assert!(rbd_fuse_under(node.dir()).is_empty());
    assert!(watchers(&ceph, &image).is_empty(), "a Ceph watcher is left");
    assert!(
        !node.daemon.log().contains(&ceph.rw_secret),
        "the daemon logged the key"
    );
}

#[test]
fn the_nested_definition_runs_and_cascades_on_delete() {
    require_container_tools();
    let ceph = ceph();
    let node = ImageApiNode::start("ianest", &[]);
    let image = format!("nested-{}.sqsh", std::process::id());
    ceph.import(&stand_in_systemd_image(node.dir(), "sysd"), &image);
    let api = &node.api;
    let name = "systemd.sqsh";
    let body = json!({
        "mount": {"kind": "overlay", "overlay": {"lower": [
            {"kind": "rbd", "rbd": {"fs_type": "squashfs", "mount_options": ["ro"],
                "rbd": {"monitors": [ceph.monitor], "pool": ceph.pool, "image": image,
                    "options": rbd_options(&ceph)}}}
        ]}},
        "command": "/usr/lib/systemd/systemd",
        "systemd": true,
        "name": name,
        "state": "running"
    });
    let c = api.expect("POST", "/container", Some(&body), 201);
    assert_eq!(c["state"], "running", "{c}");
    assert_eq!(c["mount"]["kind"], "overlay");
    wait_log(c["logfile"].as_str().unwrap_or_default(), "booted");

    let mounts = api.expect("GET", "/mount", None, 200);
    let mounts = mounts.as_array().cloned().unwrap_or_default();
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    let attach = api.expect("GET", "/attach?kind=rbd", None, 200);
    assert_eq!(attach.as_array().map(Vec::len), Some(1), "{attach}");
    assert_eq!(attach[0]["rbd"]["options"]["secret"], "<redacted>");
    // Children defined inline belong to their parents: deleting them is refused.
    let lower = mounts
        .iter()
        .find(|m| m["kind"] == "attach")
        .expect("the rbd mount");
    let lid = lower["id"].as_i64().unwrap();
    assert_error(&api.delete(&format!("/mount?id={lid}")), 409, "in use");
    assert_error(
        &api.delete(&format!("/attach?id={}", attach[0]["id"])),
        409,
        "in use",
    );

    let s = api.expect(
        "GET",
        &format!("/container/byname/{name}/exited"),
        None,
        200,
    );
    assert_eq!(s["state"], "exited");
    let r = api.delete(&format!("/container/byname/{name}"));
    assert_eq!(r.status, 204, "{r:?}");
    // The cascade: overlay, squashfs mount, RBD mapping.
    node.assert_empty();
    node.assert_kernel_clean();
    assert!(rbd_fuse_under(node.dir()).is_empty());
    assert!(watchers(&ceph, &image).is_empty(), "a Ceph watcher is left");
}
