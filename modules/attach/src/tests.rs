//! Unit tests of the attach logic against the recording doubles of `imagebus-sys`.

use crate::attachments::Attachments;
use crate::error::AttachError;
use crate::{AttachConfig, AttachSys};
use imagebus_schema::attach::{
    AttachSource, AttachSpec, LocalSource, LoopSource, RbdSource, Secret,
};
use imagebus_schema::{Holder, Selector};
use imagebus_sys::blockdev::FileKind;
use imagebus_sys::cmd::CommandOutput;
use imagebus_sys::fake::*;
use imagebus_sys::loopdev::LoopDevice;
use std::path::PathBuf;
use std::sync::Arc;

const SECRET: &str = "AQBKjwZrPzNcLRAAvbTI81uQSAgxZmzSLX8jOg==";

struct World {
    dir: tempfile::TempDir,
    loops: FakeLoopDevices,
    rbd: FakeRbdBus,
    files: FakeFiles,
    runner: FakeRunner,
    procs: FakeProcesses,
    fuse: FakeFuseMounts,
}

impl World {
    fn new(rbd: FakeRbdBus) -> Self {
        let files = FakeFiles::default();
        files.add("/img/a.sqsh", FileKind::Regular, 11);
        files.add("/img/b.sqsh", FileKind::Regular, 12);
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
        }
    }

    fn sys(&self) -> AttachSys {
        AttachSys {
            loops: Arc::new(self.loops.clone()),
            rbd: Arc::new(self.rbd.clone()),
            files: Arc::new(self.files.clone()),
            runner: Arc::new(self.runner.clone()),
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

    fn open(&self) -> Attachments {
        Attachments::open(self.cfg(), self.sys()).unwrap().0
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
    AttachSpec {
        name: None,
        source: AttachSource::Rbd(RbdSource {
            monitors: vec!["127.0.0.1:16789".into()],
            pool: "rbd".into(),
            image: "img".into(),
            snapshot: None,
            namespace: None,
            user: "imagebus-rw".into(),
            secret: Secret::new(SECRET),
            read_only: true,
            shared,
        }),
    }
}

#[test]
fn loop_attach_and_detach() {
    let w = World::new(FakeRbdBus::default());
    let mut a = w.open();
    let info = a
        .attach(loop_spec(Some("base"), "/img/a.sqsh"), None)
        .unwrap();
    assert_eq!(info.driver, "loop");
    assert_eq!(info.holders, vec![Holder::User]);
    assert!(info.read_only);
    let bound = w.loops.bound();
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].backing_file, PathBuf::from("/img/a.sqsh"));
    assert!(!bound[0].autoclear);
    assert_eq!(info.device, bound[0].device);
    assert_eq!(a.get(&Selector::Name("base".into())).unwrap(), info);
    a.detach(&Selector::Name("base".into()), false).unwrap();
    assert!(w.loops.bound().is_empty());
    assert!(matches!(
        a.get(&Selector::Id(info.id)),
        Err(AttachError::NotFound(_))
    ));
    // Ids are never reused, also across restarts.
    let next = a.attach(loop_spec(None, "/img/a.sqsh"), None).unwrap();
    assert_eq!(next.id, info.id + 1);
    drop(a);
    let mut a = w.open();
    assert_eq!(
        a.attach(loop_spec(None, "/img/b.sqsh"), None).unwrap().id,
        info.id + 2
    );
}

#[test]
fn bad_input_changes_nothing() {
    let w = World::new(FakeRbdBus::default());
    let mut a = w.open();
    for (spec, what) in [
        (loop_spec(None, "/img/missing"), "does not exist"),
        (loop_spec(None, "/img"), "not a regular file"),
        (loop_spec(None, "img/a.sqsh"), "absolute"),
        (loop_spec(None, "/img/../img/a.sqsh"), ".."),
        (loop_spec(Some("12"), "/img/a.sqsh"), "digits"),
    ] {
        let err = a.attach(spec, None).unwrap_err();
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
    let err = a.attach(local("/dev/tty0"), None).unwrap_err();
    assert!(err.to_string().contains("character device"), "{err}");
    assert!(matches!(
        a.attach(local("/dev/nope"), None),
        Err(AttachError::Invalid(_))
    ));
    assert!(w.loops.bound().is_empty());
    assert!(a.list().is_empty());
    let ok = a.attach(local("/dev/vdb"), None).unwrap();
    assert_eq!(
        (ok.driver.as_str(), ok.device.clone()),
        ("local", PathBuf::from("/dev/vdb"))
    );
    a.detach(&Selector::Id(ok.id), false).unwrap();
    assert!(w.loops.attaches().is_empty());
}

#[test]
fn names_are_unique() {
    let w = World::new(FakeRbdBus::default());
    let mut a = w.open();
    let first = a
        .attach(loop_spec(Some("web"), "/img/a.sqsh"), None)
        .unwrap();
    let err = a
        .attach(loop_spec(Some("web"), "/img/b.sqsh"), None)
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

#[test]
fn holders_conflict_force_and_idempotence() {
    let w = World::new(FakeRbdBus::default());
    let mut a = w.open();
    let info = a.attach(loop_spec(None, "/img/a.sqsh"), None).unwrap();
    let id = Selector::Id(info.id);
    a.acquire(&id, Holder::Mount(4)).unwrap();
    let again = a.acquire(&id, Holder::Mount(4)).unwrap();
    assert_eq!(again.holders, vec![Holder::User, Holder::Mount(4)]);
    let err = a.detach(&id, false).unwrap_err();
    assert!(matches!(err, AttachError::InUse { .. }), "{err}");
    assert_eq!(
        a.get(&id).unwrap().holders.len(),
        2,
        "a refused detach changes nothing"
    );
    a.release(info.id, &Holder::Mount(4)).unwrap();
    a.release(info.id, &Holder::Mount(4)).unwrap();
    a.release(999, &Holder::Mount(4)).unwrap();
    assert_eq!(a.get(&id).unwrap().holders, vec![Holder::User]);
    a.acquire(&id, Holder::Mount(5)).unwrap();
    a.detach(&id, true).unwrap();
    assert!(w.loops.bound().is_empty());
    a.release(info.id, &Holder::Mount(5)).unwrap();

    // Created by a mount: released by it, collected at zero.
    let owned = a
        .attach(loop_spec(None, "/img/b.sqsh"), Some(Holder::Mount(7)))
        .unwrap();
    assert_eq!(owned.holders, vec![Holder::Mount(7)]);
    assert!(matches!(
        a.detach(&Selector::Id(owned.id), false),
        Err(AttachError::InUse { .. })
    ));
    a.release(owned.id, &Holder::Mount(7)).unwrap();
    assert!(a.list().is_empty());
    assert!(w.loops.bound().is_empty());
}

#[test]
fn restart_reconciles_vanished_and_orphans() {
    let w = World::new(FakeRbdBus::default());
    let mut a = w.open();
    let keep = a
        .attach(loop_spec(Some("keep"), "/img/a.sqsh"), None)
        .unwrap();
    let gone = a.attach(loop_spec(None, "/img/b.sqsh"), None).unwrap();
    let tag = a.db.loop_tag(99);
    drop(a);
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
    let (a, report) = Attachments::open(w.cfg(), w.sys()).unwrap();
    assert_eq!(report.kept, vec![keep.id]);
    assert_eq!(report.vanished, vec![gone.id]);
    assert_eq!(report.cleaned.len(), 1, "{report}");
    assert!(report.cleaned[0].contains("/dev/loop40"), "{report}");
    assert_eq!(a.list().len(), 1);
    let numbers: Vec<u32> = w.loops.bound().iter().map(|d| d.number).collect();
    assert!(
        numbers.contains(&41) && !numbers.contains(&40),
        "{numbers:?}"
    );
    // A second start finds nothing to do and maps nothing twice.
    drop(a);
    let attaches = w.loops.attaches().len();
    let (_a, report) = Attachments::open(w.cfg(), w.sys()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(w.loops.attaches().len(), attaches);
}

#[test]
fn krbd_secret_goes_to_the_kernel_only() {
    let w = World::new(FakeRbdBus::available());
    let mut a = w.open();
    let info = a.attach(rbd_spec(false), None).unwrap();
    assert_eq!(info.driver, "krbd");
    assert_eq!(info.device, PathBuf::from("/dev/rbd0"));
    assert_eq!(w.rbd.secrets(), vec![SECRET.to_string()]);
    let map = &w.rbd.maps()[0];
    assert!(map.read_only && map.key_name.starts_with("imagebus-attach."));
    let AttachSource::Rbd(src) = &info.source else {
        panic!("not rbd")
    };
    assert_eq!(src.secret.expose(), Secret::REDACTED);
    let listed = format!("{:?}", a.list());
    assert!(!listed.contains(SECRET));
    assert!(
        !w.state_text().contains(SECRET),
        "secret persisted in plain state"
    );
    a.detach(&Selector::Id(info.id), false).unwrap();
    assert_eq!(w.rbd.unmaps(), vec![(0, false)]);
}

#[test]
fn rbd_twice_is_conflict_unless_shared_read_only() {
    let w = World::new(FakeRbdBus::available());
    let mut a = w.open();
    let base = a.attach(rbd_spec(false), None).unwrap();
    let err = a.attach(rbd_spec(false), None).unwrap_err();
    assert!(matches!(err, AttachError::AlreadyMapped { .. }), "{err}");
    let shared = a.attach(rbd_spec(true), None).unwrap();
    assert_ne!(shared.id, base.id);
    assert_eq!(shared.device, base.device);
    assert_eq!(w.rbd.maps().len(), 1, "shared use maps nothing new");
    let base_now = a.get(&Selector::Id(base.id)).unwrap();
    assert!(base_now.holders.contains(&Holder::Attach(shared.id)));
    assert!(matches!(
        a.detach(&Selector::Id(base.id), false),
        Err(AttachError::InUse { .. })
    ));
    a.detach(&Selector::Id(shared.id), false).unwrap();
    assert!(w.rbd.unmaps().is_empty());
    assert_eq!(
        a.get(&Selector::Id(base.id)).unwrap().holders,
        vec![Holder::User]
    );
    a.detach(&Selector::Id(base.id), false).unwrap();
    assert_eq!(w.rbd.unmaps().len(), 1);
}

#[test]
fn fuse_fallback_probe_errors_leave_nothing() {
    let w = World::new(FakeRbdBus::default());
    let mut a = w.open();
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
        let err = a.attach(rbd_spec(false), None).unwrap_err();
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
    let err = a.attach(snap, None).unwrap_err();
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
    assert!(a.list().is_empty());
}

#[test]
fn other_state_version_is_a_typed_error() {
    let w = World::new(FakeRbdBus::default());
    drop(w.open());
    let path = w.cfg().state_dir.join("attach.json");
    let text = w
        .state_text()
        .replacen("\"version\": 1", "\"version\": 9", 1);
    std::fs::write(&path, text).unwrap();
    let err = Attachments::open(w.cfg(), w.sys()).unwrap_err();
    assert!(matches!(err, AttachError::State(_)), "{err}");
}
