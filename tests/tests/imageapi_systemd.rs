//! Real systemd in a container, through ImageAPI's REST API and through the CLI: a Debian
//! 12 root filesystem with systemd, built once per machine by `scripts/systemd-rootfs.sh`
//! (mmdebstrap; cached in /var/cache/imagebus), booted with `systemd: true` on an
//! ephemeral overlay. `systemctl is-system-running --wait` (by exec) reaches `running` or
//! `degraded`, journald keeps the boot's journal inside the container, and the stop
//! halts systemd with SIGRTMIN+3 well within the stop timeout: exit code 0, no signal (no
//! SIGKILL). Needs root, runc, mmdebstrap and squashfs-tools, and Debian's package
//! mirror the first time.

use imagebus_tests::bus_node::require_container_tools;
use imagebus_tests::imageapi::ImageApiNode;
use imagebus_tests::systemd::{systemd_image, wait_booted};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Asserts that systemd in container `name` reached running|degraded and has a journal.
fn assert_booted(node: &ImageApiNode, name: &str) {
    wait_booted(&node.daemon, name);
    let journal = node
        .daemon
        .cli(&["exec", name, "--", "journalctl", "--no-pager", "-b"]);
    assert!(
        journal.stdout.contains("Startup finished"),
        "journald has the boot: {journal:?}"
    );
    let pid1 = node
        .daemon
        .cli(&["exec", name, "--", "cat", "/proc/1/comm"]);
    assert_eq!(pid1.stdout.trim(), "systemd");
}

/// The bus record of container `name`: (exit_code, exit_signal).
fn exit_of(node: &ImageApiNode, name: &str) -> (Value, Value) {
    let out = node.daemon.cli(&["--json", "inspect", name]);
    let v: Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
    (v["exit_code"].clone(), v["exit_signal"].clone())
}

#[test]
fn real_systemd_through_rest_and_through_the_cli() {
    require_container_tools();
    let node = ImageApiNode::start("iasysd", &[]);
    let image = systemd_image(node.dir());
    let api = &node.api;

    // REST: the tutorial's nested definition, on a loopback of the image.
    let body = json!({
        "name": "sd-rest",
        "command": "/usr/lib/systemd/systemd",
        "systemd": true,
        "state": "running",
        "mount": {"kind": "overlay", "overlay": {"lower": [{"kind": "attach", "attach": {
            "fs_type": "squashfs", "mount_options": ["ro"],
            "attach": {"kind": "loopback", "loopback": {"path": image.display().to_string(),
                "base": "root"}}}}]}}
    });
    let c = api.expect("POST", "/container", Some(&body), 201);
    assert_eq!(c["state"], "running", "{c}");
    assert!(Path::new(c["logfile"].as_str().unwrap()).exists());
    assert_booted(&node, "sd-rest");
    let t = Instant::now();
    let s = api.expect("PATCH", "/container?name=sd-rest&state=exited", None, 200);
    let took = t.elapsed();
    assert_eq!(s["state"], "exited", "{s}");
    assert!(
        took < Duration::from_secs(8),
        "halted by SIGRTMIN+3, not the SIGKILL fallback ({took:?})"
    );
    assert_eq!(
        exit_of(&node, "sd-rest"),
        (json!(0), Value::Null),
        "clean halt, no SIGKILL"
    );
    api.expect("DELETE", "/container?name=sd-rest", None, 200);
    node.assert_empty();

    // CLI: `imagebus run --systemd` on the same image.
    let img = image.display().to_string();
    let run = node.daemon.cli(&[
        "--timeout",
        "60s",
        "run",
        "--name",
        "sd-cli",
        "--image",
        &img,
        "--systemd",
        "--",
        "/usr/lib/systemd/systemd",
    ]);
    assert!(run.status.success(), "{run:?}\n{}", node.daemon.log());
    assert_booted(&node, "sd-cli");
    let t = Instant::now();
    let stop = node.daemon.cli(&["--timeout", "60s", "stop", "sd-cli"]);
    assert!(stop.status.success(), "{stop:?}");
    assert!(t.elapsed() < Duration::from_secs(8), "halted by SIGRTMIN+3");
    assert_eq!(
        exit_of(&node, "sd-cli"),
        (json!(0), Value::Null),
        "clean halt, no SIGKILL"
    );
    let rm = node.daemon.cli(&["rm", "sd-cli"]);
    assert!(rm.status.success(), "{rm:?}");
    node.assert_empty();
    node.assert_kernel_clean();
}
