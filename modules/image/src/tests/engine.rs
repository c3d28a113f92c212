//! The image actor's engine with a packing double (it writes an erofs superblock instead of
//! running `mkfs.erofs`): imports stored once by digest, concurrent imports, names,
//! holders and `Remove`, failures that leave nothing, and start-up reconciliation.

use crate::oci::blobs::sha256;
use crate::{spawn, ImageHandle, ImageSys, Limits, StoreConfig};
use imagebus_bus::ErrorCode;
use imagebus_schema::image::{ImageModule, ImportSpec};
use imagebus_schema::Holder;
use imagebus_sys::cmd::CommandOutput;
use imagebus_sys::fake::FakeRunner;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Packing switches for the runner double: `fail` makes every pack fail; `no_erofs`
/// makes `mkfs.erofs` missing so that `mksquashfs` is used.
#[derive(Debug, Default)]
struct Packing {
    fail: AtomicBool,
    no_erofs: AtomicBool,
}

/// A [`FakeRunner`] whose `mkfs.erofs OUT ROOT` writes an erofs-looking file and whose
/// `mksquashfs ROOT OUT ...` a squashfs-looking one, after a short delay (so concurrent
/// imports overlap), as `packing` says.
fn packer(packing: &Arc<Packing>) -> FakeRunner {
    let runner = FakeRunner::default();
    let failed = || CommandOutput {
        code: Some(1),
        stdout: String::new(),
        stderr: "no space left".into(),
    };
    let p = packing.clone();
    runner.on("mkfs.erofs", move |call| {
        std::thread::sleep(Duration::from_millis(150));
        if p.no_erofs.load(Ordering::SeqCst) {
            return Err(imagebus_sys::SysError::Spawn {
                program: call.program.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        if p.fail.load(Ordering::SeqCst) {
            return Ok(failed());
        }
        let mut bytes = vec![0u8; 2048];
        bytes[1024..1028].copy_from_slice(&0xE0F5_E1E2u32.to_le_bytes());
        std::fs::write(&call.args[1], bytes).unwrap();
        Ok(CommandOutput {
            code: Some(0),
            ..CommandOutput::default()
        })
    });
    let p = packing.clone();
    runner.on("mksquashfs", move |call| {
        std::thread::sleep(Duration::from_millis(150));
        if p.fail.load(Ordering::SeqCst) {
            return Ok(failed());
        }
        std::fs::write(&call.args[1], b"hsqs and more").unwrap();
        Ok(CommandOutput {
            code: Some(0),
            ..CommandOutput::default()
        })
    });
    runner
}

/// Writes a one-layer OCI layout at `dir` whose file `f` holds `text`; returns its
/// manifest digest.
fn layout(dir: &Path, text: &str) -> String {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("f").unwrap();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, text.as_bytes()).unwrap();
    let layer = b.into_inner().unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let config = serde_json::to_vec(&json!({"config": {"Env": ["A=1"], "Cmd": ["sh"]}})).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let m = put(&manifest);
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "1"},
    }]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    m
}

struct Rig {
    dir: tempfile::TempDir,
    packing: Arc<Packing>,
    runner: FakeRunner,
    stop: CancellationToken,
}

impl Rig {
    fn new() -> Self {
        let packing = Arc::new(Packing::default());
        Self {
            dir: tempfile::tempdir().unwrap(),
            packing: packing.clone(),
            runner: packer(&packing),
            stop: CancellationToken::new(),
        }
    }
    fn cfg(&self) -> StoreConfig {
        StoreConfig::new(self.dir.path().join("store"))
    }
    async fn start(&mut self) -> (ImageHandle, crate::ReconcileReport) {
        self.stop.cancel();
        self.stop = CancellationToken::new();
        let sys = ImageSys {
            runner: Arc::new(self.runner.clone()),
        };
        let s = spawn(self.cfg(), sys, self.stop.clone(), Limits::default())
            .await
            .unwrap();
        (s.handle, s.report)
    }
    fn src(&self, name: &str, text: &str) -> (String, String) {
        let dir = self.dir.path().join(name);
        let digest = layout(&dir, text);
        (format!("oci:{}", dir.display()), digest)
    }
    fn files(&self, sub: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.cfg().state_dir.join(sub))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

fn spec(source: &str, name: Option<&str>) -> ImportSpec {
    ImportSpec {
        source: source.into(),
        name: name.map(String::from),
    }
}

#[tokio::test]
async fn concurrent_imports_of_one_image_build_it_once_and_name_it_twice() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let (src, digest) = rig.src("img", "one");
    let (a, b) = tokio::join!(
        h.import(spec(&src, Some("a"))),
        h.import(spec(&src, Some("b:2")))
    );
    assert_eq!(a.unwrap().digest, digest);
    assert_eq!(b.unwrap().digest, digest);
    assert_eq!(rig.runner.calls().len(), 1, "built once");
    let info = h.get("a".into()).await.unwrap();
    assert_eq!(info.names, ["a:latest", "b:2"]);
    assert_eq!(info.config.env, ["A=1"]);
    assert_eq!(rig.files("images"), vec![info.file.clone()]);
    assert!(rig.files("staging").is_empty());
    // By digest and by a 12-digit prefix too; the default name comes from the directory
    // and the reference annotation.
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(h.get(hex[..12].to_string()).await.unwrap().digest, digest);
    let again = h.import(spec(&src, None)).await.unwrap();
    assert_eq!(again.names, ["a:latest", "b:2", "img:1"]);
}

#[tokio::test]
async fn a_name_of_another_image_and_a_failed_pack_change_nothing() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let (one, _) = rig.src("one", "one");
    let (two, _) = rig.src("two", "two");
    h.import(spec(&one, Some("x"))).await.unwrap();
    let err = h.import(spec(&two, Some("x"))).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    rig.packing.fail.store(true, Ordering::SeqCst);
    let err = h.import(spec(&two, Some("y"))).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal, "{err:?}");
    assert!(err.message.contains("no space left"), "{err:?}");
    assert_eq!(h.list().await.unwrap().len(), 1);
    assert_eq!(rig.files("images").len(), 1);
    assert!(rig.files("staging").is_empty());
    // The name was not kept reserved.
    rig.packing.fail.store(false, Ordering::SeqCst);
    h.import(spec(&two, Some("y"))).await.unwrap();
    for (bad, code) in [
        ("docker://x", ErrorCode::InvalidArgument),
        ("oci:relative", ErrorCode::InvalidArgument),
        ("oci:/nonexistent/dir", ErrorCode::NotFound),
    ] {
        let err = h.import(spec(bad, None)).await.unwrap_err();
        assert_eq!(err.code, code, "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn remove_is_refused_while_held_and_untags_before_it_deletes() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let (src, digest) = rig.src("img", "one");
    let info = h.import(spec(&src, Some("a"))).await.unwrap();
    h.tag("a".into(), "b".into()).await.unwrap();
    h.acquire("b".into(), Holder::Mount(4)).await.unwrap();
    let err = h.remove(digest.clone()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    // Dropping one of two names is fine while held.
    h.remove("a".into()).await.unwrap();
    let err = h.remove("b".into()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    assert!(info.file.is_file());
    h.release(digest.clone(), Holder::Mount(4)).await.unwrap();
    h.release(digest.clone(), Holder::Mount(4)).await.unwrap();
    h.remove("b".into()).await.unwrap();
    assert!(!info.file.exists());
    let err = h.acquire(digest, Holder::Mount(5)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{err:?}");
}

#[tokio::test]
async fn images_and_holders_survive_a_restart_and_leftovers_are_swept() {
    let mut rig = Rig::new();
    let (h, _) = rig.start().await;
    let (one, d1) = rig.src("one", "one");
    let (two, d2) = rig.src("two", "two");
    h.import(spec(&one, Some("one"))).await.unwrap();
    let gone = h.import(spec(&two, Some("two"))).await.unwrap();
    h.acquire("one".into(), Holder::Mount(9)).await.unwrap();
    drop(h);
    // A cut-short import's staging directory and file, and a vanished image file.
    let cfg = rig.cfg();
    std::fs::create_dir_all(cfg.staging_dir().join("x/rootfs")).unwrap();
    let stray = cfg.images_dir().join("0000.erofs");
    std::fs::write(&stray, b"x").unwrap();
    std::fs::remove_file(&gone.file).unwrap();
    let (h, report) = rig.start().await;
    assert!(report.staging_removed);
    assert_eq!(report.vanished, vec![d2]);
    assert_eq!(report.orphan_files, vec![stray.clone()]);
    assert!(!stray.exists() && !cfg.staging_dir().exists());
    let list = h.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, d1);
    assert_eq!(list[0].holders, vec![Holder::Mount(9)]);
}

#[tokio::test]
async fn without_mkfs_erofs_images_are_squashfs() {
    let mut rig = Rig::new();
    rig.packing.no_erofs.store(true, Ordering::SeqCst);
    let (h, _) = rig.start().await;
    let (src, digest) = rig.src("img", "one");
    let info = h.import(spec(&src, None)).await.unwrap();
    assert_eq!(info.fs_type, "squashfs");
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(
        info.file,
        rig.cfg().images_dir().join(format!("{hex}.squashfs"))
    );
    assert!(info.file.is_file());
}
