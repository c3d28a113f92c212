//! Telling a live session helper's directories from a dead one's: the helper takes an
//! exclusive `flock` on `<work_dir>/held` before it makes its stream directory and keeps it
//! until it exits; the kernel drops the lock when the process dies, kill -9 included. A
//! sweep removes the directories of every session whose lock it can take.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The lock file in a session's work directory.
pub const HELD_FILE: &str = "held";

/// Creates `<work_dir>/held` and locks it; the lock lasts as long as the returned file
/// (which is close-on-exec, so no child of the helper inherits it).
pub fn hold(work_dir: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(work_dir.join(HELD_FILE))?;
    lock(&f, false)?;
    Ok(f)
}

fn lock(f: &File, nonblocking: bool) -> io::Result<()> {
    let op = libc::LOCK_EX | if nonblocking { libc::LOCK_NB } else { 0 };
    // SAFETY: flock on a descriptor this function borrows for the call.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the session whose work directory is `dir` has no live helper: its lock file is
/// missing (the helper died before taking it, or never got that far) or can be locked.
fn is_stale(dir: &Path) -> bool {
    match File::open(dir.join(HELD_FILE)) {
        Ok(f) => lock(&f, true).is_ok(),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Removes the directories of sessions without a live helper: each `<work_root>/TOKEN`
/// whose lock is free, with its `<stream_root>/TOKEN`, and each `<stream_root>/TOKEN`
/// without a work directory (a helper makes the work directory first). Call it when no
/// session is being started by this process (a helper between its two directories would
/// look dead). Returns how many sessions were swept.
pub fn sweep_stale(stream_root: &Path, work_root: &Path) -> usize {
    let names = |root: &Path| -> Vec<std::ffi::OsString> {
        std::fs::read_dir(root)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    let mut swept = 0;
    for token in names(work_root) {
        let work = work_root.join(&token);
        if work.is_dir() && is_stale(&work) {
            let _ = std::fs::remove_dir_all(&work);
            let _ = std::fs::remove_dir_all(stream_root.join(&token));
            swept += 1;
        }
    }
    for token in names(stream_root) {
        let stream = stream_root.join(&token);
        if stream.is_dir() && !work_root.join(&token).exists() {
            let _ = std::fs::remove_dir_all(&stream);
            swept += 1;
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ib-sweep-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("stream")).unwrap();
        std::fs::create_dir_all(d.join("work")).unwrap();
        d
    }

    #[test]
    fn a_held_session_stays_and_a_dead_ones_directories_go() {
        let d = scratch("held");
        let (stream, work) = (d.join("stream"), d.join("work"));
        for t in ["live", "dead", "early"] {
            std::fs::create_dir(work.join(t)).unwrap();
            std::fs::create_dir(stream.join(t)).unwrap();
        }
        std::fs::create_dir(stream.join("orphan")).unwrap();
        let live = hold(&work.join("live")).unwrap();
        // A helper that died holding its lock: the file is there, the lock is gone.
        drop(hold(&work.join("dead")).unwrap());
        // "early" died before taking the lock: no file at all.
        assert_eq!(sweep_stale(&stream, &work), 3);
        for gone in [
            work.join("dead"),
            stream.join("dead"),
            work.join("early"),
            stream.join("orphan"),
        ] {
            assert!(!gone.exists(), "{gone:?} left");
        }
        assert!(work.join("live").exists() && stream.join("live").exists());
        // The lock is per open file description: another open of the file cannot take it.
        assert!(!is_stale(&work.join("live")));
        drop(live);
        assert_eq!(sweep_stale(&stream, &work), 1);
        assert!(!work.join("live").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
