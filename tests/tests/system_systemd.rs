//! A system container on a systemd host, with real systemd: the cached Debian 12 systemd
//! root filesystem (`scripts/systemd-rootfs.sh`) boots as PID 1 of a container of the
//! test's own node, with the `imagebus` binaries, the daemon's run directory, the
//! deployments (the unit's working directory) and the broker's socket bind-mounted at the
//! paths they have on the host. That systemd is the
//! host's service manager for the system container: imagebusd is pointed at it with
//! `--systemd-root` (its `/proc/PID/root`, where `run/systemd/system` exists),
//! `--systemd-unit-dir` (its `/etc/systemd/system`) and `--systemctl "nsenter --mount=…
//! --pid=… -- systemctl"`, through a symlink to `/proc/PID` made once it has booted.
//!
//! `imagebus system install` of an image without `service.template` writes the default
//! `NAME.service` into systemd's unit directory and runs `systemctl enable --now`; systemd
//! runs its `ExecStart`, `imagebus --run-dir … start --attach NAME`, which talks to the
//! test's daemon over the bind-mounted socket and starts the container NAME (`imagebus
//! ps`, `logs`, `exec`). `systemctl stop` and `start` inside stop and start the container;
//! `imagebus system update` restarts it on the new deployment; uninstall disables and
//! removes the unit (systemd no longer knows it, no `.wants` link) and leaves nothing of
//! the system container. Root, runc, nsenter; Debian's mirror the first time.

use imagebus_tests::bus_node::require_container_tools;
use imagebus_tests::cli_node::CliNode;
use imagebus_tests::daemon::{bin_dir, wait_until};
use imagebus_tests::oci_image::{busybox_layer, config, layer, oci_layout, Entry};
use imagebus_tests::systemd::{systemd_image, wait_booted};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A busybox image whose Cmd prints its version and waits; no `/exports` templates but a
/// `manifest.json`, so the default service and the default configuration are used.
fn image(dir: &Path, v: u32) {
    let entries = vec![
        Entry::dir("exports/"),
        Entry::file("exports/manifest.json", r#"{"defaultValues": {}}"#),
    ];
    let cmd = format!("echo started v{v}; trap 'exit 0' TERM; while :; do sleep 1; done");
    let cfg = config(&["PATH=/bin"], &["/bin/sh", "-c", &cmd], &[]);
    oci_layout(
        dir,
        &[busybox_layer(), layer(&entries)],
        &cfg,
        &v.to_string(),
    );
}

struct Host {
    node: CliNode,
    dirs: tempfile::TempDir,
}

impl Host {
    /// `sd` → `/proc/PID` of the systemd container, once it has booted.
    fn proc_link(&self) -> PathBuf {
        self.dirs.path().join("sd")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--timeout", "120s"];
        all.extend_from_slice(args);
        self.node.json(&all)
    }

    /// Runs `systemctl ARGS` inside the systemd container: (exit code, stdout).
    fn systemctl(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["exec", "sdhost", "--", "systemctl", "--no-pager"];
        all.extend_from_slice(args);
        let out = self.node.daemon.cli(&all);
        (
            out.status.code().unwrap_or(-1),
            out.stdout.trim().to_string(),
        )
    }

    fn state(&self, name: &str) -> Value {
        self.json(&["inspect", name])["state"].clone()
    }

    fn wait_state(&self, name: &str, want: &str) {
        let ok = wait_until(Duration::from_secs(60), || self.state(name) == want);
        if !ok {
            let (_, status) = self.systemctl(&["status", "demo.service"]);
            let journal = self.node.daemon.cli(&[
                "exec",
                "sdhost",
                "--",
                "journalctl",
                "--no-pager",
                "-u",
                "demo.service",
            ]);
            panic!(
                "{name} not {want}: {}\nsystemctl status: {status}\njournal: {}\n{}",
                self.state(name),
                journal.stdout,
                self.node.daemon.log()
            );
        }
    }
}

#[test]
fn systemd_runs_the_installed_unit_and_uninstall_leaves_nothing() {
    require_container_tools();
    let dirs = tempfile::tempdir().unwrap();
    for d in ["host", "zinit", "images"] {
        std::fs::create_dir(dirs.path().join(d)).unwrap();
    }
    let p = |d: &str| dirs.path().join(d).to_str().unwrap().to_string();
    let sd = p("sd");
    let systemctl = format!("nsenter --mount={sd}/ns/mnt --pid={sd}/ns/pid -- systemctl");
    let (root, units) = (
        format!("{sd}/root"),
        format!("{sd}/root/etc/systemd/system"),
    );
    let (host, zinit, zsock) = (p("host"), p("zinit"), p("zinit.sock"));
    let node = CliNode::start_with(
        "ibsysd",
        &[
            "--system-host-root",
            &host,
            "--zinit-dir",
            &zinit,
            "--zinit-socket",
            &zsock,
            "--systemd-root",
            &root,
            "--systemd-unit-dir",
            &units,
            "--systemctl",
            &systemctl,
        ],
    );
    image(&dirs.path().join("images/v1"), 1);
    image(&dirs.path().join("images/v2"), 2);
    let v1 = format!("oci:{}:1", p("images/v1"));
    let v2 = format!("oci:{}:2", p("images/v2"));
    let h = Host { node, dirs };

    // The host's systemd: PID 1 of a container that sees the CLI, the daemon's run
    // directory (its broker file) and the broker's socket where the host does.
    let sqsh = systemd_image(h.node.daemon.dir());
    let bins = bin_dir().to_str().unwrap().to_string();
    let run = h.node.daemon.run_dir().to_str().unwrap().to_string();
    let sock_dir = h.node.redis.socket().parent().unwrap();
    let sock_dir = sock_dir.to_str().unwrap().to_string();
    // The deployments too: the unit's WorkingDirectory is its slot (DESTDIR).
    let slots = h.node.daemon.dir().join("state/system");
    let slots = slots.to_str().unwrap().to_string();
    let started = h.node.daemon.cli(&[
        "--timeout",
        "60s",
        "run",
        "--name",
        "sdhost",
        "--image",
        sqsh.to_str().unwrap(),
        "--systemd",
        "--bind",
        &format!("{bins}:{bins}:ro"),
        "--bind",
        &format!("{run}:{run}"),
        "--bind",
        &format!("{sock_dir}:{sock_dir}"),
        "--bind",
        &format!("{slots}:{slots}:ro"),
        "--",
        "/usr/lib/systemd/systemd",
    ]);
    assert!(
        started.status.success(),
        "{started:?}\n{}",
        h.node.daemon.log()
    );
    wait_booted(&h.node.daemon, "sdhost");
    let pid = h.json(&["inspect", "sdhost"])["pid"].as_u64().unwrap();
    std::os::unix::fs::symlink(format!("/proc/{pid}"), h.proc_link()).unwrap();

    // Install: systemd's unit, enabled and started by systemd.
    let info = h.json(&["system", "install", "demo", &v1]);
    assert_eq!(info["supervisor"], "systemd", "{info}");
    assert_eq!(info["unit"], format!("{units}/demo.service"), "{info}");
    h.wait_state("demo", "running");
    let c = h.json(&["inspect", "demo"]);
    let restart = &c["spec"]["restart"];
    assert!(
        restart.is_null() || restart["policy"] == "no",
        "systemd restarts it, not imagebusd: {c}"
    );
    let unit = std::fs::read_to_string(format!("{units}/demo.service")).unwrap();
    let exec_start = format!("ExecStart={bins}/imagebus --run-dir {run} start --attach demo");
    assert!(
        unit.lines().any(|l| l == exec_start),
        "{exec_start:?} in\n{unit}"
    );
    assert_eq!(
        h.systemctl(&["is-enabled", "demo.service"]),
        (0, "enabled".into())
    );
    assert_eq!(
        h.systemctl(&["is-active", "demo.service"]),
        (0, "active".into())
    );
    // The unit's main process is the attached CLI, inside systemd's container.
    let (_, main) = h.systemctl(&["show", "-p", "MainPID", "--value", "demo.service"]);
    let main: u32 = main.parse().unwrap();
    assert!(main > 0, "MainPID {main}");
    let cmdline = h.node.ok(&[
        "exec",
        "sdhost",
        "--",
        "cat",
        &format!("/proc/{main}/cmdline"),
    ]);
    assert!(cmdline.contains("start\0--attach\0demo"), "{cmdline:?}");
    let logs = h.node.ok(&["logs", "demo"]);
    assert!(logs.contains("started v1"), "{logs}");
    let hello = h.node.ok(&["exec", "demo", "--", "cat", "/proc/1/cmdline"]);
    assert!(hello.starts_with("/bin/sh"), "{hello:?}");

    // systemd drives the container: stop stops it, start starts it again.
    assert_eq!(h.systemctl(&["stop", "demo.service"]).0, 0);
    h.wait_state("demo", "exited");
    assert_eq!(h.systemctl(&["start", "demo.service"]).0, 0);
    h.wait_state("demo", "running");

    // Update: systemd restarts the unit on the new deployment.
    let info = h.json(&["system", "update", "demo", &v2]);
    assert_eq!(info["active"], 1, "{info}");
    h.wait_state("demo", "running");
    let ok = wait_until(Duration::from_secs(30), || {
        h.node.ok(&["logs", "demo"]).contains("started v2")
    });
    assert!(ok, "v2 runs: {}", h.node.ok(&["logs", "demo"]));
    assert_eq!(
        h.systemctl(&["is-active", "demo.service"]),
        (0, "active".into())
    );

    // Uninstall: systemd no longer knows the unit, nothing of it is left.
    h.node
        .ok(&["--timeout", "120s", "system", "uninstall", "demo"]);
    assert!(!Path::new(&format!("{units}/demo.service")).exists());
    let (_, load) = h.systemctl(&["show", "-p", "LoadState", "--value", "demo.service"]);
    assert_eq!(load, "not-found");
    let wants = h.node.ok(&[
        "exec",
        "sdhost",
        "--",
        "ls",
        "-A",
        "/etc/systemd/system/multi-user.target.wants",
    ]);
    assert!(!wants.contains("demo"), "{wants}");
    assert_eq!(h.json(&["system", "ls"]), serde_json::json!([]));
    let names: Vec<Value> = h
        .json(&["ps"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, ["sdhost"], "only systemd's container is left");
    let mounts = h.json(&["mount", "list"]);
    assert!(
        !mounts.to_string().contains("sys.demo"),
        "no deployment mount: {mounts}"
    );
    let state = h.node.daemon.dir().join("state/system");
    let left: Vec<_> = std::fs::read_dir(&state).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    let host_left: Vec<_> = std::fs::read_dir(&host).unwrap().flatten().collect();
    assert!(host_left.is_empty(), "{host_left:?}");

    // The systemd container goes; then the node is clean.
    std::fs::remove_file(h.proc_link()).unwrap();
    h.node.ok(&["--timeout", "60s", "stop", "sdhost"]);
    h.node.ok(&["rm", "sdhost"]);
    for img in h.json(&["image", "ls"]).as_array().unwrap().clone() {
        h.node.ok(&["image", "rm", img["digest"].as_str().unwrap()]);
    }
    h.node.assert_clean();
}
