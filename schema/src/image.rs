//! `image.image@1`: the image store. OCI images (an OCI layout directory, an
//! `oci-archive` or a `docker-archive` tar) and plain squashfs/erofs files are imported
//! into one read-only filesystem image file each, named by digest, which mounts use
//! through `{"kind": "stored", "image": "NAME:TAG"}` sources.

use crate::common::Holder;
use imagebus_bus::RemoteError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Module name on the bus.
pub const MODULE: &str = "image";

/// What to import. Request type: unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSpec {
    /// Where the image is, in skopeo's transport syntax: `oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]`, or the absolute path
    /// of a squashfs or erofs file. Paths are absolute.
    pub source: String,
    /// The name to give it (`NAME[:TAG]`, tag `latest` when absent). Default: the
    /// source's reference annotation or repository tag, else the file or directory name.
    #[serde(default)]
    pub name: Option<String>,
}

/// The parts of the OCI image config that a container built from the image uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// `KEY=VALUE` environment entries.
    pub env: Vec<String>,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// The default command (arguments of the entrypoint, if any).
    pub cmd: Vec<String>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// The user (`uid[:gid]` or a name).
    pub user: Option<String>,
    /// Labels, `atomic.type` among them.
    pub labels: BTreeMap<String, String>,
}

/// An image as the store reports it. Reply type: tolerant of unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// `sha256:<hex>`: the manifest digest (OCI), the config digest (docker-archive, which
    /// carries no manifest) or the file's digest (plain squashfs/erofs).
    pub digest: String,
    /// Its names (`NAME:TAG`), sorted.
    pub names: Vec<String>,
    /// `erofs` or `squashfs`.
    pub fs_type: String,
    /// The read-only filesystem image file.
    pub file: PathBuf,
    /// The file's size in bytes.
    pub size: u64,
    /// `oci`, `oci-archive`, `docker-archive` or `file`.
    pub format: String,
    /// The image config (empty for plain files).
    #[serde(default)]
    pub config: ImageConfig,
    /// The mounts using the image; it cannot be removed while any remains.
    pub holders: Vec<Holder>,
    /// Import time, seconds since the Unix epoch.
    pub created_at: u64,
}

/// The image store. Served as `image.image@1`. A `target` is a name (`NAME[:TAG]`, tag
/// `latest` when absent), a digest (`sha256:<hex>`) or at least 12 leading hex digits of
/// one.
#[imagebus_bus::object(module = "image", name = "image", version = "1")]
pub trait ImageModule: Send + Sync {
    /// Imports an image (see [`ImportSpec`]) and names it. Importing an image already
    /// stored only adds the name. Errors: `InvalidArgument` (bad source syntax, not an
    /// image, a layer path that escapes the root, a bad name), `NotFound` (no such file,
    /// no such tag), `Conflict` (the name belongs to another image), `Timeout`.
    async fn import(&self, spec: ImportSpec) -> Result<ImageInfo, RemoteError>;

    /// One image. Errors: `NotFound`.
    #[bus(read)]
    async fn get(&self, target: String) -> Result<ImageInfo, RemoteError>;

    /// Every image, by digest.
    #[bus(read)]
    async fn list(&self) -> Result<Vec<ImageInfo>, RemoteError>;

    /// Adds the name `name` to the image `target`. Errors: `NotFound`, `InvalidArgument`,
    /// `Conflict` (the name belongs to another image).
    async fn tag(&self, target: String, name: String) -> Result<ImageInfo, RemoteError>;

    /// By a name the image has others of: drops that name. Otherwise (its last name, or
    /// its digest) removes the image and its file. Errors: `NotFound`; `Conflict` while a
    /// mount holds the image.
    async fn remove(&self, target: String) -> Result<(), RemoteError>;

    /// Adds `holder` as a user of the image (idempotent) and returns it; the image cannot
    /// be removed until every holder released it. Errors: `NotFound`.
    async fn acquire(&self, target: String, holder: Holder) -> Result<ImageInfo, RemoteError>;

    /// Drops `holder` (idempotent; an unknown digest is not an error).
    async fn release(&self, digest: String, holder: Holder) -> Result<(), RemoteError>;
}
