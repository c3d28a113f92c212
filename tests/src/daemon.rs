//! Fixtures for the CLI and daemon tests: the real `imagebusd` and `imagebus` binaries.
//!
//! `cargo test` builds only the test targets, and `CARGO_BIN_EXE_*` exists only inside the
//! binary's own package, so the binaries are found in the target profile directory next to
//! the test executable (`target/<profile>/deps/<test>` → `target/<profile>/`). Before the
//! first use in a test process, `cargo build --workspace --bins` is run with the `CARGO`
//! that runs the tests (the same command `scripts/test.sh` runs first, so it is a no-op
//! there). Set `IMAGEBUS_BIN_DIR` to use prebuilt binaries from another directory instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Directory holding `imagebusd` and `imagebus`, built if needed (see the module docs).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("IMAGEBUS_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let exe = std::env::current_exe().expect("test executable path");
        let mut dir = exe
            .parent()
            .expect("test executable has a directory")
            .to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let out = Command::new(cargo)
            .args(["build", "--workspace", "--bins", "--quiet"])
            .current_dir(workspace)
            .output()
            .expect("running cargo build for the imagebus binaries");
        assert!(
            out.status.success(),
            "cargo build --workspace --bins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// Path of one of the workspace's binaries; panics with a hint when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// Polls `f` every 20 ms until it returns true; false when `timeout` passes first.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A container instance name unique to this test process and call (runtime ids and
/// cgroups of parallel daemons must not collide).
pub fn instance() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("ibt{}-{n}", std::process::id())
}

/// Output of a CLI run, decoded.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for CliOutput {
    fn from(o: Output) -> Self {
        Self {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// An `imagebus` command with a clean environment: no IMAGEBUS_* from the caller, and a
/// default broker and run dir that cannot exist, so only what a test passes is used.
pub fn cli_command() -> Command {
    let mut cmd = Command::new(bin("imagebus"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("IMAGEBUS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(
        "IMAGEBUS_DEFAULT_BROKER",
        "unix:///nonexistent/imagebus-test/redis.sock",
    )
    .env("IMAGEBUS_RUN_DIR", "/nonexistent/imagebus-test")
    .stdin(Stdio::null());
    cmd
}

/// Runs `imagebus --broker <broker> <args>`.
pub fn cli(broker: &str, args: &[&str]) -> CliOutput {
    cli_command()
        .arg("--broker")
        .arg(broker)
        .args(args)
        .output()
        .expect("running imagebus")
        .into()
}

/// A running `imagebusd` with its own run and state directories; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Broker URL the daemon was given (None: it chose one itself).
    pub broker: Option<String>,
    instance: String,
    extra: Vec<String>,
    /// `imagebusd ready` lines in the log before the current run started.
    ready_before: usize,
}

/// What imagebusd logs once every module it serves is up.
const READY: &str = "imagebusd ready";

impl Daemon {
    /// Starts `imagebusd --broker <broker>` with a 200 ms heartbeat and waits until its
    /// `imagebus` module answers its status object.
    pub fn start(broker: &str) -> Self {
        let d = Self::spawn(Some(broker), &[]);
        d.wait_ready();
        d
    }

    /// Spawns imagebusd without waiting. `broker` None leaves --broker unset and points the
    /// default broker at a socket that does not exist (so a private broker is started).
    pub fn spawn(broker: Option<&str>, extra: &[&str]) -> Self {
        Self::spawn_in(Path::new("/tmp"), broker, extra)
    }

    /// [`Daemon::spawn`] with its directories under `parent` (e.g. a `KernelScratch`, so
    /// that its sweep catches mounts the daemon left behind).
    pub fn spawn_in(parent: &Path, broker: Option<&str>, extra: &[&str]) -> Self {
        Self::spawn_prepared(parent, broker, extra, |_| {})
    }

    /// [`Daemon::spawn_in`], calling `prepare` with the (empty) state directory first.
    pub fn spawn_prepared(
        parent: &Path,
        broker: Option<&str>,
        extra: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ibd")
            .tempdir_in(parent)
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
        prepare(&dir.path().join("state"));
        let mut d = Self {
            child: None,
            dir,
            broker: broker.map(str::to_string),
            instance: instance(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ready_before: 0,
        };
        d.launch();
        d
    }

    /// Starts the process (again) with the same directories, instance and flags; the log
    /// is appended to.
    fn launch(&mut self) {
        self.ready_before = self.log().matches(READY).count();
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("imagebusd.log"))
            .expect("log file");
        let mut cmd = Command::new(bin("imagebusd"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("IMAGEBUS_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--run-dir")
            .arg(dir.join("run"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--log-dir")
            .arg(dir.join("log"))
            .arg("--instance")
            .arg(&self.instance)
            .args(["--heartbeat", "200ms"]);
        // Two workers per module unless the test asks for another number.
        if !self.extra.iter().any(|a| a == "--workers") {
            cmd.args(["--workers", "2"]);
        }
        cmd.env(
            "IMAGEBUS_DEFAULT_BROKER",
            format!("unix://{}/none.sock", dir.display()),
        )
        .env("IMAGEBUS_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
        if let Some(b) = &self.broker {
            cmd.arg("--broker").arg(b);
        }
        cmd.args(&self.extra);
        self.child = Some(cmd.spawn().expect("spawning imagebusd"));
    }

    /// SIGKILLs the daemon (no cleanup at all) and waits for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a new daemon process on the same directories and waits until it is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running");
        self.launch();
        self.wait_ready();
    }

    /// The directory holding the daemon's run, state and log directories.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `--instance` (prefix of runtime ids and cgroups) this daemon runs with.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// runc's `--root` of the daemon's container actor.
    pub fn runtime_root(&self) -> PathBuf {
        self.run_dir().join("container").join("runc")
    }

    /// The daemon's run directory.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The broker URL the daemon recorded in `<run-dir>/broker`.
    pub fn recorded_broker(&self) -> Option<String> {
        std::fs::read_to_string(self.run_dir().join("broker"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The broker in use: the given one, else the recorded one.
    pub fn url(&self) -> String {
        self.broker
            .clone()
            .or_else(|| self.recorded_broker())
            .expect("daemon has no broker yet")
    }

    /// Waits (30 s at most) until this run of the daemon logged `imagebusd ready` (every
    /// module it serves is up) and its `imagebus` module answers; panics with the log.
    pub fn wait_ready(&self) {
        let ok = wait_until(Duration::from_secs(30), || {
            if self.log().matches(READY).count() <= self.ready_before {
                return false;
            }
            let Some(url) = self.broker.clone().or_else(|| self.recorded_broker()) else {
                return false;
            };
            cli(&url, &["--timeout", "1s", "status", "imagebus"])
                .status
                .success()
        });
        assert!(ok, "imagebusd did not become ready; log:\n{}", self.log());
    }

    /// Waits (30 s at most) only until the `imagebus` module answers: the system object is
    /// served before any actor starts, so this works while an actor cannot start.
    pub fn wait_serving(&self) {
        let ok = wait_until(Duration::from_secs(30), || {
            let Some(url) = self.broker.clone().or_else(|| self.recorded_broker()) else {
                return false;
            };
            cli(&url, &["--timeout", "1s", "status", "imagebus"])
                .status
                .success()
        });
        assert!(
            ok,
            "imagebusd did not serve its system object; log:\n{}",
            self.log()
        );
    }

    /// Runs the CLI against this daemon's broker.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        cli(&self.url(), args)
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("imagebusd.log")).unwrap_or_default()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` (e.g. `TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(ok.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits up to `timeout` for the process to exit; its status and how long it took.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let start = Instant::now();
        let child = self.child.as_mut()?;
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        let status = status?;
        self.child = None;
        Some((status, start.elapsed()))
    }
}

impl Daemon {
    /// Best effort: force-deletes every container this daemon knows (only when its runtime
    /// directory shows any), so a failed test leaves no container running.
    pub fn remove_containers(&self) {
        let roots = self.run_dir().join("container");
        let any = ["runc", "crun"].iter().any(|r| {
            std::fs::read_dir(roots.join(r))
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        });
        let state = self.dir.path().join("state").join("container");
        let recorded = std::fs::read_dir(&state)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if !any && !recorded {
            return;
        }
        let Some(url) = self.broker.clone().or_else(|| self.recorded_broker()) else {
            return;
        };
        let out = cli(&url, &["--json", "--timeout", "5s", "ps"]);
        let ids: Vec<u64> = serde_json::from_str::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["id"].as_u64())
            .collect();
        for id in ids {
            let _ = cli(
                &url,
                &["--timeout", "20s", "rm", "--force", &id.to_string()],
            );
        }
    }
}

impl Drop for Daemon {
    /// Force-deletes containers left running (they outlive the daemon by design), then
    /// SIGTERM (so a private broker is stopped too), SIGKILL after 5 s, and a SHUTDOWN for
    /// a private redis-server that outlived a killed daemon.
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_containers();
        }
        if self.child.is_some() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid().to_string())
                .status();
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        // The daemon removes its instance cgroup when it stops with no container left;
        // after a kill it cannot, so the test does (a no-op when the cgroup is gone or busy).
        imagebus_sys::cgroup::Cgroups::remove_if_empty(
            &imagebus_sys::cgroup::LinuxCgroups,
            &format!("/{}", self.instance),
        );
        let sock = self.run_dir().join("redis.sock");
        if sock.exists() {
            let _ = Command::new("redis-cli")
                .arg("-s")
                .arg(&sock)
                .args(["shutdown", "nosave"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
