//! Child process of `tests/tests/container_restart.rs`: runs the real attach, mount and
//! container actors of one node and serves the container actor as
//! `container.container@1` on the broker, until it is killed (the test sends SIGKILL).
//!
//! Usage: `container-restart-child <broker> <node arguments...>`, the node arguments as
//! written by `imagebus_tests::node_args::to_args` (the directories, runtime, instance and
//! monitor command the parent computed). Exits non-zero with a message on stderr if the
//! actors or the server fail.

use imagebus_bus::Server;
use imagebus_container::ContainerSys;
use imagebus_mount::MountSys;
use imagebus_schema::container::ContainerModuleServer;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

async fn run(args: &[OsString]) -> Result<(), String> {
    let [broker, node @ ..] = args else {
        return Err("usage: container-restart-child <broker> <node arguments...>".into());
    };
    let broker = broker
        .to_str()
        .ok_or_else(|| format!("the broker is not UTF-8: {broker:?}"))?
        .to_string();
    let (acfg, mcfg, ccfg) = imagebus_tests::node_args::parse(node)?;
    let attach = imagebus_tests::mount_stack::attach_actor(acfg).await?;
    let stop = CancellationToken::new();
    let m = imagebus_mount::spawn(
        mcfg,
        MountSys::linux(),
        Arc::new(attach),
        stop.clone(),
        imagebus_mount::Limits::default(),
    )
    .await
    .map_err(|e| format!("starting mount: {e}"))?;
    let c = imagebus_container::spawn(
        ccfg.clone(),
        ContainerSys::linux(&ccfg),
        Arc::new(m.handle),
        stop.clone(),
        imagebus_container::Limits::default(),
    )
    .await
    .map_err(|e| format!("starting container: {e}"))?;
    let mut server = Server::builder(broker, "container")
        .workers(4)
        .build()
        .await
        .map_err(|e| format!("building the server: {e}"))?;
    server
        .register(ContainerModuleServer::new(Arc::new(c.handle)))
        .map_err(|e| format!("registering container@1: {e}"))?;
    server.run(stop).await.map_err(|e| format!("serving: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "container-restart-child: {e}");
            ExitCode::FAILURE
        }
    }
}
