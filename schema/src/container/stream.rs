//! Interactive sessions (`Session`): the request and the answer. The bus carries only
//! these; the bytes go over the unix socket named in [`SessionInfo`], framed as
//! `imagebus_sys::session::frame` describes.

use serde::{Deserialize, Serialize};

/// What `Session` opens. Request type: unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// A process to run in the running container (`exec -i`/`-t`); `None`: the
    /// container's own terminal (a container created with `tty`, before its start).
    #[serde(default)]
    pub exec: Option<super::ExecSpec>,
    /// The process gets a terminal (`exec -t`; the exec spec's `timeout_ms` is ignored: a
    /// session ends when the process exits or the client goes away).
    #[serde(default)]
    pub tty: bool,
    /// The client sends input (`-i`); without it the process's stdin is `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
    /// The uid allowed to connect to the stream socket (the caller's own); root always may.
    pub uid: u32,
}

/// Where to connect. The socket accepts one connection from [`SessionRequest::uid`] (or
/// root) within `connect_timeout_ms`, then is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Path of the stream socket.
    pub socket: String,
    /// The socket is removed (and the session ends) if nobody connects in this time.
    pub connect_timeout_ms: u64,
}
