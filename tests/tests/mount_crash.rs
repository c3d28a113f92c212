//! Crash safety of the mount actor on the real kernel: the actor runs in a child process
//! that is `kill -9`ed in the middle of a nested mount; a restart must know every
//! committed object, mount nothing twice, clean the half-made objects (mounts, loop
//! devices through the attach actor, directories) and report them. Also: a mount that
//! vanished under the actor is collected (with its cascade) at restart.

mod mount_common;

use imagebus_schema::attach::AttachModule;
use imagebus_schema::mount::MountModule;
use imagebus_schema::{Holder, Selector};
use imagebus_tests::rootfs::{busybox_squashfs, loops_under, mounts_under, KernelScratch};
use mount_common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the child (SIGKILL) and reaps it when dropped, so a failing test leaves no process.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn layers(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let a = busybox_squashfs(dir, "a", &[("etc/layer", "a\n")], &[]);
    let b = busybox_squashfs(dir, "b", &[("etc/layer", "b\n")], &[]);
    (a, b)
}

fn count_at(root: &Path, mp: &Path) -> usize {
    mounts_under(root)
        .iter()
        .filter(|e| e.mount_point == mp)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_nested_mount_then_restart_reconciles_without_leaks() {
    let scratch = KernelScratch::new("ib-mount-crash-");
    let root = scratch.path().to_path_buf();
    let (a, b) = layers(&root);

    // Child: mount #1 completes (ids 1..3); mount #2 (ids 4..6) freezes after its
    // second attach (attach call 4): lower 5 is mounted, lower 6's loop is attached.
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mount-crash-child"))
            .arg(&root)
            .arg(&a)
            .arg(&b)
            .arg("4")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting mount-crash-child"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("child did not report {what:?}: {e}"))
    };
    assert_eq!(next("first mount"), "mounted 1");
    assert_eq!(next("freeze"), "hang 4");
    // Mid-sequence kernel state: overlay 1 + lowers 2, 3 and the half-made lower 5.
    let cfg = mount_common::configs(&root).1;
    assert_eq!(mounts_under(&root).len(), 4, "{:?}", mounts_under(&root));
    assert_eq!(count_at(&root, &cfg.mountpoint(5)), 1);
    assert_eq!(loops_under(&root).len(), 4, "{:?}", loops_under(&root));
    child.0.kill().expect("kill -9");
    child.0.wait().expect("reaping the child");

    // Restart in this process: the same state, the real kernel.
    let stack = Stack::start(&root).await.unwrap();
    let r = stack.report.clone();
    assert_eq!(r.orphan_mounts, vec![cfg.mountpoint(5)], "{r:?}");
    for id in [4, 5, 6] {
        assert!(r.orphan_dirs.contains(&cfg.mountpoint(id)), "{r:?}");
    }
    let mut released: Vec<u64> = r.released_attachments.iter().map(|(_, m)| *m).collect();
    released.sort();
    assert_eq!(released, vec![5, 6], "{r:?}");
    assert!(r.vanished.is_empty() && r.errors.is_empty(), "{r:?}");

    // Every committed object is known and mounted exactly once; half-made ones are gone.
    let m = stack.mount.clone();
    let ids: Vec<u64> = m.list().await.unwrap().iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    for id in [1, 2, 3] {
        assert_eq!(count_at(&root, &cfg.mountpoint(id)), 1, "mount {id}");
    }
    assert_eq!(mounts_under(&root).len(), 3, "{:?}", mounts_under(&root));
    wait_for(
        "half-made loop devices to go",
        Duration::from_secs(5),
        || loops_under(&root).len() == 2,
    );
    let atts = stack.attach.list().await.unwrap();
    let holders: Vec<Vec<Holder>> = atts.iter().map(|a| a.holders.clone()).collect();
    assert_eq!(
        holders,
        vec![vec![Holder::Mount(2)], vec![Holder::Mount(3)]]
    );
    let layer = std::fs::read_to_string(cfg.mountpoint(1).join("etc/layer")).unwrap();
    assert_eq!(layer, "a\n");

    // Ids are never reused, not even those of the half-made objects.
    let fresh = m.mount(image_on_loop(&a), None).await.unwrap();
    assert_eq!(fresh.id, 7);
    m.unmount(Selector::Id(fresh.id), false).await.unwrap();
    stack.stop().await;

    // A second, clean restart changes nothing and mounts nothing twice.
    let stack = Stack::start(&root).await.unwrap();
    assert!(stack.report.is_clean(), "{:?}", stack.report);
    assert_eq!(mounts_under(&root).len(), 3);
    stack.mount.unmount(Selector::Id(1), false).await.unwrap();
    assert!(stack.attach.list().await.unwrap().is_empty());
    assert_no_leaks(&scratch, &stack.cfg);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_that_vanished_is_collected_with_its_cascade_at_restart() {
    let scratch = KernelScratch::new("ib-mount-vanish-");
    let root = scratch.path().to_path_buf();
    let (a, b) = layers(&root);
    let stack = Stack::start(&root).await.unwrap();
    let top = stack.mount.mount(nested(&a, &b), None).await.unwrap();
    stack.stop().await;
    // Someone unmounts the overlay behind our back.
    let status = Command::new("umount")
        .arg("-l")
        .arg(&top.mountpoint)
        .status()
        .unwrap();
    assert!(status.success());
    let stack = Stack::start(&root).await.unwrap();
    assert_eq!(stack.report.vanished, vec![top.id], "{:?}", stack.report);
    assert!(stack.mount.list().await.unwrap().is_empty());
    assert!(stack.attach.list().await.unwrap().is_empty());
    assert_no_leaks(&scratch, &stack.cfg);
    // Unmounting what is already gone is NotFound, not a failure of the actor.
    let err = stack
        .mount
        .unmount(Selector::Id(top.id), false)
        .await
        .unwrap_err();
    assert_eq!(err.code, imagebus_bus::ErrorCode::NotFound);
    stack.stop().await;
}
