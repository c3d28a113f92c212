//! Unit tests of the attach actor against the recording doubles of `imagebus-sys`, some of
//! them wrapped in gates that hold a call in the "kernel" until the test opens them.

use crate::actor::{spawn, AttachHandle};
use crate::error::AttachError;
use crate::{AttachConfig, AttachSys, ReconcileReport};
use imagebus_bus::ErrorCode;
use imagebus_host::Limits;
use imagebus_schema::attach::{
    AttachModule, AttachSource, AttachSpec, LocalSource, LoopSource, RbdSource, Secret,
};
use imagebus_schema::{Holder, Selector};
use imagebus_sys::blockdev::{FileKind, FileStat, Files};
use imagebus_sys::cmd::{CommandCall, CommandOutput, Runner};
use imagebus_sys::fake::*;
use imagebus_sys::loopdev::{LoopAttach, LoopDevice, LoopDevices};
use imagebus_sys::rbd::{RbdBus, RbdDevice, RbdMap};
use imagebus_sys::SysResult;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "AQBKjwZrPzNcLRAAvbTI81uQSAgxZmzSLX8jOg==";
/// The longest any wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long a command that must wait is watched to be sure it waits.
const HELD: Duration = Duration::from_millis(200);

/// Holds the calls that pass it while closed (each at most [`WAIT`]), and counts them.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<(bool, usize)>, Condvar)>);

impl Gate {
    fn close(&self) {
        self.0 .0.lock().unwrap().0 = true;
    }

    fn open(&self) {
        self.0 .0.lock().unwrap().0 = false;
        self.0 .1.notify_all();
    }

    /// Called by a fake on the blocking pool.
    fn pass(&self) {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut g = m.lock().unwrap();
        g.1 += 1;
        while g.0 && Instant::now() < deadline {
            g = cv.wait_timeout(g, Duration::from_millis(50)).unwrap().0;
        }
    }

    /// Waits until `n` calls have reached the gate.
    async fn reached(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.0 .0.lock().unwrap().1 < n {
            assert!(Instant::now() < deadline, "no call reached the gate");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Loop devices whose attach and detach pass gates.
struct GatedLoops {
    inner: FakeLoopDevices,
    attach: Gate,
    detach: Gate,
}

impl LoopDevices for GatedLoops {
    fn attach(&self, req: &LoopAttach) -> SysResult<LoopDevice> {
        self.attach.pass();
        self.inner.attach(req)
    }
    fn detach(&self, number: u32) -> SysResult<()> {
        self.detach.pass();
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

/// krbd whose map and unmap pass gates (a hanging Ceph monitor).
struct GatedRbd {
    inner: FakeRbdBus,
    map: Gate,
    unmap: Gate,
}

impl RbdBus for GatedRbd {
    fn available(&self) -> bool {
        self.inner.available()
    }
    fn map(&self, req: &RbdMap, secret: &str) -> SysResult<RbdDevice> {
        self.map.pass();
        self.inner.map(req, secret)
    }
    fn unmap(&self, id: u32, force: bool) -> SysResult<()> {
        self.unmap.pass();
        self.inner.unmap(id, force)
    }
    fn list(&self) -> SysResult<Vec<RbdDevice>> {
        self.inner.list()
    }
}

/// A runner whose spawned rbd-fuse "exposes" its image: the process, the FUSE mount and the
/// image file appear in the fakes.
struct FuseRunner {
    inner: FakeRunner,
    procs: FakeProcesses,
    fuse: FakeFuseMounts,
    files: FakeFiles,
}

impl Runner for FuseRunner {
    fn run(&self, call: &CommandCall, timeout: Duration) -> SysResult<CommandOutput> {
        self.inner.run(call, timeout)
    }
    fn spawn(&self, call: &CommandCall) -> SysResult<u32> {
        let pid = self.inner.spawn(call)?;
        let mnt = PathBuf::from(call.args.last().cloned().unwrap_or_default());
        let image = call
            .args
            .iter()
            .skip_while(|a| *a != "-r")
            .nth(1)
            .cloned()
            .unwrap_or_default();
        let cmdline: Vec<&str> = std::iter::once("/usr/bin/rbd-fuse")
            .chain(call.args.iter().map(String::as_str))
            .collect();
        self.procs.add(pid, &cmdline);
        self.fuse.add(&mnt);
        self.files
            .add(mnt.join(image), FileKind::Regular, 1000 + u64::from(pid));
        Ok(pid)
    }
}

/// [`FakeFiles`] that panics when asked about `/img/boom`.
struct PanickingFiles(FakeFiles);

impl Files for PanickingFiles {
    fn stat(&self, path: &Path) -> SysResult<Option<FileStat>> {
        assert_ne!(path, Path::new("/img/boom"), "stat of /img/boom panics");
        self.0.stat(path)
    }
}

struct World {
    dir: tempfile::TempDir,
    loops: FakeLoopDevices,
    rbd: FakeRbdBus,
    files: FakeFiles,
    runner: FakeRunner,
    procs: FakeProcesses,
    fuse: FakeFuseMounts,
    loop_attach: Gate,
    loop_detach: Gate,
    rbd_map: Gate,
    rbd_unmap: Gate,
}

/// A running actor.
struct Running {
    handle: AttachHandle,
    report: ReconcileReport,
    task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Running {
    /// Stops the actor and waits for its task.
    async fn shut(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the actor did not stop")
            .expect("the actor ended as a panic");
    }
}

fn limits(max: usize) -> Limits {
    Limits {
        max_mutations: max,
        shutdown_timeout: WAIT,
    }
}

impl World {
    fn new(rbd: FakeRbdBus) -> Self {
        let files = FakeFiles::default();
        files.add("/img/a.sqsh", FileKind::Regular, 11);
        files.add("/img/b.sqsh", FileKind::Regular, 12);
        files.add("/img/boom", FileKind::Regular, 16);
        files.add("/dev/vdb", FileKind::Block, 13);
        files.add("/dev/tty0", FileKind::Char, 14);
        files.add("/img", FileKind::Directory, 15);
        Self {
            dir: tempfile::tempdir().unwrap(),
            loops: FakeLoopDevices::default(),
            rbd,
            files,
            runner: FakeRunner::default(),
            procs: FakeProcesses::default(),
            fuse: FakeFuseMounts::default(),
            loop_attach: Gate::default(),
            loop_detach: Gate::default(),
            rbd_map: Gate::default(),
            rbd_unmap: Gate::default(),
        }
    }

    fn sys(&self) -> AttachSys {
        AttachSys {
            loops: Arc::new(GatedLoops {
                inner: self.loops.clone(),
                attach: self.loop_attach.clone(),
                detach: self.loop_detach.clone(),
            }),
            rbd: Arc::new(GatedRbd {
                inner: self.rbd.clone(),
                map: self.rbd_map.clone(),
                unmap: self.rbd_unmap.clone(),
            }),
            files: Arc::new(PanickingFiles(self.files.clone())),
            runner: Arc::new(FuseRunner {
                inner: self.runner.clone(),
                procs: self.procs.clone(),
                fuse: self.fuse.clone(),
                files: self.files.clone(),
            }),
            procs: Arc::new(self.procs.clone()),
            fuse: Arc::new(self.fuse.clone()),
        }
    }

    fn cfg(&self) -> AttachConfig {
        AttachConfig {
            state_dir: self.dir.path().join("state"),
            run_dir: self.dir.path().join("run"),
        }
    }

    async fn try_start(&self, limits: Limits) -> Result<Running, AttachError> {
        let stop = CancellationToken::new();
        let s = spawn(self.cfg(), self.sys(), stop.clone(), limits).await?;
        Ok(Running {
            handle: s.handle,
            report: s.report,
            task: s.task,
            stop,
        })
    }

    async fn start(&self) -> Running {
        self.try_start(limits(8)).await.unwrap()
    }

    fn state_text(&self) -> String {
        std::fs::read_to_string(self.cfg().state_dir.join("attach.json")).unwrap()
    }
}

fn loop_spec(name: Option<&str>, path: &str) -> AttachSpec {
    AttachSpec {
        name: name.map(String::from),
        source: AttachSource::Loop(LoopSource {
            path: path.into(),
            read_only: true,
        }),
    }
}

fn rbd_spec(shared: bool) -> AttachSpec {
    rbd_image("img", shared)
}

fn rbd_image(image: &str, shared: bool) -> AttachSpec {
    AttachSpec {
        name: None,
        source: AttachSource::Rbd(RbdSource {
            monitors: vec!["127.0.0.1:16789".into()],
            pool: "rbd".into(),
            image: image.into(),
            snapshot: None,
            namespace: None,
            user: "imagebus-rw".into(),
            secret: Secret::new(SECRET),
            read_only: true,
            shared,
        }),
    }
}

/// Runs a command in the background.
fn bg<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> JoinHandle<T> {
    tokio::spawn(fut)
}

/// Waits (at most [`WAIT`]) for a background command.
async fn done<T>(call: JoinHandle<T>) -> T {
    tokio::time::timeout(WAIT, call)
        .await
        .expect("the command hung")
        .unwrap()
}

/// Asserts that a background command is still waiting after [`HELD`].
async fn still_waiting<T>(call: &mut JoinHandle<T>) {
    assert!(
        tokio::time::timeout(HELD, call).await.is_err(),
        "the command did not wait"
    );
}

/// Asserts that `fut` answers quickly (it does not wait for a job in flight).
async fn quick<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("a command waited for an unrelated one")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loop_attach_and_detach() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let a = &r.handle;
    let info = a
        .attach_typed(loop_spec(Some("base"), "/img/a.sqsh"), None)
        .await
        .unwrap();
    assert_eq!(info.driver, "loop");
    assert_eq!(info.holders, vec![Holder::User]);
    assert!(info.read_only);
    let bound = w.loops.bound();
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].backing_file, PathBuf::from("/img/a.sqsh"));
    assert!(!bound[0].autoclear);
    assert_eq!(info.device, bound[0].device);
    assert_eq!(
        a.get_typed(Selector::Name("base".into())).await.unwrap(),
        info
    );
    a.detach_typed(Selector::Name("base".into()), false)
        .await
        .unwrap();
    assert!(w.loops.bound().is_empty());
    assert!(matches!(
        a.get_typed(Selector::Id(info.id)).await,
        Err(AttachError::NotFound(_))
    ));
    // Ids are never reused, also across restarts.
    let next = a
        .attach_typed(loop_spec(None, "/img/a.sqsh"), None)
        .await
        .unwrap();
    assert_eq!(next.id, info.id + 1);
    r.shut().await;
    let r = w.start().await;
    assert_eq!(
        r.handle
            .attach_typed(loop_spec(None, "/img/b.sqsh"), None)
            .await
            .unwrap()
            .id,
        info.id + 2
    );
}

/// Issue 10, defect 10: a NUL byte in a path, and a file of /proc or /sys as a loop
/// image, were internal errors from the kernel; they are invalid input, refused before
/// anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nul_bytes_and_pseudo_files_are_invalid_before_anything_runs() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let a = &r.handle;
    let local = |p: &str| AttachSpec {
        name: None,
        source: AttachSource::Local(LocalSource {
            path: p.into(),
            read_only: true,
        }),
    };
    for (spec, what) in [
        (loop_spec(None, "/img/a\0.sqsh"), "NUL"),
        (local("/dev/sd\0a"), "NUL"),
        (loop_spec(None, "/proc/self/mem"), "pseudo filesystem"),
        (loop_spec(None, "/sys/kernel/notes"), "pseudo filesystem"),
    ] {
        let err = a.attach_typed(spec, None).await.unwrap_err();
        assert!(matches!(err, AttachError::Invalid(_)), "{err}");
        assert!(err.to_string().contains(what), "{err} lacks {what}");
    }
    assert!(w.loops.attaches().is_empty(), "nothing reached the kernel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_changes_nothing() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let a = &r.handle;
    for (spec, what) in [
        (loop_spec(None, "/img/missing"), "does not exist"),
        (loop_spec(None, "/img"), "not a regular file"),
        (loop_spec(None, "img/a.sqsh"), "absolute"),
        (loop_spec(None, "/img/../img/a.sqsh"), ".."),
        (loop_spec(Some("12"), "/img/a.sqsh"), "digits"),
    ] {
        let err = a.attach_typed(spec, None).await.unwrap_err();
        assert!(matches!(err, AttachError::Invalid(_)), "{err}");
        assert!(err.to_string().contains(what), "{err} lacks {what}");
    }
    let local = |p: &str| AttachSpec {
        name: None,
        source: AttachSource::Local(LocalSource {
            path: p.into(),
            read_only: false,
        }),
    };
    let err = a.attach_typed(local("/dev/tty0"), None).await.unwrap_err();
    assert!(err.to_string().contains("character device"), "{err}");
    assert!(matches!(
        a.attach_typed(local("/dev/nope"), None).await,
        Err(AttachError::Invalid(_))
    ));
    assert!(w.loops.bound().is_empty());
    assert!(a.list_typed().await.unwrap().is_empty());
    let ok = a.attach_typed(local("/dev/vdb"), None).await.unwrap();
    assert_eq!(
        (ok.driver.as_str(), ok.device.clone()),
        ("local", PathBuf::from("/dev/vdb"))
    );
    a.detach_typed(Selector::Id(ok.id), false).await.unwrap();
    assert!(w.loops.attaches().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_are_unique() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let a = &r.handle;
    let first = a
        .attach_typed(loop_spec(Some("web"), "/img/a.sqsh"), None)
        .await
        .unwrap();
    let err = a
        .attach_typed(loop_spec(Some("web"), "/img/b.sqsh"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AttachError::NameTaken { id, .. } if id == first.id),
        "{err}"
    );
    assert_eq!(
        w.loops.bound().len(),
        1,
        "a conflicting attach must not bind a device"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holders_conflict_force_and_idempotence() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let a = &r.handle;
    let info = a
        .attach_typed(loop_spec(None, "/img/a.sqsh"), None)
        .await
        .unwrap();
    let id = Selector::Id(info.id);
    a.acquire_typed(id.clone(), Holder::Mount(4)).await.unwrap();
    let again = a.acquire_typed(id.clone(), Holder::Mount(4)).await.unwrap();
    assert_eq!(again.holders, vec![Holder::User, Holder::Mount(4)]);
    let err = a.detach_typed(id.clone(), false).await.unwrap_err();
    assert!(matches!(err, AttachError::InUse { .. }), "{err}");
    assert_eq!(
        a.get_typed(id.clone()).await.unwrap().holders.len(),
        2,
        "a refused detach changes nothing"
    );
    a.release_typed(info.id, Holder::Mount(4)).await.unwrap();
    a.release_typed(info.id, Holder::Mount(4)).await.unwrap();
    a.release_typed(999, Holder::Mount(4)).await.unwrap();
    assert_eq!(
        a.get_typed(id.clone()).await.unwrap().holders,
        vec![Holder::User]
    );
    a.acquire_typed(id.clone(), Holder::Mount(5)).await.unwrap();
    a.detach_typed(id.clone(), true).await.unwrap();
    assert!(w.loops.bound().is_empty());
    a.release_typed(info.id, Holder::Mount(5)).await.unwrap();

    // Created by a mount: released by it, collected at zero.
    let owned = a
        .attach_typed(loop_spec(None, "/img/b.sqsh"), Some(Holder::Mount(7)))
        .await
        .unwrap();
    assert_eq!(owned.holders, vec![Holder::Mount(7)]);
    assert!(matches!(
        a.detach_typed(Selector::Id(owned.id), false).await,
        Err(AttachError::InUse { .. })
    ));
    a.release_typed(owned.id, Holder::Mount(7)).await.unwrap();
    assert!(a.list_typed().await.unwrap().is_empty());
    assert!(w.loops.bound().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_reconciles_vanished_and_orphans() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let a = &r.handle;
    let keep = a
        .attach_typed(loop_spec(Some("keep"), "/img/a.sqsh"), None)
        .await
        .unwrap();
    let gone = a
        .attach_typed(loop_spec(None, "/img/b.sqsh"), None)
        .await
        .unwrap();
    let tag = a.engine.ctx.loop_tag(99);
    r.shut().await;
    let gone_dev = w
        .loops
        .bound()
        .into_iter()
        .find(|d| d.device == gone.device)
        .unwrap();
    w.loops.vanish(gone_dev.number);
    // An attach that crashed after binding, before recording: tagged, unknown.
    w.loops.insert(LoopDevice {
        number: 40,
        device: "/dev/loop40".into(),
        backing_file: "/img/b.sqsh".into(),
        inode: 12,
        dev: 1,
        read_only: true,
        autoclear: false,
        tag,
    });
    // Somebody else's loop device: never touched.
    w.loops.insert(LoopDevice {
        number: 41,
        device: "/dev/loop41".into(),
        backing_file: "/other".into(),
        inode: 1,
        dev: 1,
        read_only: true,
        autoclear: false,
        tag: "/other".into(),
    });
    let r = w.start().await;
    let report = &r.report;
    assert_eq!(report.kept, vec![keep.id]);
    assert_eq!(report.vanished, vec![gone.id]);
    assert_eq!(report.cleaned.len(), 1, "{report}");
    assert!(report.cleaned[0].contains("/dev/loop40"), "{report}");
    assert_eq!(r.handle.list_typed().await.unwrap().len(), 1);
    let numbers: Vec<u32> = w.loops.bound().iter().map(|d| d.number).collect();
    assert!(
        numbers.contains(&41) && !numbers.contains(&40),
        "{numbers:?}"
    );
    // A second start finds nothing to do and maps nothing twice.
    r.shut().await;
    let attaches = w.loops.attaches().len();
    let r = w.start().await;
    assert!(r.report.is_clean(), "{}", r.report);
    assert_eq!(w.loops.attaches().len(), attaches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn krbd_secret_goes_to_the_kernel_only() {
    let w = World::new(FakeRbdBus::available());
    let r = w.start().await;
    let a = &r.handle;
    let info = a.attach_typed(rbd_spec(false), None).await.unwrap();
    assert_eq!(info.driver, "krbd");
    assert_eq!(info.device, PathBuf::from("/dev/rbd0"));
    assert_eq!(w.rbd.secrets(), vec![SECRET.to_string()]);
    let map = &w.rbd.maps()[0];
    assert!(map.read_only && map.key_name.starts_with("imagebus-attach."));
    let AttachSource::Rbd(src) = &info.source else {
        panic!("not rbd")
    };
    assert_eq!(src.secret.expose(), Secret::REDACTED);
    let listed = format!("{:?}", a.list_typed().await.unwrap());
    assert!(!listed.contains(SECRET));
    assert!(
        !w.state_text().contains(SECRET),
        "secret persisted in plain state"
    );
    a.detach_typed(Selector::Id(info.id), false).await.unwrap();
    assert_eq!(w.rbd.unmaps(), vec![(0, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rbd_twice_is_conflict_unless_shared_read_only() {
    let w = World::new(FakeRbdBus::available());
    let r = w.start().await;
    let a = &r.handle;
    let base = a.attach_typed(rbd_spec(false), None).await.unwrap();
    let err = a.attach_typed(rbd_spec(false), None).await.unwrap_err();
    assert!(matches!(err, AttachError::AlreadyMapped { .. }), "{err}");
    let shared = a.attach_typed(rbd_spec(true), None).await.unwrap();
    assert_ne!(shared.id, base.id);
    assert_eq!(shared.device, base.device);
    assert_eq!(w.rbd.maps().len(), 1, "shared use maps nothing new");
    let base_now = a.get_typed(Selector::Id(base.id)).await.unwrap();
    assert!(base_now.holders.contains(&Holder::Attach(shared.id)));
    assert!(matches!(
        a.detach_typed(Selector::Id(base.id), false).await,
        Err(AttachError::InUse { .. })
    ));
    a.detach_typed(Selector::Id(shared.id), false)
        .await
        .unwrap();
    assert!(w.rbd.unmaps().is_empty());
    assert_eq!(
        a.get_typed(Selector::Id(base.id)).await.unwrap().holders,
        vec![Holder::User]
    );
    a.detach_typed(Selector::Id(base.id), false).await.unwrap();
    assert_eq!(w.rbd.unmaps().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn releasing_the_last_hold_of_a_shared_mapping_collects_it() {
    let w = World::new(FakeRbdBus::available());
    let r = w.start().await;
    let a = &r.handle;
    let base = a
        .attach_typed(rbd_spec(false), Some(Holder::Mount(1)))
        .await
        .unwrap();
    let shared = a.attach_typed(rbd_spec(true), None).await.unwrap();
    a.release_typed(base.id, Holder::Mount(1)).await.unwrap();
    assert_eq!(
        a.get_typed(Selector::Id(base.id)).await.unwrap().holders,
        vec![Holder::Attach(shared.id)]
    );
    a.detach_typed(Selector::Id(shared.id), false)
        .await
        .unwrap();
    assert!(a.list_typed().await.unwrap().is_empty());
    assert!(w.rbd.devices().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fuse_fallback_probe_errors_leave_nothing() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let a = &r.handle;
    for (code, check) in [
        (
            2,
            (|e: &AttachError| matches!(e, AttachError::ImageNotFound(_)))
                as fn(&AttachError) -> bool,
        ),
        (13, |e| matches!(e, AttachError::AccessDenied(_))),
        (110, |e| matches!(e, AttachError::Unavailable(_))),
    ] {
        w.runner.respond(CommandOutput {
            code: Some(code),
            ..Default::default()
        });
        let err = a.attach_typed(rbd_spec(false), None).await.unwrap_err();
        assert!(check(&err), "code {code}: {err}");
        let rbd_dir = w.cfg().rbd_dir();
        assert_eq!(
            std::fs::read_dir(&rbd_dir).unwrap().count(),
            0,
            "left files in {rbd_dir:?}"
        );
    }
    let mut snap = rbd_spec(false);
    if let AttachSource::Rbd(r) = &mut snap.source {
        r.snapshot = Some("s1".into());
    }
    let err = a.attach_typed(snap, None).await.unwrap_err();
    assert!(matches!(err, AttachError::Unsupported(_)), "{err}");
    let calls = w.runner.calls();
    assert_eq!(
        calls.len(),
        3,
        "one probe per attempt, none for the snapshot: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| c.program == "rbd"),
        "rbd-fuse must not start: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| !format!("{c:?}").contains(SECRET)),
        "secret on a command line"
    );
    assert!(a.list_typed().await.unwrap().is_empty());
    // Every failed RBD attach took its intent back out of the journal.
    assert_eq!(intents(&w), Vec::<u64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_state_version_is_a_typed_error() {
    let w = World::new(FakeRbdBus::default());
    w.start().await.shut().await;
    let path = w.cfg().state_dir.join("attach.json");
    let text = w
        .state_text()
        .replacen("\"version\": 1", "\"version\": 9", 1);
    std::fs::write(&path, text).unwrap();
    let err = w.try_start(limits(8)).await.err().expect("started");
    assert!(matches!(err, AttachError::State(_)), "{err}");
}

/// The journal on disk.
fn intents(w: &World) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(&w.state_text()).unwrap();
    serde_json::from_value(v["data"]["intents"].clone()).unwrap()
}

mod concurrency;
mod holders;
