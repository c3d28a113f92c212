//! Writing the log (the monitor's log capture is its only writer): one record per line,
//! rotated by renaming once the current file would pass its size.

use super::{all_files, rotated, segments, Header, Record, Stream, FORMAT, MAX_FILES};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The log's writer.
#[derive(Debug)]
pub struct Writer {
    log: PathBuf,
    file: File,
    /// Position of the current file's first byte.
    start: u64,
    /// The current file's length.
    len: u64,
    /// Its header's length.
    body: u64,
    max_bytes: Option<u64>,
    files: u32,
    last_ns: u64,
}

fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o640)
        .open(path)
}

impl Writer {
    /// Opens `log` to append records: a current file in this format is continued; a
    /// legacy one (raw text) is first rotated out, so it stays readable as the oldest part.
    /// Past `max_bytes` (`None`: never) the current file is rotated, keeping `files` files
    /// in all (the current one included; 1 to [`MAX_FILES`]).
    pub fn open(log: &Path, max_bytes: Option<u64>, files: u32) -> std::io::Result<Self> {
        let files = files.clamp(1, MAX_FILES);
        let segs = segments(log)?;
        let end = segs.last().map_or(0, |s| s.start + s.len);
        if let Some(cur) = segs.last().filter(|s| s.current && s.body > 0) {
            let file = OpenOptions::new().append(true).open(log)?;
            let mut w = Self {
                log: log.to_path_buf(),
                file,
                start: cur.start,
                len: cur.len,
                body: cur.body,
                max_bytes,
                files,
                last_ns: 0,
            };
            // An unfinished record (a monitor killed mid-write) ends here.
            if w.len > w.body && !ends_with_newline(log)? {
                w.file.write_all(b"\n")?;
                w.len += 1;
            }
            return Ok(w);
        }
        let had_legacy = segs.iter().any(|s| s.current);
        drop(segs);
        if had_legacy {
            shift(log, files)?;
        }
        let (file, body) = fresh(log, end)?;
        Ok(Self {
            log: log.to_path_buf(),
            file,
            start: end,
            len: body,
            body,
            max_bytes,
            files,
            last_ns: 0,
        })
    }

    /// Appends one line (without its newline) of `stream`, read at `now_ns` (kept from
    /// going back: times never decrease).
    pub fn write(&mut self, stream: Stream, line: &[u8], now_ns: u64) -> std::io::Result<()> {
        self.last_ns = self.last_ns.max(now_ns);
        let text = String::from_utf8_lossy(line);
        let mut rec = serde_json::to_vec(&Record {
            time_ns: self.last_ns,
            stream,
            line: text,
        })
        .map_err(std::io::Error::other)?;
        rec.push(b'\n');
        if let Some(max) = self.max_bytes {
            if self.len > self.body && self.len + rec.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&rec)?;
        self.len += rec.len() as u64;
        Ok(())
    }

    /// The current file becomes `<log>.1` (older ones move up, the oldest beyond the count
    /// is removed) and a new current file starts where it ended.
    fn rotate(&mut self) -> std::io::Result<()> {
        let next = self.start + self.len;
        shift(&self.log, self.files)?;
        let (file, body) = fresh(&self.log, next)?;
        self.file = file;
        self.start = next;
        self.len = body;
        self.body = body;
        Ok(())
    }
}

/// Renames `<log>` to `<log>.1` and each `<log>.k` to `<log>.k+1`, removing the files that
/// would pass the count (with one file: removes `<log>`).
fn shift(log: &Path, files: u32) -> std::io::Result<()> {
    let existing = all_files(log).len() as u32;
    for k in (files.saturating_sub(1).max(1)..existing.max(1)).rev() {
        remove_if_there(&rotated(log, k))?;
    }
    for k in (1..files.saturating_sub(1)).rev() {
        let from = rotated(log, k);
        if from.exists() {
            std::fs::rename(&from, rotated(log, k + 1))?;
        }
    }
    if files > 1 {
        if log.exists() {
            std::fs::rename(log, rotated(log, 1))?;
        }
    } else {
        remove_if_there(log)?;
    }
    Ok(())
}

/// A new current file starting at position `start`, with its header; and the header's
/// length.
fn fresh(log: &Path, start: u64) -> std::io::Result<(File, u64)> {
    let mut head = serde_json::to_vec(&Header {
        imagebus_log: FORMAT,
        start,
    })
    .map_err(std::io::Error::other)?;
    head.push(b'\n');
    let mut file = create(log)?;
    file.write_all(&head)?;
    Ok((file, head.len() as u64))
}

fn remove_if_there(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn ends_with_newline(p: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(p)?;
    if f.seek(SeekFrom::End(-1)).is_err() {
        return Ok(true);
    }
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0] == b'\n')
}
