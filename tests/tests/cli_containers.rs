//! The container commands (`run`, `ps`, `logs`, `exec`, `events`, `stop`, `rm`, `inspect`)
//! against a real imagebusd with real runc, loop devices, squashfs and overlayfs. Root.

use imagebus_tests::cli_node::CliNode;
use imagebus_tests::daemon::{cli_command, wait_until, Daemon};
use imagebus_tests::image::busybox_squashfs;
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::{loops_under, mounts_under, KernelScratch};
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

/// The node of these tests: [`CliNode`] (redis, scratch directory with the busybox image,
/// imagebusd).
type Node = CliNode;

fn node() -> Node {
    CliNode::start("ibcli")
}

/// SIGKILLs the daemon while container `name` (init `pid`) runs, checks the container
/// outlived it, restarts the daemon and checks it finds the container running again.
fn kill9_and_restart_daemon(n: &mut Node, name: &str, pid: u64) {
    n.daemon.kill9();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container died with the daemon"
    );
    n.daemon.restart();
    let info = n.json(&["--timeout", "10s", "inspect", name]);
    assert_eq!(info["state"], "running", "{info}");
    assert_eq!(info["pid"], pid);
}

fn one_error_line(stderr: &str, prefix: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be one line: {stderr:?}");
    assert!(
        lines[0].starts_with(prefix),
        "expected {prefix:?}, got {:?}",
        lines[0]
    );
}

#[test]
fn run_ps_logs_exec_events_stop_rm() {
    let n = node();
    let id = n.ok(&[
        "run",
        "--name",
        "web",
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "echo hello from web; sleep 1000",
    ]);
    let id: u64 = id.trim().parse().expect("run prints the id");

    // ps: table and JSON.
    let table = n.ok(&["ps"]);
    let line = table
        .lines()
        .find(|l| l.contains("web"))
        .expect("web in ps");
    assert!(
        line.starts_with(&id.to_string()) && line.contains("running"),
        "{table}"
    );
    let ps = n.json(&["ps", "--state", "running"]);
    assert_eq!(ps[0]["name"], "web");
    assert!(ps[0]["pid"].as_u64().is_some());

    // Its rootfs is an overlay over a squashfs on a loop device backed by our image.
    let mounts = n.json(&["mount", "list"]);
    let kinds: Vec<&str> = mounts
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["overlay", "image"]);
    assert_eq!(loops_under(n.scratch.path()).len(), 1);

    // logs (poll: the init writes asynchronously).
    assert!(
        wait_until(Duration::from_secs(10), || n
            .ok(&["logs", "web"])
            .contains("hello from web")),
        "log never showed the greeting"
    );
    assert_eq!(
        n.ok(&["logs", "--tail", "1", "web"]).trim(),
        "hello from web"
    );

    // exec: output and exit codes.
    assert_eq!(
        n.ok(&["exec", "web", "--", "cat", "/etc/hostname"]).trim(),
        "imagebus-test"
    );
    let out = n
        .daemon
        .cli(&["exec", "web", "sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(out.stderr.trim(), "oops");

    // events: subscribe, wait until the subscription is live, then stop.
    let mut events = cli_command()
        .args(["--broker", &n.redis.url(), "events", "--count", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        n.redis
            .command(&["PUBSUB", "NUMSUB", "container.container@1.Events"])
            .is_ok_and(|r| r.ends_with(":1\r\n") || r.contains("\r\n:1\r\n"))
    }));
    // A running container cannot be removed without --force.
    let out = n.daemon.cli(&["rm", "web"]);
    assert_eq!(out.status.code(), Some(6), "Conflict: {out:?}");
    one_error_line(&out.stderr, "error: Conflict: ");

    let stopped = n.ok(&["stop", "-t", "1s", "web"]);
    assert!(stopped.contains("exited"), "{stopped}");
    let status = events.wait().unwrap();
    assert!(status.success());
    let mut text = String::new();
    events
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let states: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(3).unwrap_or(""))
        .collect();
    assert_eq!(states, ["stopping", "exited"], "{text}");

    let info = n.json(&["inspect", "web"]);
    assert_eq!(info["state"], "exited");
    n.ok(&["rm", "web"]);
    let out = n.daemon.cli(&["inspect", "web"]);
    one_error_line(&out.stderr, "error: NotFound: ");
    n.assert_clean();
}

#[test]
fn logs_follow_until_the_container_exits() {
    let n = node();
    n.ok(&[
        "run",
        "--name",
        "counter",
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.3; done",
    ]);
    let out = n.ok(&["--timeout", "20s", "logs", "-f", "counter"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["line1", "line2", "line3"]);
    assert!(wait_until(Duration::from_secs(10), || n
        .json(&["inspect", "counter"])["state"]
        == "exited"));
    assert_eq!(n.json(&["inspect", "counter"])["exit_code"], 0);
    n.ok(&["rm", "counter"]);
    n.assert_clean();
}

#[test]
fn bad_runs_are_typed_errors_that_leave_nothing() {
    let n = node();
    n.ok(&[
        "run",
        "--name",
        "one",
        "--created",
        "--image",
        n.image(),
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(n.json(&["inspect", "one"])["state"], "created");

    // Name clash.
    let out = n
        .daemon
        .cli(&["run", "--name", "one", "--image", n.image(), "--", "true"]);
    assert_eq!(out.status.code(), Some(6), "Conflict: {out:?}");
    one_error_line(&out.stderr, "error: Conflict: ");
    // An init that does not exist in the image.
    let out = n
        .daemon
        .cli(&["run", "--image", n.image(), "--", "/no/such/init"]);
    assert_eq!(out.status.code(), Some(2), "InvalidArgument: {out:?}");
    one_error_line(&out.stderr, "error: InvalidArgument: ");
    // An image file that does not exist.
    let out = n
        .daemon
        .cli(&["run", "--image", "/nonexistent/x.sqsh", "--", "true"]);
    one_error_line(&out.stderr, "error: ");
    // Bad --spec JSON is rejected before anything is sent.
    let out = n.daemon.cli(&["run", "--spec", "{\"nope\": 1}"]);
    one_error_line(
        &out.stderr,
        "error: InvalidArgument: --spec is not a valid spec",
    );

    // start, then rm --force stops and deletes.
    assert!(n.ok(&["start", "one"]).contains("running"));
    n.ok(&["rm", "--force", "one"]);
    n.assert_clean();
}

#[test]
fn containers_survive_kill9_of_the_daemon() {
    let mut n = node();
    let img = n.image().to_string();
    n.ok(&[
        "run",
        "--name",
        "survivor",
        "--image",
        &img,
        "--",
        "sh",
        "-c",
        "echo up; trap 'exit 0' TERM; while :; do sleep 1; done",
    ]);
    let pid = n.json(&["inspect", "survivor"])["pid"]
        .as_u64()
        .expect("pid");

    kill9_and_restart_daemon(&mut n, "survivor", pid);
    assert_eq!(
        n.ok(&["exec", "survivor", "--", "echo", "still here"])
            .trim(),
        "still here"
    );
    // The trap makes SIGTERM a clean exit: stop reports exit code 0 without escalation.
    let stopped = n.ok(&["stop", "-t", "10s", "survivor"]);
    assert!(stopped.contains("exited (exit 0)"), "{stopped}");
    n.ok(&["rm", "survivor"]);
    n.assert_clean();
}

/// `imagebusd --runtime crun`, end to end: the container is crun's (its state is under
/// crun's root, none under runc's), answers exec, survives kill -9 of the daemon, which
/// comes back on crun and stops and removes it.
#[test]
fn imagebusd_runtime_crun_runs_survives_a_restart_and_cleans_up() {
    let crun = std::process::Command::new("crun").arg("--version").output();
    assert!(
        crun.is_ok_and(|o| o.status.success()),
        "crun is missing: apt-get install crun"
    );
    let mut n = CliNode::start_with("ibcli", &["--runtime", "crun"]);
    let img = n.image().to_string();
    n.ok(&[
        "run",
        "--name",
        "on-crun",
        "--image",
        &img,
        "--",
        "sh",
        "-c",
        "echo up; trap 'exit 0' TERM; while :; do sleep 1; done",
    ]);
    let info = n.json(&["inspect", "on-crun"]);
    let runtime_id = info["runtime_id"].as_str().expect("runtime_id").to_string();
    let pid = info["pid"].as_u64().expect("pid");
    let roots = n.daemon.run_dir().join("container");
    let crun_root = roots.join("crun");
    assert!(
        crun_root.join(&runtime_id).is_dir(),
        "no crun state for {runtime_id} under {crun_root:?}"
    );
    assert!(!roots.join("runc").join(&runtime_id).exists());
    let state = std::process::Command::new("crun")
        .arg("--root")
        .arg(&crun_root)
        .args(["state", &runtime_id])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap_or_default();
    assert_eq!(state["status"], "running", "crun state: {state}");
    assert_eq!(state["pid"].as_u64(), Some(pid));
    assert_eq!(
        n.ok(&["exec", "on-crun", "--", "echo", "via crun"]).trim(),
        "via crun"
    );

    kill9_and_restart_daemon(&mut n, "on-crun", pid);
    let stopped = n.ok(&["stop", "-t", "10s", "on-crun"]);
    assert!(stopped.contains("exited (exit 0)"), "{stopped}");
    n.ok(&["rm", "on-crun"]);
    assert!(
        !crun_root.join(&runtime_id).exists(),
        "crun state left behind"
    );
    n.assert_clean();
}

#[test]
fn split_deployment_runs_a_container_across_three_processes() {
    let redis = RedisFixture::start();
    let scratch = KernelScratch::new("ibsplit");
    let image = scratch.path().join("busybox.sqsh");
    std::fs::copy(busybox_squashfs(), &image).unwrap();
    let url = redis.url();
    // Dropped in reverse: container first (its Drop removes containers), then mount, attach.
    let attach = Daemon::spawn_in(scratch.path(), Some(&url), &["--only", "attach"]);
    attach.wait_ready();
    let mount = Daemon::spawn_in(scratch.path(), Some(&url), &["--only", "mount"]);
    mount.wait_ready();
    let container = Daemon::spawn_in(scratch.path(), Some(&url), &["--only", "container"]);
    container.wait_ready();
    let out = container.cli(&["--timeout", "20s", "status", "container"]);
    assert!(out.status.success(), "{out:?}\n{}", container.log());

    let run = container.cli(&[
        "run",
        "--name",
        "split",
        "--image",
        image.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo split ok; sleep 1000",
    ]);
    assert!(
        run.status.success(),
        "{run:?}\n{}\n{}",
        container.log(),
        mount.log()
    );
    let exec = container.cli(&["exec", "split", "--", "cat", "/etc/hostname"]);
    assert_eq!(exec.stdout.trim(), "imagebus-test", "{exec:?}");
    // The mount process holds the rootfs, the attach process the loop device.
    assert_eq!(mounts_under(scratch.path()).len(), 2);
    assert_eq!(loops_under(scratch.path()).len(), 1);

    let rm = container.cli(&["--timeout", "30s", "rm", "--force", "split"]);
    assert!(rm.status.success(), "{rm:?}");
    assert!(mounts_under(scratch.path()).is_empty());
    assert!(loops_under(scratch.path()).is_empty());
    drop(container);
    drop(mount);
    drop(attach);
}
