//! Attachments: `attach` (v0.2) and `rbd` (v0.1).

use crate::model::Mount;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Options of an RBD mapping, as ImageAPI names them. Only `ro`, `rw`, `name`, `secret`
/// and `namespace` are used; the others are accepted and ignored (see docs/imageapi.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = rbd_options)]
pub struct RbdOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noshare: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nocrc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceph_requires_signatures: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noceph_requires_signatures: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_nodelay: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notcp_nodelay: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cephx_sign_messages: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nocephx_sign_messages: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub osdkeepalive: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub osd_idle_ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Map read-write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rw: Option<bool>,
    /// Map read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ro: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_on_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notrim: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_on_full: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_size: Option<i64>,
    /// cephx user name (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// cephx key (required); always answered as `"<redacted>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// RADOS namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A Ceph RBD mapping inside an `attach` (v0.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = attach_rbd)]
pub struct AttachRbd {
    /// Monitor addresses, `ip` or `ip:port` (port 6789 by default).
    pub monitors: Vec<String>,
    /// Pool name.
    pub pool: String,
    /// Image name.
    pub image: String,
    /// Snapshot to map (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The rbd device number (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<i64>,
    /// Mapping options, including the cephx `name` and `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<RbdOptions>,
}

/// A v0.1 RBD mapping (`/attach/rbd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = rbd)]
pub struct Rbd {
    /// Read-only: the attachment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Read-only: references held on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<i64>,
    /// Read-only: the block device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_file: Option<String>,
    /// Monitor addresses, `ip` or `ip:port`.
    pub monitors: Vec<String>,
    /// Pool name.
    pub pool: String,
    /// Image name.
    pub image: String,
    /// Snapshot to map (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Mapping options, including the cephx `name` and `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<RbdOptions>,
}

/// What a path is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// The host's `/`.
    Root,
    /// The mountpoint of `mount`.
    Mount,
}

/// An image file on a loop device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = attach_loopback)]
pub struct AttachLoopback {
    /// The file, relative to `base`.
    pub path: String,
    /// `root` or `mount`.
    pub base: Base,
    /// With `base: mount`: the mount (a definition or `{"id": N}`); a reference is held on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub mount: Option<Box<Mount>>,
    /// Accepted and ignored (as in ImageAPI).
    #[serde(
        default,
        rename = "readPartitions",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_partitions: Option<bool>,
}

/// An existing local block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = attach_local)]
pub struct AttachLocal {
    /// The block device node.
    pub path: String,
}

/// An iSCSI LUN: accepted by the schema, answered with 501.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = attach_iscsi)]
pub struct AttachIscsi {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lun: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_comands: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
}

/// The kinds of attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachKind {
    /// iSCSI (not implemented: 501).
    Iscsi,
    /// An existing block device.
    Local,
    /// A file on a loop device.
    Loopback,
    /// A Ceph RBD image.
    Rbd,
}

impl AttachKind {
    /// ImageAPI's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachKind::Iscsi => "iscsi",
            AttachKind::Local => "local",
            AttachKind::Loopback => "loopback",
            AttachKind::Rbd => "rbd",
        }
    }
}

/// An attachment (v0.2): a definition (`kind` plus the kind's object) or, nested in
/// another object, a reference `{"id": N}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = attach)]
pub struct Attach {
    /// Read-only (except in a reference): the attachment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The kind; its object must be given with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AttachKind>,
    /// Read-only: the block device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_file: Option<String>,
    /// Read-only: references held on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rbd: Option<AttachRbd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback: Option<AttachLoopback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<AttachLocal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iscsi: Option<AttachIscsi>,
}
