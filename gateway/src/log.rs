//! The request log (`tracing`: method, path, status, duration) and the request time limit.
//! Bodies are never logged, and query values of keys that may hold secrets are redacted.

use crate::error::ApiError;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

/// Query keys whose values are never logged.
const SECRET_KEYS: &[&str] = &["secret", "key", "password", "token"];

/// The path and query of `uri` with secret values replaced by `<redacted>`.
pub fn redacted_target(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _))
                if SECRET_KEYS
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s)) =>
            {
                format!("{k}=<redacted>")
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// Logs every request once it is answered.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let target = redacted_target(req.uri());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    if resp.status().is_server_error() {
        tracing::warn!(target: "imageapi", %method, path = %target, status, duration_ms, "request");
    } else {
        tracing::info!(target: "imageapi", %method, path = %target, status, duration_ms, "request");
    }
    resp
}

/// Answers 500 when a request runs past `limit` (what it started may still finish in the
/// module; nothing is left half-made, because every module call is all or nothing).
pub async fn time_limit(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::TimedOut(format!(
            "the request did not finish within {}s",
            limit.as_secs_f64()
        ))
        .into_response(),
    }
}
