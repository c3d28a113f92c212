use crate::config::SysConfig;
use crate::engine::host;
use crate::store::{self, Info};
use imagebus_schema::container::OciConfig;
use imagebus_schema::syscontainer::{Deployment, Supervisor};
use std::path::{Path, PathBuf};

fn info(slot: u8, tmpfiles: &[&str], hostfs: &[&str]) -> Info {
    Info {
        deployment: Deployment {
            slot,
            path: PathBuf::new(),
            image: "i".into(),
            digest: String::new(),
            rootfs: None,
            mount: 1,
            values: Default::default(),
            set: Default::default(),
            created_at: 0,
            activated_at: None,
        },
        supervisor: Supervisor::Imagebusd,
        oci: OciConfig::default(),
        unit: "exec: x\n".into(),
        service: None,
        tmpfiles: tmpfiles.iter().map(|s| s.to_string()).collect(),
        hostfs: hostfs.iter().map(PathBuf::from).collect(),
    }
}

fn setup() -> (tempfile::TempDir, SysConfig, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = SysConfig::new(d.path().join("state"), d.path().join("run"));
    cfg.host_root = d.path().join("host");
    cfg.zinit_dir = d.path().join("zinit");
    std::fs::create_dir_all(&cfg.state_dir).unwrap();
    std::fs::create_dir_all(&cfg.host_root).unwrap();
    let rootfs = d.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("exports/hostfs/etc/app")).unwrap();
    std::fs::write(rootfs.join("exports/hostfs/etc/app/a.conf"), "a").unwrap();
    (d, cfg, rootfs)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn apply_journals_everything_and_remove_all_leaves_nothing() {
    let (_d, cfg, rootfs) = setup();
    let hr = cfg.host_root.display().to_string();
    let lines = [
        format!("d {hr}/var/lib/app 0700 - - - -"),
        format!("D {hr}/run/app 0755 - - - -"),
        format!("f {hr}/run/app/f 0600 - - - hi"),
        format!("L {hr}/run/l - - - - /target"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let i = info(0, &lines, &["etc", "etc/app", "etc/app/a.conf"]);
    host::apply(&cfg, "app", &i, &rootfs).unwrap();
    // Twice is the same (what reconciliation does).
    host::apply(&cfg, "app", &i, &rootfs).unwrap();
    assert_eq!(
        std::fs::read_to_string(cfg.host_root.join("etc/app/a.conf")).unwrap(),
        "a"
    );
    assert_eq!(
        std::fs::read_to_string(cfg.host_root.join("run/app/f")).unwrap(),
        "hi"
    );
    assert!(cfg.unit_file("app").is_file());
    let j = store::journal(&cfg, "app").unwrap();
    assert!(
        j.iter().any(|e| e.path == cfg.host_root.join("var")),
        "{j:?}"
    );
    // Data written by the service into a D directory goes with it.
    std::fs::write(cfg.host_root.join("run/app/data"), "x").unwrap();
    host::remove_all(&cfg, "app").unwrap();
    assert_eq!(names(&cfg.host_root), Vec::<String>::new());
    assert!(!cfg.unit_file("app").exists());
    assert!(!cfg.journal("app").exists());
}

#[test]
fn a_file_that_is_not_ours_is_a_conflict_and_nothing_is_written() {
    let (_d, cfg, rootfs) = setup();
    std::fs::create_dir_all(cfg.host_root.join("etc/app")).unwrap();
    std::fs::write(cfg.host_root.join("etc/app/a.conf"), "theirs").unwrap();
    let i = info(0, &[], &["etc", "etc/app", "etc/app/a.conf"]);
    let err = host::apply(&cfg, "app", &i, &rootfs).unwrap_err();
    assert_eq!(err.code(), imagebus_bus::ErrorCode::Conflict, "{err}");
    assert_eq!(
        std::fs::read_to_string(cfg.host_root.join("etc/app/a.conf")).unwrap(),
        "theirs"
    );
    assert!(!cfg.unit_file("app").exists());
    // A tmpfiles path outside the host root is refused.
    let i = info(0, &["d /elsewhere - - - - -"], &[]);
    let err = host::apply(&cfg, "app", &i, &rootfs).unwrap_err();
    assert_eq!(
        err.code(),
        imagebus_bus::ErrorCode::InvalidArgument,
        "{err}"
    );
}

#[test]
fn applying_the_other_deployment_swaps_the_files() {
    let (_d, cfg, rootfs) = setup();
    std::fs::write(rootfs.join("exports/hostfs/etc/app/b.conf"), "b").unwrap();
    let v1 = info(
        0,
        &[],
        &["etc", "etc/app", "etc/app/a.conf", "etc/app/b.conf"],
    );
    let v2 = info(1, &[], &["etc", "etc/app", "etc/app/a.conf"]);
    host::apply(&cfg, "app", &v1, &rootfs).unwrap();
    assert!(cfg.host_root.join("etc/app/b.conf").exists());
    host::apply(&cfg, "app", &v2, &rootfs).unwrap();
    assert!(!cfg.host_root.join("etc/app/b.conf").exists());
    assert!(cfg.host_root.join("etc/app/a.conf").exists());
    host::apply(&cfg, "app", &v1, &rootfs).unwrap();
    assert!(cfg.host_root.join("etc/app/b.conf").exists());
}

#[test]
fn the_switch_is_one_rename_and_names_are_listed() {
    let (_d, cfg, _) = setup();
    assert_eq!(store::active(&cfg, "app"), None);
    store::switch(&cfg, "app", 0).unwrap();
    assert_eq!(store::active(&cfg, "app"), Some(0));
    store::switch(&cfg, "app", 1).unwrap();
    assert_eq!(store::active(&cfg, "app"), Some(1));
    std::fs::create_dir(cfg.slot_dir("app", 1)).unwrap();
    std::fs::create_dir(cfg.slot_dir("db", 0)).unwrap();
    assert_eq!(store::names(&cfg).unwrap(), ["app", "db"]);
    assert_eq!(names(&cfg.state_dir), ["app", "app.1", "db.0"]);
}
