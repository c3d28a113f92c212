//! imagebus-image: the image actor, serving `image.image@1`.
//!
//! Imports OCI images (an OCI layout directory, an `oci-archive` or a `docker-archive`
//! tar) by applying their layers (whiteouts and opaque directories included; gzip, zstd
//! or plain) in a staging directory, refusing any entry that would land outside the
//! image root, and packing the tree into one read-only erofs file (squashfs where
//! `mkfs.erofs` is missing) named by the image's digest. A plain squashfs/erofs file is
//! stored as it is. Each image keeps its names, its config (Env, Entrypoint, Cmd,
//! WorkingDir, User, Labels) and its holders: the mounts using it, which the mount module
//! adds and drops through the `ImageModule` trait; an image with holders cannot be
//! removed. See `docs/image.md`.
//!
//! Layout: `config.rs`, `engine/` (the state and one file per verb: `import.rs`,
//! `remove.rs`, `hold.rs`, `reconcile.rs`), `oci/` (source syntax, blob access, the plan,
//! the layer applier, packing), `store.rs`, `error.rs`, `actor.rs`.

mod actor;
mod config;
mod engine;
mod error;
pub mod oci;
mod store;

pub use actor::{spawn, ImageHandle, Spawned};
pub use config::{ImageSys, StoreConfig, DEFAULT_IMPORT_TIMEOUT, RECORDS_FILE, STATE_VERSION};
pub use engine::reconcile::ReconcileReport;
pub use error::ImageError;
pub use imagebus_host::Limits;

#[cfg(test)]
mod tests;
