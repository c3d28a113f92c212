//! imagebus-syscontainer: the system container actor, serving
//! `syscontainer.syscontainer@1`.
//!
//! A system container is an image carrying `/exports/` metadata, installed the way
//! Project Atomic's `atomic install --system` does it: the image is checked out (mounted
//! read-only through the mount module) into deployment slot `<state>/system/NAME.0`, and
//! `<state>/system/NAME` (a symlink) points at the active slot. Its templates
//! (`config.json.template`, `service.template`, `tmpfiles.template`) are rendered with
//! variables (`$VAR`, `${VAR}`) from `manifest.json` defaults, `--set` values and the
//! node's forced values; the tmpfiles lines and the `hostfs/` tree are applied to the host
//! (every path journaled), a service unit is written (zinit's `NAME.yaml`, or
//! `NAME.service` enabled through systemctl on a systemd host), and a container named NAME runs the
//! rendered configuration (through `ContainerSpec.oci`). Update checks out into the other
//! slot and switches the symlink (the one atomic step); rollback switches back; start-up
//! reconciliation makes the host match the active slot after a crash. See
//! `docs/system.md`.
//!
//! Peers (image store, mount, container) are reached only through their schema traits.
//!
//! Layout: `config.rs`, `engine/` (the state and one file per verb or concern), `store.rs`
//! (the slot directories, the active-slot symlink, the host journal), `error.rs`,
//! `actor.rs`.

mod actor;
mod config;
mod engine;
mod error;
mod store;

pub use actor::{spawn, Peers, Spawned, SysHandle};
pub use config::SysConfig;
pub use engine::systemd::Systemd;
pub use engine::template::render;
pub use engine::tmpfiles::TYPES as TMPFILES_TYPES;
pub use engine::unit::{systemd_unit, zinit_unit, ZINIT_KEYS};
pub use engine::zinit::{Protocol as ZinitProtocol, Zinit, ZinitError};
pub use error::SysError;
pub use imagebus_host::Limits;

#[cfg(test)]
mod tests;
