//! A monitor's cap on its container's log: rotation by size ("copytruncate"), woken by
//! inotify on the log's writes.

use super::process::log;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a monitor looks at the size of its container's log when it cannot watch it
/// with inotify.
pub const LOG_CHECK_EVERY: Duration = Duration::from_millis(200);

/// The least time between two looks at the log's size (inotify wakes the monitor on
/// every write; this keeps a container that writes without pause from keeping it busy).
pub const LOG_CHECK_GAP: Duration = Duration::from_millis(20);

/// The rotated log beside `log`: `<log>.1`.
pub fn rotated_log(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_os_string();
    name.push(".1");
    PathBuf::from(name)
}

/// Rotates `log` if it is larger than `max` bytes ("copytruncate", as logrotate does it):
/// its last `max` bytes are copied to [`rotated_log`] (replacing the previous one, through
/// a temporary file and a rename) and `log` is truncated to 0. The container keeps writing
/// to its O_APPEND descriptors, so its next write lands at the new start; what it writes
/// between the look at the size and the truncation is lost. On disk: at most `max` in
/// `<log>.1`, and in the log `max` plus what is written between two checks. Returns
/// whether it rotated.
pub fn rotate_log(log: &Path, max: u64) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = match std::fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= max {
        return Ok(false);
    }
    let rotated = rotated_log(log);
    let mut tmp = rotated.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        // The last `max` bytes of what was there when we looked: a container that keeps
        // writing must not make the copy chase it.
        let mut from = File::open(log)?;
        from.seek(SeekFrom::Start(len - max))?;
        let mut to = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        std::io::copy(&mut from.take(max), &mut to)?;
    }
    std::fs::rename(&tmp, &rotated)?;
    OpenOptions::new().write(true).open(log)?.set_len(0)?;
    Ok(true)
}

/// An inotify watch for writes to one file.
struct Writes {
    fd: std::os::fd::OwnedFd,
}

impl Writes {
    /// Watches `path`; `None` when inotify is not available.
    fn watch(path: &Path) -> Option<Self> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: plain syscall; the fd is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) };
        (wd >= 0).then_some(Self { fd })
    }

    /// Blocks until the file was written (since the last call); false on an error.
    fn wait(&self) -> bool {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a buffer of the given length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        n > 0 || std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    }
}

/// Rotates `path` whenever it grows past `max`, for the rest of the monitor's life (a
/// thread of the monitor, started after its last fork). It wakes on the log's writes
/// (inotify; at most every [`LOG_CHECK_GAP`]), or every [`LOG_CHECK_EVERY`] without inotify.
pub(super) fn cap_log(path: PathBuf, max: u64, monitor_log: &File) {
    let Ok(mlog) = monitor_log.try_clone() else {
        log(monitor_log, "cannot cap the log: dup failed");
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("log-cap".into())
        .spawn(move || {
            let mut writes = Writes::watch(&path);
            if writes.is_none() {
                log(
                    &mlog,
                    "no inotify watch on the log; checking its size by polling",
                );
            }
            loop {
                match &writes {
                    Some(w) if w.wait() => {}
                    Some(_) => {
                        log(&mlog, "inotify read failed; checking the log by polling");
                        writes = None;
                    }
                    None => std::thread::sleep(LOG_CHECK_EVERY),
                }
                match rotate_log(&path, max) {
                    Ok(true) => log(&mlog, &format!("log over {max} bytes: rotated")),
                    Ok(false) => {}
                    Err(e) => log(&mlog, &format!("rotating {path:?}: {e}")),
                }
                std::thread::sleep(LOG_CHECK_GAP);
            }
        });
    if let Err(e) = spawned {
        log(
            monitor_log,
            &format!("cannot start the log cap thread: {e}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::process::open_append;
    use super::*;

    /// Issue 10: container logs had no cap (237 MB in 5 s).
    #[test]
    fn a_log_over_its_cap_is_copied_aside_and_truncated_while_a_writer_appends() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        assert!(!rotate_log(&p, 10).unwrap(), "a missing log is no error");
        // The container's descriptor: O_APPEND, open across the rotation.
        let mut w = open_append(&p).unwrap();
        w.write_all(b"0123456789").unwrap();
        assert!(!rotate_log(&p, 10).unwrap(), "at the cap: kept");
        w.write_all(b"abc").unwrap();
        assert!(rotate_log(&p, 10).unwrap());
        // The last `max` bytes are kept aside.
        assert_eq!(std::fs::read(rotated_log(&p)).unwrap(), b"3456789abc");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        w.write_all(b"after").unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"after",
            "appends start at 0 again"
        );
        // The next rotation replaces the previous copy.
        w.write_all(b"-more-than-ten").unwrap();
        assert!(rotate_log(&p, 10).unwrap());
        assert_eq!(std::fs::read(rotated_log(&p)).unwrap(), b"e-than-ten");
        assert!(!dir.path().join("c.log.1.tmp").exists());
    }
}
