use super::*;
use imagebus_schema::container::{BindSpec, CommandLine, Resources};
use imagebus_schema::mount::MountRef;
use imagebus_schema::Selector;
use imagebus_sys::fake::FakeNetNamespaces;

/// Network namespaces where only "blue" exists.
fn netns() -> FakeNetNamespaces {
    let ns = FakeNetNamespaces::default();
    ns.add("blue");
    ns
}

fn spec(cmd: &str) -> ContainerSpec {
    serde_json::from_value(serde_json::json!({
        "mount": {"existing": {"id": 1}}, "command": cmd,
    }))
    .unwrap()
}

#[test]
fn defaults() {
    let p = prepare(&spec("sleep 10"), &netns(), u64::MAX).unwrap();
    assert_eq!(p.args, ["sleep", "10"]);
    assert_eq!(p.env, [format!("PATH={DEFAULT_PATH}")]);
    assert_eq!(p.stop_signal, 15);
    assert_eq!(p.capabilities.len(), 14);
    assert_eq!(p.network, NetworkMode::Host);
}

#[test]
fn systemd_mode() {
    let mut s = spec("/sbin/init");
    s.systemd = true;
    let p = prepare(&s, &netns(), u64::MAX).unwrap();
    assert_eq!(p.stop_signal, 37);
    assert!(p.env.contains(&CONTAINER_ENV.to_string()));
    assert!(p.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
}

#[test]
fn bad_inputs_are_typed() {
    let bad = |s: ContainerSpec| prepare(&s, &netns(), u64::MAX).unwrap_err();
    assert!(matches!(bad(spec("")), ContainerError::Invalid(m) if m.contains("missing")));
    assert!(matches!(bad(spec("'x")), ContainerError::Invalid(_)));
    let mut s = spec("x");
    s.network = Network::Namespace("nope".into());
    assert!(matches!(bad(s), ContainerError::Missing(_)));
    let mut s = spec("x");
    s.network = Network::Namespace("../etc".into());
    assert!(matches!(
        prepare(&s, &netns(), u64::MAX),
        Err(ContainerError::Missing(_) | ContainerError::Invalid(_))
    ));
    let mut s = spec("x");
    s.env = vec!["NOEQUALS".into()];
    assert!(matches!(bad(s), ContainerError::Invalid(_)));
    let mut s = spec("x");
    s.binds = vec![BindSpec {
        source: "/definitely/missing".into(),
        target: "/x".into(),
        read_only: false,
    }];
    assert!(matches!(bad(s), ContainerError::Missing(_)));
    let mut s = spec("x");
    s.resources = Resources {
        cpu_millis: Some(1),
        memory_bytes: None,
        pids: None,
    };
    assert!(matches!(bad(s), ContainerError::Invalid(_)));
    let mut s = spec("x");
    s.stop_signal = Some("SIGBOGUS".into());
    assert!(matches!(bad(s), ContainerError::Invalid(_)));
    let mut s = spec("x");
    s.name = Some("bad/name".into());
    assert!(matches!(bad(s), ContainerError::Invalid(_)));
    let mut s = spec("x");
    s.capabilities.add = vec!["CAP_NOPE".into()];
    assert!(matches!(bad(s), ContainerError::Invalid(_)));
    let s = ContainerSpec {
        command: CommandLine::Argv(vec![]),
        ..spec("x")
    };
    assert!(matches!(bad(s), ContainerError::Invalid(_)));
    let _ = MountRef::Existing(Selector::Id(1));
}

#[test]
fn limits_and_network() {
    let mut s = spec("x");
    s.resources = Resources {
        cpu_millis: Some(500),
        memory_bytes: Some(64 << 20),
        pids: Some(50),
    };
    s.network = Network::Namespace("blue".into());
    let p = prepare(&s, &netns(), u64::MAX).unwrap();
    assert_eq!(p.cpu_quota_us, Some(50_000));
    assert_eq!(p.memory_limit, Some(64 << 20));
    assert_eq!(p.pids_limit, Some(50));
    assert_eq!(p.network, NetworkMode::Join("/var/run/netns/blue".into()));
    let b = bundle_config(&p, &s, 4, "/r".into(), "/imagebus/ib-4".into());
    assert_eq!(b.hostname, "c4");
}

#[test]
fn the_oci_document_wins_and_a_refused_field_is_named() {
    let mut s = spec("sleep 1");
    s.env = vec!["A=spec".into(), "B=spec".into()];
    s.working_dir = Some("/spec".into());
    s.oci = serde_json::from_value(serde_json::json!({
        "process": {"args": ["/bin/app"], "env": ["A=oci"], "cwd": "/oci",
                    "user": {"uid": 7, "gid": 8}},
        "hostname": "from-oci",
    }))
    .unwrap();
    let p = prepare(&s, &netns(), u64::MAX).unwrap();
    assert_eq!(p.args, ["/bin/app"]);
    assert_eq!(
        p.env,
        ["B=spec", &format!("PATH={DEFAULT_PATH}"), "A=oci"].map(String::from)
    );
    assert_eq!((p.cwd.as_str(), p.user), ("/oci", (7, 8)));
    let b = bundle_config(&p, &s, 4, "/r".into(), "/imagebus/ib-4".into());
    assert_eq!(b.hostname, "from-oci");
    assert!(b.overlay.is_some());
    for (doc, field) in [
        (serde_json::json!({"hooks": {}}), "hooks"),
        (
            serde_json::json!({"process": {"cwd": "rel"}}),
            "working directory",
        ),
        (serde_json::json!({"hostname": "bad host"}), "hostname"),
    ] {
        s.oci = serde_json::from_value(doc).unwrap();
        let e = prepare(&s, &netns(), u64::MAX).unwrap_err();
        assert!(
            matches!(&e, ContainerError::Invalid(m) if m.contains(field)),
            "{e}"
        );
    }
}
