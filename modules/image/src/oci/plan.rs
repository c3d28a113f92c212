//! What an import will do, read from the source before any slow work: the image's digest
//! (which names its file in the store), its default name, its config, and its layers.
//!
//! - OCI layout (`oci:`, `oci-archive:`): `index.json` → the manifest (by the
//!   `org.opencontainers.image.ref.name` annotation when a tag is given, else the only
//!   one; a nested index picks this machine's `linux` platform) → config and layers.
//!   The digest is the manifest's; manifest and config are checked against their
//!   digests here, layers while they are applied.
//! - `docker-archive:`: `manifest.json` (the image with the repository tag asked for, else
//!   its first) → config and layers. The
//!   archive has no manifest, so the digest is the config's (docker's image id).
//! - a plain file: squashfs or erofs by its superblock; the digest is the file's.

use super::blobs::{blob_path, sha256, Blobs, Hashing};
use super::source::{stem_name, Format, Source};
use imagebus_schema::image::ImageConfig;
use imagebus_sys::fsdetect::FsType;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The reference annotation of an index entry.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One layer to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Its path among the image's files.
    pub path: String,
    /// Its expected digest (OCI; docker-archive layers are unchecked).
    pub digest: Option<String>,
}

/// What to import.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The packing.
    pub format: Format,
    /// `sha256:<hex>`.
    pub digest: String,
    /// `NAME[:TAG]` to use when none is given (not yet normalized).
    pub default_name: String,
    /// The config.
    pub config: ImageConfig,
    /// Layers, lowest first (empty for plain files).
    pub layers: Vec<Layer>,
    /// Where the layers are.
    pub blobs: Blobs,
    /// A plain file and its filesystem.
    pub file: Option<(PathBuf, FsType)>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Why a plan could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The source does not exist (or the tag is not in it).
    NotFound(String),
    /// The source is not a valid image.
    Invalid(String),
}

fn invalid(e: impl std::fmt::Display) -> PlanError {
    PlanError::Invalid(e.to_string())
}

fn is_index(media_type: &str) -> bool {
    media_type.contains("image.index") || media_type.contains("manifest.list")
}

/// The architecture name OCI uses for this machine.
fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Reads a blob and checks its digest.
fn verified(blobs: &Blobs, digest: &str) -> Result<Vec<u8>, PlanError> {
    let bytes = blobs
        .read_small(&blob_path(digest).map_err(invalid)?)
        .map_err(invalid)?;
    if sha256(&bytes) != digest {
        return Err(PlanError::Invalid(format!(
            "blob {digest} does not match its digest"
        )));
    }
    Ok(bytes)
}

fn config_of(bytes: &[u8]) -> Result<ImageConfig, PlanError> {
    let file: ConfigFile =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("image config: {e}")))?;
    let c = file.config.unwrap_or_default();
    Ok(ImageConfig {
        env: c.env.unwrap_or_default(),
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        user: c.user.filter(|u| !u.is_empty()),
        labels: c.labels.unwrap_or_default(),
    })
}

/// Makes the plan for `src` (blocking I/O).
pub fn plan(src: &Source) -> Result<Plan, PlanError> {
    if !src.path.exists() {
        return Err(PlanError::NotFound(format!(
            "{:?} does not exist",
            src.path
        )));
    }
    match src.format {
        Format::Oci => {
            if !src.path.is_dir() {
                return Err(invalid(format!("{:?} is not a directory", src.path)));
            }
            oci(src, Blobs::Dir(src.path.clone()))
        }
        Format::OciArchive => oci(src, Blobs::archive(&src.path).map_err(invalid)?),
        Format::DockerArchive => docker(src, Blobs::archive(&src.path).map_err(invalid)?),
        Format::File => file(src),
    }
}

fn oci(src: &Source, blobs: Blobs) -> Result<Plan, PlanError> {
    if !blobs.has("index.json") {
        return Err(invalid(format!(
            "{:?} has no index.json: not an OCI layout",
            src.path
        )));
    }
    let index: Index = serde_json::from_slice(&blobs.read_small("index.json").map_err(invalid)?)
        .map_err(|e| invalid(format!("index.json: {e}")))?;
    let mut chosen = match &src.tag {
        Some(tag) => index
            .manifests
            .into_iter()
            .find(|d| d.annotations.get(REF_NAME) == Some(tag))
            .ok_or_else(|| {
                PlanError::NotFound(format!("no image tagged {tag:?} in {:?}", src.path))
            })?,
        None => {
            let mut all = index.manifests;
            if all.len() != 1 {
                return Err(invalid(format!(
                    "{:?} holds {} images: name one with :TAG",
                    src.path,
                    all.len()
                )));
            }
            all.remove(0)
        }
    };
    let ref_name = chosen.annotations.get(REF_NAME).cloned();
    // A multi-platform index: this machine's linux image.
    for _ in 0..2 {
        if !is_index(&chosen.media_type) {
            break;
        }
        let nested: Index = serde_json::from_slice(&verified(&blobs, &chosen.digest)?)
            .map_err(|e| invalid(format!("nested index: {e}")))?;
        chosen = nested
            .manifests
            .into_iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_none_or(|p| p.os == "linux" && p.architecture == this_arch())
            })
            .ok_or_else(|| PlanError::NotFound(format!("no linux/{} image", this_arch())))?;
    }
    let manifest: Manifest = serde_json::from_slice(&verified(&blobs, &chosen.digest)?)
        .map_err(|e| invalid(format!("manifest {}: {e}", chosen.digest)))?;
    let config = config_of(&verified(&blobs, &manifest.config.digest)?)?;
    let layers = manifest
        .layers
        .iter()
        .map(|l| {
            Ok(Layer {
                path: blob_path(&l.digest).map_err(invalid)?,
                digest: Some(l.digest.clone()),
            })
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let stem = stem_name(&src.path);
    let default_name = match ref_name {
        // A full reference (`busybox:1`, `docker.io/library/busybox:1`) or only a tag.
        Some(r) if r.contains(':') || r.contains('/') => r,
        Some(tag) => format!("{stem}:{tag}"),
        None => stem,
    };
    Ok(Plan {
        format: src.format,
        digest: chosen.digest,
        default_name,
        config,
        layers,
        blobs,
        file: None,
    })
}

fn docker(src: &Source, blobs: Blobs) -> Result<Plan, PlanError> {
    if !blobs.has("manifest.json") {
        return Err(invalid(format!(
            "{:?} has no manifest.json: not a docker archive",
            src.path
        )));
    }
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&blobs.read_small("manifest.json").map_err(invalid)?)
            .map_err(|e| invalid(format!("manifest.json: {e}")))?;
    let entry = match &src.tag {
        // `NAME:TAG`: the image with that repository tag (`busybox` means `busybox:latest`).
        Some(want) => {
            let want = super::source::normalize_name(want).unwrap_or_else(|_| want.clone());
            entries
                .into_iter()
                .find(|e| {
                    e.repo_tags.iter().flatten().any(|t| {
                        *t == want || super::source::normalize_name(t).is_ok_and(|n| n == want)
                    })
                })
                .ok_or_else(|| {
                    PlanError::NotFound(format!("no image tagged {want:?} in {:?}", src.path))
                })?
        }
        None => entries
            .into_iter()
            .next()
            .ok_or_else(|| invalid("manifest.json lists no image"))?,
    };
    let config_bytes = blobs.read_small(&entry.config).map_err(invalid)?;
    let config = config_of(&config_bytes)?;
    let default_name = src
        .tag
        .clone()
        .or_else(|| entry.repo_tags.and_then(|t| t.into_iter().next()))
        .unwrap_or_else(|| stem_name(&src.path));
    Ok(Plan {
        format: src.format,
        digest: sha256(&config_bytes),
        default_name,
        config,
        layers: entry
            .layers
            .into_iter()
            .map(|path| Layer { path, digest: None })
            .collect(),
        blobs,
        file: None,
    })
}

fn file(src: &Source) -> Result<Plan, PlanError> {
    use imagebus_sys::fsdetect::{FsProbe, LinuxFsProbe};
    if !src.path.is_file() {
        return Err(invalid(format!("{:?} is not a regular file", src.path)));
    }
    let fs = LinuxFsProbe
        .probe(&src.path)
        .map_err(invalid)?
        .filter(|fs| matches!(fs, FsType::Squashfs | FsType::Erofs))
        .ok_or_else(|| invalid(format!("{:?} is neither squashfs nor erofs", src.path)))?;
    let f = std::fs::File::open(&src.path).map_err(invalid)?;
    let digest = Hashing::new(f).finish().map_err(invalid)?;
    Ok(Plan {
        format: Format::File,
        digest,
        default_name: stem_name(&src.path),
        config: ImageConfig::default(),
        layers: Vec::new(),
        blobs: Blobs::Dir(PathBuf::from("/")),
        file: Some((src.path.clone(), fs)),
    })
}
