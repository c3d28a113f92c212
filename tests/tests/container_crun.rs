//! The container lifecycle over the real crun (`ContainerConfig::runtime = "crun"`, as
//! `imagebusd --runtime crun` sets it), through the real container actor: create running,
//! exec (namespaces, merged environment, timeout), netns join, logs, stop, delete; and
//! created → start → stop escalating to SIGKILL. On a hybrid cgroup host (this VM) every
//! crun command runs in the mount-namespace wrapper; these tests fail if it is missing.

mod container_common;

use container_common::*;
use imagebus_bus::ErrorCode;
use imagebus_container::{ContainerConfig, ContainerSys};
use imagebus_schema::container::{ContainerModule, ContainerState, InitialState, Network};
use imagebus_schema::mount::MountModule;
use imagebus_schema::Selector;
use imagebus_sys::oci_cli::Flavour;
use imagebus_tests::rootfs::KernelScratch;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const LOOP_INIT: &str =
    "sh -c 'echo hello-$(hostname) $FROM_SPEC; trap \"echo bye; exit 7\" TERM; while :; do sleep 1 & wait $!; done'";

fn require_crun() {
    let ok = Command::new("crun")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "crun is missing: apt-get install crun");
}

/// Force-deletes every crun container of the node (through the runtime seam, so through
/// the hybrid-cgroup wrapper). Declared after the [`Node`], so it runs before the node's
/// own purge (which only knows runc) and its unmounts.
struct CrunPurge(ContainerConfig);

impl Drop for CrunPurge {
    fn drop(&mut self) {
        let runtime = ContainerSys::linux(&self.0).runtime;
        for c in runtime.list().unwrap_or_default() {
            let _ = runtime.delete(&c.id, true);
        }
    }
}

/// A node whose container actor runs crun: the fixture's node, its container actor
/// restarted on `runtime = "crun"` before any container exists.
async fn crun_node(tag: &str) -> (Node, CrunPurge) {
    require_tools();
    require_crun();
    let scratch = KernelScratch::new(&format!("ibcc-{tag}-"));
    let mut node = Node::start_in(scratch, &unique_instance(tag)).await;
    node.cfg.runtime = PathBuf::from("crun");
    assert_eq!(node.cfg.runtime_flavour(), Flavour::Crun);
    assert_eq!(ContainerSys::linux(&node.cfg).runtime.name(), "crun");
    node.restart_container_actor().await;
    let purge = CrunPurge(node.cfg.clone());
    (node, purge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crun_runs_execs_logs_stops_and_deletes() {
    let (node, _purge) = crun_node("life").await;
    let ns = Netns::new();
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), LOOP_INIT);
    s.name = Some("web".into());
    s.hostname = Some("crunhost".into());
    s.env = vec!["FROM_SPEC=spec-env".into()];
    s.state = InitialState::Running;
    s.network = Network::Namespace(ns.0.clone());
    let info = node.container.create(s).await.expect("create running");
    assert_eq!(info.state, ContainerState::Running);
    node.wait_log(info.id, "hello-crunhost spec-env", Duration::from_secs(10))
        .await;

    // crun made it: its state directory (a `status` file; runc writes `state.json`).
    let rid = node.cfg.runtime_id(info.id);
    let state_dir = node.cfg.runtime_root().join(&rid);
    assert!(node.cfg.runtime_root().ends_with("crun"));
    assert!(
        state_dir.join("status").is_file(),
        "no crun state in {state_dir:?}"
    );
    let runtime = ContainerSys::linux(&node.cfg).runtime;
    let st = runtime.state(&rid).expect("crun state").expect("known");
    assert_eq!(st.status, "running");
    assert_eq!(Some(st.pid), info.pid);

    // The init joined the named network namespace.
    let pid = info.pid.expect("init pid");
    let inside = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let named = std::fs::metadata(format!("/var/run/netns/{}", ns.0)).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(inside.to_string_lossy(), format!("net:[{}]", named.ino()));

    // exec joins the namespaces; crun replaces the environment on --env, so the
    // container's own must have been passed along with X.
    let r = node
        .container
        .exec(
            Selector::Id(info.id),
            exec_spec(
                "sh -c 'echo out $X $FROM_SPEC $(pwd); echo err >&2; hostname; ip addr show lo; cat /proc/1/cmdline; exit 3'",
                None,
            ),
        )
        .await
        .expect("exec");
    assert_eq!(r.exit_code, 3, "{r:?}");
    assert!(
        r.stdout.contains("out 42 spec-env /tmp"),
        "exec env and cwd: {:?}",
        r.stdout
    );
    assert!(
        r.stdout.contains("crunhost"),
        "UTS namespace: {:?}",
        r.stdout
    );
    assert!(
        r.stdout.contains("127.0.0.77"),
        "network namespace: {:?}",
        r.stdout
    );
    assert!(r.stdout.contains("sh"), "PID 1 is the init: {:?}", r.stdout);
    assert_eq!(r.stderr.trim(), "err");

    assert_exec_timeout_kills(&node.container, info.id).await;

    // Issue 10: a command crun cannot run is the caller's mistake, not a missing container.
    for cmd in ["nosuchcmd", "/nosuch/cmd"] {
        let err = node
            .container
            .exec(Selector::Id(info.id), exec_spec(cmd, None))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{cmd}: {err}");
    }

    let t = Instant::now();
    let stopped = node
        .container
        .stop(Selector::Id(info.id), Some(10_000))
        .await
        .expect("stop");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "the trap handled TERM, no SIGKILL needed"
    );
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.exit_code, Some(7));
    node.wait_log(info.id, "bye", Duration::from_secs(5)).await;
    let err = node
        .container
        .exec(Selector::Id(info.id), exec_spec("true", None))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);

    node.container
        .delete(Selector::Id(info.id), false)
        .await
        .expect("delete");
    let err = node.container.get(Selector::Id(info.id)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(node.mount.list().await.unwrap().is_empty());
    assert!(!info.log_file.exists(), "log removed");
    assert!(
        runtime.state(&rid).expect("crun state").is_none(),
        "crun forgot it"
    );
    assert!(runtime.list().unwrap().is_empty());
    assert_eq!(
        cgroups_of(&node.cfg.instance),
        Vec::<PathBuf>::new(),
        "cgroups removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crun_created_then_started_and_stop_escalates_to_sigkill() {
    let (node, _purge) = crun_node("kill").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(
        bind_root(&root),
        "sh -c 'trap \"\" TERM; echo up; while :; do sleep 1; done'",
    );
    s.stop_timeout_ms = Some(400);
    let info = node.container.create(s).await.expect("create");
    assert_eq!(info.state, ContainerState::Created);
    let rid = node.cfg.runtime_id(info.id);
    let runtime = ContainerSys::linux(&node.cfg).runtime;
    assert_eq!(
        runtime.state(&rid).unwrap().map(|s| s.status).as_deref(),
        Some("created")
    );
    let started = node
        .container
        .start(Selector::Id(info.id))
        .await
        .expect("start");
    assert_eq!(started.state, ContainerState::Running);
    node.wait_log(info.id, "up", Duration::from_secs(10)).await;

    let t = Instant::now();
    let stopped = node
        .container
        .stop(Selector::Id(info.id), None)
        .await
        .expect("stop");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.exit_signal, Some(9));
    node.container
        .delete(Selector::Id(info.id), false)
        .await
        .expect("delete");
    assert!(runtime.list().unwrap().is_empty());
    assert_eq!(cgroups_of(&node.cfg.instance), Vec::<PathBuf>::new());
}
