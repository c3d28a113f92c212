//! A one-node Ceph cluster for integration tests, started with `scripts/ceph-micro.sh` on
//! first use in a test process and shared by its tests: every test holds a [`CephGuard`];
//! when the last guard of the moment is dropped the cluster is torn down (`down`), also
//! when the test failed. Directory and ports are private to the test process
//! (`/tmp/imagebus-ceph-test-<pid>`, a free block of 10 ports), so test binaries and
//! developers running tests at the same time do not collide; clusters left by killed test
//! processes are torn down on the next start.
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

    /// Runs `rbd` as admin with `args`, returning stdout.
    pub fn rbd(&self, args: &[&str]) -> String {
        let out = Command::new("rbd")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .expect("running rbd (install ceph-common)");
        assert!(
            out.status.success(),
            "rbd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
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

struct Shared {
    env: Arc<CephEnv>,
    users: usize,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ceph-micro.sh")
}

fn script(dir: &Path, ports: &[(String, String)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg(script_path())
        .args(args)
        .env("CEPH_MICRO_DIR", dir)
        .envs(ports.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("running scripts/ceph-micro.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
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

/// A block of 10 free TCP ports on 127.0.0.1 (mon v1, mon v2, 8 for the OSD).
fn free_ports() -> Vec<(String, String)> {
    let pid = std::process::id() as usize;
    for attempt in 0..200 {
        let base = 20000 + ((pid + attempt * 7) % 3000) * 10;
        let free = (base..base + 10).all(|p| TcpListener::bind(("127.0.0.1", p as u16)).is_ok());
        if free {
            return vec![
                ("CEPH_MICRO_MON_PORT".into(), base.to_string()),
                ("CEPH_MICRO_MON_V2_PORT".into(), (base + 1).to_string()),
                ("CEPH_MICRO_OSD_PORT_MIN".into(), (base + 2).to_string()),
                ("CEPH_MICRO_OSD_PORT_MAX".into(), (base + 9).to_string()),
            ];
        }
    }
    panic!("no block of 10 free ports between 20000 and 50000");
}

fn start() -> CephEnv {
    sweep_stale();
    let dir = PathBuf::from(format!("/tmp/imagebus-ceph-test-{}", std::process::id()));
    let ports = free_ports();
    for step in ["up", "fixture"] {
        let (ok, err, _) = script(&dir, &ports, &[step]);
        if !ok {
            let _ = script(&dir, &ports, &["down"]);
            panic!("ceph-micro.sh {step} failed:\n{err}");
        }
    }
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

/// The shared cluster, started if no test holds it.
pub fn ceph() -> CephGuard {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = shared.as_mut() {
        s.users += 1;
        return CephGuard { env: s.env.clone() };
    }
    let env = Arc::new(start());
    *shared = Some(Shared {
        env: env.clone(),
        users: 1,
    });
    CephGuard { env }
}

impl Drop for CephGuard {
    fn drop(&mut self) {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        let last = shared.as_mut().map(|s| {
            s.users -= 1;
            s.users == 0
        });
        if last == Some(true) {
            let _ = script(&self.env.dir, &self.env.ports, &["down"]);
            *shared = None;
        }
    }
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
