//! `imagebus stats`, OOM detection and the task limit, against a real imagebusd with real
//! runc, loop devices, squashfs, overlayfs and cgroups. Root.

use imagebus_tests::cli_node::CliNode as Node;
use imagebus_tests::daemon::{cli_command, wait_until};
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A child process killed and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stats_show_usage_limits_and_the_task_limit_holds() {
    let n = Node::start("ibstats");
    let limit = (64u64 << 20).to_string();
    n.ok(&[
        "run",
        "--name",
        "web",
        "--memory",
        &limit,
        "--pids",
        "8",
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "x=$(seq 1 20000); sleep 1000",
    ]);

    // --no-stream --json: one JSON line per container.
    let out = n.ok(&["--json", "stats", "--no-stream", "web"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let s: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(s["name"], "web");
    assert_eq!(s["state"], "running");
    assert!(s["memory_usage_bytes"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["memory_limit_bytes"], 64u64 << 20, "{s}");
    assert!(s["pids_current"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["pids_limit"], 8, "{s}");
    assert!(s["cpu_usage_ns"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["oom_kills"], 0, "{s}");
    // Without a name: every running container.
    let all = n.ok(&["--json", "stats", "--no-stream"]);
    assert_eq!(all.lines().count(), 1, "{all}");

    // The table.
    let table = n.ok(&["stats", "--no-stream", "web"]);
    let mut rows = table.lines();
    let head = rows.next().unwrap();
    assert!(
        head.starts_with("ID") && head.contains("MEM") && head.contains("PIDS"),
        "{table}"
    );
    let row = rows.next().expect("a row for web");
    assert!(
        row.contains("web") && row.contains("64.0MiB") && row.contains("/ 8"),
        "{table}"
    );

    // The limit is in the container's cgroup and forks beyond it fail.
    let max = n.ok(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(max.trim(), "8");
    let out = n.daemon.cli(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 100 >/dev/null 2>&1 & done; echo started",
    ]);
    assert!(
        out.stderr.contains("fork"),
        "forks past the limit must fail: {out:?}"
    );
    let s: Value =
        serde_json::from_str(n.ok(&["--json", "stats", "--no-stream", "web"]).trim()).unwrap();
    assert!(s["pids_current"].as_u64().unwrap() <= 8, "{s}");

    // Streaming: a round per interval until killed; the table redraws with a CPU%.
    let lines_file = n.scratch.path().join("stats.jsonl");
    let table_file = n.scratch.path().join("stats.txt");
    let spawn = |json: bool, out: &std::path::Path| {
        let mut c = cli_command();
        c.args(["--broker", &n.redis.url()]);
        if json {
            c.arg("--json");
        }
        Reaped(
            c.args(["stats", "--interval", "200ms", "web"])
                .stdout(std::fs::File::create(out).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let (jsonl, table) = (spawn(true, &lines_file), spawn(false, &table_file));
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || read(&lines_file)
            .lines()
            .count()
            >= 3),
        "{}",
        read(&lines_file)
    );
    let at: Vec<u64> = read(&lines_file)
        .lines()
        .take(3)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["at_ms"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(at[0] < at[1] && at[1] < at[2], "{at:?}");
    assert!(
        wait_until(Duration::from_secs(20), || read(&table_file)
            .matches("\x1b[2J")
            .count()
            >= 2
            && read(&table_file).contains('%')),
        "{:?}",
        read(&table_file)
    );
    drop((jsonl, table));

    // A stopped container: state only.
    n.ok(&["stop", "-t", "1s", "web"]);
    let s: Value =
        serde_json::from_str(n.ok(&["--json", "stats", "--no-stream", "web"]).trim()).unwrap();
    assert_eq!(s["state"], "exited");
    assert_eq!(s["memory_usage_bytes"], Value::Null, "{s}");
    let info = n.json(&["inspect", "web"]);
    assert_eq!(
        info["reason"],
        Value::Null,
        "a normal stop is no OOM: {info}"
    );
    n.ok(&["rm", "web"]);
    let out = n.daemon.cli(&["stats", "--no-stream", "web"]);
    assert_eq!(out.status.code(), Some(5), "NotFound: {out:?}");
}

#[test]
fn an_init_past_its_memory_limit_ends_with_reason_oom() {
    let n = Node::start("ibstats");
    let events_file = n.scratch.path().join("events.jsonl");
    let events = Reaped(
        cli_command()
            .args(["--broker", &n.redis.url(), "--json", "events"])
            .stdout(std::fs::File::create(&events_file).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || {
        n.redis
            .command(&["PUBSUB", "NUMSUB", "container.container@1.Events"])
            .is_ok_and(|r| r.contains("\r\n:1\r\n"))
    }));

    // The string doubles until the shell (the init) is past 32 MiB.
    let limit = (32u64 << 20).to_string();
    n.ok(&[
        "run",
        "--name",
        "hog",
        "--memory",
        &limit,
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "a=aaaaaaaaaaaaaaaa; while true; do a=$a$a; done",
    ]);
    assert!(
        wait_until(Duration::from_secs(60), || n.json(&["inspect", "hog"])
            ["state"]
            == "exited"),
        "the hog never ended: {}",
        n.daemon.log()
    );
    let info = n.json(&["inspect", "hog"]);
    assert_eq!(info["reason"], "oom", "{info}");
    assert_eq!(info["exit_code"], 137, "{info}");
    assert_eq!(info["exit_signal"], 9, "{info}");
    let ps = n.json(&["ps"]);
    assert_eq!(ps[0]["name"], "hog");
    assert_eq!(ps[0]["reason"], "oom", "{ps}");

    let exited_oom = |text: &str| {
        text.lines().any(|l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|e| e["name"] == "hog" && e["state"] == "exited" && e["reason"] == "oom")
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || exited_oom(
            &std::fs::read_to_string(&events_file).unwrap_or_default()
        )),
        "no exited/oom event: {}",
        std::fs::read_to_string(&events_file).unwrap_or_default()
    );
    drop(events);

    // Run again with room: no OOM, and the reason is gone.
    n.ok(&["rm", "hog"]);
    n.ok(&[
        "run",
        "--name",
        "fine",
        "--memory",
        &limit,
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert!(wait_until(Duration::from_secs(30), || n
        .json(&["inspect", "fine"])["state"]
        == "exited"));
    let info = n.json(&["inspect", "fine"]);
    assert_eq!(info["exit_code"], 3, "{info}");
    assert_eq!(info["reason"], Value::Null, "{info}");
    n.ok(&["rm", "fine"]);
}
