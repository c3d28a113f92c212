//! Container logs: the file format the monitor writes ([`Writer`]), its rotation by size,
//! and reading it back ([`read`]) as entries (time, stream, line), the last N lines, from
//! a position, filtered by time and stream.
//!
//! **Files.** `<log>` is the current file, `<log>.1` the one before it, up to
//! `<log>.<files - 1>` (oldest). Each file the monitor writes starts with a header line
//! `{"imagebus_log":1,"start":P}` and holds one JSON record per line,
//! `{"time_ns":T,"stream":"stdout"|"stderr","line":"…"}` (the line without its newline;
//! `T` in nanoseconds since the Unix epoch, when the monitor read it, never decreasing).
//!
//! **Positions.** A position is a byte offset in the whole log, across rotations: file
//! `F` covers `[start, start + len)` where `start` is in its header (the next file starts
//! where the previous one ended). So a reader that passes back the position it got
//! follows the log across any number of rotations and reads every line once, as long as
//! the file holding it was not removed (then it goes on at the oldest file left).
//!
//! **Older files** (written before this format, by a container writing its log itself):
//! lines without a header are read as legacy lines (no time, no stream); they are older
//! than every file with a header, and their positions are stacked from 0 in age order. A
//! legacy current file (a monitor of the old kind still runs) is read as it grows; a
//! position past its end (it was truncated by the old cap) reads it from its start.

mod read;
mod writer;

pub use read::{read, Piece, Want};
pub use writer::Writer;

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Largest chunk of line text returned by one [`read`].
pub const MAX_CHUNK: u64 = 1 << 20;

/// The longest line kept whole: a longer one is cut into records of this many bytes.
pub const MAX_LINE: usize = 16 << 10;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the monitor read it, nanoseconds since the Unix epoch (`None`: a legacy line).
    pub time_ns: Option<u64>,
    /// Where it came from (`None`: a legacy line).
    pub stream: Option<Stream>,
    /// The text, without its newline (invalid UTF-8 replaced).
    pub line: String,
}

/// A record as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record<'a> {
    time_ns: u64,
    stream: Stream,
    #[serde(borrow)]
    line: std::borrow::Cow<'a, str>,
}

/// A file's first line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    imagebus_log: u32,
    start: u64,
}

/// The format version in headers.
const FORMAT: u32 = 1;

/// `<log>.<n>`.
pub fn rotated(log: &Path, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Every file of the log: `<log>` and `<log>.1`, `<log>.2`, ... (up to the first missing
/// one), for removing them all.
pub fn all_files(log: &Path) -> Vec<PathBuf> {
    let mut files = vec![log.to_path_buf()];
    for n in 1..=MAX_FILES {
        let p = rotated(log, n);
        if !p.exists() {
            break;
        }
        files.push(p);
    }
    files
}

/// The most files a log keeps (the current one included).
pub const MAX_FILES: u32 = 100;

/// One line parsed.
fn parse(line: &[u8]) -> Entry {
    if line.first() == Some(&b'{') {
        if let Ok(r) = serde_json::from_slice::<Record<'_>>(line) {
            return Entry {
                time_ns: Some(r.time_ns),
                stream: Some(r.stream),
                line: r.line.into_owned(),
            };
        }
    }
    Entry {
        time_ns: None,
        stream: None,
        line: String::from_utf8_lossy(line).into_owned(),
    }
}

/// The header of a file, if its first line is one; with the header line's length.
fn header(f: &mut File) -> std::io::Result<Option<(u64, u64)>> {
    let mut buf = [0u8; 128];
    f.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < buf.len() {
        let got = f.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let Some(end) = buf[..n].iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<Header>(&buf[..end])
        .ok()
        .filter(|h| h.imagebus_log == FORMAT)
        .map(|h| (h.start, end as u64 + 1)))
}

/// One file of the log, open.
#[derive(Debug)]
struct Segment {
    file: File,
    /// Position of its first byte.
    start: u64,
    /// Its length now.
    len: u64,
    /// Bytes of its header (0 for a legacy file).
    body: u64,
    /// Whether it is `<log>` itself.
    current: bool,
}

impl Segment {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The files of the log, oldest first, each open (so a rotation after this does not
/// change what is read). Retries a few times when a rotation made the listing
/// inconsistent (a gap between two files).
fn segments(log: &Path) -> std::io::Result<Vec<Segment>> {
    let mut last = Vec::new();
    for _ in 0..5 {
        let (segs, consistent) = list_once(log)?;
        if consistent {
            return Ok(segs);
        }
        last = segs;
    }
    Ok(last)
}

fn list_once(log: &Path) -> std::io::Result<(Vec<Segment>, bool)> {
    // Newest first: a rotation between two opens shows a file twice (dropped by inode),
    // never misses one without a gap.
    let mut seen = std::collections::HashSet::new();
    let mut headed = Vec::new();
    let mut legacy = Vec::new();
    for n in 0..=MAX_FILES {
        let path = if n == 0 {
            log.to_path_buf()
        } else {
            rotated(log, n)
        };
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if n == 0 {
                    continue;
                }
                break;
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let len = meta.len();
        match header(&mut file)? {
            Some((start, body)) => headed.push(Segment {
                file,
                start,
                len,
                body,
                current: n == 0,
            }),
            None => legacy.push(Segment {
                file,
                start: 0,
                len,
                body: 0,
                current: n == 0,
            }),
        }
    }
    // Legacy files: oldest (highest index) first, stacked from 0.
    legacy.reverse();
    let mut pos = 0;
    for s in &mut legacy {
        s.start = pos;
        pos += s.len;
    }
    headed.sort_by_key(|s| s.start);
    let consistent = headed.windows(2).all(|w| w[0].end() == w[1].start);
    legacy.extend(headed);
    Ok((legacy, consistent))
}

#[cfg(test)]
mod tests;
