//! Container lifecycle over the real runc: create/start/stop/delete, exit codes, stop
//! escalation, exec, logs, events, systemd mode and bad inputs (real attach and mount
//! actors underneath; bind-mounted busybox root filesystems).

mod container_common;

use container_common::*;
use imagebus_bus::ErrorCode;
use imagebus_schema::container::{
    CommandLine, ContainerFilter, ContainerModule, ContainerState, ExecSpec, InitialState,
    LogsRequest, Network,
};
use imagebus_schema::mount::MountModule;
use imagebus_schema::Selector;
use std::time::{Duration, Instant};

const LOOP_INIT: &str =
    "sh -c 'echo hello-$(hostname); trap \"echo bye; exit 7\" TERM; while :; do sleep 1 & wait $!; done'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_created_start_stop_delete_with_events() {
    let node = Node::start("life").await;
    let root = node.rootfs("r", &[]);
    let events = node.container.subscribe();
    let mut s = spec(bind_root(&root), LOOP_INIT);
    s.name = Some("web".into());
    s.hostname = Some("webhost".into());
    let info = node.container.create(s).await.expect("create");
    assert_eq!(info.state, ContainerState::Created);
    assert!(
        info.pid.is_some(),
        "a created container has its runtime init"
    );
    assert_eq!(
        node.container
            .get(Selector::Name("web".into()))
            .await
            .unwrap()
            .id,
        info.id
    );

    let started = node
        .container
        .start(Selector::Name("web".into()))
        .await
        .expect("start");
    assert_eq!(started.state, ContainerState::Running);
    node.wait_log(info.id, "hello-webhost", Duration::from_secs(10))
        .await;
    // Start of a running container is a no-op.
    assert_eq!(
        node.container
            .start(Selector::Id(info.id))
            .await
            .unwrap()
            .state,
        ContainerState::Running
    );

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
    assert_eq!(stopped.exit_signal, None);
    assert!(stopped.finished_at_ms.is_some() && stopped.started_at_ms.is_some());
    node.wait_log(info.id, "bye", Duration::from_secs(5)).await;

    let listed = node
        .container
        .list(ContainerFilter {
            states: vec![ContainerState::Exited],
            group: None,
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(node
        .container
        .list(ContainerFilter {
            states: vec![ContainerState::Running],
            group: None
        })
        .await
        .unwrap()
        .is_empty());

    node.container
        .delete(Selector::Id(info.id), false)
        .await
        .expect("delete");
    let err = node.container.get(Selector::Id(info.id)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(
        node.mount.list().await.unwrap().is_empty(),
        "the inline bind mount went with it"
    );
    assert!(!info.log_file.exists(), "log removed");
    assert_eq!(
        cgroups_of(&node.cfg.instance),
        Vec::<std::path::PathBuf>::new(),
        "cgroups removed"
    );

    let evs = collect_events(events, Duration::from_secs(5), |e| {
        e.iter().any(|e| e.deleted)
    })
    .await;
    let states: Vec<(ContainerState, bool)> = evs.iter().map(|e| (e.state, e.deleted)).collect();
    assert_eq!(
        states,
        [
            (ContainerState::Created, false),
            (ContainerState::Running, false),
            (ContainerState::Stopping, false),
            (ContainerState::Exited, false),
            (ContainerState::Exited, true),
        ]
    );
    assert_eq!(evs[3].exit_code, Some(7));
    assert!(evs
        .iter()
        .all(|e| e.id == info.id && e.name.as_deref() == Some("web")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_running_records_the_exit_code_and_restarts() {
    let node = Node::start("exit").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), "sh -c 'echo run; exit 42'");
    s.state = InitialState::Running;
    let info = node.container.create(s).await.expect("create running");
    let done = node
        .wait_for(
            info.id,
            Duration::from_secs(10),
            is_state(ContainerState::Exited),
        )
        .await;
    assert_eq!(done.exit_code, Some(42));
    // Exited containers can run again; the log keeps both runs.
    let again = node
        .container
        .start(Selector::Id(info.id))
        .await
        .expect("re-run");
    assert_eq!(again.state, ContainerState::Running);
    node.wait_for(
        info.id,
        Duration::from_secs(10),
        is_state(ContainerState::Exited),
    )
    .await;
    let log = node
        .container
        .logs(Selector::Id(info.id), LogsRequest::default())
        .await
        .unwrap();
    assert_eq!(log.data.matches("run\n").count(), 2, "{:?}", log.data);
    assert!(!log.running);
    node.container
        .delete(Selector::Id(info.id), false)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_after_the_timeout() {
    let node = Node::start("kill").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(
        bind_root(&root),
        "sh -c 'trap \"\" TERM; echo up; while :; do sleep 1; done'",
    );
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(400);
    let info = node.container.create(s).await.unwrap();
    node.wait_log(info.id, "up", Duration::from_secs(10)).await;
    let t = Instant::now();
    let stopped = node
        .container
        .stop(Selector::Id(info.id), None)
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "SIGKILL only after the timeout ({took:?})"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.exit_signal, Some(9));
    assert_eq!(stopped.exit_code, Some(137));
    // Deleting a live container needs force; force kills it at once.
    let mut s = spec(bind_root(&node.rootfs("r2", &[])), "sleep 1000");
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(200);
    let live = node.container.create(s).await.unwrap();
    let err = node
        .container
        .delete(Selector::Id(live.id), false)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    node.container
        .delete(Selector::Id(live.id), true)
        .await
        .expect("force delete");
    assert_eq!(
        node.container
            .get(Selector::Id(live.id))
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_joins_the_namespaces_with_output_exit_code_and_timeout() {
    let node = Node::start("exec").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), "sleep 1000");
    s.state = InitialState::Running;
    s.hostname = Some("inside".into());
    s.stop_timeout_ms = Some(100);
    let info = node.container.create(s).await.unwrap();
    let exec = exec_spec;
    let r = node
        .container
        .exec(
            Selector::Id(info.id),
            exec(
                "sh -c 'echo out $X $(pwd); echo err >&2; hostname; cat /proc/1/cmdline; exit 3'",
                None,
            ),
        )
        .await
        .expect("exec");
    assert_eq!(r.exit_code, 3);
    assert!(r.stdout.contains("out 42 /tmp"), "{:?}", r.stdout);
    assert!(
        r.stdout.contains("inside"),
        "joined the UTS namespace: {:?}",
        r.stdout
    );
    assert!(
        r.stdout.contains("sleep"),
        "PID 1 of the container's pid namespace: {:?}",
        r.stdout
    );
    assert_eq!(r.stderr.trim(), "err");

    assert_exec_timeout_kills(&node.container, info.id).await;

    node.container
        .stop(Selector::Id(info.id), None)
        .await
        .unwrap();
    let err = node
        .container
        .exec(Selector::Id(info.id), exec("true", None))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    node.container
        .delete(Selector::Id(info.id), false)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_offset_and_follow() {
    let node = Node::start("logs").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(
        bind_root(&root),
        "sh -c 'for i in 1 2 3 4 5; do echo line$i; done; read x < /dev/null; sleep 1000'",
    );
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(100);
    let info = node.container.create(s).await.unwrap();
    node.wait_log(info.id, "line5", Duration::from_secs(10))
        .await;
    let tail = node
        .container
        .logs(
            Selector::Id(info.id),
            LogsRequest {
                tail: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.data, "line4\nline5\n");
    assert!(tail.running);
    // Follow: nothing new at the end, so the call waits until the deadline...
    let t = Instant::now();
    let idle = node
        .container
        .logs(
            Selector::Id(info.id),
            LogsRequest {
                offset: Some(tail.offset),
                wait_ms: Some(300),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(idle.data, "");
    assert!(t.elapsed() >= Duration::from_millis(250));
    // ...and returns as soon as new output arrives (exec output is captured, so the
    // exec'd process appends to the init's stdout, the log, through /proc/1/fd/1).
    let writer = {
        let c = node.container.clone();
        let id = info.id;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.exec(
                Selector::Id(id),
                ExecSpec {
                    command: CommandLine::Line("sh -c 'echo late >> /proc/1/fd/1'".into()),
                    env: vec![],
                    working_dir: None,
                    user: None,
                    timeout_ms: None,
                },
            )
            .await
        })
    };
    let followed = node
        .container
        .logs(
            Selector::Id(info.id),
            LogsRequest {
                offset: Some(tail.offset),
                wait_ms: Some(10_000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(followed.data, "late\n");
    // Offsets are positions in the log's records (not in the text): past the new line,
    // and nothing after it.
    assert!(followed.offset > tail.offset);
    let after = node
        .container
        .logs(
            Selector::Id(info.id),
            LogsRequest {
                offset: Some(followed.offset),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(after.data, "");
    writer.await.unwrap().unwrap();
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_mode_with_a_stand_in_init() {
    // A busybox script standing in for systemd: it checks what systemd needs from the
    // container and powers off (exit 0) on SIGRTMIN+3 (signal 37; busybox trap has no
    // RTMIN names). Real systemd images are too heavy for CI.
    let init = "#!/bin/sh\n\
        [ \"$container\" = imagebus ] || { echo no-container-env; exit 3; }\n\
        grep -q ' /run tmpfs ' /proc/mounts || { echo no-run-tmpfs; exit 4; }\n\
        grep -q ' /tmp tmpfs ' /proc/mounts || { echo no-tmp-tmpfs; exit 5; }\n\
        [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || { echo no-cgroup-view; exit 6; }\n\
        trap 'echo got-rtmin3; exit 0' 37\n\
        echo booted\n\
        while :; do sleep 1 & wait $!; done\n";
    let node = Node::start("sysd").await;
    let root = node.rootfs("r", &[("sbin/init", init, 0o755)]);
    let mut s = spec(bind_root(&root), "/sbin/init");
    s.systemd = true;
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(10_000);
    let info = node
        .container
        .create(s)
        .await
        .expect("create systemd-mode container");
    let log = node
        .wait_log(info.id, "booted", Duration::from_secs(10))
        .await;
    assert!(!log.contains("no-"), "{log}");
    let r = node
        .container
        .exec(
            Selector::Id(info.id),
            ExecSpec {
                command: CommandLine::Line("sh -c 'touch /sys/fs/cgroup/memory/probe 2>&1; grep cgroup /proc/mounts | head -3'".into()),
                env: vec![],
                working_dir: None,
                user: None,
                timeout_ms: None,
            },
        )
        .await
        .unwrap();
    assert!(
        r.stdout.contains(" rw,") || r.stdout.contains(" rw "),
        "writable cgroup view: {}",
        r.stdout
    );
    let t = Instant::now();
    let stopped = node
        .container
        .stop(Selector::Id(info.id), None)
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped by SIGRTMIN+3, not by the SIGKILL fallback"
    );
    assert_eq!(stopped.exit_code, Some(0));
    node.wait_log(info.id, "got-rtmin3", Duration::from_secs(5))
        .await;
    node.container
        .delete(Selector::Id(info.id), false)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_typed_errors_and_leave_nothing() {
    let node = Node::start("bad").await;
    let root = node.rootfs("r", &[("bin/notexec", "#!/bin/sh\necho hi\n", 0o644)]);
    let check = |code: ErrorCode, needle: &'static str| {
        move |r: Result<imagebus_schema::container::ContainerInfo, imagebus_bus::RemoteError>| {
            let e = r.expect_err("must fail");
            assert_eq!(e.code, code, "{e}");
            assert!(e.message.contains(needle), "{needle:?} not in {e}");
        }
    };
    check(ErrorCode::InvalidArgument, "missing")(
        node.container.create(spec(bind_root(&root), "")).await,
    );
    check(ErrorCode::InvalidArgument, "not executable")(
        node.container
            .create(spec(bind_root(&root), "/bin/notexec"))
            .await,
    );
    check(ErrorCode::InvalidArgument, "does not exist")(
        node.container.create(spec(bind_root(&root), "/nope")).await,
    );
    check(ErrorCode::InvalidArgument, "not found in PATH")(
        node.container
            .create(spec(bind_root(&root), "nope-cmd"))
            .await,
    );
    let mut s = spec(bind_root(&root), "sleep 1");
    s.network = Network::Namespace(format!("ibt-missing-{}", std::process::id()));
    check(ErrorCode::NotFound, "network namespace")(node.container.create(s).await);
    let mut s = spec(bind_root(&root), "sleep 1");
    s.network = Network::Namespace("../../etc".into());
    check(ErrorCode::InvalidArgument, "network namespace")(node.container.create(s).await);

    let mut s = spec(bind_root(&root), "sleep 1000");
    s.name = Some("same".into());
    let first = node.container.create(s.clone()).await.unwrap();
    check(ErrorCode::Conflict, "already taken")(node.container.create(s).await);
    node.container
        .delete(Selector::Id(first.id), true)
        .await
        .unwrap();

    // Nothing left: no containers, mounts, runtime state, cgroups or container dirs.
    assert!(node
        .container
        .list(ContainerFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(node.mount.list().await.unwrap().is_empty());
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(node.cfg.runtime_root())
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    assert_eq!(
        cgroups_of(&node.cfg.instance),
        Vec::<std::path::PathBuf>::new(),
        "cgroups left"
    );
    let dirs: Vec<_> = std::fs::read_dir(&node.cfg.state_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.path())
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");
}

/// Issue 10, defect 8: an init that ignores TERM, stopped with a huge timeout, stays
/// `stopping`, and that `Stop` answers `Timeout` before its caller's deadline; a later
/// stop with a short timeout kills it at once, and so does a forced delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_stuck_on_a_huge_timeout_is_escalated_by_a_shorter_stop_or_a_forced_delete() {
    let node = Node::start("stuck").await;
    let mut ids = Vec::new();
    for name in ["r1", "r2"] {
        let mut s = spec(
            bind_root(&node.rootfs(name, &[])),
            "sh -c 'trap \"\" TERM; echo up; while :; do sleep 1; done'",
        );
        s.state = InitialState::Running;
        let info = node.container.create(s).await.unwrap();
        node.wait_log(info.id, "up", Duration::from_secs(10)).await;
        let asked = Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            imagebus_bus::deadline::scope(
                Some(asked + Duration::from_secs(2)),
                node.container
                    .stop(Selector::Id(info.id), Some(u64::MAX / 2)),
            ),
        )
        .await
        .expect("Stop held its caller past its deadline")
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::Timeout, "{err}");
        assert!(asked.elapsed() < Duration::from_secs(2));
        let now = node.container.get(Selector::Id(info.id)).await.unwrap();
        assert_eq!(now.state, ContainerState::Stopping);
        ids.push(info.id);
    }
    let t = Instant::now();
    let stopped = tokio::time::timeout(
        Duration::from_secs(15),
        node.container.stop(Selector::Id(ids[0]), Some(200)),
    )
    .await
    .expect("a shorter stop never escalated")
    .unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.exit_signal, Some(9));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let t = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(15),
        node.container.delete(Selector::Id(ids[1]), true),
    )
    .await
    .expect("a forced delete never escalated")
    .expect("forced delete");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    node.container
        .delete(Selector::Id(ids[0]), false)
        .await
        .unwrap();
}

/// Issue 10, defect 10: exec of a command that is not there is `InvalidArgument` naming
/// it, not `Conflict: container is exited`; the container keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_of_a_missing_command_is_invalid_argument() {
    let node = Node::start("nocmd").await;
    let mut s = spec(bind_root(&node.rootfs("r", &[])), "sleep 1000");
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(100);
    let info = node.container.create(s).await.unwrap();
    for cmd in ["nosuchcmd", "/nosuch/cmd", "/etc/passwd"] {
        let err = node
            .container
            .exec(Selector::Id(info.id), exec_spec(cmd, None))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{cmd}: {err}");
        let what = cmd.rsplit('/').next().unwrap_or(cmd);
        assert!(err.message.contains(what), "{cmd}: {err}");
    }
    let now = node.container.get(Selector::Id(info.id)).await.unwrap();
    assert_eq!(now.state, ContainerState::Running);
    let r = node
        .container
        .exec(Selector::Id(info.id), exec_spec("true", None))
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0);
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();
}

/// Issue 10, defect 10: container logs had no cap (237 MB in 5 s). With a rotation size,
/// the monitor's log capture rotates a log that outgrows it (`<log>.1`; the default keeps
/// two files), on a real runc container writing without pause, and the spools it reads
/// from give their disk space back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_log_is_capped_by_rotation() {
    const CAP: u64 = 1 << 20;
    let mut node = Node::start("logcap").await;
    node.cfg.log_max_bytes = Some(CAP);
    node.restart_container_actor().await;
    let mut s = spec(
        bind_root(&node.rootfs("r", &[])),
        // 64 KiB per write (4096 lines), as often as a 50 ms pause lets it: fast enough to
        // pass the size many times, slow enough to keep the test's disk use small.
        "sh -c 'echo started; while :; do yes 0123456789abcdef | head -c 65536; sleep 0.05; done'",
    );
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(100);
    let info = node.container.create(s).await.unwrap();
    let log = info.log_file.clone();
    let rotated = imagebus_sys::logfile::rotated(&log, 1);
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while size(&rotated) == 0 {
        assert!(
            Instant::now() < deadline,
            "never rotated; the log has {} bytes",
            size(&log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It keeps writing; no file passes the size (the writer rotates before a record
    // would), there are never more than two, and the spools hold little on disk.
    let (mut biggest, mut spooled) = (0, 0);
    let spool = log.with_extension("stdout");
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        biggest = biggest.max(size(&log)).max(size(&rotated));
        assert!(
            !imagebus_sys::logfile::rotated(&log, 2).exists(),
            "a third file"
        );
        use std::os::unix::fs::MetadataExt;
        spooled = spooled.max(std::fs::metadata(&spool).unwrap().blocks() * 512);
    }
    assert!(biggest <= CAP, "a log file reached {biggest} bytes");
    assert!(spooled < 8 << 20, "the spool holds {spooled} bytes on disk");
    let chunk = node
        .container
        .logs(Selector::Id(info.id), LogsRequest::default())
        .await
        .unwrap();
    assert!(chunk.running);
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();
    assert!(
        !log.exists() && !rotated.exists() && !spool.exists(),
        "delete removes the log files and the spools"
    );
}
