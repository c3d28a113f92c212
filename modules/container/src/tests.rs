//! Actor tests on trait doubles: create rollback, start-up reconciliation, supervision,
//! and the concurrency model (reads beside blocked commands, reservations, per-container
//! order, delete against start, deadlines, shutdown).
//!
//! The doubles are the sys crate's: [`FakeRuntime`] is the runtime and the monitor
//! launcher at once (a run is a process in its [`FakeProcesses`] standing in for its
//! monitor and init; a kill ends it and writes the exit file as the monitor would), with
//! gates that hold `launch` or `start` inside the blocking pool to keep a command in
//! flight. [`FakeMounts`] is the mount module, whose inline `mount` can be held the same
//! way.

use crate::actor::{ContainerHandle, Spawned};
use crate::config::{ContainerConfig, ContainerSys};
use crate::engine::{self, Containers};
use crate::error::ContainerError;
use crate::store::{self, save_record, Loaded, Op, Record, Watched};
use futures::{FutureExt, StreamExt};
use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_host::Limits;
use imagebus_schema::container::{
    CommandLine, ContainerInfo, ContainerModule, ContainerSpec, ContainerState, InitialState,
    LogsRequest,
};
use imagebus_schema::mount::{BindMount, MountInfo, MountModule, MountRef, MountSource, MountSpec};
use imagebus_schema::{Holder, Selector};
use imagebus_sys::fake::{
    FakeCgroups, FakeNetNamespaces, FakeProcesses, FakeRuntime, FakeSessions,
};
use imagebus_sys::monitor::ExitRecord;
use imagebus_sys::proc::Processes;
use imagebus_sys::runtime::RuntimeState;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

mod restart;
mod session;
mod stats;

const WAIT: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds, for at most [`WAIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A mount module with one mount (id 7) on `root`, recording holders; an inline `mount`
/// waits for `release` while `held` is set.
struct FakeMounts {
    root: PathBuf,
    holders: Mutex<Vec<Holder>>,
    held: std::sync::atomic::AtomicBool,
    entered: AtomicUsize,
    release: tokio::sync::Notify,
    /// When set, asked about `Container(n)` holders as the real mount module asks:
    /// adding needs `holds`, dropping needs `!holds` (`Conflict` otherwise).
    owner: Mutex<Option<ContainerHandle>>,
    /// With no `owner` yet, `Container(n)` releases answer `Unavailable` (the mount module
    /// cannot ask a container module that is not serving yet).
    strict: std::sync::atomic::AtomicBool,
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
            source: self.root.clone(),
            upper_dir: None,
            work_dir: None,
            attachment: None,
            children: vec![],
            holders: self.holders(),
            created_at: 0,
        }
    }
    fn holders(&self) -> Vec<Holder> {
        self.holders.lock().unwrap().clone()
    }
    /// The owner's answer for `holder` on mount 7 (`None`: not asked).
    async fn owner_holds(&self, holder: &Holder) -> Result<Option<bool>, RemoteError> {
        let Holder::Container(n) = holder else {
            return Ok(None);
        };
        let Some(owner) = self.owner.lock().unwrap().clone() else {
            if self.strict.load(Ordering::SeqCst) {
                return Err(RemoteError::unavailable(
                    "the container actor is not running",
                ));
            }
            return Ok(None);
        };
        Ok(Some(owner.holds(*n, 7).await.unwrap()))
    }
}

#[imagebus_bus::async_trait]
impl MountModule for FakeMounts {
    async fn mount(&self, _: MountSpec, holder: Option<Holder>) -> Result<MountInfo, RemoteError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        if self.held.load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(WAIT, self.release.notified()).await;
        }
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
        if self.owner_holds(&holder).await? == Some(true) {
            return Err(RemoteError::new(
                ErrorCode::Conflict,
                format!("mount 7 is held by {holder}"),
            ));
        }
        self.holders.lock().unwrap().retain(|h| *h != holder);
        Ok(())
    }
    async fn holds(&self, _: u64, _: u64) -> Result<bool, RemoteError> {
        Ok(false)
    }
}

struct Setup {
    dir: tempfile::TempDir,
    cfg: ContainerConfig,
    kernel: FakeRuntime,
    procs: FakeProcesses,
    cgroups: FakeCgroups,
    mounts: Arc<FakeMounts>,
    sessions: FakeSessions,
}

fn setup_with(kernel: FakeRuntime) -> Setup {
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
        procs: kernel.processes(),
        kernel,
        cgroups: FakeCgroups::default(),
        mounts: Arc::new(FakeMounts {
            root,
            holders: Mutex::new(vec![Holder::User]),
            held: false.into(),
            entered: AtomicUsize::new(0),
            release: tokio::sync::Notify::new(),
            owner: Mutex::new(None),
            strict: false.into(),
        }),
        sessions: FakeSessions::default(),
        dir,
    }
}

/// Runs fail to start, like a broken runc.
fn setup(listed: Vec<RuntimeState>) -> Setup {
    let kernel = FakeRuntime::default();
    kernel.set_listed(listed);
    kernel.fail_launches(true);
    setup_with(kernel)
}

/// Runs start.
fn setup_ok() -> Setup {
    setup_with(FakeRuntime::default())
}

fn fake_sys(s: &Setup) -> ContainerSys {
    ContainerSys {
        runtime: Arc::new(s.kernel.clone()),
        monitors: Arc::new(s.kernel.clone()),
        netns: Arc::new(FakeNetNamespaces::default()),
        cgroups: Arc::new(s.cgroups.clone()),
        procs: Arc::new(s.procs.clone()),
        sessions: Arc::new(s.sessions.clone()),
    }
}

fn limits(max: usize) -> Limits {
    Limits {
        max_mutations: max,
        shutdown_timeout: WAIT,
    }
}

async fn spawn_on(
    s: &Setup,
    mounts: Arc<dyn MountModule>,
    max: usize,
) -> (Spawned, CancellationToken) {
    let stop = CancellationToken::new();
    let spawned = crate::spawn(
        s.cfg.clone(),
        fake_sys(s),
        mounts,
        stop.clone(),
        limits(max),
    )
    .await
    .unwrap();
    (spawned, stop)
}

async fn spawn(s: &Setup, max: usize) -> (ContainerHandle, tokio::task::JoinHandle<()>) {
    let (spawned, _stop) = spawn_on(s, s.mounts.clone(), max).await;
    (spawned.handle, spawned.task)
}

fn spec(state: InitialState) -> ContainerSpec {
    named("web", state)
}

fn named(name: &str, state: InitialState) -> ContainerSpec {
    ContainerSpec {
        name: Some(name.into()),
        state,
        ..ContainerSpec::new(
            MountRef::Existing(Selector::Name("root".into())),
            CommandLine::Line("/bin/init".into()),
        )
    }
}

fn inline(s: &Setup, name: &str) -> ContainerSpec {
    ContainerSpec {
        mount: MountRef::Inline(Box::new(MountSpec {
            name: None,
            source: MountSource::Bind(BindMount {
                path: s.mounts.root.clone(),
                base: None,
                read_only: false,
                recursive: true,
            }),
        })),
        ..named(name, InitialState::Created)
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
            restart_count: 0,
            health: None,
            spec: spec(InitialState::Running),
        },
        stop_signal: 15,
        stop_timeout_ms: 1000,
        generation: 1,
        watched,
        restart_due_ms: None,
        restart_streak: 0,
        health_kill: false,
    };
    let dir = s.cfg.container_dir(id);
    std::fs::create_dir_all(&dir).unwrap();
    save_record(&dir.join("record.json"), &rec).unwrap();
    rec
}

/// This test process, standing in for a monitor that never exits (declared to the fake
/// processes of `s`).
fn me_watched(s: &Setup) -> Watched {
    let me = std::process::id();
    if !s.procs.alive(me) {
        s.procs.add(me, &["imagebus-monitor"]);
    }
    Watched {
        pid: me,
        start_time: s.procs.start_time(me).unwrap(),
        monitor: true,
    }
}

#[tokio::test]
async fn a_failed_start_returns_the_runtime_error_and_leaves_nothing() {
    let s = setup(vec![]);
    let (h, _task) = spawn(&s, 4).await;
    let mut events = h.subscribe();
    let err = h.create(spec(InitialState::Running)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(err.message.contains("boom"), "{err}");
    assert_eq!(
        s.mounts.holders(),
        [Holder::User],
        "the container's reference was released"
    );
    assert_eq!(s.kernel.deleted(), ["unit-1"]);
    assert_eq!(s.cgroups.removed(), ["/unit/unit-1"]);
    assert!(!s.cfg.container_dir(1).exists());
    assert!(!s.cfg.run_files_dir(1).exists());
    assert!(h.list(Default::default()).await.unwrap().is_empty());
    assert!(
        events.next().now_or_never().is_none(),
        "no events for a container that never existed"
    );
    // A missing init is refused before anything is created.
    let mut bad = spec(InitialState::Created);
    bad.command = CommandLine::Line("/bin/missing".into());
    assert!(
        matches!(engine::create::create(h.engine(), bad).await, Err(ContainerError::Invalid(m)) if m.contains("does not exist"))
    );
    assert_eq!(s.mounts.holders(), [Holder::User]);
    assert_eq!(s.kernel.launches(), 1);
    // The name is free again.
    let err = h.create(spec(InitialState::Created)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal, "{err}");
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
    // 5: a Start cut short after `runc start`: the runtime says running.
    let started = RuntimeState {
        id: "unit-5".into(),
        pid: std::process::id(),
        status: "running".into(),
        bundle: PathBuf::new(),
    };
    let s = setup(vec![orphan, foreign, started]);
    assert_eq!(s.cfg.runtime_id(5), "unit-5");
    let me = std::process::id();
    record(
        &s,
        5,
        ContainerState::Created,
        Some(me_watched(&s)),
        Some(me),
    );
    // 1: the monitor recorded an exit while we were down.
    record(&s, 1, ContainerState::Running, gone, Some(u32::MAX - 2));
    let exit = ExitRecord {
        pid: 5,
        exit_code: Some(4),
        signal: None,
        exited_at_ms: 42,
    };
    std::fs::create_dir_all(s.cfg.run_files_dir(1)).unwrap();
    std::fs::write(
        s.cfg.run_files_dir(1).join("exit.json"),
        serde_json::to_vec(&exit).unwrap(),
    )
    .unwrap();
    // 2: monitor and init gone without a trace (e.g. a reboot).
    record(&s, 2, ContainerState::Running, gone, Some(u32::MAX - 2));
    // 3: still ours and alive (this test process stands in for its monitor).
    record(
        &s,
        3,
        ContainerState::Running,
        Some(me_watched(&s)),
        Some(me),
    );
    // 4: already exited: untouched.
    record(&s, 4, ContainerState::Exited, None, None);
    // 7: files of a create cut short before its record was written.
    let leftovers = [
        s.cfg.container_dir(7).join("bundle"),
        s.cfg.run_files_dir(7),
    ];
    for d in &leftovers {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::create_dir_all(&s.cfg.log_dir).unwrap();
    std::fs::write(s.cfg.log_file(7), "partial").unwrap();
    std::fs::write(s.cfg.log_file(4), "kept").unwrap();

    let (spawned, _stop) = spawn_on(&s, s.mounts.clone(), 4).await;
    let c = spawned.handle;
    assert_eq!(
        (
            spawned.report.reattached,
            spawned.report.ended,
            spawned.report.orphans_removed,
            spawned.report.leftover_files_removed
        ),
        (2, 2, 1, 1),
        "{}",
        spawned.report
    );
    assert!(
        !s.cfg.container_dir(7).exists(),
        "leftover state dir removed"
    );
    assert!(!s.cfg.run_files_dir(7).exists(), "leftover run dir removed");
    assert!(!s.cfg.log_file(7).exists(), "leftover log removed");
    assert!(
        s.cfg.log_file(4).exists(),
        "a recorded container's log stays"
    );
    assert!(s.cfg.container_dir(4).exists());
    let one = c.get(Selector::Id(1)).await.unwrap();
    assert_eq!(
        (one.state, one.exit_code, one.finished_at_ms),
        (ContainerState::Exited, Some(4), Some(42))
    );
    let two = c.get(Selector::Id(2)).await.unwrap();
    assert_eq!(two.state, ContainerState::Dead);
    assert!(two.reason.unwrap().contains("without recording"));
    assert_eq!(
        c.get(Selector::Id(3)).await.unwrap().state,
        ContainerState::Running
    );
    assert_eq!(
        c.get(Selector::Id(4)).await.unwrap().state,
        ContainerState::Exited
    );
    let five = c.get(Selector::Id(5)).await.unwrap();
    assert_eq!(
        five.state,
        ContainerState::Running,
        "the record follows the runtime"
    );
    assert!(five.started_at_ms.is_some());
    let deleted = s.kernel.deleted();
    assert!(
        deleted.contains(&"unit-99".to_string()),
        "orphan removed: {deleted:?}"
    );
    assert!(
        !deleted.contains(&"other-1".to_string()),
        "other instances are left alone"
    );
    assert!(!deleted.contains(&"unit-3".to_string()));
    let persisted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.cfg.container_dir(1).join("record.json")).unwrap())
            .unwrap();
    assert_eq!(
        persisted["data"]["info"]["state"], "exited",
        "the new state is saved"
    );
}

/// A mount module whose every call but `List` (start-up lists it) panics: a command that
/// reaches it panics in its job.
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
    /// Start-up reconciliation lists the mounts (to release stale holds): none here.
    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError> {
        Ok(Vec::new())
    }
    async fn acquire(&self, _: Selector, _: Holder) -> Result<MountInfo, RemoteError> {
        panic!("mount double: acquire")
    }
    async fn release(&self, _: u64, _: Holder) -> Result<(), RemoteError> {
        panic!("mount double: release")
    }
    async fn holds(&self, _: u64, _: u64) -> Result<bool, RemoteError> {
        panic!("mount double: holds")
    }
}

#[tokio::test]
async fn a_panicking_command_fails_its_caller_and_ends_the_task_with_a_panic() {
    let s = setup(vec![]);
    let (spawned, _stop) = spawn_on(&s, Arc::new(PanickingMounts), 4).await;
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
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    let ended = tokio::time::timeout(WAIT, spawned.task)
        .await
        .expect("the actor task ends");
    assert!(ended.unwrap_err().is_panic(), "a panic is reported as one");
    let err = tokio::time::timeout(WAIT, ContainerModule::get(&h, Selector::Id(1)))
        .await
        .expect("calls on a dead actor do not hang")
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
}

#[tokio::test]
async fn stop_waits_outside_the_actor_and_the_token_ends_it_cleanly() {
    let s = setup(vec![]);
    // Container 3 is "running", watched through this test process, which never exits.
    record(
        &s,
        3,
        ContainerState::Running,
        Some(me_watched(&s)),
        Some(std::process::id()),
    );
    let (spawned, stop) = spawn_on(&s, s.mounts.clone(), 4).await;
    let h = spawned.handle;
    let stopper = tokio::spawn({
        let h = h.clone();
        async move { ContainerModule::stop(&h, Selector::Id(3), Some(10)).await }
    });
    // The pending Stop does not hold the actor: Get answers, and sees Stopping.
    let deadline = Instant::now() + WAIT;
    loop {
        let info = tokio::time::timeout(WAIT, ContainerModule::get(&h, Selector::Id(3)))
            .await
            .expect("Get answers while a Stop waits")
            .unwrap();
        if info.state == ContainerState::Stopping {
            break;
        }
        assert!(Instant::now() < deadline, "never Stopping: {info:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The escalation after 10 ms takes the key, so a Start behind it sees it done.
    let err = h.start(Selector::Id(3)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    until("the SIGKILL", || {
        s.kernel.calls().contains(&"kill unit-3 9".to_string())
    })
    .await;
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
    assert_eq!(waiting.unwrap_err().code, ErrorCode::Unavailable);
    let err = ContainerModule::list(&h, Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
}

#[tokio::test]
async fn dropping_every_handle_ends_the_actor() {
    let s = setup(vec![]);
    // A watched container: its watcher must not keep the actor alive.
    record(
        &s,
        3,
        ContainerState::Running,
        Some(me_watched(&s)),
        Some(std::process::id()),
    );
    let (h, task) = spawn(&s, 4).await;
    let h2 = h.clone();
    drop(h);
    drop(h2);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the actor stops when its handles are gone")
        .expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_on_the_doubles_with_ordered_events() {
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let mut events = h.subscribe();
    let info = h.create(spec(InitialState::Running)).await.unwrap();
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(s.kernel.live(), BTreeSet::from(["unit-1".to_string()]));
    let stopped = h.stop(Selector::Name("web".into()), None).await.unwrap();
    assert_eq!(
        (stopped.state, stopped.exit_code),
        (ContainerState::Exited, Some(128 + 15))
    );
    let again = h.start(Selector::Id(1)).await.unwrap();
    assert_eq!(again.state, ContainerState::Running);
    h.delete(Selector::Id(1), true).await.unwrap();
    assert!(s.kernel.live().is_empty());
    assert_eq!(s.mounts.holders(), [Holder::User]);
    assert!(!s.cfg.container_dir(1).exists());
    assert!(!s.cfg.run_files_dir(1).exists());
    let mut seen = Vec::new();
    while let Some(Some(ev)) = events.next().now_or_never() {
        seen.push((ev.state, ev.deleted));
    }
    use ContainerState::*;
    assert_eq!(
        seen,
        [
            (Created, false),
            (Running, false),
            (Stopping, false),
            (Exited, false),
            (Running, false),
            (Stopping, false),
            (Exited, false),
            (Exited, true),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_other_creates_answer_while_a_create_waits_for_the_mount_module() {
    let s = setup_ok();
    s.mounts.held.store(true, Ordering::SeqCst);
    let (h, _task) = spawn(&s, 4).await;
    let slow = tokio::spawn({
        let (h, spec) = (h.clone(), inline(&s, "slow"));
        async move { h.create(spec).await }
    });
    until("the inline mount", || {
        s.mounts.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    let t = Instant::now();
    assert!(h.list(Default::default()).await.unwrap().is_empty());
    let fast = h
        .create(named("fast", InitialState::Running))
        .await
        .unwrap();
    assert_eq!(
        h.get(Selector::Name("fast".into())).await.unwrap().id,
        fast.id
    );
    let logs = h
        .logs(Selector::Id(fast.id), LogsRequest::default())
        .await
        .unwrap();
    assert!(logs.running);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!slow.is_finished());
    assert_eq!(
        h.get(Selector::Name("slow".into())).await.unwrap_err().code,
        ErrorCode::NotFound,
        "a create in flight is not visible"
    );
    s.mounts.release.notify_one();
    let slow = tokio::time::timeout(WAIT, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(slow.state, ContainerState::Created);
    assert_eq!(h.list(Default::default()).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creates_of_one_name_give_one_container_and_one_conflict() {
    let s = setup_ok();
    s.kernel.launch_gate().close();
    let (h, _task) = spawn(&s, 4).await;
    let first = tokio::spawn({
        let h = h.clone();
        async move { h.create(spec(InitialState::Running)).await }
    });
    until("the first launch", || s.kernel.launch_gate().waiting() == 1).await;
    // The name is reserved: the second create answers at once, while the first runs.
    let second = tokio::time::timeout(WAIT, h.create(spec(InitialState::Running)))
        .await
        .expect("a taken name is refused without waiting");
    assert_eq!(second.unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(
        s.kernel.launch_gate().waiting(),
        1,
        "the first is still in flight"
    );
    s.kernel.launch_gate().open();
    let a = first.await.unwrap().unwrap();
    assert_eq!(s.kernel.launches(), 1);
    assert_eq!(s.kernel.live(), BTreeSet::from([a.runtime_id.clone()]));
    assert_eq!(s.mounts.holders(), [Holder::User, Holder::Container(a.id)]);
    assert_eq!(h.list(Default::default()).await.unwrap().len(), 1);
    // Once created, the name stays taken.
    let third = h.create(spec(InitialState::Created)).await.unwrap_err();
    assert_eq!(third.code, ErrorCode::Conflict);
    assert_eq!(s.kernel.launches(), 1);
}

#[tokio::test]
async fn a_name_is_reserved_before_the_slow_work_and_freed_on_failure() {
    let s = setup_ok();
    std::fs::create_dir_all(&s.cfg.state_dir).unwrap();
    let (events, _) = broadcast::channel(4);
    let journal = store::start_writer(s.cfg.clone(), events);
    let loaded = Loaded {
        records: BTreeMap::new(),
        floor: 1,
    };
    let mut c = Containers::new(loaded, journal);
    let (id, floor) = c.reserve(Some("web".into())).unwrap();
    floor.wait().await.unwrap();
    assert_eq!(id, 1);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.cfg.state_dir.join("next_id.json")).unwrap())
            .unwrap();
    assert_eq!(
        on_disk["data"],
        1 + store::ID_BLOCK,
        "the id block is durable"
    );
    assert!(matches!(
        c.reserve(Some("web".into())),
        Err(ContainerError::NameTaken(n)) if n == "web"
    ));
    assert!(c.find(&Selector::Name("web".into())).is_err(), "invisible");
    let (other, _) = c.reserve(None).unwrap();
    assert_eq!(other, 2);
    c.unreserve(id);
    let (again, _) = c.reserve(Some("web".into())).unwrap();
    assert_eq!(again, 3, "ids are never reused");
}

#[tokio::test]
async fn the_writer_keeps_the_order_of_the_steps() {
    let s = setup_ok();
    let rec = record(&s, 1, ContainerState::Running, None, None);
    let (events, mut rx) = broadcast::channel(4);
    let journal = store::start_writer(s.cfg.clone(), events);
    let mut newer = rec.clone();
    newer.info.state = ContainerState::Exited;
    let first = journal.commit(
        vec![Op::Save(Box::new(rec.clone()))],
        vec![engine::event(&rec.info, false)],
    );
    let second = journal.commit(
        vec![Op::Save(Box::new(newer.clone()))],
        vec![engine::event(&newer.info, false)],
    );
    second.wait().await.unwrap();
    first.wait().await.unwrap();
    let file: imagebus_sys::state::StateFile<Record> =
        imagebus_sys::state::StateFile::new(store::record_path(&s.cfg, 1), store::RECORD_VERSION);
    assert_eq!(file.load().unwrap().unwrap(), newer);
    assert_eq!(rx.try_recv().unwrap().state, ContainerState::Running);
    assert_eq!(rx.try_recv().unwrap().state, ContainerState::Exited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_one_container_run_in_order_and_others_beside_them() {
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let a = h.create(named("a", InitialState::Created)).await.unwrap();
    let b = h.create(named("b", InitialState::Created)).await.unwrap();
    s.kernel.start_gate().close();
    let start_a = tokio::spawn({
        let h = h.clone();
        async move { h.start(Selector::Id(a.id)).await }
    });
    until("runc start", || s.kernel.start_gate().waiting() == 1).await;
    let stop_a = tokio::spawn({
        let h = h.clone();
        async move { h.stop(Selector::Id(a.id), None).await }
    });
    // Another container is not held up.
    let stopped_b = tokio::time::timeout(WAIT, h.stop(Selector::Id(b.id), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped_b.state, ContainerState::Exited);
    assert!(!s
        .kernel
        .calls()
        .iter()
        .any(|c| c.starts_with("kill unit-1")));
    assert!(!stop_a.is_finished());
    s.kernel.start_gate().open();
    let started = start_a.await.unwrap().unwrap();
    assert_eq!(started.state, ContainerState::Running);
    let stopped = tokio::time::timeout(WAIT, stop_a)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    let calls: Vec<String> = s
        .kernel
        .calls()
        .into_iter()
        .filter(|c| c.contains("unit-1"))
        .collect();
    assert_eq!(calls, ["launch unit-1", "start unit-1", "kill unit-1 15"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_and_start_of_one_container_never_leak_a_run_or_a_reference() {
    let s = setup_ok();
    let ids: Vec<u64> = (1..=8).collect();
    for &id in &ids {
        record(&s, id, ContainerState::Exited, None, None);
        s.mounts.holders.lock().unwrap().push(Holder::Container(id));
    }
    let (h, _task) = spawn(&s, 16).await;
    let mut calls = Vec::new();
    for &id in &ids {
        let (h1, h2) = (h.clone(), h.clone());
        calls.push(tokio::spawn(async move {
            let start = tokio::spawn(async move { h1.start(Selector::Id(id)).await });
            let delete = tokio::spawn(async move { h2.delete(Selector::Id(id), true).await });
            (start.await.unwrap(), delete.await.unwrap())
        }));
    }
    for c in calls {
        let (start, delete) = tokio::time::timeout(WAIT, c).await.unwrap().unwrap();
        delete.unwrap();
        if let Err(e) = start {
            assert_eq!(e.code, ErrorCode::NotFound, "{e}");
        }
    }
    assert!(h.list(Default::default()).await.unwrap().is_empty());
    assert!(s.kernel.live().is_empty(), "{:?}", s.kernel.live());
    assert_eq!(s.mounts.holders(), [Holder::User]);
    for &id in &ids {
        assert!(!s.cfg.container_dir(id).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_deadline_passes_in_the_queue_is_never_started() {
    let s = setup_ok();
    s.kernel.launch_gate().close();
    let (h, _task) = spawn(&s, 1).await;
    let first = tokio::spawn({
        let h = h.clone();
        async move { h.create(named("first", InitialState::Created)).await }
    });
    until("the first launch", || s.kernel.launch_gate().waiting() == 1).await;
    let holders = s.mounts.holders();
    let deadline = Instant::now() + Duration::from_millis(200);
    let err = imagebus_bus::deadline::scope(
        Some(deadline),
        h.create(named("late", InitialState::Created)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(Instant::now() < deadline + Duration::from_secs(2));
    assert_eq!(s.kernel.launches(), 1);
    assert_eq!(
        s.mounts.holders(),
        holders,
        "the mount module was not called"
    );
    s.kernel.launch_gate().open();
    first.await.unwrap().unwrap();
    // Its reservation was given up: the name is free.
    let late = h
        .create(named("late", InitialState::Created))
        .await
        .unwrap();
    assert_eq!(late.name.as_deref(), Some("late"));
    let names: Vec<_> = h
        .list(Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, [Some("first".to_string()), Some("late".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_command_in_flight() {
    let s = setup_ok();
    s.kernel.launch_gate().close();
    let (spawned, stop) = spawn_on(&s, s.mounts.clone(), 4).await;
    let (h, mut task) = (spawned.handle, spawned.task);
    let create = tokio::spawn({
        let h = h.clone();
        async move { h.create(spec(InitialState::Running)).await }
    });
    until("the launch", || s.kernel.launch_gate().waiting() == 1).await;
    stop.cancel();
    let refused = h
        .create(named("other", InitialState::Created))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable);
    assert!(
        h.list(Default::default()).await.unwrap().is_empty(),
        "reads still answer"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut task)
            .await
            .is_err(),
        "the actor waits for the create in flight"
    );
    s.kernel.launch_gate().open();
    let info = create.await.unwrap().unwrap();
    assert_eq!(info.state, ContainerState::Running);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the actor stops after the create")
        .expect("a clean stop");
    let saved: imagebus_sys::state::StateFile<Record> = imagebus_sys::state::StateFile::new(
        store::record_path(&s.cfg, info.id),
        store::RECORD_VERSION,
    );
    assert_eq!(
        saved.load().unwrap().unwrap().info.state,
        ContainerState::Running,
        "the create's record was written before its reply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_for_logs_answers_before_its_callers_deadline() {
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let info = h.create(spec(InitialState::Running)).await.unwrap();
    let req = LogsRequest {
        offset: Some(0),
        wait_ms: Some(60_000),
        ..LogsRequest::default()
    };
    let asked = Instant::now();
    let caller_deadline = asked + Duration::from_millis(1_500);
    let chunk = tokio::time::timeout(
        Duration::from_secs(10),
        imagebus_bus::deadline::scope(Some(caller_deadline), h.logs(Selector::Id(info.id), req)),
    )
    .await
    .expect("a 60 s long poll outlived its caller's 1.5 s deadline")
    .unwrap();
    // Nothing was written: the poll waited, then answered ahead of the caller's deadline.
    assert!(chunk.data.is_empty() && chunk.running);
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(1_000),
        "answered after {took:?}"
    );
    assert!(
        took < Duration::from_millis(1_500),
        "answered after {took:?}"
    );
    h.delete(Selector::Id(info.id), true).await.unwrap();
}

/// An RBD attachment inline at the bottom of an overlay chain, with a real-looking key.
fn rbd_chain(key: &str) -> MountRef {
    use imagebus_schema::attach::{AttachRef, AttachSource, AttachSpec, RbdSource, Secret};
    use imagebus_schema::mount::{ImageMount, OverlayMount};
    let image = MountSpec {
        name: None,
        source: MountSource::Image(ImageMount {
            attach: AttachRef::Inline(Box::new(AttachSpec {
                name: None,
                source: AttachSource::Rbd(RbdSource {
                    monitors: vec!["127.0.0.1".into()],
                    pool: "rbd".into(),
                    image: "root".into(),
                    snapshot: None,
                    namespace: None,
                    user: "admin".into(),
                    secret: Secret::new(key),
                    read_only: true,
                    shared: false,
                }),
            })),
            fs_type: None,
            options: vec![],
            read_only: true,
        }),
    };
    MountRef::Inline(Box::new(MountSpec {
        name: None,
        source: MountSource::Overlay(OverlayMount {
            lowers: vec![MountRef::Inline(Box::new(image))],
            persist_dir: None,
        }),
    }))
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{p:?}: {e}"))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_rbd_key_is_never_returned_nor_stored_and_specs_are_private() {
    const KEY: &str = "AQBzA4VlAAAAABAAsecretsecretsecretsecret==";
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let mut events = h.subscribe();
    let created = h
        .create(ContainerSpec {
            mount: rbd_chain(KEY),
            env: vec!["TOKEN=hunter2".into()],
            ..named("secretive", InitialState::Running)
        })
        .await
        .unwrap();
    let get = h.get(Selector::Id(created.id)).await.unwrap();
    let list = h.list(Default::default()).await.unwrap();
    for (what, text) in [
        ("Create reply", serde_json::to_string(&created).unwrap()),
        ("Get reply", serde_json::to_string(&get).unwrap()),
        ("List reply", serde_json::to_string(&list).unwrap()),
    ] {
        assert!(!text.contains(KEY), "{what} carries the key: {text}");
        assert!(text.contains("<redacted>"), "{what}: {text}");
        assert!(text.contains("hunter2"), "{what} keeps the env");
    }
    while let Some(Some(ev)) = events.next().now_or_never() {
        assert!(!format!("{ev:?}").contains(KEY));
    }
    let dir = s.cfg.container_dir(created.id);
    let record = std::fs::read_to_string(dir.join("record.json")).unwrap();
    assert!(!record.contains(KEY), "record.json stores the key");
    // Files holding a spec or an environment: 0600 under 0700 directories.
    for d in [
        s.cfg.state_dir.clone(),
        dir.clone(),
        dir.join("bundle"),
        s.cfg.run_dir.clone(),
        s.cfg.run_files_dir(created.id),
    ] {
        assert_eq!(mode(&d), 0o700, "{d:?}");
    }
    for f in [dir.join("record.json"), dir.join("bundle/config.json")] {
        assert_eq!(mode(&f), 0o600, "{f:?}");
    }
}

#[tokio::test]
async fn a_record_stored_with_a_key_is_rewritten_without_it_at_start() {
    const KEY: &str = "AQBzA4VlAAAAABAAoldoldoldoldoldoldold==";
    let s = setup_ok();
    let mut rec = record(&s, 9, ContainerState::Exited, None, None);
    rec.info.spec.mount = rbd_chain(KEY);
    let path = s.cfg.container_dir(9).join("record.json");
    save_record(&path, &rec).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains(KEY));
    let (h, _task) = spawn(&s, 4).await;
    let got = serde_json::to_string(&h.get(Selector::Id(9)).await.unwrap()).unwrap();
    assert!(!got.contains(KEY), "{got}");
    assert!(!std::fs::read_to_string(&path).unwrap().contains(KEY));
}

/// Issue 10, defect 8: a `Stop` with a huge timeout on an init that ignores TERM answers
/// `Timeout` before its caller's deadline (the container stays `stopping`); a later stop
/// with a short timeout, and a forced delete, kill it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_stopping_for_ever_is_killed_by_a_shorter_stop_or_a_forced_delete() {
    let s = setup_ok();
    s.kernel.ignore_signal(15);
    let (h, _task) = spawn(&s, 4).await;
    let long = |name: &str| ContainerSpec {
        stop_timeout_ms: Some(3_600_000),
        ..named(name, InitialState::Running)
    };
    let a = h.create(long("a")).await.unwrap();
    let b = h.create(long("b")).await.unwrap();
    for c in [&a, &b] {
        let asked = Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            imagebus_bus::deadline::scope(
                Some(asked + Duration::from_millis(1_000)),
                h.stop(Selector::Id(c.id), Some(u64::MAX)),
            ),
        )
        .await
        .expect("a Stop held its caller past its 1 s deadline")
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::Timeout, "{err}");
        assert!(err.message.contains("still stopping"), "{err}");
        assert!(asked.elapsed() < Duration::from_millis(1_000));
        let info = h.get(Selector::Id(c.id)).await.unwrap();
        assert_eq!(info.state, ContainerState::Stopping);
    }
    let kill = |c: &ContainerInfo| format!("kill {} 9", c.runtime_id);
    assert!(!s.kernel.calls().contains(&kill(&a)));
    // A later stop with a short timeout brings the SIGKILL forward.
    let asked = Instant::now();
    let info = tokio::time::timeout(
        Duration::from_secs(5),
        imagebus_bus::deadline::scope(
            Some(asked + Duration::from_secs(20)),
            h.stop(Selector::Id(a.id), Some(50)),
        ),
    )
    .await
    .expect("a shorter stop did not escalate")
    .unwrap();
    assert_eq!(info.state, ContainerState::Exited);
    assert_eq!(info.exit_signal, Some(9));
    assert!(s.kernel.calls().contains(&kill(&a)));
    // A forced delete kills a stopping container at once (not after its 1 h grace).
    tokio::time::timeout(
        Duration::from_secs(5),
        imagebus_bus::deadline::scope(
            Some(Instant::now() + Duration::from_secs(20)),
            h.delete(Selector::Id(b.id), true),
        ),
    )
    .await
    .expect("a forced delete did not escalate")
    .unwrap();
    assert!(s.kernel.calls().contains(&kill(&b)));
    assert_eq!(
        h.get(Selector::Id(b.id)).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    // A forced delete of a running container whose grace outlasts the caller's deadline
    // kills it in time to finish the delete.
    let c = h.create(long("c")).await.unwrap();
    let asked = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(10),
        imagebus_bus::deadline::scope(
            // A little beyond the forced delete's margin (`stop::FORCE_MARGIN`, 3 s).
            Some(asked + Duration::from_millis(4_500)),
            h.delete(Selector::Id(c.id), true),
        ),
    )
    .await
    .expect("a forced delete held its caller past its deadline")
    .unwrap();
    assert!(s.kernel.calls().contains(&kill(&c)));
    h.delete(Selector::Id(a.id), false).await.unwrap();
}

/// Issue 11: `Delete(force)` of a running container is `docker rm -f`: SIGKILL at once,
/// never the stop signal and its grace period (10 s on an init that ignores TERM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_delete_of_a_running_container_kills_it_at_once() {
    let s = setup_ok();
    s.kernel.ignore_signal(15);
    let (h, _task) = spawn(&s, 4).await;
    let c = h
        .create(named("stubborn", InitialState::Running))
        .await
        .unwrap();
    let asked = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), h.delete(Selector::Id(c.id), true))
        .await
        .expect("a forced delete waited for a grace period")
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let calls = s.kernel.calls();
    assert!(
        calls.contains(&format!("kill {} 9", c.runtime_id)),
        "{calls:?}"
    );
    assert!(
        !calls.contains(&format!("kill {} 15", c.runtime_id)),
        "{calls:?}"
    );
    assert_eq!(
        h.get(Selector::Id(c.id)).await.unwrap_err().code,
        ErrorCode::NotFound
    );
}

/// Issue 10, defect 10: NUL bytes in a create's argv and in an exec's argv, env or cwd are
/// `InvalidArgument`, answered before anything runs (no mount, no runtime call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_are_invalid_before_anything_runs() {
    use imagebus_schema::container::ExecSpec;
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let creates = [
        ContainerSpec {
            command: CommandLine::Argv(vec!["/bin/init".into(), "a\0b".into()]),
            ..spec(InitialState::Running)
        },
        ContainerSpec {
            command: CommandLine::Line("/bin/init a\0b".into()),
            ..spec(InitialState::Running)
        },
        ContainerSpec {
            env: vec!["A=\0".into()],
            ..spec(InitialState::Running)
        },
        ContainerSpec {
            working_dir: Some("/tmp\0".into()),
            ..spec(InitialState::Running)
        },
    ];
    for c in creates {
        let err = h.create(c).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
        assert!(err.message.contains("NUL"), "{err}");
    }
    assert_eq!(s.kernel.launches(), 0, "nothing reached the runtime");
    assert_eq!(
        s.mounts.holders.lock().unwrap().len(),
        1,
        "no mount reference"
    );
    let info = h.create(spec(InitialState::Running)).await.unwrap();
    let exec = |command: CommandLine, env: Vec<String>, cwd: Option<&str>| ExecSpec {
        command,
        env,
        working_dir: cwd.map(String::from),
        user: None,
        timeout_ms: None,
    };
    let calls = s.kernel.calls().len();
    for e in [
        exec(CommandLine::Argv(vec!["ls\0".into()]), vec![], None),
        exec(CommandLine::Line("ls".into()), vec!["X=a\0b".into()], None),
        exec(CommandLine::Line("ls".into()), vec![], Some("/\0")),
    ] {
        let err = h.exec(Selector::Id(info.id), e).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
        assert!(err.message.contains("NUL"), "{err}");
    }
    assert_eq!(s.kernel.calls().len(), calls);
    h.delete(Selector::Id(info.id), true).await.unwrap();
}

/// Issue 10, defect 10: a name of 1 MB is not echoed whole (it made a 5 MB reply).
#[tokio::test]
async fn errors_do_not_echo_a_huge_name() {
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let name = "n".repeat(1 << 20);
    let err = h.get(Selector::Name(name.clone())).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.len() < 512, "{} bytes", err.message.len());
    let err = h
        .create(named(&name, InitialState::Created))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert!(err.message.len() < 512, "{} bytes", err.message.len());
}

/// docs/container.md's `Files:` paragraph names every file a container has, by directory;
/// this compares it with the paths the engine uses, so moving a file without the doc (or
/// the other way round) fails.
#[test]
fn container_md_names_every_file_of_a_container() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/container.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc.find("\nFiles: ").expect("the Files: paragraph");
    let para = &doc[start..];
    let para = &para[..para.find("\n\n").unwrap_or(para.len())];
    // `<dir>/<id>/{a, b}` and `<dir>/x` become one path each.
    let mut documented = BTreeSet::new();
    for quoted in para.split('`').skip(1).step_by(2) {
        if !quoted.contains("_dir>") {
            continue;
        }
        match quoted.split_once('{') {
            Some((prefix, rest)) => {
                for item in rest.trim_end_matches('}').split(',') {
                    documented.insert(format!("{prefix}{}", item.trim()));
                }
            }
            None => {
                documented.insert(quoted.to_string());
            }
        }
    }
    let mut cfg = ContainerConfig::new("/S", "/R", "/L");
    cfg.instance = "I".into();
    let f = engine::Files::of(&cfg, 7);
    let doc_form = |p: &std::path::Path| {
        p.display()
            .to_string()
            .replace("/S/", "<state_dir>/")
            .replace("/R/", "<run_dir>/")
            .replace("/L/", "<log_dir>/")
            .replace("I-7", "<rid>")
            .replace("/7/", "/<id>/")
    };
    let code: BTreeSet<String> = [
        store::record_path(&cfg, 7),
        f.bundle.join("config.json"),
        f.pid,
        f.exit,
        f.runtime_log,
        f.monitor_log,
        imagebus_sys::logfile::rotated(&f.log, 1),
        f.log,
        f.stdout_spool,
        f.stderr_spool,
        cfg.state_dir.join("next_id.json"),
        cfg.runtime_root().join(""),
    ]
    .iter()
    .map(|p| doc_form(p))
    .collect();
    assert_eq!(
        documented, code,
        "docs/container.md's Files: paragraph vs the engine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_answers_for_creates_in_flight_and_live_records_and_owners_release_their_own() {
    // A create that fails after its mount was made gives its reservation up before it
    // releases the mount, so a mount module that asks `holds` lets the release through.
    let s = setup(vec![]);
    let (h, _task) = spawn(&s, 4).await;
    *s.mounts.owner.lock().unwrap() = Some(h.clone());
    let err = h.create(spec(InitialState::Running)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal, "{err}");
    assert_eq!(
        s.mounts.holders(),
        [Holder::User],
        "the release was refused"
    );
    assert!(!h.holds(1, 7).await.unwrap());

    let s = setup_ok();
    s.mounts.held.store(true, Ordering::SeqCst);
    let (h, _task) = spawn(&s, 4).await;
    *s.mounts.owner.lock().unwrap() = Some(h.clone());
    let slow = tokio::spawn({
        let (h, spec) = (h.clone(), inline(&s, "slow"));
        async move { h.create(spec).await }
    });
    until("the inline mount", || {
        s.mounts.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    // A create in flight holds its mount (not recorded yet); answered while it waits.
    assert!(h.holds(1, 7).await.unwrap());
    assert!(!h.holds(2, 7).await.unwrap());
    s.mounts.release.notify_one();
    let info = tokio::time::timeout(WAIT, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(info.mount, 7);
    assert!(h.holds(info.id, 7).await.unwrap());
    assert!(
        !h.holds(info.id, 8).await.unwrap(),
        "it stands on mount 7 only"
    );
    assert!(!h.holds(999_999, 7).await.unwrap());
    // A forged release is refused while the container lives.
    let err = s
        .mounts
        .release(7, Holder::Container(info.id))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    // Its own delete marks it first, so its release goes through.
    h.delete(Selector::Id(info.id), true).await.unwrap();
    assert_eq!(s.mounts.holders(), [Holder::User]);
    assert!(!h.holds(info.id, 7).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_holds_refused_before_the_actor_serves_are_released_once_it_does() {
    let s = setup_ok();
    // A hold of a container that has no record (a create cut short by a crash).
    s.mounts.holders.lock().unwrap().push(Holder::Container(42));
    s.mounts.strict.store(true, Ordering::SeqCst);
    let (spawned, _stop) = spawn_on(&s, s.mounts.clone(), 4).await;
    assert_eq!(
        spawned.report.stale_holds_released, 0,
        "refused: not serving yet"
    );
    assert_eq!(s.mounts.holders(), [Holder::User, Holder::Container(42)]);
    // Now the mount module can ask (the daemon put the handle in its slot).
    *s.mounts.owner.lock().unwrap() = Some(spawned.handle.clone());
    until("the deferred release", || {
        s.mounts.holders() == [Holder::User]
    })
    .await;
}
