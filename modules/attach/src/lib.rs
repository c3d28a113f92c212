//! imagebus-attach: the attach actor (`attach.attach@1`). It turns Ceph RBD images, image
//! files and local block devices into block devices, keeps who holds each one, persists
//! its state, and reconciles it with the kernel at start-up.
//!
//! - [`spawn`] starts the actor on the shared actor host (`imagebus-host`) and returns
//!   [`Spawned`]: an [`AttachHandle`] (which implements
//!   [`imagebus_schema::attach::AttachModule`]), the start-up [`ReconcileReport`] and the
//!   actor's task (for supervision).
//! - Layout: `config` ([`AttachConfig`], [`AttachSys`]), `engine/` (the state and one file
//!   per verb: attach, shared + acquire, detach + release, the rbd-fuse reaper,
//!   reconciliation), `store` (the state file and its ordered writer), `drivers/` (loop,
//!   local, krbd and the rbd-fuse fallback), `error` ([`AttachError`]), `actor` (the handle).
//! - Every syscall and tool goes through [`AttachSys`] (traits of `imagebus-sys`) and runs
//!   on the blocking pool, outside the actor's steps.
//!
//! See `docs/attach.md`.

mod actor;
mod config;
mod drivers;
mod engine;
mod error;
mod store;

pub use actor::{spawn, spawn_with_mounts, AttachHandle, Spawned};
pub use config::{AttachConfig, AttachSys};
pub use engine::reconcile::ReconcileReport;
pub use error::AttachError;
pub use imagebus_host::Limits;

#[cfg(test)]
mod tests;
