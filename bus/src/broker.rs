//! Broker addresses: which Redis to talk to and how to log in.
//!
//! Accepted forms:
//! - `redis://[user[:password]@]host[:port][/db]` (redis-rs and rbus form; port 6379 by default);
//! - `tcp://[password@]host:port` or `tcp://user:password@host:port` (Go zbus form);
//! - `unix:///path/to/redis.sock` (zos default `unix:///var/run/redis.sock`), also with
//!   `unix://[password@]/path` / `unix://user:password@/path`, and `redis+unix:///path`.
//!
//! Credentials: with `user:password@` the user is a Redis 6 ACL user and the password its
//! password (`AUTH user password`). A lone `name@` means different things in the two
//! ecosystems: Go zbus sends the URL's username as the Redis *password*, redis-rs treats it
//! as a user. We follow Go for the Go schemes (`tcp://`, `unix://`) and redis-rs for
//! `redis://`. Percent-escapes (`%40`) are decoded in credentials.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// The zos default broker.
pub const DEFAULT_BROKER: &str = "unix:///var/run/redis.sock";

/// A broker URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The scheme is none of `redis`, `tcp`, `unix`, `redis+unix`.
    #[error("broker url {url:?}: unsupported scheme {scheme:?} (use redis://host:port, tcp://host:port or unix:///path)")]
    Scheme {
        /// The URL as given, with any password replaced by `***`.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// The URL is malformed.
    #[error("broker url {url:?}: {reason}")]
    Invalid {
        /// The URL as given, with any password replaced by `***`.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A parsed broker address.
#[derive(Clone)]
pub struct Broker {
    info: ConnectionInfo,
    display: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Broker").field(&self.display).finish()
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl Broker {
    /// Parses a broker URL (see the module docs).
    pub fn parse(url: &str) -> Result<Self, BrokerError> {
        let display = redact(url);
        let invalid = |reason| BrokerError::Invalid {
            url: display.clone(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("missing scheme://"))?;
        let go_form = matches!(scheme, "tcp" | "unix");
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (mut user, mut password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (non_empty(user), non_empty(pass)),
                None if go_form => (None, non_empty(u)),
                None => (non_empty(u), None),
            },
        };
        user = user.map(|u| percent_decode(&u));
        password = password.map(|p| percent_decode(&p));
        let mut db = 0;
        let addr = match scheme {
            "unix" | "redis+unix" => {
                if !rest.starts_with('/') {
                    return Err(invalid("unix socket path must be absolute"));
                }
                let path = rest.split_once('?').map_or(rest, |(p, _)| p);
                ConnectionAddr::Unix(path.into())
            }
            "redis" | "tcp" => {
                let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
                if !path.is_empty() {
                    db = path
                        .parse()
                        .map_err(|_| invalid("database must be a number"))?;
                }
                let (host, port) = split_host_port(hostport).ok_or_else(|| invalid("bad port"))?;
                let port = match (port, scheme) {
                    (Some(p), _) => p,
                    (None, "redis") => 6379,
                    (None, _) => return Err(invalid("tcp:// needs host:port")),
                };
                if host.is_empty() {
                    return Err(invalid("missing host"));
                }
                ConnectionAddr::Tcp(host, port)
            }
            other => {
                return Err(BrokerError::Scheme {
                    url: display,
                    scheme: other.to_string(),
                })
            }
        };
        let mut redis = RedisConnectionInfo::default().set_db(db);
        if let Some(u) = user {
            redis = redis.set_username(u);
        }
        if let Some(p) = password {
            redis = redis.set_password(p);
        }
        let info = addr
            .into_connection_info()
            .map_err(|_| invalid("unusable address"))?
            .set_redis_settings(redis);
        Ok(Self { info, display })
    }

    /// The redis-rs connection parameters.
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The Redis ACL user the URL logs in as, if it names one.
    pub fn user(&self) -> Option<&str> {
        self.info.redis_settings().username()
    }

    /// Where the broker listens.
    pub fn endpoint(&self) -> Endpoint {
        match self.info.addr() {
            ConnectionAddr::Unix(p) => Endpoint::Unix(p.clone()),
            ConnectionAddr::Tcp(h, p)
            | ConnectionAddr::TcpTls {
                host: h, port: p, ..
            } => Endpoint::Tcp(format!("{h}:{p}")),
            #[allow(unreachable_patterns)]
            _ => Endpoint::Tcp(String::new()),
        }
    }
}

/// Where a broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(std::path::PathBuf),
    /// `host:port`.
    Tcp(String),
}

/// True when something at `url` answers a RESP `PING` within `timeout` over a fresh
/// connection. Any RESP reply (`+PONG`, or `-NOAUTH` from a password-protected server)
/// counts: the question is whether a broker is there, not whether we may use it. A URL
/// that does not parse never answers.
pub async fn answers(url: &str, timeout: std::time::Duration) -> bool {
    let Ok(broker) = Broker::parse(url) else {
        return false;
    };
    tokio::time::timeout(timeout, ping(broker.endpoint()))
        .await
        .unwrap_or(false)
}

async fn ping(ep: Endpoint) -> bool {
    match ep {
        Endpoint::Unix(path) => match tokio::net::UnixStream::connect(path).await {
            Ok(s) => exchange(s).await,
            Err(_) => false,
        },
        Endpoint::Tcp(addr) => match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => exchange(s).await,
            Err(_) => false,
        },
    }
}

async fn exchange<S>(mut s: S) -> bool
where
    S: tokio::io::AsyncReadExt + tokio::io::AsyncWriteExt + Unpin,
{
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    s.read_exact(&mut first).await.is_ok() && (first[0] == b'+' || first[0] == b'-')
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `host:port`, `[v6]:port`, `host` (port `None`); `None` when the port is not a number.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), Some(p.parse().ok()?))),
        None => Some((s.to_string(), None)),
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL with its credentials replaced by `***`, for logs and errors.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, r)) => format!("{scheme}://***@{r}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parts(url: &str) -> (ConnectionAddr, Option<String>, Option<String>, i64) {
        let b = Broker::parse(url).unwrap();
        let r = b.info.redis_settings();
        (
            b.info.addr().clone(),
            r.username().map(String::from),
            r.password().map(String::from),
            r.db(),
        )
    }

    #[test]
    fn redis_urls() {
        assert_eq!(
            parts("redis://127.0.0.1:6390"),
            (ConnectionAddr::Tcp("127.0.0.1".into(), 6390), None, None, 0)
        );
        assert_eq!(
            parts("redis://h"),
            (ConnectionAddr::Tcp("h".into(), 6379), None, None, 0)
        );
        assert_eq!(
            parts("redis://u:p%40ss@h:1/2"),
            (
                ConnectionAddr::Tcp("h".into(), 1),
                Some("u".into()),
                Some("p@ss".into()),
                2
            )
        );
        assert_eq!(
            parts("redis://u@h:1").1,
            Some("u".into()),
            "redis-rs: lone name is a user"
        );
        assert_eq!(
            parts("redis://[::1]:7").0,
            ConnectionAddr::Tcp("::1".into(), 7)
        );
    }

    #[test]
    fn go_urls_send_a_lone_name_as_password() {
        assert_eq!(
            parts("tcp://secret@localhost:6379"),
            (
                ConnectionAddr::Tcp("localhost".into(), 6379),
                None,
                Some("secret".into()),
                0
            )
        );
        let (addr, user, pass, _) = parts("unix://sec@/var/run/redis.sock");
        assert_eq!(
            addr,
            ConnectionAddr::Unix(PathBuf::from("/var/run/redis.sock"))
        );
        assert_eq!((user, pass), (None, Some("sec".into())));
        assert_eq!(
            parts(DEFAULT_BROKER).0,
            ConnectionAddr::Unix(PathBuf::from("/var/run/redis.sock"))
        );
        assert_eq!(parts("tcp://a:b@h:1").1, Some("a".into()));
    }

    #[test]
    fn endpoints_and_redaction() {
        let ep = |u: &str| Broker::parse(u).unwrap().endpoint();
        assert_eq!(
            ep("unix:///var/run/redis.sock"),
            Endpoint::Unix("/var/run/redis.sock".into())
        );
        assert_eq!(
            ep("redis://127.0.0.1:7000"),
            Endpoint::Tcp("127.0.0.1:7000".into())
        );
        assert_eq!(
            ep("redis://u:p@localhost/0"),
            Endpoint::Tcp("localhost:6379".into())
        );
        assert_eq!(ep("unix://pw@/r.sock"), Endpoint::Unix("/r.sock".into()));
        assert_eq!(ep("redis+unix:///r.sock"), Endpoint::Unix("/r.sock".into()));
        assert_eq!(
            ep("tcp://pw@10.0.0.1:6380"),
            Endpoint::Tcp("10.0.0.1:6380".into())
        );
        assert_eq!(redact("redis://u:secret@h:1"), "redis://***@h:1");
        assert_eq!(redact("redis://u:se@cret@h:1"), "redis://***@h:1");
        assert_eq!(redact("unix:///a.sock"), "unix:///a.sock");
    }

    #[tokio::test]
    async fn nothing_listening_or_a_bad_url_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("unix://{}/none.sock", dir.path().display());
        assert!(!answers(&url, std::time::Duration::from_millis(500)).await);
        assert!(!answers("http://x", std::time::Duration::from_millis(500)).await);
    }

    #[tokio::test]
    async fn a_resp_speaker_answers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 6];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"PING\r\n");
            s.write_all(b"+PONG\r\n").await.unwrap();
        });
        let url = format!("unix://{}", path.display());
        assert!(answers(&url, std::time::Duration::from_secs(2)).await);
        server.await.unwrap();
    }

    #[test]
    fn bad_urls_are_rejected_without_echoing_passwords() {
        assert!(matches!(
            Broker::parse("http://h:1"),
            Err(BrokerError::Scheme { .. })
        ));
        assert!(Broker::parse("h:6379").is_err());
        assert!(Broker::parse("tcp://h").is_err());
        assert!(Broker::parse("redis://h:notaport").is_err());
        assert!(Broker::parse("unix://relative/path").is_err());
        let err = Broker::parse("redis://u:topsecret@h:x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("topsecret"), "{err}");
        assert_eq!(
            Broker::parse("redis://u:pw@h:1").unwrap().to_string(),
            "redis://***@h:1"
        );
    }
}
