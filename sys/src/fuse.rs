//! FUSE mounts (rbd-fuse and the like): find them in `/proc/self/mountinfo` by filesystem
//! type, and unmount them (lazily: a dead FUSE server leaves a mount whose `stat` fails
//! with `ENOTCONN`, which only a lazy unmount clears).

use crate::error::{SysError, SysResult};
use nix::mount::{umount2, MntFlags};
use std::fs;
use std::path::{Path, PathBuf};

/// A FUSE mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseMount {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Filesystem type, e.g. `fuse.rbd-fuse`.
    pub fs_type: String,
    /// Mount source as the server named it.
    pub source: String,
}

/// FUSE mount inspection and removal.
pub trait FuseMounts: Send + Sync + 'static {
    /// Every mount whose type is `fuse` or starts with `fuse.`.
    fn list(&self) -> SysResult<Vec<FuseMount>>;
    /// Unmounts `mountpoint` (`lazy`: `MNT_DETACH`). Not mounted is not an error.
    fn unmount(&self, mountpoint: &Path, lazy: bool) -> SysResult<()>;
}

/// [`FuseMounts`] for the real machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxFuseMounts;

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the FUSE entries of a mountinfo text.
pub fn parse_fuse_mounts(text: &str) -> Vec<FuseMount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mountpoint = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fs_type = r.next()?;
            let source = r.next().unwrap_or("");
            (fs_type == "fuse" || fs_type.starts_with("fuse.")).then(|| FuseMount {
                mountpoint: PathBuf::from(unescape(mountpoint)),
                fs_type: fs_type.to_string(),
                source: unescape(source),
            })
        })
        .collect()
}

impl FuseMounts for LinuxFuseMounts {
    fn list(&self) -> SysResult<Vec<FuseMount>> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(|e| SysError::io("read", path, e))?;
        Ok(parse_fuse_mounts(&text))
    }

    fn unmount(&self, mountpoint: &Path, lazy: bool) -> SysResult<()> {
        let flags = if lazy {
            MntFlags::MNT_DETACH
        } else {
            MntFlags::empty()
        };
        match umount2(mountpoint, flags) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(SysError::io("umount", mountpoint, e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fuse_entries_only() {
        let text = "36 25 0:32 / /run/x\\040y rw,relatime shared:1 - fuse.rbd-fuse rbd-fuse rw,user_id=0\n\
                    37 25 7:0 / /mnt ro - squashfs /dev/loop0 ro\n";
        let m = parse_fuse_mounts(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mountpoint, PathBuf::from("/run/x y"));
        assert_eq!(m[0].fs_type, "fuse.rbd-fuse");
    }
}
