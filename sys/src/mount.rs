//! mount(2) and umount2(2) as values: a [`MountCall`] says exactly what is asked of the
//! kernel, so a fake can record calls and tests compare them whole.

use crate::error::{SysError, SysResult};
use nix::mount::{MntFlags, MsFlags};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Longest `data` string mount(2) accepts: the kernel copies one page (4096 bytes,
/// including the terminating NUL) of options.
pub const MAX_DATA_LEN: usize = 4095;

/// A mount(2) flag the modules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MountFlag {
    /// `MS_RDONLY`.
    ReadOnly,
    /// `MS_BIND`.
    Bind,
    /// `MS_REC` (with `Bind`: `rbind`).
    Recursive,
    /// `MS_REMOUNT` (with `Bind`: change per-mount flags only).
    Remount,
    /// `MS_NOSUID`.
    NoSuid,
    /// `MS_NODEV`.
    NoDev,
    /// `MS_NOEXEC`.
    NoExec,
    /// `MS_NOATIME`.
    NoAtime,
    /// `MS_NODIRATIME`.
    NoDirAtime,
    /// `MS_RELATIME`.
    RelAtime,
    /// `MS_STRICTATIME`.
    StrictAtime,
    /// `MS_SYNCHRONOUS`.
    Sync,
    /// `MS_DIRSYNC`.
    DirSync,
}

impl MountFlag {
    /// The flag for an `-o` style option name (`ro`, `nosuid`, `noatime`, ...), if it is one.
    pub fn from_option(option: &str) -> Option<Self> {
        Some(match option {
            "ro" => MountFlag::ReadOnly,
            "nosuid" => MountFlag::NoSuid,
            "nodev" => MountFlag::NoDev,
            "noexec" => MountFlag::NoExec,
            "noatime" => MountFlag::NoAtime,
            "nodiratime" => MountFlag::NoDirAtime,
            "relatime" => MountFlag::RelAtime,
            "strictatime" => MountFlag::StrictAtime,
            "sync" => MountFlag::Sync,
            "dirsync" => MountFlag::DirSync,
            _ => return None,
        })
    }

    fn bits(self) -> MsFlags {
        match self {
            MountFlag::ReadOnly => MsFlags::MS_RDONLY,
            MountFlag::Bind => MsFlags::MS_BIND,
            MountFlag::Recursive => MsFlags::MS_REC,
            MountFlag::Remount => MsFlags::MS_REMOUNT,
            MountFlag::NoSuid => MsFlags::MS_NOSUID,
            MountFlag::NoDev => MsFlags::MS_NODEV,
            MountFlag::NoExec => MsFlags::MS_NOEXEC,
            MountFlag::NoAtime => MsFlags::MS_NOATIME,
            MountFlag::NoDirAtime => MsFlags::MS_NODIRATIME,
            MountFlag::RelAtime => MsFlags::MS_RELATIME,
            MountFlag::StrictAtime => MsFlags::MS_STRICTATIME,
            MountFlag::Sync => MsFlags::MS_SYNCHRONOUS,
            MountFlag::DirSync => MsFlags::MS_DIRSYNC,
        }
    }
}

/// One mount(2) call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountCall {
    /// Device, directory (binds) or a dummy name (`overlay`).
    pub source: PathBuf,
    /// The mountpoint.
    pub target: PathBuf,
    /// Filesystem type; `None` for binds and remounts.
    pub fs_type: Option<String>,
    /// Flags, in a canonical order.
    pub flags: BTreeSet<MountFlag>,
    /// Filesystem-specific options (`lowerdir=...`), at most [`MAX_DATA_LEN`] bytes.
    pub data: Option<String>,
}

impl MountCall {
    /// Mounts a filesystem of `fs_type` from `source` on `target`.
    pub fn fs(source: impl Into<PathBuf>, target: impl Into<PathBuf>, fs_type: &str) -> Self {
        Self {
            source: source.into(),
            target: target.into(),
            fs_type: Some(fs_type.to_string()),
            flags: BTreeSet::new(),
            data: None,
        }
    }

    /// Bind-mounts `source` on `target` (recursively with `recursive`).
    pub fn bind(source: impl Into<PathBuf>, target: impl Into<PathBuf>, recursive: bool) -> Self {
        let mut flags = BTreeSet::from([MountFlag::Bind]);
        if recursive {
            flags.insert(MountFlag::Recursive);
        }
        Self {
            source: source.into(),
            target: target.into(),
            fs_type: None,
            flags,
            data: None,
        }
    }

    /// Makes the bind mount at `target` read-only (a bind remount: only per-mount flags
    /// change, the filesystem underneath is untouched).
    pub fn remount_bind_read_only(target: impl Into<PathBuf>) -> Self {
        let target = target.into();
        Self {
            source: PathBuf::from("none"),
            target,
            fs_type: None,
            flags: BTreeSet::from([MountFlag::Bind, MountFlag::Remount, MountFlag::ReadOnly]),
            data: None,
        }
    }

    /// Adds a flag.
    pub fn flag(mut self, flag: MountFlag) -> Self {
        self.flags.insert(flag);
        self
    }

    /// Sets the filesystem-specific options (`None` when empty).
    pub fn data(mut self, data: impl Into<String>) -> Self {
        let data = data.into();
        self.data = if data.is_empty() { None } else { Some(data) };
        self
    }

    /// Whether the call asks for a read-only mount.
    pub fn is_read_only(&self) -> bool {
        self.flags.contains(&MountFlag::ReadOnly)
    }

    fn ms_flags(&self) -> MsFlags {
        self.flags
            .iter()
            .fold(MsFlags::empty(), |acc, f| acc | f.bits())
    }
}

/// What [`Mounter::unmount`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    /// A mount was removed (detached, when lazy).
    Done,
    /// Nothing was mounted there (or the path is gone): already unmounted.
    NotMounted,
}

/// Why the kernel refused a mount, from its errno, so callers need not know errno values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountFailure {
    /// `EINVAL`: not a valid filesystem of that type, or a bad option.
    Invalid,
    /// `ENODEV`: the filesystem type is not known to this kernel.
    NoSuchFsType,
    /// `EBUSY`: the device or an overlay upper/work directory is in use.
    Busy,
    /// `EROFS` / `EACCES`: a read-write mount of a read-only device.
    ReadOnly,
    /// `ENOENT` / `ENOTDIR`: a path does not exist or is not a directory.
    NotFound,
    /// Anything else.
    Other,
}

impl MountFailure {
    /// Classifies a [`Mounter::mount`] error.
    pub fn of(err: &SysError) -> Self {
        match err.errno() {
            Some(libc::EINVAL) => MountFailure::Invalid,
            Some(libc::ENODEV) => MountFailure::NoSuchFsType,
            Some(libc::EBUSY) => MountFailure::Busy,
            Some(libc::EROFS | libc::EACCES) => MountFailure::ReadOnly,
            Some(libc::ENOENT | libc::ENOTDIR) => MountFailure::NotFound,
            _ if matches!(err, SysError::Invalid(_)) => MountFailure::Invalid,
            _ => MountFailure::Other,
        }
    }
}

/// Mounts and unmounts. One concern: changing the mount table.
pub trait Mounter: Send + Sync + fmt::Debug {
    /// Performs `call`.
    fn mount(&self, call: &MountCall) -> SysResult<()>;

    /// Unmounts the topmost mount on `target`; `lazy` detaches it (MNT_DETACH) so busy
    /// mounts go away once unused. Not mounted (`EINVAL`) or missing (`ENOENT`) gives
    /// [`Unmounted::NotMounted`].
    fn unmount(&self, target: &Path, lazy: bool) -> SysResult<Unmounted>;
}

/// [`Mounter`] calling the kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxMounter;

impl Mounter for LinuxMounter {
    fn mount(&self, call: &MountCall) -> SysResult<()> {
        if call.data.as_ref().is_some_and(|d| d.len() > MAX_DATA_LEN) {
            return Err(SysError::Invalid(format!(
                "mount options for {:?} exceed {MAX_DATA_LEN} bytes",
                call.target
            )));
        }
        tracing::debug!(?call, "mount");
        nix::mount::mount(
            Some(call.source.as_path()),
            call.target.as_path(),
            call.fs_type.as_deref(),
            call.ms_flags(),
            call.data.as_deref(),
        )
        .map_err(|errno| SysError::io("mount", &call.target, errno.into()))
    }

    fn unmount(&self, target: &Path, lazy: bool) -> SysResult<Unmounted> {
        let flags = if lazy {
            MntFlags::MNT_DETACH
        } else {
            MntFlags::empty()
        };
        tracing::debug!(?target, lazy, "umount");
        match nix::mount::umount2(target, flags) {
            Ok(()) => Ok(Unmounted::Done),
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(Unmounted::NotMounted),
            Err(errno) => Err(SysError::io("umount", target, errno.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeMounter, MountCallRecord as Call};
    use crate::mountinfo::MountTable;

    #[test]
    fn calls_compare_whole() {
        let a = MountCall::fs("/dev/loop1", "/m/1", "squashfs").flag(MountFlag::ReadOnly);
        let b = MountCall::fs("/dev/loop1", "/m/1", "squashfs").flag(MountFlag::ReadOnly);
        assert_eq!(a, b);
        assert!(a.is_read_only());
        assert_eq!(a.ms_flags(), MsFlags::MS_RDONLY);
        let r = MountCall::bind("/a", "/b", true);
        assert_eq!(r.ms_flags(), MsFlags::MS_BIND | MsFlags::MS_REC);
        let ro = MountCall::remount_bind_read_only("/b");
        assert_eq!(
            ro.ms_flags(),
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY
        );
        assert_eq!(MountCall::fs("a", "b", "xfs").data("").data, None);
        assert_eq!(MountFlag::from_option("nodev"), Some(MountFlag::NoDev));
        assert_eq!(MountFlag::from_option("lowerdir=/x"), None);
        let e = |n| SysError::io("mount", "/m", std::io::Error::from_raw_os_error(n));
        assert_eq!(MountFailure::of(&e(libc::EINVAL)), MountFailure::Invalid);
        assert_eq!(
            MountFailure::of(&e(libc::ENODEV)),
            MountFailure::NoSuchFsType
        );
        assert_eq!(MountFailure::of(&e(libc::EPERM)), MountFailure::Other);
    }

    #[test]
    fn fake_tracks_table_and_failures() {
        let fake = FakeMounter::default();
        fake.mount(&MountCall::fs("/dev/loop0", "/m/1", "squashfs"))
            .unwrap();
        fake.mount(&MountCall::remount_bind_read_only("/m/1"))
            .unwrap();
        assert_eq!(fake.mounted(), vec![PathBuf::from("/m/1")]);
        assert_eq!(fake.mounts().unwrap()[0].fs_type, "squashfs");
        assert_eq!(
            fake.unmount(Path::new("/m/1"), true).unwrap(),
            Unmounted::Done
        );
        assert_eq!(
            fake.unmount(Path::new("/m/1"), true).unwrap(),
            Unmounted::NotMounted
        );
        fake.fail_fs_type("xfs", libc::EINVAL);
        let err = fake
            .mount(&MountCall::fs("/dev/loop0", "/m/2", "xfs"))
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EINVAL));
        assert!(fake.mounted().is_empty());
        assert_eq!(fake.calls().len(), 5);
        assert_eq!(fake.calls()[3], Call::Unmount(PathBuf::from("/m/1"), true));
    }

    #[test]
    fn unmounting_a_plain_directory_is_not_mounted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            LinuxMounter.unmount(dir.path(), true).unwrap(),
            Unmounted::NotMounted
        );
        let gone = dir.path().join("gone");
        assert_eq!(
            LinuxMounter.unmount(&gone, true).unwrap(),
            Unmounted::NotMounted
        );
    }

    #[test]
    fn oversized_options_are_refused_before_the_kernel() {
        let call = MountCall::fs("overlay", "/nonexistent", "overlay").data("x".repeat(5000));
        assert!(matches!(
            LinuxMounter.mount(&call),
            Err(SysError::Invalid(_))
        ));
    }
}
