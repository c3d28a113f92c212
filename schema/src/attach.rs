//! `attach.attach@1`: block devices from Ceph RBD images, image files (loop) and local
//! block devices.

use crate::common::{Holder, Selector};
use imagebus_bus::RemoteError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Module name on the bus.
pub const MODULE: &str = "attach";

/// What to attach. Request type: unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    /// Optional unique name (see `common::validate_name`).
    #[serde(default)]
    pub name: Option<String>,
    /// The device source.
    pub source: AttachSource,
}

impl AttachSpec {
    /// The same spec with any secret replaced by [`Secret::REDACTED`].
    pub fn redacted(&self) -> Self {
        Self {
            name: self.name.clone(),
            source: self.source.redacted(),
        }
    }
}

/// The kinds of attachment. msgpack/JSON form: `{"kind": "loop", "path": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttachSource {
    /// A Ceph RBD image (krbd, or rbd-fuse + loop where the kernel has no rbd).
    Rbd(RbdSource),
    /// A regular image file on a free loop device.
    Loop(LoopSource),
    /// An existing local block device.
    Local(LocalSource),
}

impl AttachSource {
    /// `rbd`, `loop` or `local`.
    pub fn kind(&self) -> &'static str {
        match self {
            AttachSource::Rbd(_) => "rbd",
            AttachSource::Loop(_) => "loop",
            AttachSource::Local(_) => "local",
        }
    }

    /// The same source with any secret replaced by [`Secret::REDACTED`].
    pub fn redacted(&self) -> Self {
        match self {
            AttachSource::Rbd(r) => AttachSource::Rbd(RbdSource {
                secret: Secret::redacted(),
                ..r.clone()
            }),
            other => other.clone(),
        }
    }
}

/// A Ceph RBD image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbdSource {
    /// Monitor addresses, `ip[:port]` (port defaults to 6789); at least one.
    pub monitors: Vec<String>,
    /// Pool name.
    pub pool: String,
    /// Image name.
    pub image: String,
    /// Snapshot to map (always read-only); `None` maps the image head.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// RADOS namespace inside the pool.
    #[serde(default)]
    pub namespace: Option<String>,
    /// cephx user name without the `client.` prefix.
    pub user: String,
    /// cephx key (base64). Never logged, never stored world-readable, never returned.
    pub secret: Secret,
    /// Map read-only (default true).
    #[serde(default = "default_true")]
    pub read_only: bool,
    /// Allow a second read-only mapping of the same image/snapshot to share this one's
    /// device instead of failing with `Conflict`.
    #[serde(default)]
    pub shared: bool,
}

/// An image file attached on a loop device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopSource {
    /// Absolute path of a regular file.
    pub path: PathBuf,
    /// Attach read-only (default true).
    #[serde(default = "default_true")]
    pub read_only: bool,
}

/// An existing block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSource {
    /// Absolute path of a block device node (e.g. `/dev/vdb`).
    pub path: PathBuf,
    /// Recorded as read-only for the mounts above it (default false).
    #[serde(default)]
    pub read_only: bool,
}

fn default_true() -> bool {
    true
}

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// What replaces a secret in replies.
    pub const REDACTED: &'static str = "<redacted>";

    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The redaction marker as a secret.
    pub fn redacted() -> Self {
        Self(Self::REDACTED.to_string())
    }

    /// The secret itself: for writing to a 0600 file or the kernel, nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

/// An attachment as the module reports it. Reply type: tolerant of unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachInfo {
    /// Never reused.
    pub id: u64,
    /// Unique name, if one was given.
    #[serde(default)]
    pub name: Option<String>,
    /// The source as requested, secret redacted.
    pub source: AttachSource,
    /// The block device node, e.g. `/dev/loop3` or `/dev/rbd0`.
    pub device: PathBuf,
    /// Which driver mapped it: `krbd`, `rbd-fuse`, `loop` or `local`.
    pub driver: String,
    /// Whether the device is read-only.
    pub read_only: bool,
    /// Who holds references; the object is collected when this becomes empty.
    pub holders: Vec<Holder>,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

impl AttachInfo {
    /// Number of references.
    pub fn refs(&self) -> usize {
        self.holders.len()
    }
}

/// An attachment given inline (owned by its parent) or referenced (shared).
///
/// msgpack/JSON form: `{"existing": {"id": 3}}` or `{"inline": {<AttachSpec>}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachRef {
    /// An attachment that already exists; the parent takes a reference on it.
    Existing(Selector),
    /// A new attachment owned by the parent and collected with it.
    Inline(Box<AttachSpec>),
}

impl AttachRef {
    /// The same reference with any secret of an inline spec redacted.
    pub fn redacted(&self) -> Self {
        match self {
            AttachRef::Existing(sel) => AttachRef::Existing(sel.clone()),
            AttachRef::Inline(spec) => AttachRef::Inline(Box::new(spec.redacted())),
        }
    }
}

/// Maps and unmaps block devices. Served as `attach.attach@1`.
#[imagebus_bus::object(module = "attach", name = "attach", version = "1")]
pub trait AttachModule: Send + Sync {
    /// Attaches a device. `holder` is who owns the first reference (`None` = `User`).
    /// Errors: `InvalidArgument` (bad spec, missing file, not a block device), `Conflict`
    /// (name taken; image already mapped and not shared), `Unavailable` (monitors
    /// unreachable), `NotFound` (unknown RBD image), `Internal`.
    async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, RemoteError>;

    /// Drops the `User` reference and detaches when no other holder remains.
    /// Errors: `NotFound`; `Conflict` while other holders remain, unless `force`, which
    /// detaches regardless (the holders' devices go away).
    async fn detach(&self, target: Selector, force: bool) -> Result<(), RemoteError>;

    /// One attachment. Errors: `NotFound`.
    #[bus(read)]
    async fn get(&self, target: Selector) -> Result<AttachInfo, RemoteError>;

    /// Every attachment, by id.
    #[bus(read)]
    async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError>;

    /// Adds `holder` as a reference (idempotent). Errors: `NotFound`.
    async fn acquire(&self, target: Selector, holder: Holder) -> Result<AttachInfo, RemoteError>;

    /// Removes `holder`'s reference (idempotent; unknown ids are already gone and succeed);
    /// the attachment is detached when no holder remains.
    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("AQDsecret==");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        let src = AttachSource::Rbd(RbdSource {
            monitors: vec!["127.0.0.1:6789".into()],
            pool: "rbd".into(),
            image: "img".into(),
            snapshot: None,
            namespace: None,
            user: "u".into(),
            secret: s,
            read_only: true,
            shared: false,
        });
        assert!(!format!("{src:?}").contains("AQD"));
        let json = serde_json::to_string(&src.redacted()).unwrap();
        assert!(!json.contains("AQD"), "{json}");
    }

    #[test]
    fn spec_json_form_and_strictness() {
        let spec: AttachSpec =
            serde_json::from_str(r#"{"name":"img","source":{"kind":"loop","path":"/tmp/a.sqsh"}}"#)
                .unwrap();
        assert_eq!(
            spec.source,
            AttachSource::Loop(LoopSource {
                path: "/tmp/a.sqsh".into(),
                read_only: true
            })
        );
        let bad = serde_json::from_str::<AttachSpec>(
            r#"{"source":{"kind":"loop","path":"/a","readonly":true}}"#,
        );
        assert!(bad.is_err());
        let packed = rmp_serde::to_vec_named(&spec).unwrap();
        let back: AttachSpec = rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(back, spec);
    }
}
