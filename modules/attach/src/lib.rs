//! imagebus-attach: the attach actor (`attach.attach@1`). It turns Ceph RBD images, image
//! files and local block devices into block devices, keeps who holds each one, persists
//! its state, and reconciles it with the kernel at start-up.
//!
//! - [`spawn`] starts the actor and returns [`Spawned`]: an [`AttachHandle`] (which
//!   implements [`imagebus_schema::attach::AttachModule`]), the start-up
//!   [`ReconcileReport`] and the actor's task (for supervision).
//! - Drivers: [`drivers::loopdev`], [`drivers::local`], [`drivers::rbd`] (krbd) with the
//!   automatic userspace fallback [`drivers::rbd_fuse`].
//! - Every syscall and tool goes through [`AttachSys`] (traits of `imagebus-sys`).
//!
//! See `docs/attach.md`.

pub mod actor;
pub mod attachments;
pub mod drivers;
pub mod error;
pub mod reconcile;
pub mod store;

pub use actor::{spawn, AttachHandle, Spawned};
pub use attachments::Attachments;
pub use error::AttachError;
pub use reconcile::ReconcileReport;

use imagebus_sys::blockdev::{Files, LinuxFiles};
use imagebus_sys::cmd::{LinuxRunner, Runner};
use imagebus_sys::fuse::{FuseMounts, LinuxFuseMounts};
use imagebus_sys::loopdev::{LinuxLoopDevices, LoopDevices};
use imagebus_sys::proc::{LinuxProcesses, Processes};
use imagebus_sys::rbd::{LinuxRbdBus, RbdBus};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the attach actor keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachConfig {
    /// Persistent, root-only (made 0700): `attach.json` and `rbd/<id>/` (rbd-fuse config
    /// with the secret, log, FUSE mountpoint).
    pub state_dir: PathBuf,
    /// Runtime directory (reserved; nothing is put there yet).
    pub run_dir: PathBuf,
}

impl AttachConfig {
    /// Per-attachment rbd-fuse directories live here.
    pub fn rbd_dir(&self) -> PathBuf {
        self.state_dir.join("rbd")
    }
}

/// The syscall seams the attach actor uses.
#[derive(Clone)]
pub struct AttachSys {
    /// Loop devices.
    pub loops: Arc<dyn LoopDevices>,
    /// Kernel RBD.
    pub rbd: Arc<dyn RbdBus>,
    /// `stat`.
    pub files: Arc<dyn Files>,
    /// External tools (`rbd`, `rbd-fuse`).
    pub runner: Arc<dyn Runner>,
    /// Process liveness and reaping.
    pub procs: Arc<dyn Processes>,
    /// FUSE mounts.
    pub fuse: Arc<dyn FuseMounts>,
}

impl AttachSys {
    /// The real machine.
    pub fn linux() -> Self {
        Self {
            loops: Arc::new(LinuxLoopDevices),
            rbd: Arc::new(LinuxRbdBus::default()),
            files: Arc::new(LinuxFiles),
            runner: Arc::new(LinuxRunner),
            procs: Arc::new(LinuxProcesses),
            fuse: Arc::new(LinuxFuseMounts),
        }
    }
}

impl fmt::Debug for AttachSys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttachSys { .. }")
    }
}

#[cfg(test)]
mod tests;
