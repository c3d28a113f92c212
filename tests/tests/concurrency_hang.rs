//! Issue 7, "hanging monitor": container creates whose root filesystem is an overlay over
//! an RBD image behind a Ceph monitor that accepts connections and never answers (a
//! [`BlackHole`]) hang until the attach driver gives up (the rbd-fuse path's `rbd info`
//! probe: `client_mount_timeout = 10` s, exit 110 → `Unavailable`; krbd: the kernel's
//! mount timeout, also → `Unavailable`). While they hang, `ps`, `attach list` and
//! `mount list` must answer at once and an unrelated busybox container must start; every
//! hanging create must end as `Unavailable` and leave nothing behind. Root; needs runc,
//! busybox-static, squashfs-tools, ceph-common (rbd, ceph-authtool).

use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_schema::container::{
    CommandLine, ContainerInfo, ContainerModule, ContainerSpec, InitialState,
};
use imagebus_tests::blackhole::{cephx_key, overlay_on_rbd, require_rbd_tools, BlackHole};
use imagebus_tests::bus_node::BusNode;
use imagebus_tests::daemon::{cli_command, wait_until, CliOutput};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Bus workers per module: more than the concurrent calls, so the bus is never what makes
/// a call wait (the actors are under test).
const WORKERS: u32 = 32;
/// Bound on each list while creates hang (the target is List p99 <= 20 ms).
const LIST_BOUND: Duration = Duration::from_secs(2);
/// Bound on an unrelated `imagebus run` of a busybox squashfs while creates hang.
const RUN_BOUND: Duration = Duration::from_secs(8);
/// How long a hanging create may take to fail (rbd-fuse: ~10 s; krbd: up to 60 s).
const FAIL_WITHIN: Duration = Duration::from_secs(100);
/// How many creates of the second test hang at once.
const HANGING: usize = 8;

fn hang_spec(hole: &BlackHole, key: &str, i: usize) -> ContainerSpec {
    ContainerSpec {
        name: Some(format!("hang-{i}")),
        state: InitialState::Running,
        stop_timeout_ms: Some(1000),
        ..ContainerSpec::new(
            overlay_on_rbd(&hole.monitor(), &format!("hang-{i}"), key),
            CommandLine::Argv(vec!["/bin/sleep".into(), "1000".into()]),
        )
    }
}

/// A CLI process killed on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the CLI (blocking this worker thread only) and times it.
fn timed(node: &BusNode, args: &[&str]) -> (Duration, CliOutput) {
    let t = Instant::now();
    let out = tokio::task::block_in_place(|| node.daemon.cli(args));
    (t.elapsed(), out)
}

/// While something hangs: the three lists through the CLI, the container List over the
/// bus 20 times, and `imagebus run` of a busybox container named `bystander`. Returns one
/// line per probe and the failures against the bounds.
async fn probe_while_hanging(node: &BusNode, bystander: &str) -> (Vec<String>, Vec<String>) {
    let (mut report, mut failures) = (Vec::new(), Vec::new());
    for args in [
        &["--timeout", "30s", "--json", "ps"][..],
        &["--timeout", "30s", "--json", "attach", "list"],
        &["--timeout", "30s", "--json", "mount", "list"],
    ] {
        let (took, out) = timed(node, args);
        report.push(format!("{args:?}: {took:?} ({})", out.status));
        if !out.status.success() || took > LIST_BOUND {
            failures.push(format!(
                "{args:?} took {took:?} (bound {LIST_BOUND:?}): {out:?}"
            ));
        }
    }
    let s = node.stubs(Duration::from_secs(30)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = s.container.list(Default::default()).await;
        worst = worst.max(t.elapsed());
        if let Err(e) = r {
            failures.push(format!("container List over the bus: {e:?}"));
            break;
        }
    }
    report.push(format!(
        "container List over the bus, worst of 20: {worst:?}"
    ));
    if worst > LIST_BOUND {
        failures.push(format!("container List over the bus took {worst:?}"));
    }
    let image = node.image.display().to_string();
    let (took, out) = timed(
        node,
        &[
            "--timeout",
            "60s",
            "run",
            "--name",
            bystander,
            "--image",
            &image,
            "--",
            "sleep",
            "1000",
        ],
    );
    report.push(format!("run {bystander}: {took:?} ({})", out.status));
    if !out.status.success() || took > RUN_BOUND {
        failures.push(format!(
            "run {bystander} took {took:?} (bound {RUN_BOUND:?}): {out:?}"
        ));
    }
    (report, failures)
}

/// After the hanging creates failed: only the bystanders are left, running, and the kernel
/// matches; then everything is deleted and the kernel is clean.
async fn assert_only_bystanders_then_clean(node: &BusNode, bystanders: &[&str]) {
    let s = node.stubs(Duration::from_secs(30)).await;
    let l = node.lists(&s).await;
    let mut names: Vec<String> = l.containers.iter().filter_map(|c| c.name.clone()).collect();
    names.sort();
    assert_eq!(
        names, bystanders,
        "containers after the hang: {:#?}",
        l.containers
    );
    assert!(
        l.attachments.iter().all(|a| a.driver == "loop"),
        "an RBD attachment was left: {:#?}",
        l.attachments
    );
    assert_eq!(
        l.attachments.len(),
        bystanders.len(),
        "{:#?}",
        l.attachments
    );
    assert_eq!(l.mounts.len(), 2 * bystanders.len(), "{:#?}", l.mounts);
    node.assert_kernel_matches(&l);
    node.delete_all(&s).await;
    node.assert_clean(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hanging_create_blocks_no_list_and_no_other_create() {
    require_rbd_tools();
    let node = BusNode::start("ibhang1-", WORKERS);
    let hole = BlackHole::start();
    let key = cephx_key();
    let spec_file = node.root().join("hang.json");
    let spec = serde_json::to_string(&hang_spec(&hole, &key, 0)).unwrap();
    std::fs::write(&spec_file, spec).unwrap();

    let started = Instant::now();
    let mut create = ChildGuard(
        cli_command()
            .args([
                "--broker",
                &node.redis.url(),
                "--timeout",
                "150s",
                "run",
                "--spec",
            ])
            .arg(format!("@{}", spec_file.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning imagebus run"),
    );
    assert!(
        wait_until(Duration::from_secs(30), || hole.accepted() >= 1),
        "the create never reached the monitor; daemon log:\n{}",
        node.daemon.log()
    );

    let (report, failures) = probe_while_hanging(&node, "bystander").await;
    let still_hanging = create.0.try_wait().unwrap().is_none();
    eprintln!(
        "while one create hangs ({:?} in):\n  {}",
        started.elapsed(),
        report.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "while one create hangs:\n{}",
        failures.join("\n")
    );
    assert!(
        still_hanging,
        "the create ended before the probes did; they did not measure a hang"
    );

    let mut status = None;
    wait_until(FAIL_WITHIN, || {
        status = create.0.try_wait().unwrap();
        status.is_some()
    });
    let status =
        status.unwrap_or_else(|| panic!("the hanging create did not end within {FAIL_WITHIN:?}"));
    let out: CliOutput = create.0.wait_with_output_guarded();
    eprintln!(
        "hanging create ended after {:?}: {status} {}",
        started.elapsed(),
        out.stderr.trim()
    );
    assert_eq!(
        status.code(),
        Some(1),
        "exit status of an Unavailable error the module reported: {out:?}"
    );
    assert!(out.stderr.starts_with("error: Unavailable: "), "{out:?}");
    assert!(!out.stderr.contains(&key), "the key was echoed");
    assert_only_bystanders_then_clean(&node, &["bystander"]).await;
}

/// Reads the rest of a finished child's output.
trait Finished {
    fn wait_with_output_guarded(&mut self) -> CliOutput;
}

impl Finished for Child {
    fn wait_with_output_guarded(&mut self) -> CliOutput {
        use std::io::Read;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        CliOutput {
            status: self.wait().expect("reaping imagebus run"),
            stdout,
            stderr,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_hanging_creates_block_no_list_and_no_other_create() {
    require_rbd_tools();
    let node = BusNode::start("ibhang8-", WORKERS);
    let hole = BlackHole::start();
    let key = cephx_key();
    let s = node.stubs(FAIL_WITHIN + Duration::from_secs(30)).await;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..HANGING {
        let (c, spec) = (s.container.clone(), hang_spec(&hole, &key, i));
        tasks.push(tokio::spawn(async move {
            let r: Result<ContainerInfo, RemoteError> = c.create(spec).await;
            (r, started.elapsed())
        }));
    }
    assert!(
        wait_until(Duration::from_secs(30), || hole.accepted() >= 1),
        "no create reached the monitor; daemon log:\n{}",
        node.daemon.log()
    );

    let (report, failures) = probe_while_hanging(&node, "bystander").await;
    let pending = tasks.iter().filter(|t| !t.is_finished()).count();
    eprintln!(
        "while {HANGING} creates hang ({:?} in, {pending} pending, monitor saw {} connections):\n  {}",
        started.elapsed(),
        hole.accepted(),
        report.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "while {HANGING} creates hang:\n{}",
        failures.join("\n")
    );
    assert!(
        pending > 0,
        "every create ended before the probes did; they measured no hang"
    );

    let mut outcomes = Vec::new();
    for t in tasks {
        let left = FAIL_WITHIN.saturating_sub(started.elapsed());
        let (r, took) = tokio::time::timeout(left, t)
            .await
            .unwrap_or_else(|_| panic!("a hanging create did not end within {FAIL_WITHIN:?}"))
            .expect("create task");
        outcomes.push((r.map(|i| i.id), took));
    }
    eprintln!("outcomes: {outcomes:?}");
    for (r, took) in &outcomes {
        match r {
            Err(e) => assert_eq!(e.code, ErrorCode::Unavailable, "{e:?} after {took:?}"),
            Ok(id) => panic!("a create through a dead monitor succeeded: container {id}"),
        }
    }
    // Side by side, the last one fails about when the first does (one after another it
    // would take eight times as long).
    let slowest = outcomes.iter().map(|o| o.1).max().unwrap();
    let fastest = outcomes.iter().map(|o| o.1).min().unwrap();
    assert!(
        slowest <= fastest * 2 + Duration::from_secs(5),
        "the {HANGING} hanging creates failed between {fastest:?} and {slowest:?}: they ran one after another"
    );
    assert_only_bystanders_then_clean(&node, &["bystander"]).await;
}
