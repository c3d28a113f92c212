//! Runs the bus servers of this process until the cancellation token fires.

use crate::system::{Registry, SystemHandle};
use anyhow::{Context, Result};
use imagebus_bus::{Object, Server};
use imagebus_schema::system::{ModuleInfo, SystemModuleServer};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the daemon needs to serve its modules.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Broker URL in use.
    pub broker: String,
    /// Workers per module.
    pub workers: u32,
    /// Modules to serve; empty = all.
    pub only: Vec<String>,
    /// Interval of the system heartbeat event.
    pub heartbeat: Duration,
    /// Bounded wait for servers to stop after cancellation.
    pub shutdown_timeout: Duration,
}

/// Every module this daemon knows, in start order (peers first).
pub const MODULES: &[&str] = &[imagebus_schema::system::MODULE];

/// Checks `--only` names against [`MODULES`].
pub fn check_only(only: &[String]) -> Result<()> {
    for m in only {
        if !MODULES.contains(&m.as_str()) {
            anyhow::bail!(
                "unknown module {m:?} for --only (known: {})",
                MODULES.join(", ")
            );
        }
    }
    Ok(())
}

/// Serves until `stop` is cancelled, then waits (bounded) for every server to finish.
pub async fn run(cfg: DaemonConfig, stop: CancellationToken) -> Result<()> {
    let registry = Arc::new(Registry::default());
    let mut servers = JoinSet::new();

    // The built-in object is served by every daemon process (see schema::system).
    let system =
        SystemModuleServer::new(Arc::new(SystemHandle::new(registry.clone(), cfg.heartbeat)));
    serve(
        &cfg,
        &registry,
        imagebus_schema::system::MODULE,
        vec![Arc::new(system)],
        &mut servers,
        &stop,
    )
    .await?;

    tracing::info!(
        broker = %crate::probe::redact(&cfg.broker),
        only = ?cfg.only,
        modules = ?registry.list().iter().map(|m| m.module.clone()).collect::<Vec<_>>(),
        "imagebusd ready"
    );
    tokio::select! {
        () = stop.cancelled() => {}
        Some(res) = servers.join_next() => {
            // A server ending on its own is fatal: zinit restarts the whole daemon.
            stop.cancel();
            let res = res.context("a bus server task failed")?;
            res.context("a bus server stopped")?;
            anyhow::bail!("a bus server stopped unexpectedly");
        }
    }
    tracing::info!("shutting down");
    for m in registry.list() {
        registry.set_state(&m.module, "stopping", false);
    }
    let drained = tokio::time::timeout(cfg.shutdown_timeout, async {
        while let Some(res) = servers.join_next().await {
            if let Ok(Err(e)) = res {
                tracing::warn!(error = %e, "bus server stopped with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(timeout = ?cfg.shutdown_timeout, "servers did not stop in time; aborting them");
        servers.abort_all();
    }
    Ok(())
}

/// Builds one module's server with `objects`, records it, and runs it on `servers`.
async fn serve(
    cfg: &DaemonConfig,
    registry: &Registry,
    module: &str,
    objects: Vec<Arc<dyn Object>>,
    servers: &mut JoinSet<Result<()>>,
    stop: &CancellationToken,
) -> Result<()> {
    let mut server = Server::builder(&cfg.broker, module)
        .workers(cfg.workers as usize)
        .shutdown_grace(cfg.shutdown_timeout)
        .build()
        .await
        .with_context(|| {
            format!(
                "connecting module {module} to {}",
                crate::probe::redact(&cfg.broker)
            )
        })?;
    let ids = objects.iter().map(|o| o.id().to_string()).collect();
    for o in objects {
        server.register_arc(o)?;
    }
    registry.set(ModuleInfo {
        module: module.to_string(),
        objects: ids,
        workers: cfg.workers,
        state: "running".to_string(),
        restarts: 0,
    });
    let token = stop.child_token();
    let name = module.to_string();
    servers.spawn(async move {
        server
            .run(token)
            .await
            .with_context(|| format!("serving module {name}"))
    });
    Ok(())
}
