//! imagebusd as a process: readiness, graceful SIGTERM, the private broker, bad flags.

use imagebus_tests::daemon::{cli, cli_command, wait_until, Daemon};
use imagebus_tests::redis::RedisFixture;
use std::time::Duration;

#[test]
fn daemon_serves_status_of_the_imagebus_module() {
    let redis = RedisFixture::start();
    let d = Daemon::start(&redis.url());
    let out = d.cli(&["--json", "status", "imagebus"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["module"], "imagebus");
    assert_eq!(v["objects"], serde_json::json!(["system@1"]));
    assert_eq!(v["workers"].as_array().unwrap().len(), 2, "{v}");
    // The text form names the object too.
    let out = d.cli(&["status", "--module", "imagebus"]);
    assert!(
        out.status.success() && out.stdout.contains("system@1"),
        "{out:?}"
    );
}

#[test]
fn sigterm_shuts_down_gracefully_and_quickly() {
    let redis = RedisFixture::start();
    let mut d = Daemon::start(&redis.url());
    assert_eq!(d.recorded_broker().as_deref(), Some(redis.url().as_str()));
    d.signal("TERM");
    let (status, took) = d
        .wait_exit(Duration::from_secs(10))
        .expect("imagebusd did not exit");
    assert!(status.success(), "exit {status:?}; log:\n{}", d.log());
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    let log = d.log();
    assert!(log.contains("imagebusd stopped"), "{log}");
    assert!(
        d.recorded_broker().is_none(),
        "the broker file outlived the daemon"
    );
    // Nothing answers any more.
    let out = cli(&redis.url(), &["--timeout", "500ms", "status", "imagebus"]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn sigint_also_stops_it() {
    let redis = RedisFixture::start();
    let mut d = Daemon::start(&redis.url());
    d.signal("INT");
    let (status, _) = d
        .wait_exit(Duration::from_secs(10))
        .expect("imagebusd did not exit");
    assert!(status.success(), "exit {status:?}; log:\n{}", d.log());
}

#[test]
fn private_redis_autostarts_when_no_broker_answers_and_stops_on_exit() {
    let mut d = Daemon::spawn(None, &[]);
    d.wait_ready();
    let url = d.recorded_broker().expect("broker file");
    let sock = d.run_dir().join("redis.sock");
    assert_eq!(url, format!("unix://{}", sock.display()));
    assert!(
        d.log().contains("starting a private redis-server"),
        "{}",
        d.log()
    );

    // The CLI finds it through <run-dir>/broker when neither --broker nor the default works.
    let out = cli_command()
        .env("IMAGEBUS_RUN_DIR", d.run_dir())
        .args([
            "--timeout",
            "5s",
            "call",
            "imagebus",
            "system@1",
            "Ping",
            "\"via file\"",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"via file\"");

    d.signal("TERM");
    let (status, _) = d
        .wait_exit(Duration::from_secs(15))
        .expect("imagebusd did not exit");
    assert!(status.success(), "log:\n{}", d.log());
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::os::unix::net::UnixStream::connect(&sock).is_err()
        }),
        "the private redis-server still answers after the daemon stopped"
    );
    assert!(d.recorded_broker().is_none());
}

#[test]
fn unusable_flags_fail_fast_with_a_message() {
    for (args, needle) in [
        (&["--broker", "http://nope"][..], "unsupported scheme"),
        (
            &["--broker", "unix:///tmp/x.sock", "--only", "nosuch"][..],
            "for --only (known: ",
        ),
    ] {
        let mut d = Daemon::spawn(None, args);
        let (status, _) = d
            .wait_exit(Duration::from_secs(10))
            .expect("imagebusd should exit");
        assert!(!status.success());
        assert!(d.log().contains(needle), "{args:?}: {}", d.log());
    }
}

#[test]
fn missing_redis_server_binary_is_reported() {
    let mut d = Daemon::spawn(None, &["--redis-server", "/nonexistent/redis-server"]);
    let (status, _) = d
        .wait_exit(Duration::from_secs(10))
        .expect("imagebusd should exit");
    assert!(!status.success());
    assert!(
        d.log().contains("install the redis-server package"),
        "{}",
        d.log()
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let redis = RedisFixture::start();
    let mut d = Daemon::spawn(Some(&redis.url()), &["--log-format", "json"]);
    d.wait_ready();
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10))
        .expect("imagebusd did not exit");
    let log = d.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "imagebusd ready"),
        "{log}"
    );
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
}

/// `redis-cli -s SOCKET PING` as `uid`/`gid`; whether it answered PONG.
fn ping_as(socket: &std::path::Path, uid: u32, gid: u32) -> bool {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("redis-cli")
        .arg("-s")
        .arg(socket)
        .arg("PING")
        .uid(uid)
        .gid(gid)
        .output()
        .expect("running redis-cli");
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

#[test]
fn socket_group_opens_the_private_broker_to_that_group_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    const ADM: u32 = 4; // Debian's `adm` group
    let d = Daemon::spawn(None, &["--socket-group", "adm"]);
    d.wait_ready();
    let sock = d.run_dir().join("redis.sock");
    let md = std::fs::metadata(&sock).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o770, "socket mode");
    assert_eq!(md.gid(), ADM, "socket group");
    let run = std::fs::metadata(d.run_dir()).unwrap();
    assert_eq!(run.gid(), ADM);
    assert_ne!(
        run.permissions().mode() & 0o010,
        0,
        "the run dir is group-traversable"
    );
    // Let others traverse the test's own temporary parent, as /run is on a node.
    let parent = d.run_dir().parent().unwrap().to_path_buf();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o711)).unwrap();
    assert!(
        ping_as(&sock, 65534, ADM),
        "a member of the group is let in"
    );
    assert!(!ping_as(&sock, 65534, 65534), "anyone else is refused");

    // Without the flag the socket is root's alone.
    let plain = Daemon::spawn(None, &[]);
    plain.wait_ready();
    let sock = plain.run_dir().join("redis.sock");
    let md = std::fs::metadata(&sock).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o700);
    let parent = plain.run_dir().parent().unwrap().to_path_buf();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o711)).unwrap();
    assert!(!ping_as(&sock, 65534, ADM));
}
