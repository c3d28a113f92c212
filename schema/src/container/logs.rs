//! A container's log: its rotation settings ([`LogSpec`]) and its lines as `Logs` returns
//! them ([`LogEntry`]).

use serde::{Deserialize, Serialize};

/// How a container's log is rotated. Request type.
///
/// msgpack/JSON form: `{"max_bytes": 10485760, "max_files": 3}`; an absent field takes
/// the daemon's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// Size past which the current file is rotated (0: never; else at least
    /// [`MIN_LOG_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Files kept, the current one included (1 to [`MAX_LOG_FILES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u32>,
}

/// The least rotation size accepted.
pub const MIN_LOG_BYTES: u64 = 1024;

/// The most files a log may keep.
pub const MAX_LOG_FILES: u32 = 100;

impl LogSpec {
    /// Checks the values; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if let Some(b) = self.max_bytes.filter(|&b| b != 0 && b < MIN_LOG_BYTES) {
            return Err(format!(
                "log max_bytes {b} is below the least accepted, {MIN_LOG_BYTES} (0: never rotate)"
            ));
        }
        if let Some(f) = self.max_files.filter(|f| !(1..=MAX_LOG_FILES).contains(f)) {
            return Err(format!(
                "log max_files {f} is not between 1 and {MAX_LOG_FILES}"
            ));
        }
        Ok(())
    }
}

/// Which output of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line of a container's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When the monitor read it, nanoseconds since the Unix epoch (`None`: a line written
    /// before logs had times).
    #[serde(default)]
    pub time_ns: Option<u64>,
    /// Its stream (`None`: a line written before logs kept them apart).
    #[serde(default)]
    pub stream: Option<LogStream>,
    /// The text, without its newline.
    pub line: String,
}
