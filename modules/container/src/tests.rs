//! Engine tests on trait doubles: create rollback and start-up reconciliation.

use crate::config::{ContainerConfig, ContainerSys};
use crate::engine::Containers;
use crate::error::ContainerError;
use crate::record::{save_record, Record, Watched};
use imagebus_bus::RemoteError;
use imagebus_schema::container::{
    CommandLine, ContainerInfo, ContainerSpec, ContainerState, InitialState,
};
use imagebus_schema::mount::{MountInfo, MountModule, MountRef, MountSpec};
use imagebus_schema::{Holder, Selector};
use imagebus_sys::cgroup::Cgroups;
use imagebus_sys::monitor::{ExitRecord, MonitorLauncher, MonitorReport};
use imagebus_sys::ns::NetNamespaces;
use imagebus_sys::runtime::{ExecOutput, ExecRequest, Runtime, RuntimeError, RuntimeState};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

#[derive(Default)]
struct FakeRuntime {
    listed: Vec<RuntimeState>,
    deleted: Mutex<Vec<String>>,
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &str {
        "fake"
    }
    fn create_argv(&self, id: &str, _: &Path, _: &Path, _: &Path, _: bool) -> Vec<String> {
        vec!["fake".into(), id.into()]
    }
    fn start(&self, _: &str) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn state(&self, _: &str) -> Result<Option<RuntimeState>, RuntimeError> {
        Ok(None)
    }
    fn list(&self) -> Result<Vec<RuntimeState>, RuntimeError> {
        Ok(self.listed.clone())
    }
    fn kill(&self, _: &str, _: i32, _: bool) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn delete(&self, id: &str, _: bool) -> Result<(), RuntimeError> {
        self.deleted.lock().unwrap().push(id.into());
        Ok(())
    }
    fn exec(&self, _: &str, _: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        Ok(ExecOutput::default())
    }
}

/// Fails every launch the way runc reports a broken start.
struct FailingLauncher;

impl MonitorLauncher for FailingLauncher {
    fn launch(&self, _: &Path, _: Duration) -> Result<MonitorReport, RuntimeError> {
        Ok(MonitorReport {
            monitor_pid: 1,
            init_pid: None,
            error: Some("exec failed: boom".into()),
        })
    }
}

struct NoNetns;

impl NetNamespaces for NoNetns {
    fn resolve(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        Err(RuntimeError::NotFound(name.into()))
    }
}

#[derive(Default)]
struct FakeCgroups(Mutex<Vec<String>>);

impl Cgroups for FakeCgroups {
    fn hierarchies(&self) -> Vec<PathBuf> {
        vec![]
    }
    fn remove(&self, rel: &str) -> Result<Vec<PathBuf>, RuntimeError> {
        self.0.lock().unwrap().push(rel.into());
        Ok(vec![])
    }
}

/// A mount module with one mount (id 7) on `root`, recording holders.
struct FakeMounts {
    root: PathBuf,
    holders: Mutex<Vec<Holder>>,
}

impl FakeMounts {
    fn info(&self) -> MountInfo {
        MountInfo {
            id: 7,
            name: Some("root".into()),
            kind: "bind".into(),
            mountpoint: self.root.clone(),
            fs_type: "none".into(),
            read_only: false,
            attachment: None,
            children: vec![],
            holders: self.holders.lock().unwrap().clone(),
            created_at: 0,
        }
    }
}

#[imagebus_bus::async_trait]
impl MountModule for FakeMounts {
    async fn mount(&self, _: MountSpec, holder: Option<Holder>) -> Result<MountInfo, RemoteError> {
        self.holders
            .lock()
            .unwrap()
            .push(holder.unwrap_or(Holder::User));
        Ok(self.info())
    }
    async fn unmount(&self, _: Selector, _: bool) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn get(&self, _: Selector) -> Result<MountInfo, RemoteError> {
        Ok(self.info())
    }
    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError> {
        Ok(vec![self.info()])
    }
    async fn acquire(&self, _: Selector, holder: Holder) -> Result<MountInfo, RemoteError> {
        self.holders.lock().unwrap().push(holder);
        Ok(self.info())
    }
    async fn release(&self, _: u64, holder: Holder) -> Result<(), RemoteError> {
        self.holders.lock().unwrap().retain(|h| *h != holder);
        Ok(())
    }
}

struct Setup {
    dir: tempfile::TempDir,
    cfg: ContainerConfig,
    runtime: Arc<FakeRuntime>,
    cgroups: Arc<FakeCgroups>,
    mounts: Arc<FakeMounts>,
}

fn setup(listed: Vec<RuntimeState>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/init"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        root.join("bin/init"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut cfg = ContainerConfig::new(
        dir.path().join("state"),
        dir.path().join("run"),
        dir.path().join("log"),
    );
    cfg.instance = "unit".into();
    Setup {
        cfg,
        runtime: Arc::new(FakeRuntime {
            listed,
            ..Default::default()
        }),
        cgroups: Arc::new(FakeCgroups::default()),
        mounts: Arc::new(FakeMounts {
            root,
            holders: Mutex::new(vec![Holder::User]),
        }),
        dir,
    }
}

async fn load(
    s: &Setup,
) -> (
    Containers,
    broadcast::Receiver<imagebus_schema::container::ContainerEvent>,
) {
    let sys = ContainerSys {
        runtime: s.runtime.clone(),
        monitors: Arc::new(FailingLauncher),
        netns: Arc::new(NoNetns),
        cgroups: s.cgroups.clone(),
    };
    let (events, rx) = broadcast::channel(16);
    let (itx, _irx) = mpsc::unbounded_channel();
    (
        Containers::load(s.cfg.clone(), sys, s.mounts.clone(), events, itx)
            .await
            .unwrap(),
        rx,
    )
}

fn spec(state: InitialState) -> ContainerSpec {
    ContainerSpec {
        name: Some("web".into()),
        group: None,
        mount: MountRef::Existing(Selector::Name("root".into())),
        command: CommandLine::Line("/bin/init".into()),
        env: vec![],
        working_dir: None,
        hostname: None,
        user: None,
        systemd: false,
        state,
        network: Default::default(),
        binds: vec![],
        resources: Default::default(),
        capabilities: Default::default(),
        stop_signal: None,
        stop_timeout_ms: None,
    }
}

fn record(
    s: &Setup,
    id: u64,
    state: ContainerState,
    watched: Option<Watched>,
    pid: Option<u32>,
) -> Record {
    let rec = Record {
        info: ContainerInfo {
            id,
            name: Some(format!("c{id}")),
            group: None,
            state,
            mount: 7,
            rootfs: s.mounts.root.clone(),
            command: vec!["/bin/init".into()],
            pid,
            exit_code: None,
            exit_signal: None,
            reason: None,
            log_file: s.cfg.log_file(id),
            runtime_id: s.cfg.runtime_id(id),
            created_at_ms: 1,
            started_at_ms: Some(1),
            finished_at_ms: None,
            spec: spec(InitialState::Running),
        },
        stop_signal: 15,
        stop_timeout_ms: 1000,
        generation: 1,
        watched,
    };
    let dir = s.cfg.container_dir(id);
    std::fs::create_dir_all(&dir).unwrap();
    save_record(&dir.join("record.json"), &rec).unwrap();
    rec
}

#[tokio::test]
async fn a_failed_start_returns_the_runtime_error_and_leaves_nothing() {
    let s = setup(vec![]);
    let (mut c, mut events) = load(&s).await;
    let err = c.create(spec(InitialState::Running)).await.unwrap_err();
    let remote: RemoteError = err.into();
    assert_eq!(remote.code, imagebus_bus::ErrorCode::Internal);
    assert!(remote.message.contains("boom"), "{remote}");
    assert_eq!(
        *s.mounts.holders.lock().unwrap(),
        [Holder::User],
        "the container's reference was released"
    );
    assert_eq!(*s.runtime.deleted.lock().unwrap(), ["unit-1"]);
    assert_eq!(*s.cgroups.0.lock().unwrap(), ["/unit/unit-1"]);
    assert!(!s.cfg.container_dir(1).exists());
    assert!(c.list(&Default::default()).is_empty());
    assert!(
        events.try_recv().is_err(),
        "no events for a container that never existed"
    );
    // A missing init is refused before anything is created.
    let mut bad = spec(InitialState::Created);
    bad.command = CommandLine::Line("/bin/missing".into());
    assert!(
        matches!(c.create(bad).await, Err(ContainerError::Invalid(m)) if m.contains("does not exist"))
    );
    assert_eq!(*s.mounts.holders.lock().unwrap(), [Holder::User]);
    drop(s.dir);
}

#[tokio::test]
async fn reconcile_uses_exit_files_and_removes_orphans() {
    let gone = Some(Watched {
        pid: u32::MAX - 1,
        start_time: 1,
        monitor: true,
    });
    let orphan = RuntimeState {
        id: "unit-99".into(),
        pid: 0,
        status: "stopped".into(),
        bundle: PathBuf::new(),
    };
    let foreign = RuntimeState {
        id: "other-1".into(),
        pid: 0,
        status: "running".into(),
        bundle: PathBuf::new(),
    };
    let s = setup(vec![orphan, foreign]);
    // 1: the monitor recorded an exit while we were down.
    record(&s, 1, ContainerState::Running, gone, Some(u32::MAX - 2));
    let exit = ExitRecord {
        pid: 5,
        exit_code: Some(4),
        signal: None,
        exited_at_ms: 42,
    };
    std::fs::write(
        s.cfg.container_dir(1).join("exit.json"),
        serde_json::to_vec(&exit).unwrap(),
    )
    .unwrap();
    // 2: monitor and init gone without a trace (e.g. a reboot).
    record(&s, 2, ContainerState::Running, gone, Some(u32::MAX - 2));
    // 3: still ours and alive (this test process stands in for its monitor).
    let me = std::process::id();
    let alive = Watched {
        pid: me,
        start_time: imagebus_sys::monitor::process_start_time(me).unwrap(),
        monitor: true,
    };
    record(&s, 3, ContainerState::Running, Some(alive), Some(me));
    // 4: already exited: untouched.
    record(&s, 4, ContainerState::Exited, None, None);

    let (mut c, _events) = load(&s).await;
    c.reconcile().await.unwrap();
    let one = c.get(&Selector::Id(1)).unwrap();
    assert_eq!(
        (one.state, one.exit_code, one.finished_at_ms),
        (ContainerState::Exited, Some(4), Some(42))
    );
    let two = c.get(&Selector::Id(2)).unwrap();
    assert_eq!(two.state, ContainerState::Dead);
    assert!(two.reason.unwrap().contains("without recording"));
    assert_eq!(
        c.get(&Selector::Id(3)).unwrap().state,
        ContainerState::Running
    );
    assert_eq!(
        c.get(&Selector::Id(4)).unwrap().state,
        ContainerState::Exited
    );
    let deleted = s.runtime.deleted.lock().unwrap().clone();
    assert!(
        deleted.contains(&"unit-99".to_string()),
        "orphan removed: {deleted:?}"
    );
    assert!(
        !deleted.contains(&"other-1".to_string()),
        "other instances are left alone"
    );
    assert!(!deleted.contains(&"unit-3".to_string()));
    // New ids continue after the highest known one.
    let persisted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.cfg.container_dir(1).join("record.json")).unwrap())
            .unwrap();
    assert_eq!(
        persisted["data"]["info"]["state"], "exited",
        "the new state is saved"
    );
}

/// A mount module whose every call panics: a command that reaches it panics in the actor.
struct PanickingMounts;

#[imagebus_bus::async_trait]
impl MountModule for PanickingMounts {
    async fn mount(&self, _: MountSpec, _: Option<Holder>) -> Result<MountInfo, RemoteError> {
        panic!("mount double: mount")
    }
    async fn unmount(&self, _: Selector, _: bool) -> Result<(), RemoteError> {
        panic!("mount double: unmount")
    }
    async fn get(&self, _: Selector) -> Result<MountInfo, RemoteError> {
        panic!("mount double: get")
    }
    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError> {
        panic!("mount double: list")
    }
    async fn acquire(&self, _: Selector, _: Holder) -> Result<MountInfo, RemoteError> {
        panic!("mount double: acquire")
    }
    async fn release(&self, _: u64, _: Holder) -> Result<(), RemoteError> {
        panic!("mount double: release")
    }
}

fn fake_sys(s: &Setup) -> ContainerSys {
    ContainerSys {
        runtime: s.runtime.clone(),
        monitors: Arc::new(FailingLauncher),
        netns: Arc::new(NoNetns),
        cgroups: s.cgroups.clone(),
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_panicking_command_fails_its_caller_and_ends_the_task_with_a_panic() {
    use imagebus_schema::container::ContainerModule;
    let s = setup(vec![]);
    let stop = tokio_util::sync::CancellationToken::new();
    let spawned = crate::spawn(s.cfg.clone(), fake_sys(&s), Arc::new(PanickingMounts), stop)
        .await
        .unwrap();
    let h = spawned.handle;
    assert!(ContainerModule::list(&h, Default::default())
        .await
        .unwrap()
        .is_empty());
    let err = tokio::time::timeout(
        WAIT,
        ContainerModule::create(&h, spec(InitialState::Created)),
    )
    .await
    .expect("the caller of a panicking command is answered")
    .unwrap_err();
    assert_eq!(err.code, imagebus_bus::ErrorCode::Unavailable, "{err}");
    let ended = tokio::time::timeout(WAIT, spawned.task)
        .await
        .expect("the actor task ends");
    assert!(ended.unwrap_err().is_panic(), "a panic is reported as one");
    let err = tokio::time::timeout(WAIT, ContainerModule::get(&h, Selector::Id(1)))
        .await
        .expect("calls on a dead actor do not hang")
        .unwrap_err();
    assert_eq!(err.code, imagebus_bus::ErrorCode::Unavailable);
}

#[tokio::test]
async fn stop_waits_outside_the_actor_and_the_token_ends_it_cleanly() {
    use imagebus_schema::container::ContainerModule;
    let s = setup(vec![]);
    // Container 3 is "running", watched through this test process, which never exits.
    let me = std::process::id();
    let alive = Watched {
        pid: me,
        start_time: imagebus_sys::monitor::process_start_time(me).unwrap(),
        monitor: true,
    };
    record(&s, 3, ContainerState::Running, Some(alive), Some(me));
    let stop = tokio_util::sync::CancellationToken::new();
    let spawned = crate::spawn(s.cfg.clone(), fake_sys(&s), s.mounts.clone(), stop.clone())
        .await
        .unwrap();
    let h = spawned.handle;
    let stopper = tokio::spawn({
        let h = h.clone();
        async move { ContainerModule::stop(&h, Selector::Id(3), Some(10)).await }
    });
    // The pending Stop does not hold the actor: Get answers, and sees Stopping.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let info = tokio::time::timeout(WAIT, ContainerModule::get(&h, Selector::Id(3)))
            .await
            .expect("Get answers while a Stop waits")
            .unwrap();
        if info.state == ContainerState::Stopping {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never Stopping: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !stopper.is_finished(),
        "Stop answers only once the init has exited"
    );
    stop.cancel();
    tokio::time::timeout(WAIT, spawned.task)
        .await
        .expect("the actor stops when the token is cancelled")
        .expect("a clean stop is not a panic");
    let waiting = tokio::time::timeout(WAIT, stopper).await.unwrap().unwrap();
    assert_eq!(
        waiting.unwrap_err().code,
        imagebus_bus::ErrorCode::Unavailable
    );
    let err = ContainerModule::list(&h, Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, imagebus_bus::ErrorCode::Unavailable);
}

#[tokio::test]
async fn dropping_every_handle_ends_the_actor() {
    let s = setup(vec![]);
    let stop = tokio_util::sync::CancellationToken::new();
    let spawned = crate::spawn(s.cfg.clone(), fake_sys(&s), s.mounts.clone(), stop)
        .await
        .unwrap();
    let h2 = spawned.handle.clone();
    drop(spawned.handle);
    drop(h2);
    tokio::time::timeout(WAIT, spawned.task)
        .await
        .expect("the actor stops when its handles are gone")
        .expect("a clean stop");
}
