//! The default seccomp profile and `noNewPrivileges` on the real runc and kernel: a plain
//! container is filtered (`Seccomp: 2`, no new privileges) and cannot create a user
//! namespace, CAP_SYS_ADMIN lifts the namespace rules, and `security` opts out per
//! container.

mod container_common;

use container_common::*;
use imagebus_schema::container::{
    CommandLine, ContainerModule, ExecSpec, InitialState, SeccompMode, SecuritySpec,
};
use imagebus_schema::Selector;

fn sh(cmd: &str) -> ExecSpec {
    ExecSpec {
        command: CommandLine::Argv(vec!["sh".into(), "-c".into(), cmd.into()]),
        env: vec![],
        working_dir: None,
        user: None,
        timeout_ms: None,
    }
}

/// `(Seccomp, NoNewPrivs)` of `/proc/<pid>/status`.
fn confinement(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{k} missing from {status}"))
    };
    (field("Seccomp:"), field("NoNewPrivs:"))
}

/// Creates a running container with `security` and `cap_add`, and returns what its init
/// and an exec of `unshare -U true` see: (init confinement, unshare's exit code).
async fn run(
    node: &Node,
    root: &std::path::Path,
    security: SecuritySpec,
    cap_add: &[&str],
) -> ((String, String), i32) {
    let mut s = spec(bind_root(root), "sleep 1000");
    s.state = InitialState::Running;
    s.stop_timeout_ms = Some(100);
    s.security = security;
    s.capabilities.add = cap_add.iter().map(|c| c.to_string()).collect();
    let info = node.container.create(s).await.expect("create");
    let seen = confinement(info.pid.expect("init pid"));
    let r = node
        .container
        .exec(Selector::Id(info.id), sh("unshare -U true 2>&1"))
        .await
        .expect("exec");
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .expect("delete");
    (seen, r.exit_code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_profile_filters_and_opting_out_lifts_it() {
    let node = Node::start("seccomp").await;
    let root = node.rootfs("r", &[]);

    let (seen, unshare) = run(&node, &root, SecuritySpec::default(), &[]).await;
    assert_eq!(
        seen,
        ("2".into(), "1".into()),
        "filtered, no new privileges"
    );
    assert_ne!(
        unshare, 0,
        "a user namespace is refused by the default profile"
    );

    // CAP_SYS_ADMIN lifts the namespace rules (as Docker's includes.caps does).
    let (seen, unshare) = run(&node, &root, SecuritySpec::default(), &["CAP_SYS_ADMIN"]).await;
    assert_eq!(seen.0, "2");
    assert_eq!(unshare, 0, "CAP_SYS_ADMIN may unshare");

    // Per-container opt-out: no filter at all, and noNewPrivileges off on request.
    let open = SecuritySpec {
        seccomp: SeccompMode::Unconfined,
        no_new_privileges: Some(false),
    };
    let (seen, unshare) = run(&node, &root, open, &[]).await;
    assert_eq!(seen, ("0".into(), "0".into()), "unconfined");
    assert_eq!(unshare, 0, "without the filter the same call succeeds");
}
