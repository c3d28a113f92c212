//! Execution of each command; arguments are in `crate::args`.

mod call;
mod ping;
mod status;
mod watch;

use crate::args::{Cli, Command, Global};
use anyhow::Result;
use imagebus_bus::Client;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Call(a) => call::run(g, a).await,
        Command::Status(a) => status::run(g, a).await,
        Command::Watch(a) => watch::run(g, a).await,
        Command::Ping => ping::run(g).await,
    }
}

/// A client for the resolved broker with the `--timeout` deadline.
pub async fn connect(g: &Global) -> Result<Client> {
    let url = crate::broker::resolve(g).await;
    let client = Client::connect(&url).await?;
    Ok(client.with_timeout(g.timeout))
}
