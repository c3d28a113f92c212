//! Child process of the attach crash tests (`tests/tests/attach_crash.rs`,
//! `tests/tests/attach_ceph.rs`, through `attach_common::Child`): runs the real attach actor
//! on `<state-dir>` (runtime directory `<state-dir>/run`), attaches the specs read from
//! `<specs.json>` (a JSON array of `AttachSpec`) in order, writes the resulting
//! `AttachInfo`s as a JSON array to `<ready.json>` (atomically, through `<ready.json>.tmp`),
//! then waits to be killed with SIGKILL.
//!
//! Usage: `attach-crash-child <state-dir> <specs.json> <ready.json> [freeze-after-loop]`.
//! With `freeze-after-loop`, the first attach that binds a loop device (for an rbd spec:
//! rbd-fuse started, its file bound to a loop device, nothing recorded yet) freezes right
//! there, after writing the device number to
//! `<ready.json>.loop`: the parent kills the child at the most dangerous point of that
//! attach. Exits non-zero with a message on stderr if anything fails before the ready
//! file is written.

use imagebus_attach::{AttachConfig, AttachSys};
use imagebus_schema::attach::{AttachModule, AttachSpec};
use imagebus_sys::loopdev::{LoopAttach, LoopDevice, LoopDevices, LoopHold};
use imagebus_sys::SysResult;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The real loop devices, except that a bind (held or not, see
/// [`LoopDevices::attach_held`]) reports its device number in `report` and never returns.
struct FreezeAfterLoop {
    inner: imagebus_sys::loopdev::LinuxLoopDevices,
    report: PathBuf,
}

impl FreezeAfterLoop {
    fn freeze(&self, number: u32, hold: Option<LoopHold>) -> ! {
        let mut tmp = self.report.clone().into_os_string();
        tmp.push(".tmp");
        let _ = fs::write(&tmp, number.to_string());
        let _ = fs::rename(&tmp, &self.report);
        loop {
            std::thread::park();
            let _ = &hold;
        }
    }
}

impl LoopDevices for FreezeAfterLoop {
    fn attach(&self, req: &LoopAttach) -> SysResult<LoopDevice> {
        let dev = self.inner.attach(req)?;
        self.freeze(dev.number, None)
    }
    fn attach_held(&self, req: &LoopAttach) -> SysResult<(LoopDevice, LoopHold)> {
        let (dev, hold) = self.inner.attach_held(req)?;
        self.freeze(dev.number, Some(hold))
    }
    fn detach(&self, number: u32) -> SysResult<()> {
        self.inner.detach(number)
    }
    fn status(&self, number: u32) -> SysResult<Option<LoopDevice>> {
        self.inner.status(number)
    }
    fn list(&self) -> SysResult<Vec<LoopDevice>> {
        self.inner.list()
    }
    fn change_backing(&self, number: u32, file: &Path) -> SysResult<LoopDevice> {
        self.inner.change_backing(number, file)
    }
}

async fn run(args: &[OsString]) -> Result<(), String> {
    let (state, specs, ready, freeze) = match args {
        [state, specs, ready] => (state, specs, ready, false),
        [state, specs, ready, f] if f == "freeze-after-loop" => (state, specs, ready, true),
        _ => {
            return Err(
                "usage: attach-crash-child <state-dir> <specs.json> <ready.json> \
                        [freeze-after-loop]"
                    .into(),
            )
        }
    };
    let state = PathBuf::from(state);
    let cfg = AttachConfig {
        run_dir: state.join("run"),
        state_dir: state,
    };
    let mut sys = AttachSys::linux();
    if freeze {
        let mut report = PathBuf::from(ready).into_os_string();
        report.push(".loop");
        sys.loops = Arc::new(FreezeAfterLoop {
            inner: imagebus_sys::loopdev::LinuxLoopDevices,
            report: report.into(),
        });
    }
    let attach = imagebus_attach::spawn(
        cfg,
        sys,
        CancellationToken::new(),
        imagebus_attach::Limits::default(),
    )
    .await
    .map_err(|e| format!("starting attach: {e}"))?
    .handle;
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
