//! The HTTP server: the app (routes, fallbacks, limits, request log) and the accept loop
//! for TCP, TCP with TLS, and unix sockets (hyper-util's HTTP/1 + HTTP/2 server), with a
//! graceful stop.

use crate::config::{GatewayConfig, Listen};
use crate::error::{ApiError, GatewayError};
use crate::openapi::{self, BASE};
use crate::ops::Modules;
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::Json;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

/// Longest TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for open connections after the stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The app (every route under [`BASE`]) and its OpenAPI document.
pub fn app(modules: Modules, cfg: &GatewayConfig) -> (Router, utoipa::openapi::OpenApi) {
    let (routes, api) = openapi::routes();
    let doc = openapi::document(api);
    let json = Arc::new(serde_json::to_value(&doc).unwrap_or_default());
    let swagger = axum::routing::get(move || {
        let json = json.clone();
        async move { Json((*json).clone()) }
    });
    let inner = routes
        .route("/swagger.json", swagger)
        .with_state(AppState { modules });
    let limit = cfg.request_timeout;
    let app = Router::new()
        .nest(BASE, inner)
        .fallback(|| async { ApiError::NotFound("no such path".into()) })
        .method_not_allowed_fallback(|| async {
            (
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                Json(crate::model::ErrorBody {
                    code: 405,
                    message: "method not allowed on this path".into(),
                }),
            )
        })
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::log::time_limit(limit, req, next)
        }))
        .layer(axum::middleware::from_fn(crate::log::log_requests));
    (app, doc)
}

/// A bound listener.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(TcpListener),
    /// A unix socket (removed when the server stops).
    Unix(UnixListener, std::path::PathBuf),
}

/// Binds `listen` (a stale unix socket file is replaced; the new one is mode 0600).
pub async fn bind(listen: &Listen) -> Result<Bound, GatewayError> {
    let err = |source| GatewayError::Bind {
        addr: listen.to_string(),
        source,
    };
    match listen {
        Listen::Tcp(addr) => TcpListener::bind(addr).await.map(Bound::Tcp).map_err(err),
        Listen::Unix(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e)),
            }
            let l = UnixListener::bind(path).map_err(err)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
            Ok(Bound::Unix(l, path.clone()))
        }
    }
}

impl Bound {
    /// The TCP address (for `:0` listeners).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Bound::Tcp(l) => l.local_addr().ok(),
            Bound::Unix(..) => None,
        }
    }
}

/// Serves one connection (HTTP/1.1 or HTTP/2) until it ends or the graceful stop closes it.
async fn run_conn<I>(io: I, app: Router, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(app))
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(target: "imageapi", error = %e, "connection ended with an error");
    }
}

/// Accepts one TLS connection (bounded handshake), then serves it.
async fn run_tls_conn(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    watcher: Watcher,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => run_conn(tls, app, watcher).await,
        Ok(Err(e)) => {
            tracing::info!(target: "imageapi", %peer, error = %e, "TLS handshake failed");
        }
        Err(_) => tracing::info!(target: "imageapi", %peer, "TLS handshake timed out"),
    }
}

/// Serves `app` on `bound` until `stop`, then lets open connections finish (bounded).
pub async fn serve(
    bound: Bound,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    match &bound {
        Bound::Tcp(l) => loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = l.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "imageapi", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (app, watcher) = (app.clone(), graceful.watcher());
            match &tls {
                None => tokio::spawn(run_conn(stream, app, watcher)),
                Some(acceptor) => {
                    tokio::spawn(run_tls_conn(stream, peer, acceptor.clone(), app, watcher))
                }
            };
        },
        Bound::Unix(l, _) => loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = l.accept() => a,
            };
            match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(run_conn(stream, app.clone(), graceful.watcher()));
                }
                Err(e) => {
                    tracing::warn!(target: "imageapi", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        },
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "imageapi", "open connections did not finish in time");
    }
    if let Bound::Unix(_, path) = &bound {
        let _ = std::fs::remove_file(path);
    }
}

/// Binds and serves: what `imagebusd --imageapi` runs. Returns once bound (errors: bad
/// address, bind failure, TLS files) with the task serving until `stop`.
pub async fn start(
    cfg: GatewayConfig,
    modules: Modules,
    stop: CancellationToken,
) -> Result<(tokio::task::JoinHandle<()>, Option<std::net::SocketAddr>), GatewayError> {
    let tls = match (&cfg.tls, &cfg.listen) {
        (Some(t), Listen::Tcp(_)) => Some(crate::tls::acceptor(t)?),
        (Some(_), Listen::Unix(_)) => {
            return Err(GatewayError::Tls {
                what: "TLS is for TCP listeners, not unix sockets".into(),
            })
        }
        (None, _) => None,
    };
    let bound = bind(&cfg.listen).await?;
    let addr = bound.local_addr();
    let (app, _) = app(modules, &cfg);
    tracing::info!(
        target: "imageapi",
        listen = %cfg.listen,
        tls = tls.is_some(),
        client_certificates = cfg.tls.as_ref().is_some_and(|t| t.ca.is_some()),
        "ImageAPI gateway listening"
    );
    let task = tokio::spawn(serve(bound, app, tls, stop));
    Ok((task, addr))
}
