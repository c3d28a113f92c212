//! The session helper process (see the module docs): set up the stream socket, wait for the
//! client, run the process (or take the init's terminal), relay, and report how it ended.

use super::frame::{encode, Decoder, Frame};
use super::sock::{accept_from, listen_private, peer_uid, recv_fd, wait_readable};
use super::{SessionConfig, SessionKind, SessionReport, MASTER_FD};
use crate::monitor::process::{fork, redirect_null, Forked};
use crate::signal::Pidfd;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the runtime may take to start an exec'd process.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(30);
/// After the process ended, output is still relayed until none came for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(100);
/// ... and at most this long.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Between SIGHUP and SIGKILL of an exec'd process whose client went away.
const HANGUP_GRACE: Duration = Duration::from_secs(1);
/// Input buffered for a process that does not read it before the client is not read.
const MAX_PENDING: usize = 256 * 1024;

fn report(r: &SessionReport) {
    if let Ok(mut s) = serde_json::to_string(r) {
        s.push('\n');
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes()).and_then(|()| out.flush());
    }
}

fn report_error(msg: String) -> i32 {
    report(&SessionReport {
        socket: None,
        error: Some(msg),
    });
    1
}

/// The helper's body, called by the monitor binary's `main` while it is single-threaded.
/// The calling process returns at once (0) and its detached child runs the session.
pub fn run_session() -> i32 {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        return report_error(format!("reading the session config: {e}"));
    }
    let cfg: SessionConfig = match serde_json::from_str(line.trim()) {
        Ok(c) => c,
        Err(e) => return report_error(format!("session config: {e}")),
    };
    match fork() {
        Ok(Forked::Parent) => return 0,
        Ok(Forked::Child) => {}
        Err(e) => return report_error(format!("fork: {e}")),
    }
    let _ = nix::unistd::setsid();
    let master = match cfg.kind {
        // SAFETY: the launcher put the master on MASTER_FD for this process; nothing else
        // owns it.
        SessionKind::Terminal { .. } => Some(unsafe { OwnedFd::from_raw_fd(MASTER_FD) }),
        SessionKind::Exec { .. } => None,
    };
    let code = session(&cfg, master);
    let _ = std::fs::remove_dir_all(&cfg.stream_dir);
    let _ = std::fs::remove_dir_all(&cfg.work_dir);
    code
}

fn private_dir(dir: &std::path::Path, uid: u32) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if uid != 0 {
        std::os::unix::fs::chown(dir, Some(uid), None)?;
    }
    Ok(())
}

fn session(cfg: &SessionConfig, master: Option<OwnedFd>) -> i32 {
    // The work directory and its lock first: from then on a sweep sees this session live
    // (the lock goes with the process, however it ends).
    let made = private_dir(&cfg.work_dir, 0)
        .and_then(|()| super::sweep::hold(&cfg.work_dir))
        .and_then(|held| {
            private_dir(&cfg.stream_dir, cfg.uid)?;
            Ok((held, listen_private(&cfg.stream_socket(), cfg.uid)?))
        });
    let (_held, listener) = match made {
        Ok(made) => made,
        Err(e) => return report_error(format!("session socket {:?}: {e}", cfg.stream_socket())),
    };
    report(&SessionReport {
        socket: Some(cfg.stream_socket()),
        error: None,
    });
    redirect_null(libc::STDOUT_FILENO);
    redirect_null(libc::STDIN_FILENO);
    let deadline = Instant::now() + Duration::from_millis(cfg.connect_timeout_ms);
    let accepted = accept_from(&listener, cfg.uid, deadline, &mut |_| {});
    drop(listener);
    let _ = std::fs::remove_dir_all(&cfg.stream_dir);
    let Ok(client) = accepted else {
        return 1;
    };
    let mut out = Out(client);
    let result = match &cfg.kind {
        SessionKind::Exec {
            argv,
            tty: true,
            failure_code,
        } => exec_tty(cfg, argv, *failure_code, &mut out),
        SessionKind::Exec {
            argv,
            tty: false,
            failure_code,
        } => exec_pipes(cfg, argv, *failure_code, &mut out),
        SessionKind::Terminal { init_pid } => match master {
            Some(m) => terminal(cfg, File::from(m), *init_pid, &mut out),
            None => Err(("Internal", "no terminal was handed over".to_string())),
        },
    };
    match result {
        Ok(last) => {
            if let Some(f) = last {
                out.send(&f);
            }
            0
        }
        Err((code, message)) => {
            out.send(&Frame::Error {
                code: code.to_string(),
                message,
            });
            1
        }
    }
}

/// The client connection.
struct Out(UnixStream);

impl Out {
    /// Sends `f`; false when the client is gone.
    fn send(&mut self, f: &Frame) -> bool {
        self.0.write_all(&encode(f)).is_ok()
    }
}

/// A failure to report to the client: error code name and message.
type Failed = (&'static str, String);

fn runtime_failure(cfg: &SessionConfig, status: std::process::ExitStatus) -> Failed {
    let text = std::fs::read_to_string(cfg.runtime_log()).unwrap_or_default();
    let msg = crate::oci_cli::error_message(&text);
    let code = if crate::oci_cli::cannot_exec(&msg) {
        "InvalidArgument"
    } else {
        "Internal"
    };
    let msg = if msg.is_empty() {
        format!("the runtime exited with {status}")
    } else {
        msg
    };
    (code, msg)
}

fn spawn(argv: &[String], stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Result<Child, Failed> {
    let (Some(prog), Some(args)) = (argv.first(), argv.get(1..)) else {
        return Err(("Internal", "empty runtime argv".into()));
    };
    Command::new(prog)
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| ("Internal", format!("starting {prog}: {e}")))
}

/// Waits for `child` until `deadline`; kills it then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn shell_code(status: nix::sys::wait::WaitStatus) -> Option<i32> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

fn read_pid(cfg: &SessionConfig) -> Option<u32> {
    std::fs::read_to_string(cfg.pid_file())
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// `exec --tty`: receive the master from the runtime, relay, reap the process.
fn exec_tty(
    cfg: &SessionConfig,
    argv: &[String],
    _failure_code: i32,
    out: &mut Out,
) -> Result<Option<Frame>, Failed> {
    let internal = |what: &str, e: std::io::Error| ("Internal", format!("{what}: {e}"));
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| internal("PR_SET_CHILD_SUBREAPER", e.into()))?;
    let console =
        listen_private(&cfg.console_socket(), 0).map_err(|e| internal("console socket", e))?;
    let mut runtime = spawn(argv, Stdio::null(), Stdio::null(), Stdio::null())?;
    let deadline = Instant::now() + RUNTIME_TIMEOUT;
    // The runtime connects once the terminal exists, or exits having failed.
    let master = loop {
        if wait_readable(&console, Duration::from_millis(50))
            .map_err(|e| internal("console socket", e))?
        {
            let (s, _) = console
                .accept()
                .map_err(|e| internal("console socket", e))?;
            if peer_uid(&s).is_ok_and(|u| u == 0) {
                break recv_fd(&s).map_err(|e| internal("receiving the terminal", e))?;
            }
            continue;
        }
        if let Ok(Some(status)) = runtime.try_wait() {
            return Err(runtime_failure(cfg, status));
        }
        if Instant::now() >= deadline {
            let _ = runtime.kill();
            let _ = runtime.wait();
            return Err(("Internal", "the runtime did not start the process".into()));
        }
    };
    drop(console);
    match wait_until(&mut runtime, deadline) {
        Some(s) if s.success() => {}
        Some(s) => return Err(runtime_failure(cfg, s)),
        None => return Err(("Internal", "the runtime did not finish".into())),
    }
    let pid = read_pid(cfg).ok_or(("Internal", "no pid for the exec'd process".to_string()))?;
    let pidfd = Pidfd::open(pid).map_err(|e| internal("pidfd", e))?;
    let master = File::from(master);
    let input = if cfg.stdin {
        Some(master.try_clone().map_err(|e| internal("dup", e))?)
    } else {
        None
    };
    let nix_pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let end = relay(out, input, &[(&master, false)], Some(&master), Some(&pidfd));
    if end == End::Disconnected {
        drop(master);
        let _ = pidfd.send(libc::SIGHUP);
        if !wait_readable(&pidfd, HANGUP_GRACE).unwrap_or(false) {
            let _ = pidfd.send(libc::SIGKILL);
        }
        let _ = nix::sys::wait::waitpid(nix_pid, None);
        return Ok(None);
    }
    let code = nix::sys::wait::waitpid(nix_pid, None)
        .ok()
        .and_then(shell_code);
    Ok(Some(code.map_or(Frame::Ended, Frame::Exit)))
}

/// `exec` without a terminal: the runtime in the foreground, with pipes.
fn exec_pipes(
    cfg: &SessionConfig,
    argv: &[String],
    failure_code: i32,
    out: &mut Out,
) -> Result<Option<Frame>, Failed> {
    let stdin = if cfg.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut runtime = spawn(argv, stdin, Stdio::piped(), Stdio::piped())?;
    let pipes = (
        runtime.stdin.take().map(|p| File::from(OwnedFd::from(p))),
        runtime.stdout.take().map(|p| File::from(OwnedFd::from(p))),
        runtime.stderr.take().map(|p| File::from(OwnedFd::from(p))),
    );
    let (input, Some(stdout), Some(stderr)) = pipes else {
        let _ = runtime.kill();
        let _ = runtime.wait();
        return Err(("Internal", "runtime pipes missing".into()));
    };
    let pidfd = Pidfd::open(runtime.id())
        .map_err(|e| ("Internal", format!("pidfd of the runtime: {e}")))?;
    let end = relay(
        out,
        input,
        &[(&stdout, false), (&stderr, true)],
        None,
        Some(&pidfd),
    );
    if end == End::Disconnected {
        // The runtime forwards signals to the process; the process itself is killed too.
        if let Some(pid) = read_pid(cfg) {
            if let Ok(p) = Pidfd::open(pid) {
                let _ = p.send(libc::SIGKILL);
            }
        }
        let _ = pidfd.send(libc::SIGKILL);
        let _ = wait_until(&mut runtime, Instant::now() + RUNTIME_TIMEOUT);
        return Ok(None);
    }
    let Some(status) = wait_until(&mut runtime, Instant::now() + RUNTIME_TIMEOUT) else {
        return Err(("Internal", "the runtime did not finish".into()));
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    if code == failure_code {
        let (kind, msg) = runtime_failure(cfg, status);
        if !std::fs::read_to_string(cfg.runtime_log())
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            return Err((kind, msg));
        }
    }
    Ok(Some(Frame::Exit(code)))
}

/// The init's terminal: relay until it closes or the init ends.
fn terminal(
    cfg: &SessionConfig,
    master: File,
    init_pid: Option<u32>,
    out: &mut Out,
) -> Result<Option<Frame>, Failed> {
    let pidfd = init_pid.and_then(|p| Pidfd::open(p).ok());
    let input = if cfg.stdin {
        Some(
            master
                .try_clone()
                .map_err(|e| ("Internal", format!("dup: {e}")))?,
        )
    } else {
        None
    };
    match relay(
        out,
        input,
        &[(&master, false)],
        Some(&master),
        pidfd.as_ref(),
    ) {
        End::Disconnected => Ok(None),
        End::Finished => Ok(Some(Frame::Ended)),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The process ended (and its output was relayed).
    Finished,
    /// The client went away.
    Disconnected,
}

fn set_nonblocking(f: &impl AsFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(f, FcntlArg::F_GETFL) {
        let _ = fcntl(
            f,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

/// Relays between the client and the process: input frames to `input` (dropped on
/// `stdin-eof` without a terminal), `resize` to `tty`, each of `outputs` (`true`: stderr)
/// to the client, until `exit` is readable and the output has been drained, every output
/// closed (when there is no `exit`), or the client went away.
fn relay(
    out: &mut Out,
    mut input: Option<File>,
    outputs: &[(&File, bool)],
    tty: Option<&File>,
    exit: Option<&Pidfd>,
) -> End {
    for (f, _) in outputs {
        set_nonblocking(f);
    }
    if let Some(i) = &input {
        set_nonblocking(i);
    }
    let mut open = vec![true; outputs.len()];
    let mut pending: Vec<u8> = Vec::new();
    let mut dec = Decoder::default();
    let mut exited_at: Option<Instant> = None;
    let mut input_eof = false;
    let mut buf = vec![0u8; 32 * 1024];
    let client = match out.0.try_clone() {
        Ok(c) => c,
        Err(_) => return End::Disconnected,
    };
    let mut client_reader = &client;
    loop {
        if let Some(at) = exited_at {
            if at.elapsed() >= DRAIN_MAX || !open.iter().any(|o| *o) {
                return End::Finished;
            }
        } else if exit.is_none() && !open.iter().any(|o| *o) {
            return End::Finished;
        }
        // Only what is wanted is polled (POLLHUP is reported whatever the flags).
        let mut fds = Vec::with_capacity(3 + outputs.len());
        let c_at = (pending.len() < MAX_PENDING).then_some(0);
        if c_at.is_some() {
            fds.push(PollFd::new(client.as_fd(), PollFlags::POLLIN));
        }
        let in_at = match &input {
            Some(i) if !pending.is_empty() => {
                let at = fds.len();
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLOUT));
                Some(at)
            }
            _ => None,
        };
        let exit_at = match (exit, exited_at) {
            (Some(p), None) => {
                let at = fds.len();
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                Some(at)
            }
            _ => None,
        };
        let mut out_at = Vec::with_capacity(outputs.len());
        for ((f, _), o) in outputs.iter().zip(&open) {
            out_at.push(o.then(|| fds.len()));
            if *o {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
        }
        let timeout = match exited_at {
            Some(_) => PollTimeout::from(DRAIN_QUIET.as_millis() as u16),
            None => PollTimeout::NONE,
        };
        let n = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return End::Disconnected,
        };
        if n == 0 {
            // Draining and nothing came for a while.
            return End::Finished;
        }
        let ready = |at: Option<usize>| {
            at.and_then(|i| fds.get(i))
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (c_ready, in_ready, exit_ready) = (ready(c_at), ready(in_at), ready(exit_at));
        let out_ready: Vec<bool> = out_at.iter().map(|a| ready(*a)).collect();
        drop(fds);
        if c_ready {
            match client_reader.read(&mut buf) {
                Ok(0) | Err(_) => return End::Disconnected,
                Ok(n) => dec.push(&buf[..n]),
            }
            loop {
                match dec.next_frame() {
                    Ok(Some(Frame::Stdin(b))) => {
                        if input.is_some() {
                            pending.extend(b);
                        }
                    }
                    Ok(Some(Frame::StdinEof)) => {
                        // Closed once what came before it is written.
                        input_eof = tty.is_none();
                    }
                    Ok(Some(Frame::Resize { rows, cols })) => {
                        if let Some(t) = tty {
                            let _ = crate::tty::set_window_size(t, rows, cols);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return End::Disconnected,
                }
            }
        }
        if in_ready && !pending.is_empty() {
            if let Some(mut i) = input.as_ref() {
                match i.write(&pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        pending.clear();
                        input = None;
                    }
                }
            }
        }
        if input_eof && pending.is_empty() {
            input = None;
        }
        if exit_ready {
            exited_at = Some(Instant::now());
        }
        for (k, (f, is_err)) in outputs.iter().enumerate() {
            if !out_ready[k] {
                continue;
            }
            let mut r: &File = f;
            match r.read(&mut buf) {
                Ok(0) => open[k] = false,
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    let frame = if *is_err {
                        Frame::Stderr(data)
                    } else {
                        Frame::Stdout(data)
                    };
                    if !out.send(&frame) {
                        return End::Disconnected;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EIO: every holder of the terminal's other side is gone.
                Err(_) => open[k] = false,
            }
        }
    }
}
