//! System containers (`imagebus system …`, `syscontainer.syscontainer@1`) through the
//! real CLI on a real node (redis, imagebusd, the kernel's loop/erofs mounts, runc): a
//! hand-made image with all four `/exports` templates and a `hostfs/` file is installed
//! (variables rendered into the running container, the zinit unit written and its
//! `exec` working), refused with a missing or forced variable (nothing changed), updated
//! to v2 keeping the `--set` values, rolled back, uninstalled leaving nothing, and a
//! `kill -9` of imagebusd in the middle of updates leaves exactly one complete deployment
//! active after a restart; `install --rootfs DIR` runs the container on that host
//! directory and uninstall leaves the directory as it was and nothing else. No zinit
//! answers in these tests and no systemd runs, so imagebusd supervises. Root.

use imagebus_tests::cli_node::CliNode;
use imagebus_tests::daemon::{cli_command, wait_until};
use imagebus_tests::image::busybox_rootfs;
use imagebus_tests::oci_image::{busybox_layer, config, layer, oci_layout, Entry};
use imagebus_tests::rootfs::{loops_under, mounts_under};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

const CONFIG_TEMPLATE: &str = r#"{
  "ociVersion": "1.0.0",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["/bin/sh", "-c", "trap 'exit 7' TERM; echo started; while :; do sleep 1; done"],
    "env": ["PATH=/bin", "NAME=$NAME", "GREETING=${GREETING}", "TOKEN=$TOKEN",
            "REGION=${REGION}", "VERSION=@V@", "RUNDIR=$RUN_DIRECTORY", "COST=$$5"],
    "cwd": "/"
  },
  "root": {"path": "rootfs", "readonly": true},
  "mounts": [{"destination": "/var/lib/app", "type": "bind",
              "source": "${STATE_DIRECTORY}/${NAME}", "options": ["rbind", "rw"]}]
}"#;

const MANIFEST: &str = r#"{"version": "1.0", "defaultValues": {"GREETING": "hello"}}"#;

const SERVICE: &str = "[Unit]
Description=system container test
After=network.target redis.service

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
Environment=\"GREETING=${GREETING}\"
WorkingDirectory=$DESTDIR
KillSignal=SIGTERM
TimeoutStopSec=15

[Install]
WantedBy=multi-user.target
";

const TMPFILES: &str = "d ${STATE_DIRECTORY}/${NAME} 0700 ${HOST_UID} ${HOST_GID} - -
Z ${STATE_DIRECTORY}/${NAME} 0750 - - - -
f ${RUN_DIRECTORY}/${NAME}.conf 0644 - - - region=${REGION}
L ${RUN_DIRECTORY}/${NAME}.link - - - - ${STATE_DIRECTORY}/${NAME}
";

/// The test image, version `v` (1 or 2): busybox plus `/exports` and a mountpoint for
/// the state bind.
fn image(dir: &Path, v: u32) {
    let mut entries = vec![
        Entry::dir("var/"),
        Entry::dir("var/lib/"),
        Entry::dir("var/lib/app/"),
        Entry::dir("exports/"),
        Entry::file(
            "exports/config.json.template",
            &CONFIG_TEMPLATE.replace("@V@", &v.to_string()),
        ),
        Entry::file("exports/manifest.json", MANIFEST),
        Entry::file("exports/service.template", SERVICE),
        Entry::file("exports/tmpfiles.template", TMPFILES),
        Entry::dir("exports/hostfs/"),
        Entry::dir("exports/hostfs/etc/"),
        Entry::dir("exports/hostfs/etc/sysdemo/"),
        Entry::file("exports/hostfs/etc/sysdemo/hello.conf", &format!("v{v}\n")),
    ];
    if v == 2 {
        entries.push(Entry::file(
            "exports/hostfs/etc/sysdemo/v2-only.conf",
            "new\n",
        ));
    }
    let cfg = config(&["PATH=/bin"], &["sh"], &[("atomic.type", "system")]);
    oci_layout(
        dir,
        &[busybox_layer(), layer(&entries)],
        &cfg,
        &v.to_string(),
    );
}

/// A node whose system containers write under `host/` (host root) and `zinit/`, with
/// no zinit answering.
struct Sys {
    node: CliNode,
    dirs: tempfile::TempDir,
}

impl Sys {
    fn start() -> Self {
        let dirs = tempfile::tempdir().unwrap();
        for d in ["host", "zinit", "images"] {
            std::fs::create_dir(dirs.path().join(d)).unwrap();
        }
        let p = |d: &str| dirs.path().join(d).to_str().unwrap().to_string();
        let (host, zinit, sock) = (p("host"), p("zinit"), p("zinit.sock"));
        let node = CliNode::start_with(
            "ibsys",
            &[
                // No systemd there, even on a host that runs it: imagebusd supervises.
                "--systemd-root",
                &host,
                "--system-host-root",
                &host,
                "--zinit-dir",
                &zinit,
                "--zinit-socket",
                &sock,
            ],
        );
        image(&dirs.path().join("images/v1"), 1);
        image(&dirs.path().join("images/v2"), 2);
        Self { node, dirs }
    }

    fn src(&self, v: u32) -> String {
        format!(
            "oci:{}:{v}",
            self.dirs.path().join(format!("images/v{v}")).display()
        )
    }

    fn host(&self) -> PathBuf {
        self.dirs.path().join("host")
    }

    fn unit(&self) -> PathBuf {
        self.dirs.path().join("zinit/demo.yaml")
    }

    fn system_dir(&self) -> PathBuf {
        self.node.daemon.dir().join("state/system")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--timeout", "120s"];
        all.extend_from_slice(args);
        self.node.json(&all)
    }

    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.node.daemon.cli(args);
        assert!(!out.status.success(), "{args:?} succeeded: {out:?}");
        (out.status.code().unwrap_or(-1), out.stderr)
    }

    /// The container's environment, read with `exec env`.
    fn env(&self) -> BTreeMap<String, String> {
        let out = self.node.ok(&["exec", "demo", "--", "env"]);
        out.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn wait_running(&self) -> Value {
        let mut last = Value::Null;
        let ok = wait_until(Duration::from_secs(30), || {
            last = self.json(&["inspect", "demo"]);
            last["state"] == "running"
        });
        assert!(ok, "demo not running: {last}\n{}", self.node.daemon.log());
        last
    }

    /// Entries of a directory, sorted (none when it is missing).
    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Nothing of a system container is left: files, units, containers, mounts, loops.
    fn assert_nothing_left(&self) {
        assert_eq!(Self::entries(&self.system_dir()), Vec::<String>::new());
        assert!(!self.unit().exists());
        assert_eq!(Self::entries(&self.host()), Vec::<String>::new());
        assert_eq!(self.json(&["ps"]), serde_json::json!([]));
        assert_eq!(self.json(&["mount", "list"]), serde_json::json!([]));
        assert_eq!(self.json(&["attach", "list"]), serde_json::json!([]));
        assert_eq!(self.json(&["system", "ls"]), serde_json::json!([]));
        let scratch = self.node.scratch.path();
        assert!(
            mounts_under(scratch).is_empty(),
            "{:?}",
            mounts_under(scratch)
        );
        assert!(
            loops_under(scratch).is_empty(),
            "{:?}",
            loops_under(scratch)
        );
    }

    fn active_link(&self) -> String {
        std::fs::read_link(self.system_dir().join("demo"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

/// The zinit 0.2 unit keys; anything else fails to parse.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ZinitUnit {
    exec: String,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    oneshot: bool,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    signal: Option<BTreeMap<String, String>>,
    #[serde(default)]
    log: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    shutdown_timeout: Option<u64>,
}

/// Runs the unit's `exec` as zinit would (split like a shell, no shell).
fn spawn_exec(exec: &str) -> Child {
    let argv = shell_words::split(exec).unwrap();
    let mut cmd = cli_command();
    cmd.args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    // Attached once it catches SIGTERM (bit 15 of SigCgt).
    let pid = child.id();
    let catches = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))
                    .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            })
            .is_some_and(|m| m & (1 << 14) != 0)
    });
    assert!(catches, "the unit's exec never caught SIGTERM");
    child
}

fn sigterm(child: &Child) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            panic!("the unit's exec did not exit in {timeout:?}");
        }
    }
}

#[test]
fn install_update_rollback_uninstall_through_the_cli() {
    let s = Sys::start();
    let v1 = s.src(1);

    // Missing variables: all listed, nothing changed.
    let (code, err) = s.fails(&["system", "install", "demo", &v1]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("REGION") && err.contains("TOKEN"), "{err}");
    // A forced variable.
    let (code, err) = s.fails(&[
        "system", "install", "demo", &v1, "--set", "NAME=x", "--set", "TOKEN=t",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("InvalidArgument") && err.contains("NAME"),
        "{err}"
    );
    s.assert_nothing_left();

    // Install from the import source.
    let info = s.json(&[
        "system",
        "install",
        "demo",
        &v1,
        "--set",
        "TOKEN=t1",
        "--set",
        "REGION=eu",
    ]);
    assert_eq!(info["active"], 0, "{info}");
    assert_eq!(info["supervisor"], "imagebusd", "{info}");
    assert_eq!(s.active_link(), "demo.0");
    let c = s.wait_running();
    assert_eq!(c["name"], "demo");
    assert_eq!(c["spec"]["restart"]["policy"], "always", "{c}");
    let env = s.env();
    assert_eq!(env["NAME"], "demo");
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["TOKEN"], "t1");
    assert_eq!(env["REGION"], "eu");
    assert_eq!(env["VERSION"], "1");
    assert_eq!(env["COST"], "$5");
    assert_eq!(env["RUNDIR"], s.host().join("run").to_str().unwrap());
    // The same through /proc/<pid>/environ of the init.
    let pid = c["pid"].as_u64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ.split(|b| *b == 0).any(|e| e == b"TOKEN=t1"),
        "{}",
        String::from_utf8_lossy(&environ)
    );

    // Host side: hostfs, tmpfiles (d, Z, f, L), the unit.
    let host = s.host();
    assert_eq!(
        std::fs::read_to_string(host.join("etc/sysdemo/hello.conf")).unwrap(),
        "v1\n"
    );
    let state = host.join("var/lib/demo");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o750, "Z after d");
    assert_eq!(
        std::fs::read_to_string(host.join("run/demo.conf")).unwrap(),
        "region=eu"
    );
    assert_eq!(
        std::fs::read_link(host.join("run/demo.link")).unwrap(),
        state
    );
    let unit: ZinitUnit =
        serde_yaml::from_str(&std::fs::read_to_string(s.unit()).unwrap()).unwrap();
    let argv = shell_words::split(&unit.exec).unwrap();
    assert!(argv[0].ends_with("/imagebus"), "{argv:?}");
    assert_eq!(
        argv[1..],
        [
            "--run-dir",
            s.node.daemon.run_dir().to_str().unwrap(),
            "start",
            "--attach",
            "demo"
        ],
        "{argv:?}"
    );
    assert_eq!(unit.after, ["redis"]);
    assert_eq!(unit.env["GREETING"], "hello");
    assert_eq!(
        unit.dir.as_deref(),
        Some(s.system_dir().join("demo.0").to_str().unwrap())
    );
    assert_eq!(unit.signal.as_ref().unwrap()["stop"], "sigterm");
    assert_eq!(unit.shutdown_timeout, Some(15));
    assert!(s.system_dir().join("demo.0/demo.service").is_file());
    assert!(s.system_dir().join("demo.0/config.json").is_file());

    // The unit's exec: attached to the running container; SIGTERM stops it, and the
    // init's exit code (7 from its TERM trap) is passed through. Run again, it starts
    // the container.
    for round in 0..2 {
        let mut child = spawn_exec(&unit.exec);
        s.wait_running();
        sigterm(&child);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        assert_eq!(status.code(), Some(7), "round {round}");
        let c = s.json(&["inspect", "demo"]);
        assert_eq!(c["state"], "exited", "{c}");
        assert_eq!(c["exit_code"], 7, "{c}");
    }

    // Update to v2 (imported by name first), --set values kept, one overridden.
    s.json(&["image", "import", &s.src(2), "--name", "sysdemo:2"]);
    let info = s.json(&[
        "system",
        "update",
        "demo",
        "sysdemo:2",
        "--set",
        "GREETING=hi",
    ]);
    assert_eq!(info["active"], 1, "{info}");
    assert_eq!(info["deployments"].as_array().unwrap().len(), 2, "{info}");
    assert_eq!(s.active_link(), "demo.1");
    s.wait_running();
    let env = s.env();
    assert_eq!(
        (&env["VERSION"][..], &env["TOKEN"][..], &env["GREETING"][..]),
        ("2", "t1", "hi")
    );
    assert_eq!(
        std::fs::read_to_string(host.join("etc/sysdemo/hello.conf")).unwrap(),
        "v2\n"
    );
    assert!(host.join("etc/sysdemo/v2-only.conf").is_file());

    // Rollback to v1.
    let info = s.json(&["system", "rollback", "demo"]);
    assert_eq!(info["active"], 0, "{info}");
    assert_eq!(s.active_link(), "demo.0");
    s.wait_running();
    let env = s.env();
    assert_eq!((&env["VERSION"][..], &env["GREETING"][..]), ("1", "hello"));
    assert!(!host.join("etc/sysdemo/v2-only.conf").exists());
    let table = s.node.ok(&["system", "ls"]);
    assert!(
        table.lines().nth(1).is_some_and(|l| l.starts_with("demo")),
        "{table}"
    );

    // A hostfs file someone else owns blocks a second system container.
    let (code, err) = s.fails(&[
        "system", "install", "other", &v1, "--set", "TOKEN=x", "--set", "REGION=y",
    ]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("hello.conf"), "{err}");

    // Uninstall: nothing left.
    s.node
        .ok(&["--timeout", "120s", "system", "uninstall", "demo"]);
    s.node.ok(&["image", "rm", "sysdemo:2"]);
    for img in s.json(&["image", "ls"]).as_array().unwrap().clone() {
        s.node.ok(&["image", "rm", img["digest"].as_str().unwrap()]);
    }
    s.assert_nothing_left();
}

/// After a restart, exactly one complete deployment is active and running.
fn assert_one_active(s: &Sys) -> u32 {
    let dir = s.system_dir();
    let link = s.active_link();
    let active: u32 = link.trim_start_matches("demo.").parse().unwrap();
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.join(&link).join("info.json")).unwrap()).unwrap();
    assert!(info["deployment"]["activated_at"].is_u64(), "{info}");
    let other = dir.join(format!("demo.{}", 1 - active));
    if other.exists() {
        let o: Value = serde_json::from_slice(
            &std::fs::read(other.join("info.json"))
                .expect("an inactive slot that is kept is complete"),
        )
        .unwrap();
        assert!(o["deployment"]["activated_at"].is_u64(), "{o}");
    }
    let sys = s.json(&["system", "inspect", "demo"]);
    assert_eq!(sys["active"], active, "{sys}");
    let c = s.wait_running();
    let mounts = s.json(&["mount", "list"]);
    let mine: Vec<&Value> = mounts
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == format!("sys.demo.{active}"))
        .collect();
    assert_eq!(mine.len(), 1, "{mounts}");
    assert_eq!(
        c["mount"], mine[0]["id"],
        "the container is on the active slot"
    );
    let names: Vec<String> = mounts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str().map(String::from))
        .collect();
    let mut expected = vec![format!("sys.demo.{active}")];
    if other.exists() {
        expected.push(format!("sys.demo.{}", 1 - active));
    }
    let mut got = names.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "mounts of the deployments only");
    let version = s.env()["VERSION"].clone();
    let image = info["deployment"]["image"].as_str().unwrap().to_string();
    assert!(image.ends_with(&version), "{image} runs VERSION={version}");
    active
}

#[test]
fn kill_9_in_the_middle_of_an_update_leaves_one_complete_deployment() {
    let mut s = Sys::start();
    s.json(&["image", "import", &s.src(1), "--name", "sysdemo:1"]);
    s.json(&["image", "import", &s.src(2), "--name", "sysdemo:2"]);
    s.json(&[
        "system",
        "install",
        "demo",
        "sysdemo:1",
        "--set",
        "TOKEN=t",
        "--set",
        "REGION=r",
    ]);
    s.wait_running();
    let dir = s.system_dir();
    // Three kill points: the other slot appears (checkout), its record is written (the
    // old service is being stopped), the link points at it (after the commit).
    for round in 0..3u32 {
        let from: u32 = s.active_link().trim_start_matches("demo.").parse().unwrap();
        let to = 1 - from;
        let image = if from == 0 { "sysdemo:2" } else { "sysdemo:1" };
        let target = dir.join(format!("demo.{to}"));
        let mut cmd = cli_command();
        cmd.arg("--broker")
            .arg(s.node.daemon.url())
            .args(["--timeout", "120s", "system", "update", "demo", image])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Rounds 0 and 1 wait for the path to be (re)made: the update first removes
        // the older deployment from the target slot.
        let watched = match round {
            0 => target.clone(),
            _ => target.join("info.json"),
        };
        let mut gone = !watched.exists();
        let mut update = cmd.spawn().unwrap();
        let hit = wait_until(Duration::from_secs(60), || {
            let switched = s.active_link() == format!("demo.{to}");
            if round == 2 {
                return switched;
            }
            gone |= !watched.exists();
            (gone && watched.exists()) || switched
        });
        assert!(hit, "round {round}: the update never got there");
        s.node.daemon.kill9();
        let _ = update.kill();
        let _ = update.wait();
        s.node.daemon.restart();
        let active = assert_one_active(&s);
        if round == 2 {
            assert_eq!(
                active, to,
                "killed after the commit: the new deployment is active"
            );
        }
    }
    s.node
        .ok(&["--timeout", "120s", "system", "uninstall", "demo"]);
    for img in s.json(&["image", "ls"]).as_array().unwrap().clone() {
        s.node.ok(&["image", "rm", img["digest"].as_str().unwrap()]);
    }
    s.assert_nothing_left();
}

/// Every file under `dir` with its type, mode and contents (symlink targets), sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let mode = m.permissions().mode();
        if m.file_type().is_symlink() {
            out.push(format!(
                "{rel} -> {}",
                std::fs::read_link(p).unwrap().display()
            ));
        } else if m.is_dir() {
            out.push(format!("{rel}/ {mode:o}"));
            for e in std::fs::read_dir(p).unwrap().flatten() {
                walk(root, &e.path(), out);
            }
        } else {
            let bytes = std::fs::read(p).unwrap();
            let sum: u64 = bytes.iter().map(|b| u64::from(*b)).sum();
            out.push(format!("{rel} {mode:o} {} {sum}", bytes.len()));
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn install_with_rootfs_runs_on_the_host_directory_and_leaves_it_untouched() {
    let s = Sys::start();
    // A host directory holding a root filesystem with the same /exports as the image,
    // and a marker the image does not have.
    let dir = s.dirs.path().join("rootfs");
    busybox_rootfs(&dir);
    for d in ["var/lib/app", "exports/hostfs/etc/sysdemo"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let files = [
        (
            "exports/config.json.template",
            CONFIG_TEMPLATE.replace("@V@", "dir"),
        ),
        ("exports/manifest.json", MANIFEST.to_string()),
        ("exports/service.template", SERVICE.to_string()),
        ("exports/tmpfiles.template", TMPFILES.to_string()),
        (
            "exports/hostfs/etc/sysdemo/hello.conf",
            "from the directory\n".into(),
        ),
        ("marker", "host directory\n".into()),
    ];
    for (f, text) in &files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    let before = tree(&dir);
    let d = dir.to_str().unwrap();
    // A directory that is not there is refused before anything is imported.
    let missing = s.dirs.path().join("missing");
    let (code, err) = s.fails(&[
        "system",
        "install",
        "demo",
        &s.src(1),
        "--rootfs",
        missing.to_str().unwrap(),
        "--set",
        "TOKEN=t",
        "--set",
        "REGION=r",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("rootfs") && err.contains("not a directory"),
        "{err}"
    );
    assert_eq!(s.json(&["image", "ls"]), serde_json::json!([]));
    s.assert_nothing_left();

    let info = s.json(&[
        "system",
        "install",
        "demo",
        &s.src(1),
        "--rootfs",
        d,
        "--set",
        "TOKEN=t",
        "--set",
        "REGION=r",
    ]);
    assert_eq!(info["deployments"][0]["rootfs"], d, "{info}");
    assert_eq!(info["deployments"][0]["digest"], "", "{info}");
    s.wait_running();
    // The container runs on the directory: its marker, its rendered template.
    assert_eq!(
        s.node.ok(&["exec", "demo", "--", "cat", "/marker"]),
        "host directory\n"
    );
    assert_eq!(s.env()["VERSION"], "dir");
    assert_eq!(
        std::fs::read_to_string(s.host().join("etc/sysdemo/hello.conf")).unwrap(),
        "from the directory\n"
    );
    // Read-only: the container cannot write into the host directory.
    let w = s
        .node
        .daemon
        .cli(&["exec", "demo", "--", "touch", "/written"]);
    assert!(!w.status.success(), "{w:?}");
    assert!(!dir.join("written").exists());
    // The mount is a bind of the directory.
    let mounts = s.json(&["mount", "list"]);
    let m = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "sys.demo.0")
        .unwrap_or_else(|| panic!("{mounts}"))
        .clone();
    assert!(m.to_string().contains(d), "{m}");

    // An update keeps the directory.
    let info = s.json(&["system", "update", "demo", "--set", "REGION=r2"]);
    assert_eq!(info["deployments"][0]["rootfs"], d, "{info}");
    s.wait_running();
    assert_eq!(s.env()["REGION"], "r2");

    s.node
        .ok(&["--timeout", "120s", "system", "uninstall", "demo"]);
    assert!(dir.is_dir(), "the host directory is not removed");
    assert_eq!(tree(&dir), before, "the host directory is as it was");
    for img in s.json(&["image", "ls"]).as_array().unwrap().clone() {
        s.node.ok(&["image", "rm", img["digest"].as_str().unwrap()]);
    }
    s.assert_nothing_left();
}
