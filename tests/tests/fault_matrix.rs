//! Smoke run of the fault matrix (issue 10, `imagebus_tests::fault_matrix`): every row, one
//! round each, on real parts (redis-server, imagebusd, runc, loop devices, overlayfs, tmpfs,
//! and the one-node Ceph test cluster that the Ceph tests share for the rbd-fuse row). Each
//! asserts 0 lost, 0 duplicated, 0 leaked (kernel-checked) and that the row ran to its end.
//! The full matrix (three rounds) is `scripts/fault-matrix.sh`. Root; needs runc,
//! busybox-static, squashfs-tools and the Ceph packages.

use imagebus_tests::fault_matrix::{run, table, Row};

fn smoke(row: Row) {
    let r = run(row, 1);
    let t = table(std::slice::from_ref(&r));
    eprintln!("{t}");
    assert!(r.ran, "{} could not run:\n{t}", row.key());
    assert_eq!(r.rounds, 1, "{t}");
    assert!(r.clean(), "{} is not 0/0/0:\n{t}", row.key());
}

#[test]
fn kill_9_amid_creates() {
    smoke(Row::KillCreates);
}

#[test]
fn kill_9_amid_deletes() {
    smoke(Row::KillDeletes);
}

#[test]
fn kill_9_amid_rbd_fuse_attaches() {
    smoke(Row::KillRbdAttach);
}

#[test]
fn redis_killed_under_load() {
    smoke(Row::RedisKill);
}

#[test]
fn monitor_killed() {
    smoke(Row::MonitorKill);
}

#[test]
fn state_dir_full() {
    smoke(Row::DiskFull);
}

#[test]
fn record_truncated_while_down() {
    smoke(Row::TruncatedState);
}

#[test]
fn every_row_is_named_and_only_the_rbd_row_needs_ceph() {
    let keys: Vec<&str> = Row::ALL.iter().map(|r| r.key()).collect();
    for k in &keys {
        assert_eq!(Row::parse(k).map(|r| r.key()), Some(*k));
    }
    let ceph: Vec<&str> = Row::ALL
        .iter()
        .filter(|r| r.needs_ceph())
        .map(|r| r.key())
        .collect();
    assert_eq!(ceph, ["kill-rbd-attach"]);
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/fault-matrix.sh"
    ))
    .expect("scripts/fault-matrix.sh");
    assert!(
        script.contains("fault-matrix"),
        "the script runs the binary"
    );
    // docs/security.md's "Fault matrix" table names every row, and only those.
    let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .expect("docs/security.md");
    let section = md
        .split("## Fault matrix")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Fault matrix section in docs/security.md");
    let rows: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert_eq!(
        rows, keys,
        "docs/security.md's fault matrix rows vs Row::ALL"
    );
}
