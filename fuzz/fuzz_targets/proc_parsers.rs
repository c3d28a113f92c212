//! The parsers of `/proc` and cgroup files: `/proc/<pid>/stat` (`sys::proc::parse_stat`),
//! `CapBnd:` of `/proc/<pid>/status`, `/proc/<pid>/net/dev`, cgroup v1
//! `blkio.throttle.io_service_bytes`, v2 `io.stat`, flat-keyed files (`memory.stat`,
//! `cpu.stat`), and the filesystem detection from a superblock (`sys::fsdetect`).
//!
//! Invariants: no panic or overflow on any text (the counters saturate); a parsed stat's
//! state is a letter, not blank; a detected filesystem's name parses back to it.
#![no_main]

use imagebus_sys::{cgroup_stats, fsdetect, oci, proc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(fs) = fsdetect::detect(data) {
        assert_eq!(fsdetect::FsType::parse(fs.as_str()), Some(fs));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(st) = proc::parse_stat(text) {
        assert!(!st.state.is_whitespace());
    }
    let _ = oci::parse_cap_bounding(text);
    let _ = cgroup_stats::parse_net_dev(text);
    let _ = cgroup_stats::parse_blkio_v1(text);
    let _ = cgroup_stats::parse_io_stat_v2(text);
    for key in ["usage_usec", "anon", "file", "rss", "cache"] {
        let _ = cgroup_stats::keyed(text, key);
    }
});
