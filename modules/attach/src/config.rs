//! The attach actor's configuration, the bundle of syscall seams it uses, and their
//! validation.

use crate::error::AttachError;
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

    /// Checks the configuration before anything is created.
    pub fn validate(&self) -> Result<(), AttachError> {
        if self.state_dir.as_os_str().is_empty() {
            return Err(AttachError::Invalid(
                "the attach state directory must not be empty".into(),
            ));
        }
        Ok(())
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
