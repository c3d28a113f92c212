//! OCI test images written by hand, no registry: layer tars built with the `tar` crate
//! (raw headers where a test needs a path the crate would refuse), an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`), an `oci-archive` (a tar of a layout)
//! and a `docker-archive` (`manifest.json`, config and `layer.tar`s), as skopeo, podman
//! and umoci write them.

use crate::image::busybox_rootfs;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One entry of a hand-made layer.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory (0755).
    Dir(String),
    /// A regular file (0644) with its contents.
    File(String, String),
    /// A symbolic link and its target.
    Symlink(String, String),
    /// A hard link and its target path.
    Hardlink(String, String),
}

impl Entry {
    /// A directory.
    pub fn dir(p: &str) -> Self {
        Entry::Dir(p.into())
    }
    /// A file.
    pub fn file(p: &str, contents: &str) -> Self {
        Entry::File(p.into(), contents.into())
    }
    /// A symlink.
    pub fn symlink(p: &str, target: &str) -> Self {
        Entry::Symlink(p.into(), target.into())
    }
    /// A hard link.
    pub fn hardlink(p: &str, target: &str) -> Self {
        Entry::Hardlink(p.into(), target.into())
    }
    /// The whiteout of `path`.
    pub fn whiteout(path: &str) -> Self {
        let p = Path::new(path);
        let name = p.file_name().unwrap().to_string_lossy();
        let wh = match p.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => format!("{}/.wh.{name}", dir.display()),
            None => format!(".wh.{name}"),
        };
        Entry::File(wh, String::new())
    }
    /// The opaque marker of directory `dir`.
    pub fn opaque(dir: &str) -> Self {
        Entry::File(format!("{dir}/.wh..wh..opq"), String::new())
    }
}

fn header(path: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    // Raw bytes: the crate's setters refuse `..` and absolute paths.
    assert!(path.len() < 100, "test paths fit the old header");
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(l) = link {
        let ln = &mut h.as_old_mut().linkname;
        ln.fill(0);
        ln[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    h
}

/// An uncompressed layer tar of `entries`, in order.
pub fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (h, data): (tar::Header, &[u8]) = match e {
            Entry::Dir(p) => (header(p, tar::EntryType::Directory, 0, None), b""),
            Entry::File(p, d) => (
                header(p, tar::EntryType::Regular, d.len() as u64, None),
                d.as_bytes(),
            ),
            Entry::Symlink(p, t) => (header(p, tar::EntryType::Symlink, 0, Some(t)), b""),
            Entry::Hardlink(p, t) => (header(p, tar::EntryType::Link, 0, Some(t)), b""),
        };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// The busybox rootfs (see [`busybox_rootfs`]) as one uncompressed layer tar.
pub fn busybox_layer() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    busybox_rootfs(&root);
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &root).unwrap();
    b.into_inner().unwrap()
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// An image config with the fields the store keeps.
pub fn config(env: &[&str], cmd: &[&str], labels: &[(&str, &str)]) -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": env,
            "Entrypoint": null,
            "Cmd": cmd,
            "WorkingDir": "/",
            "User": "0:0",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": []},
    })
}

fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = digest(bytes);
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
    d
}

/// Writes an OCI image layout at `dir` (created) with `layers` (each gzip-compressed)
/// and `config`, tagged `ref_name`. Returns the manifest digest.
pub fn oci_layout(
    dir: &Path,
    layers: &[Vec<u8>],
    config: &serde_json::Value,
    ref_name: &str,
) -> String {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let cfg = serde_json::to_vec(config).unwrap();
    let cfg_digest = write_blob(dir, &cfg);
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let gz = gzip(l);
            let d = write_blob(dir, &gz);
            json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d,
                "size": gz.len(),
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": cfg_digest,
            "size": cfg.len(),
        },
        "layers": layer_descs,
    }))
    .unwrap();
    let m_digest = write_blob(dir, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": ref_name},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    m_digest
}

/// Packs directory `dir` into the tar `out` (an `oci-archive` when `dir` is a layout).
pub fn tar_dir(dir: &Path, out: &Path) {
    let f = fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap().sync_all().unwrap();
}

/// Writes a `docker-archive` tar at `out` with `layers` (uncompressed, as docker saves
/// them), `config` and the repository tag `repo_tag`. Returns the config digest (the
/// store's digest of a docker-archive image).
pub fn docker_archive(
    out: &Path,
    layers: &[Vec<u8>],
    config: &serde_json::Value,
    repo_tag: &str,
) -> String {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let cfg = serde_json::to_vec(config).unwrap();
    let cfg_digest = digest(&cfg);
    let cfg_name = format!("{}.json", cfg_digest.trim_start_matches("sha256:"));
    fs::write(dir.join(&cfg_name), &cfg).unwrap();
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = dir.join(format!("layer{i}"));
        fs::create_dir(&d).unwrap();
        fs::write(d.join("layer.tar"), l).unwrap();
        names.push(format!("layer{i}/layer.tar"));
    }
    let manifest = json!([{ "Config": cfg_name, "RepoTags": [repo_tag], "Layers": names }]);
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    tar_dir(dir, out);
    cfg_digest
}

/// The two-layer busybox test image: layer 1 is busybox plus `/etc/motd`, `/old/a`,
/// `/old/b` and `/data/lower`; layer 2 whites out `/etc/motd` and `/old/a`, makes
/// `/data` opaque (adding `/data/upper`) and adds `/hello.txt`.
pub fn two_layers() -> Vec<Vec<u8>> {
    let mut base = busybox_layer();
    // Append the extra files as a second tar stream would not be valid: rebuild instead.
    let extra = layer(&[
        Entry::file("etc/motd", "welcome"),
        Entry::dir("old/"),
        Entry::file("old/a", "a"),
        Entry::file("old/b", "b"),
        Entry::dir("data/"),
        Entry::file("data/lower", "lower"),
    ]);
    base = concat_tars(&base, &extra);
    let top = layer(&[
        Entry::whiteout("etc/motd"),
        Entry::whiteout("old/a"),
        Entry::opaque("data"),
        Entry::file("data/upper", "upper"),
        Entry::file("hello.txt", "hello from the image\n"),
    ]);
    vec![base, top]
}

/// One tar holding the entries of `a` then those of `b`.
pub fn concat_tars(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for src in [a, b] {
        let mut ar = tar::Archive::new(src);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            out.append(&h, &data[..]).unwrap();
        }
    }
    out.into_inner().unwrap()
}

/// Files directly below `dir`, sorted (for checking what an import left).
pub fn names_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
