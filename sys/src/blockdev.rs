//! File type checks for device and image paths (`stat`, following symlinks).

use crate::error::{SysError, SysResult};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What kind of file a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A block device node.
    Block,
    /// A character device node.
    Char,
    /// A directory.
    Directory,
    /// Anything else (fifo, socket).
    Other,
}

/// `stat` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// The file type.
    pub kind: FileKind,
    /// st_dev.
    pub dev: u64,
    /// st_ino.
    pub ino: u64,
    /// st_rdev (device number of a device node).
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Inspects paths.
pub trait Files: Send + Sync + 'static {
    /// `stat(path)`; `Ok(None)` when it does not exist.
    fn stat(&self, path: &Path) -> SysResult<Option<FileStat>>;
}

/// [`Files`] for the real machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxFiles;

impl Files for LinuxFiles {
    fn stat(&self, path: &Path) -> SysResult<Option<FileStat>> {
        let m = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SysError::io("stat", path, e)),
        };
        let ft = m.file_type();
        let kind = if ft.is_file() {
            FileKind::Regular
        } else if ft.is_block_device() {
            FileKind::Block
        } else if ft.is_char_device() {
            FileKind::Char
        } else if ft.is_dir() {
            FileKind::Directory
        } else {
            FileKind::Other
        };
        Ok(Some(FileStat {
            kind,
            dev: m.dev(),
            ino: m.ino(),
            rdev: m.rdev(),
            size: m.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let f = LinuxFiles;
        assert_eq!(
            f.stat(Path::new("/dev/null")).unwrap().unwrap().kind,
            FileKind::Char
        );
        assert_eq!(
            f.stat(Path::new("/")).unwrap().unwrap().kind,
            FileKind::Directory
        );
        assert_eq!(f.stat(Path::new("/nonexistent/x")).unwrap(), None);
    }
}
