//! Container logs through the CLI (`imagebus logs`) against a real imagebusd with real
//! runc, loop devices, squashfs and overlayfs: times and streams, `--since`/`--until`/
//! `--tail`/`--stdout-only`/`--stderr-only`, a follower through rotations, and logs in the
//! old format. Root.

use imagebus_tests::cli_node::CliNode as Node;
use imagebus_tests::daemon::{cli_command, wait_until};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
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

/// The `--json logs` lines of `name` (with `extra` options).
fn json_lines(n: &Node, name: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--json", "logs", name];
    args.extend_from_slice(extra);
    n.ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn texts(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect()
}

/// The directory shared with the container as `/ctl`.
fn ctl(n: &Node) -> (PathBuf, String) {
    let dir = n.scratch.path().join("ctl");
    std::fs::create_dir_all(&dir).unwrap();
    let bind = format!("{}:/ctl", dir.display());
    (dir, bind)
}

fn rfc3339_now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[test]
fn lines_carry_times_and_streams_and_filter_by_time_tail_and_stream() {
    let n = Node::start("iblogs");
    let (dir, bind) = ctl(&n);
    n.ok(&[
        "run",
        "--name",
        "talk",
        "--bind",
        &bind,
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "echo one; echo err-one >&2; echo two; while [ ! -e /ctl/next ]; do sleep 0.05; done; \
         echo three; echo err-two >&2; sleep 1000",
    ]);
    let mut lines = Vec::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            lines = json_lines(&n, "talk", &[]);
            lines.len() == 3
        }),
        "{lines:?}"
    );
    // Everything before `mid` was read before it; what follows is written after it.
    let mid = rfc3339_now();
    std::fs::write(dir.join("next"), "").unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            lines = json_lines(&n, "talk", &[]);
            lines.len() == 5
        }),
        "{lines:?}"
    );
    // Each stream keeps its order (the two spools are read one after the other, so lines
    // of both written within the same moment may come in either order).
    let of = |stream: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["stream"] == stream)
            .map(|l| l["line"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(of("stdout"), ["one", "two", "three"]);
    assert_eq!(of("stderr"), ["err-one", "err-two"]);
    let mut first = texts(&lines[..3]);
    first.sort();
    assert_eq!(
        first,
        ["err-one", "one", "two"],
        "the first phase comes first"
    );
    let times: Vec<humantime::Timestamp> = lines
        .iter()
        .map(|l| {
            l["time"]
                .as_str()
                .expect("a time")
                .parse()
                .expect("RFC 3339")
        })
        .collect();
    assert!(times.windows(2).all(|w| *w[0] <= *w[1]), "{lines:?}");

    let pick = |extra: &[&str]| texts(&json_lines(&n, "talk", extra));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(pick(&["--since", &mid])), ["err-two", "three"]);
    assert_eq!(sorted(pick(&["--until", &mid])), ["err-one", "one", "two"]);
    assert_eq!(pick(&["--since", "1h"]).len(), 5, "a duration before now");
    assert!(pick(&["--since", "0s"]).is_empty());
    assert_eq!(pick(&["--tail", "2"]), texts(&lines[3..]));
    assert_eq!(pick(&["--tail", "1", "--stdout-only"]), ["three"]);
    assert_eq!(pick(&["--stderr-only"]), ["err-one", "err-two"]);
    assert_eq!(pick(&["--stdout-only", "--until", &mid]), ["one", "two"]);
    // Text, with and without times.
    let all: String = texts(&lines).iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(n.ok(&["logs", "talk"]), all);
    let stamped = n.ok(&["logs", "-t", "--tail", "1", "talk"]);
    let (time, line) = stamped.trim_end().split_once(' ').unwrap();
    assert_eq!(line, lines[4]["line"]);
    assert_eq!(time, lines[4]["time"].as_str().unwrap());
    // Callers of container@1 Logs get text as before.
    let chunk = n.json(&[
        "call",
        "container",
        "container@1",
        "Logs",
        r#"{"name":"talk"}"#,
        r#"{"tail":2}"#,
    ]);
    let last_two: String = texts(&lines[3..])
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(chunk["data"], last_two.as_str(), "{chunk}");
    // Bad times are usage errors.
    let out = n.daemon.cli(&["logs", "talk", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    n.ok(&["--timeout", "20s", "rm", "-f", "talk"]);
}

#[test]
fn a_follower_gets_every_line_once_through_rotations_and_the_file_count_holds() {
    const LINES: usize = 2000;
    let n = Node::start("iblogs-roll");
    n.ok(&[
        "run",
        "--name",
        "roll",
        "--created",
        "--log-max-bytes",
        "8192",
        "--log-max-files",
        "4",
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        &format!(
            "i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo line-$i; \
             [ $((i % 25)) -eq 0 ] && sleep 0.05; done; true"
        ),
    ]);
    let info = n.json(&["inspect", "roll"]);
    let log = PathBuf::from(info["log_file"].as_str().unwrap());
    let follower = cli_command()
        .args(["--broker", &n.redis.url(), "--json", "logs", "-f", "roll"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower = Reaped(follower);
    let out = follower.0.stdout.take().unwrap();
    n.ok(&["start", "roll"]);
    let rotated = |k: u32| imagebus_sys::logfile::rotated(&log, k);
    let mut got = Vec::new();
    let mut most = 0;
    for line in BufReader::new(out).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        got.push(v["line"].as_str().unwrap().to_string());
        let files = (1..=10).filter(|k| rotated(*k).exists()).count() + 1;
        most = most.max(files);
    }
    // The follower ends when the container has stopped.
    let status = follower.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let expected: Vec<String> = (1..=LINES).map(|i| format!("line-{i}")).collect();
    assert_eq!(got.len(), expected.len(), "lines lost or repeated");
    assert_eq!(got, expected);
    assert!(rotated(3).exists(), "it rotated up to the count");
    assert!(
        !rotated(4).exists() && most <= 4,
        "at most 4 files ({most})"
    );
    // A late reader sees what the 4 files keep: the end, in order.
    let kept = texts(&json_lines(&n, "roll", &[]));
    assert!(
        kept.len() < LINES && kept.last() == expected.last(),
        "{}",
        kept.len()
    );
    n.ok(&["--timeout", "20s", "rm", "-f", "roll"]);
    assert!(
        !log.exists() && !rotated(1).exists(),
        "rm removes every file"
    );
}

#[test]
fn a_log_in_the_old_format_is_read_and_continued_by_the_next_run() {
    let n = Node::start("iblogs-old");
    n.ok(&[
        "run",
        "--name",
        "old",
        "--log-max-files",
        "3",
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "echo new",
    ]);
    assert!(wait_until(Duration::from_secs(20), || {
        n.json(&["inspect", "old"])["state"] == "exited"
    }));
    let log = PathBuf::from(
        n.json(&["inspect", "old"])["log_file"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    // What an imagebusd of before left: raw text, and the older part its cap kept aside.
    std::fs::write(&log, "old-1\nold-2\n").unwrap();
    std::fs::write(imagebus_sys::logfile::rotated(&log, 1), "old-0\n").unwrap();
    assert_eq!(n.ok(&["logs", "old"]), "old-0\nold-1\nold-2\n");
    let lines = json_lines(&n, "old", &[]);
    assert_eq!(texts(&lines), ["old-0", "old-1", "old-2"]);
    assert!(lines
        .iter()
        .all(|l| l["time"].is_null() && l["stream"].is_null()));
    assert_eq!(n.ok(&["logs", "--tail", "1", "old"]), "old-2\n");
    // Old lines have no time: a time filter leaves them out.
    assert!(texts(&json_lines(&n, "old", &["--since", "1h"])).is_empty());
    // The next run writes the new format after them (the old files count among the 3).
    n.ok(&["start", "old"]);
    let mut all = Vec::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            all = texts(&json_lines(&n, "old", &[]));
            all.len() == 4
        }),
        "{all:?}"
    );
    assert_eq!(all, ["old-0", "old-1", "old-2", "new"]);
    assert_eq!(texts(&json_lines(&n, "old", &["--since", "1h"])), ["new"]);
    let chunk = n.json(&[
        "call",
        "container",
        "container@1",
        "Logs",
        r#"{"name":"old"}"#,
        "{}",
    ]);
    assert_eq!(chunk["data"], "old-0\nold-1\nold-2\nnew\n", "{chunk}");
    n.ok(&["--timeout", "20s", "rm", "-f", "old"]);
    for k in 0..3 {
        let p = if k == 0 {
            log.clone()
        } else {
            imagebus_sys::logfile::rotated(&log, k)
        };
        assert!(!p.exists(), "{p:?} left behind");
    }
}

#[test]
fn bad_log_settings_are_usage_errors_and_leave_nothing() {
    let n = Node::start("iblogs-bad");
    for args in [
        &["--log-max-bytes", "10"][..],
        &["--log-max-files", "0"],
        &["--log-max-files", "101"],
    ] {
        let mut all = vec!["run", "--image", n.image()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "true"]);
        let out = n.daemon.cli(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {out:?}");
    }
    assert_eq!(n.json(&["ps"]), serde_json::json!([]));
}
