//! Reading a log file: the whole of it, its last N lines, or from an offset, in bounded
//! chunks that never split a UTF-8 character (the rest comes with the next read).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Largest chunk returned.
pub const MAX_CHUNK: u64 = 1 << 20;

/// Bytes and the offset just past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Text (lossy UTF-8; an incomplete trailing character is left for the next read).
    pub data: String,
    /// Next offset.
    pub offset: u64,
}

/// What to read: everything from `offset`, else the last `tail` lines, else the whole file;
/// at most `max_bytes` (default and cap [`MAX_CHUNK`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    /// Read forward from this byte offset.
    pub offset: Option<u64>,
    /// Read the last N lines.
    pub tail: Option<u32>,
    /// At most this many bytes.
    pub max_bytes: Option<u32>,
}

/// Reads what `req` asks for. A missing file reads as empty. An offset past the end of the
/// file (it was rotated: truncated to 0 and written again) reads from the start.
pub fn read(path: &Path, req: &Want) -> std::io::Result<Piece> {
    let max = req
        .max_bytes
        .map(u64::from)
        .unwrap_or(MAX_CHUNK)
        .clamp(1, MAX_CHUNK);
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Piece {
                data: String::new(),
                offset: 0,
            })
        }
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = match (req.offset, req.tail) {
        // An offset past the end: the log was rotated (truncated) since; its new content
        // starts at 0.
        (Some(off), _) if off > len => 0,
        (Some(off), _) => off,
        (None, Some(n)) => tail_start(&mut f, len, n)?,
        (None, None) => 0,
    };
    // With a tail, return the end; otherwise read forward from `start`.
    let start = if req.offset.is_none() && req.tail.is_some() {
        start.max(len.saturating_sub(max))
    } else {
        start
    };
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    let keep = utf8_complete_len(&buf);
    buf.truncate(keep);
    Ok(Piece {
        data: String::from_utf8_lossy(&buf).into_owned(),
        offset: start + keep as u64,
    })
}

/// Offset where the last `n` lines start.
fn tail_start(f: &mut File, len: u64, n: u32) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut newlines = 0u32;
    let mut block = vec![0u8; 8192];
    // A final newline ends the last line; it does not start a new one.
    let mut skip_last = true;
    while pos > 0 {
        let step = (pos as usize).min(block.len());
        pos -= step as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut block[..step])?;
        for i in (0..step).rev() {
            if block[i] == b'\n' {
                if skip_last && pos + i as u64 == len - 1 {
                    continue;
                }
                newlines += 1;
                if newlines == n {
                    return Ok(pos + i as u64 + 1);
                }
            }
            skip_last = false;
        }
    }
    Ok(0)
}

/// Length of `buf` without an incomplete UTF-8 sequence at its end.
fn utf8_complete_len(buf: &[u8]) -> usize {
    match std::str::from_utf8(buf) {
        Ok(_) => buf.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => buf.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(offset: Option<u64>, tail: Option<u32>) -> Want {
        Want {
            offset,
            tail,
            max_bytes: None,
        }
    }

    #[test]
    fn tail_offset_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.log");
        assert_eq!(
            read(&p, &req(None, None)).unwrap(),
            Piece {
                data: String::new(),
                offset: 0
            }
        );
        std::fs::write(&p, "a\nbb\nccc\n").unwrap();
        assert_eq!(read(&p, &req(None, None)).unwrap().data, "a\nbb\nccc\n");
        assert_eq!(read(&p, &req(None, Some(2))).unwrap().data, "bb\nccc\n");
        assert_eq!(read(&p, &req(None, Some(9))).unwrap().data, "a\nbb\nccc\n");
        assert_eq!(read(&p, &req(None, Some(0))).unwrap().data, "");
        let piece = read(&p, &req(Some(2), None)).unwrap();
        assert_eq!(
            piece,
            Piece {
                data: "bb\nccc\n".into(),
                offset: 9
            }
        );
        std::fs::write(&p, "a\nbb\nccc\nd").unwrap();
        assert_eq!(read(&p, &req(None, Some(1))).unwrap().data, "d");
        assert_eq!(read(&p, &req(Some(9), None)).unwrap().data, "d");
    }

    /// A follower's offset past the end (the log was rotated meanwhile) reads the new
    /// content from the start, not nothing.
    #[test]
    fn an_offset_past_the_end_of_a_rotated_log_reads_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.log");
        std::fs::write(&p, "new\n").unwrap();
        let piece = read(&p, &req(Some(1000), None)).unwrap();
        assert_eq!(
            piece,
            Piece {
                data: "new\n".into(),
                offset: 4
            }
        );
    }

    #[test]
    fn incomplete_utf8_waits_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.log");
        std::fs::write(&p, [b'x', 0xc3]).unwrap();
        let piece = read(&p, &req(Some(0), None)).unwrap();
        assert_eq!(
            piece,
            Piece {
                data: "x".into(),
                offset: 1
            }
        );
    }
}
