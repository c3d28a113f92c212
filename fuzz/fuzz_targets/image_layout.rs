//! The image importer's reading of an image's metadata (`oci::plan::plan`): an OCI layout
//! directory (`index.json` → manifest, possibly through a nested index → config) or a
//! `docker-archive` tar (`manifest.json` → config), written from the input.
//!
//! Input: one selector byte (bit 0: docker archive instead of an OCI layout; bit 1: ask
//! for tag `1`), then up to three NUL-separated parts. OCI: `index.json`, then two blobs
//! stored under their digests; `@M` in the index stands for the first blob's digest and
//! `@C` in the first blob for the second's, so seeds can chain valid documents. Docker:
//! `manifest.json`, `config.json` and `layer.tar` members of the archive.
//!
//! Invariants: no panic; a plan's digest is `sha256:` and 64 lower-case hex digits; an OCI
//! plan's layer paths stay under `blobs/sha256/` with only normal components; the default
//! name is not empty.
#![no_main]

use imagebus_image::oci::blobs::sha256;
use imagebus_image::oci::plan::plan;
use imagebus_image::oci::source::{Format, Source};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ib-fuzz-layout-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

fn replace(bytes: &[u8], token: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(token) {
            out.extend_from_slice(with);
            i += token.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn oci_layout(dir: &Path, parts: &[&[u8]]) -> PathBuf {
    let layout = dir.join("layout");
    let _ = fs::remove_dir_all(&layout);
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("blobs directory");
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let config = parts.get(2).copied().unwrap_or_default().to_vec();
    let c = sha256(&config);
    let manifest = replace(
        parts.get(1).copied().unwrap_or_default(),
        b"@C",
        c.as_bytes(),
    );
    let m = sha256(&manifest);
    let index = replace(
        parts.first().copied().unwrap_or_default(),
        b"@M",
        m.as_bytes(),
    );
    fs::write(blobs.join(hex_of(&c)), &config).expect("config blob");
    fs::write(blobs.join(hex_of(&m)), &manifest).expect("manifest blob");
    fs::write(layout.join("index.json"), &index).expect("index.json");
    layout
}

fn docker_archive(dir: &Path, parts: &[&[u8]]) -> PathBuf {
    let file = dir.join("image.tar");
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in ["manifest.json", "config.json", "layer.tar"]
        .iter()
        .zip(parts)
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, *bytes)
            .expect("tar member");
    }
    fs::write(&file, builder.into_inner().expect("tar")).expect("archive");
    file
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let parts: Vec<&[u8]> = rest.splitn(3, |b| *b == 0).collect();
    let dir = scratch();
    let docker = selector & 1 == 1;
    let source = Source {
        format: if docker {
            Format::DockerArchive
        } else {
            Format::Oci
        },
        path: if docker {
            docker_archive(dir, &parts)
        } else {
            oci_layout(dir, &parts)
        },
        tag: (selector & 2 == 2).then(|| "1".to_string()),
    };
    let Ok(p) = plan(&source) else {
        return;
    };
    let hex = p.digest.strip_prefix("sha256:").expect("a sha256: digest");
    assert!(
        hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "digest {:?}",
        p.digest
    );
    assert!(!p.default_name.is_empty());
    if !docker {
        for layer in &p.layers {
            let path = Path::new(&layer.path);
            assert!(
                path.starts_with("blobs/sha256")
                    && path.components().all(|c| matches!(c, Component::Normal(_))),
                "layer path {:?}",
                layer.path
            );
        }
    }
});
