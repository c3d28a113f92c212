//! The per-container monitor (conmon-like): a small detached process that runs the
//! runtime's `create`/`run` with the container's stdout and stderr on an `O_APPEND` log
//! file, becomes the init's reaper (`PR_SET_CHILD_SUBREAPER`), and writes the exit status to
//! a file when the init dies. It lives in its own session, so the container keeps running,
//! logging and having its exit code recorded while the daemon restarts or is killed.
//!
//! Protocol: the launcher starts `<monitor binary> -` ([`SPARE_ARG`]); the monitor forks
//! (the first process exits at once and is reaped by the launcher), the grandchild calls
//! `setsid` and reads one line from its stdin: the [`MonitorConfig`] as JSON (a line not
//! starting with `{` is read as the path of a JSON config file, and so is a path given
//! instead of `-`, for running a monitor by hand). It runs the runtime and prints one JSON
//! [`MonitorReport`] line on the stdout pipe (then points stdout at `/dev/null`). When the
//! init exits it writes an [`ExitRecord`] to `exit_file` (temp file + rename) and exits;
//! watchers see that through a pidfd on the monitor. No config file is written: a launch
//! creates no file besides the logs, the pid file and (at the end) the exit file.

use crate::runtime::RuntimeError;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the monitor does; sent by the launcher as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// Runtime container id.
    pub id: String,
    /// The runtime's create or run argv ([`crate::runtime::Runtime::create_argv`]).
    pub argv: Vec<String>,
    /// The container's stdout/stderr log (appended).
    pub log_file: PathBuf,
    /// Where the runtime writes the init pid.
    pub pid_file: PathBuf,
    /// The runtime's own JSON log (its error messages).
    pub runtime_log: PathBuf,
    /// Where the exit status is written.
    pub exit_file: PathBuf,
    /// The monitor's own diagnostics.
    pub monitor_log: PathBuf,
    /// The cap of [`Self::log_file`]: once it is larger, the monitor rotates it (see
    /// [`rotate_log`]). `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max_bytes: Option<u64>,
}

/// The monitor's one-line answer on its stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorReport {
    /// The monitor's pid (the process that stays).
    pub monitor_pid: u32,
    /// The container init's pid, when the runtime succeeded.
    #[serde(default)]
    pub init_pid: Option<u32>,
    /// The runtime's error message, when it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// How the init ended; the monitor writes it to [`MonitorConfig::exit_file`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Init pid.
    pub pid: u32,
    /// Exit code, or `None` when killed by a signal or when the status was not observable.
    pub exit_code: Option<i32>,
    /// Terminating signal.
    pub signal: Option<i32>,
    /// Milliseconds since the Unix epoch.
    pub exited_at_ms: u64,
}

impl ExitRecord {
    /// Exit code as shells report it: the code, or 128 + signal.
    pub fn shell_code(&self) -> Option<i32> {
        self.exit_code.or(self.signal.map(|s| 128 + s))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads an exit file; `Ok(None)` if there is none yet.
pub fn read_exit_file(path: &Path) -> Result<Option<ExitRecord>, RuntimeError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| RuntimeError::Parse {
                what: path.display().to_string(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io("read", path, e)),
    }
}

/// Writes an exit file through the one atomic writer ([`crate::state::write_atomic`]),
/// mode 0644; the monitor does this when the init dies, test doubles when they end a run.
pub fn write_exit_file(path: &Path, rec: &ExitRecord) -> Result<(), RuntimeError> {
    let bytes = serde_json::to_vec(rec).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    crate::state::write_atomic(path, &bytes, 0o644).map_err(RuntimeError::from)
}

/// Starts monitors.
pub trait MonitorLauncher: Send + Sync + 'static {
    /// Runs a monitor on `config` and waits (up to `timeout`) for its report.
    fn launch(
        &self,
        config: &MonitorConfig,
        timeout: Duration,
    ) -> Result<MonitorReport, RuntimeError>;

    /// Gets ready for the next launch (e.g. starts a spare monitor); never fails.
    fn prepare(&self) {}
}

/// The argument that starts a monitor reading its config from stdin: it detaches at once
/// and then waits for one line.
pub const SPARE_ARG: &str = "-";

/// Launches a monitor binary: `program args... -`, then writes the config line. One spare
/// monitor is kept started and detached, waiting on its stdin, so a launch costs a pipe
/// write instead of an exec and a fork on the caller's path. While launches run
/// concurrently, those that find no spare start their own, and at most one refill is in
/// flight, so no monitor is started only to be thrown away. A spare whose launcher is gone
/// sees end-of-file and exits.
#[derive(Debug, Clone)]
pub struct LinuxMonitorLauncher {
    program: PathBuf,
    args: Vec<String>,
    spare: std::sync::Arc<std::sync::Mutex<SpareSlot>>,
}

/// The spare, and whether a refill is starting one.
#[derive(Debug, Default)]
struct SpareSlot {
    spare: Option<Spare>,
    refilling: bool,
}

/// A started, detached monitor waiting for its config path.
#[derive(Debug)]
struct Spare {
    stdin: std::process::ChildStdin,
    stdout: std::process::ChildStdout,
}

impl LinuxMonitorLauncher {
    /// `program` followed by `args` and the config path.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            program: program.into(),
            args,
            spare: Default::default(),
        }
    }

    fn start(&self) -> Result<Spare, RuntimeError> {
        let program = self.program.display().to_string();
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(SPARE_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                program: program.clone(),
                source,
            })?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        // The first process exits right after forking; reap it.
        let _ = child.wait();
        match (stdin, stdout) {
            (Some(stdin), Some(stdout)) => Ok(Spare { stdin, stdout }),
            _ => Err(RuntimeError::Invalid("monitor pipes missing".into())),
        }
    }

    /// The spare, if there is one; otherwise a refill is started (unless one is running).
    fn take_spare(&self) -> Option<Spare> {
        let mut slot = self.spare.lock().ok()?;
        let spare = slot.spare.take();
        if !slot.refilling {
            slot.refilling = true;
            drop(slot);
            self.refill();
        }
        spare
    }

    /// Starts a spare in the background.
    fn refill(&self) {
        let me = self.clone();
        std::thread::spawn(move || {
            let started = me.start();
            if let Ok(mut slot) = me.spare.lock() {
                slot.refilling = false;
                match started {
                    // Only refills fill the slot, one at a time: it is empty here.
                    Ok(spare) => slot.spare = Some(spare),
                    Err(e) => tracing::warn!(error = %e, "starting a spare monitor"),
                }
            }
        });
    }
}

/// Reads the monitor's one-line report, waiting at most `timeout`; `mlog` (the monitor's
/// log) names it in errors.
fn read_report(
    out: std::process::ChildStdout,
    mlog: &Path,
    timeout: Duration,
) -> Result<MonitorReport, RuntimeError> {
    let deadline = Instant::now() + timeout;
    let mut pfd = libc::pollfd {
        fd: out.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RuntimeError::Timeout {
                id: mlog.display().to_string(),
                timeout,
            });
        }
        let ms = libc::c_int::try_from(left.as_millis())
            .unwrap_or(libc::c_int::MAX)
            .max(1);
        // SAFETY: one valid pollfd on a pipe we own, bounded timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            break;
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(RuntimeError::io("poll", mlog, e));
            }
        }
    }
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| RuntimeError::io("read monitor report", mlog, e))?;
    if line.trim().is_empty() {
        return Err(RuntimeError::Invalid(format!(
            "the monitor exited without a report (see {mlog:?})"
        )));
    }
    serde_json::from_str(line.trim()).map_err(|e| RuntimeError::Parse {
        what: "monitor report".into(),
        detail: format!("{e}: {line:?}"),
    })
}

impl MonitorLauncher for LinuxMonitorLauncher {
    fn launch(
        &self,
        config: &MonitorConfig,
        timeout: Duration,
    ) -> Result<MonitorReport, RuntimeError> {
        let mut line =
            serde_json::to_vec(config).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        line.push(b'\n');
        // A spare, unless it died (then its pipe is broken) or there is none yet.
        let from_spare = self
            .take_spare()
            .and_then(|mut s| s.stdin.write_all(&line).ok().map(|()| s.stdout));
        let out = match from_spare {
            Some(out) => out,
            None => {
                let mut fresh = self.start()?;
                fresh.stdin.write_all(&line).map_err(|e| {
                    RuntimeError::io("writing the monitor config", &config.monitor_log, e)
                })?;
                fresh.stdout
            }
        };
        read_report(out, &config.monitor_log, timeout)
    }

    fn prepare(&self) {
        let start = self.spare.lock().is_ok_and(|mut slot| {
            let idle = slot.spare.is_none() && !slot.refilling;
            slot.refilling |= idle;
            idle
        });
        if start {
            self.refill();
        }
    }
}

/// How often a monitor looks at the size of its container's log when it cannot watch it
/// with inotify.
pub const LOG_CHECK_EVERY: Duration = Duration::from_millis(200);

/// The least time between two looks at the log's size (inotify wakes the monitor on
/// every write; this keeps a container that writes without pause from keeping it busy).
pub const LOG_CHECK_GAP: Duration = Duration::from_millis(20);

/// The rotated log beside `log`: `<log>.1`.
pub fn rotated_log(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_os_string();
    name.push(".1");
    PathBuf::from(name)
}

/// Rotates `log` if it is larger than `max` bytes ("copytruncate", as logrotate does it):
/// its last `max` bytes are copied to [`rotated_log`] (replacing the previous one, through
/// a temporary file and a rename) and `log` is truncated to 0. The container keeps writing
/// to its O_APPEND descriptors, so its next write lands at the new start; what it writes
/// between the look at the size and the truncation is lost. On disk: at most `max` in
/// `<log>.1`, and in the log `max` plus what is written between two checks. Returns
/// whether it rotated.
pub fn rotate_log(log: &Path, max: u64) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = match std::fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= max {
        return Ok(false);
    }
    let rotated = rotated_log(log);
    let mut tmp = rotated.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        // The last `max` bytes of what was there when we looked: a container that keeps
        // writing must not make the copy chase it.
        let mut from = File::open(log)?;
        from.seek(SeekFrom::Start(len - max))?;
        let mut to = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        std::io::copy(&mut from.take(max), &mut to)?;
    }
    std::fs::rename(&tmp, &rotated)?;
    OpenOptions::new().write(true).open(log)?.set_len(0)?;
    Ok(true)
}

/// An inotify watch for writes to one file.
struct Writes {
    fd: std::os::fd::OwnedFd,
}

impl Writes {
    /// Watches `path`; `None` when inotify is not available.
    fn watch(path: &Path) -> Option<Self> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: plain syscall; the fd is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) };
        (wd >= 0).then_some(Self { fd })
    }

    /// Blocks until the file was written (since the last call); false on an error.
    fn wait(&self) -> bool {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a buffer of the given length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        n > 0 || std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    }
}

/// Rotates `path` whenever it grows past `max`, for the rest of the monitor's life (a
/// thread of the monitor, started after its last fork). It wakes on the log's writes
/// (inotify; at most every [`LOG_CHECK_GAP`]), or every [`LOG_CHECK_EVERY`] without inotify.
fn cap_log(path: PathBuf, max: u64, monitor_log: &File) {
    let Ok(mlog) = monitor_log.try_clone() else {
        log(monitor_log, "cannot cap the log: dup failed");
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("log-cap".into())
        .spawn(move || {
            let mut writes = Writes::watch(&path);
            if writes.is_none() {
                log(
                    &mlog,
                    "no inotify watch on the log; checking its size by polling",
                );
            }
            loop {
                match &writes {
                    Some(w) if w.wait() => {}
                    Some(_) => {
                        log(&mlog, "inotify read failed; checking the log by polling");
                        writes = None;
                    }
                    None => std::thread::sleep(LOG_CHECK_EVERY),
                }
                match rotate_log(&path, max) {
                    Ok(true) => log(&mlog, &format!("log over {max} bytes: rotated")),
                    Ok(false) => {}
                    Err(e) => log(&mlog, &format!("rotating {path:?}: {e}")),
                }
                std::thread::sleep(LOG_CHECK_GAP);
            }
        });
    if let Err(e) = spawned {
        log(
            monitor_log,
            &format!("cannot start the log cap thread: {e}"),
        );
    }
}

fn log(mut f: &File, msg: &str) {
    let _ = writeln!(f, "{} {msg}", now_ms());
}

fn report(r: &MonitorReport) {
    if let Ok(mut s) = serde_json::to_string(r) {
        s.push('\n');
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    }
}

fn redirect(fd: libc::c_int, to: &File) {
    // SAFETY: dup2 of an open fd onto a standard descriptor of this single-threaded process.
    unsafe {
        libc::dup2(to.as_raw_fd(), fd);
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// The monitor process's body (called by the monitor binary's `main` while it is still
/// single-threaded). Returns the process exit code.
pub fn run_monitor(config_arg: &Path) -> i32 {
    // SAFETY: the monitor is single-threaded here (no runtime, no threads started), so the
    // child may keep running Rust code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            report(&MonitorReport {
                monitor_pid: std::process::id(),
                init_pid: None,
                error: Some(format!("fork: {e}")),
            });
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    let me = std::process::id();
    let fail = |msg: String| {
        report(&MonitorReport {
            monitor_pid: me,
            init_pid: None,
            error: Some(msg),
        });
        1
    };
    let cfg = match read_config(config_arg) {
        Ok(Some(c)) => c,
        // End of file: a spare that was not needed after all.
        Ok(None) => return 0,
        Err(e) => return fail(e),
    };
    let mlog = match open_append(&cfg.monitor_log) {
        Ok(f) => f,
        Err(e) => return fail(format!("open {:?}: {e}", cfg.monitor_log)),
    };
    redirect(libc::STDERR_FILENO, &mlog);
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        return fail(format!("PR_SET_CHILD_SUBREAPER: {e}"));
    }
    let clog = match open_append(&cfg.log_file) {
        Ok(f) => f,
        Err(e) => return fail(format!("open {:?}: {e}", cfg.log_file)),
    };
    let (Some(prog), Some(args)) = (cfg.argv.first(), cfg.argv.get(1..)) else {
        return fail("empty runtime argv".into());
    };
    let (out, err) = match (clog.try_clone(), clog.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return fail("dup log fd".into()),
    };
    log(
        &mlog,
        &format!("monitor {me}: running {}", cfg.argv.join(" ")),
    );
    let status = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            let text = std::fs::read_to_string(&cfg.runtime_log).unwrap_or_default();
            let msg = crate::oci_cli::error_message(&text);
            log(&mlog, &format!("runtime failed ({s}): {msg}"));
            return fail(if msg.is_empty() {
                format!("runtime exited with {s}")
            } else {
                msg
            });
        }
        Err(e) => return fail(format!("starting {prog}: {e}")),
    }
    let pid = match std::fs::read_to_string(&cfg.pid_file).map(|s| s.trim().parse::<u32>()) {
        Ok(Ok(p)) => p,
        _ => return fail(format!("no init pid in {:?}", cfg.pid_file)),
    };
    report(&MonitorReport {
        monitor_pid: me,
        init_pid: Some(pid),
        error: None,
    });
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        redirect(libc::STDOUT_FILENO, &null);
        redirect(libc::STDIN_FILENO, &null);
    }
    drop(clog);
    // Every fork is done (the runtime ran): a thread is safe from here on.
    if let Some(max) = cfg.log_max_bytes {
        cap_log(cfg.log_file.clone(), max, &mlog);
    }
    let rec = wait_for_init(pid, &mlog);
    log(&mlog, &format!("init {pid} exited: {rec:?}"));
    if let Err(e) = write_exit_file(&cfg.exit_file, &rec) {
        log(&mlog, &format!("writing {:?}: {e}", cfg.exit_file));
        return 1;
    }
    0
}

/// The config: one line on stdin for [`SPARE_ARG`] (JSON, or a path to a JSON file), else
/// the file at `arg`; `Ok(None)` at end of file.
fn read_config(arg: &Path) -> Result<Option<MonitorConfig>, String> {
    let path = if arg == Path::new(SPARE_ARG) {
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {}
            _ => return Ok(None),
        }
        let line = line.trim_end_matches('\n');
        if line.starts_with('{') {
            return serde_json::from_str(line)
                .map(Some)
                .map_err(|e| format!("monitor config line: {e}"));
        }
        PathBuf::from(line)
    } else {
        arg.to_path_buf()
    };
    std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map(Some)
        .map_err(|e| format!("monitor config {path:?}: {e}"))
}

/// Reaps children until `pid` exits (we are its subreaper once the runtime has exited).
fn wait_for_init(pid: u32, mlog: &File) -> ExitRecord {
    use nix::sys::wait::{waitpid, WaitStatus};
    let target = i32::try_from(pid).unwrap_or(i32::MAX);
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == target => {
                return ExitRecord {
                    pid,
                    exit_code: Some(code),
                    signal: None,
                    exited_at_ms: now_ms(),
                };
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == target => {
                return ExitRecord {
                    pid,
                    exit_code: None,
                    signal: Some(sig as i32),
                    exited_at_ms: now_ms(),
                };
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                // Not our child (the runtime did not hand it over): watch it without status.
                log(
                    mlog,
                    &format!("waitpid: {e}; watching init {pid} through a pidfd"),
                );
                if let Ok(fd) = crate::signal::Pidfd::open(pid) {
                    let mut pfd = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, infinite timeout; returns when the process exits.
                    while unsafe { libc::poll(&mut pfd, 1, -1) } <= 0 {}
                }
                return ExitRecord {
                    pid,
                    exit_code: None,
                    signal: None,
                    exited_at_ms: now_ms(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: container logs had no cap (237 MB in 5 s).
    #[test]
    fn a_log_over_its_cap_is_copied_aside_and_truncated_while_a_writer_appends() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        assert!(!rotate_log(&p, 10).unwrap(), "a missing log is no error");
        // The container's descriptor: O_APPEND, open across the rotation.
        let mut w = open_append(&p).unwrap();
        w.write_all(b"0123456789").unwrap();
        assert!(!rotate_log(&p, 10).unwrap(), "at the cap: kept");
        w.write_all(b"abc").unwrap();
        assert!(rotate_log(&p, 10).unwrap());
        // The last `max` bytes are kept aside.
        assert_eq!(std::fs::read(rotated_log(&p)).unwrap(), b"3456789abc");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        w.write_all(b"after").unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"after",
            "appends start at 0 again"
        );
        // The next rotation replaces the previous copy.
        w.write_all(b"-more-than-ten").unwrap();
        assert!(rotate_log(&p, 10).unwrap());
        assert_eq!(std::fs::read(rotated_log(&p)).unwrap(), b"e-than-ten");
        assert!(!dir.path().join("c.log.1.tmp").exists());
    }

    #[test]
    fn exit_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("exit.json");
        assert_eq!(read_exit_file(&p).unwrap(), None);
        let rec = ExitRecord {
            pid: 7,
            exit_code: None,
            signal: Some(9),
            exited_at_ms: 1,
        };
        write_exit_file(&p, &rec).unwrap();
        assert_eq!(read_exit_file(&p).unwrap(), Some(rec.clone()));
        assert_eq!(rec.shell_code(), Some(137));
    }
}
