//! Which Redis the daemon uses, and the private `redis-server` it starts when there is none.
//!
//! Order: `--broker`/IMAGEBUS_BROKER as given; else the zos default if it answers; else a
//! private broker left answering at `<run-dir>/redis.sock` by an earlier run; else a new
//! private `redis-server --port 0 --unixsocket <run-dir>/redis.sock` (no TCP, no
//! persistence), as zos's own `redis` unit runs it, stopped when the daemon exits.
//! The URL in use is written to `<run-dir>/broker` for the CLI.
//!
//! The daemon starts redis-server with `tokio::process` itself rather than through an
//! `imagebus-sys` seam: this is the binary supervising its own dependency (as zinit would),
//! not module logic, and it is covered end to end by `tests/tests/daemon_lifecycle.rs`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker in use and, when we started it, the private redis-server.
#[derive(Debug)]
pub struct Broker {
    /// URL the bus connects to.
    pub url: String,
    private: Option<PrivateRedis>,
    url_file: PathBuf,
}

#[derive(Debug)]
struct PrivateRedis {
    child: Child,
    socket: PathBuf,
}

/// Settings for [`resolve`].
#[derive(Debug)]
pub struct BrokerConfig<'a> {
    /// `--broker`, if given.
    pub configured: Option<&'a str>,
    /// Probed when nothing is configured.
    pub default: &'a str,
    /// redis-server executable.
    pub redis_server: &'a Path,
    /// Daemon run directory.
    pub run_dir: &'a Path,
    /// `--socket-group`: who besides root may use a private broker.
    pub socket_group: Option<nix::unistd::Gid>,
}

/// A group name or number as `--socket-group` takes it.
pub fn resolve_group(group: &str) -> Result<nix::unistd::Gid> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(n));
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => bail!("--socket-group {group:?}: no such group"),
        Err(e) => bail!("--socket-group {group:?}: {e}"),
    }
}

/// Lets `gid` reach the socket: the run directory root:gid and group-traversable (0710),
/// the socket root:gid 0770.
fn share_with(gid: nix::unistd::Gid, run_dir: &Path, socket: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    nix::unistd::chown(run_dir, None, Some(gid))
        .with_context(|| format!("chgrp {}", run_dir.display()))?;
    let mode = std::fs::metadata(run_dir)?.permissions().mode() & 0o7777;
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(mode | 0o010))?;
    nix::unistd::chown(socket, None, Some(gid))
        .with_context(|| format!("chgrp {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o770))?;
    Ok(())
}

/// Picks (or starts) the broker and records its URL in `<run-dir>/broker`.
pub async fn resolve(cfg: BrokerConfig<'_>) -> Result<Broker> {
    let url_file = cfg.run_dir.join("broker");
    let socket = cfg.run_dir.join("redis.sock");
    let private_url = format!("unix://{}", socket.display());
    let (url, private) = if let Some(url) = cfg.configured {
        if let Err(e) = imagebus_bus::broker::Broker::parse(url) {
            bail!("{e}");
        }
        tracing::info!(broker = %imagebus_bus::broker::redact(url), "using the configured broker");
        (url.to_string(), None)
    } else if imagebus_bus::broker::answers(cfg.default, PROBE_TIMEOUT).await {
        tracing::info!(broker = %imagebus_bus::broker::redact(cfg.default), "using the default broker");
        (cfg.default.to_string(), None)
    } else if imagebus_bus::broker::answers(&private_url, PROBE_TIMEOUT).await {
        tracing::warn!(broker = %private_url, "reusing a private broker left by an earlier run");
        (private_url, None)
    } else {
        tracing::info!(default = %imagebus_bus::broker::redact(cfg.default), "no broker answers; starting a private redis-server");
        let perm = if cfg.socket_group.is_some() {
            "770"
        } else {
            "700"
        };
        let child = start_private(cfg.redis_server, &socket, &private_url, perm).await?;
        if let Some(gid) = cfg.socket_group {
            share_with(gid, cfg.run_dir, &socket)?;
            tracing::info!(socket = %socket.display(), gid = gid.as_raw(), "the broker socket is open to the group");
        }
        (private_url, Some(PrivateRedis { child, socket }))
    };
    write_atomic(&url_file, &format!("{url}\n"))
        .with_context(|| format!("writing {}", url_file.display()))?;
    Ok(Broker {
        url,
        private,
        url_file,
    })
}

impl Broker {
    /// Whether this daemon started the broker itself.
    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    /// Removes `<run-dir>/broker` and stops the private redis-server, if any (SHUTDOWN
    /// NOSAVE, then SIGKILL after a bounded wait).
    pub async fn stop(mut self) {
        if std::fs::read_to_string(&self.url_file).is_ok_and(|s| s.trim() == self.url) {
            let _ = std::fs::remove_file(&self.url_file);
        }
        let Some(mut p) = self.private.take() else {
            return;
        };
        if let Ok(mut s) = tokio::net::UnixStream::connect(&p.socket).await {
            let _ = s.write_all(b"SHUTDOWN NOSAVE\r\n").await;
        }
        match tokio::time::timeout(STOP_TIMEOUT, p.child.wait()).await {
            Ok(_) => tracing::info!("private redis-server stopped"),
            Err(_) => {
                tracing::warn!("private redis-server did not stop; killing it");
                let _ = p.child.kill().await;
            }
        }
        let _ = std::fs::remove_file(&p.socket);
    }
}

async fn start_private(exe: &Path, socket: &Path, url: &str, perm: &str) -> Result<Child> {
    let _ = std::fs::remove_file(socket);
    let dir = socket.parent().context("socket path has no parent")?;
    let mut child = Command::new(exe)
        .args(["--port", "0", "--unixsocket"])
        .arg(socket)
        .args([
            "--unixsocketperm",
            perm,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (install the redis-server package, or pass --broker)",
                exe.display()
            )
        })?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if imagebus_bus::broker::answers(url, Duration::from_millis(200)).await {
            tracing::info!(broker = %url, pid = child.id(), "private redis-server is up");
            return Ok(child);
        }
        if let Some(status) = child.try_wait().context("waiting for redis-server")? {
            bail!("redis-server exited with {status} before answering at {url}");
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            bail!("redis-server did not answer at {url} within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `text` to `path` through the one atomic writer
/// ([`imagebus_sys::state::write_atomic`]); mode 0600 when the text holds credentials
/// (`user:password@`), else 0644.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), imagebus_sys::state::StateError> {
    let mode = if text.contains('@') { 0o600 } else { 0o644 };
    imagebus_sys::state::write_atomic(path, text.as_bytes(), mode)
}
