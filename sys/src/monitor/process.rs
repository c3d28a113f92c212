//! The monitor's processes: the zygote that forks one monitor per config line, and a
//! monitor's life (run the runtime, report, reap the init, record its exit).

use super::capture;
use super::{now_ms, write_exit_file, ExitRecord, MonitorConfig, MonitorReport, ZYGOTE_ARG};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

pub(super) fn log(mut f: &File, msg: &str) {
    let _ = writeln!(f, "{} {msg}", now_ms());
}

/// Prints `r` as one line on stdout with a single `write` (shorter than `PIPE_BUF`, so the
/// lines of monitors sharing the zygote's stdout never interleave).
fn report(r: &MonitorReport) {
    if let Ok(mut s) = serde_json::to_string(r) {
        s.push('\n');
        // SAFETY: one write of an owned buffer to the stdout descriptor.
        let _ = unsafe { libc::write(libc::STDOUT_FILENO, s.as_ptr().cast(), s.len()) };
    }
}

fn redirect(fd: libc::c_int, to: &File) {
    // SAFETY: dup2 of an open fd onto a standard descriptor of this single-threaded process.
    unsafe {
        libc::dup2(to.as_raw_fd(), fd);
    }
}

pub(super) fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Points `fd` at `/dev/null`.
pub(crate) fn redirect_null(fd: libc::c_int) {
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        redirect(fd, &null);
    }
}

/// How a fork went, for the caller to go on with.
pub(crate) enum Forked {
    Parent,
    Child,
}

/// `fork(2)`; only called while this process is single-threaded.
pub(crate) fn fork() -> Result<Forked, nix::errno::Errno> {
    // SAFETY: every caller runs before this process starts a thread (the zygote never
    // does; a monitor starts its log thread only after its last fork), so the child may
    // keep running Rust code.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { .. } => Ok(Forked::Parent),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// The monitor binary's body (called by its `main` while it is single-threaded): the
/// zygote for [`ZYGOTE_ARG`], else one monitor on the config file at `config_arg`. The
/// calling process returns at once (0) and its detached child goes on. Returns the
/// process exit code.
pub fn run_monitor(config_arg: &Path) -> i32 {
    if config_arg == Path::new(crate::session::SESSION_ARG) {
        return crate::session::run_session();
    }
    let fail = |msg: String| {
        report(&MonitorReport {
            id: None,
            monitor_pid: std::process::id(),
            init_pid: None,
            error: Some(msg),
        });
        1
    };
    match fork() {
        Ok(Forked::Parent) => return 0,
        Ok(Forked::Child) => {}
        Err(e) => return fail(format!("fork: {e}")),
    }
    let _ = nix::unistd::setsid();
    if config_arg == Path::new(ZYGOTE_ARG) {
        return zygote();
    }
    match read_file(config_arg) {
        Ok(cfg) => monitor(&cfg),
        Err(e) => fail(e),
    }
}

/// Reads config lines until end of file (the launcher is gone) and forks a monitor for each.
fn zygote() -> i32 {
    // Monitors are children of this process until it exits; the kernel reaps them (each
    // monitor sets SIGCHLD back to the default for its own children first).
    set_sigchld(libc::SIG_IGN);
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {}
            _ => return 0,
        }
        let cfg = match parse_line(line.trim_end_matches('\n')) {
            Ok(c) => c,
            Err(e) => {
                report(&MonitorReport {
                    id: None,
                    monitor_pid: std::process::id(),
                    init_pid: None,
                    error: Some(e),
                });
                continue;
            }
        };
        spawn_monitor(&cfg);
    }
}

/// Sets the disposition of SIGCHLD (`SIG_IGN` or `SIG_DFL`).
fn set_sigchld(handler: libc::sighandler_t) {
    // SAFETY: no handler function is installed, only a disposition, in a process that is
    // single-threaded at this point.
    unsafe {
        libc::signal(libc::SIGCHLD, handler);
    }
}

/// Forks the monitor of `cfg`: a child in a session of its own, reaped by the kernel
/// (the zygote ignores SIGCHLD). One fork per launch: a middle process that exits at
/// once would only cost a second fork and an exit, since a zygote's orphaned monitors
/// are re-parented just the same when it exits.
fn spawn_monitor(cfg: &MonitorConfig) {
    match fork() {
        Ok(Forked::Parent) => {}
        Ok(Forked::Child) => {
            // Before anything that waits for a child (the runtime) or execs (an ignored
            // SIGCHLD would be inherited across exec).
            set_sigchld(libc::SIG_DFL);
            let _ = nix::unistd::setsid();
            let code = monitor(cfg);
            // SAFETY: leaves this forked process without running the zygote's exit
            // handlers or flushing its buffers a second time.
            unsafe { libc::_exit(code) }
        }
        Err(e) => report(&MonitorReport {
            id: Some(cfg.id.clone()),
            monitor_pid: std::process::id(),
            init_pid: None,
            error: Some(format!("fork: {e}")),
        }),
    }
}

/// One monitor's life, in a fresh process: runs the runtime, reports, and records how the
/// init ended. Returns the exit code.
fn monitor(cfg: &MonitorConfig) -> i32 {
    // The config is read: the zygote's config pipe is not this process's business (and
    // holding it would keep the launcher from seeing a dead zygote).
    redirect_null(libc::STDIN_FILENO);
    let me = std::process::id();
    let id = Some(cfg.id.clone());
    let fail = |msg: String| {
        report(&MonitorReport {
            id: id.clone(),
            monitor_pid: me,
            init_pid: None,
            error: Some(msg),
        });
        1
    };
    let mlog = match open_append(&cfg.monitor_log) {
        Ok(f) => f,
        Err(e) => return fail(format!("open {:?}: {e}", cfg.monitor_log)),
    };
    redirect(libc::STDERR_FILENO, &mlog);
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        return fail(format!("PR_SET_CHILD_SUBREAPER: {e}"));
    }
    // The log's writer first: a log that cannot be written fails the launch.
    let writer =
        match crate::logfile::Writer::open(&cfg.log_file, cfg.log_max_bytes, cfg.log_max_files) {
            Ok(w) => w,
            Err(e) => return fail(format!("open {:?}: {e}", cfg.log_file)),
        };
    let (out, err) = match capture::open_spools(&cfg.stdout_spool, &cfg.stderr_spool) {
        Ok(pair) => pair,
        Err(e) => return fail(format!("open {:?}: {e}", cfg.stdout_spool)),
    };
    let (Some(prog), Some(args)) = (cfg.argv.first(), cfg.argv.get(1..)) else {
        return fail("empty runtime argv".into());
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
        id: id.clone(),
        monitor_pid: me,
        init_pid: Some(pid),
        error: None,
    });
    redirect_null(libc::STDOUT_FILENO);
    // Every fork is done (the runtime ran): a thread is safe from here on.
    let spools = [
        (cfg.stdout_spool.as_path(), crate::logfile::Stream::Stdout),
        (cfg.stderr_spool.as_path(), crate::logfile::Stream::Stderr),
    ];
    let cap = match capture::start(spools, writer, &mlog) {
        Ok(c) => Some(c),
        Err(e) => {
            log(&mlog, &format!("cannot start the log capture: {e}"));
            None
        }
    };
    let rec = wait_for_init(pid, &mlog);
    // The last output, then the end: a reader that sees the exit sees all of it.
    if let Some(c) = cap {
        c.finish();
    }
    log(&mlog, &format!("init {pid} exited: {rec:?}"));
    if let Err(e) = write_exit_file(&cfg.exit_file, &rec) {
        log(&mlog, &format!("writing {:?}: {e}", cfg.exit_file));
        return 1;
    }
    0
}

/// A config line read by the zygote: JSON, or the path of a JSON file.
fn parse_line(line: &str) -> Result<MonitorConfig, String> {
    if line.starts_with('{') {
        return serde_json::from_str(line).map_err(|e| format!("monitor config line: {e}"));
    }
    read_file(Path::new(line))
}

/// A config file (a monitor run by hand).
fn read_file(path: &Path) -> Result<MonitorConfig, String> {
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
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
