//! Who may call: Redis ACL users made from `imagebus acl`'s rules, on a real redis-server
//! and a real imagebusd. The daemon runs as a module user and does its whole job (a
//! container over a squashfs image); a read-only caller lists and inspects through the
//! read-only queues but is refused every change, by the server (`PermissionDenied`) and
//! by Redis (`NOPERM` on the full queues); a module user cannot take another module's
//! requests.

use imagebus_tests::daemon::{cli, cli_command, Daemon};
use imagebus_tests::image::busybox_squashfs;
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::KernelScratch;

/// `imagebus acl ARGS` (no broker needed): the rules.
fn rules(args: &[&str]) -> Vec<String> {
    let out = cli_command()
        .arg("acl")
        .args(args)
        .output()
        .expect("running imagebus acl");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn set_user(redis: &RedisFixture, user: &str, password: &str, rules: &[String]) {
    let pass = format!(">{password}");
    let mut args = vec!["ACL", "SETUSER", user, "on", pass.as_str()];
    args.extend(rules.iter().map(String::as_str));
    let reply = redis.command(&args).unwrap();
    assert!(reply.starts_with("+OK"), "ACL SETUSER {user}: {reply}");
}

fn as_user(redis: &RedisFixture, user: &str, password: &str) -> String {
    format!("unix://{user}:{password}@{}", redis.socket().display())
}

#[test]
fn module_users_serve_and_read_only_callers_only_read() {
    let redis = RedisFixture::start();
    set_user(
        &redis,
        "node",
        "nodepw",
        &rules(&[
            "module",
            "--user",
            "node",
            "imagebus",
            "attach",
            "mount",
            "container",
            "image",
        ]),
    );
    set_user(
        &redis,
        "viewer",
        "viewpw",
        &rules(&["reader", "--user", "viewer"]),
    );
    set_user(
        &redis,
        "attacher",
        "attpw",
        &rules(&["module", "--user", "attacher", "attach"]),
    );

    let scratch = KernelScratch::new("acl");
    let image = scratch.path().join("busybox.sqsh");
    std::fs::copy(busybox_squashfs(), &image).unwrap();
    let node_url = as_user(&redis, "node", "nodepw");
    let daemon = Daemon::spawn_in(scratch.path(), Some(&node_url), &[]);
    daemon.wait_ready();

    // The module user does the whole job: image → loop → squashfs → overlay → runc.
    let run = cli(
        &node_url,
        &[
            "run",
            "--name",
            "web",
            "--image",
            image.to_str().unwrap(),
            "--",
            "sleep",
            "1000",
        ],
    );
    assert!(run.status.success(), "{run:?}\n{}", daemon.log());

    // The read-only caller reads...
    let viewer = as_user(&redis, "viewer", "viewpw");
    let ps = cli(&viewer, &["--reader", "--json", "ps"]);
    assert!(ps.status.success(), "{ps:?}");
    assert!(ps.stdout.contains("\"web\""), "{}", ps.stdout);
    let inspect = cli(&viewer, &["--reader", "inspect", "web"]);
    assert!(inspect.status.success(), "{inspect:?}");
    // ...is refused every change by the server, which changes nothing...
    let rm = cli(&viewer, &["--reader", "--json", "rm", "-f", "web"]);
    assert!(!rm.status.success());
    assert!(rm.stdout.contains("PermissionDenied"), "{rm:?}");
    // ...and cannot reach the full queues at all: Redis refuses the push.
    let direct = cli(&viewer, &["--json", "rm", "-f", "web"]);
    assert!(!direct.status.success());
    assert!(
        direct.stdout.contains("PermissionDenied") && direct.stdout.contains("NOPERM"),
        "{direct:?}"
    );
    let still = cli(&node_url, &["--json", "ps"]);
    assert!(still.stdout.contains("\"running\""), "{still:?}");

    // A user serving attach may not pop the container module's queue (nor its read-only
    // one): Redis answers NOPERM before anything is taken.
    for queue in ["container.container@1", "container.container@1:ro"] {
        let reply = redis_as(&redis, "attacher", "attpw", &["LPOP", queue]);
        assert!(reply.contains("NOPERM"), "LPOP {queue}: {reply}");
    }
    let own = redis_as(&redis, "attacher", "attpw", &["LPOP", "attach.attach@1"]);
    assert!(
        own.starts_with('$') || own.starts_with('_') || own.starts_with("*-1"),
        "{own}"
    );

    let rm = cli(&node_url, &["rm", "-f", "web"]);
    assert!(rm.status.success(), "{rm:?}");
    drop(daemon);
}

/// One command as `user` over a fresh connection (AUTH first); the raw RESP reply.
fn redis_as(redis: &RedisFixture, user: &str, password: &str, args: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(redis.socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut send = |args: &[&str]| {
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(cmd.as_bytes()).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let auth = send(&["AUTH", user, password]);
    assert!(auth.starts_with("+OK"), "AUTH {user}: {auth}");
    send(args)
}
