//! The framing of an interactive session's stream socket (`container@1.Session`): the bus
//! carries the request and the answer (where the socket is); the bytes go over that unix
//! socket, framed as below. Both ends (the session helper beside the daemon, and the CLI
//! on the same host) use [`encode`] and [`Decoder`].
//!
//! A frame is a kind byte, a big-endian `u32` payload length, then the payload (at most
//! [`MAX_PAYLOAD`] bytes).
//!
//! | kind | name | direction | payload |
//! |---|---|---|---|
//! | 0 | stdin | client → process | bytes for the process's stdin (or the terminal) |
//! | 1 | stdin-eof | client → process | none: closes the process's stdin (no terminal only) |
//! | 2 | resize | client → process | rows `u16`, cols `u16` (big-endian): the terminal's size |
//! | 3 | stdout | process → client | bytes (the terminal's output, with a terminal) |
//! | 4 | stderr | process → client | bytes (no terminal only) |
//! | 5 | exit | process → client | the exit code, `i32` (128 + n for signal n); last frame |
//! | 6 | ended | process → client | none: the init's terminal closed (its exit code is in `Get`); last frame |
//! | 7 | error | process → client | `<ErrorCode>\n<message>`: the process could not be run; last frame |

/// Largest payload of one frame.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Bytes before a frame's payload.
pub const HEADER: usize = 5;

/// One frame of a session stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Input for the process.
    Stdin(Vec<u8>),
    /// The input ended.
    StdinEof,
    /// The client's terminal size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Output of the process (or its terminal).
    Stdout(Vec<u8>),
    /// Error output of the process (sessions without a terminal).
    Stderr(Vec<u8>),
    /// The process exited with this code (128 + n for signal n).
    Exit(i32),
    /// The init's terminal closed; its exit code is the container's.
    Ended,
    /// The process could not be run.
    Error {
        /// An `ErrorCode` name (`InvalidArgument`, `Internal`, ...).
        code: String,
        /// What went wrong.
        message: String,
    },
}

/// Encodes `frame` (payloads longer than [`MAX_PAYLOAD`] are cut: split data first).
pub fn encode(frame: &Frame) -> Vec<u8> {
    let (kind, payload): (u8, Vec<u8>) = match frame {
        Frame::Stdin(b) => (0, b.clone()),
        Frame::StdinEof => (1, Vec::new()),
        Frame::Resize { rows, cols } => {
            let mut p = rows.to_be_bytes().to_vec();
            p.extend(cols.to_be_bytes());
            (2, p)
        }
        Frame::Stdout(b) => (3, b.clone()),
        Frame::Stderr(b) => (4, b.clone()),
        Frame::Exit(code) => (5, code.to_be_bytes().to_vec()),
        Frame::Ended => (6, Vec::new()),
        Frame::Error { code, message } => (7, format!("{code}\n{message}").into_bytes()),
    };
    let len = payload.len().min(MAX_PAYLOAD);
    let mut out = Vec::with_capacity(HEADER + len);
    out.push(kind);
    out.extend((len as u32).to_be_bytes());
    out.extend(&payload[..len]);
    out
}

/// Turns a byte stream back into frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet decoded.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed. Errors: an unknown
    /// kind, a payload over [`MAX_PAYLOAD`] or of the wrong size for its kind.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        let Some(head) = self.buf.get(..HEADER) else {
            return Ok(None);
        };
        let kind = head[0];
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(format!(
                "a session frame of {len} bytes (at most {MAX_PAYLOAD})"
            ));
        }
        let Some(payload) = self.buf.get(HEADER..HEADER + len) else {
            return Ok(None);
        };
        let fixed = |n: usize| -> Result<&[u8], String> {
            if payload.len() == n {
                Ok(payload)
            } else {
                Err(format!("a session frame of kind {kind} with {len} bytes"))
            }
        };
        let frame = match kind {
            0 => Frame::Stdin(payload.to_vec()),
            1 => Frame::StdinEof,
            2 => {
                let p = fixed(4)?;
                Frame::Resize {
                    rows: u16::from_be_bytes([p[0], p[1]]),
                    cols: u16::from_be_bytes([p[2], p[3]]),
                }
            }
            3 => Frame::Stdout(payload.to_vec()),
            4 => Frame::Stderr(payload.to_vec()),
            5 => {
                let p = fixed(4)?;
                Frame::Exit(i32::from_be_bytes([p[0], p[1], p[2], p[3]]))
            }
            6 => Frame::Ended,
            7 => {
                let text = String::from_utf8_lossy(payload);
                let (code, message) = text.split_once('\n').unwrap_or(("Internal", &text));
                Frame::Error {
                    code: code.to_string(),
                    message: message.to_string(),
                }
            }
            other => return Err(format!("a session frame of unknown kind {other}")),
        };
        self.buf.drain(..HEADER + len);
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let frames = vec![
            Frame::Stdin(b"ls\r".to_vec()),
            Frame::StdinEof,
            Frame::Resize {
                rows: 40,
                cols: 120,
            },
            Frame::Stdout(vec![0; 70_000]),
            Frame::Stderr(b"oops".to_vec()),
            Frame::Exit(-7),
            Frame::Ended,
            Frame::Error {
                code: "InvalidArgument".into(),
                message: "no such\ncommand".into(),
            },
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(encode).collect();
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(7) {
            d.push(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        let mut want = frames;
        want[3] = Frame::Stdout(vec![0; MAX_PAYLOAD]);
        assert_eq!(got, want);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut d = Decoder::default();
        d.push(&[9, 0, 0, 0, 0]);
        assert!(d.next_frame().is_err());
        let mut d = Decoder::default();
        d.push(&[2, 0, 0, 0, 3, 1, 2, 3]);
        assert!(d.next_frame().is_err());
        let mut d = Decoder::default();
        d.push(&[0, 0xff, 0, 0, 0]);
        assert!(d.next_frame().is_err());
    }
}
