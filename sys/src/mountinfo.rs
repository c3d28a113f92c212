//! The kernel's mount table as seen by this process (`/proc/self/mountinfo`).
//!
//! Line format (proc(5)):
//! `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
//! — mount id, parent id, `major:minor`, root, mount point, per-mount options, optional
//! fields up to a lone `-`, filesystem type, source, superblock options. Paths escape
//! space, tab, newline and backslash as three-digit octal (`\040`).

use crate::error::{SysError, SysResult};
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique id of the mount (may be reused after unmount).
    pub mount_id: u64,
    /// Id of the parent mount.
    pub parent_id: u64,
    /// `major:minor` of the filesystem's device.
    pub dev: String,
    /// Root of the mount within its filesystem.
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`, `ro`, `nosuid`, ...).
    pub options: Vec<String>,
    /// Filesystem type (`squashfs`, `overlay`, ...).
    pub fs_type: String,
    /// Source (`/dev/loop3`, `overlay`, ...).
    pub source: String,
    /// Superblock options (`lowerdir=...` for overlays).
    pub super_options: String,
}

impl MountEntry {
    /// Whether the mount is read-only (per-mount `ro`).
    pub fn is_read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Undoes the octal escapes the kernel applies to paths in mountinfo.
pub fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

fn parse_err(line: &str, detail: &str) -> SysError {
    SysError::Parse {
        what: "/proc/self/mountinfo".into(),
        detail: format!("{detail}: {line:?}"),
    }
}

/// Parses one mountinfo line.
pub fn parse_line(line: &str) -> SysResult<MountEntry> {
    let mut fields = line.split(' ');
    let mut next = |name: &str| fields.next().ok_or_else(|| parse_err(line, name));
    let mount_id = next("mount id")?
        .parse()
        .map_err(|_| parse_err(line, "mount id"))?;
    let parent_id = next("parent id")?
        .parse()
        .map_err(|_| parse_err(line, "parent id"))?;
    let dev = next("device")?.to_string();
    let root = unescape(next("root")?);
    let mount_point = unescape(next("mount point")?);
    let options = next("options")?.split(',').map(str::to_string).collect();
    // Optional fields end at a lone "-".
    loop {
        if next("separator")? == "-" {
            break;
        }
    }
    let fs_type = next("fs type")?.to_string();
    let source = unescape(next("source")?).to_string_lossy().into_owned();
    let super_options = next("super options")?.to_string();
    Ok(MountEntry {
        mount_id,
        parent_id,
        dev,
        root,
        mount_point,
        options,
        fs_type,
        source,
        super_options,
    })
}

/// Parses a whole mountinfo text; blank lines are skipped, a malformed line is an error.
pub fn parse(text: &str) -> SysResult<Vec<MountEntry>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect()
}

/// Entries whose mount point is `dir` itself or below it, in table order.
pub fn under<'a>(entries: &'a [MountEntry], dir: &'a Path) -> impl Iterator<Item = &'a MountEntry> {
    entries
        .iter()
        .filter(move |e| e.mount_point.starts_with(dir))
}

/// Reads the mount table. One concern: "what is mounted where".
pub trait MountTable: Send + Sync + fmt::Debug {
    /// Every mount visible to this process, in table order (parents before children,
    /// later mounts on the same point after earlier ones).
    fn mounts(&self) -> SysResult<Vec<MountEntry>>;
}

/// [`MountTable`] reading `/proc/self/mountinfo`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcMountTable;

impl MountTable for ProcMountTable {
    fn mounts(&self) -> SysResult<Vec<MountEntry>> {
        let path = "/proc/self/mountinfo";
        let text = std::fs::read_to_string(path).map_err(|e| SysError::io("read", path, e))?;
        parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc5_example_and_escapes() {
        let e = parse_line(
            "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        )
        .unwrap();
        assert_eq!(e.mount_id, 36);
        assert_eq!(e.parent_id, 35);
        assert_eq!(e.dev, "98:0");
        assert_eq!(e.root, PathBuf::from("/mnt1"));
        assert_eq!(e.mount_point, PathBuf::from("/mnt 2"));
        assert_eq!(e.options, vec!["rw", "noatime"]);
        assert_eq!(e.fs_type, "ext3");
        assert_eq!(e.source, "/dev/root");
        assert_eq!(e.super_options, "rw,errors=continue");
        assert!(!e.is_read_only());
    }

    #[test]
    fn no_optional_fields_and_overlay() {
        let e = parse_line(
            "90 30 0:50 / /run/x/mounts/3 ro,relatime - overlay overlay ro,lowerdir=/a:/b",
        )
        .unwrap();
        assert_eq!(e.fs_type, "overlay");
        assert!(e.is_read_only());
        assert_eq!(e.super_options, "ro,lowerdir=/a:/b");
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_line("").is_err());
        assert!(parse_line("x 1 0:1 / /a rw - ext4 /dev/a rw").is_err());
        assert!(parse_line("1 1 0:1 / /a rw shared:1").is_err());
        assert!(parse("\n\n").unwrap().is_empty());
    }

    #[test]
    fn unescape_leaves_odd_backslashes() {
        assert_eq!(unescape("a\\134b"), PathBuf::from("a\\b"));
        assert_eq!(unescape("a\\9"), PathBuf::from("a\\9"));
        assert_eq!(unescape("a\\"), PathBuf::from("a\\"));
    }

    #[test]
    fn reads_the_real_table() {
        let all = ProcMountTable.mounts().unwrap();
        assert!(
            all.iter().any(|e| e.mount_point == Path::new("/")),
            "{all:?}"
        );
        assert!(under(&all, Path::new("/proc")).count() >= 1);
    }
}
