//! Hand-written recording doubles of every trait in this crate, for unit tests of the
//! actors (feature `fake`). Each fake is `Clone` and shares its state between clones, so a
//! test keeps one clone to inspect while the actor owns another.
//!
//! | trait | double |
//! |---|---|
//! | [`Files`](crate::blockdev::Files) | [`FakeFiles`] |
//! | [`LoopDevices`](crate::loopdev::LoopDevices) | [`FakeLoopDevices`] |
//! | [`RbdBus`](crate::rbd::RbdBus) | [`FakeRbdBus`] |
//! | [`Runner`](crate::cmd::Runner) | [`FakeRunner`] |
//! | [`Processes`](crate::proc::Processes) | [`FakeProcesses`] |
//! | [`FuseMounts`](crate::fuse::FuseMounts) | [`FakeFuseMounts`] |
//! | [`Mounter`](crate::mount::Mounter), [`MountTable`](crate::mountinfo::MountTable) | [`FakeMounter`] |
//! | [`FsProbe`](crate::fsdetect::FsProbe) | [`FakeFsProbe`] |
//! | [`PathOps`](crate::paths::PathOps) | [`FakePaths`] |
//! | [`Runtime`](crate::runtime::Runtime), [`MonitorLauncher`](crate::monitor::MonitorLauncher) | [`FakeRuntime`] |
//! | [`Cgroups`](crate::cgroup::Cgroups) | [`FakeCgroups`] |
//! | [`NetNamespaces`](crate::ns::NetNamespaces) | [`FakeNetNamespaces`] |

mod block;
mod container;
mod exec;
mod mount;

pub use block::{FakeFiles, FakeLoopDevices, FakeRbdBus};
pub use container::{FakeCgroups, FakeNetNamespaces, FakeRuntime, FakeSessions, Gate, GATE_LIMIT};
pub use exec::{FakeFuseMounts, FakeProcesses, FakeRunner};
pub use mount::{FakeFsProbe, FakeMounter, FakePaths, MountCallRecord};

use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
