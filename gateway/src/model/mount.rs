//! Mounts: `mount` (v0.2; `attach`, `bind`, `overlay`, and the v0.1 `rbd` kind) and the
//! v0.1 `mount_rbd` / `mount_overlay` objects.

use crate::model::{Attach, Base, Rbd};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// The kinds of mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A filesystem on an attachment.
    Attach,
    /// A bind mount.
    Bind,
    /// NFS (not implemented: 501).
    Nfs,
    /// An overlay of lower mounts.
    Overlay,
    /// v0.1's name of `attach` on an RBD attachment.
    Rbd,
    /// Declared by ImageAPI without a driver (501).
    Uri,
}

impl MountKind {
    /// ImageAPI's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Attach => "attach",
            MountKind::Bind => "bind",
            MountKind::Nfs => "nfs",
            MountKind::Overlay => "overlay",
            MountKind::Rbd => "rbd",
            MountKind::Uri => "uri",
        }
    }
}

/// A filesystem on an attachment (v0.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = mount_attach)]
pub struct MountAttach {
    /// `squashfs`, `erofs`, `ext4` or `xfs`.
    pub fs_type: String,
    /// The attachment: a definition (owned by this mount) or `{"id": N}` (referenced).
    #[schema(no_recursion)]
    pub attach: Box<Attach>,
    /// Mount options; `ro` mounts read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_options: Option<Vec<String>>,
}

/// A filesystem on an RBD attachment (v0.1 `mount_rbd`, and the v0.1 `rbd` mount kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = mount_rbd)]
pub struct MountRbd {
    /// In a request without `rbd_id` and `rbd`: the id of the RBD attachment to mount (as
    /// in the v0.1 tutorial). In a reply: the mount's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The RBD attachment to mount (referenced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rbd_id: Option<i64>,
    /// An RBD attachment defined inline (owned by this mount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub rbd: Option<Box<Rbd>>,
    /// `squashfs`, `erofs`, `ext4` or `xfs`.
    pub fs_type: String,
    /// Mount options; `ro` mounts read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_options: Option<Vec<String>>,
    /// Read-only: where it is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// Read-only: references held on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<i64>,
}

/// One lower layer of an overlay: a mount id (v0.1) or a mount object (a definition or a
/// `{"id": N}` reference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Lower {
    /// A mount id.
    Id(i64),
    /// A mount definition or reference.
    #[schema(no_recursion)]
    Mount(Box<Mount>),
}

impl<'de> Deserialize<'de> for Lower {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if let Some(id) = v.as_i64() {
            return Ok(Lower::Id(id));
        }
        if !v.is_object() {
            return Err(serde::de::Error::custom(
                "expected a mount id (integer) or a mount object",
            ));
        }
        serde_path_to_error::deserialize::<_, Mount>(v)
            .map(|m| Lower::Mount(Box::new(m)))
            .map_err(|e| serde::de::Error::custom(crate::extract::describe(&e)))
    }
}

/// An overlay (v0.2 `mount_overlay`, also the v0.1 top-level object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = mount_overlay)]
pub struct MountOverlay {
    /// v0.1 replies: the mount's id (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Lower layers, uppermost first: mount ids or mount objects; at least one.
    pub lower: Vec<Lower>,
    /// v0.1 replies: where it is mounted (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// Read-only: the (ephemeral) upper directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upperdir: Option<String>,
    /// Read-only: the overlay work directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// v0.1 replies: references held on it (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<i64>,
}

/// A bind mount of a host path or of a path inside another mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = mount_bind)]
pub struct MountBind {
    /// The path, relative to `base` (answered empty by `GET`: see docs/imageapi.md).
    pub path: String,
    /// `root` or `mount`.
    pub base: Base,
    /// With `base: mount`: the mount (a definition or `{"id": N}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub mount: Option<Box<Mount>>,
    /// Recursive bind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    /// Read-only bind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ro: Option<bool>,
}

/// An NFS mount: accepted by the schema, answered with 501.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = mount_nfs)]
pub struct MountNfs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ro: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
}

/// A mount (v0.2): a definition (`kind` plus the kind's object) or a reference
/// (`{"id": N}`, optionally with `kind`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = mount)]
pub struct Mount {
    /// The mount id (read-only, except in a reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The kind; a definition gives the kind's object with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MountKind>,
    /// Read-only: where it is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// Read-only: references held on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub attach: Option<MountAttach>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub rbd: Option<MountRbd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub bind: Option<MountBind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub overlay: Option<MountOverlay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<MountNfs>,
}
