//! A monitor's log capture: the container writes its stdout and stderr itself, through
//! O_APPEND descriptors on two spool files (so nothing of ours sits in its data path and
//! nothing can refuse a write); a thread of the monitor, woken by inotify on their writes,
//! reads the new bytes, cuts them into lines, writes each line to the log as a record with
//! the time it read it and its stream ([`crate::logfile::Writer`], which rotates the log
//! by size), and frees what it has read from the spool (`fallocate` punching a hole: the
//! file keeps its size, so the container's appends and our read position are unchanged,
//! and nothing is lost).

use super::process::log;
use crate::logfile::{Stream, Writer, MAX_LINE};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the capture looks at the spools when inotify is not available.
pub const CAPTURE_POLL: Duration = Duration::from_millis(100);

/// Spool bytes read at once (one buffer per capture, shared by its two spools: a
/// monitor whose container writes nothing touches four pages for it).
const READ_BLOCK: usize = 16 << 10;

/// A spool file: where the container's `stream` goes, and our reading end.
struct Spool {
    stream: Stream,
    path: PathBuf,
    file: File,
    /// Bytes of an unfinished line.
    partial: Vec<u8>,
    /// What has been read (the read position).
    read: u64,
    /// What has been freed.
    freed: u64,
    /// Whether holes can be punched (else the spool is truncated when fully read, which
    /// can lose a write that lands between the read and the truncation).
    punch: bool,
}

impl Spool {
    fn open(path: &Path, stream: Stream) -> std::io::Result<Self> {
        Ok(Self {
            stream,
            path: path.to_path_buf(),
            // Writable too: punching a hole needs it.
            file: OpenOptions::new().read(true).write(true).open(path)?,
            partial: Vec::new(),
            read: 0,
            freed: 0,
            punch: true,
        })
    }

    /// Reads what is new through `buf`, writes its complete lines (and `end`: the rest
    /// too), frees it.
    fn drain(&mut self, w: &mut Writer, buf: &mut [u8], end: bool) -> std::io::Result<()> {
        loop {
            let n = self.file.read(buf)?;
            if n == 0 {
                break;
            }
            self.read += n as u64;
            let now = now_ns();
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                self.partial.extend_from_slice(&rest[..i]);
                emit(w, self.stream, &self.partial, now)?;
                self.partial.clear();
                rest = &rest[i + 1..];
            }
            self.partial.extend_from_slice(rest);
            while self.partial.len() >= MAX_LINE {
                let tail = self.partial.split_off(MAX_LINE);
                emit(w, self.stream, &self.partial, now)?;
                self.partial = tail;
            }
        }
        if end && !self.partial.is_empty() {
            emit(w, self.stream, &self.partial, now_ns())?;
            self.partial.clear();
        }
        self.free();
        Ok(())
    }

    /// Gives back the disk space of what was read.
    fn free(&mut self) {
        if self.punch {
            // Whole blocks only; a partly read block is freed with the next one.
            let upto = self.read & !4095;
            if upto > self.freed {
                // SAFETY: plain syscall on our own descriptor.
                let r = unsafe {
                    libc::fallocate(
                        self.file.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        self.freed as libc::off_t,
                        (upto - self.freed) as libc::off_t,
                    )
                };
                if r == 0 {
                    self.freed = upto;
                } else {
                    self.punch = false;
                }
            }
        }
        if !self.punch && self.read >= 1 << 20 {
            if let Ok(f) = OpenOptions::new().write(true).open(&self.path) {
                if f.metadata().is_ok_and(|m| m.len() == self.read) && f.set_len(0).is_ok() {
                    // Our descriptor reads from 0 again.
                    let _ = std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(0));
                    self.read = 0;
                }
            }
        }
    }
}

fn emit(w: &mut Writer, stream: Stream, line: &[u8], now: u64) -> std::io::Result<()> {
    w.write(stream, line, now)
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Creates (empty) the two spool files of a run, O_APPEND: the descriptors the runtime
/// gives the container as its stdout and stderr.
pub fn open_spools(stdout: &Path, stderr: &Path) -> std::io::Result<(File, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |p: &Path| {
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o640)
            .open(p)?;
        OpenOptions::new().append(true).open(p)
    };
    Ok((open(stdout)?, open(stderr)?))
}

/// The running capture thread.
pub(super) struct Capture {
    stop: OwnedFd,
    thread: JoinHandle<()>,
}

impl Capture {
    /// Stops the thread after a last read of the spools (the init has exited) and waits
    /// for it.
    pub(super) fn finish(self) {
        // SAFETY: one byte written to our pipe.
        let _ = unsafe { libc::write(self.stop.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        let _ = self.thread.join();
    }
}

/// Starts capturing `spools` into `writer` (a thread of the monitor, started after its
/// last fork).
pub(super) fn start(
    spools: [(&Path, Stream); 2],
    mut writer: Writer,
    monitor_log: &File,
) -> std::io::Result<Capture> {
    let mut open = Vec::new();
    for (p, s) in spools {
        open.push(Spool::open(p, s)?);
    }
    let mlog = monitor_log.try_clone()?;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: creates a pipe into a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: new descriptors owned here.
    let (stop_r, stop_w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let watch = Writes::watch(&open.iter().map(|s| s.path.clone()).collect::<Vec<_>>());
    if watch.is_none() {
        log(
            &mlog,
            "no inotify watch on the spools; capturing by polling",
        );
    }
    let thread = std::thread::Builder::new()
        .name("log-capture".into())
        .spawn(move || {
            let mut failed = false;
            let mut buf = vec![0u8; READ_BLOCK];
            // What the container wrote before the watch existed is read first.
            let mut stopping = false;
            loop {
                for s in &mut open {
                    if let Err(e) = s.drain(&mut writer, &mut buf, stopping) {
                        if !failed {
                            log(&mlog, &format!("capturing {:?}: {e}", s.path));
                            failed = true;
                        }
                    }
                }
                if stopping {
                    return;
                }
                stopping = wait(watch.as_ref(), &stop_r);
            }
        })?;
    Ok(Capture {
        stop: stop_w,
        thread,
    })
}

/// Waits for a write to a spool (or [`CAPTURE_POLL`] without inotify) or the stop byte;
/// true when told to stop.
fn wait(watch: Option<&Writes>, stop: &OwnedFd) -> bool {
    let mut pfds = vec![libc::pollfd {
        fd: stop.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    if let Some(w) = watch {
        pfds.push(libc::pollfd {
            fd: w.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
    }
    let timeout = if watch.is_some() {
        -1
    } else {
        CAPTURE_POLL.as_millis() as libc::c_int
    };
    // SAFETY: valid pollfds of the given count.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
    if r > 0 {
        if let (Some(w), Some(p)) = (watch, pfds.get(1)) {
            if p.revents & libc::POLLIN != 0 {
                w.consume();
            }
        }
    }
    pfds[0].revents & (libc::POLLIN | libc::POLLHUP) != 0
}

/// An inotify watch for writes to the spools.
struct Writes {
    fd: OwnedFd,
}

impl Writes {
    fn watch(paths: &[PathBuf]) -> Option<Self> {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain syscall; the fd is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for p in paths {
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
            // SAFETY: a valid inotify fd and a NUL-terminated path.
            let wd =
                unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) };
            if wd < 0 {
                return None;
            }
        }
        Some(Self { fd })
    }

    /// Reads the pending events (they only say "written").
    fn consume(&self) {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a buffer of the given length (non-blocking).
        while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logfile::{read, Want};
    use std::io::Write;

    /// Lines written by a container to its spools come out once each, with their stream,
    /// in order per stream, and the spools' disk space is given back.
    #[test]
    fn spooled_output_is_captured_line_by_line_and_freed() {
        let dir = tempfile::tempdir().unwrap();
        let (out_p, err_p, log_p) = (
            dir.path().join("c.stdout"),
            dir.path().join("c.stderr"),
            dir.path().join("c.log"),
        );
        let (mut out, mut err) = open_spools(&out_p, &err_p).unwrap();
        let mlog = File::create(dir.path().join("monitor.log")).unwrap();
        let w = Writer::open(&log_p, None, 3).unwrap();
        // Written before the capture (and its watch) starts: read all the same.
        writeln!(err, "early").unwrap();
        let cap = start(
            [(&out_p, Stream::Stdout), (&err_p, Stream::Stderr)],
            w,
            &mlog,
        )
        .unwrap();
        for i in 0..2000 {
            writeln!(out, "out-{i}").unwrap();
            if i % 10 == 0 {
                writeln!(err, "err-{i}").unwrap();
            }
        }
        write!(out, "unfinished").unwrap();
        cap.finish();
        let mut got = Vec::new();
        let mut pos = 0;
        loop {
            let p = read(
                &log_p,
                &Want {
                    offset: Some(pos),
                    ..Want::default()
                },
            )
            .unwrap();
            if p.offset == pos {
                break;
            }
            pos = p.offset;
            got.extend(p.entries);
        }
        let outs: Vec<&str> = got
            .iter()
            .filter(|e| e.stream == Some(Stream::Stdout))
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(outs.last(), Some(&"unfinished"));
        let nums: Vec<u32> = outs[..outs.len() - 1]
            .iter()
            .map(|l| l.trim_start_matches("out-").parse().unwrap())
            .collect();
        assert_eq!(nums, (0..2000).collect::<Vec<u32>>());
        let errs = got
            .iter()
            .filter(|e| e.stream == Some(Stream::Stderr))
            .count();
        assert_eq!(errs, 201);
        assert!(got.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
        // Space given back: the spool keeps its size but not its blocks.
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&out_p).unwrap();
        assert!(m.len() > 16_000);
        assert!(
            m.blocks() * 512 < m.len(),
            "{} blocks for {} bytes",
            m.blocks(),
            m.len()
        );
    }
}
