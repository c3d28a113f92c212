//! `imagebus call`, `ping` and `status` against a real imagebusd, and their failures.

use imagebus_tests::daemon::{cli, Daemon};
use imagebus_tests::redis::RedisFixture;

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
fn call_ping_prints_the_json_result() {
    let redis = RedisFixture::start();
    let d = Daemon::start(&redis.url());
    let out = d.cli(&["call", "imagebus", "system@1", "Ping", "\"hi\""]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "\"hi\"");
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn call_version_and_modules_decode_to_json() {
    let redis = RedisFixture::start();
    let d = Daemon::start(&redis.url());
    let out = d.cli(&["--json", "call", "imagebus", "system@1", "Version"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["protocol"], "zbus");
    assert_eq!(v["pid"], d.pid());
    assert_eq!(v["daemon"], env!("CARGO_PKG_VERSION"));

    let out = d.cli(&["--json", "call", "imagebus", "system@1", "Modules"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let imagebus = v
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == "imagebus")
        .unwrap();
    assert_eq!(imagebus["objects"], serde_json::json!(["system@1"]));
    assert_eq!(imagebus["state"], "running");
}

#[test]
fn ping_command_reports_the_daemon() {
    let redis = RedisFixture::start();
    let d = Daemon::start(&redis.url());
    let out = d.cli(&["ping"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.starts_with("pong from imagebusd "), "{out:?}");
    assert!(out.stdout.contains(&format!("pid {}", d.pid())), "{out:?}");
}

#[test]
fn unknown_module_times_out_with_one_line_error() {
    let redis = RedisFixture::start();
    let _d = Daemon::start(&redis.url());
    let started = std::time::Instant::now();
    let out = cli(
        &redis.url(),
        &["--timeout", "500ms", "call", "nosuch", "thing@1", "Do"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    one_error_line(&out.stderr, "error: Timeout: ");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let out = cli(&redis.url(), &["--timeout", "500ms", "status", "nosuch"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    one_error_line(&out.stderr, "error: Timeout: ");
}

#[test]
fn unknown_method_is_typed_and_unknown_object_times_out() {
    let redis = RedisFixture::start();
    let d = Daemon::start(&redis.url());
    let out = d.cli(&["call", "imagebus", "system@1", "Nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    one_error_line(&out.stderr, "error: UnknownMethod: ");

    // Objects are queues (`imagebus.system@9`): an object nobody serves never answers.
    let out = d.cli(&[
        "--timeout",
        "500ms",
        "call",
        "imagebus",
        "system@9",
        "Ping",
        "\"x\"",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    one_error_line(
        &out.stderr,
        "error: Timeout: no server took the request from imagebus.system@9",
    );
}

#[test]
fn bad_arguments_are_rejected() {
    let redis = RedisFixture::start();
    let d = Daemon::start(&redis.url());
    // Not JSON: rejected before anything is sent.
    let out = d.cli(&["call", "imagebus", "system@1", "Ping", "hi"]);
    assert_eq!(out.status.code(), Some(2), "usage error: {out:?}");
    one_error_line(
        &out.stderr,
        "error: InvalidArgument: argument 1 is not JSON",
    );
    // Wrong type and wrong arity: the server's Decode errors.
    let out = d.cli(&["call", "imagebus", "system@1", "Ping", "42"]);
    one_error_line(&out.stderr, "error: Decode: ");
    let out = d.cli(&["call", "imagebus", "system@1", "Ping"]);
    one_error_line(&out.stderr, "error: Decode: ");
    // The server's own validation.
    let long = format!("\"{}\"", "x".repeat(64 * 1024 + 1));
    let out = d.cli(&["call", "imagebus", "system@1", "Ping", &long]);
    one_error_line(&out.stderr, "error: InvalidArgument: ");
}

#[test]
fn unreachable_broker_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}/none.sock", dir.path().display());
    let out = cli(&url, &["--timeout", "2s", "status", "imagebus"]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(out.status.code(), Some(4), "broker unreachable: {out:?}");
    one_error_line(&out.stderr, "error: ");
}
