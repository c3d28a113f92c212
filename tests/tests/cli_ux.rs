//! The CLI as a new user meets it (issue 11): help listing global options once, one exit
//! status per cause, `--json` everywhere (errors too), fail-fast when no daemon serves a
//! module, completions and man pages, `rm -f` killing at once, `attach|mount rm -f`, and
//! typed arguments reaching a Go-shaped peer. Real redis-server, imagebusd, runc, busybox.

use imagebus_tests::cli_node::CliNode as Node;
use imagebus_tests::daemon::{cli, cli_command, CliOutput, Daemon};
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::{loops_under, mounts_under};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `--json` error document of a failed command: on stdout, stderr empty.
fn json_error(out: &CliOutput, code: &str, status: i32) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(status), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "with --json stderr stays empty: {out:?}"
    );
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {out:?}"));
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["exit"], status, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(!message.is_empty() && !message.starts_with(code), "{v}");
    v
}

fn help(args: &[&str]) -> String {
    let out: CliOutput = cli_command()
        .args(args)
        .arg("--help")
        .output()
        .unwrap()
        .into();
    assert!(out.status.success(), "{args:?}: {out:?}");
    out.stdout
}

const GLOBALS: [&str; 5] = ["--broker", "--run-dir", "--timeout", "--json", "--reader"];

/// The flag part of each option line of a help text (`-x, --flag <V>` of
/// `  -x, --flag <V>  text`).
fn option_lines(help: &str) -> Vec<&str> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split("  ").next())
        .collect()
}

#[test]
fn global_options_appear_only_in_the_top_level_help() {
    let top = help(&[]);
    assert!(top.contains("Global options:"), "{top}");
    for g in GLOBALS {
        assert!(
            option_lines(&top).iter().any(|l| l.contains(g)),
            "{g} missing from `imagebus --help`:\n{top}"
        );
    }
    assert!(!top.contains("=]"), "an empty [env: X=] in:\n{top}");
    let mut subs: Vec<Vec<&str>> = [
        "call",
        "status",
        "watch",
        "ping",
        "attach",
        "mount",
        "run",
        "ps",
        "inspect",
        "start",
        "stop",
        "rm",
        "logs",
        "exec",
        "events",
        "completions",
        "man",
    ]
    .iter()
    .map(|c| vec![*c])
    .collect();
    for group in ["attach", "mount"] {
        for sub in ["create", "get", "list", "rm"] {
            subs.push(vec![group, sub]);
        }
    }
    for args in subs {
        let text = help(&args);
        for g in GLOBALS {
            assert!(
                !option_lines(&text)
                    .iter()
                    .any(|l| l.contains(&format!("{g} ")) || l.trim_end().ends_with(g)),
                "`imagebus {} --help` lists {g}:\n{text}",
                args.join(" ")
            );
        }
        assert!(!text.contains("=]"), "{args:?}:\n{text}");
        assert!(
            text.contains("imagebus --help"),
            "{args:?} points to the globals"
        );
    }
    // Help matches behaviour: rm -f exists where a force exists, and says what it does.
    for group in ["attach", "mount"] {
        let text = help(&[group, "rm"]);
        assert!(text.contains("-f, --force"), "{text}");
        assert!(text.contains("Conflict"), "{text}");
    }
    assert!(help(&["rm"]).contains("SIGKILL"));
    let stop = help(&["stop"]);
    assert!(stop.contains("-t, --stop-timeout"), "{stop}");
}

#[test]
fn completions_parse_and_man_pages_render() {
    for shell in ["bash", "zsh", "fish"] {
        let out: CliOutput = cli_command()
            .args(["completions", shell])
            .output()
            .unwrap()
            .into();
        assert!(out.status.success(), "{shell}: {out:?}");
        assert!(
            out.stdout.len() > 1000,
            "{shell}: {} bytes",
            out.stdout.len()
        );
        assert!(out.stdout.contains("imagebus"), "{shell}");
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("imagebus.bash");
    let out = cli_command()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    std::fs::write(&script, &out.stdout).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {syntax:?}");
    // Sourcing it defines the completion function and registers it.
    let sourced = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p imagebus",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(sourced.status.success(), "{sourced:?}");

    let man_dir = dir.path().join("man");
    let out: CliOutput = cli_command()
        .args(["man", "--out-dir", man_dir.to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "imagebus.1",
        "imagebus-ps.1",
        "imagebus-rm.1",
        "imagebus-attach-rm.1",
    ] {
        let text =
            std::fs::read_to_string(man_dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not roff");
    }
    let top = std::fs::read_to_string(man_dir.join("imagebus.1")).unwrap();
    assert!(top.contains("broker"), "the top page documents the globals");
}

#[test]
fn a_module_nobody_serves_fails_fast() {
    let redis = RedisFixture::start();
    // The binaries are built (once per test process) before anything is timed.
    imagebus_tests::daemon::bin_dir();
    // Redis answers, no daemon: a known module fails after ~1 s, not --timeout.
    let started = Instant::now();
    let out = cli(&redis.url(), &["--timeout", "30s", "ps"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "daemon unreachable: {out:?}");
    assert!(
        out.stderr
            .starts_with("error: Unavailable: no imagebusd serves module container"),
        "{out:?}"
    );
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    // The request was taken back: nothing is left queued for a daemon started later.
    assert_eq!(
        redis.command(&["LLEN", "container.container@1"]).unwrap(),
        ":0\r\n"
    );
    let out = cli(
        &redis.url(),
        &["--json", "--timeout", "30s", "attach", "list"],
    );
    json_error(&out, "Unavailable", 3);

    // A module no imagebus server ever announced (a Go peer's) waits for --timeout.
    let started = Instant::now();
    let out = cli(
        &redis.url(),
        &["--timeout", "2500ms", "call", "gopeer", "x@1", "Do"],
    );
    assert!(started.elapsed() >= Duration::from_millis(2400));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        out.stderr.starts_with("error: Timeout: no server took"),
        "{out:?}"
    );

    // With a daemon: presence keys exist and calls answer.
    let mut d = Daemon::start(&redis.url());
    assert_eq!(
        redis
            .command(&["EXISTS", "imagebus:presence:mount"])
            .unwrap(),
        ":1\r\n"
    );
    assert!(d.cli(&["mount", "list"]).status.success());
    // Once the daemon is gone (its key expires within 3 s), calls fail fast again.
    d.kill9();
    assert!(imagebus_tests::daemon::wait_until(
        Duration::from_secs(5),
        || {
            redis
                .command(&["EXISTS", "imagebus:presence:mount"])
                .as_deref()
                == Ok(":0\r\n")
        }
    ));
    let started = Instant::now();
    let out = cli(&redis.url(), &["--timeout", "30s", "mount", "list"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(started.elapsed() <= Duration::from_secs(2));
}

#[test]
fn exit_status_and_json_errors_per_cause() {
    let n = Node::start("ibux");
    // Usage: clap, and the CLI's own checks, with --json anywhere.
    let out = n.daemon.cli(&["ps", "--state", "bogus"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = n.daemon.cli(&["ps", "--state", "bogus", "--json"]);
    json_error(&out, "InvalidArgument", 2);
    let out = n
        .daemon
        .cli(&["--json", "call", "imagebus", "system@1", "Ping", "hi"]);
    json_error(&out, "InvalidArgument", 2);
    let out = n
        .daemon
        .cli(&["call", "imagebus", "system@1", "Ping", r#"{"$f23": 1}"#]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Not found.
    let out = n.daemon.cli(&["inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "error: NotFound: container \"nosuch\" not found"
    );
    json_error(
        &n.daemon.cli(&["--json", "mount", "get", "7"]),
        "NotFound",
        5,
    );
    // Conflict, in words (no Debug text, the code once).
    let m = n.json(&["mount", "create", "--name", "img", "--image", n.image()]);
    let ov = n.json(&["mount", "create", "--name", "ov", "--lower", "img"]);
    let out = n.daemon.cli(&["mount", "rm", "img"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        format!(
            "error: Conflict: mount {} is still held by mount:{}; remove those first (or force)",
            m["id"], ov["id"]
        )
    );
    json_error(
        &n.daemon.cli(&["--json", "mount", "rm", "img"]),
        "Conflict",
        6,
    );
    // A nested error carries one code: the attach module's text without its code.
    let out = n
        .daemon
        .cli(&["mount", "create", "--image", "/nonexistent/x.sqsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: InvalidArgument: attach module: ")
            && out.stderr.matches("InvalidArgument").count() == 1,
        "{out:?}"
    );
    // Broker unreachable.
    let dir = tempfile::tempdir().unwrap();
    let gone = format!("unix://{}/none.sock", dir.path().display());
    let out = cli(&gone, &["--json", "ps"]);
    json_error(&out, "Unavailable", 4);
    // A bad broker URL is a usage error naming the URL.
    let out = cli("foo://bar", &["ps"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("\"foo://bar\""), "{out:?}");
    // Timeout reported by the module: an exec past --kill-after.
    n.ok(&[
        "run",
        "--name",
        "t",
        "--image",
        n.image(),
        "--",
        "sleep",
        "1000",
    ]);
    let out = n
        .daemon
        .cli(&["exec", "--kill-after", "1s", "t", "--", "sleep", "30"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(out.stderr.starts_with("error: Timeout: "), "{out:?}");
    // rm prints what it removed.
    let rm = n.json(&["rm", "-f", "t"]);
    assert_eq!(rm["removed"].as_array().map(Vec::len), Some(1), "{rm}");
    assert_eq!(
        n.json(&["mount", "rm", "ov"])["removed"],
        serde_json::json!([ov["id"]])
    );
    assert_eq!(n.ok(&["mount", "rm", "img"]).trim(), m["id"].to_string());
    assert!(mounts_under(n.scratch.path()).is_empty());
    assert!(loops_under(n.scratch.path()).is_empty());
}

#[test]
fn rm_force_kills_at_once_and_json_output_is_uniform() {
    let n = Node::start("ibux");
    // An init that ignores SIGTERM: `stop` would wait its 10 s grace period.
    n.ok(&[
        "run",
        "--name",
        "stubborn",
        "--image",
        n.image(),
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo one; echo two; while :; do sleep 1; done",
    ]);
    // Timestamps: RFC 3339 for humans, milliseconds in JSON.
    let human: serde_json::Value = serde_json::from_str(&n.ok(&["inspect", "stubborn"])).unwrap();
    let created = human["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.contains('T'), "{human}");
    let j = n.json(&["inspect", "stubborn"]);
    assert!(
        j["created_at_ms"].as_u64().unwrap() > 1_600_000_000_000,
        "{j}"
    );
    assert!(j.get("created_at").is_none());
    let list = n.json(&["attach", "list"]);
    assert!(
        list[0]["created_at_ms"].as_u64().unwrap() > 1_600_000_000_000,
        "{list}"
    );
    // A Go time.Time (zos CreatedAt, msgpack extension -1) through `call`: RFC 3339.
    let zos: serde_json::Value = serde_json::from_str(&n.ok(&[
        "call",
        "container",
        "container@0.0.1",
        "Inspect",
        "\"\"",
        "\"stubborn\"",
    ]))
    .unwrap();
    let t = zos["CreatedAt"].as_str().unwrap_or_default();
    assert!(t.starts_with("20") && t.ends_with('Z'), "{zos}");
    // logs --json: JSON lines.
    assert!(imagebus_tests::daemon::wait_until(
        Duration::from_secs(10),
        || { n.ok(&["logs", "stubborn"]).contains("two") }
    ));
    let logs = n.ok(&["--json", "logs", "stubborn"]);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = lines.iter().map(|l| l["line"].as_str().unwrap()).collect();
    assert_eq!(texts, ["one", "two"], "{logs}");
    assert!(
        lines.iter().all(
            |l| l["stream"] == "stdout" && l["time"].as_str().is_some_and(|t| t.ends_with('Z'))
        ),
        "{logs}"
    );
    // rm -f: SIGKILL at once, well under the 10 s grace period.
    let started = Instant::now();
    let out = n.ok(&["rm", "-f", "stubborn"]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "rm -f took {took:?}");
    assert!(!out.trim().is_empty(), "rm prints the id");
    assert_eq!(n.json(&["ps"]), serde_json::json!([]));
    assert!(mounts_under(n.scratch.path()).is_empty());
}

#[test]
fn store_rm_force_never_takes_what_a_container_uses() {
    let n = Node::start("ibux");
    let a = n.json(&["attach", "create", "--name", "dev", "--loop", n.image()]);
    let m = n.json(&["mount", "create", "--name", "img", "--attachment", "dev"]);
    let ov = n.json(&["mount", "create", "--name", "root", "--lower", "img"]);
    let c = n.json(&[
        "run", "--name", "user", "--mount", "root", "--", "sleep", "1000",
    ]);
    // Held by a running container, directly or through the overlay: -f refuses.
    for args in [
        &["mount", "rm", "-f", "root"][..],
        &["mount", "rm", "-f", "img"],
        &["attach", "rm", "-f", "dev"],
    ] {
        let out = n.daemon.cli(args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("in use by container {}", c["id"])),
            "{args:?}: {out:?}"
        );
    }
    assert_eq!(n.json(&["inspect", "user"])["state"], "running");
    assert_eq!(
        mounts_under(n.scratch.path()).len(),
        2,
        "squashfs and overlay"
    );
    n.ok(&["rm", "-f", "user"]);
    // Held only by other mounts: -f removes it; the holders keep a dangling id.
    let out = n.daemon.cli(&["mount", "rm", "img"]);
    assert_eq!(out.status.code(), Some(6), "without -f: {out:?}");
    assert_eq!(
        n.ok(&["mount", "rm", "-f", "img"]).trim(),
        m["id"].to_string()
    );
    n.ok(&["mount", "rm", "root"]);
    assert!(n.json(&["mount", "list"]).as_array().unwrap().is_empty());
    assert_eq!(n.ok(&["attach", "rm", "dev"]).trim(), a["id"].to_string());
    let _ = ov;
    assert!(mounts_under(n.scratch.path()).is_empty());
    assert!(loops_under(n.scratch.path()).is_empty());
}

/// A peer that decodes its arguments as Go's msgpack v4 does: method `Scale` takes a
/// `float32` (a float64 is refused with Go's "invalid argument type"), `Len` a `[]byte`
/// (an array is refused). It serves `gopeer.calc@1` until `stop` is set.
fn go_peer(
    socket: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use imagebus_bus::protocol::{Output, Request, Response};
    std::thread::spawn(move || {
        let client = redis::Client::open(format!("unix://{}", socket.display())).unwrap();
        let mut conn = client.get_connection().unwrap();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let popped: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
                .arg("gopeer.calc@1")
                .arg(0.2)
                .query(&mut conn)
                .unwrap();
            let Some((_, bytes)) = popped else { continue };
            let req: Request = imagebus_bus::codec::decode(&bytes).unwrap();
            let arg = req.inputs.first().map(|b| b.to_vec()).unwrap_or_default();
            let marker = arg.first().copied().unwrap_or(0);
            let (data, error) = match (req.method.as_str(), marker) {
                ("Scale", 0xca) => {
                    let f = f32::from_be_bytes(arg[1..5].try_into().unwrap());
                    (rmp_f32(f * 2.0), None)
                }
                ("Len", 0xc4) => (vec![arg[1]], None),
                (_, m) => (
                    Vec::new(),
                    Some(format!(
                        "invalid argument type: msgpack: invalid code={m:x} decoding {}",
                        if req.method == "Scale" {
                            "float32"
                        } else {
                            "bytes"
                        }
                    )),
                ),
            };
            let resp = Response {
                id: req.id.clone(),
                output: Output {
                    data: serde_bytes::ByteBuf::from(data),
                    error: None,
                },
                error,
                code: None,
            };
            let _: () = redis::cmd("RPUSH")
                .arg(&req.reply_to)
                .arg(imagebus_bus::codec::encode(&resp).unwrap())
                .query(&mut conn)
                .unwrap();
        }
    })
}

fn rmp_f32(f: f32) -> Vec<u8> {
    let mut v = vec![0xca];
    v.extend_from_slice(&f.to_be_bytes());
    v
}

#[test]
fn typed_arguments_reach_a_go_shaped_peer() {
    let redis = RedisFixture::start();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peer = go_peer(redis.socket().to_path_buf(), stop.clone());
    let call = |args: &[&str]| {
        let mut all = vec!["--timeout", "5s", "call", "gopeer", "calc@1"];
        all.extend_from_slice(args);
        cli(&redis.url(), &all)
    };
    // A plain fraction is a float64: Go refuses it, and that is a Decode error.
    let out = call(&["Scale", "1.25"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: Decode: invalid argument type"),
        "{out:?}"
    );
    let out = call(&["Scale", r#"{"$f32": 1.25}"#]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "2.5");
    // A JSON array is an array; `$bytes` makes it a bin (array or base64 form).
    let out = call(&["Len", "[1, 2, 3]"]);
    assert!(out.stderr.starts_with("error: Decode: "), "{out:?}");
    let out = call(&["Len", r#"{"$bytes": [1, 2, 3]}"#]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "3");
    let out = call(&["Len", r#"{"$bytes": "AQID"}"#]);
    assert_eq!(out.stdout.trim(), "3", "{out:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    peer.join().unwrap();
}
