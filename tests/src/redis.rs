//! `RedisFixture`: a private `redis-server` for one test, on a unix socket in a temp dir
//! (optionally also on a loopback TCP port), killed when the fixture is dropped.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the fixture gives up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A private Redis server. Dropping it kills the server and removes its directory.
#[derive(Debug)]
pub struct RedisFixture {
    dir: tempfile::TempDir,
    socket: PathBuf,
    tcp_port: Option<u16>,
    password: Option<String>,
    child: Option<Child>,
}

impl RedisFixture {
    /// Starts a server on a unix socket only. Panics with a clear message when
    /// `redis-server` is missing or does not come up.
    pub fn start() -> Self {
        Self::try_start(false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server on a unix socket and a free loopback TCP port.
    pub fn start_with_tcp() -> Self {
        Self::try_start(true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server that requires `password` (`requirepass`, i.e. the `default` user).
    pub fn start_with_password(password: &str) -> Self {
        Self::try_start_with(false, Some(password)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server, reporting why it could not.
    pub fn try_start(tcp: bool) -> Result<Self, String> {
        Self::try_start_with(tcp, None)
    }

    fn try_start_with(tcp: bool, password: Option<&str>) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("imagebus-redis-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir for redis: {e}"))?;
        let socket = dir.path().join("r.sock");
        let tcp_port = if tcp { Some(free_port()?) } else { None };
        let password = password.map(String::from);
        let mut fixture = Self {
            dir,
            socket,
            tcp_port,
            password,
            child: None,
        };
        fixture.spawn()?;
        Ok(fixture)
    }

    /// `unix:///<tmp>/r.sock`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `redis://127.0.0.1:<port>` when started with TCP.
    pub fn tcp_url(&self) -> Option<String> {
        self.tcp_port.map(|p| format!("redis://127.0.0.1:{p}"))
    }

    /// `127.0.0.1:<port>` when started with TCP.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp_port
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)))
    }

    /// Process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The unix socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Kills the server (state is lost; nothing is persisted).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts the server again on the same socket (and port) after [`RedisFixture::stop`].
    pub fn start_again(&mut self) {
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Kills the server and starts a fresh one on the same socket.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Sends one command over a fresh connection and returns the raw RESP reply.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        let mut s = UnixStream::connect(&self.socket).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(cmd.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("redis.log"))
            .map_err(|e| format!("creating redis.log: {e}"))?;
        let port = self.tcp_port.unwrap_or(0).to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--unixsocket"])
            .arg(&self.socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir"])
            .arg(self.dir.path())
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass", p.as_str()]),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log));
        let child = cmd.spawn().map_err(|e| {
            format!("cannot run redis-server ({e}); install it: apt-get install -y redis-server")
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(reply) = self.command(&["PING"]) {
                if reply.starts_with("+PONG") || reply.starts_with("-NOAUTH") {
                    return Ok(());
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(self.dir.path().join("redis.log"))
                        .unwrap_or_default();
                    return Err(format!("redis-server exited with {status}: {log}"));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server did not answer on {:?} within {START_TIMEOUT:?}",
                    self.socket
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisFixture {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}
