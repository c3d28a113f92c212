//! `Session`: an interactive process, or the init's terminal, relayed between the container
//! and one local client over a unix socket by a session helper process
//! (`imagebus_sys::session`). The actor only reads the target; the helper is started on
//! the blocking pool and answered for within [`START_TIMEOUT`]; the session itself never
//! involves the actor again.

use super::{blocking, Engine};
use crate::error::ContainerError;
use imagebus_schema::container::{ContainerState, SessionInfo, SessionRequest};
use imagebus_schema::Selector;
use imagebus_sys::session::{SessionConfig, SessionKind, CONNECT_TIMEOUT};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long the helper may take to report its socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a session on `target`.
pub async fn session(
    e: &Engine,
    target: Selector,
    req: SessionRequest,
) -> Result<SessionInfo, ContainerError> {
    let (id, rid, state, tty, pid) = e
        .host
        .read(move |s| {
            let id = s.find(&target)?;
            let r = s.target(id)?;
            Ok::<_, ContainerError>((
                id,
                r.info.runtime_id.clone(),
                r.info.state,
                r.info.spec.tty,
                r.info.pid,
            ))
        })
        .await??;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let token = format!(
        "{id}-{}-{}",
        imagebus_sys::monitor::now_ms(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let connect_timeout_ms = CONNECT_TIMEOUT.as_millis() as u64;
    let mut cfg = SessionConfig {
        stream_dir: e.cfg.session_dir().join(&token),
        work_dir: e.cfg.session_work_dir().join(&token),
        uid: req.uid,
        connect_timeout_ms,
        stdin: req.stdin,
        kind: SessionKind::Terminal { init_pid: pid },
    };
    let master = match req.exec {
        Some(spec) => {
            super::nul::check_exec(&spec)?;
            if state != ContainerState::Running {
                return Err(ContainerError::WrongState {
                    id,
                    state,
                    what: "exec needs a running container",
                });
            }
            let ereq = super::exec::request(spec)?;
            let runtime = e.sys.runtime.clone();
            let (console, pid_file, log) =
                (cfg.console_socket(), cfg.pid_file(), cfg.runtime_log());
            let with_tty = req.tty;
            let argv = blocking(move || {
                let console = with_tty.then_some(console.as_path());
                runtime.session_exec_argv(&rid, &ereq, console, &pid_file, &log)
            })
            .await?
            .map_err(|err| ContainerError::runtime(format!("exec in container {id}"), err))?;
            cfg.kind = SessionKind::Exec {
                argv,
                tty: req.tty,
                failure_code: e.sys.runtime.exec_failure_code(),
            };
            None
        }
        None => {
            if !matches!(state, ContainerState::Created | ContainerState::Running) {
                return Err(ContainerError::WrongState {
                    id,
                    state,
                    what: "its terminal is gone with its init",
                });
            }
            let master = e.terminals.lock().ok().and_then(|mut t| t.remove(&id));
            let Some(master) = master else {
                return Err(ContainerError::WrongState {
                    id,
                    state,
                    what: if tty {
                        "its terminal was handed to a session already (one session per run)"
                    } else {
                        "it has no terminal (create it with tty)"
                    },
                });
            };
            Some(master)
        }
    };
    let (sessions, dirs) = (
        e.sys.sessions.clone(),
        (e.cfg.session_dir(), e.cfg.session_work_dir()),
    );
    let socket = blocking(move || -> Result<_, ContainerError> {
        for (dir, mode) in [(&dirs.0, 0o711), (&dirs.1, 0o700)] {
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
                .map_err(|err| ContainerError::state(format!("creating {dir:?}"), err))?;
        }
        sessions
            .start(&cfg, master, START_TIMEOUT)
            .map_err(|err| ContainerError::runtime("starting the session helper", err))
    })
    .await??;
    Ok(SessionInfo {
        socket: socket.display().to_string(),
        connect_timeout_ms,
    })
}
