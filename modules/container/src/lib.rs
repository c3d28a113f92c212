//! imagebus-container: the container actor, serving `container.container@1` (and zos's
//! `container.container@0.0.1`).
//!
//! Containers are long-lived inits in their own namespaces, run by an OCI runtime (runc)
//! on a bundle generated from the spec, on a root filesystem from the mount module (inline
//! definitions of any depth cascade away with the container). Each run has a small
//! monitor process (conmon-like, `imagebus-monitor`) that owns the init's stdio log and
//! exit status, so containers survive restarts of the actor and the daemon; at start-up
//! the actor reconciles its records with the monitors, exit files and the runtime.
//! See `docs/container.md`.
//!
//! Mounts come only through `Arc<dyn MountModule>`; every syscall and tool through the
//! `imagebus-sys` seams in [`ContainerSys`].
//!
//! The state is owned by an actor of the shared host (`imagebus-host`): reads answer at
//! once, commands are jobs keyed by container (ordered per container, concurrent across
//! containers, bounded by [`Limits`]), and state changes are short steps whose results are
//! written, in order, by one writer before the reply.
//!
//! Layout: `actor.rs` (the handle and [`spawn`]), `engine/` (one file per verb:
//! `create`, `start`, `stop`, `remove`, `exec`, `logs`; and `exits`, `watch`, `launch`,
//! `prepare`, `reconcile`), `store.rs` (records, id floor, the ordered writer),
//! `config.rs`, `error.rs`, `zos.rs` (zos's interface).

mod actor;
mod config;
mod engine;
mod error;
mod store;
mod zos;
mod zos_mounts;

#[cfg(test)]
mod tests;

pub use actor::{spawn, ContainerHandle, Spawned};
pub use config::{
    default_monitor, ContainerConfig, ContainerSys, DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES,
    MONITOR_BINARY,
};
pub use engine::exec::DEFAULT_EXEC_TIMEOUT_MS;
pub use engine::logs::MAX_WAIT as LOGS_MAX_WAIT;
pub use engine::prepare::CONTAINER_ENV;
pub use engine::reconcile::ReconcileReport;
pub use engine::REPLY_MARGIN;
pub use error::ContainerError;
pub use imagebus_host::Limits;
pub use zos::{spec_from_zos, zos_from_info, ZOS_DEFAULT_MEMORY, ZOS_DEFAULT_SHUTDOWN};
pub use zos_mounts::{ZOS_MOUNT_OPTIONS, ZOS_ROOTFS_PROPAGATION};

/// The monitor process's `main` body: `imagebus-monitor <config>` (or a hidden subcommand
/// of another binary, called before any thread or async runtime is started). Returns the
/// exit code.
pub fn monitor_main(config: &std::path::Path) -> i32 {
    imagebus_sys::monitor::run_monitor(config)
}
