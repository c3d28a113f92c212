//! Health checks (`imagebus run --health-*`) against a real imagebusd with real runc,
//! loop devices, squashfs and overlayfs: statuses in `inspect` and `ps`, their events, the
//! restart of an unhealthy container by its policy, a hanging check killed at its timeout
//! while `ps` stays fast, and checks that go on across a daemon restart. Root.

use imagebus_tests::cli_node::CliNode as Node;
use imagebus_tests::daemon::{cli_command, wait_until};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `imagebus --json events` running in the background, its lines collected; killed and
/// reaped on drop.
struct Events {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Events {
    fn start(n: &Node) -> Self {
        let mut child = cli_command()
            .args(["--broker", &n.redis.url(), "--json", "events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("imagebus events");
        let out = child.stdout.take().expect("its stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Self { child, lines }
    }

    /// The events of container `name` so far.
    fn of(&self, name: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == name)
            .cloned()
            .collect()
    }

    /// Waits (with a deadline) until an event of `name` satisfies `f`.
    fn wait_for(&self, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        let ok = wait_until(Duration::from_secs(30), || {
            found = self.of(name).into_iter().find(|e| f(e));
            found.is_some()
        });
        assert!(ok, "no event {what} for {name}: {:#?}", self.of(name));
        found.unwrap_or_default()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The subscription is live once a container's first event arrives through it.
fn events_ready(n: &Node, ev: &Events) {
    n.ok(&["run", "--name", "probe", "--image", n.image(), "--", "true"]);
    ev.wait_for("probe", "created", |e| e["state"] == "created");
    n.ok(&["--timeout", "20s", "rm", "-f", "probe"]);
}

/// `inspect NAME` once `f` holds for it (polled, with a deadline).
fn inspect_until(n: &Node, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let mut info = Value::Null;
    let ok = wait_until(Duration::from_secs(30), || {
        info = n.json(&["inspect", name]);
        f(&info)
    });
    assert!(ok, "{name} never got {what}: {info:#}");
    info
}

fn health_seq(events: &[Value]) -> Vec<String> {
    let mut seq: Vec<String> = Vec::new();
    for e in events {
        if let Some(h) = e["health"].as_str() {
            if seq.last().map(String::as_str) != Some(h) {
                seq.push(h.to_string());
            }
        }
    }
    seq
}

#[test]
fn health_checks_report_healthy_and_unhealthy_with_events_and_survive_a_daemon_restart() {
    let mut n = Node::start("ibhealth");
    let ev = Events::start(&n);
    events_ready(&n, &ev);
    let image = n.image().to_string();
    n.ok(&[
        "run",
        "--name",
        "good",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--image",
        &image,
        "--",
        "sleep",
        "1000",
    ]);
    n.ok(&[
        "run",
        "--name",
        "bad",
        "--health-cmd",
        "sh -c 'echo sick; exit 3'",
        "--health-interval",
        "200ms",
        "--health-retries",
        "3",
        "--image",
        &image,
        "--",
        "sleep",
        "1000",
    ]);
    let good = inspect_until(&n, "good", "healthy", |i| {
        i["health"]["status"] == "healthy"
    });
    assert_eq!(good["health"]["failing_streak"], 0, "{good:#}");
    assert_eq!(good["health"]["last_exit_code"], 0, "{good:#}");
    assert_eq!(good["spec"]["health"]["interval_ms"], 200, "{good:#}");
    let bad = inspect_until(&n, "bad", "unhealthy", |i| {
        i["health"]["status"] == "unhealthy"
    });
    assert_eq!(bad["state"], "running", "policy no: only reported {bad:#}");
    assert!(
        bad["health"]["failing_streak"].as_u64().unwrap() >= 3,
        "{bad:#}"
    );
    assert_eq!(bad["health"]["last_exit_code"], 3, "{bad:#}");
    assert!(
        bad["health"]["last_output"]
            .as_str()
            .unwrap()
            .contains("sick"),
        "{bad:#}"
    );
    // Events: a running event for each transition, in order.
    ev.wait_for("bad", "unhealthy", |e| e["health"] == "unhealthy");
    ev.wait_for("good", "healthy", |e| e["health"] == "healthy");
    assert_eq!(health_seq(&ev.of("bad")), ["starting", "unhealthy"]);
    assert_eq!(health_seq(&ev.of("good")), ["starting", "healthy"]);
    let flip = ev.wait_for("bad", "unhealthy", |e| e["health"] == "unhealthy");
    assert_eq!(flip["state"], "running");
    // Not before three failed checks (200 ms apart, the first 200 ms after the start).
    let started = bad["started_at_ms"].as_u64().unwrap();
    assert!(
        flip["at_ms"].as_u64().unwrap() >= started + 600,
        "flipped too early: {flip} started {started}"
    );
    // ps shows the status.
    let table = n.ok(&["ps"]);
    assert!(table.lines().next().unwrap().contains("HEALTH"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"))
            .to_string()
    };
    assert!(row("good").contains("healthy"), "{table}");
    assert!(row("bad").contains("unhealthy"), "{table}");

    // A daemon restart keeps the statuses and re-arms the checks.
    let before = good["health"]["last_check_ms"].as_u64().unwrap();
    n.daemon.kill9();
    n.daemon.restart();
    let again = inspect_until(&n, "good", "a check after the restart", |i| {
        i["health"]["last_check_ms"].as_u64().unwrap_or(0) > before + 1000
    });
    assert_eq!(again["health"]["status"], "healthy", "{again:#}");
    assert_eq!(n.json(&["inspect", "bad"])["health"]["status"], "unhealthy");

    for name in ["good", "bad"] {
        n.ok(&["--timeout", "20s", "rm", "-f", name]);
    }
}

#[test]
fn an_unhealthy_container_is_restarted_by_its_policy_with_the_reason_unhealthy() {
    let n = Node::start("ibhealth-rs");
    let ev = Events::start(&n);
    events_ready(&n, &ev);
    let ctl = n.scratch.path().join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let bind = format!("{}:/ctl", ctl.display());
    // Healthy while /ctl/ok exists; sleep as PID 1 ignores SIGTERM, so the stop timeout's
    // SIGKILL ends it.
    std::fs::write(ctl.join("ok"), "").unwrap();
    n.ok(&[
        "run",
        "--name",
        "sick",
        "--restart",
        "on-failure",
        "--stop-timeout",
        "300ms",
        "--bind",
        &bind,
        "--health-cmd",
        "cat /ctl/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--image",
        n.image(),
        "--",
        "sleep",
        "1000",
    ]);
    inspect_until(&n, "sick", "healthy", |i| {
        i["health"]["status"] == "healthy"
    });
    std::fs::remove_file(ctl.join("ok")).unwrap();
    let exited = ev.wait_for("sick", "exited unhealthy", |e| {
        e["state"] == "exited" && e["reason"] == "unhealthy"
    });
    assert_eq!(
        exited["exit_code"], 137,
        "SIGKILL after the stop timeout: {exited}"
    );
    std::fs::write(ctl.join("ok"), "").unwrap();
    let restarted = ev.wait_for("sick", "restart", |e| {
        e["state"] == "running"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("unhealthy"))
    });
    let why = restarted["reason"].as_str().unwrap();
    assert!(why.starts_with("restart 1 by policy on-failure"), "{why}");
    let info = inspect_until(&n, "sick", "healthy again", |i| {
        i["health"]["status"] == "healthy"
    });
    assert_eq!(info["restart_count"], 1, "{info:#}");
    assert_eq!(info["state"], "running");
    // The events in order: healthy, unhealthy, exited (unhealthy), running (restart),
    // starting, healthy.
    assert_eq!(
        health_seq(&ev.of("sick")),
        ["starting", "healthy", "unhealthy", "starting", "healthy"]
    );
    n.ok(&["--timeout", "20s", "rm", "-f", "sick"]);
}

#[test]
fn a_hanging_health_check_is_killed_at_its_timeout_and_ps_stays_fast() {
    let n = Node::start("ibhealth-hang");
    n.ok(&[
        "run",
        "--name",
        "hang",
        "--health-cmd",
        "sleep 1000",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "500ms",
        "--health-retries",
        "2",
        "--image",
        n.image(),
        "--",
        "sleep",
        "2000",
    ]);
    // While checks hang, commands answer at once.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut slowest = Duration::ZERO;
    while Instant::now() < deadline {
        let t = Instant::now();
        n.ok(&["ps"]);
        slowest = slowest.max(t.elapsed());
    }
    assert!(slowest < Duration::from_secs(1), "ps took {slowest:?}");
    let info = inspect_until(&n, "hang", "unhealthy", |i| {
        i["health"]["status"] == "unhealthy"
    });
    assert_eq!(info["health"]["last_exit_code"], Value::Null, "{info:#}");
    assert!(
        info["health"]["last_output"]
            .as_str()
            .unwrap()
            .contains("timeout"),
        "{info:#}"
    );
    // Each check was killed at its timeout: at most the one in flight is left.
    let count = || {
        n.ok(&[
            "exec",
            "hang",
            "--",
            "sh",
            "-c",
            "ps -o args | grep -c '^sleep 1000$' || true",
        ])
        .trim()
        .parse::<u32>()
        .unwrap()
    };
    assert!(count() <= 1, "checks pile up");
    assert_eq!(n.json(&["inspect", "hang"])["state"], "running");
    n.ok(&["--timeout", "20s", "rm", "-f", "hang"]);
}

#[test]
fn bad_health_flags_are_usage_errors_and_leave_nothing() {
    let n = Node::start("ibhealth-bad");
    for args in [
        &["--health-cmd", "true", "--health-retries", "0"][..],
        &["--health-cmd", "true", "--health-interval", "10ms"],
        &["--health-cmd", "'unbalanced"],
        &["--health-interval", "1s"],
    ] {
        let mut all = vec!["run", "--image", n.image()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "sleep", "1"]);
        let out = n.daemon.cli(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {out:?}");
    }
    assert_eq!(n.json(&["ps"]), serde_json::json!([]));
}
