//! imagebus-sys: the syscall and external-tool seams of imagebus.
//!
//! Every syscall, ioctl, sysfs write and external command that an actor needs goes through
//! one of the small traits here (one per concern), so actor logic is testable with the
//! recording doubles of the `fake` feature (module `fake`, one double for every trait).
//! `unsafe` lives only in this crate, each block with a `// SAFETY:` comment.
//!
//! - [`loopdev`]: loop devices (`LoopDevices`).
//! - [`rbd`]: kernel RBD through `/sys/bus/rbd` (`RbdBus`).
//! - [`blockdev`]: `stat` of device and image paths (`Files`).
//! - [`cmd`]: external commands (`Runner`).
//! - [`fuse`]: FUSE mounts (`FuseMounts`).
//! - [`proc`]: process liveness, start times, signals, reaping, exit waits (`Processes`).
//! - [`state`]: the versioned atomic state store (`StateFile`) and the one atomic file
//!   writer (`write_atomic`).
//! - [`task`]: [`blocking`], the one way to run blocking work from async code.
//! - [`error`]: the three error types (`SysError`, `RuntimeError`, `StateError`) and why
//!   there are three.
//! - [`mount`], [`mountinfo`], [`fsdetect`], [`paths`]: mount(2) (`Mounter`), the mount table
//!   (`MountTable`), superblock probing (`FsProbe`) and managed directories (`PathOps`).
//! - [`runtime`], [`oci_cli`], [`crun`], [`oci`], [`monitor`], [`ns`], [`cgroup`],
//!   [`signal`]: the OCI runtime (`Runtime`, over runc or crun), bundle generation, the
//!   per-container monitor (`MonitorLauncher`),
//!   named network namespaces (`NetNamespaces`), cgroup cleanup (`Cgroups`) and signals.
#![warn(missing_docs)]

pub mod blockdev;
pub mod cgroup;
pub mod cgroup_stats;
pub mod cmd;
pub mod crun;
pub mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod fsdetect;
pub mod fuse;
pub mod logfile;
pub mod loopdev;
pub mod monitor;
pub mod mount;
pub mod mountinfo;
pub mod ns;
pub mod oci;
pub mod oci_cli;
pub mod paths;
pub mod proc;
pub mod rbd;
pub mod runtime;
pub mod session;
pub mod signal;
pub mod state;
pub mod task;
pub mod tty;

pub use error::{is_out_of_space, SysError, SysResult};
pub use task::blocking;
