//! Which broker the CLI talks to.
//!
//! `--broker`/IMAGEBUS_BROKER when given; else the zos default if it answers; else the URL
//! imagebusd recorded in `<run-dir>/broker` (it does so for every broker it uses, notably a
//! private redis-server it started); else the zos default, whose error then says what failed.

use crate::args::Global;
use std::time::Duration;

/// The broker URL to connect to.
pub async fn resolve(g: &Global) -> String {
    if let Some(url) = &g.broker {
        return url.clone();
    }
    if imagebus_bus::broker::answers(&g.default_broker, Duration::from_millis(500)).await {
        return g.default_broker.clone();
    }
    let file = g.run_dir.join("broker");
    match std::fs::read_to_string(&file) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => g.default_broker.clone(),
    }
}
