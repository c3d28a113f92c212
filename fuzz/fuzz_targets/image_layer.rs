//! OCI layer tars applied by the image importer (`oci::apply::Applier`): the input is
//! applied twice onto one root (as a lower and an upper layer, so whiteouts and opaque
//! directories meet a tree), in a scratch directory of this process.
//!
//! Invariants: whatever the tar holds (`..`, absolute paths, symlinks or hard links that
//! point out, whiteouts of `..`), nothing is written outside the root: the scratch
//! directory holds only the root, and the directory `/tmp/ib-fuzz-escape/` (the target
//! that the seed corpus's escaping symlinks name) holds only its sentinel, unchanged. An
//! error is one of the typed ones, never a panic.
#![no_main]

use imagebus_image::oci::apply::Applier;
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The directory that escaping links in the seeds point at.
const ESCAPE: &str = "/tmp/ib-fuzz-escape";
const SENTINEL: &[u8] = b"must stay as it is\n";
/// Inputs whose entries add up to more than this are skipped (a sparse entry can claim
/// terabytes that io::copy would write as zeros).
const MAX_WRITTEN: u64 = 4 << 20;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ib-fuzz-layer-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch directory");
        fs::create_dir_all(ESCAPE).expect("escape directory");
        fs::write(Path::new(ESCAPE).join("sentinel"), SENTINEL).expect("sentinel");
        dir
    })
}

/// Sum of the entry sizes the tar claims, or `None` past `MAX_WRITTEN` (or unreadable
/// headers, which the applier reports itself).
fn claimed(data: &[u8]) -> Option<u64> {
    let mut total = 0u64;
    let mut archive = tar::Archive::new(data);
    for entry in archive.entries().ok()? {
        let Ok(entry) = entry else { break };
        total = total.saturating_add(entry.size());
        if total > MAX_WRITTEN {
            return None;
        }
    }
    Some(total)
}

fn only_entry(dir: &Path, name: &str) {
    let names: Vec<_> = fs::read_dir(dir)
        .expect("listing")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(name)], "in {dir:?}");
}

fuzz_target!(|data: &[u8]| {
    if claimed(data).is_none() {
        return;
    }
    let dir = scratch();
    let root = dir.join("root");
    if root.exists() {
        // Modes of the last run may deny even root nothing; remove_dir_all copes.
        fs::remove_dir_all(&root).expect("clearing the root");
    }
    fs::create_dir(&root).expect("root");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut applier = Applier::new(&root, deadline).expect("applier");
    for _ in 0..2 {
        if applier.apply(data).is_err() {
            break;
        }
    }
    only_entry(dir, "root");
    only_entry(Path::new(ESCAPE), "sentinel");
    assert_eq!(
        fs::read(Path::new(ESCAPE).join("sentinel")).expect("sentinel"),
        SENTINEL
    );
});
