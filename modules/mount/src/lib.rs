//! imagebus-mount: the mount actor, serving `mount.mount@1`.
//!
//! Mounts filesystem images (squashfs, erofs, ext4, xfs) on devices from the attach
//! module, overlays of other mounts and bind mounts, each on a fresh mountpoint
//! `<run_dir>/mounts/<id>`. Inline children are created in the same call (all or
//! nothing) and owned by their parent; referenced ones gain a `Holder::Mount(id)`
//! reference; collection cascades overlay → lowers → image mount → attachment. State is
//! persisted (records in `<run_dir>/mounts.json`, the durable id floor in
//! `<state_dir>/mount-ids.json`) and reconciled with `/proc/self/mountinfo` and the attach
//! module at start-up. See `docs/mount.md`.
//!
//! The state is owned by the shared actor host (`imagebus-host`); commands on different
//! mounts run concurrently as jobs and change the state in short steps.
//!
//! Layout: `config.rs` (directories, syscall seams), `engine/` (the state and one file per
//! verb: `create.rs`, `remove.rs`, `acquire.rs`, `reconcile.rs`), `validate.rs` (spec
//! checks), `drivers/` (one per mount kind), `store.rs` (state files and the ordered
//! writer), `error.rs`, `actor.rs` (the handle and [`spawn`]).
//!
//! Devices come only through `Arc<dyn AttachModule>` (the attach actor's in-process
//! handle or its bus stub); every syscall through the `imagebus-sys` seams in
//! [`MountSys`].

mod actor;
mod config;
mod drivers;
mod engine;
mod error;
mod store;
mod validate;

pub use actor::{spawn, spawn_with_images, spawn_with_peers, MountHandle, Peers, Spawned};
pub use config::{MountConfig, MountSys, IDS_FILE, RECORDS_FILE, STATE_VERSION};
pub use engine::reconcile::ReconcileReport;
pub use error::MountError;
pub use imagebus_host::Limits;
pub use validate::{option_allowed, MAX_DEPTH, MAX_LOWERS};

#[cfg(test)]
mod tests;
