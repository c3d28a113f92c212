//! Unit tests of the mount actor against trait doubles: a fake attach module, the
//! recording `FakeMounter` (which also serves the mount table) behind a gate that can hold
//! or slow its calls, and a fake superblock probe; directories are real, in a temp dir.

use crate::{spawn, Limits, MountConfig, MountHandle, MountSys, ReconcileReport};
use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_schema::attach::{
    AttachInfo, AttachModule, AttachRef, AttachSource, AttachSpec, LoopSource,
};
use imagebus_schema::mount::{
    BindMount, ImageMount, MountInfo, MountModule, MountRef, MountSource, MountSpec, OverlayMount,
};
use imagebus_schema::{Holder, Selector};
use imagebus_sys::fake::{FakeFsProbe, FakeMounter};
use imagebus_sys::fsdetect::FsType;
use imagebus_sys::mount::{MountCall, MountFlag, Mounter, Unmounted};
use imagebus_sys::paths::LinuxPaths;
use imagebus_sys::{SysError, SysResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a test waits for anything before failing.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct GateState {
    hold_mounts: bool,
    hold_unmounts: bool,
    /// The next held call, once let go, fails with `EINVAL` instead of running.
    fail_held: bool,
    /// Held calls that may pass while the gate keeps holding the others.
    let_go: usize,
    /// Calls that reached the gate while it held.
    entered: usize,
    /// Every unmount takes this long.
    unmount_delay: Duration,
}

/// A [`FakeMounter`] whose calls can be held (a job stays in flight "in the kernel") or
/// slowed; transparent by default.
#[derive(Debug, Clone, Default)]
struct GatedMounter {
    fake: FakeMounter,
    gate: Arc<(Mutex<GateState>, Condvar)>,
}

impl GatedMounter {
    fn with<R>(&self, f: impl FnOnce(&mut GateState) -> R) -> R {
        let r = f(&mut self.gate.0.lock().unwrap());
        self.gate.1.notify_all();
        r
    }
    fn hold_mounts(&self) {
        self.with(|g| g.hold_mounts = true);
    }
    fn hold_unmounts(&self) {
        self.with(|g| g.hold_unmounts = true);
    }
    /// Lets the held calls go (the first fails when `fail` is set).
    fn open(&self, fail: bool) {
        self.with(|g| {
            g.hold_mounts = false;
            g.hold_unmounts = false;
            g.fail_held = fail;
            g.let_go = 0;
        });
    }
    /// Lets one held call go; later ones are held again.
    fn let_one_go(&self) {
        self.with(|g| g.let_go += 1);
    }
    fn slow_unmounts(&self, delay: Duration) {
        self.with(|g| g.unmount_delay = delay);
    }
    fn entered(&self) -> usize {
        self.with(|g| g.entered)
    }
    /// Waits until `n` calls reached the gate.
    async fn wait_entered(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.entered() < n {
            assert!(Instant::now() < deadline, "no call reached the gate");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    /// Blocks (on the blocking pool) while `held` says so; `Err` when the held call is to fail.
    fn pass(&self, target: &Path, held: fn(&GateState) -> bool) -> SysResult<()> {
        let (lock, cv) = &*self.gate;
        let mut g = lock.lock().unwrap();
        if !held(&g) {
            return Ok(());
        }
        g.entered += 1;
        let deadline = Instant::now() + WAIT;
        while held(&g) && g.let_go == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "a held call was never let go");
            g = cv.wait_timeout(g, left).unwrap().0;
        }
        if held(&g) {
            g.let_go -= 1;
        }
        if std::mem::take(&mut g.fail_held) {
            return Err(SysError::io(
                "mount",
                target,
                std::io::Error::from_raw_os_error(22),
            ));
        }
        Ok(())
    }
}

impl Mounter for GatedMounter {
    fn mount(&self, call: &MountCall) -> SysResult<()> {
        self.pass(&call.target, |g| g.hold_mounts)?;
        self.fake.mount(call)
    }

    fn unmount(&self, target: &Path, lazy: bool) -> SysResult<Unmounted> {
        self.pass(target, |g| g.hold_unmounts)?;
        let delay = self.with(|g| g.unmount_delay);
        if !delay.is_zero() {
            std::thread::sleep(delay); // a slow kernel call, on the blocking pool
        }
        self.fake.unmount(target, lazy)
    }
}

#[derive(Debug, Default)]
struct AttachState {
    next: u64,
    atts: BTreeMap<u64, AttachInfo>,
    down: bool,
    /// Releases answer `Unavailable` (an attach module that cannot ask this one yet).
    refuse_releases: bool,
}

/// An attach module in memory: loop specs whose path contains "missing" fail with
/// `InvalidArgument`, "panic" panics; devices are `/dev/fake<id>`.
#[derive(Debug, Default, Clone)]
struct FakeAttach(Arc<Mutex<AttachState>>);

impl FakeAttach {
    fn ids(&self) -> Vec<u64> {
        self.0.lock().unwrap().atts.keys().copied().collect()
    }
    fn holders(&self, id: u64) -> Vec<Holder> {
        self.0.lock().unwrap().atts[&id].holders.clone()
    }
    fn insert_held_by(&self, holder: Holder) -> u64 {
        let mut s = self.0.lock().unwrap();
        s.next += 1;
        let id = s.next;
        s.atts.insert(id, info(id, "/leftover.img", vec![holder]));
        id
    }
}

fn info(id: u64, path: &str, holders: Vec<Holder>) -> AttachInfo {
    AttachInfo {
        id,
        name: None,
        source: AttachSource::Loop(LoopSource {
            path: path.into(),
            read_only: true,
        }),
        device: PathBuf::from(format!("/dev/fake{id}")),
        driver: "loop".into(),
        read_only: true,
        holders,
        created_at: 0,
    }
}

/// Like the bus client: a call made after the caller's deadline fails at once.
fn past_deadline() -> Result<(), RemoteError> {
    match imagebus_bus::deadline::current() {
        Some(d) if d <= Instant::now() => Err(RemoteError::timeout("fake: the deadline passed")),
        _ => Ok(()),
    }
}

#[imagebus_bus::async_trait]
impl AttachModule for FakeAttach {
    async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, RemoteError> {
        let AttachSource::Loop(l) = &spec.source else {
            return Err(RemoteError::unsupported("fake: loop only"));
        };
        // The mount actor calls attach on the runtime that spawned it, never on its own.
        assert_ne!(std::thread::current().name(), Some("mount-actor"));
        if l.path.to_string_lossy().contains("panic") {
            panic!("fake attach: asked to panic");
        }
        if l.path.to_string_lossy().contains("timeout") {
            // The call takes the caller's whole time (then is done, unanswered, below).
            if let Some(d) = imagebus_bus::deadline::current() {
                tokio::time::sleep_until(d.into()).await;
            }
        }
        if l.path.to_string_lossy().contains("missing") {
            return Err(RemoteError::invalid_argument(format!(
                "{:?} does not exist",
                l.path
            )));
        }
        let mut s = self.0.lock().unwrap();
        s.next += 1;
        let id = s.next;
        let i = info(
            id,
            &l.path.to_string_lossy(),
            vec![holder.unwrap_or(Holder::User)],
        );
        s.atts.insert(id, i.clone());
        if l.path.to_string_lossy().contains("timeout") {
            // Done, but the answer is lost (a bus deadline passed).
            return Err(RemoteError::timeout("no reply within 30 s"));
        }
        Ok(i)
    }
    async fn detach(&self, _: Selector, _: bool) -> Result<(), RemoteError> {
        Err(RemoteError::unsupported("fake"))
    }
    async fn get(&self, target: Selector) -> Result<AttachInfo, RemoteError> {
        let Selector::Id(id) = target else {
            return Err(RemoteError::not_found("fake"));
        };
        self.0
            .lock()
            .unwrap()
            .atts
            .get(&id)
            .cloned()
            .ok_or_else(|| RemoteError::not_found("x"))
    }
    async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError> {
        past_deadline()?;
        let s = self.0.lock().unwrap();
        if s.down {
            return Err(RemoteError::unavailable("attach is down"));
        }
        Ok(s.atts.values().cloned().collect())
    }
    async fn acquire(&self, target: Selector, holder: Holder) -> Result<AttachInfo, RemoteError> {
        let Selector::Id(id) = target else {
            return Err(RemoteError::not_found("fake"));
        };
        let mut s = self.0.lock().unwrap();
        let a = s
            .atts
            .get_mut(&id)
            .ok_or_else(|| RemoteError::not_found("attachment"))?;
        if !a.holders.contains(&holder) {
            a.holders.push(holder);
        }
        Ok(a.clone())
    }
    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        past_deadline()?;
        let mut s = self.0.lock().unwrap();
        if s.refuse_releases {
            return Err(RemoteError::unavailable(
                "cannot check holder with the mount module",
            ));
        }
        if let Some(a) = s.atts.get_mut(&id) {
            a.holders.retain(|h| *h != holder);
            if a.holders.is_empty() {
                s.atts.remove(&id);
            }
        }
        Ok(())
    }
}

struct Rig {
    dir: tempfile::TempDir,
    cfg: MountConfig,
    mounter: FakeMounter,
    gated: GatedMounter,
    limits: Limits,
    probe: FakeFsProbe,
    attach: FakeAttach,
    stop: CancellationToken,
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = MountConfig {
            state_dir: dir.path().join("state"),
            run_dir: dir.path().join("run"),
        };
        let probe = FakeFsProbe::default();
        for i in 1..50 {
            probe.set(format!("/dev/fake{i}"), FsType::Squashfs);
        }
        let mounter = FakeMounter::default();
        Self {
            dir,
            cfg,
            gated: GatedMounter {
                fake: mounter.clone(),
                gate: Arc::default(),
            },
            mounter,
            limits: Limits::default(),
            probe,
            attach: FakeAttach::default(),
            stop: CancellationToken::new(),
        }
    }

    fn sys(&self) -> MountSys {
        MountSys {
            mounter: Arc::new(self.gated.clone()),
            table: Arc::new(self.mounter.clone()),
            paths: Arc::new(LinuxPaths),
            probe: Arc::new(self.probe.clone()),
        }
    }

    async fn start(&mut self) -> (MountHandle, ReconcileReport) {
        self.stop.cancel();
        self.stop = CancellationToken::new();
        let s = spawn(
            self.cfg.clone(),
            self.sys(),
            Arc::new(self.attach.clone()),
            self.stop.clone(),
            self.limits,
        )
        .await
        .unwrap();
        (s.handle, s.report)
    }

    fn mp(&self, id: u64) -> PathBuf {
        self.cfg.mountpoint(id)
    }

    fn run_entries(&self, sub: &str) -> Vec<String> {
        match std::fs::read_dir(self.cfg.run_dir.join(sub)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => vec![],
        }
    }

    fn assert_nothing_left(&self) {
        assert!(
            self.mounter.mounted().is_empty(),
            "mounted: {:?}",
            self.mounter.mounted()
        );
        assert!(
            self.attach.ids().is_empty(),
            "attachments: {:?}",
            self.attach.ids()
        );
        assert!(
            self.run_entries("mounts").is_empty(),
            "{:?}",
            self.run_entries("mounts")
        );
        assert!(
            self.run_entries("overlays").is_empty(),
            "{:?}",
            self.run_entries("overlays")
        );
    }
}

fn image(path: &str) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Image(ImageMount {
            attach: AttachRef::Inline(Box::new(AttachSpec {
                name: None,
                source: AttachSource::Loop(LoopSource {
                    path: path.into(),
                    read_only: true,
                }),
            })),
            fs_type: None,
            options: vec![],
            read_only: true,
        }),
    }
}

fn named(name: &str, mut spec: MountSpec) -> MountSpec {
    spec.name = Some(name.into());
    spec
}

fn overlay(lowers: Vec<MountRef>) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Overlay(OverlayMount {
            lowers,
            persist_dir: None,
        }),
    }
}

fn inline(spec: MountSpec) -> MountRef {
    MountRef::Inline(Box::new(spec))
}

fn bind(path: &str, base: Option<MountRef>, read_only: bool) -> MountSpec {
    MountSpec {
        name: None,
        source: MountSource::Bind(BindMount {
            path: path.into(),
            base: base.map(Box::new),
            read_only,
            recursive: false,
        }),
    }
}

async fn nested(h: &MountHandle) -> MountInfo {
    h.mount(
        overlay(vec![inline(image("/a.sqsh")), inline(image("/b.sqsh"))]),
        None,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn nested_overlay_is_built_in_one_call_and_cascades_on_unmount() {
    let mut rig = Rig::new();
    let (h, report) = rig.start().await;
    assert!(report.is_clean(), "{report:?}");
    let top = nested(&h).await;
    assert_eq!(
        (top.id, top.kind.as_str(), top.children.clone()),
        (1, "overlay", vec![2, 3])
    );
    assert_eq!(top.holders, vec![Holder::User]);
    let calls = rig.mounter.mount_calls();
    let run = &rig.cfg.run_dir;
    assert_eq!(
        calls,
        vec![
            MountCall::fs("/dev/fake1", rig.mp(2), "squashfs").flag(MountFlag::ReadOnly),
            MountCall::fs("/dev/fake2", rig.mp(3), "squashfs").flag(MountFlag::ReadOnly),
            MountCall::fs("overlay", rig.mp(1), "overlay").data(format!(
                "lowerdir={0}/mounts/2:{0}/mounts/3,upperdir={0}/overlays/1/upper,workdir={0}/overlays/1/work",
                run.display()
            )),
        ]
    );
    for lower in [2, 3] {
        let info = h.get(Selector::Id(lower)).await.unwrap();
        assert_eq!(info.holders, vec![Holder::Mount(1)]);
        assert_eq!(info.fs_type, "squashfs");
        assert!(info.read_only);
        assert_eq!(
            rig.attach.holders(info.attachment.unwrap()),
            vec![Holder::Mount(lower)]
        );
    }
    assert!(rig.cfg.overlay_dir(1).join("upper").is_dir());
    // A lower owned by the overlay cannot be unmounted on its own.
    let err = h.unmount(Selector::Id(2), false).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    h.unmount(Selector::Id(1), false).await.unwrap();
    rig.assert_nothing_left();
    assert!(h.list().await.unwrap().is_empty());
    // Ids are never reused.
    let again = h.mount(image("/c.sqsh"), None).await.unwrap();
    assert_eq!(again.id, 4);
    h.unmount(Selector::Id(4), false).await.unwrap();
    rig.assert_nothing_left();
}

#[tokio::test]
async fn a_failing_step_undoes_everything_created_in_the_call() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    // Second lower's attachment fails.
    let err = h
        .mount(
            overlay(vec![
                inline(image("/a.sqsh")),
                inline(image("/missing.sqsh")),
            ]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    rig.assert_nothing_left();
    assert!(h.list().await.unwrap().is_empty());
    // The overlay mount itself fails: both image mounts and attachments are undone.
    rig.mounter.fail_fs_type("overlay", 22);
    let err = h.unmount(Selector::Id(1), false).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    let err = h
        .mount(
            overlay(vec![inline(image("/a.sqsh")), inline(image("/b.sqsh"))]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    rig.assert_nothing_left();
    assert!(h.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_specs_are_typed_errors_that_change_nothing() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let base = h
        .mount(named("base", image("/a.sqsh")), None)
        .await
        .unwrap();
    let calls_before = rig.mounter.calls().len();
    let cases: Vec<(MountSpec, ErrorCode)> = vec![
        (overlay(vec![]), ErrorCode::InvalidArgument),
        (named("base", image("/b.sqsh")), ErrorCode::Conflict),
        (
            overlay(vec![MountRef::Existing(Selector::Id(77))]),
            ErrorCode::NotFound,
        ),
        (
            overlay(vec![MountRef::Existing(Selector::Name("nope".into()))]),
            ErrorCode::NotFound,
        ),
        (bind("/srv/../etc", None, false), ErrorCode::InvalidArgument),
        (
            bind(
                "../etc",
                Some(MountRef::Existing(Selector::Id(base.id))),
                false,
            ),
            ErrorCode::InvalidArgument,
        ),
        (
            {
                let mut s = image("/b.sqsh");
                if let MountSource::Image(i) = &mut s.source {
                    i.fs_type = Some("ntfs".into());
                }
                s
            },
            ErrorCode::InvalidArgument,
        ),
    ];
    for (spec, code) in cases {
        let err = h.mount(spec.clone(), None).await.unwrap_err();
        assert_eq!(err.code, code, "{spec:?}: {err}");
    }
    assert_eq!(
        rig.mounter.calls().len(),
        calls_before,
        "validation reached the kernel"
    );
    // A device with no known filesystem: the attachment is released again.
    let undetected = {
        let mut s = image("/b.sqsh");
        if let MountSource::Image(i) = &mut s.source {
            i.attach = AttachRef::Inline(Box::new(AttachSpec {
                name: None,
                source: AttachSource::Loop(LoopSource {
                    path: "/raw.img".into(),
                    read_only: true,
                }),
            }));
        }
        s
    };
    rig.probe = FakeFsProbe::default();
    let (h, _) = rig.start().await;
    let err = h.mount(undetected, None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    assert!(err.message.contains("no supported filesystem"), "{err}");
    assert_eq!(
        rig.attach.ids(),
        vec![1],
        "only the base's attachment remains"
    );
    assert_eq!(h.list().await.unwrap().len(), 1);
    assert_eq!(rig.run_entries("mounts"), vec![base.id.to_string()]);
}

#[tokio::test]
async fn references_count_and_force_overrides() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let base = h
        .mount(named("base", image("/a.sqsh")), None)
        .await
        .unwrap();
    let top = h
        .mount(
            overlay(vec![MountRef::Existing(Selector::Name("base".into()))]),
            None,
        )
        .await
        .unwrap();
    let b = h.get(Selector::Name("base".into())).await.unwrap();
    assert_eq!(b.holders, vec![Holder::User, Holder::Mount(top.id)]);
    let err = h.unmount(Selector::Id(base.id), false).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    // Dropping the overlay leaves the referenced base (still held by the user).
    h.unmount(Selector::Id(top.id), false).await.unwrap();
    assert_eq!(
        h.get(Selector::Id(base.id)).await.unwrap().holders,
        vec![Holder::User]
    );
    // acquire/release are idempotent; unknown releases succeed.
    h.acquire(Selector::Id(base.id), Holder::Container(9))
        .await
        .unwrap();
    let i = h
        .acquire(Selector::Id(base.id), Holder::Container(9))
        .await
        .unwrap();
    assert_eq!(i.holders, vec![Holder::User, Holder::Container(9)]);
    h.release(base.id, Holder::User).await.unwrap();
    h.release(base.id, Holder::User).await.unwrap();
    h.release(999, Holder::User).await.unwrap();
    assert_eq!(
        h.get(Selector::Id(base.id)).await.unwrap().holders,
        vec![Holder::Container(9)]
    );
    let err = h.unmount(Selector::Id(base.id), false).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    h.unmount(Selector::Id(base.id), true).await.unwrap();
    rig.assert_nothing_left();
    // Last holder released: collected.
    let m = h
        .mount(image("/a.sqsh"), Some(Holder::Container(3)))
        .await
        .unwrap();
    h.release(m.id, Holder::Container(3)).await.unwrap();
    rig.assert_nothing_left();
}

#[tokio::test]
async fn binds_stay_inside_their_base() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let base = h.mount(image("/a.sqsh"), None).await.unwrap();
    // The fake mounts nothing: populate the base's mountpoint directly.
    std::fs::create_dir_all(base.mountpoint.join("usr/share")).unwrap();
    std::os::unix::fs::symlink("usr/share", base.mountpoint.join("share")).unwrap();
    std::os::unix::fs::symlink("/etc", base.mountpoint.join("esc")).unwrap();
    std::os::unix::fs::symlink("../../..", base.mountpoint.join("up")).unwrap();
    let on_base = || Some(MountRef::Existing(Selector::Id(base.id)));
    let before = rig.mounter.calls().len();
    for (path, code, text) in [
        ("esc", ErrorCode::InvalidArgument, "escapes"),
        ("up/etc", ErrorCode::InvalidArgument, "escapes"),
        ("nothere", ErrorCode::InvalidArgument, "does not exist"),
    ] {
        let err = h
            .mount(bind(path, on_base(), false), None)
            .await
            .unwrap_err();
        assert_eq!(err.code, code, "{path}: {err}");
        assert!(err.message.contains(text), "{path}: {err}");
    }
    assert_eq!(rig.mounter.calls().len(), before);
    assert_eq!(
        h.get(Selector::Id(base.id)).await.unwrap().holders,
        vec![Holder::User]
    );
    let b = h.mount(bind("share", on_base(), true), None).await.unwrap();
    let real = std::fs::canonicalize(base.mountpoint.join("usr/share")).unwrap();
    assert_eq!(
        rig.mounter.mount_calls()[1..],
        [
            MountCall::bind(&real, &b.mountpoint, false),
            MountCall::remount_bind_read_only(&b.mountpoint)
        ]
    );
    assert!(b.read_only);
    assert_eq!(b.children, vec![base.id]);
    // Host binds.
    let host = rig.dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let hb = h
        .mount(bind(host.to_str().unwrap(), None, false), None)
        .await
        .unwrap();
    let err = h
        .mount(bind("/definitely/not/here", None, false), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    h.unmount(Selector::Id(hb.id), false).await.unwrap();
    h.unmount(Selector::Id(b.id), false).await.unwrap();
    // (What we wrote into the unmounted-in-reality base directory goes first.)
    for entry in std::fs::read_dir(&base.mountpoint).unwrap() {
        let p = entry.unwrap().path();
        if p.is_symlink() {
            std::fs::remove_file(p).unwrap()
        } else {
            std::fs::remove_dir_all(p).unwrap()
        }
    }
    h.unmount(Selector::Id(base.id), false).await.unwrap();
    rig.assert_nothing_left();
}

#[tokio::test]
async fn persist_dir_is_kept_and_ephemeral_dirs_are_not() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let keep = rig.dir.path().join("keep");
    let spec = MountSpec {
        name: None,
        source: MountSource::Overlay(OverlayMount {
            lowers: vec![inline(image("/a.sqsh"))],
            persist_dir: Some(keep.clone()),
        }),
    };
    let o = h.mount(spec.clone(), None).await.unwrap();
    std::fs::write(keep.join("upper/written"), "x").unwrap();
    let err = h.mount(spec.clone(), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    h.unmount(Selector::Id(o.id), false).await.unwrap();
    assert!(keep.join("upper/written").exists());
    rig.assert_nothing_left();
    let o = h.mount(spec, None).await.unwrap();
    assert!(rig
        .mounter
        .mount_calls()
        .last()
        .unwrap()
        .data
        .as_ref()
        .unwrap()
        .contains("keep/upper"));
    h.unmount(Selector::Id(o.id), false).await.unwrap();
}

#[tokio::test]
async fn restart_keeps_state_and_reconciles_leftovers() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let top = nested(&h).await;
    for file in [rig.cfg.records_file(), rig.cfg.ids_file()] {
        let meta = std::fs::metadata(&file).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
        assert_eq!(mode, 0o600, "{file:?}");
    }
    // Restart cleanly: everything is still known, nothing is mounted twice.
    let mounts_before = rig.mounter.mounted();
    let (h, report) = rig.start().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(h.list().await.unwrap().len(), 3);
    assert_eq!(rig.mounter.mounted(), mounts_before);
    // Crash leftovers: an orphan mount + dir (id 9, unknown), an attachment held by an
    // unknown mount (8), a stacked duplicate on a known mountpoint, a vanished lower.
    let orphan = rig.mp(9);
    std::fs::create_dir_all(&orphan).unwrap();
    rig.mounter.add_foreign(&orphan, "squashfs");
    std::fs::create_dir_all(rig.cfg.overlay_dir(9).join("upper")).unwrap();
    let leaked = rig.attach.insert_held_by(Holder::Mount(8));
    rig.mounter.add_foreign(top.mountpoint.clone(), "overlay");
    rig.mounter.remove_foreign(&rig.mp(3));
    let (h, report) = rig.start().await;
    assert_eq!(report.vanished, vec![3]);
    assert_eq!(report.duplicates, vec![top.mountpoint.clone()]);
    assert_eq!(report.orphan_mounts, vec![orphan.clone()]);
    assert_eq!(
        report.orphan_dirs,
        vec![orphan.clone(), rig.cfg.overlay_dir(9)]
    );
    assert_eq!(report.released_attachments, vec![(leaked, 8)]);
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(
        rig.attach.ids().len() == 1,
        "lower 3's attachment went with it"
    );
    assert_eq!(
        h.list()
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    // Ids seen in leftovers are not reused.
    let next = h.mount(image("/c.sqsh"), None).await.unwrap();
    assert_eq!(next.id, 10);
    h.unmount(Selector::Id(next.id), false).await.unwrap();
    h.unmount(Selector::Id(top.id), false).await.unwrap();
    rig.assert_nothing_left();
    let (_, report) = rig.start().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn stale_holders_are_dropped_at_start() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let m = h.mount(image("/a.sqsh"), None).await.unwrap();
    drop(h);
    // A holder whose mount is gone (an API call would refuse to add it: forged).
    let file = imagebus_sys::state::StateFile::<crate::store::Db>::new(
        rig.cfg.records_file(),
        crate::config::STATE_VERSION,
    );
    let mut db = file.load().unwrap().unwrap();
    db.mounts.get_mut(&m.id).unwrap().holders = [Holder::Mount(42)].into();
    file.save(&db).unwrap();
    let (h, report) = rig.start().await;
    assert_eq!(report.stale_holders, vec![(m.id, Holder::Mount(42))]);
    assert!(h.list().await.unwrap().is_empty());
    rig.assert_nothing_left();
    assert!(Path::new(&rig.cfg.records_file()).exists());
}

#[tokio::test]
async fn stopped_actor_is_unavailable() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    rig.stop.cancel();
    let err = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match h.list().await {
                Err(e) => break e,
                Ok(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("the actor did not stop within 5 s");
    assert_eq!(err.code, ErrorCode::Unavailable);
}

#[tokio::test]
async fn a_state_file_of_another_version_refuses_to_start() {
    let rig = Rig::new();
    std::fs::create_dir_all(&rig.cfg.run_dir).unwrap();
    std::fs::write(rig.cfg.records_file(), r#"{"version": 2, "data": {}}"#).unwrap();
    let err = spawn(
        rig.cfg.clone(),
        rig.sys(),
        Arc::new(rig.attach.clone()),
        CancellationToken::new(),
        Limits::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, crate::MountError::State(_)), "{err}");
    // Nothing was touched: the file is still there as it was.
    let text = std::fs::read_to_string(rig.cfg.records_file()).unwrap();
    assert!(text.contains("\"version\": 2"));
    let bad = MountConfig {
        run_dir: "relative".into(),
        ..rig.cfg.clone()
    };
    let err = spawn(
        bad,
        rig.sys(),
        Arc::new(rig.attach.clone()),
        CancellationToken::new(),
        Limits::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(RemoteError::from(err).code, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn an_unreachable_attach_module_does_not_stop_reconciliation() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let m = h.mount(image("/a.sqsh"), None).await.unwrap();
    let orphan = rig.mp(50);
    std::fs::create_dir_all(&orphan).unwrap();
    rig.mounter.add_foreign(&orphan, "squashfs");
    rig.attach.0.lock().unwrap().down = true;
    let (h, report) = rig.start().await;
    assert_eq!(report.orphan_mounts, vec![orphan]);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.errors[0].contains("attach is down"), "{report:?}");
    assert_eq!(h.get(Selector::Id(m.id)).await.unwrap().id, m.id);
    rig.attach.0.lock().unwrap().down = false;
    h.unmount(Selector::Id(m.id), false).await.unwrap();
    rig.assert_nothing_left();
}

#[tokio::test]
async fn ids_are_never_reused_across_a_reboot() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let first = h.mount(image("/a.sqsh"), None).await.unwrap();
    assert_eq!(first.id, 1);
    let floor = std::fs::read_to_string(rig.cfg.ids_file()).unwrap();
    assert!(floor.contains("\"id_floor\": 257"), "{floor}");
    // A second mount is inside the reserved block: the durable file is not rewritten.
    let modified = std::fs::metadata(rig.cfg.ids_file())
        .unwrap()
        .modified()
        .unwrap();
    h.mount(image("/b.sqsh"), None).await.unwrap();
    assert_eq!(
        std::fs::metadata(rig.cfg.ids_file())
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    // "Reboot": the run directory (a tmpfs) and every kernel mount are gone.
    drop(h);
    rig.stop.cancel();
    for mp in rig.mounter.mounted() {
        rig.mounter.remove_foreign(&mp);
    }
    rig.attach = FakeAttach::default();
    std::fs::remove_dir_all(&rig.cfg.run_dir).unwrap();
    let (h, report) = rig.start().await;
    assert!(report.is_clean(), "{report:?}");
    assert!(h.list().await.unwrap().is_empty());
    let next = h.mount(image("/c.sqsh"), None).await.unwrap();
    assert_eq!(
        next.id, 257,
        "continues above every id that may have been handed out"
    );
    let floor = std::fs::read_to_string(rig.cfg.ids_file()).unwrap();
    assert!(floor.contains("\"id_floor\": 513"), "{floor}");
}

#[tokio::test]
async fn an_unanswered_attach_is_released_again() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let err = h
        .mount(
            overlay(vec![
                inline(image("/a.sqsh")),
                inline(image("/timeout.sqsh")),
            ]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    rig.assert_nothing_left();
}

#[tokio::test]
async fn an_undo_after_the_callers_deadline_passed_still_releases_attachments() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let deadline = Instant::now() + Duration::from_millis(300);
    let err = imagebus_bus::deadline::scope(
        Some(deadline),
        h.mount(
            overlay(vec![
                inline(image("/a.sqsh")),
                inline(image("/timeout.sqsh")),
            ]),
            None,
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(Instant::now() >= deadline);
    rig.assert_nothing_left();
}

#[tokio::test]
async fn a_panicking_command_makes_the_actor_unavailable_and_its_task_a_panic() {
    let rig = Rig::new();
    let stop = CancellationToken::new();
    let s = spawn(
        rig.cfg.clone(),
        rig.sys(),
        Arc::new(rig.attach.clone()),
        stop.clone(),
        Limits::default(),
    )
    .await
    .unwrap();
    let h = s.handle;
    h.mount(image("/a.sqsh"), None).await.unwrap();
    let wait = std::time::Duration::from_secs(10);
    let err = tokio::time::timeout(wait, h.mount(image("/panic.sqsh"), None))
        .await
        .expect("a call whose command panicked hung")
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    let err = tokio::time::timeout(wait, h.list())
        .await
        .expect("a call to a dead actor hung")
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    let res = tokio::time::timeout(wait, s.task)
        .await
        .expect("the actor task did not end after the panic");
    assert!(
        res.is_err_and(|e| e.is_panic()),
        "the task must end as a panic"
    );
    stop.cancel();
}

#[tokio::test]
async fn stopping_ends_the_task_cleanly_and_leaves_no_half_done_mount() {
    let rig = Rig::new();
    let stop = CancellationToken::new();
    let s = spawn(
        rig.cfg.clone(),
        rig.sys(),
        Arc::new(rig.attach.clone()),
        stop.clone(),
        Limits::default(),
    )
    .await
    .unwrap();
    let h = s.handle;
    let wait = std::time::Duration::from_secs(10);
    let busy = tokio::spawn({
        let h = h.clone();
        async move { h.mount(image("/a.sqsh"), None).await }
    });
    stop.cancel();
    // Whether or not the mount was queued before the stop, it is all or nothing.
    let mounted = tokio::time::timeout(wait, busy).await.unwrap().unwrap();
    tokio::time::timeout(wait, s.task)
        .await
        .expect("the actor task did not end after stop")
        .expect("a stopped actor's task ends cleanly");
    let err = h.list().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    match mounted {
        Ok(m) => assert!(rig.mounter.mounted().contains(&m.mountpoint)),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
            rig.assert_nothing_left();
        }
    }
}

#[tokio::test]
async fn dropping_every_handle_ends_the_task_cleanly() {
    let rig = Rig::new();
    let stop = CancellationToken::new();
    let s = spawn(
        rig.cfg.clone(),
        rig.sys(),
        Arc::new(rig.attach.clone()),
        stop.clone(),
        Limits::default(),
    )
    .await
    .unwrap();
    s.handle.list().await.unwrap();
    drop(s.handle);
    tokio::time::timeout(std::time::Duration::from_secs(10), s.task)
        .await
        .expect("the actor task did not end when its handles were dropped")
        .expect("the task ends cleanly");
}

// Concurrency: commands run as jobs beside each other; reads never wait for them.

fn mount_ids(list: &[MountInfo]) -> Vec<u64> {
    list.iter().map(|m| m.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_other_mounts_answer_while_a_create_is_blocked_in_the_kernel() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let base = h
        .mount(named("base", image("/a.sqsh")), None)
        .await
        .unwrap();
    rig.gated.hold_mounts();
    let busy = tokio::spawn({
        let h = h.clone();
        async move { h.mount(named("slow", image("/b.sqsh")), None).await }
    });
    rig.gated.wait_entered(1).await;
    // Reads answer at once; the mount being created is not visible yet.
    let t = Instant::now();
    let got = tokio::time::timeout(WAIT, h.get(Selector::Id(base.id)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, base.id);
    assert_eq!(mount_ids(&h.list().await.unwrap()), vec![base.id]);
    let err = h.get(Selector::Name("slow".into())).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    // A mutation of another mount runs beside it.
    let acquired =
        tokio::time::timeout(WAIT, h.acquire(Selector::Id(base.id), Holder::Container(1)))
            .await
            .expect("an acquire of another mount waited for the blocked create")
            .unwrap();
    assert_eq!(acquired.holders, vec![Holder::User, Holder::Container(1)]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!busy.is_finished());
    rig.gated.open(false);
    let slow = tokio::time::timeout(WAIT, busy)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(mount_ids(&h.list().await.unwrap()), vec![base.id, slow.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_creates_of_one_name_give_one_success_and_one_conflict() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    rig.gated.hold_mounts();
    let first = tokio::spawn({
        let h = h.clone();
        async move { h.mount(named("web", image("/a.sqsh")), None).await }
    });
    rig.gated.wait_entered(1).await;
    // The name hides in an inline child here.
    let second = tokio::spawn({
        let h = h.clone();
        async move {
            h.mount(overlay(vec![inline(named("web", image("/b.sqsh")))]), None)
                .await
        }
    });
    rig.gated.open(false);
    let first = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    let second = tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
    let web = first.unwrap();
    assert_eq!(second.unwrap_err().code, ErrorCode::Conflict);
    // Nothing of the loser is left: one mount, one attachment, one mountpoint.
    assert_eq!(rig.mounter.mounted(), vec![web.mountpoint.clone()]);
    assert_eq!(rig.attach.ids().len(), 1);
    assert_eq!(rig.run_entries("mounts"), vec![web.id.to_string()]);
    assert_eq!(mount_ids(&h.list().await.unwrap()), vec![web.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_one_name_run_in_order() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    rig.gated.hold_mounts();
    let first = tokio::spawn({
        let h = h.clone();
        async move { h.mount(named("web", image("/a.sqsh")), None).await }
    });
    rig.gated.wait_entered(1).await;
    let second = tokio::spawn({
        let h = h.clone();
        async move { h.mount(named("web", image("/b.sqsh")), None).await }
    });
    // The first fails in the kernel. Had the second run beside it, it would have met the
    // first's reservation (Conflict); queued behind it on the name, it succeeds.
    rig.gated.open(true);
    let first = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    assert_eq!(first.unwrap_err().code, ErrorCode::InvalidArgument);
    let second = tokio::time::timeout(WAIT, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.name.as_deref(), Some("web"));
    assert_eq!(rig.mounter.mounted(), vec![second.mountpoint.clone()]);
    assert_eq!(rig.attach.ids().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acquire_racing_a_cascade_unmount_never_leaves_a_dangling_holder() {
    let mut rig = Rig::new();
    for i in 50..=130 {
        rig.probe.set(format!("/dev/fake{i}"), FsType::Squashfs);
    }
    let (h, _) = rig.start().await;
    let (mut kept, mut refused) = (0, 0);
    for i in 0..120u64 {
        let top = h
            .mount(overlay(vec![inline(image("/a.sqsh"))]), None)
            .await
            .unwrap();
        let lower = top.children[0];
        let holder = Holder::Container(i);
        let unmount = {
            let h = h.clone();
            move || async move { h.unmount(Selector::Id(top.id), false).await }
        };
        let acquire = {
            let (h, holder) = (h.clone(), holder.clone());
            move || async move { h.acquire(Selector::Id(lower), holder).await }
        };
        let (unmounted, acquired) = match i % 4 {
            // Acquired while the overlay's unmount is in the kernel: before the cascade
            // decides about the lower, so the lower stays.
            0 => {
                rig.gated.hold_unmounts();
                let before = rig.gated.entered();
                let u = tokio::spawn(unmount());
                rig.gated.wait_entered(before + 1).await;
                let a = acquire().await;
                rig.gated.open(false);
                (u.await.unwrap(), a)
            }
            // After the cascade: gone.
            1 => {
                let u = unmount().await;
                (u, acquire().await)
            }
            // While the lower's own unmount is in the kernel: the cascade decided, so
            // the lower is already gone for everyone else.
            2 => {
                rig.gated.hold_unmounts();
                let before = rig.gated.entered();
                let u = tokio::spawn(unmount());
                rig.gated.wait_entered(before + 1).await;
                rig.gated.let_one_go();
                rig.gated.wait_entered(before + 2).await;
                let a = acquire().await;
                rig.gated.open(false);
                (u.await.unwrap(), a)
            }
            // A free race, with slow unmounts and a varying head start.
            _ => {
                rig.gated.slow_unmounts(Duration::from_millis(i % 4));
                let u = tokio::spawn(unmount());
                for _ in 0..(i % 7) {
                    tokio::task::yield_now().await;
                }
                let a = tokio::spawn(acquire());
                let (u, a) = tokio::join!(u, a);
                rig.gated.slow_unmounts(Duration::ZERO);
                (u.unwrap(), a.unwrap())
            }
        };
        unmounted.unwrap();
        match acquired {
            Ok(_) => {
                kept += 1;
                // The lower survived the cascade, held by the container only, mounted.
                let info = h.get(Selector::Id(lower)).await.unwrap();
                assert_eq!(info.holders, vec![holder.clone()], "round {i}");
                assert!(
                    rig.mounter.mounted().contains(&info.mountpoint),
                    "round {i}"
                );
                h.release(lower, holder).await.unwrap();
            }
            Err(e) => {
                refused += 1;
                assert_eq!(e.code, ErrorCode::NotFound, "round {i}: {e}");
                assert!(h.get(Selector::Id(lower)).await.is_err(), "round {i}");
            }
        }
        rig.assert_nothing_left();
        assert!(h.list().await.unwrap().is_empty(), "round {i}");
    }
    assert!(
        kept >= 30 && refused >= 30,
        "kept {kept}, refused {refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_deadline_passes_while_waiting_for_a_slot_is_never_started() {
    let mut rig = Rig::new();
    rig.limits = Limits {
        max_mutations: 1,
        ..Limits::default()
    };
    let (h, _) = rig.start().await;
    rig.gated.hold_mounts();
    let first = tokio::spawn({
        let h = h.clone();
        async move { h.mount(image("/a.sqsh"), None).await }
    });
    rig.gated.wait_entered(1).await;
    let deadline = Instant::now() + Duration::from_millis(200);
    let err = imagebus_bus::deadline::scope(Some(deadline), h.mount(image("/b.sqsh"), None))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(Instant::now() < deadline + Duration::from_secs(2));
    rig.gated.open(false);
    let first = tokio::time::timeout(WAIT, first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The slot is free again, and the timed-out create never reached attach or the kernel.
    h.list().await.unwrap();
    assert_eq!(rig.mounter.mount_calls().len(), 1);
    assert_eq!(rig.attach.ids().len(), 1);
    assert_eq!(mount_ids(&h.list().await.unwrap()), vec![first.id]);
    assert_eq!(rig.run_entries("mounts"), vec![first.id.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_command_in_flight() {
    let rig = Rig::new();
    let stop = CancellationToken::new();
    let s = spawn(
        rig.cfg.clone(),
        rig.sys(),
        Arc::new(rig.attach.clone()),
        stop.clone(),
        Limits {
            shutdown_timeout: WAIT,
            ..Limits::default()
        },
    )
    .await
    .unwrap();
    let h = s.handle;
    rig.gated.hold_mounts();
    let busy = tokio::spawn({
        let h = h.clone();
        async move { h.mount(image("/a.sqsh"), None).await }
    });
    rig.gated.wait_entered(1).await;
    stop.cancel();
    // New commands are refused; the one in flight keeps the actor up.
    let err = h.mount(image("/b.sqsh"), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    assert!(!s.task.is_finished());
    rig.gated.open(false);
    let m = tokio::time::timeout(WAIT, busy)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, s.task)
        .await
        .expect("the actor did not stop after its last command")
        .expect("a stopped actor's task ends cleanly");
    // The command finished completely: mounted and durable.
    assert!(rig.mounter.mounted().contains(&m.mountpoint));
    let records = std::fs::read_to_string(rig.cfg.records_file()).unwrap();
    assert!(records.contains(&format!("\"id\": {}", m.id)), "{records}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_dropping_a_holder_added_by_a_failed_create_collects_the_mount() {
    // A create references `base`, then fails; meanwhile the user released `base`. The
    // undo drops the create's holder, the last one: `base` is collected, not leaked.
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let base = h.mount(image("/a.sqsh"), None).await.unwrap();
    rig.gated.hold_mounts();
    let failing = tokio::spawn({
        let h = h.clone();
        async move {
            h.mount(
                overlay(vec![
                    MountRef::Existing(Selector::Id(base.id)),
                    inline(image("/b.sqsh")),
                ]),
                None,
            )
            .await
        }
    });
    rig.gated.wait_entered(1).await;
    h.release(base.id, Holder::User).await.unwrap();
    assert_eq!(
        h.get(Selector::Id(base.id)).await.unwrap().holders,
        vec![Holder::Mount(base.id + 1)]
    );
    rig.gated.open(true);
    let err = tokio::time::timeout(WAIT, failing)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    rig.assert_nothing_left();
    assert!(h.list().await.unwrap().is_empty());
}

mod stored;

mod holders;
