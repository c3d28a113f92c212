//! Child process of the attach crash tests (`tests/tests/attach_crash.rs`,
//! `tests/tests/attach_ceph.rs`, through `attach_common::Child`): runs the real attach actor
//! on `<state-dir>` (runtime directory `<state-dir>/run`), attaches the specs read from
//! `<specs.json>` (a JSON array of `AttachSpec`) in order, writes the resulting
//! `AttachInfo`s as a JSON array to `<ready.json>` (atomically, through `<ready.json>.tmp`),
//! then waits to be killed with SIGKILL.
//!
//! Usage: `attach-crash-child <state-dir> <specs.json> <ready.json>`. Exits non-zero with a
//! message on stderr if anything fails before the ready file is written.

use imagebus_attach::AttachConfig;
use imagebus_schema::attach::{AttachModule, AttachSpec};
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

async fn run(args: &[OsString]) -> Result<(), String> {
    let [state, specs, ready] = args else {
        return Err("usage: attach-crash-child <state-dir> <specs.json> <ready.json>".into());
    };
    let state = PathBuf::from(state);
    let cfg = AttachConfig {
        run_dir: state.join("run"),
        state_dir: state,
    };
    let attach = imagebus_tests::mount_stack::attach_actor(cfg).await?;
    let bytes = fs::read(specs).map_err(|e| format!("reading {specs:?}: {e}"))?;
    let specs: Vec<AttachSpec> =
        serde_json::from_slice(&bytes).map_err(|e| format!("parsing {specs:?}: {e}"))?;
    let mut infos = Vec::new();
    for spec in specs {
        infos.push(
            attach
                .attach(spec, None)
                .await
                .map_err(|e| format!("attach: {e}"))?,
        );
    }
    let ready = PathBuf::from(ready);
    let mut tmp = ready.clone().into_os_string();
    tmp.push(".tmp");
    let infos = serde_json::to_vec(&infos).map_err(|e| format!("encoding the infos: {e}"))?;
    fs::write(&tmp, infos).map_err(|e| format!("writing {tmp:?}: {e}"))?;
    fs::rename(&tmp, &ready).map_err(|e| format!("renaming to {ready:?}: {e}"))?;
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "attach-crash-child: {e}");
            ExitCode::FAILURE
        }
    }
}
