//! The gateway's configuration: where it listens, TLS, and the request limits.

use crate::error::GatewayError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default of the request body limit.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Default of the request time limit: room for a container stop (10 s grace, then
/// SIGKILL) and a slow Ceph mapping.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the gateway listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// TCP, `HOST:PORT`.
    Tcp(SocketAddr),
    /// A unix socket, `unix:/path` (created mode 0600, replaced if stale).
    Unix(PathBuf),
}

impl Listen {
    /// Parses `HOST:PORT` (an IP address, or `localhost`) or `unix:/path`.
    pub fn parse(s: &str) -> Result<Self, GatewayError> {
        if let Some(path) = s.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(GatewayError::Address(s.to_string()));
            }
            // Normalized (`//a/./b` is `/a/b`), so that the address prints as one that
            // parses back to it.
            return Ok(Listen::Unix(Path::new(path).components().collect()));
        }
        let host_port = s.replacen("localhost:", "127.0.0.1:", 1);
        host_port
            .parse::<SocketAddr>()
            .map(Listen::Tcp)
            .map_err(|_| GatewayError::Address(s.to_string()))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// TLS files (go-swagger's `--tls-certificate`, `--tls-key`, `--tls-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub certificate: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
    /// PEM CA certificates: when given, clients must present a certificate they signed.
    pub ca: Option<PathBuf>,
}

/// Everything the gateway needs besides the modules.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where to listen.
    pub listen: Listen,
    /// TLS, for a TCP listener.
    pub tls: Option<TlsConfig>,
    /// Largest request body, in bytes (413 above).
    pub body_limit: usize,
    /// Longest time a request may take (500 after).
    pub request_timeout: Duration,
}

impl GatewayConfig {
    /// Listening on `listen` with no TLS and the default limits.
    pub fn new(listen: Listen) -> Self {
        Self {
            listen,
            tls: None,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}
