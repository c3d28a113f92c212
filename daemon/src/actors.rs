//! Starting each actor module, and keeping it running: one supervisor task per actor that
//! restarts it with exponential backoff when its task ends or panics, swapping the new
//! handle into the module's [`Slot`].

use crate::slot::{ContainerActor, Slot};
use crate::system::Registry;
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use imagebus_schema::attach::AttachModule;
use imagebus_schema::container::ContainerModule;
use imagebus_schema::image::ImageModule;
use imagebus_schema::mount::MountModule;
use imagebus_schema::syscontainer::SysContainerModule;
use imagebus_schema::system::ModuleState;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Directories and options the actors get from the daemon's flags.
#[derive(Debug, Clone)]
pub struct ActorDirs {
    /// `--state-dir`; each module uses `<state-dir>/<module>`.
    pub state_dir: PathBuf,
    /// `--run-dir`; each module uses `<run-dir>/<module>`.
    pub run_dir: PathBuf,
    /// `--log-dir`; container logs go to `<log-dir>/containers`.
    pub log_dir: PathBuf,
    /// `--runtime`: the OCI runtime binary.
    pub runtime: PathBuf,
    /// `--instance`: prefix of runtime ids and cgroups.
    pub instance: String,
    /// `--log-max-bytes`: the rotation size of each container's log (`None`: never).
    pub log_max_bytes: Option<u64>,
    /// `--log-max-files`: files each container's log keeps.
    pub log_max_files: u32,
    /// `--max-mutations` and `--shutdown-timeout`, for each actor's host.
    pub limits: imagebus_host::Limits,
    /// `--zinit-dir`, `--zinit-socket`, `--systemd-*`, `--systemctl` and
    /// `--system-host-root`, for system containers.
    pub system: SystemDirs,
}

/// Where system containers put their units and host files.
#[derive(Debug, Clone)]
pub struct SystemDirs {
    /// `--system-host-root`: the root `hostfs/` files and tmpfiles paths go under.
    pub host_root: PathBuf,
    /// `--zinit-dir`: where units are written.
    pub zinit_dir: PathBuf,
    /// `--zinit-socket`: zinit's control socket.
    pub zinit_socket: PathBuf,
    /// `--systemd-root`: where `run/systemd/system` is looked for.
    pub systemd_root: PathBuf,
    /// `--systemd-unit-dir`: where `NAME.service` goes on a systemd host.
    pub systemd_unit_dir: PathBuf,
    /// `--systemctl`: the command reaching systemd.
    pub systemctl: Vec<String>,
}

impl Default for SystemDirs {
    fn default() -> Self {
        Self {
            host_root: PathBuf::from("/"),
            zinit_dir: PathBuf::from("/etc/zinit"),
            zinit_socket: PathBuf::from("/var/run/zinit.sock"),
            systemd_root: PathBuf::from("/"),
            systemd_unit_dir: PathBuf::from("/etc/systemd/system"),
            systemctl: vec!["systemctl".to_string()],
        }
    }
}

/// The `imagebus` CLI beside this executable (what system container units run), else
/// `imagebus` from `$PATH`.
fn imagebus_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("imagebus")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("imagebus"))
}

/// A started actor: its handle and, when the actor exposes one, its task.
pub struct Running<T: ?Sized> {
    handle: Arc<T>,
    task: Option<JoinHandle<()>>,
}

/// How to (re)start one actor.
pub type Starter<T> =
    Box<dyn Fn(CancellationToken) -> BoxFuture<'static, Result<Running<T>>> + Send + Sync>;

/// The attach actor, asking the mount module (`mounts`) whether `mount:N` holders are
/// genuine (`None`: unchecked).
pub fn attach_starter(
    dirs: ActorDirs,
    mounts: Option<Arc<dyn MountModule>>,
) -> Starter<dyn AttachModule> {
    Box::new(move |stop| {
        let mounts = mounts.clone();
        let limits = dirs.limits;
        let cfg = imagebus_attach::AttachConfig {
            state_dir: dirs.state_dir.join("attach"),
            run_dir: dirs.run_dir.join("attach"),
        };
        Box::pin(async move {
            let s = imagebus_attach::spawn_with_mounts(
                cfg,
                imagebus_attach::AttachSys::linux(),
                mounts,
                stop,
                limits,
            )
            .await
            .context("starting the attach actor")?;
            tracing::info!(report = ?s.report, "attach actor started");
            Ok(Running {
                handle: Arc::new(s.handle) as Arc<dyn AttachModule>,
                task: Some(s.task),
            })
        })
    })
}

/// The image store (no peers).
pub fn image_starter(dirs: ActorDirs) -> Starter<dyn ImageModule> {
    Box::new(move |stop| {
        let limits = dirs.limits;
        let cfg = imagebus_image::StoreConfig::new(dirs.state_dir.join("image"));
        Box::pin(async move {
            let s = imagebus_image::spawn(cfg, imagebus_image::ImageSys::linux(), stop, limits)
                .await
                .context("starting the image actor")?;
            tracing::info!(report = ?s.report, "image actor started");
            Ok(Running {
                handle: Arc::new(s.handle) as Arc<dyn ImageModule>,
                task: Some(s.task),
            })
        })
    })
}

/// The mount actor, reaching attach through `attach`, the image store through `image` and
/// the container module (which vouches for its holders) through `container`.
pub fn mount_starter(
    dirs: ActorDirs,
    attach: Arc<dyn AttachModule>,
    image: Option<Arc<dyn ImageModule>>,
    container: Arc<dyn ContainerModule>,
) -> Starter<dyn MountModule> {
    Box::new(move |stop| {
        let limits = dirs.limits;
        let cfg = imagebus_mount::MountConfig {
            state_dir: dirs.state_dir.join("mount"),
            run_dir: dirs.run_dir.join("mount"),
        };
        let peers = imagebus_mount::Peers {
            attach: attach.clone(),
            image: image.clone(),
            container: Some(container.clone()),
        };
        Box::pin(async move {
            let s = imagebus_mount::spawn_with_peers(
                cfg,
                imagebus_mount::MountSys::linux(),
                peers,
                stop,
                limits,
            )
            .await
            .context("starting the mount actor")?;
            tracing::info!(report = ?s.report, "mount actor started");
            Ok(Running {
                handle: Arc::new(s.handle) as Arc<dyn MountModule>,
                task: Some(s.task),
            })
        })
    })
}

/// The container actor, reaching mount through `mount`.
pub fn container_starter(
    dirs: ActorDirs,
    mount: Arc<dyn MountModule>,
) -> Starter<dyn ContainerActor> {
    Box::new(move |stop| {
        let limits = dirs.limits;
        let mut cfg = imagebus_container::ContainerConfig::new(
            dirs.state_dir.join("container"),
            dirs.run_dir.join("container"),
            dirs.log_dir.join("containers"),
        );
        cfg.runtime = dirs.runtime.clone();
        cfg.instance = dirs.instance.clone();
        cfg.log_max_bytes = dirs.log_max_bytes;
        cfg.log_max_files = dirs.log_max_files;
        let mount = mount.clone();
        Box::pin(async move {
            let sys = imagebus_container::ContainerSys::linux(&cfg);
            let s = imagebus_container::spawn(cfg, sys, mount, stop, limits)
                .await
                .context("starting the container actor")?;
            tracing::info!("container actor started");
            Ok(Running {
                handle: Arc::new(s.handle) as Arc<dyn ContainerActor>,
                task: Some(s.task),
            })
        })
    })
}

/// The system container actor, reaching the image store, mount and container modules
/// through their traits.
pub fn syscontainer_starter(
    dirs: ActorDirs,
    peers: imagebus_syscontainer::Peers,
) -> Starter<dyn SysContainerModule> {
    Box::new(move |stop| {
        let limits = dirs.limits;
        let mut cfg =
            imagebus_syscontainer::SysConfig::new(dirs.state_dir.join("system"), &dirs.run_dir);
        cfg.host_root = dirs.system.host_root.clone();
        cfg.zinit_dir = dirs.system.zinit_dir.clone();
        cfg.zinit_socket = dirs.system.zinit_socket.clone();
        cfg.systemd_root = dirs.system.systemd_root.clone();
        cfg.systemd_unit_dir = dirs.system.systemd_unit_dir.clone();
        cfg.systemctl = dirs.system.systemctl.clone();
        cfg.imagebus_bin = imagebus_bin();
        let peers = peers.clone();
        Box::pin(async move {
            let s = imagebus_syscontainer::spawn(cfg, peers, stop, limits)
                .await
                .context("starting the syscontainer actor")?;
            tracing::info!(report = ?s.report, "syscontainer actor started");
            Ok(Running {
                handle: Arc::new(s.handle) as Arc<dyn SysContainerModule>,
                task: Some(s.task),
            })
        })
    })
}

/// First restart delay; doubles per failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An actor that ran this long before failing starts again from [`FIRST_BACKOFF`].
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Keeps `module`'s actor running in `slot` until `stop`; then stops it (bounded by
/// `grace`) and empties the slot.
pub async fn supervise<T: ?Sized + Send + Sync + 'static>(
    module: &'static str,
    start: Starter<T>,
    slot: Arc<Slot<T>>,
    registry: Arc<Registry>,
    stop: CancellationToken,
    grace: Duration,
) {
    let mut failures: u32 = 0;
    loop {
        let actor_stop = stop.child_token();
        let started = Instant::now();
        match start(actor_stop.clone()).await {
            Ok(Running { handle, task }) => {
                slot.set(Some(handle));
                registry.set_state(module, ModuleState::Running, failures > 0);
                let Some(mut task) = task else {
                    // No task to watch: the actor lives as long as its handle.
                    stop.cancelled().await;
                    slot.set(None);
                    return;
                };
                tokio::select! {
                    () = stop.cancelled() => {
                        actor_stop.cancel();
                        slot.set(None);
                        if tokio::time::timeout(grace, &mut task).await.is_err() {
                            tracing::warn!(module, "actor did not stop in time; aborting it");
                            task.abort();
                        }
                        return;
                    }
                    res = &mut task => {
                        slot.set(None);
                        if stop.is_cancelled() {
                            return;
                        }
                        match res {
                            Err(e) if e.is_panic() => tracing::error!(module, "actor panicked"),
                            _ => tracing::error!(module, "actor stopped unexpectedly"),
                        }
                    }
                }
            }
            Err(e) => tracing::error!(module, error = format!("{e:#}"), "actor failed to start"),
        }
        if started.elapsed() > HEALTHY_AFTER {
            failures = 0;
        }
        let delay = backoff(failures);
        failures = failures.saturating_add(1);
        registry.set_state(module, ModuleState::Restarting, false);
        tracing::info!(module, delay = ?delay, "restarting actor");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Delay before restart number `failures` (0-based).
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_schema::system::ModuleInfo;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }

    struct Probe(u32);

    #[tokio::test]
    async fn a_failing_actor_is_restarted_into_the_slot() {
        let registry = Arc::new(Registry::default());
        registry.set(ModuleInfo {
            module: "x".into(),
            objects: vec![],
            workers: 1,
            state: ModuleState::Starting,
            restarts: 0,
        });
        let slot: Arc<Slot<Probe>> = Arc::new(Slot::new("x"));
        let starts = Arc::new(AtomicU32::new(0));
        let counter = starts.clone();
        // Generation 1 panics at once; generation 2 runs until stopped.
        let start: Starter<Probe> = Box::new(move |stop: CancellationToken| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                let task = tokio::spawn(async move {
                    if n == 1 {
                        panic!("generation 1 fails");
                    }
                    stop.cancelled().await;
                });
                Ok(Running {
                    handle: Arc::new(Probe(n)),
                    task: Some(task),
                })
            })
        });
        let stop = CancellationToken::new();
        let sup = tokio::spawn(supervise(
            "x",
            start,
            slot.clone(),
            registry.clone(),
            stop.clone(),
            Duration::from_secs(1),
        ));
        let mut rx = slot.watch();
        let up = async {
            loop {
                if rx.borrow_and_update().as_ref().is_some_and(|p| p.0 == 2) {
                    break;
                }
                rx.changed().await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(5), up)
            .await
            .expect("generation 2 never came up");
        let m = &registry.list()[0];
        assert_eq!((m.state, m.restarts), (ModuleState::Running, 1));
        stop.cancel();
        sup.await.unwrap();
        assert!(slot.get().is_err(), "the slot is emptied on stop");
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }

    /// The real attach actor: when its task ends (here: its first generation is stopped
    /// through its own token), the supervisor notices and starts a new one into the slot.
    #[tokio::test]
    async fn a_finished_attach_task_is_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = ActorDirs {
            state_dir: dir.path().join("state"),
            run_dir: dir.path().join("run"),
            log_dir: dir.path().join("log"),
            runtime: "runc".into(),
            instance: "test".into(),
            log_max_bytes: None,
            log_max_files: 2,
            limits: imagebus_host::Limits::default(),
            system: SystemDirs::default(),
        };
        let registry = Arc::new(Registry::default());
        registry.set(ModuleInfo {
            module: "attach".into(),
            objects: vec![],
            workers: 1,
            state: ModuleState::Starting,
            restarts: 0,
        });
        let slot: Arc<Slot<dyn AttachModule>> = Arc::new(Slot::new("attach"));
        let inner = attach_starter(dirs, None);
        let kill = CancellationToken::new();
        let first = kill.clone();
        let starts = Arc::new(AtomicU32::new(0));
        let counter = starts.clone();
        // Generation 1 runs on a token the test cancels; later ones on the supervisor's.
        let start: Starter<dyn AttachModule> = Box::new(move |stop: CancellationToken| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            inner(if n == 1 { first.clone() } else { stop })
        });
        let stop = CancellationToken::new();
        let sup = tokio::spawn(supervise(
            "attach",
            start,
            slot.clone(),
            registry.clone(),
            stop.clone(),
            Duration::from_secs(5),
        ));
        // Until generation `n` is in the slot.
        async fn up(slot: &Slot<dyn AttachModule>, starts: &AtomicU32, n: u32) {
            let mut rx = slot.watch();
            while rx.borrow_and_update().is_none() || starts.load(Ordering::SeqCst) != n {
                rx.changed().await.unwrap();
            }
        }
        tokio::time::timeout(Duration::from_secs(10), up(&slot, &starts, 1))
            .await
            .expect("attach never came up");
        let gen1 = slot.get().unwrap();
        assert!(gen1.list().await.unwrap().is_empty());
        kill.cancel();
        tokio::time::timeout(Duration::from_secs(10), up(&slot, &starts, 2))
            .await
            .expect("attach was not restarted after its task ended");
        let err = gen1.list().await.unwrap_err();
        assert_eq!(err.code, imagebus_bus::ErrorCode::Unavailable, "{err:?}");
        assert!(slot.get().unwrap().list().await.unwrap().is_empty());
        let m = &registry.list()[0];
        assert_eq!((m.state, m.restarts), (ModuleState::Running, 1));
        stop.cancel();
        sup.await.unwrap();
        assert!(slot.get().is_err(), "the slot is emptied on stop");
    }
}
