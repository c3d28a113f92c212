//! The readers of `/proc/self/mountinfo`: the mount table parser (`sys::mountinfo`), the
//! cgroup hierarchy finder (`sys::cgroup::parse_hierarchies`) and the FUSE mount lister
//! (`sys::fuse::parse_fuse_mounts`), each with its own octal unescaping.
//!
//! Invariants: a table that parses has one entry per non-blank line; the three readers
//! agree, on lines every one of them reads, about the mount point of each cgroup and FUSE
//! mount; `under` only yields entries below the directory.
#![no_main]

use imagebus_sys::{cgroup, fuse, mountinfo};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let hierarchies = cgroup::parse_hierarchies(text);
    let fuses = fuse::parse_fuse_mounts(text);
    let _ = mountinfo::unescape(text);
    let Ok(entries) = mountinfo::parse(text) else {
        return;
    };
    assert_eq!(
        entries.len(),
        text.lines().filter(|l| !l.trim().is_empty()).count()
    );
    let dir = Path::new("/sys/fs");
    for e in mountinfo::under(&entries, dir) {
        assert!(e.mount_point.starts_with(dir));
    }
    let _ = entries.iter().filter(|e| e.is_read_only()).count();
    // Compare on plain tables only: single spaces, no escapes, one lone `-` field (the
    // separator; the kernel writes no `-` options).
    // (The kernel writes no other whitespace; each reader splits on its own notion of it.)
    let plain = !text.contains('\\')
        && !text.contains("  ")
        && !text
            .chars()
            .any(|c| c.is_whitespace() && c != ' ' && c != '\n')
        && text.lines().all(|l| {
            l.matches(" - ").count() == 1
                && l.split(' ').filter(|f| *f == "-").count() == 1
                && !l.starts_with(' ')
        });
    if !plain {
        return;
    }
    let cg: Vec<PathBuf> = entries
        .iter()
        .filter(|e| e.fs_type == "cgroup" || e.fs_type == "cgroup2")
        .map(|e| e.mount_point.clone())
        .collect();
    assert_eq!(
        hierarchies, cg,
        "cgroup hierarchies disagree with the mount table"
    );
    let fu: Vec<PathBuf> = entries
        .iter()
        .filter(|e| e.fs_type == "fuse" || e.fs_type.starts_with("fuse."))
        .map(|e| e.mount_point.clone())
        .collect();
    let listed: Vec<PathBuf> = fuses.iter().map(|f| f.mountpoint.clone()).collect();
    assert_eq!(listed, fu, "FUSE mounts disagree with the mount table");
});
