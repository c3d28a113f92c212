//! Container features on the real runc and kernel: joining a named network namespace,
//! extra bind mounts, cpu/memory limits seen from inside, and the nested cascade
//! (container → overlay → squashfs image → loop device) collected on delete.

mod container_common;

use container_common::*;
use imagebus_bus::ErrorCode;
use imagebus_schema::attach::AttachModule;
use imagebus_schema::container::{
    BindSpec, CommandLine, ContainerModule, ContainerState, ExecSpec, InitialState, Network,
    Resources,
};
use imagebus_schema::mount::MountModule;
use imagebus_schema::Selector;
use imagebus_tests::rootfs::{loops_under, mounts_under};
use std::time::Duration;

fn sh(cmd: &str) -> ExecSpec {
    ExecSpec {
        command: CommandLine::Argv(vec!["sh".into(), "-c".into(), cmd.into()]),
        env: vec![],
        working_dir: None,
        user: None,
        timeout_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_a_named_network_namespace() {
    let node = Node::start("netns").await;
    let ns = Netns::new();
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), "sleep 1000");
    s.state = InitialState::Running;
    s.network = Network::Namespace(ns.0.clone());
    s.stop_timeout_ms = Some(100);
    let info = node.container.create(s).await.expect("create in netns");
    let pid = info.pid.expect("init pid");
    let inside = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let named = std::fs::metadata(format!("/var/run/netns/{}", ns.0)).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(inside.to_string_lossy(), format!("net:[{}]", named.ino()));
    let r = node
        .container
        .exec(Selector::Id(info.id), sh("ip addr show lo"))
        .await
        .unwrap();
    assert!(r.stdout.contains("127.0.0.77"), "{}", r.stdout);
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();

    // Private: a fresh namespace with loopback only.
    let mut s = spec(bind_root(&root), "sleep 1000");
    s.state = InitialState::Running;
    s.network = Network::Private;
    s.stop_timeout_ms = Some(100);
    let info = node.container.create(s).await.unwrap();
    let r = node
        .container
        .exec(Selector::Id(info.id), sh("ip -o link | wc -l"))
        .await
        .unwrap();
    assert_eq!(r.stdout.trim(), "1", "only lo");
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mounts_and_limits_are_visible_inside() {
    let node = Node::start("binds").await;
    let root = node.rootfs("r", &[]);
    let data = node.dir().join("hostdata");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "from-host\n").unwrap();
    let rw = node.dir().join("hostrw");
    std::fs::create_dir_all(&rw).unwrap();
    let mut s = spec(bind_root(&root), "sleep 1000");
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(100);
    s.binds = vec![
        BindSpec {
            source: data.clone(),
            target: "/data/ro".into(),
            read_only: true,
        },
        BindSpec {
            source: rw.clone(),
            target: "/data/rw".into(),
            read_only: false,
        },
    ];
    s.resources = Resources {
        cpu_millis: Some(500),
        memory_bytes: Some(64 << 20),
        pids: None,
    };
    let info = node.container.create(s).await.expect("create");
    let r = node
        .container
        .exec(Selector::Id(info.id), sh("cat /data/ro/hello.txt; touch /data/ro/x 2>/dev/null && echo ro-writable; echo w > /data/rw/out"))
        .await
        .unwrap();
    assert_eq!(r.stdout, "from-host\n", "{r:?}");
    assert_eq!(std::fs::read_to_string(rw.join("out")).unwrap(), "w\n");
    let r = node
        .container
        .exec(
            Selector::Id(info.id),
            sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"),
        )
        .await
        .unwrap();
    let vals: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(
        vals,
        [(64u64 << 20).to_string().as_str(), "50000", "100000"],
        "{r:?}"
    );
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();

    let mut s = spec(bind_root(&root), "sleep 1");
    s.binds = vec![BindSpec {
        source: node.dir().join("missing"),
        target: "/x".into(),
        read_only: false,
    }];
    assert_eq!(
        node.container.create(s).await.unwrap_err().code,
        ErrorCode::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_inline_chain_cascades_away_on_delete() {
    let node = Node::start("cascade").await;
    let dir = node.dir().join("img.d");
    busybox_rootfs(&dir, &[]);
    let image = node.dir().join("img.sqsh");
    squashfs(&dir, &image);
    let mut s = spec(
        overlay_on_image(&image),
        "sh -c 'echo written > /root/f; cat /root/f; sleep 1000'",
    );
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(100);
    let info = node
        .container
        .create(s)
        .await
        .expect("create on overlay/squashfs/loop");
    node.wait_log(info.id, "written", Duration::from_secs(10))
        .await;
    assert_eq!(node.mount.list().await.unwrap().len(), 2, "overlay + image");
    assert_eq!(node.attach.list().await.unwrap().len(), 1, "loop");
    assert_eq!(loops_under(node.dir()).len(), 1);

    // Delete of a running container without force is refused and changes nothing.
    assert_eq!(
        node.container
            .delete(Selector::Id(info.id), false)
            .await
            .unwrap_err()
            .code,
        ErrorCode::Conflict
    );
    assert_eq!(
        node.container
            .get(Selector::Id(info.id))
            .await
            .unwrap()
            .state,
        ContainerState::Running
    );

    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .expect("force delete");
    assert!(node.mount.list().await.unwrap().is_empty());
    assert!(node.attach.list().await.unwrap().is_empty());
    let run = node.dir().join("run");
    assert!(mounts_under(&run).is_empty(), "{:?}", mounts_under(&run));
    assert!(loops_under(node.dir()).is_empty());
    assert!(cgroups_of(&node.cfg.instance).is_empty());
}

/// Tries to read `path` as the unprivileged uid/gid 65534 (nobody); the error text, if any.
fn read_as_nobody(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("cat")
        .arg(path)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("running cat as nobody");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_user_cannot_read_a_containers_spec_or_env() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::start("private").await;
    // Open the scratch directory to everyone, as /var/lib is: only our modes protect.
    std::fs::set_permissions(node.scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), "sleep 1000");
    s.state = InitialState::Running;
    s.env = vec!["SECRET=hunter2".into()];
    s.stop_timeout_ms = Some(100);
    let info = node.container.create(s).await.expect("create");
    let dir = node.cfg.container_dir(info.id);
    let config = dir.join("bundle/config.json");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("SECRET=hunter2"));
    // The control: nobody can read a world-readable file beside them.
    let open = node.scratch.path().join("public.txt");
    std::fs::write(&open, "x").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    read_as_nobody(&open).expect("the control file is readable by nobody");
    for f in [config, dir.join("record.json")] {
        let err = read_as_nobody(&f).expect_err("nobody read a container's spec");
        assert!(err.contains("Permission denied"), "{f:?}: {err}");
    }
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();
}
