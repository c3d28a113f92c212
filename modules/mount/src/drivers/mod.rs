//! One driver per mount kind. Each builds the kernel side of a mount for the record with
//! a given id, pushing the inverse of every step on the undo log.

pub(crate) mod bind;
pub(crate) mod image;
pub(crate) mod overlay;
pub(crate) mod stored;

use crate::store::{Kind, OverlayDirs};
use std::path::PathBuf;

/// What a driver made; the caller turns it into a record.
#[derive(Debug)]
pub(crate) struct Built {
    pub kind: Kind,
    pub fs_type: String,
    pub source: PathBuf,
    pub read_only: bool,
    pub attachment: Option<u64>,
    pub children: Vec<u64>,
    pub overlay: Option<OverlayDirs>,
    /// The image-store image held (stored mounts).
    pub image: Option<String>,
}
