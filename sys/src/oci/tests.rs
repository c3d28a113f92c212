use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};

fn base() -> BundleConfig {
    BundleConfig {
        rootfs: "/run/imagebus/mount/7".into(),
        args: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        cwd: "/".into(),
        hostname: "web".into(),
        uid: 0,
        gid: 0,
        systemd: false,
        network: NetworkMode::Host,
        binds: vec![],
        cpu_quota_us: None,
        memory_limit: None,
        pids_limit: None,
        capabilities: vec!["CAP_KILL".into(), "CAP_CHOWN".into()],
        seccomp: false,
        no_new_privileges: true,
        cgroups_path: "/imagebus/ib-7".into(),
        annotations: vec![("org.imagebus.id".into(), "7".into())],
        overlay: None,
        terminal: false,
    }
}

/// The spec as JSON with the capability sets (hash sets in oci-spec) sorted.
fn normalised(cfg: &BundleConfig) -> Value {
    let mut v = serde_json::to_value(build_spec(cfg).unwrap()).unwrap();
    for set in ["bounding", "effective", "permitted"] {
        if let Some(Value::Array(a)) = v["process"]["capabilities"].get_mut(set) {
            a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
        }
    }
    v
}

#[test]
fn golden_default_config() {
    let v = normalised(&base());
    let expected = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "/run/imagebus/mount/7", "readonly": false},
        "hostname": "web",
        "annotations": {"org.imagebus.id": "7"},
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", "echo hi"],
            "env": ["PATH=/usr/bin:/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL"],
                "effective": ["CAP_CHOWN", "CAP_KILL"],
                "permitted": ["CAP_CHOWN", "CAP_KILL"],
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "cgroupsPath": "/imagebus/ib-7",
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "rootfsPropagation": "rprivate",
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    });
    assert_eq!(v, expected, "{}", serde_json::to_string_pretty(&v).unwrap());
}

#[test]
fn systemd_netns_binds_and_limits() {
    let mut cfg = base();
    cfg.systemd = true;
    cfg.no_new_privileges = false;
    cfg.network = NetworkMode::Join("/var/run/netns/blue".into());
    cfg.binds = vec![BindConfig {
        source: "/srv/data".into(),
        target: "/data".into(),
        read_only: true,
    }];
    cfg.cpu_quota_us = Some(50_000);
    cfg.memory_limit = Some(64 << 20);
    cfg.pids_limit = Some(32);
    let v = normalised(&cfg);
    let dests: Vec<&str> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/run",
            "/run/lock",
            "/tmp",
            "/data"
        ]
    );
    assert_eq!(
        v["mounts"][6]["options"][4], "rw",
        "systemd gets a writable cgroup view"
    );
    assert_eq!(
        v["mounts"][10],
        json!({"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "rprivate", "ro"]})
    );
    assert_eq!(
        v["linux"]["namespaces"][4],
        json!({"type": "network", "path": "/var/run/netns/blue"})
    );
    assert_eq!(
        v["linux"]["resources"]["memory"],
        json!({"limit": 64 << 20})
    );
    assert_eq!(v["linux"]["resources"]["pids"], json!({"limit": 32}));
    assert_eq!(
        v["linux"]["resources"]["cpu"],
        json!({"quota": 50_000, "period": 100_000})
    );
    assert_eq!(v["process"]["noNewPrivileges"], false);

    cfg.network = NetworkMode::Private;
    let v = normalised(&cfg);
    assert_eq!(v["linux"]["namespaces"][4], json!({"type": "network"}));
}

#[test]
fn capabilities_are_intersected_with_the_bounding_set() {
    // This VM's CapBnd: everything up to bit 40 except CAP_SYS_RESOURCE (24).
    let bnd = 0x1fffeffffff_u64;
    let caps = resolve_capabilities(
        &DEFAULT_CAPABILITIES,
        &["sys_admin".into(), "CAP_SYS_RESOURCE".into()],
        &["NET_RAW".into()],
        bnd,
    )
    .unwrap();
    assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(
        !caps.contains(&"CAP_SYS_RESOURCE".to_string()),
        "not in CapBnd"
    );
    assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
    assert_eq!(caps.len(), 14);
    assert!(resolve_capabilities(&DEFAULT_CAPABILITIES, &["CAP_BOGUS".into()], &[], bnd).is_err());
    let none = resolve_capabilities(&DEFAULT_CAPABILITIES, &[], &["ALL".into()], bnd).unwrap();
    assert!(none.is_empty());
    assert_eq!(
        parse_cap_bounding("Name:\tx\nCapBnd:\t000001fffeffffff\n"),
        Some(bnd)
    );
}

#[test]
fn init_lookup_follows_symlinks_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("bin/busybox"), b"#!").unwrap();
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    symlink("busybox", root.join("bin/sh")).unwrap();
    // An absolute link must resolve inside the root, not on the host.
    symlink("/bin/busybox", root.join("usr/bin/env")).unwrap();
    std::fs::write(root.join("bin/data"), b"x").unwrap();

    assert_eq!(
        find_executable(root, "/bin/sh", "").unwrap(),
        root.join("bin/busybox")
    );
    assert_eq!(
        find_executable(root, "env", "/usr/bin:/bin").unwrap(),
        root.join("bin/busybox")
    );
    let e = find_executable(root, "/bin/data", "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not executable"), "{e}");
    let e = find_executable(root, "/nope", "").unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    let e = find_executable(root, "nope", "/bin")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not found in PATH"), "{e}");
    let e = find_executable(root, "/bin", "").unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    // `..` cannot climb out of the root.
    assert_eq!(
        resolve_in_root(root, Path::new("/../../bin/sh")).unwrap(),
        root.join("bin/busybox")
    );
}

#[test]
fn bundle_is_written_and_reparses() {
    let dir = tempfile::tempdir().unwrap();
    let spec = build_spec(&base()).unwrap();
    let b = write_bundle(&dir.path().join("bundle"), &spec).unwrap();
    let back: Spec =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn the_default_seccomp_profile_blocks_by_capability() {
    let names = |v: &Value| -> Vec<String> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["names"].as_array().unwrap().iter())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    };
    let plain = seccomp::profile(&["CAP_CHOWN".into()]).unwrap();
    assert_eq!(plain["defaultAction"], "SCMP_ACT_ALLOW");
    let blocked = names(&plain);
    for n in [
        "keyctl",
        "mount",
        "unshare",
        "setns",
        "bpf",
        "init_module",
        "userfaultfd",
    ] {
        assert!(blocked.iter().any(|b| b == n), "{n} is blocked by default");
    }
    assert!(!blocked.iter().any(|b| b == "read" || b == "write"));
    // CAP_SYS_ADMIN lifts mount, unshare, setns and the clone rules, never keyctl.
    let admin = names(&seccomp::profile(&["CAP_SYS_ADMIN".into()]).unwrap());
    for n in ["mount", "unshare", "setns", "clone", "clone3", "bpf"] {
        assert!(
            !admin.iter().any(|b| b == n),
            "{n} is allowed with CAP_SYS_ADMIN"
        );
    }
    assert!(admin.iter().any(|b| b == "keyctl"));
    // clone is blocked per namespace flag (one ANDed condition each), clone3 with ENOSYS.
    let rules = plain["syscalls"].as_array().unwrap();
    let clones: Vec<&Value> = rules
        .iter()
        .filter(|r| r["names"] == json!(["clone"]))
        .collect();
    assert_eq!(clones.len(), 7);
    let newuser = u64::from(libc::CLONE_NEWUSER.unsigned_abs());
    assert!(clones.iter().any(|r| r["args"]
        == json!([{"index": 0, "value": newuser, "valueTwo": newuser, "op": "SCMP_CMP_MASKED_EQ"}])));
    let clone3 = rules
        .iter()
        .find(|r| r["names"] == json!(["clone3"]))
        .unwrap();
    assert_eq!(clone3["errnoRet"], libc::ENOSYS);
    assert!(rules
        .iter()
        .filter(|r| r["names"] != json!(["clone3"]))
        .all(|r| r["errnoRet"] == libc::EPERM));
}

#[test]
fn the_profile_lands_in_the_spec_only_when_asked() {
    assert!(normalised(&base())["linux"].get("seccomp").is_none());
    let cfg = BundleConfig {
        seccomp: true,
        ..base()
    };
    let v = normalised(&cfg);
    assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            v["linux"]["seccomp"]["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
    }
}

#[test]
fn every_rule_of_the_profile_data_is_explained_and_non_empty() {
    let rules = seccomp::rules().unwrap();
    assert!(rules.len() > 10);
    for r in rules {
        assert!(!r.why.is_empty() && !r.names.is_empty(), "{r:?}");
    }
    let all = seccomp::blocked_names().unwrap();
    let listed: usize = rules.iter().map(|r| r.names.len()).sum();
    assert_eq!(all.len(), listed, "no system call is named twice");
}
