//! Execution of each command; arguments are in `crate::args`.

mod acl;
mod attach;
mod call;
mod container;
mod container_image;
mod container_io;
mod container_oci;
mod docs;
mod holders;
mod image;
mod mount;
mod ping;
mod session;
mod stats;
mod status;
mod system;
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
        Command::Attach(c) => attach::run(g, c).await,
        Command::Mount(c) => mount::run(g, c).await,
        Command::Image(c) => image::run(g, c).await,
        Command::System(c) => system::run(g, c).await,
        Command::Run(a) => container::run(g, a).await,
        Command::Ps(a) => container::ps(g, a).await,
        Command::Inspect(a) => container::inspect(g, a).await,
        Command::Start(a) => container::start(g, a).await,
        Command::Stop(a) => container::stop(g, a).await,
        Command::Rm(a) => container::rm(g, a).await,
        Command::Logs(a) => container_io::logs(g, a).await,
        Command::Exec(a) => container_io::exec(g, a).await,
        Command::Events(a) => container_io::events(g, a).await,
        Command::Stats(a) => stats::run(g, a).await,
        Command::Acl(c) => acl::run(g, c),
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    }
}

/// Modules imagebusd serves: a call to one of them that no server announces fails fast
/// (see `imagebus_bus::presence`); other modules (Go peers) wait for `--timeout`.
pub const IMAGEBUSD_MODULES: &[&str] = &[
    "imagebus",
    "attach",
    "mount",
    "container",
    "image",
    "syscontainer",
];

/// A client for the resolved broker with the `--timeout` deadline, failing fast on
/// imagebusd modules that no server serves.
pub async fn connect(g: &Global) -> Result<Client> {
    let url = crate::broker::resolve(g).await;
    let client = Client::builder(&url).read_only(g.reader).build().await?;
    Ok(client
        .with_timeout(g.timeout)
        .with_fail_fast(IMAGEBUSD_MODULES))
}
