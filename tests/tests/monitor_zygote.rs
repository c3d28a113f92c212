//! The monitor launcher with the real `imagebus-monitor` binary (issue 7's CPU per create):
//! one zygote forks every monitor, concurrent launches each get their own monitor's report,
//! monitors outlive the zygote, a zygote that died is replaced by the next launch, and a
//! monitor that ends while its zygote runs leaves no zombie.
//! The "runtime" here is `sh`, leaving a `sleep` behind as the init.

use imagebus_sys::monitor::{read_exit_file, LinuxMonitorLauncher, MonitorConfig, MonitorLauncher};
use imagebus_tests::daemon::{bin, wait_until};
use imagebus_tests::kernel_probe::pid_alive;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Kills the listed processes on drop, so a failing test leaves none behind.
#[derive(Default)]
struct Reap(std::sync::Mutex<Vec<u32>>);

impl Reap {
    fn add(&self, pid: u32) {
        self.0.lock().unwrap().push(pid);
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        for pid in self.0.lock().unwrap().iter() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A config whose "runtime" starts `sleep` in the background, writes its pid and exits
/// with `code` (non-zero: the runtime failed).
fn config(dir: &Path, id: &str, code: i32) -> MonitorConfig {
    let pid_file = dir.join(format!("{id}.pid"));
    let script = format!("sleep 60 & echo $! > {}; exit {code}", pid_file.display());
    MonitorConfig {
        id: id.into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        log_file: dir.join(format!("{id}.log")),
        pid_file,
        runtime_log: dir.join(format!("{id}.runtime.log")),
        exit_file: dir.join(format!("{id}.exit.json")),
        monitor_log: dir.join(format!("{id}.monitor.log")),
        stdout_spool: dir.join(format!("{id}.stdout")),
        stderr_spool: dir.join(format!("{id}.stderr")),
        log_max_bytes: None,
        log_max_files: 2,
    }
}

/// Zygotes: live `imagebus-monitor -` processes whose stdin is still a pipe (monitors point
/// theirs at /dev/null as they start).
fn zygotes() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.first()
                .is_some_and(|a| a.ends_with(b"imagebus-monitor"))
                && args.get(1).is_some_and(|a| *a == b"-")
                && std::fs::read_link(format!("/proc/{p}/fd/0"))
                    .is_ok_and(|t| t.to_string_lossy().starts_with("pipe:"))
        })
        .collect()
}

#[test]
fn one_zygote_serves_concurrent_launches_and_is_replaced_when_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let reap = Arc::new(Reap::default());
    let launcher = Arc::new(LinuxMonitorLauncher::new(
        bin("imagebus-monitor"),
        Vec::new(),
    ));
    let before: Vec<u32> = zygotes();
    launcher.prepare();
    let mine: Vec<u32> = zygotes()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(mine.len(), 1, "prepare starts one zygote: {mine:?}");
    reap.add(mine[0]);

    // 12 launches at once, one failing: each gets the report of its own monitor.
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let (launcher, dir, reap) = (launcher.clone(), dir.path().to_path_buf(), reap.clone());
            std::thread::spawn(move || {
                let code = if i == 5 { 3 } else { 0 };
                let cfg = config(&dir, &format!("c{i}"), code);
                let r = launcher.launch(&cfg, Duration::from_secs(20)).unwrap();
                reap.add(r.monitor_pid);
                // The failing "runtime" leaves its sleep behind too, reported or not.
                let left = std::fs::read_to_string(&cfg.pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                for p in r.init_pid.into_iter().chain(left) {
                    reap.add(p);
                }
                (i, cfg, r)
            })
        })
        .collect();
    let mut monitors = Vec::new();
    for t in threads {
        let (i, cfg, r) = t.join().unwrap();
        assert_eq!(r.id.as_deref(), Some(cfg.id.as_str()), "routed by id");
        if i == 5 {
            assert!(r.error.is_some(), "the failing runtime is reported: {r:?}");
            continue;
        }
        assert_eq!(r.error, None, "{i}");
        let init = r.init_pid.unwrap();
        let written: u32 = std::fs::read_to_string(&cfg.pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(init, written, "c{i} got its own monitor's report");
        monitors.push((r.monitor_pid, init, cfg));
    }
    let pids: std::collections::BTreeSet<u32> = monitors.iter().map(|m| m.0).collect();
    assert_eq!(pids.len(), 11, "one monitor per container");
    assert_eq!(
        zygotes()
            .into_iter()
            .filter(|p| !before.contains(p))
            .count(),
        1,
        "still one zygote"
    );

    // The zygote dies: the monitors live on, and the next launch starts a new zygote.
    let old = mine[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !pid_alive(old)));
    assert!(
        monitors.iter().all(|m| pid_alive(m.0)),
        "monitors outlive the zygote"
    );
    let cfg = config(dir.path(), "after", 0);
    let r = launcher.launch(&cfg, Duration::from_secs(20)).unwrap();
    reap.add(r.monitor_pid);
    assert_eq!(r.error, None);
    let after = (
        r.monitor_pid,
        r.init_pid
            .expect("the new zygote's monitor reports its init"),
    );
    reap.add(after.1);
    let now: Vec<u32> = zygotes()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(now.len(), 1, "a new zygote: {now:?}");
    assert_ne!(now[0], old);
    reap.add(now[0]);

    // A monitor still records its init's end.
    let (_, init, cfg) = &monitors[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(*init as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || read_exit_file(
        &cfg.exit_file
    )
    .unwrap()
    .is_some()));
    assert_eq!(
        read_exit_file(&cfg.exit_file).unwrap().unwrap().signal,
        Some(9)
    );

    // A monitor of the live zygote that ends is reaped at once (the zygote ignores
    // SIGCHLD): no zombie is left while the zygote runs.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(after.1 as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{}",
            after.0
        ))
        .exists()),
        "the ended monitor {} is gone from /proc, not a zombie",
        after.0
    );
    assert!(pid_alive(now[0]), "the zygote still runs");

    // Dropping the launcher closes the zygote's pipe: it exits.
    drop(launcher);
    let last = now[0];
    assert!(
        wait_until(Duration::from_secs(10), || !pid_alive(last)),
        "a zygote whose launcher is gone exits"
    );
}
