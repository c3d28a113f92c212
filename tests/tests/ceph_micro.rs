//! The test cluster script itself (scripts/ceph-micro.sh), where the machine differs from a
//! developer's. Needs root and ceph-mon, ceph-osd, ceph-common.

use imagebus_tests::ceph::{admin_tool, free_ports, run_script, script_command, watch_teardown};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::sethostname;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tears the cluster in `dir` down when the test ends, passed or failed.
struct Down(PathBuf, Vec<(String, String)>);

impl Drop for Down {
    fn drop(&mut self) {
        let (ok, err, _) = run_script(script_command(&self.0, &self.1, &["down"]));
        assert!(ok || std::thread::panicking(), "down failed: {err}");
    }
}

/// `cmd` run in its own UTS namespace whose host name is `name`.
fn with_hostname(mut cmd: Command, name: &'static str) -> Command {
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            unshare(CloneFlags::CLONE_NEWUTS)?;
            sethostname(name)?;
            Ok(())
        });
    }
    cmd
}

/// A VM nobody named reports "(none)", which is not a valid CRUSH name: an OSD that places
/// itself under its host name at start exits (EINVAL), and `up` used to fail with nothing
/// on stderr. The script places the OSD itself, so the cluster comes up and serves I/O.
#[test]
fn the_cluster_starts_on_a_machine_whose_host_name_is_not_a_crush_name() {
    let dir = PathBuf::from(format!(
        "/tmp/imagebus-ceph-test-{}-hostname",
        std::process::id()
    ));
    let ports = free_ports(0);
    watch_teardown(&dir, &ports);
    let _down = Down(dir.clone(), ports.clone());
    for step in ["up", "fixture"] {
        let cmd = with_hostname(script_command(&dir, &ports, &[step]), "(none)");
        let (ok, err, _) = run_script(cmd);
        assert!(
            ok,
            "ceph-micro.sh {step} under host name (none) failed:\n{err}"
        );
    }
    let (ok, out, _) = run_script(script_command(&dir, &ports, &["status"]));
    assert!(ok, "status after up: {out}");
    // The OSD is where the script put it, and a write reaches it.
    let conf = dir.join("ceph.conf");
    let tree = ceph(&conf, &["osd", "tree"]);
    assert!(
        tree.contains("host localhost") && tree.contains("osd.0") && tree.contains(" up "),
        "{tree}"
    );
    let probe = dir.join("probe-2");
    std::fs::write(&probe, b"written under (none)").unwrap();
    rados(&conf, &["put", "probe-2", path(&probe)]);
    rados(&conf, &["get", "probe-2", path(&dir.join("probe-2.back"))]);
    assert_eq!(
        std::fs::read(dir.join("probe-2.back")).unwrap(),
        b"written under (none)"
    );
}

/// A start that fails says which command failed and what the daemons logged.
#[test]
fn a_failing_start_prints_the_failed_step_and_the_daemon_logs() {
    let dir = PathBuf::from(format!(
        "/tmp/imagebus-ceph-test-{}-fail",
        std::process::id()
    ));
    let mut ports = free_ports(1);
    // One port for the OSD's eight messengers: it cannot bind and exits.
    let min = ports[2].1.clone();
    ports[3].1 = min.clone();
    // Hold that port so the failure does not depend on anything else.
    let _held = std::net::TcpListener::bind(("127.0.0.1", min.parse::<u16>().unwrap())).unwrap();
    watch_teardown(&dir, &ports);
    let _down = Down(dir.clone(), ports.clone());
    let mut up = script_command(&dir, &ports, &["up"]);
    // One bind attempt instead of three 5 s apart.
    up.env(
        "CEPH_ARGS",
        "--ms_bind_retry_count=1 --ms_bind_retry_delay=1",
    );
    let (ok, err, _) = run_script(up);
    assert!(!ok, "up succeeded without a port for the OSD");
    assert!(err.contains("failed (exit"), "no failed step in: {err}");
    assert!(err.contains("osd.0.start.log"), "no start log in: {err}");
    assert!(err.contains("unable to bind"), "no bind error in: {err}");
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ceph(conf: &Path, args: &[&str]) -> String {
    admin_tool("ceph", conf, args)
}

fn rados(conf: &Path, args: &[&str]) -> String {
    let mut all = vec!["-p", "rbd"];
    all.extend_from_slice(args);
    admin_tool("rados", conf, &all)
}
