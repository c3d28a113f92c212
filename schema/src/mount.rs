//! `mount.mount@1`: filesystem images on attachments, overlays and bind mounts.

use crate::attach::AttachRef;
use crate::common::{Holder, Selector};
use imagebus_bus::RemoteError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Module name on the bus.
pub const MODULE: &str = "mount";

/// What to mount. Request type: unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// Optional unique name.
    #[serde(default)]
    pub name: Option<String>,
    /// What is mounted.
    pub source: MountSource,
}

impl MountSpec {
    /// The same spec with the secret of every inline RBD attachment, at any depth,
    /// replaced by [`crate::attach::Secret::REDACTED`]: what may be stored beside a
    /// container or returned, since only the attach module needs the key.
    pub fn redacted(&self) -> Self {
        let source = match &self.source {
            MountSource::Image(m) => MountSource::Image(ImageMount {
                attach: m.attach.redacted(),
                ..m.clone()
            }),
            MountSource::Overlay(o) => MountSource::Overlay(OverlayMount {
                lowers: o.lowers.iter().map(MountRef::redacted).collect(),
                persist_dir: o.persist_dir.clone(),
            }),
            MountSource::Bind(b) => MountSource::Bind(BindMount {
                base: b.base.as_ref().map(|m| Box::new(m.redacted())),
                ..b.clone()
            }),
            MountSource::Stored(s) => MountSource::Stored(s.clone()),
        };
        Self {
            name: self.name.clone(),
            source,
        }
    }
}

/// The kinds of mount. msgpack/JSON form: `{"kind": "overlay", "lowers": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MountSource {
    /// A filesystem image on an attachment.
    Image(ImageMount),
    /// An overlay of one or more lower mounts.
    Overlay(OverlayMount),
    /// A bind mount of a host path or of a path inside another mount.
    Bind(BindMount),
    /// An image of the image store (`image.image@1`), read-only on a loop device.
    Stored(StoredMount),
}

impl MountSource {
    /// `image`, `overlay`, `bind` or `stored`.
    pub fn kind(&self) -> &'static str {
        match self {
            MountSource::Image(_) => "image",
            MountSource::Overlay(_) => "overlay",
            MountSource::Bind(_) => "bind",
            MountSource::Stored(_) => "stored",
        }
    }
}

/// A filesystem on a block device from the attach module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageMount {
    /// The device: an inline attach spec (owned) or an existing attachment (referenced).
    pub attach: AttachRef,
    /// `squashfs`, `erofs`, `ext4` or `xfs`; detected from the superblock when absent.
    #[serde(default)]
    pub fs_type: Option<String>,
    /// Extra mount options (`-o` style, e.g. `noatime`); validated against a safe list.
    #[serde(default)]
    pub options: Vec<String>,
    /// Mount read-only; forced for read-only devices and read-only filesystems.
    #[serde(default = "default_true")]
    pub read_only: bool,
}

/// An overlay filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayMount {
    /// Lower layers, uppermost first (overlayfs `lowerdir=` order); at least one.
    pub lowers: Vec<MountRef>,
    /// Keep upper and work directories under this absolute host directory (created if
    /// missing, never deleted by us). `None`: ephemeral, under the run directory, removed
    /// on unmount.
    #[serde(default)]
    pub persist_dir: Option<PathBuf>,
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindMount {
    /// With `base`: a relative path inside that mount (no `..`, no escaping symlinks).
    /// Without: an absolute host path.
    pub path: PathBuf,
    /// The mount the path lives in, if any.
    #[serde(default)]
    pub base: Option<Box<MountRef>>,
    /// Make the bind read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Recursive bind (`rbind`).
    #[serde(default)]
    pub recursive: bool,
}

/// An image of the image store, mounted read-only from its file on a loop device; the
/// mount holds the image (`Holder::Mount(id)`) until it is unmounted.
///
/// msgpack/JSON form: `{"kind": "stored", "image": "busybox:1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredMount {
    /// `NAME[:TAG]`, `sha256:<hex>` or at least 12 leading hex digits of a digest.
    pub image: String,
    /// Extra mount options, as for [`ImageMount::options`].
    #[serde(default)]
    pub options: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// A mount given inline (owned by its parent) or referenced (shared).
///
/// msgpack/JSON form: `{"existing": {"name": "base"}}` or `{"inline": {<MountSpec>}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountRef {
    /// A mount that already exists; the parent takes a reference on it.
    Existing(Selector),
    /// A new mount owned by the parent and collected with it.
    Inline(Box<MountSpec>),
}

impl MountRef {
    /// The same reference with every inline secret redacted ([`MountSpec::redacted`]).
    pub fn redacted(&self) -> Self {
        match self {
            MountRef::Existing(sel) => MountRef::Existing(sel.clone()),
            MountRef::Inline(spec) => MountRef::Inline(Box::new(spec.redacted())),
        }
    }
}

/// A mount as the module reports it. Reply type: tolerant of unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountInfo {
    /// Never reused.
    pub id: u64,
    /// Unique name, if one was given.
    #[serde(default)]
    pub name: Option<String>,
    /// `image`, `overlay` or `bind`.
    pub kind: String,
    /// Where it is mounted (a fresh directory under the daemon's run directory).
    pub mountpoint: PathBuf,
    /// Filesystem type as mounted (`squashfs`, `overlay`, ...; `none` for binds).
    pub fs_type: String,
    /// Whether the mount is read-only.
    pub read_only: bool,
    /// What is mounted: the device of an image mount, the host path of a bind (resolved
    /// inside its base mount, if any), `overlay` for an overlay.
    #[serde(default)]
    pub source: PathBuf,
    /// An overlay's upper directory (where its writes go).
    #[serde(default)]
    pub upper_dir: Option<PathBuf>,
    /// An overlay's work directory.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    /// The attachment under an image mount.
    #[serde(default)]
    pub attachment: Option<u64>,
    /// The mounts this one stands on (overlay lowers, bind base), in order.
    #[serde(default)]
    pub children: Vec<u64>,
    /// Who holds references; the mount is collected when this becomes empty.
    pub holders: Vec<Holder>,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

impl MountInfo {
    /// Number of references.
    pub fn refs(&self) -> usize {
        self.holders.len()
    }
}

/// Mounts filesystems. Served as `mount.mount@1`.
#[imagebus_bus::object(module = "mount", name = "mount", version = "1")]
pub trait MountModule: Send + Sync {
    /// Mounts on a fresh mountpoint; inline children are created (and owned) in the same
    /// call, all or nothing. `holder` owns the first reference (`None` = `User`).
    /// Errors: `InvalidArgument` (bad spec, unknown filesystem type, path escapes),
    /// `NotFound` (a referenced child), `Conflict` (name taken), plus the attach module's.
    async fn mount(
        &self,
        spec: MountSpec,
        holder: Option<Holder>,
    ) -> Result<MountInfo, RemoteError>;

    /// Drops the `User` reference and unmounts (lazily) when no other holder remains,
    /// cascading to owned children. Errors: `NotFound`; `Conflict` while other holders
    /// remain, unless `force`.
    async fn unmount(&self, target: Selector, force: bool) -> Result<(), RemoteError>;

    /// One mount. Errors: `NotFound`.
    #[bus(read)]
    async fn get(&self, target: Selector) -> Result<MountInfo, RemoteError>;

    /// Every mount, by id.
    #[bus(read)]
    async fn list(&self) -> Result<Vec<MountInfo>, RemoteError>;

    /// Adds `holder` as a reference (idempotent). Errors: `NotFound`; `InvalidArgument`
    /// when the holder's owner does not exist or does not stand on this mount;
    /// `Unavailable` when the container module cannot be asked.
    async fn acquire(&self, target: Selector, holder: Holder) -> Result<MountInfo, RemoteError>;

    /// Removes `holder`'s reference (idempotent); unmounts and cascades when none remain.
    /// Errors: `Conflict` when the holder's owner (a live container or parent mount) still
    /// holds the mount; `Unavailable` when the container module cannot be asked.
    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError>;

    /// Whether mount `id` holds a reference to attachment `attachment`: its create is in
    /// flight (and not being undone), or it exists, stands on `attachment` and is not being
    /// removed. For the attach module to check `Mount(id)` holders with their owner. A
    /// read: answered from the current state while commands are in flight.
    #[bus(read)]
    async fn holds(&self, id: u64, attachment: u64) -> Result<bool, RemoteError>;
}
