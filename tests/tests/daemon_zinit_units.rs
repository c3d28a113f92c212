//! The zinit units in zinit/ parse as zinit reads them and follow the deployment rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Unit {
    exec: String,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    oneshot: bool,
    #[serde(default)]
    shutdown_timeout: Option<u64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    log: Option<String>,
}

fn zinit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("zinit")
}

fn load(rel: &str) -> Unit {
    let path = zinit_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn argv(cmd: &str) -> Vec<String> {
    shell_words::split(cmd).unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

#[test]
fn redis_unit_serves_the_zos_socket() {
    let u = load("redis.yaml");
    let a = argv(&u.exec);
    assert_eq!(a[0], "redis-server");
    let sock = a
        .iter()
        .position(|x| x == "--unixsocket")
        .expect("--unixsocket");
    assert_eq!(a[sock + 1], "/var/run/redis.sock");
    assert!(u.test.is_some() && !u.oneshot);
}

#[test]
fn daemon_units_wait_for_redis_and_test_through_the_cli() {
    let units = [
        ("combined/imagebusd.yaml", None, "syscontainer"),
        ("split/imagebus-attach.yaml", Some("attach"), "attach"),
        ("split/imagebus-image.yaml", Some("image"), "image"),
        ("split/imagebus-mount.yaml", Some("mount"), "mount"),
        (
            "split/imagebus-container.yaml",
            Some("container"),
            "container",
        ),
        (
            "split/imagebus-syscontainer.yaml",
            Some("syscontainer"),
            "syscontainer",
        ),
    ];
    for (file, only, tested) in units {
        let u = load(file);
        let a = argv(&u.exec);
        assert_eq!(a[0], "imagebusd", "{file}");
        let b = a.iter().position(|x| x == "--broker").expect("--broker");
        assert_eq!(a[b + 1], "unix:///var/run/redis.sock", "{file}");
        let o = a
            .iter()
            .position(|x| x == "--only")
            .map(|i| a[i + 1].as_str());
        assert_eq!(o, only, "{file}");
        assert!(
            u.after.contains(&"redis".to_string()),
            "{file} must be after redis"
        );
        let t = argv(u.test.as_deref().expect("test:"));
        assert_eq!(t[0], "imagebus", "{file}");
        let m = t.iter().position(|x| x == "--module").expect("--module");
        assert_eq!(t[m + 1], tested, "{file}");
        assert!(t.contains(&"status".to_string()), "{file}");
        assert!(u.shutdown_timeout.unwrap_or(10) >= 10, "{file}");
        assert!(u.env.is_empty() && u.log.is_none() && !u.oneshot, "{file}");
    }
    // Split shape: each module after the one it calls.
    assert!(load("split/imagebus-mount.yaml")
        .after
        .contains(&"imagebus-attach".to_string()));
    assert!(load("split/imagebus-mount.yaml")
        .after
        .contains(&"imagebus-image".to_string()));
    assert!(load("split/imagebus-container.yaml")
        .after
        .contains(&"imagebus-mount".to_string()));
    assert!(load("split/imagebus-syscontainer.yaml")
        .after
        .contains(&"imagebus-container".to_string()));
}

#[test]
fn every_unit_file_is_checked() {
    let mut seen = Vec::new();
    for sub in ["", "combined", "split"] {
        for e in std::fs::read_dir(zinit_dir().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                let rel = p
                    .strip_prefix(zinit_dir())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                load(&rel);
                seen.push(rel);
            }
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "combined/imagebusd.yaml",
            "redis.yaml",
            "split/imagebus-attach.yaml",
            "split/imagebus-container.yaml",
            "split/imagebus-image.yaml",
            "split/imagebus-mount.yaml",
            "split/imagebus-syscontainer.yaml"
        ]
    );
}
