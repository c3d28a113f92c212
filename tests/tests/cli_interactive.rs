//! Interactive sessions through the real `imagebus` binary, imagebusd, runc and busybox:
//! `exec -it` and `run -it` under a pty driven by the test (typing, reading, resizing,
//! Ctrl-C, exit codes, the local terminal restored), `exec -i` piping stdin, and the
//! stream socket refusing another uid (and staying one-shot), and the directories of a
//! killed session helper swept at the daemon's restart while a live one's stay.

use imagebus_sys::session::frame::{Decoder, Frame};
use imagebus_sys::session::sock::connect_as;
use imagebus_tests::cli_node::CliNode;
use imagebus_tests::daemon::{cli_command, wait_until};
use nix::sys::termios::{self, LocalFlags};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// The CLI running on the slave side of a pty whose master the test holds; killed on drop.
struct PtyCli {
    child: Child,
    master: std::fs::File,
    slave: OwnedFd,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl PtyCli {
    fn spawn(broker: &str, args: &[&str]) -> Self {
        let ws = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        let slave_fd = pty.slave.as_raw_fd();
        let mut cmd = cli_command();
        cmd.arg("--broker").arg(broker).args(args);
        cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        // SAFETY: setsid and the TIOCSCTTY ioctl are async-signal-safe; the slave stays open.
        unsafe {
            cmd.pre_exec(move || {
                if nix::libc::setsid() < 0
                    || nix::libc::ioctl(slave_fd, nix::libc::TIOCSCTTY, 0) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning imagebus on a pty");
        let master = std::fs::File::from(pty.master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            master,
            slave: pty.slave,
            seen,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    fn type_in(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Waits until the output since `from` contains `want`; the output's length then.
    fn expect_after(&self, from: usize, want: &str) -> usize {
        let ok = wait_until(WAIT, || {
            let seen = self.seen.lock().unwrap();
            String::from_utf8_lossy(seen.get(from..).unwrap_or_default()).contains(want)
        });
        assert!(ok, "{want:?} never came; output:\n{}", self.text());
        self.seen.lock().unwrap().len()
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn resize(&self, rows: u16, cols: u16) {
        imagebus_sys::tty::set_window_size(&self.master, rows, cols).unwrap();
    }

    /// The CLI's exit code, waited for.
    fn exit_code(&mut self) -> i32 {
        let mut code = None;
        let ok = wait_until(WAIT, || {
            code = self.child.try_wait().unwrap();
            code.is_some()
        });
        assert!(ok, "the CLI did not exit; output:\n{}", self.text());
        code.and_then(|s| s.code()).unwrap_or(-1)
    }
}

impl Drop for PtyCli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Types `cmd` and waits for the output of what follows it, so the echo of the input
/// itself never matches: `marker` is printed by an arithmetic expansion.
fn run_line(p: &mut PtyCli, cmd: &str, want: &str) {
    let from = p.len();
    p.type_in(cmd);
    p.type_in("\r");
    p.expect_after(from, want);
}

#[test]
fn exec_it_is_a_terminal_with_resizes_ctrl_c_and_the_exit_code() {
    let n = CliNode::start("ibpty");
    n.ok(&[
        "run",
        "--name",
        "c",
        "--image",
        n.image(),
        "--",
        "sleep",
        "1000",
    ]);
    let mut p = PtyCli::spawn(&n.redis.url(), &["exec", "-it", "c", "--", "sh"]);
    // A prompt, then a command whose output differs from its echo.
    p.expect_after(0, "# ");
    run_line(&mut p, "echo $((6*7))x", "42x");
    run_line(&mut p, "tty", "/dev/pts/");
    // The local terminal is raw: no local echo or line discipline (the remote echoes).
    let t = termios::tcgetattr(p.slave.as_fd()).unwrap();
    assert!(!t.local_flags.contains(LocalFlags::ECHO));
    assert!(!t.local_flags.contains(LocalFlags::ICANON));
    // The initial size, then a resize of the local terminal reaches the remote one.
    run_line(&mut p, "stty size", "24 80");
    p.resize(40, 132);
    let ok = wait_until(WAIT, || {
        let from = p.len();
        p.type_in("stty size\r");
        wait_until(Duration::from_secs(1), || {
            String::from_utf8_lossy(&p.seen.lock().unwrap()[from..]).contains("40 132")
        })
    });
    assert!(ok, "the resize never arrived:\n{}", p.text());
    // Ctrl-C interrupts a foreground sleep (else the next line would wait 100 s).
    let from = p.len();
    p.type_in("sleep 100; echo done-$((2+3))\r");
    let sleeping = wait_until(WAIT, || {
        n.daemon
            .cli(&[
                "exec",
                "c",
                "--",
                "sh",
                "-c",
                "ps -o args | grep -qx 'sleep 100'",
            ])
            .status
            .success()
    });
    assert!(sleeping, "the sleep never started:\n{}", p.text());
    p.type_in("\x03");
    run_line(&mut p, "echo after-$((1+1))", "after-2");
    assert!(
        !p.text()[from..].contains("done-5"),
        "Ctrl-C ended the whole line, not only the sleep:\n{}",
        p.text()
    );
    // The exit code comes back, and the local terminal is restored.
    p.type_in("exit 7\r");
    assert_eq!(p.exit_code(), 7, "output:\n{}", p.text());
    let t = termios::tcgetattr(p.slave.as_fd()).unwrap();
    assert!(
        t.local_flags.contains(LocalFlags::ECHO),
        "terminal restored"
    );
    assert!(
        t.local_flags.contains(LocalFlags::ICANON),
        "terminal restored"
    );
    // Ctrl-D (end of input) ends a shell too: exit 0.
    let mut p = PtyCli::spawn(&n.redis.url(), &["exec", "-it", "c", "--", "sh"]);
    p.expect_after(0, "# ");
    p.type_in("\x04");
    assert_eq!(p.exit_code(), 0, "output:\n{}", p.text());
    // Nothing of the sessions is left behind: no helper, no socket.
    let sessions = n.daemon.run_dir().join("container.sessions");
    let gone = wait_until(WAIT, || {
        std::fs::read_dir(&sessions).map_or(true, |mut d| d.next().is_none())
    });
    assert!(gone, "session directories left in {sessions:?}");
}

#[test]
fn exec_i_pipes_stdin_and_the_socket_refuses_other_uids() {
    let n = CliNode::start("ibpipe");
    n.ok(&[
        "run",
        "--name",
        "c",
        "--image",
        n.image(),
        "--",
        "sleep",
        "1000",
    ]);
    let broker = n.redis.url();
    let run = |args: &[&str], input: &[u8]| {
        let mut child = cli_command()
            .arg("--broker")
            .arg(&broker)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    // `echo hi | imagebus exec -i c -- cat`: stdin through, EOF ends cat.
    let out = run(&["exec", "-i", "c", "--", "cat"], b"hi\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    // stdout and stderr apart, and the exit code.
    let out = run(
        &[
            "exec",
            "-i",
            "c",
            "--",
            "sh",
            "-c",
            "wc -c; echo oops >&2; exit 3",
        ],
        &[b'x'; 100_000],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100000");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    // A command that cannot run is a usage error (2), not a process exit code.
    let out = run(&["exec", "-i", "c", "--", "/nope"], b"");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // -t without a terminal on stdin is refused.
    let out = run(&["exec", "-it", "c", "--", "sh"], b"");
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // The socket: 0600 in a 0700 directory; uid 65534 is refused; the first connection
    // of root is served; then the socket is gone.
    let id = n.json(&["inspect", "c"])["id"].as_u64().unwrap();
    let info = n.json(&[
        "call",
        "container",
        "container@1",
        "Session",
        &format!("{{\"id\":{id}}}"),
        r#"{"exec":{"command":["sh","-c","echo served"]},"uid":0}"#,
    ]);
    let socket = std::path::PathBuf::from(info["socket"].as_str().unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    let refused = connect_as(65534, &socket).unwrap();
    assert!(
        refused == 0 || refused == 1,
        "uid 65534 got data ({refused})"
    );
    // Even with the directory open, SO_PEERCRED refuses it (and does not use the chance).
    std::fs::set_permissions(
        socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(
        connect_as(65534, &socket).unwrap(),
        0,
        "connected, then closed"
    );
    let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let (mut dec, mut out, mut code) = (Decoder::default(), Vec::new(), None);
    let mut buf = [0u8; 4096];
    while code.is_none() {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0, "the stream ended early");
        dec.push(&buf[..k]);
        while let Some(f) = dec.next_frame().unwrap() {
            match f {
                Frame::Stdout(b) => out.extend(b),
                Frame::Exit(c) => code = Some(c),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        (String::from_utf8_lossy(&out).as_ref(), code),
        ("served\n", Some(0))
    );
    assert!(!socket.exists(), "one-shot: the socket is removed");
}

#[test]
fn run_it_gives_the_init_a_terminal_and_returns_its_exit_code() {
    let n = CliNode::start("ibrunit");
    let mut p = PtyCli::spawn(
        &n.redis.url(),
        &[
            "run",
            "-it",
            "--name",
            "t",
            "--image",
            n.image(),
            "--",
            "sh",
        ],
    );
    p.expect_after(0, "# ");
    run_line(&mut p, "echo $((6*7))x", "42x");
    run_line(&mut p, "echo $$-pid", "1-pid");
    run_line(&mut p, "stty size", "24 80");
    p.type_in("exit 5\r");
    assert_eq!(p.exit_code(), 5, "output:\n{}", p.text());
    let info = n.json(&["inspect", "t"]);
    assert_eq!(info["state"], "exited", "{info}");
    assert_eq!(info["exit_code"], 5, "{info}");
    // -i without -t is a usage error.
    let out = n
        .daemon
        .cli(&["run", "-i", "--image", n.image(), "--", "sh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// The pid holding an exclusive `flock` on `file`, from `/proc/locks`.
fn flock_holder(file: &std::path::Path) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(file).ok()?.ino().to_string();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // `1: FLOCK  ADVISORY  WRITE 4242 00:1a:123456 0 EOF`
        let at = f.iter().position(|w| *w == "FLOCK")?;
        let (pid, dev_ino) = (f.get(at + 3)?, f.get(at + 4)?);
        (dev_ino.rsplit(':').next()? == ino).then(|| pid.parse().ok())?
    })
}

#[test]
fn a_killed_session_helpers_directories_are_swept_at_restart_and_a_live_ones_kept() {
    let mut n = CliNode::start("ibsweep");
    n.ok(&[
        "run",
        "--name",
        "c",
        "--image",
        n.image(),
        "--",
        "sleep",
        "1000",
    ]);
    let id = n.json(&["inspect", "c"])["id"].as_u64().unwrap();
    let session = |n: &CliNode| {
        let info = n.json(&[
            "call",
            "container",
            "container@1",
            "Session",
            &format!("{{\"id\":{id}}}"),
            r#"{"exec":{"command":["true"]},"uid":0}"#,
        ]);
        // `<run_dir>.sessions/<token>/stream.sock`, and `<run_dir>/sessions/<token>/`.
        let stream_dir = std::path::PathBuf::from(info["socket"].as_str().unwrap())
            .parent()
            .unwrap()
            .to_path_buf();
        let token = stream_dir.file_name().unwrap().to_owned();
        let sessions = stream_dir.parent().unwrap().to_str().unwrap();
        let run_dir = std::path::PathBuf::from(sessions.strip_suffix(".sessions").unwrap());
        let work_dir = run_dir.join("sessions").join(token);
        let pid = flock_holder(&work_dir.join("held")).expect("the helper holds its lock");
        (stream_dir, work_dir, pid)
    };
    let (dead_stream, dead_work, dead_pid) = session(&n);
    let (live_stream, live_work, live_pid) = session(&n);
    assert_ne!(dead_pid, live_pid);
    // kill -9: the helper cannot remove its directories.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dead_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(WAIT, || flock_holder(&dead_work.join("held")).is_none()),
        "the killed helper's lock stays"
    );
    assert!(dead_stream.exists() && dead_work.exists());
    n.daemon.kill9();
    n.daemon.restart();
    assert!(
        !dead_stream.exists() && !dead_work.exists(),
        "the dead session's directories stay: {}",
        n.daemon.log()
    );
    assert!(
        live_stream.exists() && live_work.exists(),
        "a live session's directories were removed"
    );
    assert!(
        n.daemon.log().contains("1 dead sessions swept"),
        "{}",
        n.daemon.log()
    );
    // The live helper is still waiting for its client: end it.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(live_pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    n.ok(&["rm", "--force", "c"]);
    n.assert_clean();
}
