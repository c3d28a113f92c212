//! A small client of zinit's control socket (the line protocol of zinit 0.2, which zos
//! speaks): one command per connection, `<cmd> <args>\n`, answered with
//! `{"state": "ok"|"error", "body": …}`. Every exchange has a deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one exchange with zinit may take.
const EXCHANGE: Duration = Duration::from_secs(10);

/// zinit at one socket.
#[derive(Debug, Clone)]
pub struct Zinit {
    socket: PathBuf,
}

impl Zinit {
    /// zinit listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether zinit answers (`list`) within a second.
    pub async fn answers(&self) -> bool {
        if !self.socket.exists() {
            return false;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.exchange("list")).await,
            Ok(Ok(_))
        )
    }

    /// `monitor NAME`: loads `NAME.yaml` and starts it.
    pub async fn monitor(&self, name: &str) -> Result<(), String> {
        self.command(&format!("monitor {name}")).await
    }

    /// `start NAME`.
    pub async fn start(&self, name: &str) -> Result<(), String> {
        self.command(&format!("start {name}")).await
    }

    /// `stop NAME`.
    pub async fn stop(&self, name: &str) -> Result<(), String> {
        self.command(&format!("stop {name}")).await
    }

    /// `forget NAME` (only once it is stopped).
    pub async fn forget(&self, name: &str) -> Result<(), String> {
        self.command(&format!("forget {name}")).await
    }

    async fn command(&self, line: &str) -> Result<(), String> {
        match tokio::time::timeout(EXCHANGE, self.exchange(line)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("zinit did not answer {line:?} within {EXCHANGE:?}")),
        }
    }

    /// Sends `line`; the body of an `ok` answer, or the error.
    async fn exchange(&self, line: &str) -> Result<serde_json::Value, String> {
        let sock = &self.socket;
        let mut s = tokio::net::UnixStream::connect(sock)
            .await
            .map_err(|e| format!("zinit at {}: {e}", sock.display()))?;
        s.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("zinit: {e}"))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| format!("zinit: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&buf)
            .map_err(|e| format!("zinit answered {line:?} with no JSON: {e}"))?;
        match v.get("state").and_then(|s| s.as_str()) {
            Some("ok") => Ok(v.get("body").cloned().unwrap_or_default()),
            _ => Err(format!(
                "zinit refused {line:?}: {}",
                v.get("body").cloned().unwrap_or_default()
            )),
        }
    }
}
