//! Filesystem types the mount module supports, and their detection from superblock magic.
//!
//! Only the first 4 KiB of a device are read. Detection is by magic number alone, which
//! is what `blkid` does for these four types:
//!
//! | type     | offset | magic                      |
//! |----------|--------|----------------------------|
//! | squashfs | 0      | `hsqs` (0x73717368 LE)     |
//! | xfs      | 0      | `XFSB`                     |
//! | erofs    | 1024   | 0xE0F5E1E2 LE              |
//! | ext4     | 1080   | 0xEF53 LE (ext2/3/4 alike) |

use crate::error::{SysError, SysResult};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// How many bytes [`detect`] needs to see every supported magic.
pub const PROBE_LEN: usize = 4096;

/// A filesystem type the mount module can mount from a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsType {
    /// squashfs (always read-only).
    Squashfs,
    /// erofs (always read-only).
    Erofs,
    /// ext4, which also mounts ext2 and ext3.
    Ext4,
    /// xfs.
    Xfs,
}

impl FsType {
    /// Every supported type.
    pub const ALL: [FsType; 4] = [FsType::Squashfs, FsType::Erofs, FsType::Ext4, FsType::Xfs];

    /// The name the kernel knows the type by.
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Squashfs => "squashfs",
            FsType::Erofs => "erofs",
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
        }
    }

    /// Parses a kernel type name; `None` for anything unsupported.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the filesystem can only be mounted read-only.
    pub fn is_read_only(self) -> bool {
        matches!(self, FsType::Squashfs | FsType::Erofs)
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn le_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn le_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = buf.get(at..at + 2)?.try_into().ok()?;
    Some(u16::from_le_bytes(bytes))
}

/// Detects the filesystem from the first bytes of a device (see the module table).
/// Short buffers are fine: a magic beyond the end simply does not match.
pub fn detect(head: &[u8]) -> Option<FsType> {
    if head.get(0..4) == Some(b"hsqs") {
        return Some(FsType::Squashfs);
    }
    if head.get(0..4) == Some(b"XFSB") {
        return Some(FsType::Xfs);
    }
    if le_u32(head, 1024) == Some(0xE0F5_E1E2) {
        return Some(FsType::Erofs);
    }
    if le_u16(head, 1024 + 0x38) == Some(0xEF53) {
        return Some(FsType::Ext4);
    }
    None
}

/// Reads a device's superblock area. One concern: "what filesystem is on this device".
pub trait FsProbe: Send + Sync + fmt::Debug {
    /// The supported filesystem on `device`, or `None` when no known magic matches.
    fn probe(&self, device: &Path) -> SysResult<Option<FsType>>;
}

/// [`FsProbe`] that reads the device.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxFsProbe;

impl FsProbe for LinuxFsProbe {
    fn probe(&self, device: &Path) -> SysResult<Option<FsType>> {
        let file = File::open(device).map_err(|e| SysError::io("open", device, e))?;
        let mut head = Vec::with_capacity(PROBE_LEN);
        file.take(PROBE_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| SysError::io("read superblock", device, e))?;
        Ok(detect(&head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(at: usize, magic: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; PROBE_LEN];
        buf[at..at + magic.len()].copy_from_slice(magic);
        buf
    }

    #[test]
    fn magics_are_recognised() {
        assert_eq!(detect(&with(0, b"hsqs")), Some(FsType::Squashfs));
        assert_eq!(detect(&with(0, b"XFSB")), Some(FsType::Xfs));
        assert_eq!(
            detect(&with(1024, &0xE0F5_E1E2u32.to_le_bytes())),
            Some(FsType::Erofs)
        );
        assert_eq!(
            detect(&with(1080, &0xEF53u16.to_le_bytes())),
            Some(FsType::Ext4)
        );
        assert_eq!(detect(&[0u8; PROBE_LEN]), None);
        assert_eq!(detect(b"hs"), None);
        assert_eq!(detect(&[]), None);
    }

    #[test]
    fn names_round_trip() {
        for t in FsType::ALL {
            assert_eq!(FsType::parse(t.as_str()), Some(t));
        }
        assert_eq!(FsType::parse("vfat"), None);
        assert!(FsType::Squashfs.is_read_only() && !FsType::Ext4.is_read_only());
    }

    #[test]
    fn real_files_are_probed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        std::fs::write(&path, with(1080, &0xEF53u16.to_le_bytes())).unwrap();
        assert_eq!(LinuxFsProbe.probe(&path).unwrap(), Some(FsType::Ext4));
        let err = LinuxFsProbe.probe(&dir.path().join("missing")).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}
