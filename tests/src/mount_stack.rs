//! The attach and mount actors wired together in-process over the real kernel, as
//! `imagebusd` runs them: used by the mount integration tests, their crash child and the
//! `bench-mount` binary.

use imagebus_attach::{AttachConfig, AttachHandle, AttachSys};
use imagebus_mount::{MountConfig, MountHandle, MountSys, ReconcileReport};
use imagebus_schema::attach::{AttachModule, AttachRef, AttachSource, AttachSpec, LoopSource};
use imagebus_schema::mount::{
    BindMount, ImageMount, MountRef, MountSource, MountSpec, OverlayMount,
};
use std::path::Path;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Directories of one attach + mount pair below `root` (state survives restarts).
pub fn configs(root: &Path) -> (AttachConfig, MountConfig) {
    configs_in(&root.join("state"), &root.join("run"))
}

/// Directories with durable state under `state_root` and runtime state under `run_root`
/// (a tmpfs in production, like `/run`).
pub fn configs_in(state_root: &Path, run_root: &Path) -> (AttachConfig, MountConfig) {
    (
        AttachConfig {
            state_dir: state_root.join("attach"),
            run_dir: run_root.join("attach"),
        },
        MountConfig {
            state_dir: state_root.join("mount"),
            run_dir: run_root.to_path_buf(),
        },
    )
}

/// A running attach + mount pair.
#[derive(Debug)]
pub struct Stack {
    /// The attach actor's handle.
    pub attach: AttachHandle,
    /// The mount actor's handle.
    pub mount: MountHandle,
    /// What the mount actor's start-up reconciliation cleaned.
    pub report: ReconcileReport,
    /// Mount directories.
    pub cfg: MountConfig,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Stack {
    /// Starts both actors on `root`; the mount actor reaches attach in-process.
    pub async fn start(root: &Path) -> Result<Stack, String> {
        Self::start_with(root, |a| Arc::new(a)).await
    }

    /// Like [`Stack::start`], with the attach module the mount actor uses built from the
    /// attach handle (a wrapper, a bus stub).
    pub async fn start_with(
        root: &Path,
        wrap: impl FnOnce(AttachHandle) -> Arc<dyn AttachModule>,
    ) -> Result<Stack, String> {
        Self::start_configs(configs(root), wrap).await
    }

    /// Starts both actors with the given directories.
    pub async fn start_configs(
        (acfg, mcfg): (AttachConfig, MountConfig),
        wrap: impl FnOnce(AttachHandle) -> Arc<dyn AttachModule>,
    ) -> Result<Stack, String> {
        let attach = attach_actor(acfg).await?;
        let stop = CancellationToken::new();
        let spawned = imagebus_mount::spawn(
            mcfg.clone(),
            MountSys::linux(),
            wrap(attach.clone()),
            stop.clone(),
            imagebus_mount::Limits::default(),
        )
        .await
        .map_err(|e| format!("starting mount: {e}"))?;
        Ok(Stack {
            attach,
            mount: spawned.handle,
            report: spawned.report,
            cfg: mcfg,
            stop,
            task: spawned.task,
        })
    }

    /// Stops the mount actor and waits for its task to end.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A read-only loop attachment of `path`.
pub fn loop_spec(path: &Path) -> AttachSpec {
    AttachSpec {
        name: None,
        source: AttachSource::Loop(LoopSource {
            path: path.into(),
            read_only: true,
        }),
    }
}

/// An image mount (detected type) on an inline loop attachment of `path`.
pub fn image_on_loop(path: &Path) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Image(ImageMount {
            attach: AttachRef::Inline(Box::new(loop_spec(path))),
            fs_type: None,
            options: vec![],
            read_only: true,
        }),
    }
}

/// An ephemeral overlay of `lowers`.
pub fn overlay(lowers: Vec<MountRef>) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Overlay(OverlayMount {
            lowers,
            persist_dir: None,
        }),
    }
}

/// `spec` as an inline child.
pub fn inline(spec: MountSpec) -> MountRef {
    MountRef::Inline(Box::new(spec))
}

/// A read-write, non-recursive bind of `path` (inside `base` if given).
pub fn bind(path: &str, base: Option<MountRef>) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Bind(BindMount {
            path: path.into(),
            base: base.map(Box::new),
            read_only: false,
            recursive: false,
        }),
    }
}

/// The two-lower overlay of the issue (loop → image → overlay), nested in one spec.
pub fn nested(a: &Path, b: &Path) -> MountSpec {
    overlay(vec![inline(image_on_loop(a)), inline(image_on_loop(b))])
}

/// The real attach actor on `cfg`, with default limits; it stops when its last handle goes.
pub async fn attach_actor(cfg: AttachConfig) -> Result<AttachHandle, String> {
    Ok(imagebus_attach::spawn(
        cfg,
        AttachSys::linux(),
        CancellationToken::new(),
        imagebus_attach::Limits::default(),
    )
    .await
    .map_err(|e| format!("starting attach: {e}"))?
    .handle)
}
