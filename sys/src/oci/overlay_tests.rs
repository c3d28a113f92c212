use super::overlay::{check, Overlay, HONOURED, REJECTED};
use super::*;
use serde_json::{json, Map};

fn base() -> BundleConfig {
    BundleConfig {
        rootfs: "/run/imagebus/mount/7".into(),
        args: vec!["/bin/sh".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        hostname: "web".into(),
        uid: 0,
        gid: 0,
        systemd: false,
        network: NetworkMode::Host,
        binds: vec![],
        cpu_quota_us: None,
        memory_limit: Some(64 << 20),
        pids_limit: None,
        capabilities: vec!["CAP_KILL".into(), "CAP_CHOWN".into()],
        seccomp: true,
        no_new_privileges: true,
        cgroups_path: "/imagebus/ib-7".into(),
        annotations: vec![("org.imagebus.id".into(), "7".into())],
        overlay: None,
        terminal: false,
    }
}

fn doc(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn ok(v: Value) -> Overlay {
    check(&doc(v), u64::MAX).unwrap()
}

fn err(v: Value) -> String {
    check(&doc(v), u64::MAX).unwrap_err().to_string()
}

fn merged(o: Overlay) -> Value {
    let cfg = BundleConfig {
        overlay: Some(o),
        ..base()
    };
    serde_json::to_value(build_spec(&cfg).unwrap()).unwrap()
}

fn sorted(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = serde_json::from_value(v.clone()).unwrap();
    s.sort();
    s
}

#[test]
fn every_honoured_field_is_merged() {
    let o = ok(json!({
        "ociVersion": "1.0.2-dev",
        "root": {"path": "rootfs", "readonly": true},
        "process": {
            "terminal": false,
            "args": ["/bin/app", "-v"],
            "env": ["A=1"],
            "cwd": "/srv",
            "user": {"uid": 1000, "gid": 100, "additionalGids": [5], "umask": 18},
            "capabilities": {"bounding": ["CAP_NET_ADMIN", "kill"], "effective": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 42, "soft": 42},
                        {"type": "RLIMIT_NPROC", "hard": 7, "soft": 7}],
            "noNewPrivileges": false,
        },
        "hostname": "oci-host",
        "annotations": {"x.y": "z", "org.imagebus.id": "forged"},
        "mounts": [{"destination": "/data", "type": "bind", "source": "/tmp",
                    "options": ["rbind", "ro"]}],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}],
                          "pids": {"limit": 20}, "memory": {"limit": 33554432}},
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}],
            "sysctl": {"kernel.msgmax": "12345"},
            "maskedPaths": ["/proc/cpuinfo"],
            "readonlyPaths": ["/etc"],
            "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]},
        },
    }));
    // What the engine folds into its own checks.
    assert_eq!(o.args.clone().unwrap(), ["/bin/app", "-v"]);
    assert_eq!(o.env.clone().unwrap(), ["A=1"]);
    assert_eq!(o.cwd.as_deref(), Some("/srv"));
    assert_eq!(o.hostname.as_deref(), Some("oci-host"));
    assert_eq!(o.user, Some((1000, 100)));
    let v = merged(o);
    assert_eq!(
        v["root"],
        json!({"path": "/run/imagebus/mount/7", "readonly": true})
    );
    let p = &v["process"];
    assert_eq!(p["user"]["additionalGids"], json!([5]));
    assert_eq!(p["user"]["umask"], json!(18));
    assert_eq!(
        sorted(&p["capabilities"]["bounding"]),
        ["CAP_KILL", "CAP_NET_ADMIN"]
    );
    assert_eq!(sorted(&p["capabilities"]["effective"]), ["CAP_KILL"]);
    assert_eq!(
        sorted(&p["capabilities"]["permitted"]),
        ["CAP_CHOWN", "CAP_KILL"],
        "a set the document does not give stays generated"
    );
    assert_eq!(
        p["rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "hard": 42, "soft": 42},
               {"type": "RLIMIT_NPROC", "hard": 7, "soft": 7}])
    );
    assert_eq!(p["noNewPrivileges"], json!(false));
    assert_eq!(v["annotations"]["x.y"], "z");
    assert_eq!(v["annotations"]["org.imagebus.id"], "7", "ours win");
    let last = v["mounts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["destination"], "/data");
    assert_eq!(last["source"], "/tmp");
    let l = &v["linux"];
    assert_eq!(l["resources"]["pids"]["limit"], 20);
    assert_eq!(l["resources"]["memory"]["limit"], 33554432);
    assert_eq!(
        l["resources"]["devices"],
        json!([{"allow": false, "access": "rwm"}])
    );
    assert_eq!(l["namespaces"].as_array().unwrap().len(), 3);
    assert_eq!(l["sysctl"]["kernel.msgmax"], "12345");
    assert_eq!(l["maskedPaths"], json!(["/proc/cpuinfo"]));
    assert_eq!(l["readonlyPaths"], json!(["/etc"]));
    assert_eq!(l["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    assert_eq!(l["cgroupsPath"], "/imagebus/ib-7", "the cgroup stays ours");
}

#[test]
fn an_empty_document_changes_nothing() {
    let plain = build_spec(&base()).unwrap();
    for d in [json!({}), json!({"hostname": null})] {
        let cfg = BundleConfig {
            overlay: Some(ok(d)),
            ..base()
        };
        assert_eq!(build_spec(&cfg).unwrap(), plain);
    }
}

#[test]
fn capabilities_outside_the_bounding_set_are_left_out() {
    let bit = |name: &str| 1u64 << CAP_BITS.iter().position(|c| *c == name).unwrap();
    let o = check(
        &doc(json!({"process": {"capabilities": {"bounding": ["CAP_KILL", "CAP_SYS_ADMIN"]}}})),
        bit("CAP_KILL"),
    )
    .unwrap();
    assert_eq!(
        merged(o)["process"]["capabilities"]["bounding"],
        json!(["CAP_KILL"])
    );
}

/// A document with `value` at the dotted `path`.
fn at(path: &str, value: Value) -> Value {
    path.rsplit('.').fold(value, |v, k| json!({ k: v }))
}

#[test]
fn every_rejected_field_is_invalid_and_named() {
    for (field, _) in REJECTED {
        let d = match field {
            "process.terminal=true" => json!({"process": {"terminal": true}}),
            "process.user.username" => {
                json!({"process": {"user": {"uid": 0, "gid": 0, "username": "x"}}})
            }
            "linux.resources.devices" => json!({"linux": {"resources": {"devices": [
                {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}]}}}),
            "linux.namespaces.user" => json!({"linux": {"namespaces": [{"type": "user"}]}}),
            other => at(other, json!({})),
        };
        let msg = err(d);
        assert!(msg.contains(field), "{field}: {msg}");
        assert!(msg.contains("not supported"), "{field}: {msg}");
    }
}

#[test]
fn unknown_and_mistyped_fields_are_invalid_and_named() {
    for (d, field) in [
        (json!({"proces": {}}), "proces"),
        (json!({"root": {"pth": "x"}}), "root.pth"),
        (
            json!({"process": {"user": {"uid": 1, "gid": 1, "uidd": 2}}}),
            "process.user.uidd",
        ),
        (
            json!({"linux": {"resources": {"memory": {"limt": 5}}}}),
            "linux.resources.memory.limt",
        ),
        (
            json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "flagz": []}}}),
            "linux.seccomp.flagz",
        ),
        (
            json!({"mounts": [{"destination": "/x", "typo": 1}]}),
            "mounts[].typo",
        ),
        (json!({"linux": {"bogus": 1}}), "linux.bogus"),
        (json!({"process": {"args": "sh"}}), "process.args"),
        (json!({"process": {"args": []}}), "process.args"),
        (json!({"process": {"env": ["NOVALUE"]}}), "process.env"),
        (
            json!({"process": {"rlimits": [{"type": "RLIMIT_BOGUS"}]}}),
            "process.rlimits",
        ),
        (
            json!({"process": {"capabilities": {"bounding": ["CAP_NOPE"]}}}),
            "process.capabilities",
        ),
        (json!({"ociVersion": "2.0.0"}), "ociVersion"),
        (
            json!({"linux": {"maskedPaths": ["relative"]}}),
            "linux.maskedPaths",
        ),
        (
            json!({"mounts": [{"destination": "/", "type": "tmpfs"}]}),
            "mounts",
        ),
        (
            json!({"mounts": [{"destination": "/x", "type": "bind", "source": "rel"}]}),
            "mounts",
        ),
        (json!({"hostname": "a\u{0}b"}), "hostname"),
    ] {
        let msg = err(d.clone());
        assert!(msg.contains(field), "{d}: {msg}");
    }
}

#[test]
fn a_missing_bind_source_is_not_found_and_secrets_are_not_echoed() {
    let e = check(
        &doc(json!({"mounts": [{"destination": "/x", "type": "bind",
                                 "source": "/definitely/missing"}]})),
        u64::MAX,
    )
    .unwrap_err();
    assert!(matches!(e, RuntimeError::NotFound(_)), "{e}");
    let msg = err(json!({"process": {"env": ["GOOD=1", "secretvalue"]}}));
    assert!(msg.contains("process.env"), "{msg}");
    let msg = err(json!({"process": {"env": [5]}}));
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn runcs_own_template_with_terminal_false_is_accepted() {
    let o = ok(json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                             "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                             "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                             "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/sys"]
        }
    }));
    assert_eq!(o.args.clone().unwrap(), ["sh"]);
    let v = merged(o);
    assert_eq!(v["root"]["path"], "/run/imagebus/mount/7");
}

#[test]
fn the_lists_are_disjoint_and_name_their_fields_once() {
    let mut all: Vec<&str> = HONOURED.to_vec();
    all.extend(REJECTED.iter().map(|(f, _)| *f));
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n);
}
