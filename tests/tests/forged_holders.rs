//! Issue 10, defect 9, over the bus against a real imagebusd (real redis, runc, loop
//! devices, squashfs and overlayfs). Root. A raw bus call
//! `mount@1.Release(<rootfs>, {"container": <id>})` from someone other than the container
//! used to unmount a running container's root and delete its upper directory; an
//! `Acquire` with a made-up holder pinned a mount forever. Both are refused now (and the
//! same for a mount's reference on its attachment, `attach@1`), and the container's own
//! delete still cleans everything.

use imagebus_tests::cli_node::CliNode as Node;
use imagebus_tests::rootfs::{loops_under, mounts_under};
use std::path::{Path, PathBuf};

/// What these tests add to the shared node.
trait ForgeNode {
    /// A raw `mount.mount@1` call (what any bus client can send); the error line on
    /// failure, `Ok(stdout)` on success.
    fn raw_mount_call(&self, method: &str, args: &[&str]) -> Result<String, String>;

    fn mounted(&self, mountpoint: &Path) -> bool;
}

impl ForgeNode for Node {
    fn raw_mount_call(&self, method: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["call", "mount", "mount@1", method];
        all.extend_from_slice(args);
        let out = self.daemon.cli(&all);
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(out.stderr)
        }
    }

    fn mounted(&self, mountpoint: &Path) -> bool {
        mounts_under(self.scratch.path())
            .iter()
            .any(|e| e.mount_point == mountpoint)
    }
}

#[test]
fn forged_holders_are_refused_over_the_bus() {
    let n = Node::start("ibforge");
    let id = n.ok(&[
        "run",
        "--name",
        "victim",
        "--image",
        n.image.to_str().unwrap(),
        "--",
        "sleep",
        "1000",
    ]);
    let id: u64 = id.trim().parse().expect("run prints the id");
    let info = n.json(&["inspect", "victim"]);
    assert_eq!(info["state"], "running", "{info}");
    let rootfs = info["mount"].as_u64().expect("the container's mount id");
    let mounts = n.json(&["mount", "list"]);
    let root = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == rootfs)
        .expect("the rootfs in mount list")
        .clone();
    assert_eq!(root["kind"], "overlay", "{root}");
    assert_eq!(root["holders"], serde_json::json!([{ "container": id }]));
    let mountpoint = PathBuf::from(root["mountpoint"].as_str().unwrap());
    let upper = PathBuf::from(root["upper_dir"].as_str().unwrap());
    assert!(n.mounted(&mountpoint));

    // The probe: release the container's reference from outside.
    let holder = format!(r#"{{"container": {id}}}"#);
    let err = n
        .raw_mount_call("Release", &[&rootfs.to_string(), &holder])
        .unwrap_err();
    assert!(err.starts_with("error: Conflict: "), "{err}");
    assert!(err.contains(&format!("container {id}")), "{err}");
    // Nothing changed: still mounted, upper directory there, container running.
    assert!(n.mounted(&mountpoint), "the rootfs was unmounted");
    assert!(upper.is_dir(), "the upper directory was removed");
    assert_eq!(n.json(&["mount", "list"]), mounts);
    assert_eq!(n.json(&["inspect", "victim"])["state"], "running");
    assert_eq!(
        n.ok(&["exec", "victim", "--", "cat", "/etc/hostname"])
            .trim(),
        "imagebus-test"
    );

    // Made-up holders cannot pin anything.
    let lower = root["children"][0].as_u64().expect("the overlay's lower");
    for (target, forged) in [
        (rootfs, r#"{"container": 999999}"#.to_string()),
        (lower, r#"{"mount": 424242}"#.to_string()),
        // A real container, but not standing on the lower mount.
        (lower, holder.clone()),
    ] {
        let err = n
            .raw_mount_call("Acquire", &[&format!(r#"{{"id": {target}}}"#), &forged])
            .unwrap_err();
        assert!(
            err.starts_with("error: InvalidArgument: "),
            "{forged}: {err}"
        );
    }
    // The overlay's own reference on its lower is the overlay's to drop.
    let err = n
        .raw_mount_call(
            "Release",
            &[&lower.to_string(), &format!(r#"{{"mount": {rootfs}}}"#)],
        )
        .unwrap_err();
    assert!(err.starts_with("error: Conflict: "), "{err}");
    assert_eq!(n.json(&["mount", "list"]), mounts);

    // The image mount's reference on its attachment is the mount's to drop.
    let lower_info = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == lower)
        .expect("the lower in mount list")
        .clone();
    let att = lower_info["attachment"]
        .as_u64()
        .expect("the loop attachment");
    let attachments = n.json(&["attach", "list"]);
    let raw_attach = |method: &str, args: &[&str]| {
        let mut all = vec!["call", "attach", "attach@1", method];
        all.extend_from_slice(args);
        n.daemon.cli(&all)
    };
    let out = raw_attach(
        "Release",
        &[&att.to_string(), &format!(r#"{{"mount": {lower}}}"#)],
    );
    assert!(out.stderr.starts_with("error: Conflict: "), "{out:?}");
    let out = raw_attach(
        "Acquire",
        &[&format!(r#"{{"id": {att}}}"#), r#"{"mount": 424242}"#],
    );
    assert!(
        out.stderr.starts_with("error: InvalidArgument: "),
        "{out:?}"
    );
    assert_eq!(n.json(&["attach", "list"]), attachments);
    assert!(n.mounted(&mountpoint));

    // The container's own delete releases its mount and everything cascades away.
    n.ok(&["rm", "--force", "victim"]);
    assert_eq!(n.json(&["ps"]), serde_json::json!([]));
    assert_eq!(n.json(&["mount", "list"]), serde_json::json!([]));
    assert_eq!(n.json(&["attach", "list"]), serde_json::json!([]));
    assert!(mounts_under(n.scratch.path()).is_empty());
    assert!(loops_under(n.scratch.path()).is_empty());
}
