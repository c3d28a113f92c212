//! `imagebus run --oci-config FILE`, `--bundle DIR` and `--restart` against a real
//! imagebusd with real runc: every honoured field of the OCI document is observed from
//! inside the running container, a runc bundle runs, a refused field is `InvalidArgument`
//! leaving nothing behind, and a restart policy given on the command line is applied.
//! Root.

use imagebus_tests::cli_node::CliNode as Node;
use imagebus_tests::daemon::wait_until;
use imagebus_tests::image::busybox_rootfs;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What these tests add to the shared node.
trait OciNode {
    /// Writes `doc` as a file in the scratch directory.
    fn config(&self, name: &str, doc: &serde_json::Value) -> PathBuf;

    /// The log of `name` once it holds `marker` (polled, with a deadline).
    fn log_with(&self, name: &str, marker: &str) -> String;
}

impl OciNode for Node {
    fn config(&self, name: &str, doc: &serde_json::Value) -> PathBuf {
        let path = self.scratch.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
        path
    }

    fn log_with(&self, name: &str, marker: &str) -> String {
        let mut log = String::new();
        let seen = wait_until(Duration::from_secs(20), || {
            log = self.daemon.cli(&["logs", name]).stdout;
            log.contains(marker)
        });
        assert!(seen, "{marker:?} not in the log of {name}: {log}");
        log
    }
}

/// The line of `log` starting with `key=`, without the key.
fn value<'a>(log: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    log.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= line in {log}"))
        .trim()
}

/// Prints what the test checks, one `key=value` line each, then `done` and sleeps.
const PROBE: &str = r#"
echo "env=$OCI_VAR"
echo "cwd=$(pwd)"
echo "host=$(hostname)"
echo "uid=$(id -u):$(id -g)"
echo "nofile=$(grep 'Max open files' /proc/self/limits)"
echo "capeff=$(grep CapEff /proc/self/status)"
echo "nnp=$(grep NoNewPrivs /proc/self/status)"
echo "data=$(cat /data/marker)"
echo "datamount=$(grep ' /data ' /proc/self/mountinfo)"
echo "pids=$(cat /sys/fs/cgroup/pids/pids.max)"
echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
echo "msgmax=$(cat /proc/sys/kernel/msgmax)"
echo "cpuinfo=[$(cat /proc/cpuinfo)]"
echo "etcmount=$(grep ' /etc ' /proc/self/mountinfo)"
echo "mkdir=$(mkdir /tmp/x 2>&1)"
echo "netdevs=$(grep -c : /proc/net/dev)"
echo done
exec sleep 1000
"#;

#[test]
fn oci_config_sets_every_honoured_field_seen_from_inside() {
    let n = Node::start("ibcli-oci");
    let data = n.scratch.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("marker"), "from-the-host").unwrap();
    let caps = json!(["CAP_KILL", "CAP_NET_RAW"]);
    let cfg = n.config(
        "oci.json",
        &json!({
            "ociVersion": "1.0.2",
            "root": {"path": "ignored"},
            "process": {
                "terminal": false,
                "args": ["sh", "-c", PROBE],
                "env": ["OCI_VAR=from-oci"],
                "cwd": "/tmp",
                "user": {"uid": 1234, "gid": 4321},
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                                 "inheritable": caps, "ambient": caps},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 77, "soft": 77}],
                "noNewPrivileges": false,
            },
            "hostname": "oci-host",
            "mounts": [{"destination": "/data", "type": "bind", "source": data,
                        "options": ["rbind", "ro"]}],
            "linux": {
                "resources": {"pids": {"limit": 33}, "memory": {"limit": 50331648}},
                "sysctl": {"kernel.msgmax": "12345"},
                "maskedPaths": ["/proc/cpuinfo"],
                "readonlyPaths": ["/etc"],
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                               {"type": "mount"}, {"type": "network"}],
                "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                            "syscalls": [{"names": ["mkdir", "mkdirat"],
                                          "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]},
            },
        }),
    );
    // The command comes from process.args; --env merges under the document's env.
    n.ok(&[
        "run",
        "--name",
        "probe",
        "--image",
        n.image(),
        "-e",
        "OCI_VAR=from-flag",
        "--oci-config",
        cfg.to_str().unwrap(),
    ]);
    let log = n.log_with("probe", "done");
    assert_eq!(value(&log, "env"), "from-oci");
    assert_eq!(value(&log, "cwd"), "/tmp");
    assert_eq!(value(&log, "host"), "oci-host");
    assert_eq!(value(&log, "uid"), "1234:4321");
    let nofile: Vec<&str> = value(&log, "nofile").split_whitespace().collect();
    assert_eq!(nofile[3..5], ["77", "77"], "{log}");
    // CAP_KILL (bit 5) and CAP_NET_RAW (bit 13), kept across the exec as a non-root user
    // through the ambient set.
    assert!(value(&log, "capeff").ends_with("0000000000002020"), "{log}");
    assert!(
        value(&log, "nnp").ends_with('0'),
        "noNewPrivileges false: {log}"
    );
    assert_eq!(value(&log, "data"), "from-the-host");
    assert!(value(&log, "datamount").contains(" ro"), "{log}");
    assert_eq!(value(&log, "pids"), "33");
    assert_eq!(value(&log, "mem"), "50331648");
    assert_eq!(value(&log, "msgmax"), "12345");
    assert_eq!(value(&log, "cpuinfo"), "[]", "masked");
    assert!(
        value(&log, "etcmount").contains(" ro"),
        "read-only path: {log}"
    );
    // seccomp: EPERM from the filter (the directory's permissions would give EACCES).
    assert!(
        value(&log, "mkdir").contains("Operation not permitted"),
        "{log}"
    );
    // The namespaces replaced ours: a network namespace of its own, with only loopback.
    assert_eq!(value(&log, "netdevs"), "1", "{log}");
    // What Get reports: the command that runs, and the document as given.
    let info = n.json(&["inspect", "probe"]);
    assert_eq!(info["command"][0], "sh");
    assert_eq!(info["spec"]["oci"]["hostname"], "oci-host");
    n.ok(&["--timeout", "20s", "rm", "--force", "probe"]);
    n.assert_clean();
}

#[test]
fn a_runc_bundle_runs_with_its_rootfs_bound_and_its_config_merged() {
    let n = Node::start("ibcli-oci");
    let bundle = n.scratch.path().join("bundle");
    busybox_rootfs(&bundle.join("rootfs"));
    n.config(
        "bundle/config.json",
        &json!({
            "ociVersion": "1.0.2-dev",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["sh", "-c", "echo host=$(hostname); mkdir /made 2>&1; echo ro-done; exec sleep 1000"],
                "env": ["PATH=/bin"],
                "cwd": "/",
            },
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "bundled",
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}},
        }),
    );
    n.ok(&["run", "--name", "b", "--bundle", bundle.to_str().unwrap()]);
    let log = n.log_with("b", "ro-done");
    assert_eq!(value(&log, "host"), "bundled");
    assert!(
        log.contains("Read-only file system"),
        "root.readonly: {log}"
    );
    assert!(!bundle.join("rootfs/made").exists());
    let info = n.json(&["inspect", "b"]);
    assert_eq!(info["state"], "running");
    assert!(
        Path::new(info["rootfs"].as_str().unwrap())
            .join("bin/busybox")
            .exists(),
        "the rootfs is a bind of the bundle's"
    );
    n.ok(&["--timeout", "20s", "rm", "--force", "b"]);
    n.assert_clean();
    assert!(
        bundle.join("rootfs/bin/busybox").exists(),
        "the bundle stays"
    );
}

#[test]
fn a_refused_field_is_invalid_argument_and_leaves_nothing() {
    let n = Node::start("ibcli-oci");
    for (doc, field) in [
        (
            json!({"linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}}),
            "linux.devices",
        ),
        (
            json!({"hooks": {"prestart": [{"path": "/bin/true"}]}}),
            "hooks",
        ),
        (
            json!({"process": {"terminal": true}}),
            "process.terminal=true",
        ),
        (json!({"process": {"cwdd": "/"}}), "process.cwdd"),
    ] {
        let cfg = n.config("bad.json", &doc);
        let out = n.daemon.cli(&[
            "run",
            "--name",
            "bad",
            "--image",
            n.image(),
            "--oci-config",
            cfg.to_str().unwrap(),
            "--",
            "true",
        ]);
        assert!(!out.status.success(), "{doc}: {out:?}");
        assert!(
            out.stderr.contains("InvalidArgument: ") && out.stderr.contains(field),
            "{doc}: {}",
            out.stderr
        );
        n.assert_clean();
    }
}

#[test]
fn run_restart_on_failure_is_applied_and_a_bad_policy_is_a_usage_error() {
    let n = Node::start("ibcli-oci");
    n.ok(&[
        "run",
        "--name",
        "crash",
        "--restart",
        "on-failure:1",
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    let mut info = json!(null);
    let settled = wait_until(Duration::from_secs(20), || {
        info = n.json(&["inspect", "crash"]);
        info["state"] == "exited" && info["restart_count"] == 1
    });
    assert!(settled, "{info}");
    assert_eq!(
        info["spec"]["restart"],
        json!({"policy": "on-failure", "max_retries": 1})
    );
    let bad = n.daemon.cli(&[
        "run",
        "--restart",
        "sometimes",
        "--image",
        n.image(),
        "true",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    n.ok(&["rm", "crash"]);
    n.assert_clean();
}

#[test]
fn a_restarted_daemon_restarts_a_crash_that_happened_while_it_was_down() {
    let mut n = Node::start("ibcli-oci");
    let ctl = n.scratch.path().join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let bind = format!("{}:/ctl", ctl.display());
    n.ok(&[
        "run",
        "--name",
        "sup",
        "--restart",
        "on-failure:3",
        "--stop-signal",
        "KILL",
        "--bind",
        &bind,
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "echo up; while [ ! -e /ctl/crash ]; do sleep 0.1; done; rm /ctl/crash; exit 4",
    ]);
    n.log_with("sup", "up");
    n.daemon.kill9();
    // The init sees the file, removes it and exits 4 while no daemon runs.
    std::fs::write(ctl.join("crash"), "").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !ctl.join("crash").exists()),
        "the init never saw the crash file"
    );
    n.daemon.restart();
    let mut info = json!(null);
    let restarted = wait_until(Duration::from_secs(20), || {
        info = n.json(&["inspect", "sup"]);
        info["state"] == "running" && info["restart_count"] == 1
    });
    assert!(restarted, "{info}");
    assert_eq!(info["spec"]["restart"]["policy"], "on-failure");
    n.ok(&["--timeout", "20s", "rm", "--force", "sup"]);
    n.assert_clean();
}
