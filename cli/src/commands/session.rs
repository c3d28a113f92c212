//! Interactive sessions (`exec -i/-t`, `run -it`): open one with `Session`, connect to
//! its unix socket, and relay this terminal (raw mode with `-t`, restored on every way
//! out) and stdin to it, its output to stdout/stderr, until the process's exit code.

use anyhow::Result;
use futures::FutureExt;
use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_schema::container::{ContainerModule, ContainerModuleStub, SessionRequest};
use imagebus_schema::Selector;
use imagebus_sys::session::frame::{encode, Decoder, Frame, MAX_PAYLOAD};
use imagebus_sys::tty::{window_size, RawMode};
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The exec'd process exited with this code.
    Exit(i32),
    /// The init's terminal closed (its exit code is the container's).
    Closed,
}

/// Opens a session on `target` and relays it; `before_relay` runs once the stream is
/// connected (`run -it` starts the container there, so no output is missed).
pub async fn attach<F, Fut>(
    c: &ContainerModuleStub,
    target: Selector,
    req: SessionRequest,
    before_relay: F,
) -> Result<Ended>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if req.tty && req.stdin && !std::io::stdin().is_terminal() {
        return Err(RemoteError::invalid_argument(
            "the input device is not a terminal (-t with -i needs one; use -i alone)",
        )
        .into());
    }
    let info = c.session(target, req.clone()).await?;
    let stream = tokio::net::UnixStream::connect(&info.socket)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the session socket {}: {e}", info.socket))?;
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&encode(&f)).await.is_err() {
                break;
            }
        }
    });
    let tty_size =
        || window_size(std::io::stdout().as_fd()).or(window_size(std::io::stdin().as_fd()));
    if req.tty {
        if let Some((rows, cols)) = tty_size() {
            let _ = tx.send(Frame::Resize { rows, cols }).await;
        }
    }
    before_relay().await?;
    // Raw mode from here to the end of this function, whichever way it ends.
    let _raw = if req.tty && std::io::stdin().is_terminal() {
        Some(RawMode::enter(std::io::stdin().as_fd())?)
    } else {
        None
    };
    if req.stdin {
        let tx = tx.clone();
        let tty = req.tty;
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let mut buf = vec![0u8; MAX_PAYLOAD];
                let mut input = std::io::stdin().lock();
                loop {
                    match input.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.blocking_send(Frame::Stdin(buf[..n].to_vec())).is_err() {
                                return;
                            }
                        }
                    }
                }
                if !tty {
                    let _ = tx.blocking_send(Frame::StdinEof);
                }
            })?;
    }
    let mut winch = signal(SignalKind::window_change())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut dec = Decoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    let result = loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => r?,
            _ = winch.recv() => {
                if let (true, Some((rows, cols))) = (req.tty, tty_size()) {
                    let _ = tx.send(Frame::Resize { rows, cols }).await;
                }
                continue;
            }
            _ = term.recv() => break Err(anyhow::anyhow!("terminated")),
            _ = hup.recv() => break Err(anyhow::anyhow!("hung up")),
        };
        if n == 0 {
            break Err(anyhow::anyhow!(
                "the session ended without an exit status (see the daemon's log)"
            ));
        }
        dec.push(&buf[..n]);
        let mut done = None;
        while let Some(f) = dec.next_frame().map_err(|e| anyhow::anyhow!(e))? {
            match f {
                Frame::Stdout(b) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&b)?;
                    out.flush()?;
                }
                Frame::Stderr(b) => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(&b)?;
                    err.flush()?;
                }
                Frame::Exit(code) => done = Some(Ok(Ended::Exit(code))),
                Frame::Ended => done = Some(Ok(Ended::Closed)),
                Frame::Error { code, message } => {
                    let code = ErrorCode::parse(&code).unwrap_or(ErrorCode::Internal);
                    done = Some(Err(RemoteError::new(code, message).into()));
                }
                _ => {}
            }
        }
        if let Some(d) = done {
            break d;
        }
    };
    writer.abort();
    let _ = writer.now_or_never();
    result
}

/// The caller's uid (allowed to connect to the session's socket).
pub fn my_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// `env` with `TERM=xterm` added when it has no `TERM`, for a terminal.
pub fn with_term(mut env: Vec<String>) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env
}
