//! imagebus: the operator CLI of an imagebus node. Talks to the modules over the Redis bus.

mod args;
mod broker;
mod commands;
mod output;
mod time;
mod value;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::parse();
    let json = cli.global.json;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = anyhow::Error::new(e).context("starting the tokio runtime");
            return ExitCode::from(output::report(&e, json));
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(output::report(&e, json)),
    }
}
