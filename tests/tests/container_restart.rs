//! Containers survive their actor and their daemon: logs keep being captured and exit
//! codes recorded by the per-container monitors while no actor runs, and a new actor
//! reconciles. The kill -9 case runs the actors in a child process (the
//! `container-restart-child` binary, serving over a private Redis) and talks to it through
//! the generated `ContainerModuleStub`.

mod container_common;

use container_common::*;
use imagebus_bus::Client;
use imagebus_schema::container::{
    ContainerFilter, ContainerModule, ContainerModuleStub, ContainerState, InitialState,
    LogsRequest,
};
use imagebus_schema::Selector;
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::KernelScratch;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A container that prints a counter every 100 ms and exits 5 when /root/stop appears.
const TICKER: &str = "sh -c 'i=0; while [ ! -e /root/stop ]; do i=$((i+1)); echo tick$i; sleep 0.1; done; echo done; exit 5'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_outlive_the_actor_and_exit_codes_are_recorded_meanwhile() {
    let mut node = Node::start("outlive").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), TICKER);
    s.state = InitialState::Running;
    let info = node.container.create(s).await.unwrap();
    node.wait_log(info.id, "tick2", Duration::from_secs(10))
        .await;

    // Actor down: the container runs on, its output is still logged, and its exit code is
    // recorded by the monitor.
    node.container_stop.cancel();
    let log = info.log_file.clone();
    let before = std::fs::metadata(&log).unwrap().len();
    assert!(
        imagebus_tests::daemon::wait_until(Duration::from_secs(5), || std::fs::metadata(&log)
            .unwrap()
            .len()
            > before + 20),
        "log keeps growing without the actor"
    );
    std::fs::write(root.join("root/stop"), "").unwrap();
    let exit_file = node.cfg.run_files_dir(info.id).join("exit.json");
    assert!(
        imagebus_tests::daemon::wait_until(Duration::from_secs(10), || exit_file.exists()),
        "monitor records the exit"
    );

    node.restart_container_actor().await;
    let after = node
        .wait_for(
            info.id,
            Duration::from_secs(10),
            is_state(ContainerState::Exited),
        )
        .await;
    assert_eq!(after.exit_code, Some(5));
    let text = node
        .container
        .logs(Selector::Id(info.id), LogsRequest::default())
        .await
        .unwrap()
        .data;
    assert!(text.contains("done"), "{text}");
    node.container
        .delete(Selector::Id(info.id), false)
        .await
        .unwrap();
}

/// The child daemon process (the `container-restart-child` binary: the attach, mount and
/// container actors of the node `configs(dir, instance)`, serving container@1 on `broker`
/// until killed); killed (SIGKILL) on drop.
struct ChildDaemon(Child);

impl ChildDaemon {
    fn spawn(dir: &std::path::Path, instance: &str, broker: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_container-restart-child"))
            .arg(broker)
            .args(imagebus_tests::node_args::to_args(&configs(dir, instance)))
            .spawn()
            .expect("starting container-restart-child");
        ChildDaemon(child)
    }

    fn kill9(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn wait_served(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stub = ContainerModuleStub::new(client.with_timeout(Duration::from_secs(2)));
        if stub.list(ContainerFilter::default()).await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "child daemon never served container.container@1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Purges the runtime of the child's instance on drop (the scratch dir then unmounts).
struct Purge(imagebus_container::ContainerConfig);

impl Drop for Purge {
    fn drop(&mut self) {
        purge_runtime(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_of_the_daemon_keeps_containers_running() {
    require_tools();
    let redis = RedisFixture::start();
    let scratch = KernelScratch::new("ibc-kill9-");
    let instance = unique_instance("kill9");
    let (_, _, ccfg) = configs(scratch.path(), &instance);
    let _purge = Purge(ccfg.clone());
    let root = scratch.path().join("roots/r");
    busybox_rootfs(&root, &[]);

    let mut daemon = ChildDaemon::spawn(scratch.path(), &instance, &redis.url());
    let client = Client::connect(redis.url()).await.unwrap();
    wait_served(&client).await;
    let stub = ContainerModuleStub::new(client.with_timeout(Duration::from_secs(30)));
    let mut s = spec(bind_root(&root), TICKER);
    s.state = InitialState::Running;
    s.name = Some("ticker".into());
    let info = stub.create(s).await.expect("create over the bus");
    assert_eq!(info.state, ContainerState::Running);
    let pid = info.pid.unwrap();

    daemon.kill9();
    // Still running, still logging.
    let alive = |p: u32| std::fs::metadata(format!("/proc/{p}")).is_ok();
    assert!(alive(pid), "the init survived kill -9 of the daemon");
    let before = std::fs::metadata(&info.log_file).unwrap().len();
    assert!(
        imagebus_tests::daemon::wait_until(Duration::from_secs(5), || std::fs::metadata(
            &info.log_file
        )
        .unwrap()
        .len()
            > before + 20),
        "log keeps growing with the daemon dead"
    );

    let _daemon2 = ChildDaemon::spawn(scratch.path(), &instance, &redis.url());
    wait_served(&client).await;
    let got = stub.get(Selector::Name("ticker".into())).await.unwrap();
    assert_eq!(got.state, ContainerState::Running, "reconciled as running");
    assert_eq!(got.pid, Some(pid));

    // The exit after the restart is recorded with its code.
    std::fs::write(root.join("root/stop"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let done = loop {
        let i = stub.get(Selector::Id(info.id)).await.unwrap();
        if i.state == ContainerState::Exited {
            break i;
        }
        assert!(Instant::now() < deadline, "never exited: {i:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.exit_code, Some(5));
    let log = stub
        .logs(
            Selector::Id(info.id),
            LogsRequest {
                tail: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.data, "done\n");
    stub.delete(Selector::Id(info.id), false)
        .await
        .expect("delete over the bus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_monitor_leaves_the_container_running() {
    let node = Node::start("monkill").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), TICKER);
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(300);
    let info = node.container.create(s).await.unwrap();
    let record = node.cfg.container_dir(info.id).join("record.json");
    let watched = |key: &str| -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        v["data"]["watched"][key].clone()
    };
    let monitor = watched("pid").as_u64().expect("monitor pid") as u32;
    assert_eq!(watched("monitor"), true);
    let out = Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        imagebus_tests::daemon::wait_until(Duration::from_secs(10), || watched("monitor") == false),
        "the actor switched to watching the init"
    );
    let got = node.container.get(Selector::Id(info.id)).await.unwrap();
    assert_eq!(
        got.state,
        ContainerState::Running,
        "losing the monitor does not kill the container"
    );
    // Its output still lands in its stdout spool (it writes there itself; nothing is
    // lost), though no capture turns it into log lines any more.
    let spool = info.log_file.with_extension("stdout");
    let before = std::fs::metadata(&spool).unwrap().len();
    assert!(imagebus_tests::daemon::wait_until(
        Duration::from_secs(5),
        || { std::fs::metadata(&spool).unwrap().len() > before }
    ));
    // Its exit status is lost with the monitor: the end is recorded as dead, with the reason.
    let stopped = node
        .container
        .stop(Selector::Id(info.id), None)
        .await
        .unwrap();
    assert_eq!(stopped.state, ContainerState::Dead);
    assert!(
        stopped
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("monitor was lost"),
        "{stopped:?}"
    );
    node.container
        .delete(Selector::Id(info.id), false)
        .await
        .unwrap();
}

/// Kills a process on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A create cut short inside runc (kill -9 of the daemon while `runc create` ran) leaves a
/// `runc init` in the container's cgroup, pinning the root's mounts and loop devices, with
/// no runc state: `runc list` does not show it. Start-up reconciliation kills what runs in
/// such a cgroup and removes it; a container with a record is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cgroup_of_a_create_cut_short_inside_runc_is_emptied_and_removed() {
    use imagebus_sys::cgroup::{Cgroups, LinuxCgroups};
    let mut node = Node::start("stray").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), "sleep 1000");
    s.state = InitialState::Running;
    let kept = node.container.create(s).await.unwrap();

    // The stand-in for the half-started `runc init`: a process in cgroup
    // /<instance>/<instance>-<unused id> in every hierarchy.
    let instance = node.cfg.instance.clone();
    let rid = node.cfg.runtime_id(900_000);
    let rel = format!("{instance}/{rid}");
    let stray = KillOnDrop(Command::new("sleep").arg("1000").spawn().unwrap());
    let pid = stray.0.id();
    let dirs: Vec<_> = LinuxCgroups
        .hierarchies()
        .into_iter()
        .map(|h| h.join(&rel))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
        // v2 refuses a process in a cgroup whose parent has controllers enabled for it
        // only in some setups; every hierarchy that takes it is enough here.
        let _ = std::fs::write(d.join("cgroup.procs"), pid.to_string());
    }
    assert!(
        dirs.iter()
            .any(|d| std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .contains(&pid.to_string())),
        "the stand-in is in its cgroup"
    );

    node.restart_container_actor().await;
    assert!(
        imagebus_tests::daemon::wait_until(Duration::from_secs(10), || {
            !imagebus_tests::kernel_probe::pid_alive(pid)
        }),
        "the process of the stray cgroup was killed"
    );
    assert!(
        imagebus_tests::daemon::wait_until(Duration::from_secs(10), || dirs
            .iter()
            .all(|d| !d.exists())),
        "the stray cgroup is removed in every hierarchy"
    );
    let info = node.container.get(Selector::Id(kept.id)).await.unwrap();
    assert_eq!(
        info.state,
        ContainerState::Running,
        "a recorded container is kept"
    );
    node.container
        .delete(Selector::Id(kept.id), true)
        .await
        .unwrap();
    drop(stray);
}
