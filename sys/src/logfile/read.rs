//! Reading the log: forward from a position, or its last N lines, through every file
//! (see the module docs), keeping the entries that pass the filters.

use super::{parse, segments, Entry, Segment, Stream, MAX_CHUNK};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What to read: from `offset` (a position from an earlier [`Piece`]), else the last
/// `tail` lines, else from the start; at most `max_bytes` of line text (default and cap
/// [`MAX_CHUNK`]). Only entries in `[since_ns, until_ns]` (legacy lines have no time:
/// dropped by either bound) and of `stream` (legacy lines are taken as stdout) are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    /// Read forward from this position.
    pub offset: Option<u64>,
    /// The last N lines (that pass the filters).
    pub tail: Option<u32>,
    /// At most this many bytes of line text.
    pub max_bytes: Option<u32>,
    /// Only lines read at or after this time (ns since the epoch).
    pub since_ns: Option<u64>,
    /// Only lines read at or before this time.
    pub until_ns: Option<u64>,
    /// Only this stream.
    pub stream: Option<Stream>,
}

impl Want {
    fn keeps(&self, e: &Entry) -> bool {
        let timed = |bound: Option<u64>, ok: fn(u64, u64) -> bool| match (bound, e.time_ns) {
            (None, _) => true,
            (Some(b), Some(t)) => ok(t, b),
            (Some(_), None) => false,
        };
        timed(self.since_ns, |t, b| t >= b)
            && timed(self.until_ns, |t, b| t <= b)
            && self
                .stream
                .is_none_or(|s| e.stream.unwrap_or(Stream::Stdout) == s)
    }

    fn budget(&self) -> u64 {
        self.max_bytes
            .map(u64::from)
            .unwrap_or(MAX_CHUNK)
            .clamp(1, MAX_CHUNK)
    }
}

/// Entries and the position just past them (pass it back as [`Want::offset`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Piece {
    /// The lines, oldest first.
    pub entries: Vec<Entry>,
    /// Position after what was looked at.
    pub offset: u64,
}

/// Reads what `want` asks for. A log without files reads as empty (position 0).
pub fn read(log: &Path, want: &Want) -> std::io::Result<Piece> {
    let mut segs = segments(log)?;
    let Some(end) = segs.last().map(Segment::end) else {
        return Ok(Piece::default());
    };
    match (want.offset, want.tail) {
        (Some(pos), _) => forward(&mut segs, pos, want),
        (None, Some(n)) => {
            let entries = tail(&mut segs, n, want)?;
            Ok(Piece {
                entries,
                offset: complete_end(&mut segs)?.unwrap_or(end),
            })
        }
        (None, None) => {
            let first = segs.first().map_or(0, |s| s.start);
            forward(&mut segs, first, want)
        }
    }
}

/// Reads forward from `pos` through the files, up to the budget.
fn forward(segs: &mut [Segment], pos: u64, want: &Want) -> std::io::Result<Piece> {
    let (first, end) = match (segs.first(), segs.last()) {
        (Some(f), Some(l)) => (f.start, l.end()),
        _ => return Ok(Piece::default()),
    };
    let mut pos = if pos > end {
        // Past the end: a legacy log truncated by its old cap; its new content starts at
        // the current file's start.
        segs.last().map_or(0, |s| s.start)
    } else {
        pos.max(first)
    };
    let budget = want.budget();
    // Work is bounded too when the filters drop most lines.
    let scan_cap = budget.saturating_mul(4);
    let (mut taken, mut scanned) = (0u64, 0u64);
    let mut entries = Vec::new();
    let last = segs.len() - 1;
    for (i, s) in segs.iter_mut().enumerate() {
        if pos >= s.end() && i < last {
            continue;
        }
        let from = (pos.saturating_sub(s.start)).max(s.body);
        let room = scan_cap
            .saturating_sub(scanned)
            .min(s.len.saturating_sub(from));
        let mut buf = Vec::new();
        s.file.seek(SeekFrom::Start(from))?;
        (&mut s.file).take(room).read_to_end(&mut buf)?;
        let mut used = 0usize;
        for line in buf.split_inclusive(|&b| b == b'\n') {
            if line.last() != Some(&b'\n') {
                // An unfinished line: the current file's waits for its end; an older
                // file's last one is final; one cut by the window waits for the next read,
                // unless it fills the whole window (a legacy line longer than it).
                let at_file_end = from + (used + line.len()) as u64 == s.len;
                let fills_window = used == 0 && line.len() as u64 == room && !at_file_end;
                if !(fills_window || (at_file_end && i < last)) {
                    break;
                }
            }
            let e = parse(line.strip_suffix(b"\n").unwrap_or(line));
            used += line.len();
            if want.keeps(&e) {
                taken += e.line.len() as u64 + 1;
                entries.push(e);
            }
            if taken >= budget {
                break;
            }
        }
        scanned += used as u64;
        pos = s.start + from + used as u64;
        let whole = from + used as u64 >= s.len;
        if taken >= budget || scanned >= scan_cap || !whole {
            break;
        }
        if i < last {
            pos = s.end();
        }
    }
    Ok(Piece {
        entries,
        offset: pos,
    })
}

/// The position after the last complete line of the log.
fn complete_end(segs: &mut [Segment]) -> std::io::Result<Option<u64>> {
    let Some(s) = segs.last_mut() else {
        return Ok(None);
    };
    if s.len <= s.body {
        return Ok(Some(s.end()));
    }
    let mut back = 0u64;
    let mut byte = [0u8; 1];
    // At most one unfinished line (a record is written with one write).
    while back < s.len - s.body {
        s.file.seek(SeekFrom::Start(s.len - back - 1))?;
        s.file.read_exact(&mut byte)?;
        if byte[0] == b'\n' {
            break;
        }
        back += 1;
        if back > super::MAX_LINE as u64 * 8 {
            back = 0;
            break;
        }
    }
    Ok(Some(s.end() - back))
}

/// The last `n` entries that pass the filters, oldest first, reading the files backwards
/// in blocks; at most the budget of line text. The current file's unfinished last line is
/// not returned yet.
fn tail(segs: &mut [Segment], n: u32, want: &Want) -> std::io::Result<Vec<Entry>> {
    let mut found: Vec<Entry> = Vec::new();
    let (budget, n) = (want.budget(), n as usize);
    let mut taken = 0u64;
    let current_end = complete_end(segs)?;
    let last = segs.len().saturating_sub(1);
    let mut keep = |line: &[u8], found: &mut Vec<Entry>| -> bool {
        let e = parse(line.strip_suffix(b"\n").unwrap_or(line));
        if want.keeps(&e) {
            taken += e.line.len() as u64 + 1;
            found.push(e);
        }
        found.len() < n && taken < budget
    };
    if n == 0 {
        return Ok(found);
    }
    'files: for (i, s) in segs.iter_mut().enumerate().rev() {
        let mut end = if i == last {
            current_end.map_or(s.len, |e| e - s.start)
        } else {
            s.len
        };
        // The end of a line that began before `end` (read in an earlier block).
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let step = (end.saturating_sub(s.body)).min(64 << 10);
            if step == 0 {
                if !carry.is_empty() && !keep(&carry, &mut found) {
                    break 'files;
                }
                break;
            }
            let mut buf = vec![0u8; step as usize];
            s.file.seek(SeekFrom::Start(end - step))?;
            s.file.read_exact(&mut buf)?;
            end -= step;
            buf.extend_from_slice(&carry);
            let split = if end > s.body {
                buf.iter().position(|&b| b == b'\n').map(|p| p + 1)
            } else {
                Some(0)
            };
            let Some(split) = split else {
                carry = buf;
                if carry.len() as u64 > MAX_CHUNK {
                    // A legacy line longer than a chunk: returned as it is.
                    if !keep(&carry, &mut found) {
                        break 'files;
                    }
                    carry.clear();
                }
                continue;
            };
            for line in buf[split..].split_inclusive(|&b| b == b'\n').rev() {
                if !keep(line, &mut found) {
                    break 'files;
                }
            }
            carry = buf[..split].to_vec();
        }
    }
    found.reverse();
    Ok(found)
}
