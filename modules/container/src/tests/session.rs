//! `Session` on the doubles: an exec session hands the helper the runtime's exec argv
//! (with its terminal flag and the caller's uid), and the refusals change nothing.

use super::*;
use imagebus_schema::container::{ExecSpec, SessionRequest};
use imagebus_sys::session::SessionKind;

fn exec_spec(cmd: &str) -> ExecSpec {
    ExecSpec {
        command: CommandLine::Line(cmd.into()),
        env: vec![],
        working_dir: None,
        user: None,
        timeout_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_session_starts_a_helper_and_refusals_start_none() {
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let created = h.create(spec(InitialState::Created)).await.unwrap();
    let req = |exec: Option<ExecSpec>, tty: bool| SessionRequest {
        exec,
        tty,
        stdin: true,
        uid: 1234,
    };
    // Not running: no exec; no terminal (not created with tty): no terminal session.
    let err = h
        .session(Selector::Id(created.id), req(Some(exec_spec("sh")), true))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    let err = h
        .session(Selector::Id(created.id), req(None, true))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    assert!(err.message.contains("no terminal"), "{err}");
    let info = h.create(named("run", InitialState::Running)).await.unwrap();
    for bad in [exec_spec(""), exec_spec("sh\0")] {
        let err = h
            .session(Selector::Id(info.id), req(Some(bad), true))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    }
    let err = h
        .session(Selector::Name("nope".into()), req(None, false))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{err}");
    assert!(s.sessions.started().is_empty(), "no helper for a refusal");

    let got = h
        .session(Selector::Id(info.id), req(Some(exec_spec("sh -i")), true))
        .await
        .unwrap();
    let started = s.sessions.started();
    assert_eq!(started.len(), 1);
    let (cfg, master) = &started[0];
    assert!(
        !master,
        "an exec gets its terminal from the runtime, not from us"
    );
    assert_eq!(got.socket, cfg.stream_socket().display().to_string());
    assert!(cfg.stream_dir.starts_with(s.cfg.session_dir()));
    assert!(cfg.work_dir.starts_with(s.cfg.session_work_dir()));
    assert_eq!((cfg.uid, cfg.stdin), (1234, true));
    assert_eq!(
        cfg.kind,
        SessionKind::Exec {
            argv: vec![
                "fake-exec".into(),
                "unit-2".into(),
                "sh".into(),
                "-i".into()
            ],
            tty: true,
            failure_code: 255,
        }
    );
    let mode = std::fs::metadata(s.cfg.session_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o711, "traversable, not listable");
    h.delete(Selector::Id(info.id), true).await.unwrap();
    h.delete(Selector::Id(created.id), true).await.unwrap();
}
