//! Does a Redis answer at a URL? One RESP `PING` over a fresh connection, with a deadline.
//!
//! Any RESP reply (`+PONG`, or `-NOAUTH` from a password-protected server) counts as
//! "answers": the question is whether a broker is there, not whether we may use it.

use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where a broker URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:///path`.
    Unix(PathBuf),
    /// `redis://[user:password@]host[:port][/db]`, as `host:port`.
    Tcp(String),
}

/// Parses the broker URL forms the bus accepts (`unix://[cred@]/path`, `redis+unix:///path`,
/// `redis://[cred@]host[:port][/db]`, `tcp://[cred@]host:port`). `None` for anything else.
pub fn endpoint(url: &str) -> Option<Endpoint> {
    if let Some(rest) = url
        .strip_prefix("unix://")
        .or_else(|| url.strip_prefix("redis+unix://"))
    {
        let rest = rest.split('?').next().unwrap_or(rest);
        let path = rest.find('/').map(|i| &rest[i..])?;
        return Some(Endpoint::Unix(PathBuf::from(path)));
    }
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("tcp://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return None;
    }
    let has_port = hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !hostport.ends_with(']');
    Some(Endpoint::Tcp(if has_port {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    }))
}

/// The URL with any credentials replaced by `***`, for logs and messages.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, after)) => format!("{scheme}://***@{after}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// True when something at `url` answers a RESP `PING` within `timeout`.
pub async fn answers(url: &str, timeout: Duration) -> bool {
    let Some(ep) = endpoint(url) else {
        return false;
    };
    tokio::time::timeout(timeout, ping(ep))
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

async fn exchange<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut s: S) -> bool {
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    s.read_exact(&mut first).await.is_ok() && (first[0] == b'+' || first[0] == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(
            endpoint("unix:///var/run/redis.sock"),
            Some(Endpoint::Unix("/var/run/redis.sock".into()))
        );
        assert_eq!(
            endpoint("redis://127.0.0.1:7000"),
            Some(Endpoint::Tcp("127.0.0.1:7000".into()))
        );
        assert_eq!(
            endpoint("redis://u:p@localhost/0"),
            Some(Endpoint::Tcp("localhost:6379".into()))
        );
        assert_eq!(
            endpoint("unix://pw@/r.sock"),
            Some(Endpoint::Unix("/r.sock".into()))
        );
        assert_eq!(
            endpoint("redis+unix:///r.sock"),
            Some(Endpoint::Unix("/r.sock".into()))
        );
        assert_eq!(
            endpoint("tcp://pw@10.0.0.1:6380"),
            Some(Endpoint::Tcp("10.0.0.1:6380".into()))
        );
        assert_eq!(endpoint("http://x"), None);
        assert_eq!(redact("redis://u:secret@h:1"), "redis://***@h:1");
        assert_eq!(redact("unix:///a.sock"), "unix:///a.sock");
        assert_eq!(endpoint("unix://"), None);
    }

    #[tokio::test]
    async fn nothing_listening_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("unix://{}/none.sock", dir.path().display());
        assert!(!answers(&url, Duration::from_millis(500)).await);
    }

    #[tokio::test]
    async fn a_resp_speaker_answers() {
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
        assert!(
            answers(
                &format!("unix://{}", path.display()),
                Duration::from_secs(2)
            )
            .await
        );
        server.await.unwrap();
    }
}
