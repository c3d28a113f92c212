//! imagebusd runs the attach, mount and container actors, combined or one per process.

use imagebus_tests::daemon::{wait_until, Daemon};
use imagebus_tests::redis::RedisFixture;
use std::path::Path;
use std::time::Duration;

fn modules(d: &Daemon) -> serde_json::Value {
    let out = d.cli(&["--json", "call", "imagebus", "system@1", "Modules"]);
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    serde_json::from_str(&out.stdout).unwrap()
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["module"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn combined_daemon_serves_every_module() {
    let redis = RedisFixture::start();
    let d = Daemon::start(&redis.url());
    for (module, objects) in [
        ("attach", &["attach@1"][..]),
        ("image", &["image@1"]),
        ("mount", &["mount@1"]),
        ("container", &["container@0.0.1", "container@1"]),
        ("syscontainer", &["syscontainer@1"]),
    ] {
        let out = d.cli(&["--json", "--timeout", "5s", "status", module]);
        assert!(out.status.success(), "{module}: {out:?}\n{}", d.log());
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["objects"], serde_json::json!(objects), "{module}");
    }
    let m = modules(&d);
    assert_eq!(
        names(&m),
        [
            "attach",
            "container",
            "image",
            "imagebus",
            "mount",
            "syscontainer"
        ]
    );
    assert!(
        m.as_array()
            .unwrap()
            .iter()
            .all(|x| x["state"] == "running"),
        "{m}"
    );
    // Each actor answers over the bus.
    for args in [
        &["call", "attach", "attach@1", "List"][..],
        &["call", "mount", "mount@1", "List"],
        &["call", "image", "image@1", "List"],
        &["call", "container", "container@1", "List", "{}"],
        // zos's ContainerModule on the same module.
        &["call", "container", "container@0.0.1", "ListNS"],
    ] {
        let out = d.cli(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_eq!(out.stdout.trim(), "[]", "{args:?}");
    }
}

#[test]
fn split_daemons_serve_one_module_each_and_reach_peers_over_the_bus() {
    let redis = RedisFixture::start();
    let url = redis.url();
    let attach = Daemon::spawn(Some(&url), &["--only", "attach"]);
    attach.wait_ready();
    let mount = Daemon::spawn(Some(&url), &["--only", "mount"]);
    mount.wait_ready();
    let out = mount.cli(&["--timeout", "10s", "status", "mount"]);
    assert!(out.status.success(), "{out:?}\n{}", mount.log());

    // Each process reports only what it serves (plus the system object).
    // Ask until each process has answered once (they compete on the system queue).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        seen.insert(names(&modules(&mount)));
        if seen.len() == 2 {
            break;
        }
    }
    let want: std::collections::BTreeSet<Vec<String>> = [
        vec!["attach".to_string(), "imagebus".into()],
        vec!["imagebus".into(), "mount".into()],
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, want);

    // The mount process reconciled against attach over the bus and serves calls.
    let out = mount.cli(&["call", "mount", "mount@1", "List"]);
    assert!(out.status.success() && out.stdout.trim() == "[]", "{out:?}");
    // A mount referencing an unknown attachment reaches the attach process and fails there.
    let spec = r#"{"source":{"kind":"image","attach":{"existing":{"id":999999}}}}"#;
    let out = mount.cli(&["call", "mount", "mount@1", "Mount", spec, "null"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.starts_with("error: NotFound: "), "{out:?}");
    // No container module anywhere: its status does not answer.
    let out = mount.cli(&["--timeout", "500ms", "status", "container"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn an_actor_that_fails_to_start_is_retried_until_it_runs() {
    let redis = RedisFixture::start();
    // An unreadable attach state file: the attach actor cannot start.
    let mut bad = std::path::PathBuf::new();
    let d = Daemon::spawn_prepared(Path::new("/tmp"), Some(&redis.url()), &[], |state| {
        bad = state.join("attach").join("attach.json");
        std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
        std::fs::write(&bad, "this is not json").unwrap();
    });
    d.wait_serving();
    let attach = |d: &Daemon| {
        modules(d)
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["module"] == "attach")
            .cloned()
    };
    assert!(
        wait_until(Duration::from_secs(20), || {
            attach(&d).is_some_and(|a| a["state"] == "restarting")
        }),
        "attach never reported restarting: {:?}\n{}",
        attach(&d),
        d.log()
    );
    assert!(d.log().contains("actor failed to start"), "{}", d.log());
    // Repair the state; the next backoff round starts it and the rest of the node follows.
    std::fs::remove_file(&bad).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            attach(&d).is_some_and(|a| a["state"] == "running" && a["restarts"] == 1)
        }),
        "attach never came up: {:?}\n{}",
        attach(&d),
        d.log()
    );
    let out = d.cli(&["--timeout", "30s", "status", "container"]);
    assert!(out.status.success(), "{out:?}\n{}", d.log());
}
