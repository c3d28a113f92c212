//! imagebusd: connects to the Redis bus (or starts a private broker), serves the imagebus
//! modules and the built-in `imagebus.system@1`, and shuts down gracefully on SIGTERM/SIGINT.

mod actors;
mod args;
mod broker;
mod daemon;
mod logging;
mod slot;
mod system;

use anyhow::{Context, Result};
use clap::Parser;
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = args::Args::parse_from(args::go_style(std::env::args_os()));
    if let Some(socket) = &args.containerd {
        eprintln!("imagebusd: --containerd {socket:?} is ignored (containers run on runc)");
    }
    logging::init(args.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(args));
    // Do not wait for stray blocking tasks: everything that matters has stopped by now.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "imagebusd failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: args::Args) -> Result<()> {
    daemon::check_only(&args.only)?;
    for dir in [&args.run_dir, &args.state_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let imageapi = imageapi_config(&args)?;
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone())?;

    let broker = broker::resolve(broker::BrokerConfig {
        configured: args.broker.as_deref(),
        default: &args.default_broker,
        redis_server: &args.redis_server,
        run_dir: &args.run_dir,
        socket_group: args
            .socket_group
            .as_deref()
            .map(broker::resolve_group)
            .transpose()?,
    })
    .await?;
    let cfg = daemon::DaemonConfig {
        broker: broker.url.clone(),
        workers: args.workers,
        only: args.only.clone(),
        heartbeat: args.heartbeat,
        shutdown_timeout: args.shutdown_timeout,
        dirs: actors::ActorDirs {
            state_dir: args.state_dir.clone(),
            run_dir: args.run_dir.clone(),
            log_dir: args.log_dir.clone(),
            runtime: args.runtime.clone(),
            instance: args.instance.clone(),
            log_max_bytes: (args.log_max_bytes > 0).then_some(args.log_max_bytes),
            log_max_files: args.log_max_files,
            limits: imagebus_host::Limits {
                max_mutations: args
                    .max_mutations
                    .map_or_else(imagebus_host::default_max_mutations, |n| n as usize),
                shutdown_timeout: args.shutdown_timeout,
            },
            system: actors::SystemDirs {
                host_root: args.system_host_root.clone(),
                zinit_dir: args.zinit_dir.clone(),
                zinit_socket: args.zinit_socket.clone(),
                systemd_root: args.systemd_root.clone(),
                systemd_unit_dir: args.systemd_unit_dir.clone(),
                systemctl: args.systemctl.0.clone(),
            },
        },
        imageapi,
    };
    let served = daemon::run(cfg, stop).await;
    if broker.is_private() {
        tracing::info!("stopping the private broker");
    }
    broker.stop().await;
    tracing::info!("imagebusd stopped");
    served
}

/// The gateway's configuration from `--imageapi` and the TLS flags (None: off).
fn imageapi_config(args: &args::Args) -> Result<Option<imagebus_gateway::GatewayConfig>> {
    let Some(addr) = &args.imageapi else {
        return Ok(None);
    };
    let listen = imagebus_gateway::Listen::parse(addr)?;
    let tls = match (&args.tls_certificate, &args.tls_key) {
        (Some(certificate), Some(key)) => Some(imagebus_gateway::TlsConfig {
            certificate: certificate.clone(),
            key: key.clone(),
            ca: args.tls_ca.clone(),
        }),
        _ => None,
    };
    Ok(Some(imagebus_gateway::GatewayConfig {
        listen,
        tls,
        body_limit: args.imageapi_body_limit,
        request_timeout: args.imageapi_timeout,
    }))
}

/// First SIGTERM/SIGINT cancels `stop`; a second one exits at once.
fn spawn_signal_handler(stop: CancellationToken) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if first {
                tracing::info!(signal = name, "stopping");
                stop.cancel();
                first = false;
            } else {
                tracing::warn!(signal = name, "second signal; exiting now");
                std::process::exit(130);
            }
        }
    });
    Ok(())
}
