//! A small client of zinit's control socket, for both protocols zinit has spoken there:
//!
//! - **legacy** (zinit up to 0.2.14, the one zos speaks): one command per connection,
//!   `<cmd> <args>\n`, answered with `{"state": "ok"|"error", "body": …}`, then closed;
//! - **JSON-RPC 2.0** (zinit 0.2.15 and later): `{"jsonrpc":"2.0","id":N,"method":
//!   "service_monitor","params":["NAME"]}\n`, answered with `{"jsonrpc":"2.0","id":N,
//!   "result":…}` or `{"error":{"code":…,"message":…}}`.
//!
//! Which one the socket speaks is found once (a JSON-RPC `service_list`: a JSON-RPC zinit
//! answers it, a legacy one answers `{"state":"error",…}`) and remembered until an
//! exchange fails, so a zinit replaced by another version is found again. Engine code
//! uses one API ([`Zinit`]) and gets typed outcomes ([`ZinitError`]) either way. Every
//! exchange has a deadline.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one exchange with zinit may take.
const EXCHANGE: Duration = Duration::from_secs(10);
/// How long finding out whether (and how) zinit answers may take.
const PROBE: Duration = Duration::from_secs(2);
/// Largest answer read.
const MAX_ANSWER: usize = 1 << 20;

/// The protocols zinit speaks on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `<cmd> <args>\n` → `{"state","body"}` (zinit ≤ 0.2.14).
    Legacy,
    /// JSON-RPC 2.0, `service_*` methods (zinit ≥ 0.2.15).
    JsonRpc,
}

/// What zinit answered instead of success, typed from JSON-RPC's error codes or the
/// legacy protocol's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZinitError {
    /// No zinit answered (no socket, refused, no answer within the deadline, not zinit).
    #[error("zinit at {socket}: {detail}")]
    Unavailable {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// `-32000`: zinit does not know the service.
    #[error("zinit: service not found: {0}")]
    NotFound(String),
    /// `-32001`: the service is monitored already.
    #[error("zinit: service already monitored: {0}")]
    AlreadyMonitored(String),
    /// `-32002`: the service is up (e.g. `forget` of a running service).
    #[error("zinit: service is up: {0}")]
    IsUp(String),
    /// `-32003`: the service is down.
    #[error("zinit: service is down: {0}")]
    IsDown(String),
    /// `-32005`: the unit file could not be loaded.
    #[error("zinit: service configuration error: {0}")]
    Config(String),
    /// `-32007`: `service_create` of an existing unit.
    #[error("zinit: service file exists already: {0}")]
    AlreadyExists(String),
    /// `-32008`: zinit could not read or write the unit file.
    #[error("zinit: service file error: {0}")]
    ServiceFile(String),
    /// Any other refusal.
    #[error("zinit refused ({code}): {message}")]
    Other {
        /// The JSON-RPC code (`0` for a legacy refusal that matched nothing).
        code: i64,
        /// zinit's message.
        message: String,
    },
}

impl ZinitError {
    /// The typed error of a JSON-RPC error object.
    fn from_rpc(code: i64, message: String) -> Self {
        match code {
            -32000 => ZinitError::NotFound(message),
            -32001 => ZinitError::AlreadyMonitored(message),
            -32002 => ZinitError::IsUp(message),
            -32003 => ZinitError::IsDown(message),
            -32005 => ZinitError::Config(message),
            -32007 => ZinitError::AlreadyExists(message),
            -32008 => ZinitError::ServiceFile(message),
            code => ZinitError::Other { code, message },
        }
    }

    /// The typed error of a legacy `{"state":"error","body":MESSAGE}`, by zinit 0.2's
    /// messages (`service name "x" unknown`, `service "x" already monitored`,
    /// `service is up`, `service is down`, `failed to load service config`).
    fn from_legacy(message: String) -> Self {
        let m = message.to_ascii_lowercase();
        if m.contains("unknown") && m.contains("service") {
            ZinitError::NotFound(message)
        } else if m.contains("already monitored") {
            ZinitError::AlreadyMonitored(message)
        } else if m.contains("is up") {
            ZinitError::IsUp(message)
        } else if m.contains("is down") || m.contains("not running") {
            ZinitError::IsDown(message)
        } else if m.contains("service config") {
            ZinitError::Config(message)
        } else {
            ZinitError::Other { code: 0, message }
        }
    }
}

/// zinit at one socket. Cheap to clone (clones share the detected protocol).
#[derive(Debug, Clone)]
pub struct Zinit {
    socket: PathBuf,
    protocol: Arc<Mutex<Option<Protocol>>>,
    next_id: Arc<AtomicU64>,
}

impl Zinit {
    /// zinit listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            protocol: Arc::new(Mutex::new(None)),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether zinit answers, in either protocol, within two seconds.
    pub async fn answers(&self) -> bool {
        self.socket.exists() && self.protocol().await.is_ok()
    }

    /// The protocol the socket speaks, found out (within two seconds) on first use.
    pub async fn protocol(&self) -> Result<Protocol, ZinitError> {
        if let Some(p) = self.cached() {
            return Ok(p);
        }
        let probe = async {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let v = self.exchange(&rpc_request(id, "service_list", &[])).await?;
            if v.get("jsonrpc").is_some() {
                Ok(Protocol::JsonRpc)
            } else if v.get("state").is_some() {
                Ok(Protocol::Legacy)
            } else {
                Err(self.unavailable(format!("answered with neither protocol: {v}")))
            }
        };
        let p = match tokio::time::timeout(PROBE, probe).await {
            Ok(r) => r?,
            Err(_) => return Err(self.unavailable(format!("no answer within {PROBE:?}"))),
        };
        if let Ok(mut g) = self.protocol.lock() {
            *g = Some(p);
        }
        tracing::debug!(socket = %self.socket.display(), protocol = ?p, "zinit found");
        Ok(p)
    }

    /// `monitor NAME` / `service_monitor`: loads `<zinit-dir>/NAME.yaml` and starts it. A
    /// service monitored already is success.
    pub async fn monitor(&self, name: &str) -> Result<(), ZinitError> {
        match self.call("monitor", "service_monitor", name).await {
            Err(ZinitError::AlreadyMonitored(_)) => Ok(()),
            r => r,
        }
    }

    /// `start NAME` / `service_start`.
    pub async fn start(&self, name: &str) -> Result<(), ZinitError> {
        self.call("start", "service_start", name).await
    }

    /// `stop NAME` / `service_stop`. A service zinit does not know, or that is down, is
    /// stopped: success.
    pub async fn stop(&self, name: &str) -> Result<(), ZinitError> {
        match self.call("stop", "service_stop", name).await {
            Err(ZinitError::NotFound(_) | ZinitError::IsDown(_)) => Ok(()),
            r => r,
        }
    }

    /// `forget NAME` / `service_forget` (only once it is stopped: [`ZinitError::IsUp`]
    /// otherwise). A service zinit does not know is forgotten: success.
    pub async fn forget(&self, name: &str) -> Result<(), ZinitError> {
        match self.call("forget", "service_forget", name).await {
            Err(ZinitError::NotFound(_)) => Ok(()),
            r => r,
        }
    }

    /// `status NAME` / `service_status`: zinit's status object.
    pub async fn status(&self, name: &str) -> Result<serde_json::Value, ZinitError> {
        self.call_value("status", "service_status", name).await
    }

    async fn call(&self, legacy: &str, method: &str, name: &str) -> Result<(), ZinitError> {
        self.call_value(legacy, method, name).await.map(|_| ())
    }

    /// One command in the socket's protocol, within [`EXCHANGE`]; its result.
    async fn call_value(
        &self,
        legacy: &str,
        method: &str,
        name: &str,
    ) -> Result<serde_json::Value, ZinitError> {
        let run = async {
            let protocol = self.protocol().await?;
            let request = match protocol {
                Protocol::Legacy => format!("{legacy} {name}"),
                Protocol::JsonRpc => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    rpc_request(id, method, &[name])
                }
            };
            let answer = self.exchange(&request).await?;
            decode(protocol, answer).map_err(|e| {
                if matches!(e, ZinitError::Unavailable { .. }) {
                    self.forget_protocol();
                }
                e
            })
        };
        match tokio::time::timeout(EXCHANGE, run).await {
            Ok(r) => r,
            Err(_) => {
                self.forget_protocol();
                Err(self.unavailable(format!("{legacy} {name}: no answer within {EXCHANGE:?}")))
            }
        }
    }

    fn cached(&self) -> Option<Protocol> {
        self.protocol.lock().ok().and_then(|g| *g)
    }

    fn forget_protocol(&self) {
        if let Ok(mut g) = self.protocol.lock() {
            *g = None;
        }
    }

    fn unavailable(&self, detail: String) -> ZinitError {
        ZinitError::Unavailable {
            socket: self.socket.clone(),
            detail,
        }
    }

    /// Sends `request` and a newline; reads until the answer is one whole JSON value (a
    /// JSON-RPC zinit may keep the connection open) or the peer closes it (legacy).
    async fn exchange(&self, request: &str) -> Result<serde_json::Value, ZinitError> {
        let io = |e: std::io::Error| {
            self.forget_protocol();
            self.unavailable(e.to_string())
        };
        let mut s = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(io)?;
        s.write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(io)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.map_err(io)?;
            buf.extend_from_slice(&chunk[..n]);
            match serde_json::from_slice::<serde_json::Value>(&buf) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_eof() && n > 0 && buf.len() < MAX_ANSWER => continue,
                Err(e) => {
                    self.forget_protocol();
                    return Err(self.unavailable(format!(
                        "answer is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(&buf[..buf.len().min(200)])
                    )));
                }
            }
        }
    }
}

/// A JSON-RPC 2.0 request with positional string parameters.
fn rpc_request(id: u64, method: &str, params: &[&str]) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// The result of an answer in `protocol`, or its typed refusal.
fn decode(protocol: Protocol, v: serde_json::Value) -> Result<serde_json::Value, ZinitError> {
    let text = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    match protocol {
        Protocol::Legacy => match v.get("state").and_then(|s| s.as_str()) {
            Some("ok") => Ok(v.get("body").cloned().unwrap_or_default()),
            Some(_) => Err(ZinitError::from_legacy(text(v.get("body")))),
            None => Err(ZinitError::Unavailable {
                socket: PathBuf::new(),
                detail: format!("not a legacy zinit answer: {v}"),
            }),
        },
        Protocol::JsonRpc => {
            if let Some(err) = v.get("error") {
                let code = err.get("code").and_then(|c| c.as_i64()).unwrap_or(0);
                return Err(ZinitError::from_rpc(code, text(err.get("message"))));
            }
            match v.get("result") {
                Some(r) if v.get("jsonrpc").is_some() => Ok(r.clone()),
                _ => Err(ZinitError::Unavailable {
                    socket: PathBuf::new(),
                    detail: format!("not a JSON-RPC answer: {v}"),
                }),
            }
        }
    }
}
