//! A one-node Ceph cluster for integration tests, started with `scripts/ceph-micro.sh` on
//! first use in a test process and shared by all its tests. It is torn down (`down`) when
//! the test process ends — passed, failed or killed — by a small watcher process started
//! with it, which waits for the test process to disappear. Directory and ports are private
//! to the test process (`/tmp/imagebus-ceph-test-<pid>`, a free block of 20 ports below the
//! ephemeral range), so test binaries and developers running tests at the same time do not
//! collide; clusters left by killed test processes are torn down on the next start.
//!
//! Needs ceph-mon, ceph-osd, ceph-common and rbd-fuse; a missing package fails the test
//! with the install command (printed by the script).

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// What tests need to talk to the cluster.
#[derive(Debug, Clone)]
pub struct CephEnv {
    /// The cluster directory.
    pub dir: PathBuf,
    /// The admin `ceph.conf`.
    pub conf: PathBuf,
    /// Monitor address (`127.0.0.1:port`, msgr v1).
    pub monitor: String,
    /// The pool with test images.
    pub pool: String,
    /// A user with `osd 'profile rbd-read-only'`.
    pub ro_user: String,
    /// Its key.
    pub ro_secret: String,
    /// A user with `osd 'profile rbd'`.
    pub rw_user: String,
    /// Its key.
    pub rw_secret: String,
    ports: Vec<(String, String)>,
}

impl CephEnv {
    /// Imports `file` as image `name` of the test pool (replacing an older one).
    pub fn import(&self, file: &Path, name: &str) {
        let out = script(
            &self.dir,
            &self.ports,
            &["import", &file.display().to_string(), name],
        );
        assert!(out.0, "ceph-micro.sh import failed: {}", out.1);
    }

    /// Creates (or fetches) `client.<name>` with `caps` (`["mon", "...", "osd", "..."]`) and
    /// returns its key.
    pub fn user(&self, name: &str, caps: &[&str]) -> String {
        let mut args = vec!["auth", "get-or-create-key"];
        let entity = format!("client.{name}");
        args.push(&entity);
        args.extend_from_slice(caps);
        admin_tool("ceph", &self.conf, &args).trim().to_string()
    }

    /// Runs `rbd` as admin with `args`, returning stdout.
    pub fn rbd(&self, args: &[&str]) -> String {
        admin_tool("rbd", &self.conf, args)
    }
}

/// Runs a Ceph tool (`ceph`, `rbd`, `rados`) as admin of the cluster of `conf`, returning
/// stdout; panics with its stderr when it fails.
pub fn admin_tool(bin: &str, conf: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {bin} (install ceph-common): {e}"));
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A reference to the shared cluster; see the module docs.
#[derive(Debug)]
pub struct CephGuard {
    env: Arc<CephEnv>,
}

impl Deref for CephGuard {
    type Target = CephEnv;
    fn deref(&self) -> &CephEnv {
        &self.env
    }
}

static SHARED: Mutex<Option<Arc<CephEnv>>> = Mutex::new(None);

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ceph-micro.sh")
}

/// `scripts/ceph-micro.sh ARGS` for the cluster in `dir` on `ports`, not yet started.
pub fn script_command(dir: &Path, ports: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script_path())
        .args(args)
        .env("CEPH_MICRO_DIR", dir)
        .envs(ports.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

/// Runs `cmd`: (success, stderr, stdout).
pub fn run_script(mut cmd: Command) -> (bool, String, String) {
    let out = cmd.output().expect("running scripts/ceph-micro.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn script(dir: &Path, ports: &[(String, String)], args: &[&str]) -> (bool, String, String) {
    run_script(script_command(dir, ports, args))
}

fn pid_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

/// Tears down clusters of test processes that no longer exist.
fn sweep_stale() {
    let Ok(rd) = fs::read_dir("/tmp") else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("imagebus-ceph-test-")
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        if !pid_alive(pid) {
            let _ = script(&e.path(), &[], &["down"]);
        }
    }
}

/// Ports per cluster: mon v1, mon v2, and 18 for the OSD (it binds 8: public, cluster and
/// two heartbeat messengers, v1 and v2 each; the slack absorbs a port taken meanwhile).
const BLOCK: usize = 20;

/// Where to look for a block: below the kernel's ephemeral range when there is room, so
/// that outgoing connections (the `ceph` CLI's, the tests' own) cannot take a port between
/// the check and the daemons' bind.
fn port_window() -> (usize, usize) {
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(32768);
    if low >= 10000 + 100 * BLOCK {
        (10000, low)
    } else {
        (20000, 60000)
    }
}

/// A block of free TCP ports on 127.0.0.1 (as `CEPH_MICRO_*` variables for the script),
/// different on each `attempt`.
pub fn free_ports(attempt: usize) -> Vec<(String, String)> {
    let (from, to) = port_window();
    let blocks = (to - from) / BLOCK;
    let pid = std::process::id() as usize;
    for probe in 0..200 {
        let base = from + ((pid + (attempt * 200 + probe) * 7) % blocks) * BLOCK;
        let free = (base..base + BLOCK).all(|p| TcpListener::bind(("127.0.0.1", p as u16)).is_ok());
        if free {
            return vec![
                ("CEPH_MICRO_MON_PORT".into(), base.to_string()),
                ("CEPH_MICRO_MON_V2_PORT".into(), (base + 1).to_string()),
                ("CEPH_MICRO_OSD_PORT_MIN".into(), (base + 2).to_string()),
                (
                    "CEPH_MICRO_OSD_PORT_MAX".into(),
                    (base + BLOCK - 1).to_string(),
                ),
            ];
        }
    }
    panic!("no block of {BLOCK} free ports between {from} and {to}");
}

/// Starts the cluster; a start that lost a port race (another process bound one of its
/// ports after the check) is retried on another block, any other failure panics with what
/// the script printed (the failing command and the daemons' logs).
fn start(dir: PathBuf) -> CephEnv {
    sweep_stale();
    let mut failures = Vec::new();
    for attempt in 0..3 {
        let ports = free_ports(attempt);
        // The watcher first, so that a failing start is torn down too.
        watch_teardown(&dir, &ports);
        match start_on(&dir, &ports) {
            Ok(()) => return describe(dir, ports),
            Err(e) => {
                let _ = script(&dir, &ports, &["down"]);
                let lost_race = e.contains("Address already in use");
                failures.push(e);
                if !lost_race {
                    break;
                }
            }
        }
    }
    panic!("{}", failures.join("\n"));
}

fn start_on(dir: &Path, ports: &[(String, String)]) -> Result<(), String> {
    for step in ["up", "fixture"] {
        let (ok, err, _) = script(dir, ports, &[step]);
        if !ok {
            return Err(format!("ceph-micro.sh {step} failed:\n{err}"));
        }
    }
    Ok(())
}

fn describe(dir: PathBuf, ports: Vec<(String, String)>) -> CephEnv {
    let (ok, err, out) = script(&dir, &ports, &["env"]);
    assert!(ok, "ceph-micro.sh env failed: {err}");
    let vars: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| {
        vars.get(k)
            .map(|v| v.to_string())
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    CephEnv {
        dir: dir.clone(),
        conf: PathBuf::from(get("CEPH_MICRO_CONF")),
        monitor: get("CEPH_MICRO_MONITORS"),
        pool: get("CEPH_MICRO_POOL"),
        ro_user: get("CEPH_MICRO_RO_USER"),
        ro_secret: get("CEPH_MICRO_RO_SECRET"),
        rw_user: get("CEPH_MICRO_RW_USER"),
        rw_secret: get("CEPH_MICRO_RW_SECRET"),
        ports,
    }
}

/// The shared cluster of this test process, started on first use.
pub fn ceph() -> CephGuard {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = shared.as_ref() {
        return CephGuard { env: env.clone() };
    }
    let dir = PathBuf::from(format!("/tmp/imagebus-ceph-test-{}", std::process::id()));
    let env = Arc::new(start(dir));
    *shared = Some(env.clone());
    CephGuard { env }
}

/// Starts `sh` in its own session: it waits until this process is gone, then runs `down`.
pub fn watch_teardown(dir: &Path, ports: &[(String, String)]) {
    let watcher = "while [ -d /proc/$1 ]; do sleep 0.2; done; exec bash \"$2\" down";
    let spawned = Command::new("setsid")
        .args(["sh", "-c", watcher, "ceph-watch"])
        .arg(std::process::id().to_string())
        .arg(script_path())
        .env("CEPH_MICRO_DIR", dir)
        .envs(ports.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    assert!(
        spawned.is_ok(),
        "starting the Ceph teardown watcher: {spawned:?}"
    );
}

/// Live rbd-fuse processes whose command line mentions a path under `dir`.
pub fn rbd_fuse_under(dir: &Path) -> Vec<u32> {
    let text = dir.display().to_string();
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| pid_alive(*pid))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<String> = c
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                args.first().is_some_and(|a| a.ends_with("rbd-fuse"))
                    && args.iter().any(|a| a.starts_with(&text))
            })
        })
        .collect()
}

/// Kills rbd-fuse processes under `dir` (test cleanup).
pub fn kill_rbd_fuse_under(dir: &Path) {
    for pid in rbd_fuse_under(dir) {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
}

/// Stops the rbd-fuse processes under `dir` with SIGTERM, as an operator or a service
/// manager would: each unmounts its FUSE mount on the way out (lazily, so a loop device
/// on its file stays, showing its backing file as `/<image>`). Waits up to 10 s for them
/// to go; returns how many there were.
pub fn term_rbd_fuse_under(dir: &Path) -> usize {
    let pids = rbd_fuse_under(dir);
    for pid in &pids {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pids.iter().any(|p| pid_alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    pids.len()
}
