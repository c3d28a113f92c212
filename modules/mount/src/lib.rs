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
//! Devices come only through `Arc<dyn AttachModule>` (the attach actor's in-process
//! handle or its bus stub); every syscall through the `imagebus-sys` seams in
//! [`MountSys`].

mod actor;
mod config;
mod create;
mod drivers;
mod engine;
mod error;
mod reconcile;
mod record;
mod validate;

pub use actor::{spawn, MountHandle, Spawned};
pub use config::{MountConfig, MountSys, IDS_FILE, RECORDS_FILE, STATE_VERSION};
pub use error::MountError;
pub use reconcile::ReconcileReport;
pub use validate::{option_allowed, MAX_DEPTH, MAX_LOWERS};

#[cfg(test)]
mod tests;
